variable "domain_name" {
  type        = string
  description = "Public domain of the tunnels, e.g. \"tunnel.example.com\": tunnels are https://<subdomain>.tunnel.example.com (the apex is not mapped)."
  nullable    = false
}

variable "route53_zone_id" {
  type        = string
  description = "ID of the Route 53 hosted zone that holds domain_name (validation and alias records go there)."
  nullable    = false
}

variable "http_api_id" {
  type        = string
  description = "ID of the HTTP API the domain maps to."
}

variable "http_api_stage" {
  type        = string
  description = "Stage of the HTTP API the domain maps to: the stage resource's name (module.http_api.stage_name), so the mapping is created after the stage."
}

variable "tags" {
  type        = map(string)
  description = "Tags applied to the certificate and the custom domains."
  default     = {}
}
