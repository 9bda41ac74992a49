//! Remote state: the root keeps its state in S3, configured at `terraform
//! init` from each environment's `backend.hcl` (scripts/tf.sh), never in a
//! local file a CI runner throws away (a second run would try to create
//! every resource again), and with the region in one place.

use std::collections::BTreeMap;

use hcl::Value;
use hcl::eval::{Context, Evaluate as _};

use crate::tree::{Tree, label, literal_str, nested};

use super::{ROOT, tfvars};

/// Settings `backend.hcl` may not hold, and why.
const FORBIDDEN: [(&str, &str); 5] = [
    (
        "region",
        "the region's one place is the environment's terraform.tfvars (scripts/tf.sh passes it to init)",
    ),
    (
        "dynamodb_table",
        "Terraform >= 1.10 locks with a lock file in the bucket (use_lockfile); a DynamoDB lock table is deprecated",
    ),
    ("access_key", "credentials never live in the repository"),
    ("secret_key", "credentials never live in the repository"),
    (
        "profile",
        "a profile is a laptop's; the workflow's credentials come from OIDC",
    ),
];

/// - `root/versions.tf` declares `backend "s3" {}` with nothing in it (every
///   setting is an environment's);
/// - each `envs/<env>/backend.hcl` sets `key` (its own, naming the
///   environment), `encrypt = true` and `use_lockfile = true`, and nothing
///   from [`FORBIDDEN`]; `bucket`, when set, is a literal.
pub fn backend(tree: &Tree) -> Vec<String> {
    let mut problems = Vec::new();
    let versions = format!("{ROOT}/versions.tf");
    match tree.parse(&versions) {
        Ok(body) => {
            let backends: Vec<_> = nested(&body, "terraform")
                .flat_map(|terraform| nested(terraform.body(), "backend"))
                .collect();
            match backends.as_slice() {
                [backend] if label(backend, 0) == "s3" => {
                    if backend.body().iter().count() > 0 {
                        problems.push(format!(
                            "{versions}: backend \"s3\" sets values; every setting belongs to an environment's backend.hcl (a value here is shared by every environment's state)"
                        ));
                    }
                }
                [] => problems.push(format!(
                    "{versions}: no backend \"s3\" {{}}: the state would be a local file, lost with the CI runner, and the next run would create every resource again"
                )),
                other => problems.push(format!(
                    "{versions}: expected one backend \"s3\" {{}}, found {:?}",
                    other.iter().map(|b| label(b, 0)).collect::<Vec<_>>()
                )),
            }
        }
        Err(err) => problems.push(err),
    }

    let mut keys: BTreeMap<String, String> = BTreeMap::new();
    for env in tree.subdirectories("envs") {
        let name = env.rsplit('/').next().unwrap_or_default().to_owned();
        let path = format!("{env}/backend.hcl");
        let settings = match settings(tree, &path) {
            Ok(settings) => settings,
            Err(err) => {
                problems.push(err);
                continue;
            }
        };
        match settings.get("key").and_then(Value::as_str) {
            Some(key) if key.split('/').any(|part| part == name) => {
                if let Some(other) = keys.insert(key.to_owned(), env.clone()) {
                    problems.push(format!(
                        "{path}: key {key:?} is also {other}'s: two environments would share one state"
                    ));
                }
            }
            other => problems.push(format!(
                "{path}: key is {other:?}, expected a state key with the environment's name as a path segment, e.g. \"serverless-tunnel/{name}/terraform.tfstate\""
            )),
        }
        for flag in ["encrypt", "use_lockfile"] {
            if settings.get(flag) != Some(&Value::Bool(true)) {
                problems.push(format!(
                    "{path}: {flag} is {:?}, expected true ({})",
                    settings.get(flag),
                    if flag == "encrypt" {
                        "the state is encrypted at rest"
                    } else {
                        "two applies of one environment must not run at once"
                    }
                ));
            }
        }
        for (key, why) in FORBIDDEN {
            if settings.contains_key(key) {
                problems.push(format!("{path} sets {key}: {why}"));
            }
        }
        if let Some(bucket) = settings.get("bucket")
            && bucket.as_str().is_none_or(str::is_empty)
        {
            problems.push(format!(
                "{path}: bucket = {bucket} is not a bucket name (leave it out for the default, serverless-tunnel-state-<account>-<region>)"
            ));
        }
        match tfvars(tree, &env) {
            Ok(values) if values.get("region").and_then(Value::as_str).is_some() => {}
            Ok(_) => problems.push(format!(
                "{env}/terraform.tfvars sets no literal region: the provider, the state bucket and the workflow read it there"
            )),
            Err(err) => problems.push(err),
        }
    }
    problems
}

/// The literal settings of a backend configuration file.
pub fn settings(tree: &Tree, path: &str) -> Result<BTreeMap<String, Value>, String> {
    let body = tree.parse(path)?;
    if let Some(block) = body.blocks().next() {
        return Err(format!(
            "{path}: holds a block ({}); a backend configuration file is key = value lines",
            block.identifier()
        ));
    }
    body.attributes()
        .map(|attribute| {
            let value = literal_str(attribute.expr())
                .map(Value::from)
                .map(Ok)
                .unwrap_or_else(|| {
                    attribute.expr().evaluate(&Context::new()).map_err(|err| {
                        format!("{path}: {} is not a literal: {err}", attribute.key())
                    })
                })?;
            Ok((attribute.key().to_owned(), value))
        })
        .collect()
}
