//! The functions: one per manifest entry, each with exactly the environment
//! it reads and exactly the IAM its code needs, and a function module that
//! adds nothing of its own.

use std::collections::{BTreeMap, BTreeSet};

use handlers::config::Routing;
use handlers::manifest::{self, BUCKETS, Function, TABLES};
use hcl::Value;
use protocol::limits::MAX_REQUEST_TIMEOUT;

use crate::eval::Evaluator;
use crate::tree::{Module, Tree, attribute, label, nested, source};

use super::{
    COMPOSITION, EXAMPLE_DOMAIN, FUNCTION_MODULE, HTTP_MODULE, Scenario, WEBSOCKET_MODULE,
    bucket_output, compact, composition, table_by_role, table_output,
};

/// The composition instantiates exactly one function per manifest entry.
pub fn function_instances(tree: &Tree) -> Vec<String> {
    let mut problems = Vec::new();
    let eval = try_or_report!(problems, composition(tree, Scenario::ExecuteApi));
    let keys: BTreeSet<String> = try_or_report!(problems, eval.module_keys("function"))
        .into_iter()
        .collect();
    let wanted: BTreeSet<String> = manifest::FUNCTIONS
        .iter()
        .map(|function| function.name.to_owned())
        .collect();
    for missing in wanted.difference(&keys) {
        problems.push(format!(
            "{COMPOSITION}: module \"function\" has no instance \"{missing}\" (handlers::manifest::FUNCTIONS lists it)"
        ));
    }
    for extra in keys.difference(&wanted) {
        problems.push(format!(
            "{COMPOSITION}: module \"function\" has an instance \"{extra}\" that handlers::manifest::FUNCTIONS does not list"
        ));
    }
    problems
}

/// The environment of each function, evaluated, with its keys and values.
pub(super) fn environment(
    eval: &Evaluator,
    function: &Function,
) -> Result<BTreeMap<String, String>, String> {
    let value = eval
        .module_argument("function", Some(function.name), "environment")?
        .ok_or_else(|| format!("{COMPOSITION}: module \"function\" gets no environment"))?;
    let Value::Object(map) = value else {
        return Err(format!(
            "{COMPOSITION}: environment of function {} is not a map: {value}",
            function.name
        ));
    };
    map.into_iter()
        .map(|(key, value)| match value {
            Value::String(text) => Ok((key, text)),
            Value::Number(number) => Ok((key, number.to_string())),
            other => Err(format!(
                "{COMPOSITION}: environment variable {key} of function {} is not a string: {other}",
                function.name
            )),
        })
        .collect()
}

/// For each function and each scenario: every variable it requires is set,
/// nothing it does not read is set, and the values are the right ones
/// (table names from the tables module, the management endpoint, the public
/// domain and URL template; and the API outputs those come from are what the
/// handlers accept).
pub fn function_environment(tree: &Tree) -> Vec<String> {
    let mut problems = Vec::new();
    for scenario in Scenario::ALL {
        let eval = try_or_report!(problems, composition(tree, scenario));
        let when = scenario.describe();
        for function in manifest::FUNCTIONS {
            let env = match environment(&eval, function) {
                Ok(env) => env,
                Err(err) => {
                    problems.push(err);
                    continue;
                }
            };
            for required in function.required_env {
                if !env.contains_key(*required) {
                    problems.push(format!(
                        "{COMPOSITION}: function {} needs {required} (required_env in handlers::manifest) but local.function_environment does not set it ({when})",
                        function.name
                    ));
                }
            }
            for key in env.keys() {
                let known = function.required_env.contains(&key.as_str())
                    || function.optional_env.contains(&key.as_str())
                    || manifest::COMMON_OPTIONAL_ENV.contains(&key.as_str());
                if !known {
                    problems.push(format!(
                        "{COMPOSITION}: function {} gets {key}, which it does not read (not in its required_env, optional_env or COMMON_OPTIONAL_ENV) ({when})",
                        function.name
                    ));
                }
            }
            for (key, value) in &env {
                if let Some(problem) = env_value_problem(scenario, key, value) {
                    problems.push(format!(
                        "{COMPOSITION}: function {} {key} = {value:?}: {problem} ({when})",
                        function.name
                    ));
                }
            }
        }
    }
    problems.extend(environment_sources(tree));
    problems
}

/// The API outputs the environment takes its values from are what the
/// handlers' configuration accepts: `WEBSOCKET_API_ENDPOINT` is the
/// management endpoint with the stage, `DOMAIN_NAME` without a custom domain
/// is a bare host (no scheme), and `PUBLIC_URL_TEMPLATE` (the HTTP API's
/// endpoint + `/{subdomain}`) holds no stage because the HTTP API serves
/// the `$default` stage, which adds nothing to the path.
fn environment_sources(tree: &Tree) -> Vec<String> {
    let mut problems = Vec::new();
    let output = |module: &Module, name: &str| {
        module
            .block("output", &[name])
            .and_then(|block| attribute(block.body(), "value"))
            .map(source)
    };
    match tree.module(WEBSOCKET_MODULE) {
        Ok(module) => {
            let found = output(&module, "management_endpoint").unwrap_or_default();
            for needle in ["https://", "var.stage_name", "aws_apigatewayv2_api.this"] {
                if !found.contains(needle) {
                    problems.push(format!(
                        "{WEBSOCKET_MODULE}: output management_endpoint = {found:?} (WEBSOCKET_API_ENDPOINT) should contain {needle}: the handlers post to https://{{api}}/{{stage}}/@connections"
                    ));
                }
            }
        }
        Err(err) => problems.push(err),
    }
    let module = try_or_report!(problems, tree.module(HTTP_MODULE));
    for (name, wanted) in [
        ("endpoint", "aws_apigatewayv2_api.this.api_endpoint"),
        (
            "host",
            "trimprefix(aws_apigatewayv2_api.this.api_endpoint, \"https://\")",
        ),
    ] {
        let found = output(&module, name);
        if found.as_deref().map(compact) != Some(compact(wanted)) {
            problems.push(format!(
                "{HTTP_MODULE}: output {name} is {found:?}, expected {wanted} (DOMAIN_NAME is a bare host, PUBLIC_URL_TEMPLATE the endpoint)"
            ));
        }
    }
    let stage = module
        .resource("aws_apigatewayv2_stage", "this")
        .ok()
        .and_then(|stage| attribute(stage.body(), "name"))
        .map(source);
    if stage.as_deref() != Some("\"$default\"") {
        problems.push(format!(
            "{HTTP_MODULE}: the stage is {stage:?}, expected \"$default\": another stage puts its name in every path, which PUBLIC_URL_TEMPLATE and path routing do not expect"
        ));
    }
    problems
}

/// What is wrong with the value of one environment variable, if anything.
fn env_value_problem(scenario: Scenario, key: &str, value: &str) -> Option<String> {
    if let Some(table) = TABLES.iter().find(|table| table.env == key) {
        let wanted = table_output(table, "name");
        return (value != wanted).then(|| format!("expected {wanted}"));
    }
    if let Some(bucket) = BUCKETS.iter().find(|bucket| bucket.env == key) {
        let wanted = bucket_output(bucket, "name");
        return (value != wanted).then(|| format!("expected {wanted}"));
    }
    let wanted = match (key, scenario) {
        ("WEBSOCKET_API_ENDPOINT", _) => "module.websocket_api.management_endpoint".to_owned(),
        ("DOMAIN_NAME", Scenario::ExecuteApi) => "module.http_api.host".to_owned(),
        ("DOMAIN_NAME", Scenario::CustomDomain) => EXAMPLE_DOMAIN.to_owned(),
        // A custom domain is host routing; without one, path routing.
        ("ROUTING", Scenario::CustomDomain) => Routing::Host.as_str().to_owned(),
        ("ROUTING", Scenario::ExecuteApi) => Routing::Path.as_str().to_owned(),
        ("PUBLIC_URL_TEMPLATE", Scenario::ExecuteApi) => {
            "module.http_api.endpoint/{subdomain}".to_owned()
        }
        ("PUBLIC_URL_TEMPLATE", Scenario::CustomDomain) => {
            format!("https://{{subdomain}}.{EXAMPLE_DOMAIN}")
        }
        ("REQUEST_TIMEOUT_MS", _) => {
            let max = MAX_REQUEST_TIMEOUT.as_millis();
            return match value.parse::<u128>() {
                Ok(ms) if ms <= max => None,
                _ => Some(format!("expected a number of milliseconds <= {max}")),
            };
        }
        ("AUTH_MODE", _) => {
            return (!["required", "disabled"].contains(&value))
                .then(|| "expected required or disabled".to_owned());
        }
        ("AUTH_SECRET_PARAMETER", _) => AUTH_SECRET_PARAMETER_NAME.to_owned(),
        ("AUTH_SECRET_REFRESH_SECONDS", _) => {
            let max = handlers::config::MAX_SECRET_REFRESH.as_secs();
            return match value.parse::<u64>() {
                Ok(secs) if secs <= max => None,
                _ => Some(format!("expected a number of seconds in 0..={max}")),
            };
        }
        // The secret would be in the state and every plan.
        ("AUTH_SECRET", _) => {
            return Some(
                "the secret must not be in Terraform: set AUTH_SECRET_PARAMETER (module auth_secret) instead"
                    .to_owned(),
            );
        }
        ("LOG_FORMAT", _) => {
            return (!["json", "text"].contains(&value))
                .then(|| "expected json or text".to_owned());
        }
        _ => return value.is_empty().then(|| "empty".to_owned()),
    };
    (value != wanted).then(|| format!("expected {wanted}"))
}

/// The auth secret's SSM parameter, as the composition's placeholders name it.
const AUTH_SECRET_PARAMETER_NAME: &str = "module.auth_secret.parameter_name";
const AUTH_SECRET_PARAMETER_ARN: &str = "module.auth_secret.parameter_arn";

/// One allowed (action, resource) pair of a function's policy.
type Grant = (String, String);

/// The (action, resource) pairs the composition grants a function.
fn granted(eval: &Evaluator, function: &Function) -> Result<BTreeSet<Grant>, String> {
    let statements = eval
        .module_argument("function", Some(function.name), "policy_statements")?
        .ok_or_else(|| format!("{COMPOSITION}: module \"function\" gets no policy_statements"))?;
    let Value::Array(statements) = statements else {
        return Err(format!(
            "{COMPOSITION}: policy_statements of function {} is not a list: {statements}",
            function.name
        ));
    };
    let mut grants = BTreeSet::new();
    for statement in statements {
        let strings = |key: &str| -> Result<Vec<String>, String> {
            match statement.as_object().and_then(|object| object.get(key)) {
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|item| {
                        item.as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| format!("{key} holds a non-string: {item}"))
                    })
                    .collect(),
                other => Err(format!("statement without a {key} list: {other:?}")),
            }
        };
        let context = |err: String| {
            format!(
                "{COMPOSITION}: policy statement of function {}: {err}",
                function.name
            )
        };
        for action in strings("actions").map_err(context)? {
            for resource in strings("resources").map_err(context)? {
                grants.insert((action.clone(), resource));
            }
        }
    }
    Ok(grants)
}

/// What the manifest says a function may do, as (action, resource) pairs.
fn expected_grants(function: &Function, stage_execution_arn: &str) -> Vec<Grant> {
    let mut grants: Vec<Grant> = function
        .dynamodb
        .iter()
        .map(|access| {
            let table = table_by_role(access.table)
                .map(|table| table_output(table, "arn"))
                .unwrap_or_else(|| format!("<unknown table {}>", access.table));
            let resource = match access.index {
                Some(index) => format!("{table}/index/{index}"),
                None => table,
            };
            (format!("dynamodb:{}", access.action), resource)
        })
        .collect();
    grants.extend(function.s3.iter().map(|access| {
        let bucket = BUCKETS
            .iter()
            .find(|bucket| bucket.role == access.bucket)
            .map(|bucket| bucket_output(bucket, "arn"))
            .unwrap_or_else(|| format!("<unknown bucket {}>", access.bucket));
        (format!("s3:{}", access.action), format!("{bucket}/*"))
    }));
    for method in function.manage_connections {
        grants.push((
            "execute-api:ManageConnections".to_owned(),
            format!("{stage_execution_arn}/{method}/@connections/*"),
        ));
    }
    if function.reads_auth_secret {
        grants.push((
            "ssm:GetParameter".to_owned(),
            AUTH_SECRET_PARAMETER_ARN.to_owned(),
        ));
    }
    grants
}

/// The WebSocket API's stage, which `execute-api:ManageConnections` must be
/// scoped to (followed by `/{METHOD}/@connections/*`).
fn stage_execution_arn(eval: &Evaluator) -> Result<String, String> {
    let stage = eval
        .module_argument("websocket_api", None, "stage_name")?
        .ok_or_else(|| format!("{COMPOSITION}: module websocket_api gets no stage_name"))?;
    let stage = stage
        .as_str()
        .ok_or_else(|| format!("{COMPOSITION}: websocket stage_name is not a string: {stage}"))?
        .to_owned();
    Ok(format!("module.websocket_api.execution_arn/{stage}"))
}

/// Each function's policy allows exactly the DynamoDB actions of its
/// manifest entry, each on the right table or index ARN, its S3 actions on
/// the objects of the right bucket, plus
/// `execute-api:ManageConnections` on `{stage}/{METHOD}/@connections/*` for
/// exactly the methods of its `manage_connections`; nothing else.
pub fn function_iam(tree: &Tree) -> Vec<String> {
    let mut problems = Vec::new();
    let eval = try_or_report!(problems, composition(tree, Scenario::ExecuteApi));
    let manage_arn = try_or_report!(problems, stage_execution_arn(&eval));
    for function in manifest::FUNCTIONS {
        let granted = match granted(&eval, function) {
            Ok(granted) => granted,
            Err(err) => {
                problems.push(err);
                continue;
            }
        };
        let expected: BTreeSet<Grant> =
            expected_grants(function, &manage_arn).into_iter().collect();
        for (action, resource) in expected.difference(&granted) {
            problems.push(format!(
                "{COMPOSITION}: function {} cannot call {action} on {resource}, which its code needs (handlers::manifest); add it to local.dynamodb_grants / local.s3_grants / local.manage_connections / local.reads_auth_secret",
                function.name
            ));
        }
        for (action, resource) in granted.difference(&expected) {
            problems.push(format!(
                "{COMPOSITION}: function {} may call {action} on {resource}, which handlers::manifest does not list for it: least privilege says remove it",
                function.name
            ));
        }
    }
    problems
}

/// The function module grants nothing of its own beyond writing to its own
/// log group (and X-Ray when tracing is Active): every DynamoDB and
/// execute-api permission comes from `var.policy_statements`, and the Lambda
/// runs with that role, the environment and the timeout the composition
/// passes (what [`function_iam`], [`function_environment`] and
/// [`super::forwarding_timeout`] check reach the function unchanged).
pub fn function_module(tree: &Tree) -> Vec<String> {
    let mut problems = Vec::new();
    let module = try_or_report!(problems, tree.module(FUNCTION_MODULE));
    let dir = FUNCTION_MODULE;
    for path in tree.files_in(dir) {
        // Code only: comments may explain what the statements are for.
        let text: String = tree
            .text(path)
            .unwrap_or_default()
            .lines()
            .filter(|line| {
                !line.trim_start().starts_with('#') && !line.trim_start().starts_with("//")
            })
            .collect::<Vec<_>>()
            .join("\n");
        for needle in [
            "dynamodb:",
            "execute-api:",
            "\"*:*\"",
            "AmazonDynamoDB",
            "AWSLambdaBasicExecutionRole",
        ] {
            if text.contains(needle) {
                problems.push(format!(
                    "{path} mentions {needle}: the function module must grant only what var.policy_statements lists (plus its own logs)"
                ));
            }
        }
    }
    match module.block("data", &["aws_iam_policy_document", "access"]) {
        Some(access) => {
            let dynamic = nested(access.body(), "dynamic")
                .find(|block| label(block, 0) == "statement")
                .and_then(|block| attribute(block.body(), "for_each"))
                .map(source);
            if dynamic.as_deref() != Some("var.policy_statements") {
                problems.push(format!(
                    "{dir}: data.aws_iam_policy_document.access must build its statements from var.policy_statements (dynamic \"statement\"), found {dynamic:?}"
                ));
            }
        }
        None => problems.push(format!(
            "{dir}: data.aws_iam_policy_document.access is missing"
        )),
    }
    match module.block("data", &["aws_iam_policy_document", "logs"]) {
        Some(logs) => {
            for statement in nested(logs.body(), "statement") {
                let resources = attribute(statement.body(), "resources")
                    .map(source)
                    .unwrap_or_default();
                if !resources.contains("aws_cloudwatch_log_group.this.arn") {
                    problems.push(format!(
                        "{dir}: the logging statement must be scoped to the function's own log group (aws_cloudwatch_log_group.this.arn), found {resources}"
                    ));
                }
            }
        }
        None => problems.push(format!(
            "{dir}: data.aws_iam_policy_document.logs is missing"
        )),
    }
    let lambda = try_or_report!(problems, module.resource("aws_lambda_function", "this"));
    let body = lambda.body();
    let expect = |problems: &mut Vec<String>, key: &str, wanted: &str| {
        let found = attribute(body, key).map(source);
        if found.as_deref().map(compact) != Some(compact(wanted)) {
            problems.push(format!(
                "{dir}: aws_lambda_function.this {key} is {found:?}, expected {wanted}"
            ));
        }
    };
    expect(&mut problems, "role", "aws_iam_role.this.arn");
    expect(&mut problems, "timeout", "var.timeout");
    let variables = nested(body, "environment")
        .next()
        .and_then(|env| attribute(env.body(), "variables"))
        .map(source);
    if variables.as_deref() != Some("var.environment") {
        problems.push(format!(
            "{dir}: aws_lambda_function.this environment.variables is {variables:?}, expected var.environment (exactly what the composition passes)"
        ));
    }
    problems
}
