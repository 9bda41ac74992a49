# The whole tunnel: tables, the bodies bucket, four functions, the agents'
# WebSocket API, the visitors' HTTP API, an optional custom domain and
# optional alarms.
#
# Every name the code relies on comes from docs/contracts.md, whose Rust
# mirror is handlers::manifest; terraform/checks evaluates the locals below
# and the module arguments and compares them with the manifest:
#   - local.function_environment: the variables each function reads;
#   - local.dynamodb_grants, local.s3_grants and local.manage_connections:
#     its IAM (and module.bodies' object_role_arns, who may sign URLs);
#   - local.websocket_routes and local.http_route_function: its routes.
#
# Dependency direction (no cycle): functions -> tables and the bucket, and
# functions -> the APIs' ids (endpoints, execution ARN); the APIs ->
# functions only through their integrations and invoke permissions; the
# bucket's policy -> the roles of the functions that use it.

locals {
  tags = merge({ Project = "serverless-tunnel", Tunnel = var.name }, var.tags)

  # Host routing (var.routing = "host") needs the custom domain and serves
  # tunnels there only: https://{subdomain}.DOMAIN, one browser origin each.
  # Path routing ("path", no domain) serves them by path on the HTTP API's
  # execute-api host, one origin for all: https://{api-id}.execute-api.{region}.amazonaws.com/{subdomain}/...
  # The "routing" output refuses any other combination at plan time.
  custom_domain       = var.domain_name != null
  public_domain       = local.custom_domain ? var.domain_name : module.http_api.host
  public_url_template = local.custom_domain ? "https://{subdomain}.${var.domain_name}" : "${module.http_api.endpoint}/{subdomain}"

  # Size and timeout per function (the key is the binary under
  # handlers/src/bin and handlers::manifest::Function::name).
  functions = {
    connect = {
      description = "WebSocket $connect: authenticates the agent and allocates its subdomain"
      memory_size = var.memory_size
      timeout     = var.timeout_seconds
    }
    disconnect = {
      description = "WebSocket $disconnect: releases the subdomain and deletes the connection"
      memory_size = var.memory_size
      timeout     = var.timeout_seconds
    }
    forwarding = {
      description = "HTTP API $default: forwards a visitor's request to its agent and waits for the answer"
      memory_size = var.forwarding_memory_size
      # Above the REQUEST_TIMEOUT_MS wait (25 s), below the HTTP API's 30 s.
      timeout = var.forwarding_timeout_seconds
    }
    response = {
      description = "WebSocket $default: agent messages (ready, responses, heartbeats)"
      memory_size = var.memory_size
      timeout     = var.timeout_seconds
    }
  }

  # Read by every function (handlers::manifest::COMMON_OPTIONAL_ENV).
  common_environment = {
    LOG_FORMAT = var.log_format
    RUST_LOG   = var.log_level
  }

  # Exactly the variables each function reads (docs/contracts.md).
  function_environment = {
    connect = merge(local.common_environment, {
      CONNECTIONS_TABLE_NAME = module.tables.connections_table_name
      DOMAIN_NAME            = local.public_domain
      PUBLIC_URL_TEMPLATE    = local.public_url_template
      # Agent tokens (agent/README.md "Authentication"); the secret itself
      # is never in Terraform: only the parameter's name.
      AUTH_MODE             = var.auth_mode
      AUTH_SECRET_PARAMETER = module.auth_secret.parameter_name
    })
    disconnect = merge(local.common_environment, {
      CONNECTIONS_TABLE_NAME = module.tables.connections_table_name
    })
    forwarding = merge(local.common_environment, {
      CONNECTIONS_TABLE_NAME      = module.tables.connections_table_name
      PENDING_REQUESTS_TABLE_NAME = module.tables.pending_table_name
      DOMAIN_NAME                 = local.public_domain
      ROUTING                     = var.routing
      WEBSOCKET_API_ENDPOINT      = module.websocket_api.management_endpoint
      REQUEST_TIMEOUT_MS          = tostring(var.request_timeout_ms)
      BODIES_BUCKET_NAME          = module.bodies.bucket_name
    })
    response = merge(local.common_environment, {
      CONNECTIONS_TABLE_NAME      = module.tables.connections_table_name
      PENDING_REQUESTS_TABLE_NAME = module.tables.pending_table_name
      WEBSOCKET_API_ENDPOINT      = module.websocket_api.management_endpoint
    })
  }

  # Exactly the DynamoDB actions each function's code calls
  # (docs/contracts.md "IAM"), on a table (index = null) or one of its indexes.
  dynamodb_grants = {
    connect = [
      # UpdateItem: resume a claim, release it if the connection cannot be stored.
      { table = "connections", index = null, actions = ["PutItem", "UpdateItem"] },
    ]
    disconnect = [
      # UpdateItem: release the claim for the resume window.
      { table = "connections", index = null, actions = ["GetItem", "UpdateItem", "DeleteItem"] },
    ]
    forwarding = [
      # UpdateItem: release a stale connection's claim (410) for the resume window.
      { table = "connections", index = null, actions = ["GetItem", "UpdateItem", "DeleteItem"] },
      # GetItem: polling for the answer (it writes nothing to this table).
      { table = "pending", index = null, actions = ["GetItem"] },
    ]
    response = [
      # UpdateItem: offer the agent its next resume token at `ready` (hash only).
      { table = "connections", index = null, actions = ["GetItem", "UpdateItem"] },
      # PutItem: the answer, once (handlers/src/store/pending.rs).
      { table = "pending", index = null, actions = ["PutItem"] },
    ]
  }

  # Exactly the S3 actions each function's code calls on the objects of a
  # bucket (docs/contracts.md "IAM"). A presigned URL acts with its signer's
  # permissions: these are also all the URLs it hands out can do.
  s3_grants = {
    connect    = []
    disconnect = []
    # PutObject: a large request body, and the agent's presigned PUT of a
    # large answer; GetObject: the answer, and the agent's presigned GET of
    # the request body; DeleteObject: both, once used.
    forwarding = [
      { bucket = "bodies", actions = ["PutObject", "GetObject", "DeleteObject"] },
    ]
    response = []
  }

  bucket_arns = {
    bodies = module.bodies.bucket_arn
  }

  # The @connections calls of each function, by the HTTP method the IAM
  # resource names (execute-api:ManageConnections on
  # {api}/{stage}/{METHOD}/@connections/*): POST is PostToConnection, GET is
  # GetConnection (forwarding asks whether a silent agent is still connected).
  manage_connections = {
    connect    = []
    disconnect = []
    forwarding = ["POST", "GET"]
    response   = ["POST"]
  }

  # The `alarm` values each function's JSON log lines may carry, each counted
  # by a metric filter on its log group and watched by modules/alarms:
  # manage_connections_forbidden (handlers::notifier::FORBIDDEN_ALARM) is a
  # 403 from @connections, for every function that calls it.
  log_alarms = {
    connect    = []
    disconnect = []
    forwarding = [local.forbidden_alarm]
    response   = [local.forbidden_alarm]
  }
  forbidden_alarm  = "manage_connections_forbidden"
  metric_namespace = "ServerlessTunnel/${var.name}"

  # Which functions read the auth secret (ssm:GetParameter on its parameter;
  # the AWS managed aws/ssm key needs no kms:Decrypt grant).
  reads_auth_secret = {
    connect    = true
    disconnect = false
    forwarding = false
    response   = false
  }

  table_arns = {
    connections = module.tables.connections_table_arn
    pending     = module.tables.pending_table_arn
  }

  # The @connections of this API's stage only; the method is appended per
  # function (no DELETE for anyone).
  stage_execution_arn = "${module.websocket_api.execution_arn}/${var.websocket_stage_name}"

  # The IAM statements of each function, built from the maps above.
  policy_statements = {
    for name, grants in local.dynamodb_grants : name => concat(
      [
        for grant in grants : {
          sid       = grant.index == null ? "DynamoDb${title(grant.table)}" : "DynamoDb${title(grant.table)}Index"
          actions   = [for action in grant.actions : "dynamodb:${action}"]
          resources = [grant.index == null ? local.table_arns[grant.table] : "${local.table_arns[grant.table]}/index/${grant.index}"]
        }
      ],
      [
        for grant in local.s3_grants[name] : {
          sid       = "S3${title(grant.bucket)}Objects"
          actions   = [for action in grant.actions : "s3:${action}"]
          resources = ["${local.bucket_arns[grant.bucket]}/*"]
        }
      ],
      [
        for method in local.manage_connections[name] : {
          sid       = "ManageConnections${method}"
          actions   = ["execute-api:ManageConnections"]
          resources = ["${local.stage_execution_arn}/${method}/@connections/*"]
        }
      ],
      local.reads_auth_secret[name] ? [
        {
          sid       = "ReadAuthSecret"
          actions   = ["ssm:GetParameter"]
          resources = [module.auth_secret.parameter_arn]
        }
      ] : []
    )
  }

  # Routes (docs/contracts.md "Routes").
  websocket_routes = {
    "$connect"    = "connect"
    "$disconnect" = "disconnect"
    "$default"    = "response"
  }
  http_route_function = "forwarding"
}

module "auth_secret" {
  source = "../auth_secret"

  name = "/${var.name}/auth-secret"
  tags = local.tags
}

module "tables" {
  source = "../tables"

  name_prefix            = var.name
  point_in_time_recovery = var.point_in_time_recovery
  kms_key_arn            = var.dynamodb_kms_key_arn
  deletion_protection    = var.deletion_protection
  tags                   = local.tags
}

module "bodies" {
  source = "../bodies"

  name_prefix = var.name
  # Only the roles of the functions that use the bucket may read or write
  # its objects, so only they can sign a working presigned URL.
  object_role_arns = [
    for name, grants in local.s3_grants : module.function[name].role_arn if length(grants) > 0
  ]
  tags = local.tags
}

module "function" {
  source   = "../function"
  for_each = local.functions

  name                 = "${var.name}-${each.key}"
  description          = each.value.description
  package_path         = "${var.lambda_artifacts_dir}/${each.key}/bootstrap.zip"
  memory_size          = each.value.memory_size
  timeout              = each.value.timeout
  environment          = local.function_environment[each.key]
  policy_statements    = local.policy_statements[each.key]
  reserved_concurrency = lookup(var.reserved_concurrency, each.key, null)
  log_alarms           = local.log_alarms[each.key]
  metric_namespace     = local.metric_namespace
  tracing_mode         = var.tracing_mode
  log_retention_days   = var.log_retention_days
  permissions_boundary = var.permissions_boundary
  tags                 = local.tags
}

module "websocket_api" {
  source = "../websocket_api"

  name       = "${var.name}-agents"
  stage_name = var.websocket_stage_name
  routes = {
    for route, function in local.websocket_routes : route => {
      function_name = module.function[function].function_name
      invoke_arn    = module.function[function].invoke_arn
    }
  }
  throttling_burst_limit = var.websocket_throttling_burst_limit
  throttling_rate_limit  = var.websocket_throttling_rate_limit
  access_logs_enabled    = var.websocket_access_logs_enabled
  log_retention_days     = var.log_retention_days
  tags                   = local.tags
}

module "http_api" {
  source = "../http_api"

  name = "${var.name}-public"
  function = {
    function_name = module.function[local.http_route_function].function_name
    invoke_arn    = module.function[local.http_route_function].invoke_arn
  }
  throttling_burst_limit = var.http_throttling_burst_limit
  throttling_rate_limit  = var.http_throttling_rate_limit
  # With host routing the custom domain is the only way in: on the
  # execute-api host, every tunnel would share one origin again.
  disable_execute_api_endpoint = var.routing == "host"
  log_retention_days           = var.log_retention_days
  tags                         = local.tags
}

module "domain" {
  source = "../domain"
  count  = local.custom_domain ? 1 : 0

  domain_name     = var.domain_name
  route53_zone_id = var.route53_zone_id
  http_api_id     = module.http_api.api_id
  http_api_stage  = module.http_api.stage_name
  tags            = local.tags
}

module "alarms" {
  source = "../alarms"
  count  = var.alarms_enabled ? 1 : 0

  name_prefix = var.name
  functions = {
    for key, function in module.function : key => {
      function_name   = function.function_name
      timeout_seconds = function.timeout
    }
  }
  log_alarms       = [local.forbidden_alarm]
  metric_namespace = local.metric_namespace
  http_api_id      = module.http_api.api_id
  http_api_stage   = module.http_api.stage_name
  sns_topic_arn    = var.alarm_sns_topic_arn
  emails           = var.alarm_emails
  tags             = local.tags
}

# Alarms nobody receives are a cost without a use.
check "alarms_notify_someone" {
  assert {
    condition     = !var.alarms_enabled || length(var.alarm_emails) > 0 || var.alarm_sns_topic_arn != null
    error_message = "alarms_enabled is true but the alarms notify nobody: set alarm_emails (or alarm_sns_topic_arn) in this environment's terraform.tfvars."
  }
}

# Reserved concurrency against the account's quota, at plan time, before
# anything is created: Lambda keeps 100 executions unreserved, so the
# reservations need a quota of at least their sum + 100. Without this, an
# account with a small quota (new accounts may have 10) fails at
# PutFunctionConcurrency after the functions were created, leaving them
# tainted. Read only when something is reserved (it needs
# servicequotas:GetServiceQuota). It cannot see reservations other
# functions of the account already hold: terraform/README.md, "Limits".
locals {
  reserved_total = sum(concat([0], values(var.reserved_concurrency)))
  # Executions Lambda never lets reservations take.
  lambda_unreserved_minimum = 100
}

data "aws_servicequotas_service_quota" "lambda_concurrency" {
  count = local.reserved_total > 0 ? 1 : 0

  service_code = "lambda"
  quota_code   = "L-B99A9384" # Concurrent executions

  lifecycle {
    postcondition {
      condition     = self.value >= local.reserved_total + local.lambda_unreserved_minimum
      error_message = "reserved_concurrency reserves ${local.reserved_total} concurrent executions, but this account's Lambda quota \"Concurrent executions\" (L-B99A9384) in this region is ${self.value}, and Lambda keeps ${local.lambda_unreserved_minimum} unreserved: request a quota of at least ${local.reserved_total + local.lambda_unreserved_minimum} (aws service-quotas request-service-quota-increase --service-code lambda --quota-code L-B99A9384 --desired-value ${local.reserved_total + local.lambda_unreserved_minimum}), or set reserved_concurrency = {} in this environment's terraform.tfvars. Nothing was created."
    }
  }
}

# The forwarding function must outlive its wait for the agent, and the HTTP
# API must outlive the function (30 s), or visitors get a bare 503.
check "forwarding_timeout" {
  assert {
    condition     = var.forwarding_timeout_seconds * 1000 > var.request_timeout_ms && var.forwarding_timeout_seconds < 30
    error_message = "forwarding_timeout_seconds (${var.forwarding_timeout_seconds}) must exceed request_timeout_ms (${var.request_timeout_ms} ms) and stay below the HTTP API's 30 s integration timeout."
  }
}
