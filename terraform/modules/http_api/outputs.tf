output "api_id" {
  description = "ID of the HTTP API."
  value       = aws_apigatewayv2_api.this.id
}

output "stage_name" {
  description = "Name of the stage ($default), from the stage resource: whatever maps or watches it (the custom domain, the alarms) waits for the stage to exist."
  value       = aws_apigatewayv2_stage.this.name
}

output "endpoint" {
  description = "Base URL of the HTTP API: https://{api-id}.execute-api.{region}.amazonaws.com (the $default stage adds no path)."
  value       = aws_apigatewayv2_api.this.api_endpoint
}

output "host" {
  description = "Host of the HTTP API: {api-id}.execute-api.{region}.amazonaws.com (DOMAIN_NAME without a custom domain)."
  value       = trimprefix(aws_apigatewayv2_api.this.api_endpoint, "https://")
}

output "execution_arn" {
  description = "Execution ARN of the API (without stage)."
  value       = aws_apigatewayv2_api.this.execution_arn
}
