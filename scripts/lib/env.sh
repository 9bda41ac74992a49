# shellcheck shell=bash
# What an environment is, for the scripts that deploy it (sourced by
# scripts/tf.sh and scripts/bootstrap-state.sh): a directory
# terraform/envs/<env> holding terraform.tfvars (its values, the region
# among them) and backend.hcl (where its state lives). The configuration is
# terraform/root, the same for every environment.

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tf_root="$repo/terraform/root"

# An error, as a GitHub annotation in a workflow and plainly elsewhere.
fail() {
  if [ -n "${GITHUB_ACTIONS:-}" ]; then
    echo "::error::$*"
  else
    echo "error: $*" >&2
  fi
  exit 1
}

# The directory of environment $1, which must hold both files.
env_dir() {
  local env=${1:?environment name missing}
  [[ $env =~ ^[a-z][a-z0-9-]{0,15}$ ]] || fail "\"$env\" is not an environment name (a directory under terraform/envs)"
  local dir="$repo/terraform/envs/$env"
  [ -f "$dir/terraform.tfvars" ] || fail "terraform/envs/$env/terraform.tfvars does not exist: environments are $(ls "$repo/terraform/envs" | tr '\n' ' ')"
  [ -f "$dir/backend.hcl" ] || fail "terraform/envs/$env/backend.hcl does not exist: every environment says where its state lives (terraform/README.md, \"Remote state\")"
  echo "$dir"
}

# The literal value of `KEY = "value"` (or `KEY = value`) on a line of FILE;
# empty when it is not set.
setting() {
  local file=$1 key=$2
  sed -nE "s/^[[:space:]]*$key[[:space:]]*=[[:space:]]*\"?([^\"#[:space:]]*)\"?[[:space:]]*(#.*)?$/\\1/p" "$file" | tail -n 1
}

# The region of environment $1: its one place is `region` in terraform.tfvars.
env_region() {
  local dir region
  dir=$(env_dir "$1") || exit 1
  region=$(setting "$dir/terraform.tfvars" region)
  [[ $region =~ ^[a-z]{2}(-[a-z]+)+-[0-9]$ ]] || fail "terraform/envs/$1/terraform.tfvars sets no region = \"<aws region>\" line (found \"$region\")"
  echo "$region"
}

# The state bucket of environment $1: `bucket` in backend.hcl, else
# serverless-tunnel-state-<account id>-<region> (needs AWS credentials).
state_bucket() {
  local dir bucket account
  dir=$(env_dir "$1") || exit 1
  bucket=$(setting "$dir/backend.hcl" bucket)
  if [ -z "$bucket" ]; then
    account=$(aws sts get-caller-identity --query Account --output text) ||
      fail "no AWS credentials: cannot name the state bucket of $1 (aws sts get-caller-identity failed)"
    bucket="serverless-tunnel-state-$account-$(env_region "$1")"
  fi
  echo "$bucket"
}
