//! The HTTP API (payload format 2.0): see [`handlers::forwarding`].

// The request path (routing, DynamoDB calls, posting, polling) nests deep
// enough in async state layout to exceed the default query depth when the
// whole service is computed (as for the response function).
#![recursion_limit = "256"]

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use handlers::bodies::s3::{S3Bodies, client as s3_client};
use handlers::config::ForwardingConfig;
use handlers::notifier::api_gateway::{ApiGatewayNotifier, management_client};
use handlers::store::dynamo::{DynamoConnectionStore, DynamoPendingStore};
use handlers::{manifest, runtime};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let config = runtime::init(&manifest::FORWARDING, |env| {
        ForwardingConfig::from_lookup(env)
    })?;
    let sdk = runtime::sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let connections = DynamoConnectionStore::new(dynamodb.clone(), &config.connections_table);
    let pending = DynamoPendingStore::new(dynamodb, &config.pending_table);
    let notifier = ApiGatewayNotifier::new(management_client(&sdk, &config.websocket_api_endpoint));
    let bodies = S3Bodies::new(s3_client(&sdk), &config.bodies_bucket);
    let (config, connections, pending, notifier, bodies) =
        (&config, &connections, &pending, &notifier, &bodies);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayV2httpRequest>| async move {
            Ok::<_, Error>(
                handlers::forwarding::handle(
                    config,
                    connections,
                    pending,
                    notifier,
                    bodies,
                    event.payload,
                )
                .await,
            )
        },
    ))
    .await
}
