variable "name_prefix" {
  type        = string
  description = "Prefix of the table names, e.g. \"tunnel-dev\" (tables \"<prefix>-connections\" and \"<prefix>-pending-requests\")."
}

variable "point_in_time_recovery" {
  type        = bool
  description = "Enable point-in-time recovery. Off by default: the tables hold only ephemeral routing state (see main.tf)."
  default     = false
}

variable "kms_key_arn" {
  type        = string
  description = "ARN of a customer managed KMS key for encryption at rest; null (default) uses the AWS-owned key (free, see main.tf)."
  default     = null
}

variable "deletion_protection" {
  type        = bool
  description = "Protect the tables against deletion (recommended in production)."
  default     = false
}

variable "tags" {
  type        = map(string)
  description = "Tags applied to both tables."
  default     = {}
}
