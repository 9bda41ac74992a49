variable "name" {
  type        = string
  description = "Name of this tunnel deployment, prefix of every resource name, e.g. \"tunnel-dev\". At most 29 characters: the tightest name derived from it is the bodies bucket's prefix \"<name>-bodies-\", which S3 allows 37 characters (63 minus Terraform's 26-character unique suffix); terraform/checks computes every derived name against its AWS limit."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,27}[a-z0-9]$", var.name)) && !can(regex("^(xn--|sthree-|amzn-s3-demo-)", var.name))
    error_message = "name must be 2-29 characters: lowercase letters, digits and '-', starting with a letter and not ending with '-', and not starting with xn--, sthree- or amzn-s3-demo- (S3 bucket names derive from it)."
  }
}

variable "lambda_artifacts_dir" {
  type        = string
  description = "Directory of the cargo-lambda zips (<dir>/<bin>/bootstrap.zip), i.e. the workspace's target/lambda."
}

variable "domain_name" {
  type        = string
  description = "Custom domain of the tunnels (https://<subdomain>.DOMAIN; the apex serves nothing): required with routing = \"host\", null with routing = \"path\"."
  default     = null
}

variable "routing" {
  type        = string
  description = "How visitors' requests name their tunnel (the forwarding function's ROUTING): \"host\" (default) serves https://<subdomain>.DOMAIN only, one browser origin per tunnel, and needs domain_name; \"path\" serves https://<execute-api host>/<subdomain>/ without a domain, ONE origin shared by every tunnel (a tunnel's page can read another's responses and cookies): for a single user or mutually trusting ones."
  default     = "host"

  validation {
    condition     = contains(["host", "path"], var.routing)
    error_message = "routing must be \"host\" (with domain_name) or \"path\" (without)."
  }
}

variable "route53_zone_id" {
  type        = string
  description = "Route 53 hosted zone of domain_name (required with a custom domain)."
  default     = null

  validation {
    condition     = var.route53_zone_id == null || can(regex("^Z[A-Z0-9]+$", var.route53_zone_id))
    error_message = "route53_zone_id must be a hosted zone id like Z0123456789ABCDEFGHIJ."
  }
}

variable "websocket_stage_name" {
  type        = string
  description = "Stage of the WebSocket API (part of the agents' URL and of the management endpoint)."
  default     = "live"
}

variable "memory_size" {
  type        = number
  description = "Memory in MB of the connect, disconnect and response functions."
  default     = 128
}

variable "forwarding_memory_size" {
  type        = number
  description = "Memory in MB of the forwarding function (it base64-encodes bodies up to a few MB)."
  default     = 256
}

variable "timeout_seconds" {
  type        = number
  description = "Timeout in seconds of the connect, disconnect and response functions."
  default     = 10
}

variable "forwarding_timeout_seconds" {
  type        = number
  description = "Timeout of the forwarding function: above its 25 s wait for the agent, below the HTTP API's 30 s integration timeout."
  default     = 29

  validation {
    condition     = var.forwarding_timeout_seconds > 25 && var.forwarding_timeout_seconds < 30
    error_message = "forwarding_timeout_seconds must be greater than 25 (the wait for the agent) and less than 30 (the HTTP API integration timeout)."
  }
}

variable "request_timeout_ms" {
  type        = number
  description = "How long forwarding waits for the agent's response (REQUEST_TIMEOUT_MS), at most 28000."
  default     = 25000

  validation {
    condition     = var.request_timeout_ms >= 1000 && var.request_timeout_ms <= 28000
    error_message = "request_timeout_ms must be between 1000 and 28000."
  }
}

variable "auth_mode" {
  type        = string
  description = "AUTH_MODE of the connect function: required (agents need a token signed with the secret in the auth_secret_parameter) or disabled (anyone who reaches the WebSocket URL can open a tunnel)."
  default     = "required"

  validation {
    condition     = contains(["required", "disabled"], var.auth_mode)
    error_message = "auth_mode must be required or disabled."
  }
}

variable "log_format" {
  type        = string
  description = "LOG_FORMAT of every function: json or text."
  default     = "json"

  validation {
    condition     = contains(["json", "text"], var.log_format)
    error_message = "log_format must be json or text."
  }
}

variable "log_level" {
  type        = string
  description = "RUST_LOG of every function (a tracing filter, e.g. \"info\" or \"info,handlers=debug\")."
  default     = "info"
}

variable "log_retention_days" {
  type        = number
  description = "Retention of every log group (functions, API access logs), in days."
  default     = 14
}

variable "reserved_concurrency" {
  type        = map(number)
  description = "Reserved concurrency per function key (connect, disconnect, forwarding, response); functions not listed are unreserved, {} reserves none. A reservation is both a cap and a guarantee: by default forwarding (which waits up to 25 s per visitor request on a slow tunnel) is capped at 50, and connect, response and disconnect keep their own capacity however busy forwarding is. Reservations (85 by default) must leave the account 100 unreserved executions: on an account whose Lambda concurrency quota is lower, the plan stops before creating anything and says what to request (or set {})."
  default = {
    forwarding = 50
    response   = 25
    connect    = 5
    disconnect = 5
  }
  # null (what the environments pass by default) means these defaults.
  nullable = false
}

variable "tracing_mode" {
  type        = string
  description = "X-Ray tracing mode of the functions: PassThrough or Active."
  default     = "PassThrough"
}

variable "permissions_boundary" {
  type        = string
  description = "ARN of an IAM permissions boundary for the functions' roles, if the account requires one."
  default     = null
}

variable "point_in_time_recovery" {
  type        = bool
  description = "Point-in-time recovery of the tables (off: they hold only ephemeral routing state)."
  default     = false
}

variable "dynamodb_kms_key_arn" {
  type        = string
  description = "Customer managed KMS key for the tables; null uses the AWS-owned key (free)."
  default     = null
}

variable "deletion_protection" {
  type        = bool
  description = "Deletion protection of the tables."
  default     = false
}

variable "websocket_throttling_burst_limit" {
  type        = number
  description = "WebSocket API default route throttling: burst."
  default     = 500
}

variable "websocket_throttling_rate_limit" {
  type        = number
  description = "WebSocket API default route throttling: requests per second."
  default     = 1000
}

variable "websocket_access_logs_enabled" {
  type        = bool
  description = "WebSocket stage access logs (needs the account-wide API Gateway CloudWatch role)."
  default     = false
}

variable "http_throttling_burst_limit" {
  type        = number
  description = "HTTP API default route throttling: burst."
  default     = 200
}

variable "http_throttling_rate_limit" {
  type        = number
  description = "HTTP API default route throttling: requests per second."
  default     = 100
}

variable "alarms_enabled" {
  type        = bool
  description = "Create the CloudWatch alarms (about $0.10 per alarm-month: the only cost while idle)."
  default     = false
}

variable "alarm_sns_topic_arn" {
  type        = string
  description = "An existing SNS topic the alarms notify; null (default) for the alarms module's own topic <name>-alarms."
  default     = null
}

variable "alarm_emails" {
  type        = list(string)
  description = "Email addresses subscribed to the alarms' own topic (each confirms once by email); [] notifies nobody, which the plan warns about."
  default     = []
}

variable "tags" {
  type        = map(string)
  description = "Extra tags on every resource."
  default     = {}
}
