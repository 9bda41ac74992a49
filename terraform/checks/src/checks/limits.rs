//! Reserved concurrency against the account: a reservation the account's
//! Lambda quota cannot hold fails at `PutFunctionConcurrency` after the
//! functions were created. The composition reads the quota at plan time
//! (the Service Quotas data source) and a postcondition stops the plan
//! before anything is created; this check evaluates that postcondition
//! against AWS's rule.

use hcl::Value;

use crate::eval::Evaluator;
use crate::tree::{Tree, attribute, literal_str, nested};

use super::COMPOSITION;

/// Lambda keeps this many concurrent executions unreserved: reservations
/// may take at most the account's quota minus this.
pub const LAMBDA_UNRESERVED_MINIMUM: u64 = 100;
/// Service Quotas' code of Lambda's "Concurrent executions".
pub const CONCURRENCY_QUOTA_CODE: &str = "L-B99A9384";

const DATA: [&str; 2] = ["aws_servicequotas_service_quota", "lambda_concurrency"];

/// - the composition reads Lambda's concurrency quota
///   ([`CONCURRENCY_QUOTA_CODE`]) exactly when it reserves something;
/// - its postcondition holds exactly when the quota leaves
///   [`LAMBDA_UNRESERVED_MINIMUM`] executions unreserved beside the
///   reservations (the defaults, and a small reservation), and its message
///   names the quota, the value to request and the way out
///   (`reserved_concurrency = {}`).
pub fn concurrency_quota(tree: &Tree) -> Vec<String> {
    let mut problems = Vec::new();
    let module = try_or_report!(problems, tree.module(COMPOSITION));
    let Some(data) = module.block("data", &DATA) else {
        problems.push(format!(
            "{COMPOSITION}: no data \"{}\" \"{}\": reserved concurrency the account's quota cannot hold would fail the apply after the functions were created",
            DATA[0], DATA[1]
        ));
        return problems;
    };
    let body = data.body();
    for (key, wanted) in [
        ("service_code", "lambda"),
        ("quota_code", CONCURRENCY_QUOTA_CODE),
    ] {
        let found = attribute(body, key).and_then(literal_str);
        if found != Some(wanted) {
            problems.push(format!(
                "{COMPOSITION}: data {}.{} {key} is {found:?}, expected {wanted:?} (Lambda's Concurrent executions)",
                DATA[0], DATA[1]
            ));
        }
    }
    let postcondition = nested(body, "lifecycle")
        .flat_map(|lifecycle| nested(lifecycle.body(), "postcondition"))
        .next();
    let Some(postcondition) = postcondition else {
        problems.push(format!(
            "{COMPOSITION}: data {}.{} has no postcondition: nothing compares the quota with the reservations",
            DATA[0], DATA[1]
        ));
        return problems;
    };
    let (Some(condition), Some(message)) = (
        attribute(postcondition.body(), "condition"),
        attribute(postcondition.body(), "error_message"),
    ) else {
        problems.push(format!(
            "{COMPOSITION}: the quota postcondition needs a condition and an error_message"
        ));
        return problems;
    };
    let count = attribute(body, "count");

    let reservations: [(&str, Option<Value>, u64); 3] = [
        ("the defaults", None, 0),
        ("one reservation of 1", Some(one_reservation()), 1),
        ("none", Some(Value::Object(hcl::Map::new())), 0),
    ];
    for (case, reserved, _) in reservations {
        let overrides: Vec<(&str, Value)> = reserved
            .clone()
            .map(|value| vec![("reserved_concurrency", value)])
            .unwrap_or_default();
        let eval = try_or_report!(problems, Evaluator::new(tree, COMPOSITION, &overrides));
        let reserved_map = eval
            .var("reserved_concurrency")
            .cloned()
            .unwrap_or(Value::Null);
        let total: u64 = reserved_map
            .as_object()
            .map(|map| map.values().filter_map(Value::as_u64).sum())
            .unwrap_or(0);
        let read = match count.map(|count| eval.evaluate(count)) {
            None => true,
            Some(Ok(value)) => value.as_u64() != Some(0),
            Some(Err(err)) => {
                problems.push(err);
                continue;
            }
        };
        if read != (total > 0) {
            problems.push(format!(
                "{COMPOSITION}: with {case} ({total} reserved) the quota is {}read: it must be read exactly when something is reserved (reading it needs servicequotas:GetServiceQuota)",
                if read { "" } else { "not " }
            ));
        }
        if total == 0 {
            continue;
        }
        let needed = total + LAMBDA_UNRESERVED_MINIMUM;
        for quota in [10, needed - 1, needed, 1000.max(needed)] {
            let mut this = hcl::Map::new();
            this.insert("value".to_owned(), Value::from(quota));
            let extra = [("self", Value::Object(this))];
            let holds = match eval.evaluate_with(condition, &extra) {
                Ok(Value::Bool(holds)) => holds,
                Ok(other) => {
                    problems.push(format!(
                        "{COMPOSITION}: the quota postcondition is {other}, not a bool"
                    ));
                    continue;
                }
                Err(err) => {
                    problems.push(err);
                    continue;
                }
            };
            if holds != (quota >= needed) {
                problems.push(format!(
                    "{COMPOSITION}: the quota postcondition {} a quota of {quota} with {case} ({total} reserved): Lambda keeps {LAMBDA_UNRESERVED_MINIMUM} unreserved, so it needs {needed}",
                    if holds { "accepts" } else { "refuses" }
                ));
            }
            if !holds {
                match eval.evaluate_with(message, &extra) {
                    Ok(Value::String(text)) => {
                        for needle in [
                            CONCURRENCY_QUOTA_CODE.to_owned(),
                            needed.to_string(),
                            "reserved_concurrency = {}".to_owned(),
                        ] {
                            if !text.contains(&needle) {
                                problems.push(format!(
                                    "{COMPOSITION}: the quota error message does not say {needle:?} (what to request, or how to reserve nothing): {text:?}"
                                ));
                            }
                        }
                    }
                    Ok(other) => {
                        problems.push(format!("{COMPOSITION}: the quota error message is {other}"))
                    }
                    Err(err) => problems.push(err),
                }
            }
        }
    }
    problems
}

fn one_reservation() -> Value {
    let mut map = hcl::Map::new();
    map.insert("forwarding".to_owned(), Value::from(1u64));
    Value::Object(map)
}
