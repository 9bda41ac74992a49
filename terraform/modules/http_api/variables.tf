variable "name" {
  type        = string
  description = "Name of the HTTP API, e.g. \"tunnel-dev-public\"."
}

variable "function" {
  type = object({
    function_name = string
    invoke_arn    = string
  })
  description = "The forwarding function the $default route invokes."
}

variable "throttling_burst_limit" {
  type        = number
  description = "Default route throttling: burst (requests)."
  default     = 200
}

variable "throttling_rate_limit" {
  type        = number
  description = "Default route throttling: steady rate (requests per second)."
  default     = 100
}

variable "disable_execute_api_endpoint" {
  type        = bool
  description = "Disable the default execute-api endpoint: true with host routing (a custom domain, one origin per tunnel), false with path routing (which is served on it)."
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
