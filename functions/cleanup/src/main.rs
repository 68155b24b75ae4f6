use ibyok::clock::SystemClock;
use lambda_http::lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    ibyok::telemetry::init();
    let sdk = ibyok::aws::sdk_config().await;
    let store = ibyok::aws::dynamo_store(&sdk);
    let store = &store;
    run(service_fn(move |_event: LambdaEvent<serde_json::Value>| async move {
        let report = cleanup::handler(store, &SystemClock).await?;
        Ok::<_, Error>(report)
    }))
    .await
}
