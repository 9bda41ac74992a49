//! The deployment's `name` and every AWS name derived from it: the
//! composition's validation accepts exactly the names whose every derived
//! resource name fits AWS's limit, computed here from the HCL (the tightest
//! is the bodies bucket's prefix), so a long name fails at plan with a
//! sentence instead of at apply halfway through.

use hcl::{Block, Value};

use crate::eval::Evaluator;
use crate::tree::{Tree, attribute, label};

use super::COMPOSITION;

/// AWS's length limits on name attributes: (resource type, attribute,
/// longest value, why).
pub const NAME_LIMITS: &[(&str, &str, usize, &str)] = &[
    (
        "aws_s3_bucket",
        "bucket_prefix",
        37,
        "bucket names are at most 63 characters and Terraform appends a 26-character unique suffix",
    ),
    ("aws_s3_bucket", "bucket", 63, "S3 bucket names"),
    (
        "aws_lambda_function",
        "function_name",
        64,
        "Lambda function names",
    ),
    ("aws_iam_role", "name", 64, "IAM role names"),
    (
        "aws_iam_role_policy",
        "name",
        128,
        "IAM inline policy names",
    ),
    ("aws_cloudwatch_log_group", "name", 512, "log group names"),
    (
        "aws_cloudwatch_log_metric_filter",
        "name",
        512,
        "metric filter names",
    ),
    (
        "aws_cloudwatch_metric_alarm",
        "alarm_name",
        255,
        "alarm names",
    ),
    ("aws_dynamodb_table", "name", 255, "DynamoDB table names"),
    ("aws_apigatewayv2_api", "name", 128, "API Gateway API names"),
    ("aws_ssm_parameter", "name", 1011, "SSM parameter names"),
    ("aws_sns_topic", "name", 256, "SNS topic names"),
    (
        "aws_lambda_permission",
        "statement_id",
        100,
        "Lambda permission statement ids",
    ),
];

/// One instance of a module call: the module, its `for_each` key, its
/// arguments evaluated.
type Instance = (String, Option<String>, Vec<(String, Value)>);

/// One derived name: where, its length for a given `name`, its limit.
#[derive(Debug, Clone)]
pub struct DerivedName {
    /// e.g. `modules/bodies: aws_s3_bucket.this bucket_prefix`.
    pub at: String,
    pub value: String,
    pub limit: usize,
    pub why: &'static str,
}

/// Every name-limited attribute of every resource the composition creates
/// (alarms on, path routing), evaluated with `var.name = name`.
pub fn derived_names(tree: &Tree, name: &str) -> Result<Vec<DerivedName>, String> {
    let overrides = [
        ("name", Value::from(name)),
        ("alarms_enabled", Value::Bool(true)),
        ("routing", Value::from("path")),
    ];
    let composition = Evaluator::new(tree, COMPOSITION, &overrides)?;
    let mut names = resource_names(&composition)?;
    let calls: Vec<Block> = composition.module().blocks("module").cloned().collect();
    // The arguments of every instance of every module call, to resolve
    // placeholders like module.function["connect"].function_name.
    let mut instances: Vec<Instance> = Vec::new();
    for call in &calls {
        let module = label(call, 0).to_owned();
        if !composition.module_enabled(&module)? {
            continue;
        }
        let keys = composition.module_keys(&module)?;
        let keys: Vec<Option<String>> = if keys.is_empty() {
            vec![None]
        } else {
            keys.into_iter().map(Some).collect()
        };
        for key in keys {
            let mut arguments = Vec::new();
            for argument in call.body().attributes() {
                let argument = argument.key();
                if ["source", "for_each", "count", "depends_on", "providers"].contains(&argument) {
                    continue;
                }
                if let Some(value) =
                    composition.module_argument(&module, key.as_deref(), argument)?
                {
                    arguments.push((argument.to_owned(), value));
                }
            }
            instances.push((module.clone(), key, arguments));
        }
    }
    for (module, key, arguments) in &instances {
        let call = calls
            .iter()
            .find(|call| label(call, 0) == module)
            .expect("listed above");
        let dir = composition.module().source_dir(call)?;
        let arguments: Vec<(&str, Value)> = arguments
            .iter()
            .map(|(argument, value)| (argument.as_str(), resolve(tree, &calls, &instances, value)))
            .collect();
        let eval = Evaluator::new(tree, &dir, &arguments)?;
        let instance = key
            .as_ref()
            .map_or(String::new(), |key| format!("[\"{key}\"]"));
        for mut derived in resource_names(&eval)? {
            derived.at = format!("module.{module}{instance} ({})", derived.at);
            names.push(derived);
        }
    }
    Ok(names)
}

/// The name-limited attributes of a module's resources, every `for_each`
/// instance evaluated.
fn resource_names(eval: &Evaluator) -> Result<Vec<DerivedName>, String> {
    let mut names = Vec::new();
    let dir = eval.module().dir.clone();
    for resource in eval.module().blocks("resource") {
        let kind = label(resource, 0);
        for (_, key, limit, why) in NAME_LIMITS.iter().filter(|(k, ..)| *k == kind) {
            let Some(expr) = attribute(resource.body(), key) else {
                continue;
            };
            let instances: Vec<Vec<(&str, Value)>> = match attribute(resource.body(), "for_each") {
                None => vec![Vec::new()],
                Some(for_each) => {
                    let each = eval.evaluate(for_each)?;
                    let pairs: Vec<(Value, Value)> = match each {
                        Value::Object(map) => map
                            .into_iter()
                            .map(|(k, v)| (Value::String(k), v))
                            .collect(),
                        Value::Array(items) => items.into_iter().map(|v| (v.clone(), v)).collect(),
                        other => {
                            return Err(format!(
                                "{dir}: for_each of {kind}.{} is {other}",
                                label(resource, 1)
                            ));
                        }
                    };
                    pairs
                        .into_iter()
                        .map(|(k, v)| {
                            let mut each = hcl::Map::new();
                            each.insert("key".to_owned(), k);
                            each.insert("value".to_owned(), v);
                            vec![("each", Value::Object(each))]
                        })
                        .collect()
                }
            };
            for extra in instances {
                let value = eval.evaluate_with(expr, &extra)?;
                let Some(value) = value.as_str() else {
                    return Err(format!(
                        "{dir}: {kind}.{} {key} is {value}, not a string",
                        label(resource, 1)
                    ));
                };
                names.push(DerivedName {
                    at: format!("{dir}: {kind}.{} {key}", label(resource, 1)),
                    value: value.to_owned(),
                    limit: *limit,
                    why,
                });
            }
        }
    }
    Ok(names)
}

/// A module output placeholder (`module.function["connect"].function_name`)
/// replaced by the argument it passes through: the called module's output
/// is `<resource>.<attribute>`, whose expression is `var.<argument>`.
fn resolve(tree: &Tree, calls: &[Block], instances: &[Instance], value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), resolve(tree, calls, instances, v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| resolve(tree, calls, instances, v))
                .collect(),
        ),
        Value::String(text) => {
            resolve_placeholder(tree, calls, instances, text).unwrap_or_else(|| value.clone())
        }
        other => other.clone(),
    }
}

fn resolve_placeholder(
    tree: &Tree,
    calls: &[Block],
    instances: &[Instance],
    text: &str,
) -> Option<Value> {
    let rest = text.strip_prefix("module.")?;
    let (module, key, output) = match rest.split_once("[\"") {
        Some((module, tail)) => {
            let (key, output) = tail.split_once("\"].")?;
            (module, Some(key), output)
        }
        None => {
            let (module, output) = rest.split_once('.')?;
            (module, None, output)
        }
    };
    let call = calls.iter().find(|call| label(call, 0) == module)?;
    let source = tree.module(COMPOSITION).ok()?.source_dir(call).ok()?;
    let called = tree.module(&source).ok()?;
    let expr = called
        .block("output", &[output])
        .and_then(|block| attribute(block.body(), "value"))?
        .to_string();
    let (resource, attr) = expr.rsplit_once('.')?;
    let (kind, name) = resource.split_once('.')?;
    let passed = called
        .resource(kind, name)
        .ok()
        .and_then(|block| attribute(block.body(), attr))?
        .to_string();
    let argument = passed.strip_prefix("var.")?;
    instances
        .iter()
        .find(|(m, k, _)| m == module && k.as_deref() == key)?
        .2
        .iter()
        .find(|(a, _)| a == argument)
        .map(|(_, value)| value.clone())
}

/// The length and the character of the names [`name_bound`] measures with
/// (no derived name has an `x` of its own).
const SHORT: usize = 20;
const PROBE: &str = "x";

/// The longest `name` every derived name allows, and the derived name that
/// sets it. Each derived name grows by one character per character of
/// `name` (measured, not assumed: at two lengths).
pub fn name_bound(tree: &Tree) -> Result<(usize, DerivedName), String> {
    let short = derived_names(tree, &PROBE.repeat(SHORT))?;
    let long = derived_names(tree, &PROBE.repeat(SHORT + 1))?;
    let mut bound: Option<(usize, DerivedName)> = None;
    for (s, l) in short.iter().zip(&long) {
        let growth = l.value.len().saturating_sub(s.value.len());
        let allowed = if growth == 0 {
            usize::MAX
        } else {
            let fixed = s.value.len().saturating_sub(SHORT * growth);
            s.limit.saturating_sub(fixed) / growth
        };
        if bound.as_ref().is_none_or(|(b, _)| allowed < *b) {
            bound = Some((allowed, s.clone()));
        }
    }
    bound.ok_or_else(|| format!("{COMPOSITION}: no resource name derives from var.name"))
}

/// The composition's `name` validation accepts a name of exactly the
/// bound's length and refuses one character more; the bound is what every
/// derived name allows (see [`name_bound`]).
pub fn name_length(tree: &Tree) -> Vec<String> {
    let mut problems = Vec::new();
    let (bound, tightest) = try_or_report!(problems, name_bound(tree));
    let module = try_or_report!(problems, tree.module(COMPOSITION));
    let conditions: Vec<hcl::Expression> = module
        .block("variable", &["name"])
        .map(|variable| {
            crate::tree::nested(variable.body(), "validation")
                .filter_map(|validation| attribute(validation.body(), "condition").cloned())
                .collect()
        })
        .unwrap_or_default();
    if conditions.is_empty() {
        problems.push(format!(
            "{COMPOSITION}: variable \"name\" has no validation: a name longer than {bound} characters would fail at apply ({}: at most {} characters, {})",
            tightest.at, tightest.limit, tightest.why
        ));
        return problems;
    }
    let accepts = |name: &str| -> Result<bool, String> {
        let eval = Evaluator::new(tree, COMPOSITION, &[("name", Value::from(name))])?;
        for condition in &conditions {
            match eval.evaluate(condition) {
                Ok(Value::Bool(true)) => {}
                Ok(_) | Err(_) => return Ok(false),
            }
        }
        Ok(true)
    };
    let longest = format!("t{}", "a".repeat(bound.saturating_sub(1)));
    let too_long = format!("{longest}a");
    match accepts(&longest) {
        Ok(true) => {}
        Ok(false) => problems.push(format!(
            "{COMPOSITION}: the name validation refuses {longest:?} ({bound} characters), which every derived name allows: it should accept names up to {bound} characters"
        )),
        Err(err) => problems.push(err),
    }
    match accepts(&too_long) {
        Ok(false) => {}
        Ok(true) => problems.push(format!(
            "{COMPOSITION}: the name validation accepts {} characters, but with more than {bound} {} would be too long (it is {:?} for a {}-character name, at most {} characters: {})",
            bound + 1,
            tightest.at,
            tightest.value.replace(&PROBE.repeat(SHORT), "<name>"),
            SHORT,
            tightest.limit,
            tightest.why
        )),
        Err(err) => problems.push(err),
    }
    problems
}
