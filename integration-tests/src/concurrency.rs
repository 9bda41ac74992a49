//! How many concurrent invocations each function gets on the local stack,
//! and what happens beyond: a function Terraform reserves concurrency for
//! (`reserved_concurrency` of the dev environment: its `terraform.tfvars`,
//! else the variable's default; null there means the tunnel module's
//! default) gets exactly that and is throttled beyond
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
    let set = tfvars
        .attributes()
        .find(|a| a.key() == "reserved_concurrency")
        .map(|a| a.expr().clone());
    let Some(expr) =
        set.map_or_else(|| variable_default(&read("variables.tf")?), |e| Ok(Some(e)))?
    else {
        return Ok(BTreeMap::new());
    };
    let mut value = expr
        .evaluate(&Context::new())
        .map_err(|e| format!("reserved_concurrency is not a literal: {e}"))?;
    if value.is_null() {
        // The module's variable is `nullable = false`: null is its default.
        value = module_default(workspace)?;
    }
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

/// The `default` of `variable "reserved_concurrency"` in a parsed file.
fn variable_default(body: &hcl::Body) -> Result<Option<hcl::Expression>, String> {
    Ok(body
        .blocks()
        .find(|b| {
            b.identifier() == "variable"
                && b.labels().first().map(|l| l.as_str()) == Some("reserved_concurrency")
        })
        .and_then(|b| b.body().attributes().find(|a| a.key() == "default"))
        .map(|a| a.expr().clone()))
}

/// The tunnel module's default reservations.
pub fn module_default(workspace: &Path) -> Result<hcl::Value, String> {
    let path = workspace.join("terraform/modules/tunnel/variables.tf");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let body = hcl::parse(&text).map_err(|e| format!("{} does not parse: {e}", path.display()))?;
    variable_default(&body)?
        .ok_or_else(|| format!("{} has no reserved_concurrency default", path.display()))?
        .evaluate(&Context::new())
        .map_err(|e| format!("the module's reserved_concurrency is not a literal: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_dev_environment() {
        let reserved = terraform_reserved(&crate::paths::workspace_root()).expect("readable");
        // Today dev reserves nothing (`reserved_concurrency = {}` in its
        // tfvars): the stack queues for UNRESERVED processes. A reservation added to dev shows
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
        // null: the tunnel module's default.
        std::fs::write(
            env.join("terraform.tfvars"),
            "reserved_concurrency = null\n",
        )
        .unwrap();
        let modules = dir.join("terraform/modules/tunnel");
        std::fs::create_dir_all(&modules).unwrap();
        std::fs::write(
            modules.join("variables.tf"),
            "variable \"reserved_concurrency\" {\n  default = { forwarding = 7 }\n  nullable = false\n}\n",
        )
        .unwrap();
        assert_eq!(
            terraform_reserved(&dir).unwrap(),
            BTreeMap::from([("forwarding".to_string(), 7)])
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// What terraform/README.md and the variable's description promise: by
    /// default forwarding is capped and the three other functions have
    /// capacity of their own, leaving 100 of AWS's default 1,000 unreserved.
    #[test]
    fn the_module_reserves_every_function_by_default() {
        let value = module_default(&crate::paths::workspace_root()).unwrap();
        let reserved: BTreeMap<String, u64> = value
            .as_object()
            .expect("a map")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_u64().expect("a count")))
            .collect();
        let names: Vec<&str> = handlers::manifest::FUNCTIONS
            .iter()
            .map(|f| f.name)
            .collect();
        let mut keys: Vec<&str> = reserved.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut expected = names.clone();
        expected.sort_unstable();
        assert_eq!(keys, expected);
        assert!(reserved.values().all(|n| *n >= 1), "{reserved:?}");
        assert!(reserved["forwarding"] < 1000 - 100);
        assert!(reserved.values().sum::<u64>() <= 1000 - 100);
    }
}
