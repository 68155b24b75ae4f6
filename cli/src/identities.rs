//! Workload identities from the command line: `ibyok identities …` manages
//! the trust rules; `ibyok login --identity …` and `ibyok run --identity …`
//! exchange the workload's own credential (an OIDC token from a file or from
//! GitHub Actions, or AWS credentials from the default chain) for a
//! short-lived token, which `run` never writes anywhere.

use crate::client::{print_json, CliError, Client};
use crate::output::{relative, table, text};
use ibyok::secret::TokenSecret;
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::PathBuf;

/// How a workload proves who it is (`ibyok login`, `ibyok run`).
#[derive(clap::Args, Debug, Default)]
pub struct WorkloadLogin {
    /// The identity to exchange through (idn_…).
    #[arg(long)]
    pub identity: Option<String>,
    /// A file holding the workload's OIDC token (a Kubernetes projected
    /// service-account token, a GitLab CI id token written to a file, …).
    #[arg(long, requires = "identity", conflicts_with_all = ["github_actions", "aws"])]
    pub oidc_token_file: Option<PathBuf>,
    /// Fetch this GitHub Actions job's OIDC token for --audience (the job
    /// needs `permissions: id-token: write`).
    #[arg(long, requires_all = ["identity", "audience"], conflicts_with = "aws")]
    pub github_actions: bool,
    /// The audience to ask GitHub Actions for: the identity's `audience`.
    #[arg(long)]
    pub audience: Option<String>,
    /// Sign sts:GetCallerIdentity with the default AWS credential chain.
    #[arg(long, requires = "identity")]
    pub aws: bool,
    /// With --aws: the region to sign for (default: AWS_REGION, else us-east-1).
    #[arg(long, env = "AWS_REGION")]
    pub aws_region: Option<String>,
    /// With --aws: the STS endpoint the server sends to (default: the region's).
    #[arg(long, env = "IBYOK_STS_ENDPOINT")]
    pub sts_endpoint: Option<String>,
    /// With --aws: the server's id, signed in the Ibyok-Server-Id header.
    #[arg(long, env = "IBYOK_SERVER_ID", default_value = "ibyok")]
    pub server_id: String,
}

/// The exchange's answer: the token, held as a secret.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Exchanged {
    token: TokenSecret,
    token_id: String,
    expires_at: String,
}

fn read_jwt_file(path: &PathBuf) -> Result<ibyok::api::Redacted, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(text.trim().to_owned().into())
}

/// The GitHub Actions job's OIDC token for `audience`, from the runner's
/// `ACTIONS_ID_TOKEN_REQUEST_URL` with its `ACTIONS_ID_TOKEN_REQUEST_TOKEN`.
fn github_actions_jwt(audience: &str) -> Result<ibyok::api::Redacted, CliError> {
    const HINT: &str = "is not set: run inside a GitHub Actions job with `permissions: id-token: write`";
    let url =
        std::env::var("ACTIONS_ID_TOKEN_REQUEST_URL").map_err(|_| format!("ACTIONS_ID_TOKEN_REQUEST_URL {HINT}"))?;
    let bearer: ibyok::api::Redacted = std::env::var("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
        .map_err(|_| format!("ACTIONS_ID_TOKEN_REQUEST_TOKEN {HINT}"))?
        .into();
    let agent = ureq::AgentBuilder::new().timeout(std::time::Duration::from_secs(30)).redirects(0).build();
    let resp = agent
        .get(&url)
        .query("audience", audience)
        .set("authorization", &format!("bearer {}", bearer.expose()))
        .call()
        .map_err(|e| format!("GitHub Actions' token service refused: {e}"))?;
    #[derive(Deserialize)]
    struct Answer {
        value: String,
    }
    let answer: Answer = resp.into_json().map_err(|_| "GitHub Actions' token service answered no `value`")?;
    Ok(answer.value.into())
}

/// The signed sts:GetCallerIdentity, with the default AWS credential chain.
fn aws_signed(args: &WorkloadLogin) -> Result<Value, CliError> {
    use aws_credential_types::provider::ProvideCredentials;
    let region = args.aws_region.clone().unwrap_or_else(|| "us-east-1".to_owned());
    let endpoint = args.sts_endpoint.clone().unwrap_or_else(|| format!("https://sts.{region}.amazonaws.com/"));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let creds = rt.block_on(async {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.clone()))
            .load()
            .await;
        let provider = config.credentials_provider().ok_or("no AWS credentials provider")?;
        provider.provide_credentials().await.map_err(|e| format!("no AWS credentials: {e}"))
    })?;
    let signed = ibyok::identity::sts::sign_get_caller_identity(
        &creds,
        &region,
        &endpoint,
        &args.server_id,
        std::time::SystemTime::now(),
    )?;
    let headers: serde_json::Map<String, Value> =
        signed.headers.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
    Ok(json!({"url": signed.url, "headers": headers, "body": signed.body}))
}

/// Exchanges the workload's credential for a token (no token needed).
pub fn exchange(url: &str, args: &WorkloadLogin) -> Result<(TokenSecret, String, String), CliError> {
    let identity = args.identity.as_deref().ok_or("--identity is required")?;
    let c = Client::anonymous(url);
    let (path, body) = if args.aws {
        ("/auth/aws", json!({"identityId": identity, "request": aws_signed(args)?}))
    } else {
        let jwt = match (&args.oidc_token_file, args.github_actions) {
            (Some(path), _) => read_jwt_file(path)?,
            (None, true) => github_actions_jwt(args.audience.as_deref().unwrap_or_default())?,
            (None, false) => return Err("give --oidc-token-file F, --github-actions or --aws".into()),
        };
        ("/auth/oidc", json!({"identityId": identity, "jwt": jwt.expose()}))
    };
    let raw = c.send("POST", path, Some(&crate::client::json_bytes(&body)))?;
    let got: Exchanged = serde_json::from_slice(raw.expose()).map_err(|e| format!("unreadable response: {e}"))?;
    Ok((got.token, got.token_id, got.expires_at))
}

/// `ibyok login --identity …`: prints the token (for `IBYOK_TOKEN=$(…)`).
pub fn login(url: &str, args: &WorkloadLogin, as_json: bool) -> Result<(), CliError> {
    let (token, token_id, expires_at) = exchange(url, args)?;
    if as_json {
        crate::client::print_secret_json(
            &json!({"token": token.expose_token(), "tokenId": token_id, "expiresAt": expires_at}),
        );
    } else {
        eprintln!("Token {} exchanged, expires {}.", text(&json!(token_id)), relative(&json!(expires_at)));
        println!("{}", token.expose_token());
    }
    Ok(())
}

/// What `ibyok identities create` asks for.
pub struct NewIdentity<'a> {
    pub name: &'a str,
    pub issuer: Option<&'a str>,
    pub audience: Option<&'a str>,
    pub subject: Option<&'a str>,
    pub subject_glob: bool,
    pub bound_claims: &'a [String],
    pub aws_account: Option<&'a str>,
    pub aws_role: Option<&'a str>,
    pub scopes: &'a [String],
    pub key_ids: &'a [String],
    pub cidrs: &'a [String],
    pub rate_limit: Option<u32>,
    pub token_ttl: Option<u64>,
}

pub fn create(c: &Client, n: NewIdentity<'_>, as_json: bool) -> Result<(), CliError> {
    let mut body = json!({"name": n.name, "scopes": n.scopes});
    match (n.issuer, n.aws_account) {
        (Some(issuer), None) => {
            body["kind"] = json!("oidc");
            body["issuer"] = json!(issuer);
            body["audience"] = json!(n.audience.ok_or("--audience is required with --issuer")?);
            body["subject"] = json!(n.subject.ok_or("--subject is required with --issuer")?);
            if n.subject_glob {
                body["subjectMatch"] = json!("glob");
            }
            let mut claims = serde_json::Map::new();
            for pair in n.bound_claims {
                let (k, v) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("--bound-claim must look like NAME=VALUE, not `{pair}`"))?;
                // A claim named twice allows each of its values.
                match claims.get_mut(k) {
                    None => {
                        claims.insert(k.to_owned(), json!(v));
                    }
                    Some(Value::String(first)) => {
                        let first = first.clone();
                        claims.insert(k.to_owned(), json!([first, v]));
                    }
                    Some(Value::Array(list)) => list.push(json!(v)),
                    Some(_) => {}
                }
            }
            if !claims.is_empty() {
                body["boundClaims"] = Value::Object(claims);
            }
        }
        (None, Some(account)) => {
            body["kind"] = json!("aws");
            body["awsAccountId"] = json!(account);
            body["awsRoleName"] = json!(n.aws_role.ok_or("--aws-role is required with --aws-account")?);
        }
        _ => return Err("give either --issuer (OIDC) or --aws-account (AWS)".into()),
    }
    if !n.key_ids.is_empty() {
        body["keyIds"] = json!(n.key_ids);
    }
    if !n.cidrs.is_empty() {
        body["allowedCidrs"] = json!(n.cidrs);
    }
    if let Some(r) = n.rate_limit {
        body["rateLimit"] = json!(r);
    }
    if let Some(t) = n.token_ttl {
        body["tokenTtl"] = json!(t);
    }
    let created = c.call("POST", "/identities", Some(body))?;
    if as_json {
        print_json(&created);
    } else {
        println!("{}", text(&created["identityId"]));
    }
    Ok(())
}

pub fn list(c: &Client, as_json: bool) -> Result<(), CliError> {
    let page = c.call("GET", "/identities?limit=100", None)?;
    if as_json {
        print_json(&page);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = page["identities"]
        .as_array()
        .map(|l| l.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|i| {
            let who = match i["kind"].as_str() {
                Some("aws") => format!("{}/{}", text(&i["awsAccountId"]), text(&i["awsRoleName"])),
                _ => format!("{} {}", text(&i["issuer"]), text(&i["subject"])),
            };
            let scopes: Vec<String> = i["scopes"].as_array().into_iter().flatten().map(text).collect();
            vec![
                text(&i["identityId"]),
                text(&i["name"]),
                text(&i["kind"]),
                who,
                scopes.join(","),
                text(&i["tokenTtl"]),
            ]
        })
        .collect();
    table(&["ID", "NAME", "KIND", "WHO", "SCOPES", "TTL"], rows);
    Ok(())
}
