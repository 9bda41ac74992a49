#!/usr/bin/env bash
# Security scan of the GitHub workflows with zizmor, offline (no GitHub API:
# pinning, permissions, injection, credentials and the rest of its offline
# audits), at its strictest persona. Accepted findings are in
# .github/zizmor.yml, each with its reason; anything else fails.
#
# zizmor (a PyPI wheel carrying the binary) is installed into a virtual
# environment the project owns (target/venvs/zizmor, created on first use),
# at the version pinned here, never assumed on the machine.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${ZIZMOR_VENV:-$root/target/venvs/zizmor}"
version="1.33.1"

if [ "$("$venv/bin/zizmor" --version 2>/dev/null)" != "zizmor $version" ]; then
  echo "installing zizmor $version into $venv" >&2
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check "zizmor==$version" >&2
fi

cd "$root"
exec "$venv/bin/zizmor" --offline --persona auditor --config .github/zizmor.yml .github/workflows "$@"
