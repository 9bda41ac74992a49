//! The agent-token secret's parameter: whatever Terraform writes into it is
//! refused by the connect function, so a fresh `terraform apply` can never
//! ship a secret anyone can read in this repository; and Terraform never
//! holds the secret: the value is write-only, so it is in no state file and
//! no plan.

use handlers::config::{PLACEHOLDER_MARKERS, signing_secret};

use crate::tree::{Tree, attribute, label, literal_str, nested, source};

/// The module that owns the secret's parameter.
pub const AUTH_SECRET_MODULE: &str = "modules/auth_secret";

/// Every `aws_ssm_parameter` in the tree (the auth secret's, and any other):
/// - its value is given only through `value_wo` (write-only: never stored
///   in the state; `value` and `insecure_value` are, and the provider
///   refreshes `value` from AWS into the state, decrypted, while it is
///   set), with a `value_wo_version`;
/// - that value is a literal `handlers::config::signing_secret`, the very
///   check the connect function applies to what it reads, refuses;
/// - `value_wo_version` is in `ignore_changes`, so no later apply sends the
///   placeholder over the real secret set out of band.
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
            for key in ["value", "insecure_value"] {
                if attribute(resource.body(), key).is_some() {
                    problems.push(format!(
                        "{path}: {name} sets {key}, which Terraform stores in its state (and the provider refreshes from AWS, decrypted, while it is set): give the placeholder through value_wo and value_wo_version (write-only, never stored)"
                    ));
                }
            }
            match attribute(resource.body(), "value_wo") {
                None => problems.push(format!(
                    "{path}: {name} sets no value_wo: the parameter needs a placeholder the connect function refuses"
                )),
                Some(expr) => match literal_str(expr) {
                    None => problems.push(format!(
                        "{path}: {name} value_wo = {} is not a literal string: the checks cannot prove the connect function refuses it (write a placeholder starting with one of {PLACEHOLDER_MARKERS:?})",
                        source(expr)
                    )),
                    Some(value) => {
                        if signing_secret(value).is_ok() {
                            problems.push(format!(
                                "{path}: {name} value_wo = {value:?} passes the connect function's secret check (handlers::config::signing_secret): a fresh apply would sign tokens with a value anyone can read in this repository; start it with one of {PLACEHOLDER_MARKERS:?}"
                            ));
                        }
                    }
                },
            }
            if attribute(resource.body(), "value_wo_version").is_none() {
                problems.push(format!(
                    "{path}: {name} sets no value_wo_version: the provider sends value_wo only with one"
                ));
            }
            let ignored = nested(resource.body(), "lifecycle")
                .filter_map(|lifecycle| attribute(lifecycle.body(), "ignore_changes"))
                .map(source)
                .any(|ignored| ignored.contains("value_wo_version"));
            if !ignored {
                problems.push(format!(
                    "{path}: {name} needs lifecycle {{ ignore_changes = [value_wo_version] }}: a version change would overwrite the real secret with the placeholder"
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
