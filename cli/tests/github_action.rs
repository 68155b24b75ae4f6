//! The GitHub Action (`action.yml`, `scripts/github-action`) run as a job
//! would run it, against this `ibyok dev` and a local stand-in for GitHub's
//! OpenID issuer and token service: `scripts/github-action-test` (Python's
//! standard library, bash and curl).

use std::path::Path;
use std::process::Command;

#[test]
fn the_github_action_exports_the_keys_masked_and_refuses_other_jobs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new("python3")
        .arg(root.join("scripts/github-action-test"))
        .arg(env!("CARGO_BIN_EXE_ibyok"))
        .output()
        .unwrap_or_else(|e| panic!("python3 scripts/github-action-test: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "scripts/github-action-test failed:\n{text}");
    assert!(text.contains(" passed, 0 failed"), "{text}");
}
