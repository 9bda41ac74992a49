#!/usr/bin/env bash
# Installs the project's Python-packaged tools (cargo-lambda with zig, just)
# into a virtual environment the project owns, and prints its bin directory.
# Idempotent: a second run only checks that the tools are there.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${TOOLS_VENV:-$root/target/venvs/tools}"
if [ ! -x "$venv/bin/cargo-lambda" ] || [ ! -x "$venv/bin/just" ]; then
  echo "installing cargo-lambda and just into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "cargo-lambda>=1.8" "rust-just>=1.40" >&2
fi
echo "$venv/bin"
