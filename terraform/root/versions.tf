terraform {
  # 1.11: write-only arguments (the agent-token secret's value_wo); 1.10:
  # the S3 backend's lock file (use_lockfile).
  required_version = ">= 1.11"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 6.62 is the schema this configuration is checked against; ~> keeps
      # every environment, CI and laptop on major version 6. The exact
      # version and its checksums are in .terraform.lock.hcl beside this
      # file (terraform/README.md, "Provider lock file").
      version = "~> 6.62"
    }
  }

  # Remote state, always: settings come from envs/<env>/backend.hcl and the
  # region from envs/<env>/terraform.tfvars at `terraform init`
  # (scripts/tf.sh ENV init). The bucket is created once per account and
  # region by `just bootstrap-state ENV`; Terraform >= 1.10 locks with a
  # lock file next to the state (use_lockfile), no DynamoDB table.
  backend "s3" {}
}

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      Environment = var.environment
      ManagedBy   = "terraform"
    }
  }
}
