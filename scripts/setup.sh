#!/usr/bin/env bash
# Installs what companion needs on a Debian machine, idempotently, then runs one job:
#   scripts/setup.sh demo [ARGS...]   -> the offline demo (`companion demo ARGS`)
#   scripts/setup.sh test [PYTEST...] -> the test suite, with every server it needs started
# It creates ./.venv, installs system packages with apt-get when they are missing (as root, or via sudo),
# and installs the Python packages with pip (pip's cache keeps the llama-cpp-python wheel built once).
set -euo pipefail
cd "$(dirname "$0")/.."
job="${1:-demo}"; shift || true

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "setup: apt-get install ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

python_bin="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  if ! "$python_bin" -m venv .venv 2>/dev/null; then
    apt_install python3-venv
    "$python_bin" -m venv .venv
  fi
  .venv/bin/pip install -q --upgrade pip >&2
fi

case "$job" in
  demo)
    apt_install libopus0 espeak-ng
    stamp=.venv/.companion-demo
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
      .venv/bin/pip install -q -e '.[stt,tts,llm]' >&2 && touch "$stamp"
    fi
    exec .venv/bin/companion demo "$@"
    ;;
  test)
    apt_install libopus0 espeak-ng mosquitto libportaudio2 pulseaudio libasound2-plugins openssl dbus
    stamp=.venv/.companion-test
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
      echo "setup: pip install -e .[test] (building llama-cpp-python takes ~5 min the first time)" >&2
      .venv/bin/pip install -q -e '.[test]' >&2 && touch "$stamp"
    fi
    exec bash scripts/run-tests.sh "$@"
    ;;
  *)
    echo "usage: scripts/setup.sh demo|test [ARGS...]" >&2
    exit 2
    ;;
esac
