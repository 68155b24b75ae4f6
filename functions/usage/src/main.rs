use ibyok::clock::SystemClock;
use lambda_http::lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    ibyok::telemetry::init();
    let sdk = ibyok::aws::sdk_config().await;
    let store = ibyok::aws::dynamo_store(&sdk);
    let store = &store;
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        match usage::handler(store, &SystemClock, &event.payload).await {
            Ok(applied) => Ok::<_, Error>(applied),
            Err(e) => {
                tracing::error!(error = %ibyok::fault::chain(&e), "usage batch failed; it will be delivered again");
                Err(e.into())
            }
        }
    }))
    .await
}
