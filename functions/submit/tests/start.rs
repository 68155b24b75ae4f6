//! A misconfigured function fails at start, naming what is missing, instead
//! of answering its first request with a 500.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a failed unwrap is a failed test")]

#[test]
fn submit_refuses_to_start_without_its_kms_key() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_submit"))
        .env_remove("IBYOK_KMS_KEY_ID")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .output()
        .expect("run the submit binary");
    assert!(!out.status.success(), "it must not start");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("IBYOK_KMS_KEY_ID"), "the message names the variable: {stderr}");
}
