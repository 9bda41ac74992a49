//! Timeouts: the forwarding function outlives its wait for the agent and
//! gives up before the HTTP API does, in the composition's defaults and in
//! every env that overrides them.

use handlers::manifest;
use hcl::{Expression, Value};
use protocol::limits::REQUEST_TIMEOUT;

use crate::eval::Evaluator;
use crate::tree::{Tree, attribute};

use super::{COMPOSITION, HTTP_MODULE, ROOT, functions::environment, tfvars};

/// The HTTP API gives up on an integration after 30 s.
pub const HTTP_INTEGRATION_TIMEOUT_MS: u64 = 30_000;

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

/// The values the root passes to module "tunnel" for these variables with
/// an env's values (its terraform.tfvars and the root's defaults).
pub(super) fn env_overrides(
    tree: &Tree,
    env: &str,
    names: &[&'static str],
) -> Result<Vec<(&'static str, Value)>, String> {
    let tfvars = tfvars(tree, env)?;
    let overrides: Vec<(&str, Value)> = tfvars
        .iter()
        .map(|(key, value)| (key.as_str(), value.clone()))
        .collect();
    let eval = Evaluator::new(tree, ROOT, &overrides).map_err(|err| format!("{env}: {err}"))?;
    let mut found = Vec::new();
    for name in names {
        if let Some(value) = eval.module_argument("tunnel", None, name)? {
            found.push((*name, value));
        }
    }
    Ok(found)
}
