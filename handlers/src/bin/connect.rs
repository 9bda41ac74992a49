//! `$connect`: see [`handlers::connect`].

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use handlers::auth::{Auth, fetch_ssm_secret};
use handlers::config::{AuthSettings, ConnectConfig};
use handlers::logging::chain;
use handlers::store::dynamo::DynamoConnectionStore;
use handlers::{manifest, runtime};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let config = runtime::init(&manifest::CONNECT, |env| ConnectConfig::from_lookup(env))?;
    let sdk = runtime::sdk_config().await;
    // Once per cold start: the secret is not re-read per connection. Only a
    // named parameter costs an SSM call (and needs the SSM client at all).
    let auth = match &config.auth {
        AuthSettings::Parameter(_) => {
            let ssm = aws_sdk_ssm::Client::new(&sdk);
            Auth::resolve(&config.auth, |name| async move {
                fetch_ssm_secret(&ssm, name).await
            })
            .await
        }
        settings => Auth::resolve(settings, |_| async { Ok(None) }).await,
    }
    .inspect_err(|e| tracing::error!(error = %chain(e), "init failed: no auth secret"))?;
    let store = DynamoConnectionStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        &config.connections_table,
    );
    let (config, auth, store) = (&config, &auth, &store);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            Ok::<_, Error>(handlers::connect::handle(config, auth, store, event.payload).await)
        },
    ))
    .await
}
