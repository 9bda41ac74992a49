output "websocket_url" {
  description = "URL the agent connects to: tunnel 3000 --endpoint <websocket_url>."
  value       = module.websocket_api.websocket_url
}

output "management_endpoint" {
  description = "WebSocket management endpoint with the stage (WEBSOCKET_API_ENDPOINT)."
  value       = module.websocket_api.management_endpoint
}

output "http_api_endpoint" {
  description = "Default execute-api URL of the public HTTP API."
  value       = module.http_api.endpoint
}

output "routing" {
  description = "How tunnels are reached: host (https://<subdomain>.DOMAIN) or path (<http api endpoint>/<subdomain>)."
  value       = var.routing

  # Host routing needs the wildcard domain; path routing serves on the
  # execute-api URL only (a custom domain would map its apex, putting every
  # tunnel on one origin under the operator's own domain).
  precondition {
    condition     = (var.routing == "host") == (var.domain_name != null)
    error_message = "routing = \"host\" needs domain_name (and route53_zone_id); routing = \"path\" takes no domain_name. Path routing puts every tunnel on ONE browser origin: choose it explicitly, for a single user (see terraform/README.md, Routing)."
  }
}

output "public_base_url" {
  description = "Path routing: where tunnels are served, <http api endpoint>/<subdomain>. Host routing: https://DOMAIN, whose subdomains are the tunnels (the apex itself serves nothing)."
  value       = local.custom_domain ? "https://${var.domain_name}" : module.http_api.endpoint
}

output "public_url_template" {
  description = "Public URL of a tunnel, with the {subdomain} placeholder (PUBLIC_URL_TEMPLATE)."
  value       = local.public_url_template
}

output "connections_table_name" {
  description = "Name of the connections table."
  value       = module.tables.connections_table_name
}

output "pending_requests_table_name" {
  description = "Name of the pending requests table."
  value       = module.tables.pending_table_name
}

output "bodies_bucket_name" {
  description = "Name of the bucket holding bodies too large for a WebSocket message, for seconds."
  value       = module.bodies.bucket_name
}

output "function_names" {
  description = "Function names by key (connect, disconnect, forwarding, response)."
  value       = { for key, function in module.function : key => function.function_name }
}

output "auth_secret_parameter" {
  description = "SSM parameter holding the agent-token secret: set it with aws ssm put-parameter --overwrite, read it with aws ssm get-parameter --with-decryption."
  value       = module.auth_secret.parameter_name
}

output "alarm_topic_arn" {
  description = "SNS topic the alarms notify (null without alarms_enabled): subscribe more recipients with aws sns subscribe."
  value       = var.alarms_enabled ? module.alarms[0].sns_topic_arn : null
}
