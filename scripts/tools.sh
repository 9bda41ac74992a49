#!/usr/bin/env bash
# Installs the project's Python-packaged tools (cargo-lambda with zig, just)
# into a virtual environment the project owns, and prints its bin directory.
# Idempotent: a second run only checks that the tools are there, at their
# pinned versions.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${TOOLS_VENV:-$root/target/venvs/tools}"
# Exact versions: CI, the deploy workflow and laptops build with the same
# tools (a newer cargo-lambda could change the zips that get deployed).
cargo_lambda="1.9.2"
just="1.59.0"
if ! "$venv/bin/cargo-lambda" lambda --version 2>/dev/null | grep -q " $cargo_lambda" ||
  [ "$("$venv/bin/just" --version 2>/dev/null)" != "just $just" ]; then
  echo "installing cargo-lambda $cargo_lambda and just $just into $venv" >&2
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "cargo-lambda==$cargo_lambda" "rust-just==$just" >&2
fi
echo "$venv/bin"
