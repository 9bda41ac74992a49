//! Each check catches what it claims to: a deliberately broken copy of the
//! real tree must produce a problem that names what is wrong.

use terraform_checks::{Tree, checks};

const TUNNEL: &str = "modules/tunnel/main.tf";
const BODIES: &str = "modules/bodies/main.tf";
const FUNCTION: &str = "modules/function/main.tf";

/// Applies `from` → `to` in `path`, runs `check`, and asserts that one of the
/// problems contains every `expected` fragment.
#[track_caller]
fn detects(path: &str, from: &str, to: &str, check: checks::Check, expected: &[&str]) {
    let tree = Tree::workspace().with_replaced(path, from, to);
    assert_reported(&check(&tree), expected);
}

#[track_caller]
fn assert_reported(problems: &[String], expected: &[&str]) {
    assert!(
        problems
            .iter()
            .any(|problem| expected.iter().all(|fragment| problem.contains(fragment))),
        "expected a problem mentioning {expected:?}, got:\n  - {}",
        problems.join("\n  - ")
    );
}

#[test]
fn a_missing_dynamodb_action() {
    detects(
        TUNNEL,
        r#"{ table = "connections", index = null, actions = ["PutItem", "UpdateItem"] },"#,
        r#"{ table = "connections", index = null, actions = ["PutItem"] },"#,
        checks::function_iam,
        &[
            "function connect cannot call dynamodb:UpdateItem on module.tables.connections_table_arn",
        ],
    );
}

#[test]
fn the_auth_secret_read_granted_to_the_wrong_function_or_missing() {
    detects(
        TUNNEL,
        "    connect    = true\n    disconnect = false\n    forwarding = false\n    response   = false\n  }\n\n  table_arns",
        "    connect    = false\n    disconnect = true\n    forwarding = false\n    response   = false\n  }\n\n  table_arns",
        checks::function_iam,
        &["function connect cannot call ssm:GetParameter on module.auth_secret.parameter_arn"],
    );
}

#[test]
fn the_auth_secret_itself_in_terraform() {
    detects(
        TUNNEL,
        "      AUTH_MODE             = var.auth_mode\n",
        "      AUTH_MODE             = var.auth_mode\n      AUTH_SECRET           = \"hunter2\"\n",
        checks::function_environment,
        &["AUTH_SECRET = \"hunter2\": the secret must not be in Terraform"],
    );
}

#[test]
fn an_extra_dynamodb_action() {
    detects(
        TUNNEL,
        r#"{ table = "connections", index = null, actions = ["GetItem", "UpdateItem"] },"#,
        r#"{ table = "connections", index = null, actions = ["GetItem", "UpdateItem", "Scan"] },"#,
        checks::function_iam,
        &[
            "function response may call dynamodb:Scan",
            "least privilege",
        ],
    );
}

/// The pending table's old `connectionId-index` back: a second write for
/// every answer item, which nothing reads.
#[test]
fn a_gsi_on_the_pending_table() {
    detects(
        "modules/tables/main.tf",
        "  # index: an index is one more write for every item.\n",
        "  # index: an index is one more write for every item.\n  attribute {\n    name = \"connectionId\"\n    type = \"S\"\n  }\n\n  global_secondary_index {\n    name            = \"connectionId-index\"\n    hash_key        = \"connectionId\"\n    projection_type = \"KEYS_ONLY\"\n  }\n",
        checks::tables,
        &["aws_dynamodb_table.pending has index \"connectionId-index\""],
    );
}

/// A grant for an operation the code never makes on the pending table.
#[test]
fn a_query_grant_nothing_needs() {
    detects(
        TUNNEL,
        r#"{ table = "pending", index = null, actions = ["GetItem"] },"#,
        r#"{ table = "pending", index = null, actions = ["GetItem", "Query"] },"#,
        checks::function_iam,
        &["forwarding may call dynamodb:Query"],
    );
}

#[test]
fn manage_connections_where_the_code_never_posts() {
    detects(
        TUNNEL,
        "manage_connections = {\n    connect    = []",
        "manage_connections = {\n    connect    = [\"POST\"]",
        checks::function_iam,
        &[
            "function connect may call execute-api:ManageConnections on module.websocket_api.execution_arn/live/POST/@connections/*",
        ],
    );
}

/// Without GET, forwarding's GetConnection gets 403 deployed and a vanished
/// agent's visitors wait for the timeout.
#[test]
fn get_connection_not_granted_to_forwarding() {
    detects(
        TUNNEL,
        "forwarding = [\"POST\", \"GET\"]",
        "forwarding = [\"POST\"]",
        checks::function_iam,
        &[
            "forwarding cannot call execute-api:ManageConnections on module.websocket_api.execution_arn/live/GET/@connections/*",
        ],
    );
}

#[test]
fn manage_connections_on_the_wrong_stage() {
    detects(
        TUNNEL,
        "/${var.websocket_stage_name}\"",
        "/*\"",
        checks::function_iam,
        &[
            "forwarding cannot call execute-api:ManageConnections on module.websocket_api.execution_arn/live/POST/@connections/*",
        ],
    );
}

#[test]
fn a_missing_required_variable() {
    detects(
        TUNNEL,
        "      DOMAIN_NAME            = local.public_domain\n",
        "",
        checks::function_environment,
        &["function connect needs DOMAIN_NAME"],
    );
}

#[test]
fn a_variable_the_function_does_not_read() {
    detects(
        TUNNEL,
        "    response = merge(local.common_environment, {\n",
        "    response = merge(local.common_environment, {\n      REQUEST_TIMEOUT_MS = \"1000\"\n",
        checks::function_environment,
        &["function response gets REQUEST_TIMEOUT_MS, which it does not read"],
    );
}

#[test]
fn a_table_variable_naming_the_wrong_table() {
    detects(
        TUNNEL,
        "      PENDING_REQUESTS_TABLE_NAME = module.tables.pending_table_name\n      DOMAIN_NAME",
        "      PENDING_REQUESTS_TABLE_NAME = module.tables.connections_table_name\n      DOMAIN_NAME",
        checks::function_environment,
        &[
            "function forwarding PENDING_REQUESTS_TABLE_NAME",
            "expected module.tables.pending_table_name",
        ],
    );
}

#[test]
fn a_public_url_template_without_the_stage_free_execute_api_url() {
    detects(
        TUNNEL,
        r#""${module.http_api.endpoint}/{subdomain}""#,
        r#""https://{subdomain}.${module.http_api.host}""#,
        checks::function_environment,
        &["PUBLIC_URL_TEMPLATE", "without a custom domain"],
    );
}

#[test]
fn a_route_to_the_wrong_function() {
    detects(
        TUNNEL,
        r#""$default"    = "response""#,
        r#""$default"    = "forwarding""#,
        checks::routes,
        &["route $default should invoke function response"],
    );
}

#[test]
fn a_route_whose_permission_is_not_scoped_to_the_stage() {
    detects(
        "modules/websocket_api/main.tf",
        "execution_arn}/${var.stage_name}/${each.key}",
        "execution_arn}/*/*",
        checks::routes,
        &["aws_lambda_permission source_arn"],
    );
}

#[test]
fn a_gsi_on_the_connections_table() {
    detects(
        "modules/tables/main.tf",
        "  ttl {\n    attribute_name = \"ttl\"\n    enabled        = true\n  }\n",
        "  global_secondary_index {\n    name            = \"subdomain-index\"\n    hash_key        = \"connectionId\"\n    projection_type = \"ALL\"\n  }\n\n  ttl {\n    attribute_name = \"ttl\"\n    enabled        = true\n  }\n",
        checks::tables,
        &["aws_dynamodb_table.connections has index \"subdomain-index\""],
    );
}

#[test]
fn a_wrong_ttl_attribute() {
    detects(
        "modules/tables/main.tf",
        r#"attribute_name = "ttl""#,
        r#"attribute_name = "expiresAt""#,
        checks::tables,
        &["aws_dynamodb_table.connections TTL attribute", "\"ttl\""],
    );
}

#[test]
fn a_wrong_hash_key() {
    detects(
        "modules/tables/main.tf",
        r#"hash_key                    = "requestId""#,
        r#"hash_key                    = "id""#,
        checks::tables,
        &["aws_dynamodb_table.pending hash_key", "requestId"],
    );
}

#[test]
fn a_forwarding_timeout_at_the_integration_timeout() {
    detects(
        "modules/tunnel/variables.tf",
        "default     = 29",
        "default     = 30",
        checks::forwarding_timeout,
        &["forwarding timeout (30000 ms) must be under the HTTP API integration timeout"],
    );
}

/// The root, as an environment's values reach it.
#[test]
fn a_forwarding_timeout_under_the_wait_set_by_an_env() {
    detects(
        "root/main.tf",
        "  name = var.name\n",
        "  name = var.name\n  forwarding_timeout_seconds = 20\n",
        checks::forwarding_timeout,
        &["times out after 20000 ms", "25000 ms wait", "envs/dev"],
    );
}

#[test]
fn the_function_module_granting_dynamodb_itself() {
    detects(
        "modules/function/main.tf",
        r#"actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]"#,
        r#"actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "dynamodb:*"]"#,
        checks::function_module,
        &["mentions dynamodb:"],
    );
}

#[test]
fn an_undescribed_variable() {
    detects(
        "modules/tables/variables.tf",
        "  description = \"Protect the tables against deletion (recommended in production).\"\n",
        "",
        checks::variables_documented,
        &["modules/tables/variables.tf: variable \"deletion_protection\" has no description"],
    );
}

#[test]
fn an_untyped_variable() {
    detects(
        "modules/alarms/variables.tf",
        "  type        = number\n  description = \"Evaluation period",
        "  description = \"Evaluation period",
        checks::variables_documented,
        &["variable \"period_seconds\" has no type"],
    );
}

#[test]
fn a_module_without_outputs_tf() {
    let tree = Tree::workspace().without("modules/domain/outputs.tf");
    assert_reported(
        &checks::module_layout(&tree),
        &["modules/domain has no outputs.tf"],
    );
}

#[test]
fn a_file_that_does_not_parse() {
    detects(
        "modules/alarms/main.tf",
        "locals {",
        "locals {{",
        checks::files_parse,
        &["modules/alarms/main.tf does not parse"],
    );
}

#[test]
fn an_env_without_a_required_tfvar() {
    detects(
        "envs/prod/terraform.tfvars",
        "region              = \"eu-west-1\"\n",
        "",
        checks::envs,
        &["envs/prod/terraform.tfvars does not set region"],
    );
}

#[test]
fn a_domain_name_with_a_scheme() {
    detects(
        "modules/http_api/outputs.tf",
        r#"trimprefix(aws_apigatewayv2_api.this.api_endpoint, "https://")"#,
        "aws_apigatewayv2_api.this.api_endpoint",
        checks::function_environment,
        &["output host"],
    );
}

#[test]
fn a_manifest_function_without_an_instance() {
    detects(
        TUNNEL,
        "    disconnect = {\n      description = \"WebSocket $disconnect",
        "    unused = {\n      description = \"WebSocket $disconnect",
        checks::function_instances,
        &["module \"function\" has no instance \"disconnect\""],
    );
}

#[test]
fn a_management_endpoint_without_the_stage() {
    detects(
        "modules/websocket_api/outputs.tf",
        r#"value       = "${replace(aws_apigatewayv2_api.this.api_endpoint, "wss://", "https://")}/${var.stage_name}""#,
        r#"value       = replace(aws_apigatewayv2_api.this.api_endpoint, "wss://", "https://")"#,
        checks::function_environment,
        &["output management_endpoint", "var.stage_name"],
    );
}

#[test]
fn an_http_api_stage_that_adds_its_name_to_every_path() {
    detects(
        "modules/http_api/main.tf",
        "  name        = \"$default\"\n  auto_deploy = true",
        "  name        = \"live\"\n  auto_deploy = true",
        checks::function_environment,
        &["the stage is", "PUBLIC_URL_TEMPLATE"],
    );
}

#[test]
fn a_function_module_that_does_not_pass_the_environment_through() {
    detects(
        "modules/function/main.tf",
        "    variables = var.environment",
        "    variables = merge(var.environment, { EXTRA = \"1\" })",
        checks::function_module,
        &["environment.variables", "var.environment"],
    );
}

#[test]
fn an_http_route_the_manifest_does_not_give_its_function() {
    detects(
        "modules/http_api/main.tf",
        r#"route_key = "$default""#,
        r#"route_key = "ANY /{proxy+}""#,
        checks::routes,
        &["the route key is Some(\"ANY /{proxy+}\")", "forwarding"],
    );
}

#[test]
fn an_http_route_integrated_with_another_function() {
    detects(
        "modules/http_api/main.tf",
        "integration_uri        = var.function.invoke_arn",
        "integration_uri        = var.other_function_arn",
        checks::routes,
        &[
            "aws_apigatewayv2_integration integration_uri",
            "var.function.invoke_arn",
        ],
    );
}

#[test]
fn a_websocket_route_keyed_by_something_else() {
    detects(
        "modules/websocket_api/main.tf",
        "route_key = each.key",
        "route_key = each.value.function_name",
        checks::routes,
        &["aws_apigatewayv2_route route_key", "each.key"],
    );
}

#[test]
fn an_http_invoke_permission_for_any_route() {
    detects(
        "modules/http_api/main.tf",
        "execution_arn}/${aws_apigatewayv2_stage.this.name}/$default",
        "execution_arn}/*/*",
        checks::routes,
        &["aws_lambda_permission source_arn", "this stage, this route"],
    );
}

#[test]
fn an_s3_grant_for_a_function_whose_code_uses_no_bucket() {
    detects(
        TUNNEL,
        "    response = []\n  }\n\n  bucket_arns",
        "    response = [\n      { bucket = \"bodies\", actions = [\"GetObject\"] },\n    ]\n  }\n\n  bucket_arns",
        checks::function_iam,
        &[
            "function response may call s3:GetObject on module.bodies.bucket_arn/*",
            "least privilege",
        ],
    );
}

#[test]
fn a_missing_s3_action() {
    detects(
        TUNNEL,
        r#"actions = ["PutObject", "GetObject", "DeleteObject"]"#,
        r#"actions = ["PutObject", "GetObject"]"#,
        checks::function_iam,
        &["function forwarding cannot call s3:DeleteObject on module.bodies.bucket_arn/*"],
    );
}

#[test]
fn an_s3_grant_on_the_whole_bucket_instead_of_its_objects() {
    detects(
        TUNNEL,
        r#"resources = ["${local.bucket_arns[grant.bucket]}/*"]"#,
        r#"resources = ["*"]"#,
        checks::function_iam,
        &["function forwarding may call s3:GetObject on *"],
    );
}

#[test]
fn a_bucket_name_variable_naming_something_else() {
    detects(
        TUNNEL,
        "BODIES_BUCKET_NAME          = module.bodies.bucket_name",
        "BODIES_BUCKET_NAME          = module.bodies.bucket_arn",
        checks::function_environment,
        &["BODIES_BUCKET_NAME", "expected module.bodies.bucket_name"],
    );
}

#[test]
fn a_bucket_signer_the_manifest_does_not_know() {
    detects(
        TUNNEL,
        "module.function[name].role_arn if length(grants) > 0",
        "module.function[name].role_arn",
        checks::buckets,
        &[
            "object_role_arns has module.function[\"connect\"].role_arn",
            "could sign URLs",
        ],
    );
}

#[test]
fn a_bucket_without_its_signer() {
    detects(
        TUNNEL,
        "module.function[name].role_arn if length(grants) > 0",
        "module.function[name].role_arn if name == \"response\"",
        checks::buckets,
        &["object_role_arns lacks module.function[\"forwarding\"].role_arn"],
    );
}

#[test]
fn a_bucket_that_may_become_public() {
    detects(
        BODIES,
        "restrict_public_buckets = true",
        "restrict_public_buckets = false",
        checks::buckets,
        &["restrict_public_buckets is not true"],
    );
}

#[test]
fn a_bucket_without_encryption() {
    detects(
        BODIES,
        "sse_algorithm = \"AES256\"",
        "sse_algorithm = \"\"",
        checks::buckets,
        &["no default encryption"],
    );
}

#[test]
fn a_lifecycle_rule_that_expires_nothing() {
    detects(
        BODIES,
        "status = \"Enabled\"",
        "status = \"Disabled\"",
        checks::buckets,
        &["no enabled lifecycle rule", "expires objects"],
    );
    detects(
        BODIES,
        "      prefix = \"\"\n",
        "      prefix = \"req/\"\n",
        checks::buckets,
        &["no enabled lifecycle rule"],
    );
}

/// The empty `filter {}` (what the bucket had): the provider warns
/// "Invalid Attribute Combination", to become an error.
#[test]
fn a_lifecycle_filter_that_draws_the_provider_warning() {
    detects(
        BODIES,
        "    filter {\n      prefix = \"\"\n    }\n",
        "    filter {}\n",
        checks::buckets,
        &["filter { prefix = \"\" }", "warning"],
    );
}

#[test]
fn a_bucket_kept_longer_than_the_manifest_says() {
    detects(
        "modules/bodies/variables.tf",
        "default     = 1\n",
        "default     = 7\n",
        checks::buckets,
        &["expiration_days defaults to Some(\"7\"), expected 1"],
    );
}

#[test]
fn a_bucket_policy_without_tls_or_signer_restriction() {
    detects(
        BODIES,
        "variable = \"aws:SecureTransport\"",
        "variable = \"aws:SourceIp\"",
        checks::buckets,
        &["no statement denying requests without TLS"],
    );
    detects(
        BODIES,
        "test     = \"StringNotEquals\"",
        "test     = \"StringNotLike\"",
        checks::buckets,
        &["does not deny object reads and writes to principals outside var.object_role_arns"],
    );
    detects(
        BODIES,
        r#"actions   = ["s3:GetObject", "s3:PutObject"]"#,
        r#"actions   = ["s3:PutObject"]"#,
        checks::buckets,
        &["must deny s3:GetObject and s3:PutObject on the objects"],
    );
}

/// A 403 from @connections must raise the alarm: the filter pattern must
/// select the field and value the code logs.
#[test]
fn a_metric_filter_pattern_on_another_field() {
    detects(
        FUNCTION,
        "{ $.alarm = ",
        "{ $.alert = ",
        checks::log_alarms,
        &["does not select the lines the code logs"],
    );
}

#[test]
fn a_function_calling_connections_without_its_log_alarm() {
    detects(
        TUNNEL,
        "response   = [local.forbidden_alarm]",
        "response   = []",
        checks::log_alarms,
        &["function response calls @connections but its log_alarms lack"],
    );
}
