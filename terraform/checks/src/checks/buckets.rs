//! The buckets: one module per `handlers::manifest::BUCKETS` entry (named
//! after its role), whose objects only the roles of the functions with S3
//! actions on it may read or write (so only they can sign a working
//! presigned URL), expiring after the manifest's days, and private as
//! `docs/contracts.md` promises: public access blocked, encrypted, TLS only.

use std::collections::BTreeSet;

use handlers::manifest::{BUCKETS, Bucket, FUNCTIONS};
use hcl::{Block, Body, Value};

use crate::tree::{Module, Tree, attribute, label, literal_str, nested, source};

use super::{COMPOSITION, Scenario, compact, composition, function_output};

/// Where a bucket's module lives: `modules/<role>`.
fn module_dir(bucket: &Bucket) -> String {
    format!("modules/{}", bucket.role)
}

/// Every bucket of the manifest, checked.
pub fn buckets(tree: &Tree) -> Vec<String> {
    let mut problems = Vec::new();
    for bucket in BUCKETS {
        problems.extend(signers(tree, bucket));
        let dir = module_dir(bucket);
        match tree.module(&dir) {
            Ok(module) => problems.extend(private(&module, &dir, bucket)),
            Err(err) => problems.push(err),
        }
    }
    problems
}

/// The composition passes the bucket's module exactly the roles of the
/// functions the manifest gives S3 actions on it.
fn signers(tree: &Tree, bucket: &Bucket) -> Vec<String> {
    let mut problems = Vec::new();
    let eval = try_or_report!(problems, composition(tree, Scenario::ExecuteApi));
    let given = try_or_report!(
        problems,
        eval.module_argument(bucket.role, None, "object_role_arns")
    );
    let given: BTreeSet<String> = match given {
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map_or_else(|| item.to_string(), str::to_owned)
            })
            .collect(),
        other => {
            problems.push(format!(
                "{COMPOSITION}: module \"{}\" gets object_role_arns = {other:?}, expected a list of role ARNs",
                bucket.role
            ));
            return problems;
        }
    };
    let wanted: BTreeSet<String> = FUNCTIONS
        .iter()
        .filter(|function| function.s3.iter().any(|a| a.bucket == bucket.role))
        .map(|function| function_output(function.name, "role_arn"))
        .collect();
    for missing in wanted.difference(&given) {
        problems.push(format!(
            "{COMPOSITION}: module \"{}\" object_role_arns lacks {missing}: that function's code uses the bucket (handlers::manifest), and the bucket policy would deny it",
            bucket.role
        ));
    }
    for extra in given.difference(&wanted) {
        problems.push(format!(
            "{COMPOSITION}: module \"{}\" object_role_arns has {extra}, which handlers::manifest gives no S3 action on the bucket: it could sign URLs to the bodies",
            bucket.role
        ));
    }
    problems
}

fn resource<'a>(module: &'a Module, kind: &str, problems: &mut Vec<String>) -> Option<&'a Body> {
    match module.resource(kind, "this") {
        Ok(block) => Some(block.body()),
        Err(err) => {
            problems.push(err);
            None
        }
    }
}

fn first<'a>(body: &'a Body, path: &[&str]) -> Option<&'a Block> {
    let (head, rest) = path.split_first()?;
    let block = nested(body, head).next()?;
    if rest.is_empty() {
        Some(block)
    } else {
        first(block.body(), rest)
    }
}

fn text(body: &Body, key: &str) -> Option<String> {
    attribute(body, key).map(|expr| compact(&source(expr)))
}

/// What the module promises: outputs, lifecycle, public access block,
/// encryption and the bucket policy.
fn private(module: &Module, dir: &str, bucket: &Bucket) -> Vec<String> {
    let mut problems = Vec::new();
    for (output, wanted) in [
        ("bucket_name", "aws_s3_bucket.this.id"),
        ("bucket_arn", "aws_s3_bucket.this.arn"),
    ] {
        let found = module
            .block("output", &[output])
            .and_then(|block| attribute(block.body(), "value"))
            .map(source);
        if found.as_deref() != Some(wanted) {
            problems.push(format!(
                "{dir}: output {output} is {found:?}, expected {wanted} (the functions' BODIES_BUCKET_NAME and IAM)"
            ));
        }
    }

    // Lifecycle: every object expires after the manifest's days.
    if let Some(body) = resource(
        module,
        "aws_s3_bucket_lifecycle_configuration",
        &mut problems,
    ) {
        let rules: Vec<&Block> = nested(body, "rule").collect();
        let expiring = rules.iter().any(|rule| {
            let body = rule.body();
            let enabled = attribute(body, "status").and_then(literal_str) == Some("Enabled");
            // `prefix = ""` and nothing else: every object. An empty
            // `filter {}` means the same to S3 but draws the provider's
            // "Invalid Attribute Combination" warning (an error to come).
            let everything = first(body, &["filter"]).is_some_and(|f| {
                f.body().iter().count() == 1
                    && attribute(f.body(), "prefix").and_then(literal_str) == Some("")
            });
            let days = first(body, &["expiration"]).and_then(|e| text(e.body(), "days"));
            enabled && everything && days.as_deref() == Some("var.expiration_days")
        });
        if !expiring {
            problems.push(format!(
                "{dir}: no enabled lifecycle rule with filter {{ prefix = \"\" }} (every object, without the provider's warning on an empty filter {{}}) expires objects after var.expiration_days: bodies a crashed invocation leaves behind would stay"
            ));
        }
    }
    let default_days = module
        .block("variable", &["expiration_days"])
        .and_then(|block| text(block.body(), "default"));
    if default_days != Some(bucket.expiration_days.to_string()) {
        problems.push(format!(
            "{dir}: variable expiration_days defaults to {default_days:?}, expected {} (handlers::manifest)",
            bucket.expiration_days
        ));
    }

    if let Some(body) = resource(module, "aws_s3_bucket_public_access_block", &mut problems) {
        for flag in [
            "block_public_acls",
            "block_public_policy",
            "ignore_public_acls",
            "restrict_public_buckets",
        ] {
            if text(body, flag).as_deref() != Some("true") {
                problems.push(format!(
                    "{dir}: aws_s3_bucket_public_access_block.this {flag} is not true: the bucket must never be public"
                ));
            }
        }
    }

    if let Some(body) = resource(
        module,
        "aws_s3_bucket_server_side_encryption_configuration",
        &mut problems,
    ) {
        let algorithm = first(body, &["rule", "apply_server_side_encryption_by_default"])
            .and_then(|b| attribute(b.body(), "sse_algorithm"))
            .and_then(literal_str);
        if !matches!(algorithm, Some("AES256" | "aws:kms")) {
            problems.push(format!(
                "{dir}: no default encryption (sse_algorithm is {algorithm:?}, expected AES256 or aws:kms)"
            ));
        }
    }

    match resource(module, "aws_s3_bucket_policy", &mut problems) {
        Some(body) if text(body, "bucket").as_deref() == Some("aws_s3_bucket.this.id") => {}
        Some(_) => problems.push(format!(
            "{dir}: aws_s3_bucket_policy.this is not on aws_s3_bucket.this"
        )),
        None => {}
    }
    problems.extend(policy(module, dir));
    problems
}

/// The policy document denies every request without TLS, and object reads
/// and writes by any principal outside `var.object_role_arns`.
fn policy(module: &Module, dir: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let policy_source = module
        .resource("aws_s3_bucket_policy", "this")
        .ok()
        .and_then(|block| text(block.body(), "policy"));
    let Some(document) = policy_source
        .as_deref()
        .and_then(|s| s.strip_prefix("data.aws_iam_policy_document."))
        .and_then(|s| s.strip_suffix(".json"))
        .and_then(|name| module.block("data", &["aws_iam_policy_document", name]))
    else {
        problems.push(format!(
            "{dir}: aws_s3_bucket_policy.this policy is {policy_source:?}, expected data.aws_iam_policy_document.<name>.json of this module"
        ));
        return problems;
    };
    let statements: Vec<&Block> = nested(document.body(), "statement").collect();
    let deny_with = |variable: &str, test: &str, values: &str| {
        statements.iter().copied().find(|statement| {
            let body = statement.body();
            attribute(body, "effect").and_then(literal_str) == Some("Deny")
                && nested(body, "condition").any(|condition| {
                    let c = condition.body();
                    attribute(c, "variable").and_then(literal_str) == Some(variable)
                        && attribute(c, "test").and_then(literal_str) == Some(test)
                        && text(c, "values").as_deref() == Some(values)
                })
                && nested(body, "principals")
                    .any(|p| text(p.body(), "identifiers").as_deref() == Some("[\"*\"]"))
        })
    };
    let actions = |statement: &Block| text(statement.body(), "actions").unwrap_or_default();
    let resources = |statement: &Block| text(statement.body(), "resources").unwrap_or_default();

    match deny_with("aws:SecureTransport", "Bool", "[\"false\"]") {
        Some(statement) => {
            let covers = actions(statement) == "[\"s3:*\"]"
                && resources(statement).contains("aws_s3_bucket.this.arn,")
                && resources(statement).contains("${aws_s3_bucket.this.arn}/*");
            if !covers {
                problems.push(format!(
                    "{dir}: the TLS-only statement ({}) must deny s3:* on the bucket and its objects",
                    label(statement, 0)
                ));
            }
        }
        None => problems.push(format!(
            "{dir}: the bucket policy has no statement denying requests without TLS (Deny for principal * when aws:SecureTransport is false)"
        )),
    }
    match deny_with(
        "aws:PrincipalArn",
        "StringNotEquals",
        "var.object_role_arns",
    ) {
        Some(statement) => {
            let denied = actions(statement);
            let covers = denied.contains("\"s3:GetObject\"")
                && denied.contains("\"s3:PutObject\"")
                && resources(statement).contains("${aws_s3_bucket.this.arn}/*");
            if !covers {
                problems.push(format!(
                    "{dir}: the statement keeping objects to var.object_role_arns denies {denied}; it must deny s3:GetObject and s3:PutObject on the objects"
                ));
            }
        }
        None => problems.push(format!(
            "{dir}: the bucket policy does not deny object reads and writes to principals outside var.object_role_arns (Deny for principal * when aws:PrincipalArn is not one of them): any role of the account could sign URLs to the bodies"
        )),
    }
    problems
}
