# The visitors' side: an HTTP API whose catch-all $default route invokes the
# forwarding function with payload format 2.0 (raw query string, cookies,
# lowercased headers: see /docs/aws-semantics.md). The $default stage keeps
# the stage name out of rawPath, so path routing is /{subdomain}/... exactly.
#
# The integration times out at 30 s (API Gateway's maximum for HTTP APIs);
# the forwarding function waits at most REQUEST_TIMEOUT_MS (25 s) for the
# agent and its own timeout sits in between (29 s by default).

resource "aws_apigatewayv2_api" "this" {
  name          = var.name
  description   = "Serverless tunnel: public traffic to the agents"
  protocol_type = "HTTP"
  # Path routing serves tunnels on https://{api-id}.execute-api...; host
  # routing turns it off (modules/tunnel), so the custom domain's
  # one-origin-per-tunnel is the only way in.
  disable_execute_api_endpoint = var.disable_execute_api_endpoint
  tags                         = var.tags
}

resource "aws_apigatewayv2_integration" "this" {
  api_id                 = aws_apigatewayv2_api.this.id
  integration_type       = "AWS_PROXY"
  integration_method     = "POST"
  integration_uri        = var.function.invoke_arn
  payload_format_version = "2.0"
  timeout_milliseconds   = 30000
}

resource "aws_apigatewayv2_route" "this" {
  #checkov:skip=CKV_AWS_309:This is a public tunnel: visitors are anonymous by design, authorization is the business of the exposed service.
  api_id    = aws_apigatewayv2_api.this.id
  route_key = "$default"
  target    = "integrations/${aws_apigatewayv2_integration.this.id}"
}

resource "aws_cloudwatch_log_group" "access" {
  #checkov:skip=CKV_AWS_158:Access logs hold request metadata only (no bodies, no query strings, no tokens); CloudWatch Logs' own encryption suffices.
  #checkov:skip=CKV_AWS_338:Operational logs of an ephemeral tunnel; retention is a variable to keep storage cost near zero.
  name              = "/aws/apigateway/${var.name}"
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

resource "aws_apigatewayv2_stage" "this" {
  api_id      = aws_apigatewayv2_api.this.id
  name        = "$default"
  auto_deploy = true

  default_route_settings {
    throttling_burst_limit = var.throttling_burst_limit
    throttling_rate_limit  = var.throttling_rate_limit
  }

  # $context.path has no query string: visitors' query parameters (which may
  # carry secrets) stay out of the logs.
  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.access.arn
    format = jsonencode({
      requestId          = "$context.requestId"
      ip                 = "$context.identity.sourceIp"
      requestTime        = "$context.requestTime"
      httpMethod         = "$context.httpMethod"
      domainName         = "$context.domainName"
      path               = "$context.path"
      routeKey           = "$context.routeKey"
      protocol           = "$context.protocol"
      status             = "$context.status"
      responseLength     = "$context.responseLength"
      integrationStatus  = "$context.integrationStatus"
      integrationLatency = "$context.integrationLatency"
      integrationError   = "$context.integrationErrorMessage"
    })
  }

  tags = var.tags
}

# The forwarding function may be invoked by this API's $default stage and
# $default route only.
resource "aws_lambda_permission" "this" {
  statement_id  = "AllowHttpApiDefaultRoute"
  action        = "lambda:InvokeFunction"
  function_name = var.function.function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.this.execution_arn}/${aws_apigatewayv2_stage.this.name}/$default"
}
