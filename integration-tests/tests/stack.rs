//! The harness's stack builder with proxies interposed (what the benchmark
//! counts through): every DynamoDB call of the functions and every
//! `@connections` post goes through them, so an observer sees the whole data
//! path of a request, on this stack's tables.

use std::sync::{Arc, Mutex};

use itest::{Exchange, LocalService, Observer, Stack, StackConfig};

/// What an observer saw: (DynamoDB operation or HTTP method, table or path, status).
#[derive(Default)]
struct Seen(Mutex<Vec<(String, String, u16)>>);

impl Seen {
    fn all(&self) -> Vec<(String, String, u16)> {
        self.0.lock().unwrap().clone()
    }
}

/// DynamoDB calls by `X-Amz-Target` and `TableName`.
struct DynamoDbCalls(Seen);

impl Observer for DynamoDbCalls {
    fn observe(&self, e: &Exchange<'_>) {
        let target = e
            .request_headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let operation = target.rsplit('.').next().unwrap_or_default().to_string();
        let request: serde_json::Value = serde_json::from_slice(e.request_body).unwrap_or_default();
        let table = request["TableName"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        self.0
            .0
            .lock()
            .unwrap()
            .push((operation, table, e.status.as_u16()));
    }
}

/// `@connections` calls by method and path.
struct ConnectionCalls(Seen);

impl Observer for ConnectionCalls {
    fn observe(&self, e: &Exchange<'_>) {
        self.0.0.lock().unwrap().push((
            e.method.to_string(),
            e.uri.path().to_string(),
            e.status.as_u16(),
        ));
    }
}

#[tokio::test]
async fn interposed_proxies_see_the_whole_data_path_of_a_request() -> anyhow::Result<()> {
    let dynamodb = Arc::new(DynamoDbCalls(Seen::default()));
    let connections = Arc::new(ConnectionCalls(Seen::default()));
    let stack = Stack::builder(StackConfig::for_tests())
        .interpose_dynamodb(dynamodb.clone())
        .interpose_connections(connections.clone())
        .start()
        .await?;
    let service = LocalService::start("observed").await?;
    let tunnel = stack.expose(&service.port()).await?;
    let response = reqwest::get(format!("{}/seen", tunnel.public_url())).await?;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-service"], "observed");

    let calls = dynamodb.0.all();
    let on = |operation: &str, table: &str| {
        calls
            .iter()
            .any(|(o, t, status)| o == operation && t == table && *status == 200)
    };
    let tables = stack.tables();
    // connect stores the connection; response writes the answer once;
    // forwarding polls for it and writes nothing to the pending table.
    assert!(on("PutItem", tables.connections()), "{calls:?}");
    assert!(on("PutItem", tables.pending()), "{calls:?}");
    assert!(on("GetItem", tables.pending()), "{calls:?}");
    let pending_writes = calls
        .iter()
        .filter(|(o, t, _)| t == tables.pending() && o != "GetItem")
        .count();
    assert_eq!(pending_writes, 1, "{calls:?}");
    // Table creation went straight to the backend: only the functions'
    // calls pass the proxy.
    assert!(calls.iter().all(|(o, ..)| o != "CreateTable"), "{calls:?}");

    // connection_established (response) and the http_request (forwarding),
    // both posted to this stage's @connections.
    let posts = connections.0.all();
    let prefix = format!("/{}/@connections/", stack.config().stage);
    let delivered = posts
        .iter()
        .filter(|(method, path, status)| {
            method == "POST" && path.starts_with(&prefix) && *status == 200
        })
        .count();
    assert!(delivered >= 2, "{posts:?}");

    tunnel.shutdown().await?;
    stack.shutdown().await;
    Ok(())
}
