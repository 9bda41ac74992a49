//! How many concurrent invocations each function gets on the local stack,
//! and what happens beyond: a function Terraform reserves concurrency for
//! (`reserved_concurrency` of the dev environment: its `terraform.tfvars`,
//! else the variable's default) gets exactly that and is throttled beyond
//! it, as on AWS; an unreserved one stands for the account's pool (1,000 by
//! default on AWS, so never throttled at local scale) and gets
//! [`UNRESERVED`] processes that invocations queue for, because a 2-core
//! machine cannot cold-start hundreds of processes at once within Lambda's
//! 10 s init limit (the end-to-end suite sends 120 concurrent visitors).

use std::{collections::BTreeMap, path::Path};

use hcl::eval::{Context, Evaluate as _};

/// Processes of an unreserved function; invocations beyond wait for one
/// (`OverConcurrency::Queue`), so nothing is throttled that AWS's default
/// pool would not throttle.
pub const UNRESERVED: usize = 10;

/// Function key → reserved concurrency, from the dev environment's Terraform.
pub fn terraform_reserved(workspace: &Path) -> Result<BTreeMap<String, usize>, String> {
    let env = workspace.join("terraform/envs/dev");
    let read = |name: &str| {
        let path = env.join(name);
        std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
            .and_then(|text| {
                hcl::parse(&text).map_err(|e| format!("{} does not parse: {e}", path.display()))
            })
    };
    let tfvars = read("terraform.tfvars")?;
    let variables = read("variables.tf")?;
    let set = tfvars
        .attributes()
        .find(|a| a.key() == "reserved_concurrency")
        .map(|a| a.expr().clone());
    let default = variables
        .blocks()
        .find(|b| {
            b.identifier() == "variable"
                && b.labels().first().map(|l| l.as_str()) == Some("reserved_concurrency")
        })
        .and_then(|b| b.body().attributes().find(|a| a.key() == "default"))
        .map(|a| a.expr().clone());
    let Some(expr) = set.or(default) else {
        return Ok(BTreeMap::new());
    };
    let value = expr
        .evaluate(&Context::new())
        .map_err(|e| format!("reserved_concurrency is not a literal: {e}"))?;
    let Some(map) = value.as_object() else {
        return Err(format!("reserved_concurrency is not a map: {value}"));
    };
    map.iter()
        .map(|(key, v)| {
            v.as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .map(|n| (key.clone(), n))
                .ok_or_else(|| format!("reserved_concurrency.{key} is not a count: {v}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_dev_environment() {
        let reserved = terraform_reserved(&crate::paths::workspace_root()).expect("readable");
        // Today every function is unreserved (`default = {}`): the stack
        // queues for UNRESERVED processes. A reservation added to dev shows
        // up here, and the stack throttles that function at it.
        for (function, n) in &reserved {
            assert!(
                handlers::manifest::FUNCTIONS
                    .iter()
                    .any(|f| f.name == function),
                "{function}"
            );
            assert!(*n >= 1);
        }
    }

    #[test]
    fn tfvars_win_over_the_default() {
        let dir = std::env::temp_dir().join(format!("itest-concurrency-{}", uuid::Uuid::new_v4()));
        let env = dir.join("terraform/envs/dev");
        std::fs::create_dir_all(&env).unwrap();
        std::fs::write(
            env.join("variables.tf"),
            "variable \"reserved_concurrency\" {\n  type = map(number)\n  default = { connect = 3 }\n}\n",
        )
        .unwrap();
        std::fs::write(env.join("terraform.tfvars"), "# nothing\n").unwrap();
        assert_eq!(
            terraform_reserved(&dir).unwrap(),
            BTreeMap::from([("connect".to_string(), 3)])
        );
        std::fs::write(
            env.join("terraform.tfvars"),
            "reserved_concurrency = { forwarding = 50 }\n",
        )
        .unwrap();
        assert_eq!(
            terraform_reserved(&dir).unwrap(),
            BTreeMap::from([("forwarding".to_string(), 50)])
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
