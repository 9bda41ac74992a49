variable "region" {
  type        = string
  description = "AWS region to deploy to."
}

variable "name" {
  type        = string
  description = "Name of the deployment, prefix of every resource name."
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
  description = "Create the CloudWatch alarms (about $0.10 per alarm-month)."
  default     = false
}

variable "alarm_sns_topic_arn" {
  type        = string
  description = "SNS topic the alarms notify; null for none."
  default     = null
}

variable "reserved_concurrency" {
  type        = map(number)
  description = "Reserved concurrency per function key; functions not listed are unreserved, {} reserves none; null = the tunnel module's defaults (forwarding capped at 50; response 25, connect 5, disconnect 5 reserved)."
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
