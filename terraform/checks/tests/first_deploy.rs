//! What a first deploy on a fresh account trips over, each caught where the
//! HCL can tell: every test breaks a copy of the real tree back into what it
//! was before (or into the mistake the check is for) and asserts the check
//! names the problem.

use terraform_checks::{Tree, checks};

const ROOT_VERSIONS: &str = "root/versions.tf";
const DEV_BACKEND: &str = "envs/dev/backend.hcl";
const TUNNEL_VARIABLES: &str = "modules/tunnel/variables.tf";
const TUNNEL: &str = "modules/tunnel/main.tf";
const DOMAIN: &str = "modules/domain/main.tf";

#[track_caller]
fn assert_reported(problems: &[String], expected: &[&str]) {
    assert!(
        problems
            .iter()
            .any(|problem| expected.iter().all(|fragment| problem.contains(fragment))),
        "expected a problem mentioning {expected:?}, got:\n  - {}",
        problems.join("\n  - ")
    );
}

#[track_caller]
fn detects(path: &str, from: &str, to: &str, check: checks::Check, expected: &[&str]) {
    let tree = Tree::workspace().with_replaced(path, from, to);
    assert_reported(&check(&tree), expected);
}

/// The state lived in a local file (the backend was a comment): a second
/// workflow run would create every resource again.
#[test]
fn no_remote_state() {
    detects(
        ROOT_VERSIONS,
        "  backend \"s3\" {}\n",
        "  # backend \"s3\" {}\n",
        checks::backend,
        &["no backend \"s3\" {}", "lost with the CI runner"],
    );
    detects(
        ROOT_VERSIONS,
        "  backend \"s3\" {}\n",
        "  backend \"s3\" {\n    bucket = \"my-terraform-state\"\n  }\n",
        checks::backend,
        &["backend \"s3\" sets values"],
    );
}

#[test]
fn backend_settings_of_an_environment() {
    detects(
        DEV_BACKEND,
        "use_lockfile = true",
        "use_lockfile = false",
        checks::backend,
        &["envs/dev/backend.hcl: use_lockfile", "expected true"],
    );
    detects(
        DEV_BACKEND,
        "encrypt      = true\n",
        "encrypt      = true\nregion       = \"eu-west-1\"\n",
        checks::backend,
        &["envs/dev/backend.hcl sets region", "one place"],
    );
    detects(
        DEV_BACKEND,
        "serverless-tunnel/dev/terraform.tfstate",
        "serverless-tunnel/prod/terraform.tfstate",
        checks::backend,
        &["envs/dev/backend.hcl: key", "environment's name"],
    );
    let tree = Tree::workspace().without(DEV_BACKEND);
    assert_reported(
        &checks::module_layout(&tree),
        &["envs/dev holds", "backend.hcl"],
    );
}

/// An environment that is a whole root again (its own main.tf, as
/// envs/dev and envs/prod were, byte for byte the same).
#[test]
fn an_environment_with_its_own_configuration() {
    let tree = Tree::workspace().with_file(
        "envs/prod/main.tf",
        "module \"tunnel\" {\n  source = \"../../modules/tunnel\"\n}\n",
    );
    assert_reported(
        &checks::module_layout(&tree),
        &[
            "envs/prod holds",
            "main.tf",
            "one root for every environment",
        ],
    );
}

#[test]
fn an_environment_named_after_another() {
    detects(
        "envs/prod/terraform.tfvars",
        "environment         = \"prod\"",
        "environment         = \"dev\"",
        checks::envs,
        &[
            "envs/prod/terraform.tfvars sets environment",
            "expected \"prod\"",
        ],
    );
}

/// The pins before: `>= 5.0, < 7.0` (any of two majors) and Terraform 1.5,
/// which has no write-only arguments.
#[test]
fn a_provider_range_across_majors_or_an_old_terraform() {
    detects(
        "modules/bodies/versions.tf",
        "version = \"~> 6.62\"",
        "version = \">= 5.0, < 7.0\"",
        checks::provider_pins,
        &["modules/bodies/versions.tf requires aws", "~> 6.62"],
    );
    detects(
        ROOT_VERSIONS,
        "required_version = \">= 1.11\"",
        "required_version = \">= 1.5\"",
        checks::provider_pins,
        &["root/versions.tf: required_version", ">= 1.11"],
    );
}

/// The bound is computed, and it is the bodies bucket's prefix.
#[test]
fn the_tightest_derived_name_is_the_bodies_bucket_prefix() {
    let (bound, tightest) = checks::name_bound(&Tree::workspace()).unwrap();
    assert_eq!(bound, 29, "{tightest:?}");
    assert!(
        tightest.at.contains("aws_s3_bucket.this bucket_prefix"),
        "{tightest:?}"
    );
    assert_eq!(tightest.limit, 37);
}

/// Every derived name is evaluated, the function names (and their roles)
/// and the alarms' (through the function module's outputs) included.
#[test]
fn derived_names_cover_functions_and_alarms() {
    let names = checks::derived_names(&Tree::workspace(), "tunnel-dev").unwrap();
    let has = |value: &str| names.iter().any(|name| name.value == value);
    for value in [
        "tunnel-dev-forwarding",
        "tunnel-dev-bodies-",
        "tunnel-dev-pending-requests",
        "/tunnel-dev/auth-secret",
        "tunnel-dev-forwarding-duration-near-timeout",
        "tunnel-dev-alarms",
        "/aws/lambda/tunnel-dev-disconnect",
    ] {
        assert!(has(value), "{value} not among {names:#?}");
    }
}

/// The validation before allowed 39 characters: a 30-character name passed
/// the plan and failed creating the bucket.
#[test]
fn a_name_longer_than_its_derived_names_allow() {
    detects(
        TUNNEL_VARIABLES,
        "can(regex(\"^[a-z][a-z0-9-]{0,27}[a-z0-9]$\", var.name))",
        "can(regex(\"^[a-z][a-z0-9-]{1,38}$\", var.name))",
        checks::name_length,
        &[
            "accepts 30 characters",
            "aws_s3_bucket.this bucket_prefix",
            "at most 37",
        ],
    );
    detects(
        TUNNEL_VARIABLES,
        "can(regex(\"^[a-z][a-z0-9-]{0,27}[a-z0-9]$\", var.name))",
        "can(regex(\"^[a-z][a-z0-9-]{0,20}[a-z0-9]$\", var.name))",
        checks::name_length,
        &["refuses", "should accept names up to 29 characters"],
    );
}

/// Reservations with no check against the quota (what the module had):
/// PutFunctionConcurrency failed after the functions were created.
#[test]
fn reserved_concurrency_unchecked_against_the_quota() {
    let module = Tree::workspace();
    let text = module.text(TUNNEL).unwrap();
    let start = text
        .find("data \"aws_servicequotas_service_quota\"")
        .unwrap();
    let end = start + text[start..].find("\n}\n").unwrap() + 3;
    let tree = module.with_replaced(TUNNEL, &text[start..end], "");
    assert_reported(
        &checks::concurrency_quota(&tree),
        &[
            "no data \"aws_servicequotas_service_quota\"",
            "after the functions were created",
        ],
    );
    detects(
        TUNNEL,
        "self.value >= local.reserved_total + local.lambda_unreserved_minimum",
        "self.value >= local.reserved_total",
        checks::concurrency_quota,
        &["accepts a quota of 184", "needs 185"],
    );
    detects(
        TUNNEL,
        "  count = local.reserved_total > 0 ? 1 : 0\n\n  service_code",
        "  service_code",
        checks::concurrency_quota,
        &["with none (0 reserved) the quota is read"],
    );
}

/// The mapping named the stage by a literal: no dependency on the stage.
#[test]
fn a_domain_mapping_not_tied_to_the_stage() {
    detects(
        "modules/http_api/outputs.tf",
        "value       = aws_apigatewayv2_stage.this.name",
        "value       = \"$default\"",
        checks::domain,
        &["output stage_name", "before the stage exists"],
    );
    detects(
        DOMAIN,
        "  stage       = var.http_api_stage",
        "  stage       = \"$default\"",
        checks::domain,
        &["aws_apigatewayv2_api_mapping.this stage"],
    );
}

/// AAAA records for a domain that answers on IPv4 only (what it had).
#[test]
fn an_aaaa_record_without_a_dual_stack_domain() {
    detects(
        DOMAIN,
        "  type    = \"A\"\n",
        "  type    = \"AAAA\"\n",
        checks::domain,
        &["publishes AAAA", "not dual-stack"],
    );
}
