//! Routing and browser origins: with host routing every tunnel is its own
//! origin and there is no other way in (no `execute-api` endpoint, no apex
//! mapped: either would serve every tunnel on one origin by path); path
//! routing is a choice made explicitly, without a custom domain.

use hcl::Value;

use crate::eval::Evaluator;
use crate::tree::{Tree, attribute, nested};

use super::timeouts::env_overrides;
use super::{COMPOSITION, EXAMPLE_DOMAIN, Scenario, composition};

pub const DOMAIN_MODULE: &str = "modules/domain";

/// - the HTTP API's `execute-api` endpoint is disabled exactly with host
///   routing (path routing is served on it);
/// - the domain module exists exactly with host routing, and maps no apex:
///   only `*.DOMAIN` has a certificate, a custom domain and records;
/// - the composition refuses, at plan time, host routing without a domain
///   and path routing with one (the precondition on its `routing` output),
///   and every env's settings pass that precondition.
pub fn routing(tree: &Tree) -> Vec<String> {
    let mut problems = Vec::new();
    for scenario in Scenario::ALL {
        let eval = try_or_report!(problems, composition(tree, scenario));
        let host = scenario == Scenario::CustomDomain;
        let when = if host {
            "with host routing"
        } else {
            "with path routing"
        };
        match eval.module_argument("http_api", None, "disable_execute_api_endpoint") {
            Ok(Some(Value::Bool(disabled))) if disabled == host => {}
            Ok(found) => problems.push(format!(
                "{COMPOSITION}: module http_api gets disable_execute_api_endpoint = {found:?} {when}, expected {host}: {}",
                if host {
                    "the execute-api URL would serve every tunnel on one origin by path"
                } else {
                    "path routing is served on the execute-api URL"
                }
            )),
            Err(err) => problems.push(err),
        }
        match eval.module_enabled("domain") {
            Ok(enabled) if enabled == host => {}
            Ok(enabled) => problems.push(format!(
                "{COMPOSITION}: module domain is {} {when}",
                if enabled { "created" } else { "missing" }
            )),
            Err(err) => problems.push(err),
        }
    }
    problems.extend(no_apex(tree));
    problems.extend(routing_precondition(tree));
    problems
}

/// The domain module serves `*.DOMAIN` and never `DOMAIN` itself.
fn no_apex(tree: &Tree) -> Vec<String> {
    let mut problems = Vec::new();
    let overrides = [("domain_name", Value::from(EXAMPLE_DOMAIN))];
    let eval = try_or_report!(problems, Evaluator::new(tree, DOMAIN_MODULE, &overrides));
    let wildcard = format!("*.{EXAMPLE_DOMAIN}");
    let mut served = Vec::new();
    for (kind, attributes) in [
        ("aws_apigatewayv2_domain_name", &["for_each"][..]),
        (
            "aws_acm_certificate",
            &["domain_name", "subject_alternative_names"][..],
        ),
    ] {
        let resource = try_or_report!(problems, eval.module().resource(kind, "this"));
        for key in attributes {
            let Some(expr) = attribute(resource.body(), key) else {
                continue;
            };
            let value = try_or_report!(problems, eval.evaluate(expr));
            let names: Vec<String> = match &value {
                Value::String(name) => vec![name.clone()],
                Value::Array(items) => items.iter().filter_map(string).collect(),
                Value::Object(map) => map.values().filter_map(string).collect(),
                _ => Vec::new(),
            };
            for name in &names {
                if name == EXAMPLE_DOMAIN {
                    problems.push(format!(
                        "{DOMAIN_MODULE}: {kind}.this {key} includes the apex {EXAMPLE_DOMAIN}: https://DOMAIN/<sub>/ would serve every tunnel on one origin; serve {wildcard} only"
                    ));
                }
            }
            if kind == "aws_apigatewayv2_domain_name" {
                served.extend(names);
            }
        }
    }
    if !served.contains(&wildcard) {
        problems.push(format!(
            "{DOMAIN_MODULE}: no API Gateway custom domain for {wildcard} (found {served:?})"
        ));
    }
    problems
}

fn string(value: &Value) -> Option<String> {
    value.as_str().map(str::to_owned)
}

/// The precondition on the composition's `routing` output holds exactly for
/// host routing with a domain and path routing without, and every env's
/// settings satisfy it.
fn routing_precondition(tree: &Tree) -> Vec<String> {
    let mut problems = Vec::new();
    let module = try_or_report!(problems, tree.module(COMPOSITION));
    let condition = module
        .block("output", &["routing"])
        .and_then(|output| nested(output.body(), "precondition").next())
        .and_then(|precondition| attribute(precondition.body(), "condition"))
        .cloned();
    let Some(condition) = condition else {
        problems.push(format!(
            "{COMPOSITION}: output \"routing\" has no precondition: host routing without a domain, or path routing with one, would plan"
        ));
        return problems;
    };
    let holds = |overrides: &[(&str, Value)]| -> Result<bool, String> {
        let eval = Evaluator::new(tree, COMPOSITION, overrides)?;
        match eval.evaluate(&condition)? {
            Value::Bool(holds) => Ok(holds),
            other => Err(format!(
                "{COMPOSITION}: the routing precondition is not a bool: {other}"
            )),
        }
    };
    for routing in ["host", "path"] {
        for domain in [Value::from(EXAMPLE_DOMAIN), Value::Null] {
            let wanted = (routing == "host") != domain.is_null();
            let overrides = [
                ("routing", Value::from(routing)),
                ("domain_name", domain.clone()),
            ];
            match holds(&overrides) {
                Ok(found) if found == wanted => {}
                Ok(found) => problems.push(format!(
                    "{COMPOSITION}: the routing precondition {} routing = {routing:?} with domain_name = {domain}",
                    if found { "accepts" } else { "refuses" }
                )),
                Err(err) => problems.push(err),
            }
        }
    }
    for env in tree.subdirectories("envs") {
        let overrides = match env_overrides(tree, &env, &["routing", "domain_name"]) {
            Ok(overrides) => overrides,
            Err(err) => {
                problems.push(err);
                continue;
            }
        };
        match holds(&overrides) {
            Ok(true) => {}
            Ok(false) => problems.push(format!(
                "{env}: routing and domain_name ({overrides:?}) fail the composition's routing precondition: the plan would stop"
            )),
            Err(err) => problems.push(err),
        }
    }
    problems
}
