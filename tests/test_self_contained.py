"""The repository carries everything its tests and benchmarks read."""

from __future__ import annotations

import re

from tests.fixtures.self_contained import REPO, outside_repository
from tests.fixtures.speech import SPEECH_DIR, load_manifest

# A path built from the checkout's parent ("ROOT.parent / ...", "../shared") in tests or scripts.
_ESCAPE = re.compile(r"""(\.parent\s*/\s*["']shared|["'`]\.\./shared|\bparents\[\d\]\s*/\s*["']shared)""")


def test_no_test_or_script_names_a_path_beside_the_checkout() -> None:
    offenders = []
    for folder in ("tests", "scripts", "companion", "firmware_sim"):
        for f in (REPO / folder).rglob("*.py"):
            for n, line in enumerate(f.read_text().splitlines(), 1):
                if _ESCAPE.search(line) and f.name != "test_self_contained.py":
                    offenders.append(f"{f.relative_to(REPO)}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_the_speech_set_is_in_the_repository_with_sources_and_licences() -> None:
    utts = load_manifest()
    assert len(utts) >= 30
    for u in utts:
        assert u.path.is_relative_to(SPEECH_DIR) and u.path.exists()
        assert u.transcript
    sources = (SPEECH_DIR / "SOURCES.md").read_text()
    assert "MIT" in sources and "public domain" in sources


def test_the_guard_flags_a_sibling_folder_and_passes_the_repository() -> None:
    assert outside_repository(str(REPO.parent / "shared" / "speech" / "x.wav"))
    assert not outside_repository(str(REPO / "tests" / "data" / "speech" / "x.wav"))
    assert not outside_repository("/usr/lib/x.so")
    assert not outside_repository(str(REPO.parent / ".cache" / "pip"))
