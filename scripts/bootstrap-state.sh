#!/usr/bin/env bash
# Creates, once, the S3 bucket holding the Terraform state of environment $1
# (`just bootstrap-state ENV`): in the environment's region, named by
# scripts/lib/env.sh (backend.hcl's `bucket`, else
# serverless-tunnel-state-<account id>-<region>). Idempotent: a bucket that
# already exists in this account is left as it is.
#
# Not Terraform: the bucket must exist before `terraform init` can store any
# state, including its own.
#
# The bucket: private (public access blocked, ACLs disabled), encrypted
# (SSE-S3), TLS only, versioned (a state overwritten by a bad apply can be
# restored; old versions expire after 90 days). Terraform >= 1.10 locks
# with a lock file in it (use_lockfile): no DynamoDB table.
set -euo pipefail
# shellcheck source=scripts/lib/env.sh
source "$(dirname "$0")/lib/env.sh"

env=${1:?usage: scripts/bootstrap-state.sh ENV}
env_dir "$env" >/dev/null
region=$(env_region "$env")
bucket=$(state_bucket "$env")
account=$(aws sts get-caller-identity --query Account --output text)

if aws s3api head-bucket --bucket "$bucket" --expected-bucket-owner "$account" >/dev/null 2>&1; then
  echo "state bucket $bucket already exists in account $account ($region): nothing to do"
  exit 0
fi

echo "creating state bucket $bucket in account $account ($region)"
if [ "$region" = "us-east-1" ]; then
  aws s3api create-bucket --bucket "$bucket" --region "$region" >/dev/null
else
  aws s3api create-bucket --bucket "$bucket" --region "$region" \
    --create-bucket-configuration "LocationConstraint=$region" >/dev/null
fi
aws s3api wait bucket-exists --bucket "$bucket" --expected-bucket-owner "$account"
aws s3api put-public-access-block --bucket "$bucket" --expected-bucket-owner "$account" \
  --public-access-block-configuration \
  BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true
aws s3api put-bucket-ownership-controls --bucket "$bucket" --expected-bucket-owner "$account" \
  --ownership-controls 'Rules=[{ObjectOwnership=BucketOwnerEnforced}]'
aws s3api put-bucket-encryption --bucket "$bucket" --expected-bucket-owner "$account" \
  --server-side-encryption-configuration \
  '{"Rules":[{"ApplyServerSideEncryptionByDefault":{"SSEAlgorithm":"AES256"}}]}'
aws s3api put-bucket-versioning --bucket "$bucket" --expected-bucket-owner "$account" \
  --versioning-configuration Status=Enabled
aws s3api put-bucket-lifecycle-configuration --bucket "$bucket" --expected-bucket-owner "$account" \
  --lifecycle-configuration \
  '{"Rules":[{"ID":"old-state-versions","Status":"Enabled","Filter":{"Prefix":""},"NoncurrentVersionExpiration":{"NoncurrentDays":90},"AbortIncompleteMultipartUpload":{"DaysAfterInitiation":1}}]}'
aws s3api put-bucket-policy --bucket "$bucket" --expected-bucket-owner "$account" --policy "$(
  cat <<JSON
{"Version":"2012-10-17","Statement":[{"Sid":"TlsOnly","Effect":"Deny","Principal":"*","Action":"s3:*",
"Resource":["arn:aws:s3:::$bucket","arn:aws:s3:::$bucket/*"],
"Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}
JSON
)"
echo "state bucket $bucket is ready: next, scripts/tf.sh $env init (or just deploy $env)"
