# One Lambda function of the tunnel: the cargo-lambda zip, its own log group,
# its own role. The role may write to its own log group and do exactly what
# `policy_statements` lists (built per function in modules/tunnel from
# handlers::manifest, checked by terraform/checks) and nothing else.
#
# X-Ray: tracing is PassThrough by default. The handlers do not emit X-Ray
# segments (no X-Ray SDK in the Rust runtime); their JSON logs carry the API
# Gateway request id and the tunnel request id, which is what correlates a
# visitor's request across forwarding -> agent -> response. `tracing_mode =
# "Active"` still records the Lambda service segments (cold starts, duration)
# and then grants the two X-Ray write actions it needs.

locals {
  tracing_active = var.tracing_mode == "Active"
}

resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_158:CloudWatch Logs encrypts at rest with its own key; the handlers never log bodies or tokens, so a CMK adds cost and no protection.
  #checkov:skip=CKV_AWS_338:Operational logs of an ephemeral tunnel; retention is a variable (default 14 days) to keep storage cost near zero.
  name              = "/aws/lambda/${var.name}"
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

# One metric per `alarm` value the code logs (a JSON field at the top level
# of a log line, e.g. alarm="manage_connections_forbidden" for a 403 from
# @connections: handlers::notifier): each matching line adds 1. Metric
# filters are free; the alarms watching them are in modules/alarms.
resource "aws_cloudwatch_log_metric_filter" "alarm" {
  for_each = toset(var.log_alarms)

  name           = "${var.name}-${each.value}"
  log_group_name = aws_cloudwatch_log_group.this.name
  pattern        = "{ $.alarm = \"${each.value}\" }"

  metric_transformation {
    name      = each.value
    namespace = var.metric_namespace
    value     = "1"
    unit      = "Count"
  }
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "this" {
  name                 = var.name
  description          = "Execution role of the ${var.name} Lambda function"
  assume_role_policy   = data.aws_iam_policy_document.assume.json
  permissions_boundary = var.permissions_boundary
  tags                 = var.tags
}

# Basic logging, on this function's own log group only (the log group is
# created here, so no logs:CreateLogGroup).
data "aws_iam_policy_document" "logs" {
  statement {
    sid       = "WriteOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this.arn}:*"]
  }
}

resource "aws_iam_role_policy" "logs" {
  name   = "logs"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.logs.json
}

# What the code calls: DynamoDB actions on its tables/indexes and, for the
# functions that post to agents, execute-api:ManageConnections.
data "aws_iam_policy_document" "access" {
  dynamic "statement" {
    for_each = var.policy_statements
    content {
      sid       = statement.value.sid
      actions   = statement.value.actions
      resources = statement.value.resources
    }
  }
}

resource "aws_iam_role_policy" "access" {
  count  = length(var.policy_statements) > 0 ? 1 : 0
  name   = "access"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.access.json
}

data "aws_iam_policy_document" "tracing" {
  statement {
    #checkov:skip=CKV_AWS_111:X-Ray write actions do not support resource-level permissions.
    #checkov:skip=CKV_AWS_356:X-Ray write actions do not support resource-level permissions.
    sid       = "WriteTraces"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "tracing" {
  count  = local.tracing_active ? 1 : 0
  name   = "tracing"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.tracing.json
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_50:X-Ray is a variable (tracing_mode), PassThrough by default: the Rust handlers emit no segments, logs carry the correlation ids (see top of file).
  #checkov:skip=CKV_AWS_116:Invoked synchronously by API Gateway only; a dead-letter queue applies to asynchronous invocations.
  #checkov:skip=CKV_AWS_117:Reaches only public AWS endpoints (DynamoDB, API Gateway); a VPC would need NAT or endpoints, which cost money while idle.
  #checkov:skip=CKV_AWS_173:The environment holds only table names and endpoints, no secrets; the default Lambda encryption at rest applies.
  #checkov:skip=CKV_AWS_272:Code signing needs a signing profile and a signed S3 artifact; the zip is built locally by cargo lambda and deployed from the operator's machine.
  #checkov:skip=CKV_AWS_115:Reserved concurrency is a variable (reserved_concurrency): the tunnel module reserves for every function by default, and an account with a small concurrency quota must be able to set none.
  function_name    = var.name
  description      = var.description
  role             = aws_iam_role.this.arn
  filename         = var.package_path
  source_code_hash = filebase64sha256(var.package_path)
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = ["arm64"]
  memory_size      = var.memory_size
  timeout          = var.timeout

  reserved_concurrent_executions = var.reserved_concurrency

  environment {
    variables = var.environment
  }

  tracing_config {
    mode = var.tracing_mode
  }

  tags = var.tags

  # The log group (/aws/lambda/<name>, the default Lambda writes to) and the
  # logging permission must exist before the first invocation, or the first
  # logs are lost or land in a log group Terraform does not manage.
  depends_on = [aws_cloudwatch_log_group.this, aws_iam_role_policy.logs]
}
