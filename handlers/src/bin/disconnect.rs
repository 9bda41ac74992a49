//! `$disconnect`: see [`handlers::disconnect`].

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use handlers::config::DisconnectConfig;
use handlers::dynamo::{DynamoConnectionStore, DynamoPendingStore};
use handlers::store::Stores;
use handlers::{manifest, runtime};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let config = runtime::init(&manifest::DISCONNECT, |env| {
        DisconnectConfig::from_lookup(env)
    })?;
    let sdk = runtime::sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let store = Stores {
        connections: DynamoConnectionStore::new(dynamodb.clone(), &config.connections_table),
        pending: DynamoPendingStore::new(dynamodb, &config.pending_table),
    };
    let (config, store) = (&config, &store);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            Ok::<_, Error>(handlers::disconnect::handle(config, store, event.payload).await)
        },
    ))
    .await
}
