#!/usr/bin/env bash
# Refreshes scripts/constraints.txt, the pinned dependency set that scripts/setup.sh installs from.
# It resolves pyproject.toml's ranges afresh in a throw-away virtualenv (the test and bench extras, with the
# portable llama-cpp-python wheel) and freezes the result. Run the tests on the new set before committing it.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q --upgrade pip
version="$(sed -n 's/.*"llama-cpp-python\[server\]==\([0-9.]*\)".*/\1/p' pyproject.toml)"
dir="${COMPANION_WHEEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/companion/wheels-portable}"
if ! compgen -G "$dir/llama_cpp_python-$version-*.whl" >/dev/null; then
  echo "lock: building llama-cpp-python $version portably first" >&2
  mkdir -p "$dir"
  CMAKE_ARGS="-DGGML_NATIVE=OFF" FORCE_CMAKE=1 "$tmp/venv/bin/pip" wheel -q --no-deps --no-cache-dir \
    --no-binary llama-cpp-python -w "$dir" "llama-cpp-python==$version"
fi
"$tmp/venv/bin/pip" install -q --find-links "$dir" --only-binary llama-cpp-python -e '.[test,bench]'
{
  echo "# Pinned dependency set for scripts/setup.sh (pip -c). Made by scripts/lock.sh on $(date -u +%F)"
  echo "# with Python $("$tmp/venv/bin/python" -c 'import platform; print(platform.python_version())'); refresh with it."
  "$tmp/venv/bin/pip" freeze --exclude-editable | grep -v -i '^companion' | LC_ALL=C sort -f
} > scripts/constraints.txt
echo "lock: wrote scripts/constraints.txt ($(grep -vc '^#' scripts/constraints.txt) packages)" >&2
