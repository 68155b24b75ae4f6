#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    ibyok::lambda::serve::<{ identities::SERVED }>().await
}
