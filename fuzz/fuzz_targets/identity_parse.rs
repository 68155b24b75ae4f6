//! The workload exchanges' parsers over any input: the JWT's shape and
//! claims (`identity::jwt`), STS's GetCallerIdentity answer and the signed
//! request the AWS exchange rebuilds (`identity::sts`). None panics; a JWT
//! refused by `parse` is never half-accepted; an answer that parses names
//! an account and an ARN taken from the text.
#![no_main]

use ibyok::clock::Timestamp;
use ibyok::identity::sts::{self, SignedRequest};
use ibyok::identity::{jwt, OidcRule, SubjectMatch};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(parsed) = jwt::parse(&text) {
        assert!(text.matches('.').count() == 2, "three parts");
        let rule = OidcRule {
            issuer: "https://issuer.example".into(),
            audience: "aud".into(),
            subject: "repo:*:ref:main".into(),
            subject_match: SubjectMatch::Glob,
            bound_claims: BTreeMap::from([("x".to_owned(), vec!["1".to_owned()])]),
        };
        let _ = jwt::check_claims(&parsed.claims, &rule, Timestamp::from_millis(1_800_000_000_000));
    }
    if let Some(p) = sts::parse_caller_identity(&text) {
        assert!(text.contains(&p.account) && text.contains(&p.arn));
        let _ = p.role();
    }
    // The text as one header value of a signed request.
    let req = SignedRequest {
        url: "https://sts.us-east-1.amazonaws.com/".into(),
        headers: vec![
            ("Authorization".into(), text.to_string()),
            ("X-Amz-Date".into(), text.chars().take(16).collect()),
            ("Ibyok-Server-Id".into(), "ibyok".into()),
        ],
        body: sts::BODY.into(),
    };
    let _ = sts::rebuild(&req, "https://sts.us-east-1.amazonaws.com/", "ibyok", Timestamp::from_millis(1_800_000_000_000));
    let _ = SubjectMatch::Glob.matches(&text, "repo:acme/app:environment:production");
});
