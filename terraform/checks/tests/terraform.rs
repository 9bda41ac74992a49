//! Every check against the real `terraform/` tree: each must find nothing.

use terraform_checks::{Tree, checks};

fn assert_passes(name: &str, check: checks::Check) {
    let problems = check(&Tree::workspace());
    assert!(
        problems.is_empty(),
        "check {name} found {} problem(s) in terraform/:\n  - {}",
        problems.len(),
        problems.join("\n  - ")
    );
}

#[test]
fn every_tf_file_parses() {
    assert_passes("files_parse", checks::files_parse);
}

#[test]
fn every_module_has_its_four_files_and_pins_versions() {
    assert_passes("module_layout", checks::module_layout);
}

#[test]
fn every_variable_is_typed_and_described() {
    assert_passes("variables_documented", checks::variables_documented);
}

#[test]
fn one_function_per_manifest_entry() {
    assert_passes("function_instances", checks::function_instances);
}

#[test]
fn function_environment_matches_the_manifest() {
    assert_passes("function_environment", checks::function_environment);
}

#[test]
fn function_iam_matches_the_manifest_exactly() {
    assert_passes("function_iam", checks::function_iam);
}

#[test]
fn function_module_grants_nothing_of_its_own() {
    assert_passes("function_module", checks::function_module);
}

#[test]
fn tables_match_the_manifest() {
    assert_passes("tables", checks::tables);
}

#[test]
fn routes_invoke_the_manifest_functions() {
    assert_passes("routes", checks::routes);
}

#[test]
fn forwarding_timeout_sits_between_the_wait_and_the_integration_timeout() {
    assert_passes("forwarding_timeout", checks::forwarding_timeout);
}

#[test]
fn buckets_match_the_manifest_and_stay_private() {
    assert_passes("buckets", checks::buckets);
}

#[test]
fn envs_call_the_composition_with_everything_it_needs() {
    assert_passes("envs", checks::envs);
}

#[test]
fn a_403_from_connections_raises_a_log_alarm() {
    assert_passes("log_alarms", checks::log_alarms);
}

#[test]
fn the_list_of_checks_is_complete() {
    // A check added to checks::all() without a test above still runs here.
    let tree = Tree::workspace();
    let failures: Vec<String> = checks::all()
        .into_iter()
        .flat_map(|(name, check)| {
            check(&tree)
                .into_iter()
                .map(move |p| format!("{name}: {p}"))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
