//! The log alarms: a 403 from `@connections` is logged with
//! `alarm = "manage_connections_forbidden"` (`handlers::notifier`); every
//! function that calls `@connections` must have that line counted by a
//! metric filter on its log group, and the alarms module must watch the
//! metric. The filter's pattern is evaluated and read back, so a renamed
//! field or value on either side is caught.

use handlers::manifest;
use handlers::notifier::{ALARM_FIELD, FORBIDDEN_ALARM};
use hcl::Value;
use hcl::eval::{Context, Evaluate as _};

use crate::tree::{Tree, attribute, nested, source};

use super::{COMPOSITION, FUNCTION_MODULE, Scenario, composition};

const ALARMS_MODULE: &str = "modules/alarms";

/// Every function that calls `@connections` counts [`FORBIDDEN_ALARM`]
/// lines, with a filter pattern selecting exactly [`ALARM_FIELD`] =
/// [`FORBIDDEN_ALARM`], into the namespace the alarms module watches, which
/// has an alarm on it.
pub fn log_alarms(tree: &Tree) -> Vec<String> {
    let mut problems = Vec::new();
    let eval = try_or_report!(problems, composition(tree, Scenario::ExecuteApi));
    let listed = |value: Option<Value>| {
        value
            .as_ref()
            .and_then(Value::as_array)
            .is_some_and(|items| items.iter().any(|v| v.as_str() == Some(FORBIDDEN_ALARM)))
    };
    for function in manifest::FUNCTIONS {
        if function.manage_connections.is_empty() {
            continue;
        }
        let value = try_or_report!(
            problems,
            eval.module_argument("function", Some(function.name), "log_alarms")
        );
        if !listed(value) {
            problems.push(format!(
                "{COMPOSITION}: function {} calls @connections but its log_alarms lack \"{FORBIDDEN_ALARM}\": a 403 would raise no alarm; add it to local.log_alarms",
                function.name
            ));
        }
    }
    let alarms = try_or_report!(problems, eval.module_argument("alarms", None, "log_alarms"));
    if !listed(alarms) {
        problems.push(format!(
            "{COMPOSITION}: module alarms gets no log_alarms with \"{FORBIDDEN_ALARM}\": nothing watches the metric"
        ));
    }
    let namespaces: Vec<Option<Value>> = ["function", "alarms"]
        .iter()
        .map(|module| {
            let key = (*module == "function").then_some("forwarding");
            eval.module_argument(module, key, "metric_namespace")
                .ok()
                .flatten()
        })
        .collect();
    if namespaces[0].is_none() || namespaces[0] != namespaces[1] {
        problems.push(format!(
            "{COMPOSITION}: modules function and alarms get different metric_namespace values ({:?} / {:?}): the alarm would watch an empty metric",
            namespaces[0], namespaces[1]
        ));
    }
    problems.extend(filter_pattern(tree));
    problems.extend(alarm_metric(tree));
    problems
}

/// `each.value` = [`FORBIDDEN_ALARM`], as for one `for_each` instance.
fn each_context() -> Context<'static> {
    let mut each = hcl::Map::new();
    each.insert("key".to_owned(), Value::from(FORBIDDEN_ALARM));
    each.insert("value".to_owned(), Value::from(FORBIDDEN_ALARM));
    let mut ctx = Context::new();
    ctx.declare_var("each", Value::Object(each));
    ctx
}

/// The function module's filter, evaluated for [`FORBIDDEN_ALARM`], is
/// `{ $.<ALARM_FIELD> = "<FORBIDDEN_ALARM>" }` and names its metric after
/// the value, in `var.metric_namespace`.
fn filter_pattern(tree: &Tree) -> Vec<String> {
    let mut problems = Vec::new();
    let dir = FUNCTION_MODULE;
    let module = try_or_report!(problems, tree.module(dir));
    let filter = try_or_report!(
        problems,
        module.resource("aws_cloudwatch_log_metric_filter", "alarm")
    );
    let ctx = each_context();
    let pattern = attribute(filter.body(), "pattern").map(|e| e.evaluate(&ctx));
    match pattern {
        Some(Ok(Value::String(pattern))) => match parse_equality(&pattern) {
            Some((field, value)) if field == ALARM_FIELD && value == FORBIDDEN_ALARM => {}
            _ => problems.push(format!(
                "{dir}: the metric filter pattern for {FORBIDDEN_ALARM} is {pattern:?}, which does not select the lines the code logs ({{ $.{ALARM_FIELD} = \"{FORBIDDEN_ALARM}\" }})"
            )),
        },
        other => problems.push(format!(
            "{dir}: aws_cloudwatch_log_metric_filter.alarm has no string pattern: {other:?}"
        )),
    }
    let transformation = nested(filter.body(), "metric_transformation").next();
    let name = transformation
        .and_then(|t| attribute(t.body(), "name"))
        .and_then(|e| e.evaluate(&ctx).ok());
    let namespace = transformation
        .and_then(|t| attribute(t.body(), "namespace"))
        .map(source);
    if name.as_ref().and_then(Value::as_str) != Some(FORBIDDEN_ALARM)
        || namespace.as_deref() != Some("var.metric_namespace")
    {
        problems.push(format!(
            "{dir}: the metric filter must count into metric each.value of var.metric_namespace (what modules/alarms watches), found {name:?} in {namespace:?}"
        ));
    }
    problems
}

/// The alarms module's log alarm watches metric `each.value` in
/// `var.metric_namespace`.
fn alarm_metric(tree: &Tree) -> Vec<String> {
    let mut problems = Vec::new();
    let module = try_or_report!(problems, tree.module(ALARMS_MODULE));
    let alarm = try_or_report!(
        problems,
        module.resource("aws_cloudwatch_metric_alarm", "log")
    );
    let name =
        attribute(alarm.body(), "metric_name").and_then(|e| e.evaluate(&each_context()).ok());
    let namespace = attribute(alarm.body(), "namespace").map(source);
    if name.as_ref().and_then(Value::as_str) != Some(FORBIDDEN_ALARM)
        || namespace.as_deref() != Some("var.metric_namespace")
    {
        problems.push(format!(
            "{ALARMS_MODULE}: aws_cloudwatch_metric_alarm.log must watch metric each.value of var.metric_namespace, found {name:?} in {namespace:?}"
        ));
    }
    problems
}

/// `{ $.field = "value" }` (CloudWatch Logs JSON filter syntax, one
/// equality) → (field, value).
fn parse_equality(pattern: &str) -> Option<(&str, &str)> {
    let inner = pattern.trim().strip_prefix('{')?.strip_suffix('}')?;
    let (field, value) = inner.split_once('=')?;
    let field = field.trim().strip_prefix("$.")?;
    let value = value.trim().strip_prefix('"')?.strip_suffix('"')?;
    (!field.is_empty() && !value.contains('"')).then_some((field, value))
}

#[cfg(test)]
mod tests {
    use super::parse_equality;

    #[test]
    fn reads_one_equality() {
        assert_eq!(
            parse_equality(r#"{ $.alarm = "x_y" }"#),
            Some(("alarm", "x_y"))
        );
        assert_eq!(parse_equality(r#"{$.a="b"}"#), Some(("a", "b")));
        assert_eq!(parse_equality(r#"{ $.a = "b" && $.c = "d" }"#), None);
        assert_eq!(parse_equality(r#"alarm"#), None);
    }
}
