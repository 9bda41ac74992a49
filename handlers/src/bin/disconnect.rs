//! `$disconnect`: see [`handlers::disconnect`].

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use handlers::config::DisconnectConfig;
use handlers::store::dynamo::DynamoConnectionStore;
use handlers::{manifest, runtime};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let config = runtime::init(&manifest::DISCONNECT, |env| {
        DisconnectConfig::from_lookup(env)
    })?;
    let sdk = runtime::sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let connections = DynamoConnectionStore::new(dynamodb, &config.connections_table);
    let (config, connections) = (&config, &connections);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            Ok::<_, Error>(handlers::disconnect::handle(config, connections, event.payload).await)
        },
    ))
    .await
}
