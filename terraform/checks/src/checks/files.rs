//! The configuration as files: every one parses, every module has its four
//! files and pins its versions, every variable and output is documented, and
//! every env gives the composition what it needs (what `terraform validate`
//! would say, here where it cannot run).

use std::collections::BTreeSet;

use crate::eval::Evaluator;
use crate::tree::{Tree, attribute, label, literal_str, nested, source};

use super::{COMPOSITION, tfvars};

/// Every module and root configuration has these files.
pub const MODULE_FILES: [&str; 4] = ["main.tf", "variables.tf", "outputs.tf", "versions.tf"];

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

/// Every module under `modules/` and every root configuration under `envs/`
/// has main.tf, variables.tf, outputs.tf and versions.tf, and versions.tf
/// pins Terraform >= 1.5 and the AWS provider.
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
    for dir in modules.iter().chain(&envs) {
        let files = tree.files_in(dir);
        for file in MODULE_FILES {
            let path = format!("{dir}/{file}");
            if !files.contains(&path.as_str()) {
                problems.push(format!(
                    "{dir} has no {file} (every module has {MODULE_FILES:?})"
                ));
            }
        }
        let Ok(versions) = tree.parse(&format!("{dir}/versions.tf")) else {
            continue;
        };
        let Some(terraform) = nested(&versions, "terraform").next() else {
            problems.push(format!("{dir}/versions.tf has no terraform block"));
            continue;
        };
        match attribute(terraform.body(), "required_version").and_then(literal_str) {
            Some(constraint) if constraint.contains(">= 1.") => {}
            other => problems.push(format!(
                "{dir}/versions.tf: required_version is {other:?}, expected a constraint like \">= 1.5\""
            )),
        }
        let aws = nested(terraform.body(), "required_providers")
            .next()
            .and_then(|providers| attribute(providers.body(), "aws"))
            .map(source);
        match aws {
            Some(aws) if aws.contains("hashicorp/aws") && aws.contains("version") => {}
            _ => problems.push(format!(
                "{dir}/versions.tf does not require hashicorp/aws with a version constraint"
            )),
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

/// Each env calls the composition module, gives it every variable it
/// requires, declares every variable its terraform.tfvars sets, and sets
/// every variable without a default.
pub fn envs(tree: &Tree) -> Vec<String> {
    let mut problems = Vec::new();
    let composition = try_or_report!(problems, tree.module(COMPOSITION));
    let required: Vec<&str> = composition
        .blocks("variable")
        .filter(|variable| attribute(variable.body(), "default").is_none())
        .map(|variable| label(variable, 0))
        .collect();
    for env in tree.subdirectories("envs") {
        let module = match tree.module(&env) {
            Ok(module) => module,
            Err(err) => {
                problems.push(err);
                continue;
            }
        };
        let Some(call) = module.block("module", &["tunnel"]) else {
            problems.push(format!("{env}: no module \"tunnel\" calling {COMPOSITION}"));
            continue;
        };
        match module.source_dir(call) {
            Ok(dir) if dir == COMPOSITION => {}
            Ok(dir) => problems.push(format!(
                "{env}: module tunnel's source is {dir}, expected {COMPOSITION}"
            )),
            Err(err) => problems.push(err),
        }
        for variable in &required {
            if attribute(call.body(), variable).is_none() {
                problems.push(format!(
                    "{env}: module tunnel does not set {variable}, which has no default"
                ));
            }
        }
        let declared: BTreeSet<&str> = module
            .blocks("variable")
            .map(|block| label(block, 0))
            .collect();
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
                    "{env}/terraform.tfvars sets {key}, which {env} does not declare"
                ));
            }
        }
        for variable in module.blocks("variable") {
            let name = label(variable, 0);
            if attribute(variable.body(), "default").is_none() && !given.contains_key(name) {
                problems.push(format!(
                    "{env}/terraform.tfvars does not set {name}, which has no default"
                ));
            }
        }
        if let Err(err) = Evaluator::new(tree, &env, &[]) {
            problems.push(err);
        }
    }
    problems
}
