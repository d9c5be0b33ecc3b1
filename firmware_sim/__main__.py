"""``python -m firmware_sim``: see :mod:`firmware_sim.cli` and docs/simulator.md."""

import sys

from .cli import main

sys.exit(main())
