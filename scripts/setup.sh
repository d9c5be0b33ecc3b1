#!/usr/bin/env bash
# Installs what companion needs on a Debian machine, idempotently, then runs one job:
#   scripts/setup.sh demo [ARGS...]   -> the offline demo (`companion demo ARGS`)
#   scripts/setup.sh test [PYTEST...] -> the test suite, with every server it needs started
# It creates ./.venv, installs system packages with apt-get when they are missing (as root, or via sudo),
# and installs the Python packages with pip, pinned by scripts/constraints.txt (refresh: scripts/lock.sh).
# llama-cpp-python (tests only) is built from source once, portably (GGML_NATIVE=OFF: no -march=native, no
# AMX path), into a wheel folder of its own, so no natively built wheel from pip's cache reaches another CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
job="${1:-demo}"; shift || true
constraints=scripts/constraints.txt

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

# The portable llama-cpp-python wheel: built once per version into its own folder, never from pip's cache.
llama_wheels() {
  local version dir tmp
  version="$(sed -n 's/^llama[-_]cpp[-_]python==//p' "$constraints")"
  dir="${COMPANION_WHEEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/companion/wheels-portable}"
  if ! compgen -G "$dir/llama_cpp_python-$version-*.whl" >/dev/null; then
    echo "setup: building llama-cpp-python $version portably (GGML_NATIVE=OFF; ~5 min, once)" >&2
    tmp="$(mktemp -d)"
    CMAKE_ARGS="-DGGML_NATIVE=OFF" FORCE_CMAKE=1 .venv/bin/pip wheel -q --no-deps --no-cache-dir \
      --no-binary llama-cpp-python -w "$tmp" "llama-cpp-python==$version" >&2
    mkdir -p "$dir" && mv "$tmp"/llama_cpp_python-*.whl "$dir"/ && rmdir "$tmp"
  fi
  echo "$dir"
}

# The audio end-of-turn model (Smart Turn v3, BSD-2): one file taken from the pipecat-ai wheel into
# companion's data dir (pipecat itself is not installed). Without it the end of turn uses the words alone.
smart_turn_model() {
  .venv/bin/python -m companion.stt.smart_turn install >/dev/null \
    || echo "setup: Smart Turn model not installed (end of turn from the transcript alone)" >&2
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
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ "$constraints" -nt "$stamp" ]; then
      .venv/bin/pip install -q -c "$constraints" -e '.[stt,tts,llm]' >&2 && touch "$stamp"
    fi
    smart_turn_model
    exec .venv/bin/companion demo "$@"
    ;;
  test)
    apt_install libopus0 espeak-ng mosquitto libportaudio2 pulseaudio libasound2-plugins openssl dbus
    stamp=.venv/.companion-test
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ "$constraints" -nt "$stamp" ]; then
      wheels="$(llama_wheels)"
      echo "setup: pip install -e .[test] (pinned by $constraints)" >&2
      .venv/bin/pip install -q -c "$constraints" --find-links "$wheels" --only-binary llama-cpp-python \
        -e '.[test]' >&2 && touch "$stamp"
    fi
    smart_turn_model
    exec bash scripts/run-tests.sh "$@"
    ;;
  *)
    echo "usage: scripts/setup.sh demo|test [ARGS...]" >&2
    exit 2
    ;;
esac
