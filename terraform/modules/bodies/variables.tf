variable "name_prefix" {
  type        = string
  description = "Prefix of the bucket name (a random suffix keeps it globally unique), e.g. \"tunnel-dev\"."
}

variable "object_role_arns" {
  type        = list(string)
  description = "IAM roles that may read and write objects, and so sign working presigned URLs: the forwarding function's (handlers::manifest, functions with S3 actions)."

  validation {
    condition     = length(var.object_role_arns) > 0
    error_message = "object_role_arns must name at least the forwarding function's role."
  }
}

variable "expiration_days" {
  type        = number
  description = "Days after which the lifecycle rule deletes an object forwarding left behind (1 is S3's shortest)."
  default     = 1

  validation {
    condition     = var.expiration_days >= 1 && var.expiration_days <= 7
    error_message = "expiration_days must be between 1 and 7: bodies are needed for seconds only."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags for the bucket."
  default     = {}
}
