"""`python -m companion.cli`, as the `companion` entry point."""

from companion.cli import main

main()
