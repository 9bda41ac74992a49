#!/usr/bin/env bash
# Terraform for one environment: the shared root (terraform/root) with the
# environment's values and state, so no command can mix one environment's
# values with another's state.
#
#   scripts/tf.sh ENV init                 # checks the state bucket, then init
#   scripts/tf.sh ENV plan|apply|destroy|import|refresh|console [ARGS]
#                                          # with -var-file=envs/ENV/terraform.tfvars
#   scripts/tf.sh ENV output|state|show … # as is
#   scripts/tf.sh ENV region               # the environment's region (no AWS call)
#   scripts/tf.sh ENV state-bucket         # the state bucket's name
#
# Each environment has its own Terraform data directory
# (terraform/root/.terraform/env-ENV), so an init of prod never leaves dev's
# backend configured for the next command. The provider lock file
# (terraform/root/.terraform.lock.hcl) is one, shared by all.
set -euo pipefail
# shellcheck source=scripts/lib/env.sh
source "$(dirname "$0")/lib/env.sh"

[ $# -ge 2 ] || fail "usage: scripts/tf.sh ENV COMMAND [ARGS...]"
env=$1
command=$2
shift 2
dir=$(env_dir "$env")

case $command in
  region)
    env_region "$env"
    exit 0
    ;;
  state-bucket)
    state_bucket "$env"
    exit 0
    ;;
esac

export TF_DATA_DIR="$tf_root/.terraform/env-$env"

case $command in
  init)
    region=$(env_region "$env")
    bucket=$(state_bucket "$env")
    account=$(aws sts get-caller-identity --query Account --output text)
    # Early and clear: without its bucket, init would fail with an S3 error,
    # and a run without remote state would create resources nobody tracks.
    if ! aws s3api head-bucket --bucket "$bucket" --expected-bucket-owner "$account" >/dev/null 2>&1; then
      fail "the state bucket $bucket of environment $env does not exist in account $account (or belongs to another account): create it once with \`just bootstrap-state $env\` (scripts/bootstrap-state.sh $env) using credentials for account $account, then run this again"
    fi
    exec terraform -chdir="$tf_root" init -input=false \
      -backend-config="$dir/backend.hcl" \
      -backend-config="region=$region" \
      -backend-config="bucket=$bucket" \
      "$@"
    ;;
  plan | apply | destroy | import | refresh | console)
    exec terraform -chdir="$tf_root" "$command" -var-file="$dir/terraform.tfvars" "$@"
    ;;
  *)
    exec terraform -chdir="$tf_root" "$command" "$@"
    ;;
esac
