output "api_id" {
  description = "ID of the WebSocket API."
  value       = aws_apigatewayv2_api.this.id
}

output "stage_name" {
  description = "Name of the stage."
  value       = var.stage_name
}

output "websocket_url" {
  description = "URL agents connect to: wss://{api-id}.execute-api.{region}.amazonaws.com/{stage}."
  value       = "${aws_apigatewayv2_api.this.api_endpoint}/${var.stage_name}"
}

output "management_endpoint" {
  description = "Management (@connections) endpoint including the stage: https://{api-id}.execute-api.{region}.amazonaws.com/{stage} (WEBSOCKET_API_ENDPOINT)."
  value       = "${replace(aws_apigatewayv2_api.this.api_endpoint, "wss://", "https://")}/${var.stage_name}"
}

output "execution_arn" {
  description = "Execution ARN of the API (without stage); ManageConnections is granted on <execution_arn>/<stage>/POST/@connections/*."
  value       = aws_apigatewayv2_api.this.execution_arn
}
