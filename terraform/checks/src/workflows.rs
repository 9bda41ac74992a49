//! The GitHub workflows, parsed (YAML): what zizmor cannot know about this
//! project's deploy. Each function returns the problems it finds, as
//! sentences (empty = pass), like the Terraform checks.
//!
//! - [`permissions`]: nothing at the top; every job says what it needs;
//!   `id-token: write` only where AWS credentials are used;
//! - [`pinned`]: every action pinned by a full commit SHA;
//! - [`region`]: no region written in a workflow: every AWS step takes it
//!   from the environment's `terraform.tfvars` (`scripts/tf.sh ENV region`);
//! - [`remote_state`]: Terraform only through `scripts/tf.sh` (remote state,
//!   the environment's values), `init` before anything else, each job on its
//!   own environment;
//! - [`deploy_order`]: per environment, a full plan, the secret's parameter
//!   alone, the secret gate, then the full apply;
//! - [`gate_token`]: the suite against a deployed stage runs with a token
//!   minted in the same step from the environment's secret, never a stored
//!   one.

use std::path::{Path, PathBuf};

use serde_norway::Value;

/// `.github/workflows` of this repository.
pub fn workflows_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.github/workflows")
}

/// One workflow file, parsed.
pub fn load(name: &str) -> Result<Value, String> {
    let path = workflows_dir().join(name);
    let text =
        std::fs::read_to_string(&path).map_err(|err| format!("{}: {err}", path.display()))?;
    parse(&text).map_err(|err| format!("{name}: {err}"))
}

/// A workflow from its text.
pub fn parse(text: &str) -> Result<Value, String> {
    serde_norway::from_str(text).map_err(|err| err.to_string())
}

fn jobs(workflow: &Value) -> Vec<(String, &Value)> {
    workflow
        .get("jobs")
        .and_then(Value::as_mapping)
        .map(|jobs| {
            jobs.iter()
                .map(|(name, job)| (name.as_str().unwrap_or_default().to_owned(), job))
                .collect()
        })
        .unwrap_or_default()
}

fn steps(job: &Value) -> Vec<&Value> {
    job.get("steps")
        .and_then(Value::as_sequence)
        .map(|steps| steps.iter().collect())
        .unwrap_or_default()
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// The `uses` of a step, without its version (`aws-actions/configure-aws-credentials`).
fn action(step: &Value) -> &str {
    text(step, "uses").split('@').next().unwrap_or_default()
}

fn uses_aws(job: &Value) -> bool {
    steps(job)
        .iter()
        .any(|step| action(step) == "aws-actions/configure-aws-credentials")
}

/// The environment a job runs in (`environment: dev` or `{name: dev}`).
fn environment(job: &Value) -> Option<&str> {
    let env = job.get("environment")?;
    env.as_str()
        .or_else(|| env.get("name").and_then(Value::as_str))
}

/// - no `permissions` at the top (or `{}`): a job gets only what it asks for;
/// - every job has `permissions`, none `write-all`, none writes anything
///   but `id-token`;
/// - `id-token: write` exactly in the jobs that configure AWS credentials
///   (deploying, or reading the dev secret for the gate's token).
pub fn permissions(name: &str, workflow: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(top) = workflow.get("permissions") {
        let empty = top.as_mapping().is_some_and(|map| map.is_empty());
        if !empty {
            problems.push(format!(
                "{name}: permissions at the top ({}): every job would get them, the build's dependencies included; give each job its own",
                serde_norway::to_string(top).unwrap_or_default().trim()
            ));
        }
    }
    for (job_name, job) in jobs(workflow) {
        let Some(granted) = job.get("permissions") else {
            problems.push(format!(
                "{name}: job {job_name} has no permissions: it would get the repository's default token scope"
            ));
            continue;
        };
        if granted.as_str().is_some() {
            problems.push(format!(
                "{name}: job {job_name} has permissions {:?}; list each scope it needs",
                granted.as_str().unwrap_or_default()
            ));
            continue;
        }
        let mut id_token = false;
        for (scope, access) in granted.as_mapping().into_iter().flatten() {
            let scope = scope.as_str().unwrap_or_default();
            let access = access.as_str().unwrap_or_default();
            if access == "write" {
                if scope == "id-token" {
                    id_token = true;
                } else {
                    problems.push(format!(
                        "{name}: job {job_name} may write {scope}: no job of this workflow needs to"
                    ));
                }
            }
        }
        let aws = uses_aws(job);
        if id_token && !aws {
            problems.push(format!(
                "{name}: job {job_name} has id-token: write but configures no AWS credentials: only the jobs that deploy (or mint the gate's token) may ask for an OIDC token"
            ));
        }
        if aws && !id_token {
            problems.push(format!(
                "{name}: job {job_name} configures AWS credentials without id-token: write: OIDC is the only way in (no long-lived keys)"
            ));
        }
    }
    problems
}

/// Every `uses:` (steps and reusable workflows) names a full commit SHA; a
/// tag or branch can be moved to other code after review.
pub fn pinned(name: &str, workflow: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    for (job_name, job) in jobs(workflow) {
        let uses = job
            .get("uses")
            .into_iter()
            .chain(steps(job).into_iter().filter_map(|step| step.get("uses")));
        for reference in uses.filter_map(Value::as_str) {
            if reference.starts_with("./") {
                continue;
            }
            let sha = reference.rsplit_once('@').map(|(_, version)| version);
            let full = sha.is_some_and(|sha| {
                sha.len() == 40
                    && sha
                        .chars()
                        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            });
            if !full {
                problems.push(format!(
                    "{name}: job {job_name} uses {reference}, not pinned by a full commit SHA"
                ));
            }
        }
    }
    problems
}

/// Whether `text` holds something shaped like an AWS region (`eu-west-1`).
fn mentions_region(text: &str) -> Option<&str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .find(|word| {
            let parts: Vec<&str> = word.split('-').collect();
            parts.len() >= 3
                && parts[0].len() == 2
                && parts[0].chars().all(|c| c.is_ascii_lowercase())
                && parts[1..parts.len() - 1]
                    .iter()
                    .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
                && parts[parts.len() - 1].len() == 1
                && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit())
        })
}

/// No region is written in the workflow: every configure-aws-credentials
/// step takes `aws-region` from a step of the same job that runs
/// `scripts/tf.sh <env> region` for the job's environment, or from a job
/// output that comes from one.
pub fn region(name: &str, workflow: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let source = serde_norway::to_string(workflow).unwrap_or_default();
    for line in source
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
    {
        if let Some(region) = mentions_region(line) {
            problems.push(format!(
                "{name}: {region} is written in the workflow ({}): the region's one place is the environment's terraform.tfvars (scripts/tf.sh ENV region)",
                line.trim()
            ));
        }
    }
    let all_jobs = jobs(workflow);
    // Outputs named after a region step: job → output name → step id.
    let region_step = |job: &Value, id: &str| {
        steps(job).iter().any(|step| {
            text(step, "id") == id
                && environment(job).is_some_and(|env| {
                    text(step, "run").contains(&format!("scripts/tf.sh {env} region"))
                })
        })
    };
    for (job_name, job) in &all_jobs {
        for step in steps(job) {
            if action(step) != "aws-actions/configure-aws-credentials" {
                continue;
            }
            let given = step
                .get("with")
                .map(|with| text(with, "aws-region"))
                .unwrap_or_default()
                .replace(' ', "");
            let from_step = given
                .strip_prefix("${{steps.")
                .and_then(|rest| rest.strip_suffix(".outputs.region}}"))
                .is_some_and(|id| region_step(job, id));
            let from_job = given
                .strip_prefix("${{needs.")
                .and_then(|rest| rest.strip_suffix(".outputs.region}}"))
                .and_then(|needed| all_jobs.iter().find(|(n, _)| n == needed))
                .is_some_and(|(_, other)| {
                    environment(other) == environment(job)
                        && other
                            .get("outputs")
                            .map(|outputs| text(outputs, "region").replace(' ', ""))
                            .and_then(|output| {
                                output
                                    .strip_prefix("${{steps.")
                                    .and_then(|rest| rest.strip_suffix(".outputs.region}}"))
                                    .map(|id| region_step(other, id))
                            })
                            .unwrap_or(false)
                });
            if !from_step && !from_job {
                problems.push(format!(
                    "{name}: job {job_name} gives configure-aws-credentials aws-region = {given:?}, not the region scripts/tf.sh <its environment> region reads from terraform.tfvars"
                ));
            }
        }
    }
    problems
}

/// Terraform runs only through `scripts/tf.sh` (the shared root with the
/// environment's values and remote state; it fails early without the state
/// bucket); in each job that uses it, `scripts/tf.sh ENV init` comes before
/// any other `scripts/tf.sh` command, ENV is the job's environment, and
/// the job runs in an environment at all.
pub fn remote_state(name: &str, workflow: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    for (job_name, job) in jobs(workflow) {
        let mut initialised = false;
        for step in steps(job) {
            let run = text(step, "run");
            for line in run.lines() {
                if line.contains("terraform ")
                    && !line.contains("scripts/tf.sh")
                    && !line.trim_start().starts_with('#')
                    && (line.contains(" apply")
                        || line.contains(" plan")
                        || line.contains(" init") && !line.contains("-backend=false"))
                {
                    problems.push(format!(
                        "{name}: job {job_name} runs Terraform outside scripts/tf.sh ({}): without the environment's backend settings it would use a local state",
                        line.trim()
                    ));
                }
                let mut rest = line;
                while let Some(at) = rest.find("scripts/tf.sh ") {
                    rest = &rest[at + "scripts/tf.sh ".len()..];
                    let mut words = rest.split_whitespace();
                    let env = words.next().unwrap_or_default().trim_matches('"');
                    let command = words
                        .next()
                        .unwrap_or_default()
                        .trim_matches(|c| c == '"' || c == ')');
                    if command == "region" {
                        continue;
                    }
                    match environment(job) {
                        Some(own) if own == env => {}
                        other => problems.push(format!(
                            "{name}: job {job_name} (environment {other:?}) runs scripts/tf.sh {env} {command}: a job deploys its own environment only"
                        )),
                    }
                    if command == "init" {
                        initialised = true;
                    } else if !initialised {
                        problems.push(format!(
                            "{name}: job {job_name} runs scripts/tf.sh {env} {command} before scripts/tf.sh {env} init: nothing has checked the remote state"
                        ));
                    }
                }
            }
        }
    }
    problems
}

/// In every job that applies an environment: `scripts/tf.sh ENV plan`
/// first (the preconditions stop the run before anything exists), then
/// only the secret's parameter (`-target=module.tunnel.module.auth_secret`),
/// then `scripts/auth-secret-set.sh`, then the full apply.
pub fn deploy_order(name: &str, workflow: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    for (job_name, job) in jobs(workflow) {
        let commands: Vec<String> = steps(job)
            .iter()
            .flat_map(|step| {
                text(step, "run")
                    .lines()
                    .map(str::trim)
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .filter(|line| {
                line.contains("scripts/tf.sh")
                    && (line.contains(" plan") || line.contains(" apply"))
                    || line.contains("scripts/auth-secret-set.sh")
            })
            .collect();
        if !commands.iter().any(|line| line.contains(" apply")) {
            continue;
        }
        let kind = |line: &String| {
            if line.contains("scripts/auth-secret-set.sh") {
                "gate"
            } else if line.contains(" plan") {
                "plan"
            } else if line
                .trim_end()
                .ends_with("-target=module.tunnel.module.auth_secret")
            {
                "secret"
            } else {
                "apply"
            }
        };
        let order: Vec<&str> = commands.iter().map(kind).collect();
        if order != ["plan", "secret", "gate", "apply"] {
            problems.push(format!(
                "{name}: job {job_name} runs {order:?} ({commands:?}), expected a full plan, the secret's parameter alone, the secret gate, then the full apply: nothing that accepts connections before the gate, nothing at all before the plan"
            ));
        }
    }
    problems
}

/// The step that runs the suite against a deployed stage
/// (`ITEST_TARGET: deployed`) sets `ITEST_TOKEN` from a token minted in the
/// same step by `scripts/gate-token.sh` from the environment's secret
/// parameter, and no job reads a stored `ITEST_TOKEN` secret (it would
/// expire, and auth is required by default).
pub fn gate_token(name: &str, workflow: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let source = serde_norway::to_string(workflow).unwrap_or_default();
    if source.contains("secrets.ITEST_TOKEN") {
        problems.push(format!(
            "{name}: reads secrets.ITEST_TOKEN: a stored token expires and the gate fails with 401; mint one per run (scripts/gate-token.sh)"
        ));
    }
    let mut suites = 0;
    for (job_name, job) in jobs(workflow) {
        for step in steps(job) {
            let deployed = step
                .get("env")
                .map(|env| text(env, "ITEST_TARGET") == "deployed")
                .unwrap_or(false);
            if !deployed {
                continue;
            }
            suites += 1;
            let run = text(step, "run");
            let minted = run
                .lines()
                .position(|line| line.contains("=$(scripts/gate-token.sh"));
            let used = run.lines().position(|line| {
                line.contains("ITEST_TOKEN=\"$token\"") && line.contains("cargo test")
            });
            let masked = run.contains("::add-mask::$token");
            match (minted, used) {
                (Some(minted), Some(used)) if minted < used && masked => {}
                _ => problems.push(format!(
                    "{name}: job {job_name} runs the suite against a deployed stage without a token minted in the same step (token=$(scripts/gate-token.sh …), masked, then ITEST_TOKEN=\"$token\" cargo test …)"
                )),
            }
            if !uses_aws(job) {
                problems.push(format!(
                    "{name}: job {job_name} mints the gate's token but has no AWS credentials to read the secret"
                ));
            }
        }
    }
    if name == "deploy.yml" && suites == 0 {
        problems.push(format!(
            "{name}: no step runs the end-to-end suite against dev (ITEST_TARGET: deployed): prod would be applied untested"
        ));
    }
    problems
}

/// Every check on every workflow of the repository.
pub fn all() -> Vec<String> {
    let mut problems = Vec::new();
    let names: Vec<String> = match std::fs::read_dir(workflows_dir()) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".yml") || name.ends_with(".yaml"))
            .collect(),
        Err(err) => return vec![format!(".github/workflows: {err}")],
    };
    for name in names {
        match load(&name) {
            Ok(workflow) => {
                problems.extend(permissions(&name, &workflow));
                problems.extend(pinned(&name, &workflow));
                problems.extend(region(&name, &workflow));
                problems.extend(remote_state(&name, &workflow));
                problems.extend(deploy_order(&name, &workflow));
                problems.extend(gate_token(&name, &workflow));
            }
            Err(err) => problems.push(err),
        }
    }
    problems
}
