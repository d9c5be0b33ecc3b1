"""Shared test set-up: every module in tests/fixtures/ is loaded as a pytest plugin.

Each concern (speech files, the llama.cpp server, mosquitto, PulseAudio, virtual headsets) keeps its
fixtures in its own module there, so they can be added without touching this file.
"""

from pathlib import Path

_FIXTURES = Path(__file__).parent / "fixtures"
pytest_plugins = sorted(f"tests.fixtures.{p.stem}" for p in _FIXTURES.glob("*.py") if p.stem != "__init__")
