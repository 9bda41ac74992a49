//! `$connect`: see [`handlers::connect`].

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use handlers::config::ConnectConfig;
use handlers::dynamo::DynamoConnectionStore;
use handlers::{manifest, runtime};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let config = runtime::init(&manifest::CONNECT, |env| ConnectConfig::from_lookup(env))?;
    let sdk = runtime::sdk_config().await;
    let store = DynamoConnectionStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        &config.connections_table,
    );
    let (config, store) = (&config, &store);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            Ok::<_, Error>(handlers::connect::handle(config, store, event.payload).await)
        },
    ))
    .await
}
