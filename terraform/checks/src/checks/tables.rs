//! The tables: keys, index, TTL and billing equal `handlers::manifest::TABLES`,
//! and the outputs the functions' environment and IAM take their names and
//! ARNs from point at the right table.

use std::collections::{BTreeMap, BTreeSet};

use handlers::manifest::TABLES;
use hcl::Body;

use crate::tree::{Tree, attribute, label, literal_str, nested, source};

use super::{TABLES_MODULE, table_by_role};

/// The table names and ARNs the tables module exports are the right tables'.
fn tables_outputs(tree: &Tree) -> Vec<String> {
    let mut problems = Vec::new();
    let module = try_or_report!(problems, tree.module(TABLES_MODULE));
    for table in TABLES {
        for what in ["name", "arn"] {
            let output = format!("{}_table_{what}", table.role);
            let wanted = format!("aws_dynamodb_table.{}.{what}", table.role);
            let found = module
                .block("output", &[output.as_str()])
                .and_then(|block| attribute(block.body(), "value"))
                .map(source);
            if found.as_deref() != Some(wanted.as_str()) {
                problems.push(format!(
                    "{TABLES_MODULE}: output {output} is {found:?}, expected {wanted}"
                ));
            }
        }
    }
    problems
}

fn string_attr(body: &Body, key: &str) -> Option<String> {
    attribute(body, key)
        .and_then(literal_str)
        .map(str::to_owned)
}

/// Keys, the index (name, key, projection), the TTL attribute and billing of
/// both tables equal `handlers::manifest::TABLES`; the outputs point at them.
pub fn tables(tree: &Tree) -> Vec<String> {
    let mut problems = tables_outputs(tree);
    let module = try_or_report!(problems, tree.module(TABLES_MODULE));
    let dir = TABLES_MODULE;
    let declared: BTreeSet<&str> = module
        .blocks("resource")
        .filter(|block| label(block, 0) == "aws_dynamodb_table")
        .map(|block| label(block, 1))
        .collect();
    for name in &declared {
        if table_by_role(name).is_none() {
            problems.push(format!(
                "{dir}: aws_dynamodb_table.{name} is not a table of handlers::manifest::TABLES"
            ));
        }
    }
    for table in TABLES {
        let resource = match module.resource("aws_dynamodb_table", table.role) {
            Ok(resource) => resource,
            Err(err) => {
                problems.push(err);
                continue;
            }
        };
        let body = resource.body();
        let name = format!("{dir}: aws_dynamodb_table.{}", table.role);
        let hash_key = string_attr(body, "hash_key");
        if hash_key.as_deref() != Some(table.hash_key) {
            problems.push(format!(
                "{name} hash_key is {hash_key:?}, expected {:?}",
                table.hash_key
            ));
        }
        if attribute(body, "range_key").is_some() {
            problems.push(format!("{name} has a range_key; the contract has none"));
        }
        let billing = string_attr(body, "billing_mode");
        if billing.as_deref() != Some("PAY_PER_REQUEST") {
            problems.push(format!("{name} billing_mode is {billing:?}, expected PAY_PER_REQUEST (zero cost while idle)"));
        }
        let attributes: BTreeMap<String, Option<String>> = nested(body, "attribute")
            .filter_map(|block| {
                string_attr(block.body(), "name")
                    .map(|attr| (attr, string_attr(block.body(), "type")))
            })
            .collect();
        let mut keys: BTreeSet<&str> = BTreeSet::from([table.hash_key]);
        keys.extend(table.indexes.iter().map(|index| index.hash_key));
        for key in &keys {
            match attributes.get(*key) {
                Some(Some(kind)) if kind == "S" => {}
                found => problems.push(format!(
                    "{name} declares key attribute {key} as {found:?}, expected type \"S\""
                )),
            }
        }
        for declared in attributes.keys() {
            if !keys.contains(declared.as_str()) {
                problems.push(format!(
                    "{name} declares attribute {declared}, which is no key or index key (DynamoDB rejects unused attribute definitions)"
                ));
            }
        }
        match nested(body, "ttl").next() {
            Some(ttl) => {
                let attr = string_attr(ttl.body(), "attribute_name");
                if attr.as_deref() != Some(table.ttl_attribute) {
                    problems.push(format!(
                        "{name} TTL attribute is {attr:?}, expected {:?}",
                        table.ttl_attribute
                    ));
                }
                let enabled = attribute(ttl.body(), "enabled").map(source);
                if enabled.as_deref() != Some("true") {
                    problems.push(format!("{name} TTL is not enabled (enabled = {enabled:?})"));
                }
            }
            None => problems.push(format!(
                "{name} has no ttl block (TTL on {:?})",
                table.ttl_attribute
            )),
        }
        let indexes: Vec<_> = nested(body, "global_secondary_index").collect();
        if attribute(body, "global_secondary_index").is_some()
            || nested(body, "local_secondary_index").next().is_some()
        {
            problems.push(format!("{name} declares indexes in an unexpected form"));
        }
        for index in table.indexes {
            let Some(block) = indexes
                .iter()
                .find(|block| string_attr(block.body(), "name").as_deref() == Some(index.name))
            else {
                problems.push(format!(
                    "{name} has no global_secondary_index {:?}",
                    index.name
                ));
                continue;
            };
            let hash_key = string_attr(block.body(), "hash_key");
            if hash_key.as_deref() != Some(index.hash_key) {
                problems.push(format!(
                    "{name} index {} hash_key is {hash_key:?}, expected {:?}",
                    index.name, index.hash_key
                ));
            }
            if attribute(block.body(), "range_key").is_some() {
                problems.push(format!(
                    "{name} index {} has a range_key; the contract has none",
                    index.name
                ));
            }
            let projection = string_attr(block.body(), "projection_type");
            if projection.as_deref() != Some(index.projection) {
                problems.push(format!(
                    "{name} index {} projection_type is {projection:?}, expected {:?}",
                    index.name, index.projection
                ));
            }
        }
        for block in &indexes {
            let index_name = string_attr(block.body(), "name").unwrap_or_default();
            if !table.indexes.iter().any(|index| index.name == index_name) {
                problems.push(format!(
                    "{name} has index {index_name:?}, which handlers::manifest does not list (the contract says: no GSI on connections; subdomain claims are items)"
                ));
            }
        }
    }
    problems
}
