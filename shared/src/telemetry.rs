//! Structured logging: JSON lines in Lambda (or with `IBYOK_LOG_FORMAT=json`),
//! readable lines elsewhere; the level from `AWS_LAMBDA_LOG_LEVEL`, then
//! `RUST_LOG`, default `info`. Handlers log one line per request (see
//! [`crate::api::App::handle`]); no secret type has a printable form.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_owned())
        .to_lowercase();
    let filter = filter(&level);
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"))
        || std::env::var("IBYOK_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"))
        || std::env::var("AWS_LAMBDA_FUNCTION_NAME").is_ok();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json {
        builder.json().flatten_event(true).with_current_span(false).without_time().try_init()
    } else {
        builder.with_target(false).try_init()
    };
}

/// Log directives at `level`, with the AWS SDK's HTTP layers held at `info`
/// whatever the level: at `trace`, with `LOG_SENSITIVE_BODIES` set, they print
/// request and response bodies, and KMS responses carry data keys.
pub fn filter(level: &str) -> EnvFilter {
    let base = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    [
        "aws_smithy_runtime",
        "aws_smithy_runtime_api",
        "aws_smithy_http_client",
        "aws_smithy_http",
        "hyper",
        "h2",
        "rustls",
    ]
    .into_iter()
    .filter_map(|target| format!("{target}=info").parse().ok())
    .fold(base, EnvFilter::add_directive)
}
