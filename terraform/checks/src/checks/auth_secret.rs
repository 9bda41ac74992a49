//! The agent-token secret's parameter: whatever Terraform writes into it is
//! refused by the connect function, so a fresh `terraform apply` can never
//! ship a secret anyone can read in this repository.

use handlers::config::{PLACEHOLDER_MARKERS, signing_secret};

use crate::tree::{Tree, attribute, label, literal_str, nested, source};

/// The module that owns the secret's parameter.
pub const AUTH_SECRET_MODULE: &str = "modules/auth_secret";

/// Every `aws_ssm_parameter` in the tree (the auth secret's, and any other):
/// its value is a literal that `handlers::config::signing_secret`, the very
/// check the connect function applies to what it reads, refuses; and
/// Terraform ignores later changes to it, so the real secret set out of band
/// is never overwritten nor read into the state.
pub fn auth_secret_placeholder(tree: &Tree) -> Vec<String> {
    let mut problems = Vec::new();
    let mut found_in_module = false;
    for path in tree.paths().filter(|path| path.ends_with(".tf")) {
        let Ok(body) = tree.parse(path) else {
            continue; // files_parse reports it
        };
        for resource in nested(&body, "resource").filter(|r| label(r, 0) == "aws_ssm_parameter") {
            let name = format!("aws_ssm_parameter.{}", label(resource, 1));
            found_in_module |= path.starts_with(&format!("{AUTH_SECRET_MODULE}/"));
            let values: Vec<_> = ["value", "insecure_value"]
                .into_iter()
                .filter_map(|key| attribute(resource.body(), key).map(|expr| (key, expr)))
                .collect();
            if values.is_empty() {
                problems.push(format!("{path}: {name} sets no value"));
            }
            for (key, expr) in values {
                match literal_str(expr) {
                    None => problems.push(format!(
                        "{path}: {name} {key} = {} is not a literal string: the checks cannot prove the connect function refuses it (write a placeholder starting with one of {PLACEHOLDER_MARKERS:?})",
                        source(expr)
                    )),
                    Some(value) => {
                        if signing_secret(value).is_ok() {
                            problems.push(format!(
                                "{path}: {name} {key} = {value:?} passes the connect function's secret check (handlers::config::signing_secret): a fresh apply would sign tokens with a value anyone can read in this repository; start it with one of {PLACEHOLDER_MARKERS:?}"
                            ));
                        }
                    }
                }
            }
            let ignored = nested(resource.body(), "lifecycle")
                .filter_map(|lifecycle| attribute(lifecycle.body(), "ignore_changes"))
                .map(source)
                .any(|ignored| ignored.contains("value"));
            if !ignored {
                problems.push(format!(
                    "{path}: {name} needs lifecycle {{ ignore_changes = [value] }}: a later apply would overwrite the real secret with the placeholder"
                ));
            }
        }
    }
    if !found_in_module {
        problems.push(format!(
            "{AUTH_SECRET_MODULE}: no aws_ssm_parameter holds the agent-token secret"
        ));
    }
    problems
}
