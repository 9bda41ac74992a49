variable "name_prefix" {
  type        = string
  description = "Prefix of the alarm names that are not per function, e.g. \"tunnel-dev\"."
}

variable "functions" {
  type = map(object({
    function_name   = string
    timeout_seconds = number
  }))
  description = "The functions to watch, by key (connect, disconnect, forwarding, response): name and timeout."
}

variable "log_alarms" {
  type        = list(string)
  description = "The `alarm` values the functions' log metric filters count (metric name = value); one alarm each, firing on the first occurrence."
  default     = []
}

variable "metric_namespace" {
  type        = string
  description = "CloudWatch namespace of the log_alarms metrics (as given to the function module)."
  default     = "ServerlessTunnel"
}

variable "http_api_id" {
  type        = string
  description = "ID of the public HTTP API."
}

variable "http_api_stage" {
  type        = string
  description = "Stage of the public HTTP API."
  default     = "$default"
}

variable "sns_topic_arn" {
  type        = string
  description = "An existing SNS topic notified when an alarm fires or recovers; null (default) creates this module's own topic, <name_prefix>-alarms."
  default     = null
}

variable "emails" {
  type        = list(string)
  description = "Email addresses subscribed to this module's topic (ignored with sns_topic_arn); each confirms once by email."
  default     = []

  validation {
    condition     = alltrue([for email in var.emails : can(regex("^[^@\\s]+@[^@\\s]+$", email))])
    error_message = "emails must be email addresses."
  }
}

variable "period_seconds" {
  type        = number
  description = "Evaluation period of every alarm, in seconds."
  default     = 300
}

variable "errors_threshold" {
  type        = number
  description = "Function errors per period above which the errors alarm fires."
  default     = 0
}

variable "http_5xx_threshold" {
  type        = number
  description = "HTTP API 5xx answers per period above which the alarm fires (502/504 from dead agents are expected now and then)."
  default     = 5
}

variable "duration_ratio" {
  type        = number
  description = "Fraction of the timeout the p99 duration may reach before the alarm fires."
  default     = 0.8

  validation {
    condition     = var.duration_ratio > 0 && var.duration_ratio < 1
    error_message = "duration_ratio must be between 0 and 1."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags applied to the alarms."
  default     = {}
}
