//! `$connect`: see [`handlers::connect`].

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use handlers::auth::AuthSource;
use handlers::config::ConnectConfig;
use handlers::store::dynamo::DynamoConnectionStore;
use handlers::{manifest, runtime};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let config = runtime::init(&manifest::CONNECT, |env| ConnectConfig::from_lookup(env))?;
    let sdk = runtime::sdk_config().await;
    // Only a named parameter needs the SSM client (the standard
    // `AWS_ENDPOINT_URL_SSM` redirects it locally). Its first read happens
    // here, so the cold start logs how agents are checked; later handshakes
    // re-read it once per refresh interval (see `handlers::auth`).
    let auth = AuthSource::new(&config.auth, || aws_sdk_ssm::Client::new(&sdk));
    auth.current().await;
    let store = DynamoConnectionStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        &config.connections_table,
    );
    let (config, auth, store) = (&config, &auth, &store);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            let auth = auth.current().await;
            Ok::<_, Error>(handlers::connect::handle(config, &auth, store, event.payload).await)
        },
    ))
    .await
}
