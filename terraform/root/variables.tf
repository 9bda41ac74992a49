variable "environment" {
  type        = string
  description = "Name of the environment: its directory under terraform/envs (dev, prod), the Environment tag and part of its state key."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,15}$", var.environment))
    error_message = "environment must be 1-16 characters: lowercase letters, digits and '-', starting with a letter (the directory name under terraform/envs)."
  }
}

variable "region" {
  type        = string
  description = "AWS region of the environment, its one place: the provider, the state bucket (scripts/tf.sh passes it to terraform init) and the deploy workflow's credentials all read it from envs/<env>/terraform.tfvars."

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region must be an AWS region code such as eu-west-1."
  }
}

variable "name" {
  type        = string
  description = "Name of the deployment, prefix of every resource name (bounded in modules/tunnel by the longest name derived from it)."
}

variable "domain_name" {
  type        = string
  description = "Custom domain (tunnels at https://<subdomain>.DOMAIN) for routing = \"host\"; null for routing = \"path\"."
  default     = null
}

variable "routing" {
  type        = string
  description = "host (needs domain_name; one browser origin per tunnel) or path (no domain; every tunnel on ONE origin, single user only). See terraform/README.md, Routing."
  default     = "host"
}

variable "route53_zone_id" {
  type        = string
  description = "Route 53 hosted zone of domain_name (required with a custom domain)."
  default     = null
}

variable "log_level" {
  type        = string
  description = "RUST_LOG of the functions."
  default     = "info"
}

variable "log_retention_days" {
  type        = number
  description = "Retention of every log group, in days."
  default     = 14
}

variable "alarms_enabled" {
  type        = bool
  description = "Create the CloudWatch alarms and their SNS topic (about $0.10 per alarm-month)."
  default     = false
}

variable "alarm_emails" {
  type        = list(string)
  description = "Email addresses subscribed to the alarms' SNS topic (each confirms once by email); [] notifies nobody."
  default     = []
}

variable "alarm_sns_topic_arn" {
  type        = string
  description = "An existing SNS topic the alarms notify instead of the one the alarms module creates; null for the module's own."
  default     = null
}

variable "reserved_concurrency" {
  type        = map(number)
  description = "Reserved concurrency per function key; functions not listed are unreserved, {} reserves none; null = the tunnel module's defaults (forwarding capped at 50; response 25, connect 5, disconnect 5 reserved), which the plan refuses on an account whose concurrency quota is too small."
  default     = null
}

variable "tracing_mode" {
  type        = string
  description = "X-Ray tracing mode of the functions: PassThrough or Active."
  default     = "PassThrough"
}

variable "deletion_protection" {
  type        = bool
  description = "Deletion protection of the tables."
  default     = false
}
