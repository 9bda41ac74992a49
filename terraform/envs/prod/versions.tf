terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0, < 7.0"
    }
  }

  # Remote state (recommended beyond a single operator). Create the bucket
  # once, uncomment, and run `terraform init -migrate-state`. Terraform >= 1.10
  # locks with a lock file in the bucket (use_lockfile); older versions need a
  # DynamoDB table with a "LockID" (S) hash key instead (dynamodb_table).
  #
  # backend "s3" {
  #   bucket       = "my-terraform-state"
  #   key          = "serverless-tunnel/prod/terraform.tfstate"
  #   region       = "eu-west-1"
  #   encrypt      = true
  #   use_lockfile = true
  #   # dynamodb_table = "terraform-locks"   # Terraform < 1.10
  # }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      Environment = "prod"
      ManagedBy   = "terraform"
    }
  }
}
