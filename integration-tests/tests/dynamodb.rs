//! The DynamoDB part of the harness: the backend starts, and the tables it
//! creates match the handlers' manifest (the schema Terraform is checked
//! against), key for key.

use std::collections::BTreeSet;

use aws_sdk_dynamodb::types::{
    BillingMode, KeyType, ProjectionType, ScalarAttributeType, TimeToLiveStatus,
};
use handlers::manifest::TABLES;
use itest::{DynamoDb, Tables};

#[tokio::test]
async fn tables_match_the_manifest() -> anyhow::Result<()> {
    let db = DynamoDb::shared().await?;
    let client = db.client();
    let tables = Tables::create(&client, &Tables::unique_prefix()).await?;

    for table in TABLES {
        let name = tables.name(table.role);
        assert!(name.starts_with(tables.prefix()), "{name}");
        let description = client.describe_table().table_name(name).send().await?;
        let description = description
            .table()
            .expect("DescribeTable returns the table");

        let keys: Vec<_> = description
            .key_schema()
            .iter()
            .map(|k| (k.attribute_name(), k.key_type().clone()))
            .collect();
        assert_eq!(keys, [(table.hash_key, KeyType::Hash)], "{name} key schema");

        let mut expected_attributes: BTreeSet<&str> = BTreeSet::from([table.hash_key]);
        expected_attributes.extend(table.indexes.iter().map(|i| i.hash_key));
        let attributes: BTreeSet<&str> = description
            .attribute_definitions()
            .iter()
            .inspect(|a| assert_eq!(a.attribute_type(), &ScalarAttributeType::S))
            .map(|a| a.attribute_name())
            .collect();
        assert_eq!(attributes, expected_attributes, "{name} attributes");

        assert_eq!(
            description
                .billing_mode_summary()
                .and_then(|b| b.billing_mode()),
            Some(&BillingMode::PayPerRequest),
            "{name} billing mode"
        );

        let indexes = description.global_secondary_indexes();
        assert_eq!(indexes.len(), table.indexes.len(), "{name} index count");
        for expected in table.indexes {
            let index = indexes
                .iter()
                .find(|i| i.index_name() == Some(expected.name))
                .unwrap_or_else(|| panic!("{name} lacks index {}", expected.name));
            let keys: Vec<_> = index
                .key_schema()
                .iter()
                .map(|k| (k.attribute_name(), k.key_type().clone()))
                .collect();
            assert_eq!(keys, [(expected.hash_key, KeyType::Hash)]);
            assert_eq!(
                index.projection().and_then(|p| p.projection_type()),
                Some(&ProjectionType::from(expected.projection)),
            );
        }

        let ttl = client
            .describe_time_to_live()
            .table_name(name)
            .send()
            .await?;
        let ttl = ttl
            .time_to_live_description()
            .expect("DescribeTimeToLive returns a description");
        assert_eq!(ttl.time_to_live_status(), Some(&TimeToLiveStatus::Enabled));
        assert_eq!(ttl.attribute_name(), Some(table.ttl_attribute));
    }

    let env: Vec<_> = tables.environment().collect();
    assert_eq!(
        env,
        [
            ("CONNECTIONS_TABLE_NAME", tables.connections()),
            ("PENDING_REQUESTS_TABLE_NAME", tables.pending()),
        ]
    );
    tables.delete(&client).await;
    Ok(())
}

/// Two harness instances on one backend never see each other's tables.
#[tokio::test]
async fn prefixes_isolate_instances() -> anyhow::Result<()> {
    let db = DynamoDb::shared().await?;
    let client = db.client();
    let (prefix_a, prefix_b) = (Tables::unique_prefix(), Tables::unique_prefix());
    let (a, b) = tokio::try_join!(
        Tables::create(&client, &prefix_a),
        Tables::create(&client, &prefix_b),
    )?;
    assert_ne!(a.connections(), b.connections());
    assert_ne!(a.pending(), b.pending());
    let listed = client.list_tables().send().await?;
    for name in [a.connections(), a.pending(), b.connections(), b.pending()] {
        assert!(
            listed.table_names().iter().any(|n| n == name),
            "{name} not listed"
        );
    }
    Ok(())
}

/// The moto backend owned by a value stops when that value is dropped.
#[tokio::test]
async fn an_owned_moto_stops_on_drop() -> anyhow::Result<()> {
    if !matches!(
        itest::BackendChoice::from_env()?,
        itest::BackendChoice::Moto
    ) {
        eprintln!("skipped: ITEST_DYNAMODB does not select moto");
        return Ok(());
    }
    let db = DynamoDb::start(itest::BackendChoice::Moto).await?;
    let endpoint = db.endpoint().to_string();
    let address = endpoint.trim_start_matches("http://").to_string();
    assert!(std::net::TcpStream::connect(&address).is_ok());
    drop(db);
    assert!(
        std::net::TcpStream::connect(&address).is_err(),
        "moto still listens on {address} after drop"
    );
    Ok(())
}
