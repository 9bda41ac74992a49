//! The tables, created from `handlers::manifest::TABLES` (the schema Terraform
//! is checked against), with names unique to one harness instance.

use std::{collections::BTreeMap, time::Duration};

use aws_sdk_dynamodb::{
    Client,
    types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
        Projection, ProjectionType, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
    },
};
use handlers::manifest::{TABLES, Table};

use crate::error::{BoxError, HarnessError};

/// How long a new table may take to become ACTIVE (instant locally).
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(60);

/// The harness's tables: manifest role → table name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    prefix: String,
    names: BTreeMap<&'static str, String>,
}

impl Tables {
    /// Creates every table of the manifest as `{prefix}-{role}`, waits for it
    /// to be ACTIVE and enables TTL on its TTL attribute.
    pub async fn create(client: &Client, prefix: &str) -> Result<Tables, HarnessError> {
        let tables = Tables::named(prefix);
        for table in TABLES {
            create_table(client, table, tables.name(table.role)).await?;
        }
        Ok(tables)
    }

    /// The names [`Tables::create`] gives, without creating anything (for a
    /// stage whose tables exist already).
    pub fn named(prefix: &str) -> Tables {
        Tables {
            prefix: prefix.to_string(),
            names: TABLES
                .iter()
                .map(|table| (table.role, format!("{prefix}-{}", table.role)))
                .collect(),
        }
    }

    /// A fresh prefix, `itest-<12 hex digits>`.
    pub fn unique_prefix() -> String {
        let id = uuid::Uuid::new_v4().simple().to_string();
        format!("itest-{}", &id[..12])
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The table playing `role` in the manifest (`connections`, `pending`).
    pub fn name(&self, role: &str) -> &str {
        self.names
            .get(role)
            .unwrap_or_else(|| panic!("the manifest has no table with role {role:?}"))
    }

    pub fn connections(&self) -> &str {
        self.name(handlers::manifest::CONNECTIONS.role)
    }

    pub fn pending(&self) -> &str {
        self.name(handlers::manifest::PENDING_REQUESTS.role)
    }

    /// `(environment variable, table name)` for every table, e.g.
    /// `("CONNECTIONS_TABLE_NAME", "itest-…-connections")`.
    pub fn environment(&self) -> impl Iterator<Item = (&'static str, &str)> {
        TABLES
            .iter()
            .map(|table| (table.env, self.name(table.role)))
    }

    /// Deletes the tables (best effort; for shared endpoints).
    pub async fn delete(&self, client: &Client) {
        for name in self.names.values() {
            let _ = client.delete_table().table_name(name).send().await;
        }
    }
}

fn table_error(
    operation: &'static str,
    table: &str,
) -> impl FnOnce(BoxError) -> HarnessError + use<> {
    let table = table.to_string();
    move |source| HarnessError::Table {
        operation,
        table,
        source,
    }
}

async fn create_table(client: &Client, table: &Table, name: &str) -> Result<(), HarnessError> {
    let key = |attribute: &str| {
        KeySchemaElement::builder()
            .attribute_name(attribute)
            .key_type(KeyType::Hash)
            .build()
            .expect("name and key type are set")
    };
    let mut attributes = vec![table.hash_key];
    for index in table.indexes {
        if !attributes.contains(&index.hash_key) {
            attributes.push(index.hash_key);
        }
    }
    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(table.hash_key));
    for attribute in attributes {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(attribute)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("name and type are set"),
        );
    }
    for index in table.indexes {
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(index.name)
                .key_schema(key(index.hash_key))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::from(index.projection))
                        .build(),
                )
                .build()
                .expect("name and key schema are set"),
        );
    }
    request
        .send()
        .await
        .map_err(|e| table_error("CreateTable", name)(e.into()))?;

    let started = std::time::Instant::now();
    loop {
        let description = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|e| table_error("DescribeTable", name)(e.into()))?;
        let status = description.table().and_then(|t| t.table_status());
        if status == Some(&TableStatus::Active) {
            break;
        }
        if started.elapsed() > ACTIVE_TIMEOUT {
            return Err(table_error("CreateTable", name)(
                format!("still {status:?} after {ACTIVE_TIMEOUT:?}").into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(table.ttl_attribute)
                .build()
                .expect("enabled and attribute are set"),
        )
        .send()
        .await
        .map_err(|e| table_error("UpdateTimeToLive", name)(e.into()))?;
    Ok(())
}
