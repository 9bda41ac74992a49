output "websocket_url" {
  description = "Agents connect here: tunnel 3000 --endpoint <websocket_url>."
  value       = module.tunnel.websocket_url
}

output "management_endpoint" {
  description = "WebSocket management endpoint (with the stage) the functions post to."
  value       = module.tunnel.management_endpoint
}

output "routing" {
  description = "host (tunnels at https://<subdomain>.DOMAIN) or path (tunnels at <public_base_url>/<subdomain>)."
  value       = module.tunnel.routing
}

output "public_base_url" {
  description = "Where tunnels are served (https://<subdomain>.DOMAIN, or <this>/<subdomain> without a custom domain)."
  value       = module.tunnel.public_base_url
}

output "public_url_template" {
  description = "Public URL of a tunnel, {subdomain} being its subdomain."
  value       = module.tunnel.public_url_template
}

output "connections_table_name" {
  description = "Name of the connections table."
  value       = module.tunnel.connections_table_name
}

output "pending_requests_table_name" {
  description = "Name of the pending requests table."
  value       = module.tunnel.pending_requests_table_name
}

output "bodies_bucket_name" {
  description = "Name of the private bucket holding bodies too large for a WebSocket message (objects expire after a day)."
  value       = module.tunnel.bodies_bucket_name
}

output "function_names" {
  description = "Lambda function names by key."
  value       = module.tunnel.function_names
}

output "auth_secret_parameter" {
  description = "SSM parameter of the agent-token secret (aws ssm put-parameter --overwrite to set it; tunnel token issue to mint tokens)."
  value       = module.tunnel.auth_secret_parameter
}

output "alarm_topic_arn" {
  description = "SNS topic the alarms notify (null without alarms_enabled)."
  value       = module.tunnel.alarm_topic_arn
}
