//! The custom domain's wiring: its API mapping takes the stage from the
//! stage resource (so it is created after the stage, not raced against
//! it), and it publishes no AAAA record for an IPv4-only domain.

use crate::tree::{Tree, attribute, label, literal_str, nested, source};

use super::routing::DOMAIN_MODULE;
use super::{COMPOSITION, HTTP_MODULE, Scenario, compact, composition};

/// - `aws_apigatewayv2_api_mapping.this` maps `var.http_api_stage`, a
///   variable without a default, which the composition fills with
///   `module.http_api.stage_name`, the HTTP API module's output of
///   `aws_apigatewayv2_stage.this.name` (a reference, not a literal: the
///   mapping depends on the stage);
/// - every Route 53 record of the domain module that is (or may be) AAAA
///   comes with a dual-stack custom domain (`ip_address_type =
///   "dualstack"`); a regional custom domain answers on IPv4 otherwise.
pub fn domain(tree: &Tree) -> Vec<String> {
    let mut problems = Vec::new();
    let module = try_or_report!(problems, tree.module(DOMAIN_MODULE));
    match module.resource("aws_apigatewayv2_api_mapping", "this") {
        Ok(mapping) => {
            let stage = attribute(mapping.body(), "stage").map(source);
            if stage.as_deref() != Some("var.http_api_stage") {
                problems.push(format!(
                    "{DOMAIN_MODULE}: aws_apigatewayv2_api_mapping.this stage is {stage:?}, expected var.http_api_stage (the stage resource's name, passed in)"
                ));
            }
        }
        Err(err) => problems.push(err),
    }
    if module
        .block("variable", &["http_api_stage"])
        .and_then(|variable| attribute(variable.body(), "default"))
        .is_some()
    {
        problems.push(format!(
            "{DOMAIN_MODULE}: variable http_api_stage has a default: a caller that forgets it maps a literal stage name, with no dependency on the stage"
        ));
    }
    let eval = try_or_report!(problems, composition(tree, Scenario::CustomDomain));
    match eval.module_argument("domain", None, "http_api_stage") {
        Ok(Some(value)) if value.as_str() == Some("module.http_api.stage_name") => {}
        Ok(other) => problems.push(format!(
            "{COMPOSITION}: module domain gets http_api_stage = {other:?}, expected module.http_api.stage_name"
        )),
        Err(err) => problems.push(err),
    }
    let http = try_or_report!(problems, tree.module(HTTP_MODULE));
    let output = http
        .block("output", &["stage_name"])
        .and_then(|block| attribute(block.body(), "value"))
        .map(source);
    if output.as_deref() != Some("aws_apigatewayv2_stage.this.name") {
        problems.push(format!(
            "{HTTP_MODULE}: output stage_name is {output:?}, expected aws_apigatewayv2_stage.this.name: a literal lets the custom domain's mapping be created before the stage exists"
        ));
    }

    let dualstack = module
        .resource("aws_apigatewayv2_domain_name", "this")
        .ok()
        .and_then(|block| nested(block.body(), "domain_name_configuration").next())
        .and_then(|config| attribute(config.body(), "ip_address_type"))
        .and_then(literal_str)
        == Some("dualstack");
    for record in module
        .blocks("resource")
        .filter(|block| label(block, 0) == "aws_route53_record")
    {
        let text = compact(&hcl::to_string(record.body()).unwrap_or_default());
        if text.contains("\"AAAA\"") && !dualstack {
            problems.push(format!(
                "{DOMAIN_MODULE}: aws_route53_record.{} publishes AAAA, but aws_apigatewayv2_domain_name.this is not dual-stack (ip_address_type = \"dualstack\"): IPv6 clients would get an address that does not answer",
                label(record, 1)
            ));
        }
    }
    problems
}
