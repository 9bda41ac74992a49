variable "name" {
  type        = string
  description = "Name of the WebSocket API, e.g. \"tunnel-dev-agents\"."
}

variable "stage_name" {
  type        = string
  description = "Stage name; part of the WebSocket URL and of the management endpoint."
  default     = "live"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]+$", var.stage_name))
    error_message = "stage_name may contain only letters, digits, '-' and '_'."
  }
}

variable "routes" {
  type = map(object({
    function_name = string
    invoke_arn    = string
  }))
  description = "Route key ($connect, $disconnect, $default) to the function it invokes."

  validation {
    condition     = alltrue([for key in ["$connect", "$disconnect", "$default"] : contains(keys(var.routes), key)])
    error_message = "routes must define $connect, $disconnect and $default."
  }
}

variable "throttling_burst_limit" {
  type        = number
  description = "Default route throttling: burst (requests)."
  default     = 500
}

variable "throttling_rate_limit" {
  type        = number
  description = "Default route throttling: steady rate (requests per second)."
  default     = 1000
}

variable "access_logs_enabled" {
  type        = bool
  description = "Write stage access logs; needs the account-wide API Gateway CloudWatch Logs role (aws_api_gateway_account) to be set up already."
  default     = false
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the access log group, in days."
  default     = 14
}

variable "tags" {
  type        = map(string)
  description = "Tags applied to the API, its stage and its log group."
  default     = {}
}
