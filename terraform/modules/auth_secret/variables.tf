variable "name" {
  type        = string
  description = "SSM parameter name, e.g. /serverless-tunnel/dev/auth-secret."
}

variable "tags" {
  type        = map(string)
  default     = {}
  description = "Tags for the parameter."
}
