#!/usr/bin/env bash
# Runs the suite with the servers it needs. mosquitto and the llama.cpp server are started by the tests'
# own fixtures (each on a free port); PulseAudio (a per-machine daemon with a null sink) is started here.
set -uo pipefail
cd "$(dirname "$0")/.."
if command -v pulseaudio >/dev/null 2>&1; then
  if ! pactl info >/dev/null 2>&1; then
    pulseaudio -D --exit-idle-time=-1 --system=false --disallow-exit >/dev/null 2>&1 \
      || echo "run-tests: could not start PulseAudio; local-audio tests will be skipped" >&2
    for _ in $(seq 20); do pactl info >/dev/null 2>&1 && break; sleep 0.25; done
  fi
  pactl list short sinks 2>/dev/null | grep -q companion_null \
    || pactl load-module module-null-sink sink_name=companion_null >/dev/null 2>&1 || true
fi
.venv/bin/ruff check companion firmware_sim tests scripts || exit 1
.venv/bin/mypy companion firmware_sim || exit 1
.venv/bin/python -m pytest -p no:cacheprovider "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "run-tests: pytest collected no tests; that is a failure" >&2
  exit 1
fi
exit "$rc"
