# Where the dev environment's state lives: `terraform init -backend-config`
# of terraform/root, through scripts/tf.sh dev init. The region is not here:
# it is the environment's `region` in terraform.tfvars (one place), and the
# bucket, unless set below, is serverless-tunnel-state-<account id>-<region>,
# created once by `just bootstrap-state dev`.
key          = "serverless-tunnel/dev/terraform.tfstate"
encrypt      = true
use_lockfile = true
# bucket     = "my-own-state-bucket"   # an existing bucket of your own instead
