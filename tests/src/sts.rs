//! A second moto server for the AWS exchange's tests, with signature
//! checking on (`INITIAL_NO_AUTH_ACTION_COUNT`: after the setup's first
//! calls, moto verifies SigV4 for the IAM users and assumed roles it made).
//! The shared moto of the other tests cannot check signatures: their
//! dummy credentials would all be refused.

use aws_credential_types::Credentials;
use std::process::{Child, Command, Stdio};

/// The calls moto serves before it checks signatures: the four setup calls.
/// The role's assumption and everything after are checked (the test's own
/// wrong-secret case shows it).
const SETUP_CALLS: u32 = 4;

pub struct Sts {
    pub url: String,
    child: Child,
    /// An IAM user's own keys (signatures by them are checked).
    pub user: Credentials,
    pub account: String,
}

impl Drop for Sts {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn between<'a>(xml: &'a str, tag: &str) -> &'a str {
    let open = format!("<{tag}>");
    let start = xml.find(&open).unwrap_or_else(|| panic!("no <{tag}> in {xml}")) + open.len();
    let end = xml[start..].find(&format!("</{tag}>")).unwrap() + start;
    &xml[start..end]
}

/// A form POST, signed by `signer` (moto routes a request to its service by
/// the signature's credential scope; before it checks signatures, any key
/// will do).
async fn call(url: &str, form: &[(&str, &str)], signer: Option<&Credentials>) -> (u16, String) {
    let setup = Credentials::new("AKIDSETUP", "setup", None, None, "setup");
    let signer = Some(signer.unwrap_or(&setup));
    let body = serde_urlencoded::to_string(form).unwrap();
    let mut headers: Vec<(String, String)> =
        vec![("content-type".into(), "application/x-www-form-urlencoded; charset=utf-8".into())];
    if let Some(creds) = signer {
        use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
        let identity = creds.clone().into();
        let service = if form.iter().any(|(k, v)| *k == "Version" && *v == "2010-05-08") { "iam" } else { "sts" };
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name(service)
            .time(std::time::SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let signable = SignableRequest::new(
            "POST",
            url,
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(body.as_bytes()),
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        for (k, v) in instructions.headers() {
            headers.push((k.to_owned(), v.to_owned()));
        }
    }
    let refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let policy = ibyok::fetch::Policy::DEPLOYED.with_loopback_http(true);
    let resp = ibyok::fetch::post(url, &refs, body.into(), &policy).await.expect("moto answers");
    (resp.status, String::from_utf8_lossy(&resp.body).into_owned())
}

impl Sts {
    /// Starts moto (from the venv `scripts/test` made) on a free port, makes
    /// a user with a key and a role `role_name` the user may assume.
    pub async fn start(role_name: &str) -> Self {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
        let moto = root.join("target/moto-venv/bin/moto_server");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(&moto)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", SETUP_CALLS.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e} (run the tests with scripts/test)", moto.display()));
        let url = format!("http://127.0.0.1:{port}/");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let iam = |action: &'static str| ("Action", action);
        let v = ("Version", "2010-05-08");
        let (_, created) = call(&url, &[iam("CreateUser"), ("UserName", "ci"), v], None).await;
        let user_arn = between(&created, "Arn").to_owned();
        let account = user_arn.split(':').nth(4).unwrap().to_owned();
        let (_, key) = call(&url, &[iam("CreateAccessKey"), ("UserName", "ci"), v], None).await;
        let user = Credentials::new(between(&key, "AccessKeyId"), between(&key, "SecretAccessKey"), None, None, "moto");
        let trust = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{user_arn}"}},"Action":"sts:AssumeRole"}}]}}"#
        );
        call(&url, &[iam("CreateRole"), ("RoleName", role_name), ("AssumeRolePolicyDocument", &trust), v], None).await;
        let allow = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
        call(
            &url,
            &[iam("PutUserPolicy"), ("UserName", "ci"), ("PolicyName", "all"), ("PolicyDocument", allow), v],
            None,
        )
        .await;
        Sts { url, child, user, account }
    }

    /// Temporary credentials of `role` for `session`, assumed with the
    /// user's key (a signed call).
    pub async fn assume(&self, role: &str, session: &str) -> Credentials {
        let arn = format!("arn:aws:iam::{}:role/{role}", self.account);
        let form =
            [("Action", "AssumeRole"), ("RoleArn", &arn), ("RoleSessionName", session), ("Version", "2011-06-15")];
        let (status, xml) = call(&self.url, &form, Some(&self.user)).await;
        assert_eq!(status, 200, "{xml}");
        Credentials::new(
            between(&xml, "AccessKeyId"),
            between(&xml, "SecretAccessKey"),
            Some(between(&xml, "SessionToken").to_owned()),
            None,
            "moto-assumed",
        )
    }
}
