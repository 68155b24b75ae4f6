use ibyok::clock::SystemClock;
use ibyok::notify::{Notifier, SnsNotifier};
use lambda_http::lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    ibyok::telemetry::init();
    let sdk = ibyok::aws::sdk_config().await;
    let store = ibyok::aws::dynamo_store(&sdk);
    let store = &store;
    // IBYOK_NOTICE_TOPIC_ARN (the template sets it); without it no notice
    // is claimed, so none is lost.
    let notifier = SnsNotifier::from_env(&sdk);
    if notifier.is_none() {
        tracing::warn!("IBYOK_NOTICE_TOPIC_ARN is not set: expiry notices are not sent");
    }
    let notifier = notifier.as_ref().map(|n| n as &dyn Notifier);
    // IBYOK_AUDIT_SIGNING_KEY_ID (the template sets it); without it no
    // digest is made, and `ibyok audit verify` reports the gap.
    let signer = ibyok::aws::audit_signer().await;
    if signer.is_none() {
        tracing::warn!("IBYOK_AUDIT_SIGNING_KEY_ID is not set: the audit log is not digested");
    }
    let signer = &signer;
    let retention_days = ibyok::config::Config::from_env().map(|c| c.audit_retention_days)?;
    run(service_fn(move |_event: LambdaEvent<serde_json::Value>| async move {
        let report = cleanup::handler(store, notifier, &SystemClock).await?;
        let digests = match signer {
            Some(signer) => Some(cleanup::digest(store, signer.as_ref(), &SystemClock, retention_days).await?),
            None => None,
        };
        Ok::<_, Error>(serde_json::json!({"maintenance": report, "digests": digests}))
    }))
    .await
}
