//! The DynamoDB stores against a real DynamoDB API (moto, LocalStack or
//! DynamoDB Local): expressions, reserved words, conditions, the index.
//!
//! Runs only when `HANDLERS_TEST_DYNAMODB_ENDPOINT` is set, e.g.
//! `moto_server -p 5123 & HANDLERS_TEST_DYNAMODB_ENDPOINT=http://127.0.0.1:5123 cargo test -p tunnel-handlers --test dynamo_store`;
//! otherwise it passes without doing anything (the in-crate tests use fakes).

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use handlers::dynamo::{DynamoConnectionStore, DynamoPendingStore};
use handlers::manifest::{self, Table};
use handlers::store::{
    Claim, Connection, ConnectionStore, PendingRequest, PendingState, PendingStore, Written,
};
use protocol::{Headers, HttpResponse};

fn client(endpoint: &str) -> Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .endpoint_url(endpoint)
        .build();
    Client::from_conf(config)
}

async fn create(client: &Client, table: &Table, name: &str) {
    let key = |attr: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(attr)
            .key_type(kind)
            .build()
            .unwrap()
    };
    let attr = |attr: &str| {
        AttributeDefinition::builder()
            .attribute_name(attr)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    let mut req = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(table.hash_key, KeyType::Hash))
        .attribute_definitions(attr(table.hash_key));
    for index in table.indexes {
        req = req
            .attribute_definitions(attr(index.hash_key))
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(index.name)
                    .key_schema(key(index.hash_key, KeyType::Hash))
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::from(index.projection))
                            .build(),
                    )
                    .build()
                    .unwrap(),
            );
    }
    req.send().await.unwrap();
}

fn response(request_id: &str, status: u16) -> HttpResponse {
    let mut headers = Headers::new();
    headers.insert("set-cookie".into(), vec!["a=1".into(), "b=2".into()]);
    HttpResponse {
        request_id: request_id.into(),
        status_code: status,
        headers,
        body: protocol::encode_body(b"hello"),
        processing_time_ms: 1,
        body_chunks: None,
    }
}

#[tokio::test]
async fn stores_work_against_a_real_dynamodb_api() {
    let Ok(endpoint) = std::env::var("HANDLERS_TEST_DYNAMODB_ENDPOINT") else {
        eprintln!("HANDLERS_TEST_DYNAMODB_ENDPOINT not set: skipped");
        return;
    };
    let client = client(&endpoint);
    let suffix = protocol::generate_subdomain();
    let (ct, pt) = (format!("connections-{suffix}"), format!("pending-{suffix}"));
    create(&client, &manifest::CONNECTIONS, &ct).await;
    create(&client, &manifest::PENDING_REQUESTS, &pt).await;
    let conns = DynamoConnectionStore::new(client.clone(), &ct);
    let pending = DynamoPendingStore::new(client.clone(), &pt);

    // Claims: conditional put, expiry takeover, owner-only release.
    let now = 1_764_000_000;
    let claim = |owner: &str, ttl| Claim {
        subdomain: "abc".into(),
        owner_connection_id: owner.into(),
        created_at: now,
        ttl,
        resume_token_hash: Some(format!("hash-{owner}")),
        owner_user: None,
        released_at: None,
    };
    assert_eq!(
        conns
            .claim_subdomain(&claim("A=", now + 100), now)
            .await
            .unwrap(),
        Written::Yes
    );
    assert_eq!(
        conns
            .claim_subdomain(&claim("B=", now + 100), now)
            .await
            .unwrap(),
        Written::ConditionFailed
    );
    assert_eq!(
        conns
            .claim_subdomain(&claim("B=", now + 500), now + 101)
            .await
            .unwrap(),
        Written::Yes,
        "an expired claim is taken over"
    );
    assert_eq!(
        conns.get_claim("abc").await.unwrap().unwrap(),
        claim("B=", now + 500)
    );
    assert_eq!(
        conns
            .release_claim("abc", "A=", now + 200, now + 800)
            .await
            .unwrap(),
        Written::ConditionFailed
    );
    assert_eq!(
        conns.get_claim("abc").await.unwrap().unwrap().released_at,
        None
    );
    assert_eq!(
        conns
            .release_claim("abc", "B=", now + 200, now + 800)
            .await
            .unwrap(),
        Written::Yes
    );
    let released = conns.get_claim("abc").await.unwrap().unwrap();
    assert_eq!(
        (released.released_at, released.ttl),
        (Some(now + 200), now + 800)
    );
    assert_eq!(
        conns
            .claim_subdomain(&claim("C=", now + 900), now + 300)
            .await
            .unwrap(),
        Written::ConditionFailed,
        "a released claim is held for its resume window"
    );

    // Resume: only with the stored hash, within the window; the hash rotates.
    let mut resumed = claim("D=", now + 7500);
    resumed.resume_token_hash = Some("hash-D=".into());
    assert_eq!(
        conns
            .resume_claim(&resumed, "hash-wrong", now + 300)
            .await
            .unwrap(),
        Written::ConditionFailed
    );
    assert_eq!(
        conns
            .resume_claim(&resumed, "hash-B=", now + 801)
            .await
            .unwrap(),
        Written::ConditionFailed,
        "the window is over"
    );
    assert_eq!(
        conns
            .resume_claim(&resumed, "hash-B=", now + 300)
            .await
            .unwrap(),
        Written::Yes
    );
    assert_eq!(conns.get_claim("abc").await.unwrap().unwrap(), resumed);
    assert_eq!(
        conns
            .resume_claim(&claim("E=", now + 7500), "hash-B=", now + 300)
            .await
            .unwrap(),
        Written::ConditionFailed,
        "a resume token works once"
    );

    // Reserved: the same user takes a released claim back, nobody takes a live one.
    let reserved = |owner: &str, user: &str| Claim {
        subdomain: "alice-app".into(),
        owner_user: Some(user.into()),
        ..claim(owner, now + 7500)
    };
    assert_eq!(
        conns
            .claim_reserved(&reserved("A=", "alice"), now)
            .await
            .unwrap(),
        Written::Yes
    );
    assert_eq!(
        conns
            .claim_reserved(&reserved("B=", "alice"), now)
            .await
            .unwrap(),
        Written::ConditionFailed,
        "live"
    );
    conns
        .release_claim("alice-app", "A=", now, now + 600)
        .await
        .unwrap();
    assert_eq!(
        conns
            .claim_reserved(&reserved("B=", "bob"), now)
            .await
            .unwrap(),
        Written::ConditionFailed,
        "another user"
    );
    assert_eq!(
        conns
            .claim_reserved(&reserved("B=", "alice"), now)
            .await
            .unwrap(),
        Written::Yes
    );
    assert_eq!(
        conns.get_claim("alice-app").await.unwrap().unwrap(),
        reserved("B=", "alice")
    );

    // Connections.
    let connection = Connection {
        connection_id: "L0SM9cOFvHcCIhw=".into(),
        public_subdomain: "abc".into(),
        public_url: "https://abc.tunnel.example.com".into(),
        created_at: now,
        ttl: now + 7500,
        agent_version: Some("0.3.1".into()),
        agent_platform: None,
        source_ip: Some("203.0.113.7".into()),
        resume_token: Some("abc.token".into()),
    };
    conns.put_connection(&connection).await.unwrap();
    assert_eq!(
        conns
            .get_connection(&connection.connection_id)
            .await
            .unwrap(),
        Some(connection.clone())
    );
    conns
        .delete_connection(&connection.connection_id)
        .await
        .unwrap();
    conns
        .delete_connection(&connection.connection_id)
        .await
        .unwrap();
    assert_eq!(
        conns
            .get_connection(&connection.connection_id)
            .await
            .unwrap(),
        None
    );

    // Pending requests: conditional completion, index query, delete.
    let req = |id: &str, conn: &str| PendingRequest {
        request_id: id.into(),
        connection_id: conn.into(),
        api_gateway_request_id: "gw".into(),
        created_at: now,
        ttl: now + 330,
    };
    pending.put_pending(&req("r1", "A=")).await.unwrap();
    pending.put_pending(&req("r2", "A=")).await.unwrap();
    pending.put_pending(&req("r3", "B=")).await.unwrap();
    assert_eq!(
        pending.get_pending("r1").await.unwrap(),
        Some(PendingState::Pending)
    );
    assert_eq!(pending.get_pending("nope").await.unwrap(), None);

    assert_eq!(
        pending
            .complete_pending("r1", "B=", &response("r1", 200))
            .await
            .unwrap(),
        Written::ConditionFailed,
        "another connection may not answer"
    );
    assert_eq!(
        pending
            .complete_pending("r1", "A=", &response("r1", 200))
            .await
            .unwrap(),
        Written::Yes
    );
    assert_eq!(
        pending
            .complete_pending("r1", "A=", &response("r1", 500))
            .await
            .unwrap(),
        Written::ConditionFailed,
        "exactly once"
    );
    assert_eq!(
        pending
            .complete_pending("unknown", "A=", &response("unknown", 200))
            .await
            .unwrap(),
        Written::ConditionFailed
    );
    assert_eq!(
        pending.get_pending("unknown").await.unwrap(),
        None,
        "no upsert"
    );
    assert_eq!(
        pending.get_pending("r1").await.unwrap(),
        Some(PendingState::Completed(response("r1", 200)))
    );

    let mut ids = pending.pending_for_connection("A=").await.unwrap();
    ids.sort();
    assert_eq!(ids, vec!["r1", "r2"]);

    pending.delete_pending("r1").await.unwrap();
    assert_eq!(pending.get_pending("r1").await.unwrap(), None);
    assert_eq!(
        pending
            .complete_pending("r1", "A=", &response("r1", 200))
            .await
            .unwrap(),
        Written::ConditionFailed,
        "a late answer after delete does not recreate the item"
    );
}
