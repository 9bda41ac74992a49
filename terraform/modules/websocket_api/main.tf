# The agents' side: a WebSocket API whose routes invoke the connect,
# disconnect and response functions (docs/contracts.md "Routes").
#
# Nothing here references the functions except through var.routes (the
# integrations and permissions), so the functions' environment may use this
# API's id and stage (WEBSOCKET_API_ENDPOINT) without a dependency cycle:
# the endpoint outputs derive from aws_apigatewayv2_api.this and
# var.stage_name only.

resource "aws_apigatewayv2_api" "this" {
  name                       = var.name
  description                = "Serverless tunnel: agents connect here"
  protocol_type              = "WEBSOCKET"
  route_selection_expression = "$request.body.action"
  tags                       = var.tags
}

resource "aws_apigatewayv2_integration" "this" {
  for_each = var.routes

  api_id                    = aws_apigatewayv2_api.this.id
  integration_type          = "AWS_PROXY"
  integration_method        = "POST"
  integration_uri           = each.value.invoke_arn
  content_handling_strategy = "CONVERT_TO_TEXT"
  passthrough_behavior      = "WHEN_NO_MATCH"
}

resource "aws_apigatewayv2_route" "this" {
  #checkov:skip=CKV_AWS_309:No authorizer by design of the current contract (docs/contracts.md defines none); $disconnect/$default exist only on an accepted connection. See README "Security": agent authentication is not implemented yet.
  for_each = var.routes

  api_id    = aws_apigatewayv2_api.this.id
  route_key = each.key
  target    = "integrations/${aws_apigatewayv2_integration.this[each.key].id}"
}

resource "aws_cloudwatch_log_group" "access" {
  #checkov:skip=CKV_AWS_158:Access logs hold request metadata only (no bodies, no tokens); CloudWatch Logs' own encryption suffices.
  #checkov:skip=CKV_AWS_338:Operational logs of an ephemeral tunnel; retention is a variable to keep storage cost near zero.
  count = var.access_logs_enabled ? 1 : 0

  name              = "/aws/apigateway/${var.name}/${var.stage_name}"
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

resource "aws_apigatewayv2_stage" "this" {
  #checkov:skip=CKV_AWS_76:Access logs are a variable (access_logs_enabled): WebSocket API logging needs the account-wide API Gateway CloudWatch role (aws_api_gateway_account), an account singleton this module must not own.
  #checkov:skip=CKV_AWS_95:Same as CKV_AWS_76: WebSocket access logs are enabled by access_logs_enabled once the account has the API Gateway CloudWatch role.
  #checkov:skip=CKV2_AWS_51:Client certificates (mTLS) need a custom domain and a CA per operator; agent authentication belongs on $connect (see README "Security").
  api_id      = aws_apigatewayv2_api.this.id
  name        = var.stage_name
  auto_deploy = true

  default_route_settings {
    throttling_burst_limit = var.throttling_burst_limit
    throttling_rate_limit  = var.throttling_rate_limit
  }

  dynamic "access_log_settings" {
    for_each = var.access_logs_enabled ? [1] : []
    content {
      destination_arn = aws_cloudwatch_log_group.access[0].arn
      format = jsonencode({
        requestId    = "$context.requestId"
        connectionId = "$context.connectionId"
        eventType    = "$context.eventType"
        routeKey     = "$context.routeKey"
        status       = "$context.status"
        ip           = "$context.identity.sourceIp"
        requestTime  = "$context.requestTime"
        error        = "$context.error.message"
        integration  = "$context.integration.error"
      })
    }
  }

  tags = var.tags
}

# One permission per route, i.e. per function: invoked by this API, this
# stage and this route only.
resource "aws_lambda_permission" "this" {
  for_each = var.routes

  statement_id  = "AllowWebSocket${title(trimprefix(each.key, "$"))}"
  action        = "lambda:InvokeFunction"
  function_name = each.value.function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.this.execution_arn}/${var.stage_name}/${each.key}"
}
