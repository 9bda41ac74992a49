#!/usr/bin/env bash
# The deploy gate: succeeds only when the SSM parameter named by $1 holds an
# agent-token secret the connect function would sign with. Fails (exit 1,
# with what to do) while it is missing, still a placeholder Terraform writes
# or shorter than 32 bytes; exit 2 when SSM cannot be asked. Never prints the
# value.
#
# The same rule as handlers::config::signing_secret (PLACEHOLDER_MARKERS,
# at least 32 bytes, surrounding whitespace ignored):
# terraform/checks/tests/security.rs runs this script and that function on
# the same values, the one in the HCL included, and wants the same verdicts.
#
# Usage: scripts/auth-secret-set.sh PARAMETER_NAME   (needs the aws CLI)
set -euo pipefail

name=${1:?usage: $0 PARAMETER_NAME}
how="set it with: aws ssm put-parameter --overwrite --type SecureString --name '$name' --value \"\$(openssl rand -base64 48)\" (see terraform/README.md), then run the deploy again"

err=$(mktemp)
trap 'rm -f "$err"' EXIT
if ! value=$(aws ssm get-parameter --name "$name" --with-decryption \
    --query Parameter.Value --output text 2>"$err"); then
  if grep -q ParameterNotFound "$err"; then
    echo "::error::the agent-token secret parameter $name does not exist: $how"
    exit 1
  fi
  echo "::error::could not read the agent-token secret parameter $name:" >&2
  cat "$err" >&2
  exit 2
fi

# Surrounding whitespace does not count (connect trims it too).
value="${value#"${value%%[![:space:]]*}"}"
value="${value%"${value##*[![:space:]]}"}"
lower=$(printf '%s' "$value" | tr '[:upper:]' '[:lower:]')
for marker in "unset:" "placeholder:"; do
  if [[ $lower == "$marker"* ]]; then
    echo "::error::the agent-token secret parameter $name still holds the placeholder Terraform writes: no agent can connect until it holds a real secret; $how"
    exit 1
  fi
done
bytes=$(printf '%s' "$value" | LC_ALL=C wc -c)
if ((bytes < 32)); then
  echo "::error::the agent-token secret parameter $name holds $bytes bytes, fewer than the 32 a secret needs: $how"
  exit 1
fi
echo "the agent-token secret parameter $name holds a usable secret"
