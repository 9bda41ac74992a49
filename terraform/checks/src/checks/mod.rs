//! One function per check. Each returns the problems it found, as sentences
//! that say what is wrong, where, and what the contract expects; an empty
//! list means the check passes.
//!
//! A check compares the HCL with something the HCL does not own: the
//! handlers' manifest (environment, IAM, tables, routes), protocol and AWS
//! limits (timeouts), the handlers' configuration rules, or a promise the
//! documentation makes (least privilege, no secret in Terraform, zero idle
//! cost). Where such a comparison is made on the composition's module
//! arguments, the check also follows the few links that carry them to the
//! resources (the function module passes environment, timeout, role and
//! policy through; the API modules route what they are given). Values that
//! would only repeat the HCL (the API's protocol type, runtime, stage and log
//! names, …) are not checked: a pin like that must be edited in lockstep with
//! the HCL and catches nothing the author did not also write into the check.
//!
//! - [`files`]: every file parses, module layout, documented variables, envs
//!   that give the composition what it needs.
//! - [`functions`]: one function per manifest entry, its environment, its IAM.
//! - [`tables`]: the tables against the manifest.
//! - [`buckets`]: the buckets against the manifest, and private as promised.
//! - [`routes`]: routes → functions against the manifest.
//! - [`alarms`]: the log alarm of a 403 from `@connections` (metric filter
//!   and alarm) against the field and value the code logs.
//! - [`timeouts`]: forwarding's timeout against the protocol's wait and the
//!   HTTP API's limit.
//! - [`auth_secret`]: no value Terraform writes into the secret's parameter
//!   can sign a token (the handlers' own check says so).
//! - [`routing`]: one origin per tunnel with host routing (no execute-api
//!   endpoint, no apex), and routing and domain that agree.
//! - [`backend`]: remote state in S3 for the one root, each environment's
//!   own key, locking, the region in one place.
//! - [`names`]: `name` bounded by the longest resource name derived from it.
//! - [`limits`]: reserved concurrency checked against the account's quota
//!   at plan time.
//! - [`domain`]: the custom domain's mapping tied to the stage, no AAAA
//!   for an IPv4-only domain.
//! - [`files::provider_pins`]: one provider major everywhere.

use std::collections::BTreeMap;

use handlers::manifest::{Bucket, TABLES, Table};
use hcl::Value;

use crate::eval::Evaluator;
use crate::tree::Tree;

/// Returns the problems so far with `$result`'s error added, or its value.
macro_rules! try_or_report {
    ($problems:ident, $result:expr) => {
        match $result {
            Ok(value) => value,
            Err(err) => {
                $problems.push(err);
                return $problems;
            }
        }
    };
}

mod alarms;
mod auth_secret;
mod backend;
mod buckets;
mod domain;
mod files;
mod functions;
mod limits;
mod names;
mod routes;
mod routing;
mod tables;
mod timeouts;

pub use alarms::log_alarms;
pub use auth_secret::auth_secret_placeholder;
pub use backend::{backend, settings as backend_settings};
pub use buckets::buckets;
pub use domain::domain;
pub use files::{
    AWS_PROVIDER, ENV_FILES, MODULE_FILES, envs, files_parse, module_layout, provider_pins,
    variables_documented,
};
pub use functions::{function_environment, function_iam, function_instances, function_module};
pub use limits::{CONCURRENCY_QUOTA_CODE, LAMBDA_UNRESERVED_MINIMUM, concurrency_quota};
pub use names::{DerivedName, NAME_LIMITS, derived_names, name_bound, name_length};
pub use routes::routes;
pub use routing::routing;
pub use tables::tables;
pub use timeouts::{HTTP_INTEGRATION_TIMEOUT_MS, forwarding_timeout};

/// The composition module: every name the code relies on is wired here.
pub const COMPOSITION: &str = "modules/tunnel";
/// The one root module of every environment (`envs/<env>` holds only its
/// values and backend settings).
pub const ROOT: &str = "root";
pub const FUNCTION_MODULE: &str = "modules/function";
pub const TABLES_MODULE: &str = "modules/tables";
pub const WEBSOCKET_MODULE: &str = "modules/websocket_api";
pub const HTTP_MODULE: &str = "modules/http_api";

/// The domain used to evaluate the composition with a custom domain.
pub const EXAMPLE_DOMAIN: &str = "tunnel.example.com";

/// The two ways to deploy: path routing on execute-api, or host routing on
/// a custom domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    ExecuteApi,
    CustomDomain,
}

impl Scenario {
    pub const ALL: [Scenario; 2] = [Scenario::ExecuteApi, Scenario::CustomDomain];

    fn overrides(self) -> Vec<(&'static str, Value)> {
        match self {
            Scenario::ExecuteApi => vec![("routing", Value::from("path"))],
            Scenario::CustomDomain => vec![
                ("routing", Value::from("host")),
                ("domain_name", Value::from(EXAMPLE_DOMAIN)),
                ("route53_zone_id", Value::from("Z0123456789ABCDEFGHIJ")),
            ],
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Scenario::ExecuteApi => "without a custom domain",
            Scenario::CustomDomain => "with a custom domain",
        }
    }
}

/// The composition, evaluated for one scenario.
pub fn composition(tree: &Tree, scenario: Scenario) -> Result<Evaluator, String> {
    Evaluator::new(tree, COMPOSITION, &scenario.overrides())
}

/// The placeholder the evaluator gives an output of `module.function["name"]`.
pub fn function_output(function: &str, output: &str) -> String {
    format!("module.function[\"{function}\"].{output}")
}

/// The placeholder for the name / ARN outputs of a bucket's module
/// (`module.bodies.bucket_arn`: the module is named after the bucket's role).
pub fn bucket_output(bucket: &Bucket, what: &str) -> String {
    format!("module.{}.bucket_{what}", bucket.role)
}

/// The placeholder for the table name / ARN outputs of `module.tables`.
pub fn table_output(table: &Table, what: &str) -> String {
    format!("module.tables.{}_table_{what}", table.role)
}

pub(crate) fn table_by_role(role: &str) -> Option<&'static Table> {
    TABLES.iter().find(|table| table.role == role)
}

/// Source text without whitespace, to compare an expression with its
/// pretty-printed form.
pub(crate) fn compact(text: &str) -> String {
    text.chars().filter(|ch| !ch.is_whitespace()).collect()
}

/// The literal assignments of an env's terraform.tfvars.
pub(crate) fn tfvars(tree: &Tree, env: &str) -> Result<BTreeMap<String, Value>, String> {
    let path = format!("{env}/terraform.tfvars");
    let body = tree.parse(&path)?;
    let ctx = hcl::eval::Context::new();
    body.attributes()
        .map(|attribute| {
            use hcl::eval::Evaluate;
            attribute
                .expr()
                .evaluate(&ctx)
                .map(|value| (attribute.key().to_owned(), value))
                .map_err(|err| format!("{path}: {} is not a literal: {err}", attribute.key()))
        })
        .collect()
}

/// A check: the problems it finds in a tree.
pub type Check = fn(&Tree) -> Vec<String>;

/// Every check, by name (for a single report).
pub fn all() -> Vec<(&'static str, Check)> {
    vec![
        ("files_parse", files_parse),
        ("module_layout", module_layout),
        ("variables_documented", variables_documented),
        ("function_instances", function_instances),
        ("function_environment", function_environment),
        ("function_iam", function_iam),
        ("function_module", function_module),
        ("tables", tables),
        ("buckets", buckets),
        ("routes", routes),
        ("forwarding_timeout", forwarding_timeout),
        ("envs", envs),
        ("auth_secret_placeholder", auth_secret_placeholder),
        ("routing", routing),
        ("log_alarms", log_alarms),
        ("provider_pins", provider_pins),
        ("backend", backend),
        ("name_length", name_length),
        ("concurrency_quota", concurrency_quota),
        ("domain", domain),
    ]
}
