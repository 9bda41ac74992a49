//! The GitHub workflows, parsed: the real ones pass every rule, and each
//! rule catches the mistake it is for (the workflow as it was, or the
//! mistake, written back into a copy).

use std::path::Path;

use terraform_checks::workflows;

fn source(name: &str) -> String {
    std::fs::read_to_string(workflows::workflows_dir().join(name)).unwrap()
}

/// `check` on `name` with `from` replaced by `to` (which must be there).
#[track_caller]
fn detects(
    name: &str,
    from: &str,
    to: &str,
    check: fn(&str, &serde_norway::Value) -> Vec<String>,
    expected: &[&str],
) {
    let text = source(name);
    assert!(text.contains(from), "{name} does not contain {from:?}");
    let workflow = workflows::parse(&text.replacen(from, to, 1)).unwrap();
    let problems = check(name, &workflow);
    assert!(
        problems
            .iter()
            .any(|problem| expected.iter().all(|fragment| problem.contains(fragment))),
        "expected a problem mentioning {expected:?}, got:\n  - {}",
        problems.join("\n  - ")
    );
}

#[test]
fn the_workflows_pass_every_rule() {
    let problems = workflows::all();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(Path::new(&workflows::workflows_dir().join("deploy.yml")).exists());
}

/// What deploy.yml had: contents read and id-token write for every job,
/// the build (moving-branch actions, every dependency's build.rs) included.
#[test]
fn id_token_for_every_job() {
    detects(
        "deploy.yml",
        "permissions: {}\n",
        "permissions:\n  contents: read\n  id-token: write\n",
        workflows::permissions,
        &["deploy.yml: permissions at the top"],
    );
    detects(
        "deploy.yml",
        "    permissions:\n      contents: read\n    steps:",
        "    permissions:\n      contents: read\n      id-token: write\n    steps:",
        workflows::permissions,
        &["job build has id-token: write but configures no AWS credentials"],
    );
    detects(
        "ci.yml",
        "    permissions:\n      contents: read\n    services:",
        "    permissions:\n      contents: write\n    services:",
        workflows::permissions,
        &["job ci may write contents"],
    );
    detects(
        "deploy.yml",
        "    permissions:\n      contents: read\n      id-token: write # OIDC → the prod role\n",
        "",
        workflows::permissions,
        &["job prod has no permissions"],
    );
}

#[test]
fn an_action_by_tag() {
    detects(
        "deploy.yml",
        "hashicorp/setup-terraform@dfe3c3f87815947d99a8997f908cb6525fc44e9e # v4.0.1",
        "hashicorp/setup-terraform@v3",
        workflows::pinned,
        &["uses hashicorp/setup-terraform@v3, not pinned"],
    );
    detects(
        "ci.yml",
        "dtolnay/rust-toolchain@e081816240890017053eacbb1bdf337761dc5582 # 1.95",
        "dtolnay/rust-toolchain@master",
        workflows::pinned,
        &["dtolnay/rust-toolchain@master"],
    );
}

/// What deploy.yml had: `aws-region: eu-west-1` while the region was a
/// tfvars value.
#[test]
fn a_region_written_in_the_workflow() {
    detects(
        "deploy.yml",
        "aws-region: ${{ steps.env.outputs.region }}",
        "aws-region: eu-west-1",
        workflows::region,
        &["eu-west-1 is written in the workflow"],
    );
    detects(
        "deploy.yml",
        "run: echo \"region=$(scripts/tf.sh prod region)\" >> \"$GITHUB_OUTPUT\"",
        "run: echo \"region=$(scripts/tf.sh dev region)\" >> \"$GITHUB_OUTPUT\"",
        workflows::region,
        &["job prod gives configure-aws-credentials aws-region"],
    );
}

/// What deploy.yml had: `terraform -chdir=terraform/envs/dev init` with the
/// backend commented out, a fresh local state on every runner.
#[test]
fn terraform_without_the_remote_state() {
    detects(
        "deploy.yml",
        "run: scripts/tf.sh dev init\n",
        "run: terraform -chdir=terraform/root init -input=false\n",
        workflows::remote_state,
        &["job dev runs Terraform outside scripts/tf.sh"],
    );
    detects(
        "deploy.yml",
        "run: scripts/tf.sh prod init -lockfile=readonly\n",
        "run: echo skipped\n",
        workflows::remote_state,
        &["job prod runs scripts/tf.sh prod plan before scripts/tf.sh prod init"],
    );
    detects(
        "deploy.yml",
        "run: scripts/tf.sh prod apply -input=false -auto-approve\n",
        "run: scripts/tf.sh dev apply -input=false -auto-approve\n",
        workflows::remote_state,
        &["job prod (environment Some(\"prod\")) runs scripts/tf.sh dev apply"],
    );
}

#[test]
fn anything_applied_before_the_plan_or_the_secret_gate() {
    detects(
        "deploy.yml",
        "      - name: Plan everything before creating anything (quota, routing, name)\n        run: scripts/tf.sh dev plan -input=false\n",
        "",
        workflows::deploy_order,
        &["job dev runs [\"secret\", \"gate\", \"apply\"]"],
    );
    detects(
        "deploy.yml",
        "run: scripts/tf.sh prod apply -input=false -auto-approve -target=module.tunnel.module.auth_secret",
        "run: scripts/tf.sh prod apply -input=false -auto-approve",
        workflows::deploy_order,
        &["job prod runs [\"plan\", \"apply\", \"gate\", \"apply\"]"],
    );
}

/// What deploy.yml had: `ITEST_TOKEN: ${{ secrets.ITEST_TOKEN }}`, optional,
/// and expired: the gate failed with 401 and prod was never deployed.
#[test]
fn a_stored_gate_token() {
    detects(
        "deploy.yml",
        "          AUTH_SECRET_PARAMETER: ${{ needs.dev.outputs.auth_secret_parameter }}\n",
        "          AUTH_SECRET_PARAMETER: ${{ needs.dev.outputs.auth_secret_parameter }}\n          ITEST_TOKEN: ${{ secrets.ITEST_TOKEN }}\n",
        workflows::gate_token,
        &["reads secrets.ITEST_TOKEN"],
    );
    detects(
        "deploy.yml",
        "          token=$(scripts/gate-token.sh \"$AUTH_SECRET_PARAMETER\" target/gate/tunnel)\n",
        "          token=\"$STORED_TOKEN\"\n",
        workflows::gate_token,
        &["job gate runs the suite against a deployed stage without a token minted"],
    );
    detects(
        "deploy.yml",
        "          echo \"::add-mask::$token\"\n",
        "",
        workflows::gate_token,
        &["job gate runs the suite", "masked"],
    );
}
