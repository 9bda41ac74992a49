//! One function per check. Each returns the problems it found, as sentences
//! that say what is wrong, where, and what the contract expects; an empty
//! list means the check passes.

use std::collections::{BTreeMap, BTreeSet};

use handlers::manifest::{self, Function, TABLES, Table};
use hcl::{Body, Expression, Value};
use protocol::limits::{MAX_REQUEST_TIMEOUT, REQUEST_TIMEOUT};

use crate::eval::Evaluator;
use crate::tree::{Tree, attribute, label, literal_str, nested, source};

/// The composition module: every name the code relies on is wired here.
pub const COMPOSITION: &str = "modules/tunnel";
pub const FUNCTION_MODULE: &str = "modules/function";
pub const TABLES_MODULE: &str = "modules/tables";
pub const WEBSOCKET_MODULE: &str = "modules/websocket_api";
pub const HTTP_MODULE: &str = "modules/http_api";

/// Every module and root configuration has these files.
pub const MODULE_FILES: [&str; 4] = ["main.tf", "variables.tf", "outputs.tf", "versions.tf"];

/// The HTTP API gives up on an integration after 30 s.
pub const HTTP_INTEGRATION_TIMEOUT_MS: u64 = 30_000;

/// The domain used to evaluate the composition with a custom domain.
pub const EXAMPLE_DOMAIN: &str = "tunnel.example.com";

/// The two ways to deploy: path routing on execute-api, or a custom domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    ExecuteApi,
    CustomDomain,
}

impl Scenario {
    pub const ALL: [Scenario; 2] = [Scenario::ExecuteApi, Scenario::CustomDomain];

    fn overrides(self) -> Vec<(&'static str, Value)> {
        match self {
            Scenario::ExecuteApi => Vec::new(),
            Scenario::CustomDomain => vec![
                ("domain_name", Value::from(EXAMPLE_DOMAIN)),
                ("route53_zone_id", Value::from("Z0123456789ABCDEFGHIJ")),
            ],
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Scenario::ExecuteApi => "without a custom domain",
            Scenario::CustomDomain => "with a custom domain",
        }
    }
}

/// The composition, evaluated for one scenario.
pub fn composition(tree: &Tree, scenario: Scenario) -> Result<Evaluator, String> {
    Evaluator::new(tree, COMPOSITION, &scenario.overrides())
}

/// The placeholder the evaluator gives an output of `module.function["name"]`.
pub fn function_output(function: &str, output: &str) -> String {
    format!("module.function[\"{function}\"].{output}")
}

/// The placeholder for the table name / ARN outputs of `module.tables`.
pub fn table_output(table: &Table, what: &str) -> String {
    format!("module.tables.{}_table_{what}", table.role)
}

fn table_by_role(role: &str) -> Option<&'static Table> {
    TABLES.iter().find(|table| table.role == role)
}

macro_rules! try_or_report {
    ($problems:ident, $result:expr) => {
        match $result {
            Ok(value) => value,
            Err(err) => {
                $problems.push(err);
                return $problems;
            }
        }
    };
}

/// Source text without whitespace, to compare `["arm64"]` with its
/// pretty-printed form.
fn compact(text: &str) -> String {
    text.chars().filter(|ch| !ch.is_whitespace()).collect()
}

// ---------------------------------------------------------------- syntax ---

/// Every `.tf` and `.tfvars` file parses.
pub fn files_parse(tree: &Tree) -> Vec<String> {
    let mut problems = Vec::new();
    let mut count = 0;
    for path in tree.paths() {
        count += 1;
        if let Err(err) = tree.parse(path) {
            problems.push(err);
        }
    }
    if count == 0 {
        problems.push(format!("no .tf files under {}", tree.root().display()));
    }
    problems
}

/// Every module under `modules/` and every root configuration under `envs/`
/// has main.tf, variables.tf, outputs.tf and versions.tf, and versions.tf
/// pins Terraform >= 1.5 and the AWS provider.
pub fn module_layout(tree: &Tree) -> Vec<String> {
    let mut problems = Vec::new();
    let modules = tree.subdirectories("modules");
    let envs = tree.subdirectories("envs");
    for wanted in [
        COMPOSITION,
        FUNCTION_MODULE,
        TABLES_MODULE,
        WEBSOCKET_MODULE,
        HTTP_MODULE,
    ] {
        if !modules.iter().any(|dir| dir == wanted) {
            problems.push(format!("module {wanted} is missing"));
        }
    }
    for wanted in ["envs/dev", "envs/prod"] {
        if !envs.iter().any(|dir| dir == wanted) {
            problems.push(format!("root configuration {wanted} is missing"));
        }
    }
    for dir in modules.iter().chain(&envs) {
        let files = tree.files_in(dir);
        for file in MODULE_FILES {
            let path = format!("{dir}/{file}");
            if !files.contains(&path.as_str()) {
                problems.push(format!(
                    "{dir} has no {file} (every module has {MODULE_FILES:?})"
                ));
            }
        }
        let Ok(versions) = tree.parse(&format!("{dir}/versions.tf")) else {
            continue;
        };
        let Some(terraform) = nested(&versions, "terraform").next() else {
            problems.push(format!("{dir}/versions.tf has no terraform block"));
            continue;
        };
        match attribute(terraform.body(), "required_version").and_then(literal_str) {
            Some(constraint) if constraint.contains(">= 1.") => {}
            other => problems.push(format!(
                "{dir}/versions.tf: required_version is {other:?}, expected a constraint like \">= 1.5\""
            )),
        }
        let aws = nested(terraform.body(), "required_providers")
            .next()
            .and_then(|providers| attribute(providers.body(), "aws"))
            .map(source);
        match aws {
            Some(aws) if aws.contains("hashicorp/aws") && aws.contains("version") => {}
            _ => problems.push(format!(
                "{dir}/versions.tf does not require hashicorp/aws with a version constraint"
            )),
        }
    }
    problems
}

/// Every variable has a type and a description; every output a description.
pub fn variables_documented(tree: &Tree) -> Vec<String> {
    let mut problems = Vec::new();
    for path in tree.paths().filter(|path| path.ends_with(".tf")) {
        let Ok(body) = tree.parse(path) else {
            continue; // reported by files_parse
        };
        for block in body.blocks() {
            let kind = block.identifier();
            if kind != "variable" && kind != "output" {
                continue;
            }
            let name = label(block, 0);
            if kind == "variable" && attribute(block.body(), "type").is_none() {
                problems.push(format!("{path}: variable \"{name}\" has no type"));
            }
            let described = attribute(block.body(), "description")
                .map(source)
                .is_some_and(|text| text.trim_matches('"').trim().len() > 3);
            if !described {
                problems.push(format!("{path}: {kind} \"{name}\" has no description"));
            }
        }
    }
    problems
}

// ------------------------------------------------------------- functions ---

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
    if let Ok(call) = eval
        .module()
        .block("module", &["function"])
        .ok_or(())
        .map(|block| block.body().clone())
    {
        match attribute(&call, "package_path").map(source) {
            Some(path) if path.contains("each.key") && path.contains("bootstrap.zip") => {}
            other => problems.push(format!(
                "{COMPOSITION}: module \"function\" package_path is {other:?}, expected <artifacts>/${{each.key}}/bootstrap.zip (cargo lambda's target/lambda/<bin>/bootstrap.zip)"
            )),
        }
    }
    problems
}

/// The environment of each function, evaluated, with its keys and values.
fn environment(eval: &Evaluator, function: &Function) -> Result<BTreeMap<String, String>, String> {
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
/// domain and URL template).
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
    problems
}

/// What is wrong with the value of one environment variable, if anything.
fn env_value_problem(scenario: Scenario, key: &str, value: &str) -> Option<String> {
    if let Some(table) = TABLES.iter().find(|table| table.env == key) {
        let wanted = table_output(table, "name");
        return (value != wanted).then(|| format!("expected {wanted}"));
    }
    let wanted = match (key, scenario) {
        ("WEBSOCKET_API_ENDPOINT", _) => "module.websocket_api.management_endpoint".to_owned(),
        ("DOMAIN_NAME", Scenario::ExecuteApi) => "module.http_api.host".to_owned(),
        ("DOMAIN_NAME", Scenario::CustomDomain) => EXAMPLE_DOMAIN.to_owned(),
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
fn expected_grants(function: &Function, post_to_connections_arn: &str) -> Vec<Grant> {
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
    if function.posts_to_connections {
        grants.push((
            "execute-api:ManageConnections".to_owned(),
            post_to_connections_arn.to_owned(),
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

/// The resource `execute-api:ManageConnections` must be scoped to:
/// POST on the @connections of the WebSocket API's stage.
fn post_to_connections_arn(eval: &Evaluator) -> Result<String, String> {
    let stage = eval
        .module_argument("websocket_api", None, "stage_name")?
        .ok_or_else(|| format!("{COMPOSITION}: module websocket_api gets no stage_name"))?;
    let stage = stage
        .as_str()
        .ok_or_else(|| format!("{COMPOSITION}: websocket stage_name is not a string: {stage}"))?
        .to_owned();
    Ok(format!(
        "module.websocket_api.execution_arn/{stage}/POST/@connections/*"
    ))
}

/// Each function's policy allows exactly the DynamoDB actions of its
/// manifest entry, each on the right table or index ARN, plus
/// `execute-api:ManageConnections` on POST @connections of the stage if and
/// only if it posts to connections; nothing else.
pub fn function_iam(tree: &Tree) -> Vec<String> {
    let mut problems = Vec::new();
    let eval = try_or_report!(problems, composition(tree, Scenario::ExecuteApi));
    let manage_arn = try_or_report!(problems, post_to_connections_arn(&eval));
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
                "{COMPOSITION}: function {} cannot call {action} on {resource}, which its code needs (handlers::manifest); add it to local.dynamodb_grants / local.posts_to_connections / local.reads_auth_secret",
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
/// execute-api permission comes from `var.policy_statements`; the Lambda is
/// the cargo-lambda artifact on provided.al2023/arm64.
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
    match module.resource("aws_cloudwatch_log_group", "this") {
        Ok(group) => {
            let name = attribute(group.body(), "name")
                .map(source)
                .unwrap_or_default();
            if !name.contains("/aws/lambda/${var.name}") {
                problems.push(format!(
                    "{dir}: the log group must be /aws/lambda/<function name>, found {name}"
                ));
            }
            if attribute(group.body(), "retention_in_days").is_none() {
                problems.push(format!("{dir}: the log group has no retention_in_days"));
            }
        }
        Err(err) => problems.push(err),
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
    expect(&mut problems, "runtime", "\"provided.al2023\"");
    expect(&mut problems, "handler", "\"bootstrap\"");
    expect(&mut problems, "architectures", "[\"arm64\"]");
    expect(&mut problems, "filename", "var.package_path");
    expect(
        &mut problems,
        "source_code_hash",
        "filebase64sha256(var.package_path)",
    );
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

/// The table names and ARNs the tables module exports are the right tables'.
fn tables_outputs(tree: &Tree) -> Vec<String> {
    let mut problems = Vec::new();
    let module = try_or_report!(problems, tree.module(TABLES_MODULE));
    for table in TABLES {
        for what in ["name", "arn"] {
            let output = format!("{}_table_{what}", table.role);
            let wanted = format!("aws_dynamodb_table.{}.{what}", table.role);
            let found = module
                .block("output", &[output.as_str()])
                .and_then(|block| attribute(block.body(), "value"))
                .map(source);
            if found.as_deref() != Some(wanted.as_str()) {
                problems.push(format!(
                    "{TABLES_MODULE}: output {output} is {found:?}, expected {wanted}"
                ));
            }
        }
    }
    problems
}

// ----------------------------------------------------------------- tables ---

fn string_attr(body: &Body, key: &str) -> Option<String> {
    attribute(body, key)
        .and_then(literal_str)
        .map(str::to_owned)
}

/// Keys, the index (name, key, projection), the TTL attribute and billing of
/// both tables equal `handlers::manifest::TABLES`; the outputs point at them.
pub fn tables(tree: &Tree) -> Vec<String> {
    let mut problems = tables_outputs(tree);
    let module = try_or_report!(problems, tree.module(TABLES_MODULE));
    let dir = TABLES_MODULE;
    let declared: BTreeSet<&str> = module
        .blocks("resource")
        .filter(|block| label(block, 0) == "aws_dynamodb_table")
        .map(|block| label(block, 1))
        .collect();
    for name in &declared {
        if table_by_role(name).is_none() {
            problems.push(format!(
                "{dir}: aws_dynamodb_table.{name} is not a table of handlers::manifest::TABLES"
            ));
        }
    }
    for table in TABLES {
        let resource = match module.resource("aws_dynamodb_table", table.role) {
            Ok(resource) => resource,
            Err(err) => {
                problems.push(err);
                continue;
            }
        };
        let body = resource.body();
        let name = format!("{dir}: aws_dynamodb_table.{}", table.role);
        let hash_key = string_attr(body, "hash_key");
        if hash_key.as_deref() != Some(table.hash_key) {
            problems.push(format!(
                "{name} hash_key is {hash_key:?}, expected {:?}",
                table.hash_key
            ));
        }
        if attribute(body, "range_key").is_some() {
            problems.push(format!("{name} has a range_key; the contract has none"));
        }
        let billing = string_attr(body, "billing_mode");
        if billing.as_deref() != Some("PAY_PER_REQUEST") {
            problems.push(format!("{name} billing_mode is {billing:?}, expected PAY_PER_REQUEST (zero cost while idle)"));
        }
        let attributes: BTreeMap<String, Option<String>> = nested(body, "attribute")
            .filter_map(|block| {
                string_attr(block.body(), "name")
                    .map(|attr| (attr, string_attr(block.body(), "type")))
            })
            .collect();
        let mut keys: BTreeSet<&str> = BTreeSet::from([table.hash_key]);
        keys.extend(table.indexes.iter().map(|index| index.hash_key));
        for key in &keys {
            match attributes.get(*key) {
                Some(Some(kind)) if kind == "S" => {}
                found => problems.push(format!(
                    "{name} declares key attribute {key} as {found:?}, expected type \"S\""
                )),
            }
        }
        for declared in attributes.keys() {
            if !keys.contains(declared.as_str()) {
                problems.push(format!(
                    "{name} declares attribute {declared}, which is no key or index key (DynamoDB rejects unused attribute definitions)"
                ));
            }
        }
        match nested(body, "ttl").next() {
            Some(ttl) => {
                let attr = string_attr(ttl.body(), "attribute_name");
                if attr.as_deref() != Some(table.ttl_attribute) {
                    problems.push(format!(
                        "{name} TTL attribute is {attr:?}, expected {:?}",
                        table.ttl_attribute
                    ));
                }
                let enabled = attribute(ttl.body(), "enabled").map(source);
                if enabled.as_deref() != Some("true") {
                    problems.push(format!("{name} TTL is not enabled (enabled = {enabled:?})"));
                }
            }
            None => problems.push(format!(
                "{name} has no ttl block (TTL on {:?})",
                table.ttl_attribute
            )),
        }
        let indexes: Vec<_> = nested(body, "global_secondary_index").collect();
        if attribute(body, "global_secondary_index").is_some()
            || nested(body, "local_secondary_index").next().is_some()
        {
            problems.push(format!("{name} declares indexes in an unexpected form"));
        }
        for index in table.indexes {
            let Some(block) = indexes
                .iter()
                .find(|block| string_attr(block.body(), "name").as_deref() == Some(index.name))
            else {
                problems.push(format!(
                    "{name} has no global_secondary_index {:?}",
                    index.name
                ));
                continue;
            };
            let hash_key = string_attr(block.body(), "hash_key");
            if hash_key.as_deref() != Some(index.hash_key) {
                problems.push(format!(
                    "{name} index {} hash_key is {hash_key:?}, expected {:?}",
                    index.name, index.hash_key
                ));
            }
            if attribute(block.body(), "range_key").is_some() {
                problems.push(format!(
                    "{name} index {} has a range_key; the contract has none",
                    index.name
                ));
            }
            let projection = string_attr(block.body(), "projection_type");
            if projection.as_deref() != Some(index.projection) {
                problems.push(format!(
                    "{name} index {} projection_type is {projection:?}, expected {:?}",
                    index.name, index.projection
                ));
            }
        }
        for block in &indexes {
            let index_name = string_attr(block.body(), "name").unwrap_or_default();
            if !table.indexes.iter().any(|index| index.name == index_name) {
                problems.push(format!(
                    "{name} has index {index_name:?}, which handlers::manifest does not list (the contract says: no GSI on connections; subdomain claims are items)"
                ));
            }
        }
    }
    problems
}

// ----------------------------------------------------------------- routes ---

/// The function key a placeholder like `module.function["connect"].invoke_arn` names.
fn function_of(value: Option<&Value>, output: &str) -> Option<String> {
    let text = value?.as_str()?;
    let rest = text.strip_prefix("module.function[\"")?;
    let (key, tail) = rest.split_once("\"]")?;
    (tail == format!(".{output}")).then(|| key.to_owned())
}

/// The functions behind the WebSocket routes and the HTTP API's $default.
fn wired_routes(eval: &Evaluator) -> Result<(BTreeMap<String, String>, String), String> {
    let routes = eval
        .module_argument("websocket_api", None, "routes")?
        .ok_or_else(|| format!("{COMPOSITION}: module websocket_api gets no routes"))?;
    let Value::Object(routes) = routes else {
        return Err(format!(
            "{COMPOSITION}: websocket_api routes is not a map: {routes}"
        ));
    };
    let mut websocket = BTreeMap::new();
    for (route, target) in &routes {
        let object = target.as_object();
        let by_name = function_of(object.and_then(|o| o.get("function_name")), "function_name");
        let by_arn = function_of(object.and_then(|o| o.get("invoke_arn")), "invoke_arn");
        match (by_name, by_arn) {
            (Some(name), Some(arn)) if name == arn => {
                websocket.insert(route.clone(), name);
            }
            _ => {
                return Err(format!(
                    "{COMPOSITION}: websocket route {route} must take function_name and invoke_arn from the same module.function instance, found {target}"
                ));
            }
        }
    }
    let http = eval
        .module_argument("http_api", None, "function")?
        .ok_or_else(|| format!("{COMPOSITION}: module http_api gets no function"))?;
    let object = http.as_object();
    let by_name = function_of(object.and_then(|o| o.get("function_name")), "function_name");
    let by_arn = function_of(object.and_then(|o| o.get("invoke_arn")), "invoke_arn");
    let http = match (by_name, by_arn) {
        (Some(name), Some(arn)) if name == arn => name,
        _ => {
            return Err(format!(
                "{COMPOSITION}: http_api function must take function_name and invoke_arn from the same module.function instance, found {http}"
            ));
        }
    };
    Ok((websocket, http))
}

/// The WebSocket routes and the HTTP API's $default route invoke the
/// functions the manifest says (`Function::routes`), and the API modules
/// turn what they are given into integrations, routes and permissions.
pub fn routes(tree: &Tree) -> Vec<String> {
    let mut problems = Vec::new();
    let eval = try_or_report!(problems, composition(tree, Scenario::ExecuteApi));
    let (websocket, http) = try_or_report!(problems, wired_routes(&eval));
    const HTTP_ROUTE: &str = "$default";
    for function in manifest::FUNCTIONS {
        for route in function.routes {
            let on_websocket = websocket.get(*route).map(String::as_str) == Some(function.name);
            let on_http = *route == HTTP_ROUTE && http == function.name;
            if !on_websocket && !on_http {
                problems.push(format!(
                    "{COMPOSITION}: route {route} should invoke function {} (handlers::manifest), but WebSocket {route} invokes {:?} and the HTTP API $default invokes {http:?}",
                    function.name,
                    websocket.get(*route),
                ));
            }
        }
    }
    let owner = |route: &str, target: &str| {
        manifest::FUNCTIONS
            .iter()
            .any(|function| function.name == target && function.routes.contains(&route))
    };
    for (route, target) in &websocket {
        if !owner(route, target) {
            problems.push(format!(
                "{COMPOSITION}: WebSocket route {route} invokes {target}, whose manifest routes are {:?}",
                manifest::FUNCTIONS.iter().find(|f| f.name == target).map(|f| f.routes)
            ));
        }
    }
    if !owner(HTTP_ROUTE, &http) {
        problems.push(format!(
            "{COMPOSITION}: the HTTP API $default route invokes {http}, which handlers::manifest does not route there"
        ));
    }
    problems.extend(websocket_module(tree));
    problems
}

/// The WebSocket module: one integration, route and permission per entry of
/// var.routes, the permission scoped to the stage and the route.
fn websocket_module(tree: &Tree) -> Vec<String> {
    let mut problems = Vec::new();
    let module = try_or_report!(problems, tree.module(WEBSOCKET_MODULE));
    let dir = WEBSOCKET_MODULE;
    let api = try_or_report!(problems, module.resource("aws_apigatewayv2_api", "this"));
    let expect = |problems: &mut Vec<String>,
                  what: &str,
                  body: &Body,
                  key: &str,
                  ok: &dyn Fn(&str) -> bool,
                  wanted: &str| {
        let found = attribute(body, key).map(source);
        if !found.as_deref().is_some_and(ok) {
            problems.push(format!(
                "{dir}: {what} {key} is {found:?}, expected {wanted}"
            ));
        }
    };
    expect(
        &mut problems,
        "the API",
        api.body(),
        "protocol_type",
        &|s| s == "\"WEBSOCKET\"",
        "\"WEBSOCKET\"",
    );
    expect(
        &mut problems,
        "the API",
        api.body(),
        "route_selection_expression",
        &|s| s == "\"$request.body.action\"",
        "\"$request.body.action\"",
    );
    for (kind, checks) in [
        (
            "aws_apigatewayv2_integration",
            vec![
                ("for_each", "var.routes"),
                ("integration_type", "\"AWS_PROXY\""),
                ("integration_uri", "each.value.invoke_arn"),
            ],
        ),
        (
            "aws_apigatewayv2_route",
            vec![("for_each", "var.routes"), ("route_key", "each.key")],
        ),
        (
            "aws_lambda_permission",
            vec![
                ("for_each", "var.routes"),
                ("function_name", "each.value.function_name"),
                ("principal", "\"apigateway.amazonaws.com\""),
            ],
        ),
    ] {
        match module.resource(kind, "this") {
            Ok(block) => {
                for (key, wanted) in checks {
                    expect(
                        &mut problems,
                        kind,
                        block.body(),
                        key,
                        &|s| s == wanted,
                        wanted,
                    );
                }
            }
            Err(err) => problems.push(err),
        }
    }
    if let Ok(route) = module.resource("aws_apigatewayv2_route", "this") {
        expect(
            &mut problems,
            "aws_apigatewayv2_route",
            route.body(),
            "target",
            &|s| s.contains("aws_apigatewayv2_integration.this[each.key].id"),
            "integrations/${aws_apigatewayv2_integration.this[each.key].id}",
        );
    }
    if let Ok(permission) = module.resource("aws_lambda_permission", "this") {
        expect(
            &mut problems,
            "aws_lambda_permission",
            permission.body(),
            "source_arn",
            &|s| {
                s.contains("aws_apigatewayv2_api.this.execution_arn}/${var.stage_name}/${each.key}")
            },
            "${aws_apigatewayv2_api.this.execution_arn}/${var.stage_name}/${each.key} (this stage, this route)",
        );
    }
    match module.resource("aws_apigatewayv2_stage", "this") {
        Ok(stage) => {
            expect(
                &mut problems,
                "the stage",
                stage.body(),
                "name",
                &|s| s == "var.stage_name",
                "var.stage_name",
            );
            expect(
                &mut problems,
                "the stage",
                stage.body(),
                "auto_deploy",
                &|s| s == "true",
                "true",
            );
            if nested(stage.body(), "default_route_settings")
                .next()
                .is_none()
            {
                problems.push(format!(
                    "{dir}: the stage has no default_route_settings (throttling)"
                ));
            }
        }
        Err(err) => problems.push(err),
    }
    for (output, must_contain) in [
        (
            "management_endpoint",
            vec!["https://", "var.stage_name", "aws_apigatewayv2_api.this"],
        ),
        (
            "websocket_url",
            vec!["var.stage_name", "aws_apigatewayv2_api.this"],
        ),
        (
            "execution_arn",
            vec!["aws_apigatewayv2_api.this.execution_arn"],
        ),
    ] {
        let found = module
            .block("output", &[output])
            .and_then(|block| attribute(block.body(), "value"))
            .map(source)
            .unwrap_or_default();
        for needle in must_contain {
            if !found.contains(needle) {
                problems.push(format!(
                    "{dir}: output {output} = {found:?} should contain {needle}"
                ));
            }
        }
    }
    problems
}

// --------------------------------------------------------------- HTTP API ---

/// The HTTP API: $default catch-all route to a Lambda proxy integration with
/// payload format 2.0 on the auto-deployed $default stage, access logs in
/// JSON, and a permission scoped to that stage and route.
pub fn http_api(tree: &Tree) -> Vec<String> {
    let mut problems = Vec::new();
    let module = try_or_report!(problems, tree.module(HTTP_MODULE));
    let dir = HTTP_MODULE;
    let check = |problems: &mut Vec<String>, kind: &str, key: &str, wanted: &str| match module
        .resource(kind, "this")
    {
        Ok(block) => {
            let found = attribute(block.body(), key).map(source);
            if found.as_deref() != Some(wanted) {
                problems.push(format!(
                    "{dir}: {kind}.this {key} is {found:?}, expected {wanted}"
                ));
            }
        }
        Err(err) => problems.push(err),
    };
    check(
        &mut problems,
        "aws_apigatewayv2_api",
        "protocol_type",
        "\"HTTP\"",
    );
    check(
        &mut problems,
        "aws_apigatewayv2_integration",
        "integration_type",
        "\"AWS_PROXY\"",
    );
    check(
        &mut problems,
        "aws_apigatewayv2_integration",
        "payload_format_version",
        "\"2.0\"",
    );
    check(
        &mut problems,
        "aws_apigatewayv2_integration",
        "integration_uri",
        "var.function.invoke_arn",
    );
    check(
        &mut problems,
        "aws_apigatewayv2_route",
        "route_key",
        "\"$default\"",
    );
    check(
        &mut problems,
        "aws_apigatewayv2_stage",
        "name",
        "\"$default\"",
    );
    check(
        &mut problems,
        "aws_apigatewayv2_stage",
        "auto_deploy",
        "true",
    );
    check(
        &mut problems,
        "aws_lambda_permission",
        "function_name",
        "var.function.function_name",
    );
    if let Ok(permission) = module.resource("aws_lambda_permission", "this") {
        let arn = attribute(permission.body(), "source_arn")
            .map(source)
            .unwrap_or_default();
        if !arn.contains("execution_arn}/${aws_apigatewayv2_stage.this.name}/$default") {
            problems.push(format!(
                "{dir}: the permission's source_arn {arn} should be <execution_arn>/<stage>/$default (this stage, this route)"
            ));
        }
    }
    // DOMAIN_NAME without a custom domain is this host: bare, no scheme
    // (handlers' config rejects anything else at init).
    for (output, wanted) in [
        ("endpoint", "aws_apigatewayv2_api.this.api_endpoint"),
        (
            "host",
            "trimprefix(aws_apigatewayv2_api.this.api_endpoint, \"https://\")",
        ),
    ] {
        let found = module
            .block("output", &[output])
            .and_then(|block| attribute(block.body(), "value"))
            .map(source);
        if found.as_deref().map(compact) != Some(compact(wanted)) {
            problems.push(format!(
                "{dir}: output {output} is {found:?}, expected {wanted}"
            ));
        }
    }
    if let Ok(stage) = module.resource("aws_apigatewayv2_stage", "this") {
        if nested(stage.body(), "default_route_settings")
            .next()
            .is_none()
        {
            problems.push(format!(
                "{dir}: the stage has no default_route_settings (throttling)"
            ));
        }
        match nested(stage.body(), "access_log_settings").next() {
            Some(logs) => {
                let format = attribute(logs.body(), "format")
                    .map(source)
                    .unwrap_or_default();
                if !format.starts_with("jsonencode(") {
                    problems.push(format!(
                        "{dir}: access log format should be jsonencode({{...}}), found {format}"
                    ));
                }
            }
            None => problems.push(format!("{dir}: the stage has no access_log_settings")),
        }
    }
    problems
}

/// A number out of a value (numbers, or strings of digits).
fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => text.parse().ok(),
        _ => None,
    }
}

/// The forwarding function's timeout exceeds its wait for the agent
/// (REQUEST_TIMEOUT_MS, else protocol's REQUEST_TIMEOUT) and stays under the
/// HTTP API's 30 s integration timeout, in the composition's defaults and in
/// every environment that overrides them.
pub fn forwarding_timeout(tree: &Tree) -> Vec<String> {
    let mut problems = Vec::new();
    let forwarding = manifest::FORWARDING.name;
    let integration_ms = tree
        .module(HTTP_MODULE)
        .ok()
        .and_then(|module| {
            module
                .resource("aws_apigatewayv2_integration", "this")
                .ok()
                .and_then(|block| attribute(block.body(), "timeout_milliseconds").cloned())
        })
        .and_then(|expr| match expr {
            Expression::Number(number) => number.as_f64(),
            _ => None,
        })
        .unwrap_or(HTTP_INTEGRATION_TIMEOUT_MS as f64);
    if integration_ms > HTTP_INTEGRATION_TIMEOUT_MS as f64 {
        problems.push(format!(
            "{HTTP_MODULE}: integration timeout_milliseconds {integration_ms} exceeds the HTTP API maximum of {HTTP_INTEGRATION_TIMEOUT_MS}"
        ));
    }

    // The composition with its defaults, then with what each env passes.
    let mut cases: Vec<(String, Vec<(&str, Value)>)> = vec![("defaults".to_owned(), Vec::new())];
    for env in tree.subdirectories("envs") {
        let overrides = match env_overrides(
            tree,
            &env,
            &["forwarding_timeout_seconds", "request_timeout_ms"],
        ) {
            Ok(overrides) => overrides,
            Err(err) => {
                problems.push(err);
                continue;
            }
        };
        if !overrides.is_empty() {
            cases.push((env, overrides));
        }
    }
    for (case, overrides) in cases {
        let eval = try_or_report!(problems, Evaluator::new(tree, COMPOSITION, &overrides));
        let timeout = match eval.module_argument("function", Some(forwarding), "timeout") {
            Ok(Some(value)) => value,
            Ok(None) => {
                problems.push(format!(
                    "{COMPOSITION}: module function gets no timeout ({case})"
                ));
                continue;
            }
            Err(err) => {
                problems.push(err);
                continue;
            }
        };
        let Some(timeout_ms) = number(&timeout).map(|seconds| seconds * 1000.0) else {
            problems.push(format!(
                "{COMPOSITION}: forwarding timeout is not a number: {timeout} ({case})"
            ));
            continue;
        };
        let wait_ms = match environment(&eval, &manifest::FORWARDING) {
            Ok(env) => match env.get("REQUEST_TIMEOUT_MS") {
                Some(ms) => ms.parse::<f64>().unwrap_or(f64::NAN),
                None => REQUEST_TIMEOUT.as_millis() as f64,
            },
            Err(err) => {
                problems.push(err);
                continue;
            }
        };
        if wait_ms.is_nan() || timeout_ms <= wait_ms {
            problems.push(format!(
                "{COMPOSITION}: the forwarding function times out after {timeout_ms} ms, not after its {wait_ms} ms wait for the agent: visitors would get a Lambda timeout instead of 504 ({case})"
            ));
        }
        if timeout_ms >= integration_ms {
            problems.push(format!(
                "{COMPOSITION}: the forwarding timeout ({timeout_ms} ms) must be under the HTTP API integration timeout ({integration_ms} ms), or visitors get a bare 503 ({case})"
            ));
        }
    }
    problems
}

/// The values an env passes to module "tunnel" for these variables
/// (evaluated with its terraform.tfvars and its variables' defaults).
fn env_overrides(
    tree: &Tree,
    env: &str,
    names: &[&'static str],
) -> Result<Vec<(&'static str, Value)>, String> {
    let tfvars = tfvars(tree, env)?;
    let overrides: Vec<(&str, Value)> = tfvars
        .iter()
        .map(|(key, value)| (key.as_str(), value.clone()))
        .collect();
    let eval = Evaluator::new(tree, env, &overrides)?;
    let mut found = Vec::new();
    for name in names {
        if let Some(value) = eval.module_argument("tunnel", None, name)? {
            found.push((*name, value));
        }
    }
    Ok(found)
}

/// The literal assignments of an env's terraform.tfvars.
fn tfvars(tree: &Tree, env: &str) -> Result<BTreeMap<String, Value>, String> {
    let path = format!("{env}/terraform.tfvars");
    let body = tree.parse(&path)?;
    let ctx = hcl::eval::Context::new();
    body.attributes()
        .map(|attribute| {
            use hcl::eval::Evaluate;
            attribute
                .expr()
                .evaluate(&ctx)
                .map(|value| (attribute.key().to_owned(), value))
                .map_err(|err| format!("{path}: {} is not a literal: {err}", attribute.key()))
        })
        .collect()
}

// ------------------------------------------------------------------- envs ---

/// Each env calls the composition module, gives it every variable it
/// requires, declares every variable its terraform.tfvars sets, and sets
/// every variable without a default.
pub fn envs(tree: &Tree) -> Vec<String> {
    let mut problems = Vec::new();
    let composition = try_or_report!(problems, tree.module(COMPOSITION));
    let required: Vec<&str> = composition
        .blocks("variable")
        .filter(|variable| attribute(variable.body(), "default").is_none())
        .map(|variable| label(variable, 0))
        .collect();
    for env in tree.subdirectories("envs") {
        let module = match tree.module(&env) {
            Ok(module) => module,
            Err(err) => {
                problems.push(err);
                continue;
            }
        };
        let Some(call) = module.block("module", &["tunnel"]) else {
            problems.push(format!("{env}: no module \"tunnel\" calling {COMPOSITION}"));
            continue;
        };
        match module.source_dir(call) {
            Ok(dir) if dir == COMPOSITION => {}
            Ok(dir) => problems.push(format!(
                "{env}: module tunnel's source is {dir}, expected {COMPOSITION}"
            )),
            Err(err) => problems.push(err),
        }
        for variable in &required {
            if attribute(call.body(), variable).is_none() {
                problems.push(format!(
                    "{env}: module tunnel does not set {variable}, which has no default"
                ));
            }
        }
        let declared: BTreeSet<&str> = module
            .blocks("variable")
            .map(|block| label(block, 0))
            .collect();
        let given = match tfvars(tree, &env) {
            Ok(given) => given,
            Err(err) => {
                problems.push(err);
                continue;
            }
        };
        for key in given.keys() {
            if !declared.contains(key.as_str()) {
                problems.push(format!(
                    "{env}/terraform.tfvars sets {key}, which {env} does not declare"
                ));
            }
        }
        for variable in module.blocks("variable") {
            let name = label(variable, 0);
            if attribute(variable.body(), "default").is_none() && !given.contains_key(name) {
                problems.push(format!(
                    "{env}/terraform.tfvars does not set {name}, which has no default"
                ));
            }
        }
        if let Err(err) = Evaluator::new(tree, &env, &[]) {
            problems.push(err);
        }
    }
    problems
}

/// A check: the problems it finds in a tree.
pub type Check = fn(&Tree) -> Vec<String>;

/// Every check, by name (for a single report).
pub fn all() -> Vec<(&'static str, Check)> {
    vec![
        ("files_parse", files_parse),
        ("module_layout", module_layout),
        ("variables_documented", variables_documented),
        ("function_instances", function_instances),
        ("function_environment", function_environment),
        ("function_iam", function_iam),
        ("function_module", function_module),
        ("tables", tables),
        ("routes", routes),
        ("http_api", http_api),
        ("forwarding_timeout", forwarding_timeout),
        ("envs", envs),
    ]
}
