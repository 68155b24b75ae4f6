//! The AWS exchange (`POST /auth/aws`). The workload signs an
//! `sts:GetCallerIdentity` request with SigV4 and hands over the signed
//! request, never its secret key; the server **rebuilds** the request and
//! sends that, never what the client sent:
//!
//! - POST with the fixed body [`BODY`] (any other body is refused);
//! - to the STS endpoint of the server's own configuration (the client's
//!   URL must name that very endpoint, and is not used);
//! - with only the signature's headers copied: `Authorization`,
//!   `X-Amz-Date`, `X-Amz-Security-Token`, `Ibyok-Server-Id`, and the form
//!   `Content-Type`;
//! - the `Ibyok-Server-Id` header must be this deployment's and covered by
//!   the signature (`SignedHeaders`), so that a request signed for another
//!   server cannot be replayed here;
//! - `X-Amz-Date` within 15 minutes of now.
//!
//! STS checks the signature; its XML answer is parsed strictly
//! ([`parse_caller_identity`]) and the caller matched by account and role
//! ([`Principal::matches`]).

use super::{AwsRule, Denied};
use crate::clock::Timestamp;
use std::collections::BTreeMap;

pub const BODY: &str = "Action=GetCallerIdentity&Version=2011-06-15";
pub const SERVER_ID_HEADER: &str = "ibyok-server-id";
/// `X-Amz-Date` may be this far from now, either way.
pub const MAX_DATE_SKEW_SECONDS: i64 = 900;
const FORM: [&str; 2] = ["application/x-www-form-urlencoded; charset=utf-8", "application/x-www-form-urlencoded"];
/// Headers copied to the rebuilt request; a signature over any other (but
/// `host`, which the server sets from its own endpoint) is refused.
const COPIED: [&str; 5] = ["authorization", "x-amz-date", "x-amz-security-token", SERVER_ID_HEADER, "content-type"];

/// What the client sent, as the body of `POST /auth/aws` carries it. Its
/// `Debug` shows the header names only (the session token and signature
/// are credentials of a kind).
pub struct SignedRequest {
    pub url: String,
    /// Names in any case; a name given twice (in two cases) is refused.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl std::fmt::Debug for SignedRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("SignedRequest").field("url", &self.url).field("headers", &names).finish_non_exhaustive()
    }
}

/// The request the server sends.
#[derive(PartialEq, Eq)]
pub struct Rebuilt {
    pub url: String,
    /// Lower-case names.
    pub headers: Vec<(&'static str, String)>,
}

fn same_endpoint(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// The request to send for `req`, or why it is refused.
pub fn rebuild(req: &SignedRequest, endpoint: &str, server_id: &str, now: Timestamp) -> Result<Rebuilt, Denied> {
    if req.body != BODY || !same_endpoint(&req.url, endpoint) {
        return Err(Denied::Request);
    }
    let mut given: BTreeMap<String, &str> = BTreeMap::new();
    for (name, value) in &req.headers {
        if given.insert(name.to_ascii_lowercase(), value.as_str()).is_some() {
            return Err(Denied::Request);
        }
    }
    let authorization = *given.get("authorization").ok_or(Denied::Request)?;
    let signed = signed_headers(authorization).ok_or(Denied::Request)?;
    if !signed.contains(&SERVER_ID_HEADER) || !signed.contains(&"x-amz-date") || !signed.contains(&"host") {
        return Err(Denied::Request);
    }
    if signed.iter().any(|h| *h != "host" && !COPIED.contains(h))
        || signed.iter().any(|h| !given.contains_key(*h) && *h != "host")
    {
        return Err(Denied::Request);
    }
    if given.get(SERVER_ID_HEADER).copied() != Some(server_id) {
        return Err(Denied::ServerId);
    }
    let date = given.get("x-amz-date").copied().and_then(parse_amz_date).ok_or(Denied::Request)?;
    if (date.seconds() - now.seconds()).abs() > MAX_DATE_SKEW_SECONDS {
        return Err(Denied::StaleDate);
    }
    if given.get("content-type").is_some_and(|c| !FORM.contains(c)) {
        return Err(Denied::Request);
    }
    let mut headers: Vec<(&'static str, String)> = Vec::new();
    for name in COPIED {
        if let Some(v) = given.get(name) {
            headers.push((name, (*v).to_owned()));
        }
    }
    if !given.contains_key("content-type") {
        headers.push(("content-type", FORM[0].to_owned()));
    }
    Ok(Rebuilt { url: endpoint.to_owned(), headers })
}

/// The `SignedHeaders` of a SigV4 `Authorization` header whose credential
/// scope is STS's.
fn signed_headers(authorization: &str) -> Option<Vec<&str>> {
    let rest = authorization.strip_prefix("AWS4-HMAC-SHA256 ")?;
    let mut credential = None;
    let mut signed = None;
    for part in rest.split(',').map(str::trim) {
        if let Some(c) = part.strip_prefix("Credential=") {
            credential = Some(c);
        } else if let Some(s) = part.strip_prefix("SignedHeaders=") {
            signed = Some(s);
        }
    }
    // AKID/DATE/REGION/SERVICE/aws4_request
    let scope: Vec<&str> = credential?.split('/').collect();
    if scope.len() != 5 || scope[3] != "sts" || scope[4] != "aws4_request" {
        return None;
    }
    Some(signed?.split(';').collect())
}

/// `20261203T134500Z`.
fn parse_amz_date(s: &str) -> Option<Timestamp> {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let dt = time::PrimitiveDateTime::parse(s, format).ok()?.assume_utc();
    Some(Timestamp::from_millis(dt.unix_timestamp().checked_mul(1000)?))
}

/// The client's half (the CLI's `--aws`, the tests): `sts:GetCallerIdentity`
/// for `endpoint`, signed with SigV4 by `credentials` for `region`, with the
/// server id among the signed headers. Only the signature leaves the
/// workload; the secret key never does.
pub fn sign_get_caller_identity(
    credentials: &aws_credential_types::Credentials,
    region: &str,
    endpoint: &str,
    server_id: &str,
    at: std::time::SystemTime,
) -> Result<SignedRequest, String> {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    use aws_sigv4::sign::v4;
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(at)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let mut headers =
        vec![("content-type".to_owned(), FORM[0].to_owned()), (SERVER_ID_HEADER.to_owned(), server_id.to_owned())];
    let signable = SignableRequest::new(
        "POST",
        endpoint,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(BODY.as_bytes()),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _) = sign(signable, &params).map_err(|e| e.to_string())?.into_parts();
    for (name, value) in instructions.headers() {
        headers.push((name.to_owned(), value.to_owned()));
    }
    Ok(SignedRequest { url: endpoint.to_owned(), headers, body: BODY.to_owned() })
}

/// Who STS says signed the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub arn: String,
    pub account: String,
}

impl Principal {
    /// The role of an assumed-role session (`arn:PARTITION:sts::ACCOUNT:
    /// assumed-role/ROLE/SESSION`); `None` for any other principal.
    pub fn role(&self) -> Option<&str> {
        let mut parts = self.arn.splitn(6, ':');
        let (Some("arn"), Some(_partition), Some("sts"), Some(""), Some(account), Some(resource)) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        if account != self.account {
            return None;
        }
        let mut r = resource.split('/');
        match (r.next(), r.next(), r.next(), r.next()) {
            (Some("assumed-role"), Some(role), Some(session), None) if !role.is_empty() && !session.is_empty() => {
                Some(role)
            }
            _ => None,
        }
    }

    /// The account and the role name, exactly; the session name is never
    /// looked at.
    pub fn matches(&self, rule: &AwsRule) -> bool {
        self.account == rule.account_id && self.role() == Some(rule.role_name.as_str())
    }
}

/// `GetCallerIdentityResponse/GetCallerIdentityResult/{Arn, Account}`,
/// each exactly once; a DTD, an entity, or text with a reference in these
/// fields is refused.
pub fn parse_caller_identity(xml: &str) -> Option<Principal> {
    use xmlparser::{ElementEnd, Token, Tokenizer};
    let mut path: Vec<&str> = Vec::new();
    let (mut arn, mut account) = (None, None);
    let mut root_seen = false;
    for token in Tokenizer::from(xml) {
        match token.ok()? {
            Token::Declaration { .. } | Token::Comment { .. } | Token::Attribute { .. } => {}
            Token::ElementStart { local, .. } => {
                if path.is_empty() {
                    if root_seen || local.as_str() != "GetCallerIdentityResponse" {
                        return None;
                    }
                    root_seen = true;
                }
                path.push(local.as_str());
            }
            Token::ElementEnd { end, .. } => match end {
                ElementEnd::Open => {}
                ElementEnd::Close(_, local) => {
                    if path.pop()? != local.as_str() {
                        return None;
                    }
                }
                ElementEnd::Empty => {
                    path.pop()?;
                }
            },
            Token::Text { text } => {
                let slot = match path.as_slice() {
                    ["GetCallerIdentityResponse", "GetCallerIdentityResult", "Arn"] => &mut arn,
                    ["GetCallerIdentityResponse", "GetCallerIdentityResult", "Account"] => &mut account,
                    _ => continue,
                };
                if slot.is_some() || text.as_str().contains('&') {
                    return None;
                }
                *slot = Some(text.as_str().trim().to_owned());
            }
            _ => return None,
        }
    }
    if !path.is_empty() || !root_seen {
        return None;
    }
    Some(Principal { arn: arn?, account: account? })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENDPOINT: &str = "https://sts.us-east-1.amazonaws.com/";
    const NOW: &str = "20261203T134500Z";

    fn now() -> Timestamp {
        parse_amz_date(NOW).unwrap()
    }

    fn signed(date: &str, extra: &[(&str, &str)]) -> SignedRequest {
        let mut headers = vec![
            ("Authorization".to_owned(), "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261203/us-east-1/sts/aws4_request, SignedHeaders=content-type;host;ibyok-server-id;x-amz-date, Signature=abc".to_owned()),
            ("X-Amz-Date".to_owned(), date.to_owned()),
            ("Ibyok-Server-Id".to_owned(), "vault.acme".to_owned()),
            ("Content-Type".to_owned(), FORM[0].to_owned()),
        ];
        headers.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        SignedRequest { url: ENDPOINT.to_owned(), headers, body: BODY.to_owned() }
    }

    #[test]
    fn the_clients_signature_is_what_the_server_rebuilds() {
        let creds = aws_credential_types::Credentials::new("AKIDEXAMPLE", "secret", Some("session".into()), None, "t");
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(now().seconds() as u64);
        let signed = sign_get_caller_identity(&creds, "us-east-1", ENDPOINT, "vault.acme", at).unwrap();
        let shown = format!("{signed:?}");
        assert!(!shown.contains("session") && !shown.contains("Signature="), "{shown}");
        let got = rebuild(&signed, ENDPOINT, "vault.acme", now()).unwrap();
        let names: Vec<&str> = got.headers.iter().map(|(k, _)| *k).collect();
        assert_eq!(names, ["authorization", "x-amz-date", "x-amz-security-token", SERVER_ID_HEADER, "content-type"]);
        assert!(rebuild(&signed, ENDPOINT, "vault.other", now()) == Err(Denied::ServerId));
    }

    #[test]
    fn a_good_request_is_rebuilt_with_the_signature_headers_only() {
        let req = signed(NOW, &[("X-Forwarded-Host", "evil.example")]);
        let got = rebuild(&req, ENDPOINT, "vault.acme", now()).unwrap();
        assert_eq!(got.url, ENDPOINT);
        let names: Vec<&str> = got.headers.iter().map(|(k, _)| *k).collect();
        assert_eq!(names, ["authorization", "x-amz-date", SERVER_ID_HEADER, "content-type"]);
    }

    #[test]
    fn refusals_name_their_cause() {
        let mut other_body = signed(NOW, &[]);
        other_body.body = "Action=AssumeRole&Version=2011-06-15".into();
        let mut other_url = signed(NOW, &[]);
        other_url.url = "https://sts.evil.example/".into();
        let mut unsigned_id = signed(NOW, &[]);
        unsigned_id.headers[0].1 = unsigned_id.headers[0].1.replace("ibyok-server-id;", "");
        let mut iam_scope = signed(NOW, &[]);
        iam_scope.headers[0].1 = iam_scope.headers[0].1.replace("/sts/", "/iam/");
        let mut other_id = signed(NOW, &[]);
        other_id.headers[2].1 = "vault.other".into();
        let mut twice = signed(NOW, &[]);
        twice.headers.push(("authorization".into(), "x".into()));
        let mut other_type = signed(NOW, &[]);
        other_type.headers[3].1 = "text/plain".into();
        let cases = [
            (other_body, Denied::Request),
            (other_url, Denied::Request),
            (unsigned_id, Denied::Request),
            (iam_scope, Denied::Request),
            (other_id, Denied::ServerId),
            (signed("20261203T130000Z", &[]), Denied::StaleDate),
            (signed("20261203T140100Z", &[]), Denied::StaleDate),
            (signed("yesterday", &[]), Denied::Request),
            (twice, Denied::Request),
            (other_type, Denied::Request),
        ];
        for (req, want) in cases {
            assert!(rebuild(&req, ENDPOINT, "vault.acme", now()) == Err(want), "{want:?}: {req:?}");
        }
        // Within 15 minutes either way.
        assert!(rebuild(&signed("20261203T133100Z", &[]), ENDPOINT, "vault.acme", now()).is_ok());
    }

    fn answer(arn: &str, account: &str) -> String {
        format!(
            r#"<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetCallerIdentityResult><Arn>{arn}</Arn><UserId>AROA:s</UserId><Account>{account}</Account></GetCallerIdentityResult>
  <ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata>
</GetCallerIdentityResponse>"#
        )
    }

    #[test]
    fn assumed_roles_match_by_account_and_role_never_session() {
        let rule = AwsRule { account_id: "123456789012".into(), role_name: "deployer".into() };
        let p = parse_caller_identity(&answer(
            "arn:aws:sts::123456789012:assumed-role/deployer/any-session",
            "123456789012",
        ))
        .unwrap();
        assert!(p.matches(&rule));
        let cases = [
            ("arn:aws:sts::123456789012:assumed-role/deployer-2/s", "123456789012"),
            ("arn:aws:sts::123456789012:assumed-role/other/deployer", "123456789012"),
            ("arn:aws:sts::210987654321:assumed-role/deployer/s", "210987654321"),
            ("arn:aws:sts::210987654321:assumed-role/deployer/s", "123456789012"),
            ("arn:aws:iam::123456789012:user/deployer", "123456789012"),
            ("arn:aws:iam::123456789012:role/deployer", "123456789012"),
            ("arn:aws:sts::123456789012:assumed-role/deployer", "123456789012"),
            ("arn:aws:sts::123456789012:assumed-role/deployer/s/x", "123456789012"),
        ];
        for (arn, account) in cases {
            let p = parse_caller_identity(&answer(arn, account)).unwrap();
            assert!(!p.matches(&rule), "{arn} / {account}");
        }
    }

    #[test]
    fn answers_are_parsed_strictly() {
        let good = answer("arn:aws:sts::1:assumed-role/r/s", "1");
        assert!(parse_caller_identity(&good).is_some());
        let twice = good.replace("<Account>1</Account>", "<Account>1</Account><Account>2</Account>");
        let other_root = good.replace("GetCallerIdentityResponse", "AssumeRoleResponse");
        let dtd = format!("<!DOCTYPE x [<!ENTITY a \"b\">]>{good}");
        let entity = good.replace("<Account>1</Account>", "<Account>&amp;1</Account>");
        let unclosed = good.replace("</GetCallerIdentityResponse>", "");
        let two_roots = format!("{good}{good}");
        let missing = good.replace("<Arn>arn:aws:sts::1:assumed-role/r/s</Arn>", "");
        for bad in [twice, other_root, dtd, entity, unclosed, two_roots, missing, "garbage".into(), String::new()] {
            assert!(parse_caller_identity(&bad).is_none(), "{bad}");
        }
    }
}
