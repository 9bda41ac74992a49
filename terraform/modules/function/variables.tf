variable "name" {
  type        = string
  description = "Function name, also the name of its role and of its log group /aws/lambda/<name>."
}

variable "description" {
  type        = string
  description = "Function description shown in the console."
  default     = ""
}

variable "package_path" {
  type        = string
  description = "Path of the cargo-lambda zip, target/lambda/<bin>/bootstrap.zip (cargo lambda build --release --arm64 --output-format zip)."
}

variable "memory_size" {
  type        = number
  description = "Memory in MB (also scales CPU)."
  default     = 128

  validation {
    condition     = var.memory_size >= 128 && var.memory_size <= 10240
    error_message = "memory_size must be between 128 and 10240 MB."
  }
}

variable "timeout" {
  type        = number
  description = "Timeout in seconds."
  default     = 10

  validation {
    condition     = var.timeout >= 1 && var.timeout <= 900
    error_message = "timeout must be between 1 and 900 seconds."
  }
}

variable "environment" {
  type        = map(string)
  description = "Environment variables of the function (docs/contracts.md, handlers::manifest)."
  default     = {}
}

variable "policy_statements" {
  type = list(object({
    sid       = string
    actions   = list(string)
    resources = list(string)
  }))
  description = "IAM statements the function needs beyond logging: exactly the DynamoDB and execute-api actions its code calls."
  default     = []
}

variable "reserved_concurrency" {
  type        = number
  description = "Reserved concurrent executions; null (default) leaves the function on the unreserved account pool."
  default     = null
}

variable "tracing_mode" {
  type        = string
  description = "X-Ray tracing mode: PassThrough (default) or Active."
  default     = "PassThrough"

  validation {
    condition     = contains(["PassThrough", "Active"], var.tracing_mode)
    error_message = "tracing_mode must be PassThrough or Active."
  }
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the function's log group, in days."
  default     = 14
}

variable "permissions_boundary" {
  type        = string
  description = "ARN of an IAM permissions boundary for the role, if the account requires one."
  default     = null
}

variable "tags" {
  type        = map(string)
  description = "Tags applied to the function, its role and its log group."
  default     = {}
}

variable "log_alarms" {
  type        = list(string)
  description = "Values of the `alarm` field of this function's JSON log lines to count as metrics (one log metric filter each; the metric is named after the value)."
  default     = []
}

variable "metric_namespace" {
  type        = string
  description = "CloudWatch namespace of the log_alarms metrics."
  default     = "ServerlessTunnel"
}
