# CloudWatch alarms for the tunnel: per function errors, throttles and p99
# duration near the timeout; 5xx answers of the HTTP API; the log alarms the
# functions' metric filters count (modules/function, log_alarms). Missing data (an
# idle tunnel) is not breaching. Actions go to this module's SNS topic, whose
# email subscriptions are var.emails (each address confirms once), or to
# var.sns_topic_arn when the operator has a topic of their own.
#
# Cost: each alarm is billed per month (about $0.10 standard resolution),
# which is the one thing here that is not free while idle (an SNS topic
# costs nothing until it publishes; the first 1,000 emails a month are
# free): modules/tunnel creates this module only when alarms_enabled is true.

locals {
  own_topic = var.sns_topic_arn == null
  topic_arn = local.own_topic ? aws_sns_topic.this[0].arn : var.sns_topic_arn
  actions   = [local.topic_arn]
}

# Not encrypted at rest: CloudWatch alarms cannot publish to a topic
# encrypted with the AWS managed SNS key (only with a customer managed key
# whose policy lets cloudwatch.amazonaws.com use it, $1/month while idle),
# and the notifications carry alarm names and states, no data.
resource "aws_sns_topic" "this" {
  #checkov:skip=CKV_AWS_26:CloudWatch alarms cannot publish to a topic encrypted with the AWS managed SNS key; a customer managed key costs $1/month while idle for notifications that hold only alarm names and states.
  count = local.own_topic ? 1 : 0

  name = "${var.name_prefix}-alarms"
  tags = var.tags
}

# Only CloudWatch alarms of this account may publish to the topic.
data "aws_iam_policy_document" "topic" {
  count = local.own_topic ? 1 : 0

  statement {
    sid       = "CloudWatchAlarms"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.this[0].arn]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.this.account_id]
    }
  }
}

data "aws_caller_identity" "this" {}

resource "aws_sns_topic_policy" "this" {
  count = local.own_topic ? 1 : 0

  arn    = aws_sns_topic.this[0].arn
  policy = data.aws_iam_policy_document.topic[0].json
}

resource "aws_sns_topic_subscription" "email" {
  for_each = local.own_topic ? toset(var.emails) : toset([])

  topic_arn = aws_sns_topic.this[0].arn
  protocol  = "email"
  endpoint  = each.value
}

resource "aws_cloudwatch_metric_alarm" "errors" {
  for_each = var.functions

  alarm_name          = "${each.value.function_name}-errors"
  alarm_description   = "The ${each.key} function returned errors (crashes, init failures, timeouts)."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = each.value.function_name }
  statistic           = "Sum"
  period              = var.period_seconds
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.errors_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "throttles" {
  for_each = var.functions

  alarm_name          = "${each.value.function_name}-throttles"
  alarm_description   = "The ${each.key} function was throttled (concurrency limit reached)."
  namespace           = "AWS/Lambda"
  metric_name         = "Throttles"
  dimensions          = { FunctionName = each.value.function_name }
  statistic           = "Sum"
  period              = var.period_seconds
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
  tags                = var.tags
}

# p99 Duration above duration_ratio (80 %) of the timeout: the function is
# about to time out (for forwarding: agents answering too slowly).
resource "aws_cloudwatch_metric_alarm" "duration" {
  for_each = var.functions

  alarm_name          = "${each.value.function_name}-duration-near-timeout"
  alarm_description   = "p99 duration of the ${each.key} function is above ${floor(var.duration_ratio * 100)} % of its ${each.value.timeout_seconds} s timeout."
  namespace           = "AWS/Lambda"
  metric_name         = "Duration"
  dimensions          = { FunctionName = each.value.function_name }
  extended_statistic  = "p99"
  period              = var.period_seconds
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = each.value.timeout_seconds * 1000 * var.duration_ratio
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "http_5xx" {
  alarm_name          = "${var.name_prefix}-http-api-5xx"
  alarm_description   = "The public HTTP API answered 5xx (502 stale agent, 503 integration timeout, 500 function error)."
  namespace           = "AWS/ApiGateway"
  metric_name         = "5xx"
  dimensions          = { ApiId = var.http_api_id, Stage = var.http_api_stage }
  statistic           = "Sum"
  period              = var.period_seconds
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.http_5xx_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
  tags                = var.tags
}

# A log line with an `alarm` field is a deployment error no retry fixes, e.g.
# manage_connections_forbidden: @connections answered 403, the function's
# role lacks execute-api:ManageConnections (visitors get a 502).
resource "aws_cloudwatch_metric_alarm" "log" {
  for_each = toset(var.log_alarms)

  alarm_name          = "${var.name_prefix}-${each.value}"
  alarm_description   = "A function logged alarm=${each.value} (see handlers/README.md, \"Alarms in the logs\")."
  namespace           = var.metric_namespace
  metric_name         = each.value
  statistic           = "Sum"
  period              = var.period_seconds
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
  tags                = var.tags
}
