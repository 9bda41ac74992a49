terraform {
  # 1.11: write-only arguments (modules/auth_secret's value_wo).
  required_version = ">= 1.11"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # The schema this configuration is checked against (terraform/README.md,
      # "Provider lock file"); the root pins the same.
      version = "~> 6.62"
    }
  }
}
