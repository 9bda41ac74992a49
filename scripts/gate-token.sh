#!/usr/bin/env bash
# Mints the deploy gate's agent token: reads the agent-token secret from the
# SSM parameter $1 (the job's AWS credentials) and signs a token with
# `tunnel token issue` (the agent's own minting command, binary $2, default
# `tunnel` on PATH) for the user deploy-gate, valid for 2 hours: every run
# has a fresh token, none is stored, none expires between runs.
#
# Prints the token on stdout and nothing else. The secret is handed to the
# minting command in its environment only (never an argument, which `ps`
# would show), and never printed.
#
# Usage: token=$(scripts/gate-token.sh PARAMETER_NAME [TUNNEL_BINARY])
set -euo pipefail

name=${1:?usage: $0 PARAMETER_NAME [TUNNEL_BINARY]}
tunnel=${2:-tunnel}

if ! secret=$(aws ssm get-parameter --name "$name" --with-decryption \
    --query Parameter.Value --output text); then
  echo "gate-token: could not read the agent-token secret parameter $name" >&2
  exit 2
fi
TUNNEL_GATE_SECRET="$secret" exec "$tunnel" token issue \
  --secret-env TUNNEL_GATE_SECRET --user deploy-gate --expires 2h
