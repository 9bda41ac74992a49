#!/usr/bin/env bash
# Security scan of the Terraform configuration with checkov, offline.
#
# checkov is installed into a virtual environment the project owns
# (target/venvs/checkov, created on first use), never assumed on the machine.
# Every skipped check is justified inline in the HCL (#checkov:skip=CKV_...:why).
# Exits non-zero when a check fails.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${CHECKOV_VENV:-$root/target/venvs/checkov}"

version="3.3.30"

if [ "$("$venv/bin/checkov" --version 2>/dev/null)" != "$version" ]; then
  echo "installing checkov $version into $venv (first run only, takes a minute or two)" >&2
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check "checkov==$version" >&2
fi

cd "$root"
exec "$venv/bin/checkov" \
  --directory terraform \
  --framework terraform \
  --skip-download \
  --quiet \
  --compact \
  "$@"
