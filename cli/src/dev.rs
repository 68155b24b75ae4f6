//! `ibyok dev`: the whole contract on one local port, through the same
//! handler code as the Lambdas, on embedded backends (or, with `--aws`, on
//! DynamoDB and KMS through the standard AWS configuration).

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use ibyok::api::body::{max_body_bytes, parse_query};
use ibyok::api::{ApiError, ApiRequest, App, Redacted};
use ibyok::clock::{Clock, SystemClock};
use ibyok::config::{Config, Tables};
use ibyok::kms::aws::AwsKms;
use ibyok::kms::local::LocalKms;
use ibyok::secret::TokenSecret;
use ibyok::store::dynamo::DynamoStore;
use ibyok::store::memory::MemoryStore;
use ibyok::store::Store;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct DevArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8787")]
    pub listen: SocketAddr,
    /// Keep the store and the local master key in this folder, so that the
    /// vault survives a restart.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Also write the root token to this file (mode 0600).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Use DynamoDB and KMS through the standard AWS configuration
    /// (AWS_ENDPOINT_URL, AWS_REGION, credentials; IBYOK_*_TABLE,
    /// IBYOK_KMS_KEY_ID) instead of the embedded backends.
    #[arg(long)]
    pub aws: bool,
    /// With --aws: create the tables first if they do not exist (for a local
    /// AWS-protocol server such as moto).
    #[arg(long, requires = "aws")]
    pub create_tables: bool,
    /// With --aws: create a KMS key when IBYOK_KMS_KEY_ID is not set (for a
    /// local AWS-protocol server such as moto).
    #[arg(long, requires = "aws")]
    pub create_kms_key: bool,
    /// Seconds between runs of the scheduled work (cleanup of expired and
    /// revoked tokens), as the cleanup function runs it in AWS.
    #[arg(long, default_value_t = ibyok::maintenance::DEV_INTERVAL.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub purge_every: u64,
    /// Give the development tenant a monthly quota of value reads, as
    /// `ibyok admin quota` does for a deployed tenant.
    #[arg(long, value_name = "READS")]
    pub quota: Option<u64>,
    /// The server id that AWS exchanges (`POST /auth/aws`) must sign in
    /// their `Ibyok-Server-Id` header.
    #[arg(long, env = "IBYOK_SERVER_ID")]
    pub server_id: Option<String>,
    /// Where AWS exchanges send their rebuilt `sts:GetCallerIdentity`
    /// (default the regional endpoint of AWS_REGION); `http://127.0.0.1:…`
    /// is allowed here, for a local STS such as moto's.
    #[arg(long, env = "IBYOK_STS_ENDPOINT")]
    pub sts_endpoint: Option<String>,
    /// The document of GitHub's secret scanning keys, which signs leaked-
    /// token reports (`POST /github/secret-scanning`); `http://127.0.0.1:…`
    /// is allowed here, for a local stand-in.
    #[arg(long, env = "IBYOK_GITHUB_KEYS_URL")]
    pub github_keys_url: Option<String>,
    #[command(flatten)]
    pub sign_in: SignInArgs,
}

/// People's sign-in, as a deployment configures it (the same settings as
/// its environment variables; see docs/people.md).
#[derive(clap::Args, Debug, Default)]
pub struct SignInArgs {
    /// An OpenID provider people sign in with (its issuer URL;
    /// `http://127.0.0.1:…` is allowed here).
    #[arg(long, env = "IBYOK_OIDC_ISSUER", requires = "oidc_client_id")]
    pub oidc_issuer: Option<String>,
    #[arg(long, env = "IBYOK_OIDC_CLIENT_ID")]
    pub oidc_client_id: Option<String>,
    /// Prefer the environment variable: a flag shows in the process list.
    #[arg(long, env = "IBYOK_OIDC_CLIENT_SECRET", hide_env_values = true)]
    pub oidc_client_secret: Option<String>,
    /// The sign-in button's name (default "OpenID Connect").
    #[arg(long, env = "IBYOK_OIDC_NAME")]
    pub oidc_name: Option<String>,
    /// A GitHub OAuth app people sign in with.
    #[arg(long, env = "IBYOK_GITHUB_CLIENT_ID")]
    pub github_client_id: Option<String>,
    #[arg(long, env = "IBYOK_GITHUB_CLIENT_SECRET", hide_env_values = true)]
    pub github_client_secret: Option<String>,
    /// GitHub's web origin (default `https://github.com`; a stand-in's for tests).
    #[arg(long, env = "IBYOK_GITHUB_URL")]
    pub github_url: Option<String>,
    /// GitHub's API origin (default `https://api.github.com`).
    #[arg(long, env = "IBYOK_GITHUB_API_URL")]
    pub github_api_url: Option<String>,
    /// `open`: a person who is no member gets a tenant of their own.
    #[arg(long, env = "IBYOK_SIGNUP", value_parser = ["open", "closed"])]
    pub signup: Option<String>,
    /// How long a session lasts, 1 to 24 hours (default 12).
    #[arg(long, env = "IBYOK_SESSION_HOURS")]
    pub session_hours: Option<String>,
}

impl SignInArgs {
    /// The sign-in configuration, served at `origin` (the dev server's).
    fn config(&self, origin: &str) -> Result<ibyok::signin::SignInConfig, Error> {
        let pairs = [
            ("IBYOK_OIDC_ISSUER", &self.oidc_issuer),
            ("IBYOK_OIDC_CLIENT_ID", &self.oidc_client_id),
            ("IBYOK_OIDC_CLIENT_SECRET", &self.oidc_client_secret),
            ("IBYOK_OIDC_NAME", &self.oidc_name),
            ("IBYOK_GITHUB_CLIENT_ID", &self.github_client_id),
            ("IBYOK_GITHUB_CLIENT_SECRET", &self.github_client_secret),
            ("IBYOK_GITHUB_URL", &self.github_url),
            ("IBYOK_GITHUB_API_URL", &self.github_api_url),
            ("IBYOK_SIGNUP", &self.signup),
            ("IBYOK_SESSION_HOURS", &self.session_hours),
        ];
        let lookup = |k: &str| match k {
            "IBYOK_PUBLIC_URL" => Some(origin.to_owned()),
            _ => pairs.iter().find(|(name, _)| *name == k).and_then(|(_, v)| (*v).clone()),
        };
        Ok(ibyok::signin::SignInConfig::from_lookup(&lookup)?)
    }
}

type Error = Box<dyn std::error::Error + Send + Sync>;

async fn aws_backends(args: &DevArgs) -> Result<(Arc<dyn Store>, Arc<dyn ibyok::kms::Kms>), Error> {
    let sdk = ibyok::aws::sdk_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let tables = Tables::from_env();
    if args.create_tables {
        ibyok::store::dynamo::create_tables(&dynamo, &tables).await?;
    }
    let kms_client = aws_sdk_kms::Client::new(&sdk);
    let key_id = match std::env::var("IBYOK_KMS_KEY_ID") {
        Ok(k) => k,
        Err(_) if args.create_kms_key => {
            let out = kms_client.create_key().description("ibyok dev").send().await?;
            let id = out.key_metadata().map(|m| m.key_id().to_owned()).ok_or("CreateKey returned no key")?;
            eprintln!("Created KMS key {id} (set IBYOK_KMS_KEY_ID={id} to reuse it)");
            id
        }
        Err(_) => return Err("IBYOK_KMS_KEY_ID is not set (or pass --create-kms-key)".into()),
    };
    let store: Arc<dyn Store> = Arc::new(DynamoStore::new(dynamo, tables.clone()));
    // What the usage function does in AWS: the audit stream into the
    // counters, here every second.
    let usage = ibyok::store::dynamo::consumer::UsageStream::new(&sdk, &tables.audit, store.clone());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = usage.drain().await {
                tracing::warn!(error = %e, "applying the audit stream failed; retrying");
            }
        }
    });
    Ok((store, Arc::new(AwsKms::new(kms_client, key_id))))
}

/// The file in a data folder that keeps the development tenant's root token
/// across restarts (0600, beside the master key that opens every value).
const ROOT_TOKEN_FILE: &str = "root-token";

/// The tenant to serve and its root token. In a data folder, the root token
/// of the previous start is reused while it is live (kept in
/// [`ROOT_TOKEN_FILE`]); a new one is made only when there is none, or it
/// expired or was revoked, and every other root token of the tenant (those
/// earlier versions made at each start) is then revoked, alone: the tokens
/// they issued keep working. Without a folder: a new tenant, for this run.
async fn root_token(
    store: &dyn Store,
    existing: Option<ibyok::store::TenantRecord>,
    dir: Option<&std::path::Path>,
) -> Result<(ibyok::ids::TenantId, TokenSecret, RootToken), Error> {
    let now = SystemClock.now();
    let Some(tenant) = existing else {
        let b = ibyok::bootstrap::create_tenant(store, "dev", now).await?;
        if let Some(dir) = dir {
            keep_root_token(dir, &b.token)?;
        }
        return Ok((b.tenant.tenant_id, b.token, RootToken::New));
    };
    if let Some(kept) = dir.and_then(|d| std::fs::read_to_string(d.join(ROOT_TOKEN_FILE)).ok()) {
        let kept = zeroize::Zeroizing::new(kept);
        if let Some(parsed) = ibyok::token::ParsedToken::parse(kept.trim()) {
            let want = ibyok::store::Fetch { tokens: vec![parsed.id().clone()], ..Default::default() };
            let live = store.fetch(&want).await?.tokens.remove(parsed.id()).is_some_and(|t| {
                t.tenant_id == tenant.tenant_id
                    && t.issued_by.is_none()
                    && parsed.matches(&t.verifier)
                    && t.is_live(now)
            });
            if live {
                return Ok((tenant.tenant_id, parsed.secret().clone(), RootToken::Reused));
            }
        }
    }
    let (record, secret) = ibyok::bootstrap::root_token(&tenant.tenant_id, &tenant.name, now);
    let audit = ibyok::store::AuditEvent {
        tenant_id: Some(tenant.tenant_id.clone()),
        at: now,
        request_id: "ibyok-dev-start".into(),
        action: ibyok::store::AuditAction::TokenCreate,
        token_id: Some(record.token_id.clone()),
        key_id: None,
        version: None,
        environment: None,
        effective_mode: None,
        outcome: ibyok::store::Outcome::Ok,
        source_ip: None,
        user_agent: Some("ibyok dev".into()),
        actor: None,
        identity_id: None,
        detail: None,
        event_id: ibyok::ids::new_event_id(),
        retain_until: None,
    };
    store.create_token(&record, &audit).await?;
    if let Some(dir) = dir {
        keep_root_token(dir, &secret)?;
    }
    let revoked = revoke_other_roots(store, &tenant.tenant_id, &record.token_id, now).await?;
    Ok((tenant.tenant_id, secret, RootToken::Replaced { revoked }))
}

/// What a start did with the root token, for its message.
enum RootToken {
    New,
    Reused,
    Replaced { revoked: usize },
}

fn keep_root_token(dir: &std::path::Path, token: &TokenSecret) -> std::io::Result<()> {
    let line = zeroize::Zeroizing::new(format!("{}\n", token.expose_token()));
    ibyok::files::write_private(&dir.join(ROOT_TOKEN_FILE), line.as_bytes())
}

/// Revokes every live root token of `tenant` but `keep`: the root alone (an
/// operator's revocation, not a leak's), so that what it issued stays.
async fn revoke_other_roots(
    store: &dyn Store,
    tenant: &ibyok::ids::TenantId,
    keep: &ibyok::ids::TokenId,
    now: ibyok::clock::Timestamp,
) -> Result<usize, Error> {
    let mut revoked = 0;
    let mut cursor: Option<String> = None;
    loop {
        let page = store.list_tokens(tenant, 100, cursor.as_deref()).await?;
        for t in page.items.iter().filter(|t| t.issued_by.is_none() && &t.token_id != keep && t.is_live(now)) {
            let it = ibyok::store::Revocable { token_id: t.token_id.clone(), expires_at: Some(t.grant.expires_at) };
            store.revoke_token(tenant, &it, now, 0).await?;
            revoked += 1;
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(revoked),
        }
    }
}

fn write_token_file(path: &std::path::Path, token: &TokenSecret) -> std::io::Result<()> {
    let line = zeroize::Zeroizing::new(format!("{}\n", token.expose_token()));
    ibyok::files::write_private(path, line.as_bytes())
}

pub async fn run(args: DevArgs) -> Result<(), Error> {
    if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() {
        return Err("ibyok dev refuses to run inside AWS Lambda (AWS_LAMBDA_FUNCTION_NAME is set)".into());
    }
    let mut config = Config::from_env()?;
    // Local issuers (`http://127.0.0.1:…`, `http://localhost:…`) and a
    // local STS are allowed here, never in a deployment.
    config.allow_loopback_http = true;
    if let Some(id) = &args.server_id {
        config.server_id = id.clone();
    }
    if let Some(url) = &args.sts_endpoint {
        config.sts_endpoint = url.clone();
    }
    if let Some(url) = &args.github_keys_url {
        config.github_keys_url = url.clone();
    }
    let listener = tokio::net::TcpListener::bind(args.listen).await.map_err(|e| -> Error {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            format!("{} is already in use; pass --listen HOST:PORT to choose another", args.listen).into()
        } else {
            format!("cannot listen on {}: {e}", args.listen).into()
        }
    })?;
    config.sign_in = args.sign_in.config(&format!("http://{}", listener.local_addr()?))?;
    let (store, kms, existing): (Arc<dyn Store>, Arc<dyn ibyok::kms::Kms>, _) = if args.aws {
        let (s, k) = aws_backends(&args).await?;
        (s, k, None)
    } else if let Some(dir) = &args.data_dir {
        let store = MemoryStore::open_dir(dir)?;
        let existing = store.tenants().into_iter().next();
        let kms = LocalKms::from_file(&dir.join("master.key"))?;
        (Arc::new(store), Arc::new(kms), existing)
    } else {
        (Arc::new(MemoryStore::new()), Arc::new(LocalKms::ephemeral()), None)
    };
    let data_dir = if args.aws { None } else { args.data_dir.as_deref() };
    // The audit digests' signing key: KMS with --aws and
    // IBYOK_AUDIT_SIGNING_KEY_ID, else a local key (kept 0600 in the data
    // directory, or for this process only).
    let signer: Arc<dyn ibyok::kms::Signer> = match (args.aws, data_dir) {
        (true, _) if let Some(s) = ibyok::aws::audit_signer().await => s,
        (_, Some(dir)) => Arc::new(ibyok::kms::local::LocalSigner::from_file(&dir.join("audit-signing.key"))?),
        _ => Arc::new(ibyok::kms::local::LocalSigner::ephemeral()?),
    };
    let (tenant, token, kept) = root_token(store.as_ref(), existing, data_dir).await?;
    if let Some(reads) = args.quota {
        store.set_quota(&tenant, Some(reads)).await?;
    }
    // Leak notices as log lines, as the expiry notices.
    let retention_days = config.audit_retention_days;
    let app = Arc::new(
        App::new(store, kms, config)
            .with_notifier(Some(Arc::new(ibyok::notify::LogNotifier)))
            .with_audit_signer(Some(signer.clone())),
    );
    spawn_maintenance(app.clone(), Duration::from_secs(args.purge_every), signer, retention_days);

    eprintln!("==================================================================");
    eprintln!("  WARNING: ibyok dev is a DEVELOPMENT server. Not for production:");
    eprintln!(
        "  {}",
        if args.aws {
            "it serves plain HTTP."
        } else {
            "its master key and data sit on this machine, and it serves plain HTTP."
        }
    );
    eprintln!("==================================================================");
    // The console takes the token pasted into its sign-in page: never in a
    // URL. Printed before the token, whose line is the last on stdout (a
    // reader may stop at it and close the pipe).
    println!("Console:    http://{}/console/", listener.local_addr()?);
    println!("Root token: {}", token.expose_token());
    if let Some(dir) = data_dir {
        let path = dir.join(ROOT_TOKEN_FILE).display().to_string();
        match kept {
            RootToken::New => eprintln!("Root token kept in {path} for the next start"),
            RootToken::Reused => eprintln!("Root token: the previous start's, from {path}"),
            RootToken::Replaced { revoked } => {
                eprintln!("Root token: a new one, kept in {path}; {revoked} earlier root token(s) revoked")
            }
        }
    }
    if let Some(path) = &args.token_file {
        write_token_file(path, &token)?;
        eprintln!("Root token written to {}", path.display());
    }
    eprintln!("Listening on http://{} (environment: {})", listener.local_addr()?, app.config.environment.as_str());

    let mut connections = tokio::task::JoinSet::new();
    let shutdown = tokio::signal::ctrl_c();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => { tracing::warn!(error = %e, "accept failed"); continue; }
                };
                let _ = stream.set_nodelay(true);
                let app = app.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let app = app.clone();
                        async move { Ok::<_, std::convert::Infallible>(serve_one(&app, req, peer).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                while connections.try_join_next().is_some() {}
            }
        }
    }
    eprintln!("Shutting down: finishing requests in flight…");
    let _ =
        tokio::time::timeout(Duration::from_secs(5), async { while connections.join_next().await.is_some() {} }).await;
    Ok(())
}

/// Runs the scheduled work (the cleanup function's) every `every`, from the
/// first tick at start.
fn spawn_maintenance(app: Arc<App>, every: Duration, signer: Arc<dyn ibyok::kms::Signer>, retention_days: i64) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // The cleanup function's notices, as log lines.
            let notifier = ibyok::notify::LogNotifier;
            if let Err(e) = ibyok::maintenance::run(app.store.as_ref(), Some(&notifier), app.clock.now()).await {
                tracing::warn!(error = %ibyok::fault::chain(&e), "maintenance run failed");
            }
            // The audit digests, as the cleanup function makes them.
            let digested =
                ibyok::maintenance::digest(app.store.as_ref(), signer.as_ref(), app.clock.now(), retention_days);
            if let Err(e) = digested.await {
                tracing::warn!(error = %ibyok::fault::chain(&e), "audit digest run failed");
            }
        }
    });
}

async fn serve_one(app: &App, req: Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
    if let Some(resp) = crate::console::serve(req.method(), req.uri().path()) {
        return resp;
    }
    let (parts, body) = req.into_parts();
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let resp = match Limited::new(body, max_body_bytes(parts.uri.path()) + 1).collect().await {
        Ok(collected) => {
            let api = ApiRequest {
                method: parts.method.as_str().to_ascii_uppercase(),
                path: parts.uri.path().to_owned(),
                query: parse_query(parts.uri.query()),
                authorization: header("authorization").map(Into::into),
                cookie: header("cookie").map(Into::into),
                content_type: header("content-type"),
                user_agent: header("user-agent"),
                source_ip: Some(peer.ip()),
                request_id: String::new(),
                // Without a copy when hyper hands over the only reference.
                body: Vec::from(collected.to_bytes()).into(),
                github_key_id: header(ibyok::scanning::KEY_ID_HEADER),
                github_signature: header(ibyok::scanning::SIGNATURE_HEADER),
            };
            app.handle(api).await
        }
        Err(_) => {
            let mut r = ApiError::PayloadTooLarge.into_response();
            r.headers.push(("x-request-id", ibyok::ids::new_request_id()));
            r
        }
    };
    let mut out = Response::builder().status(resp.status);
    for (k, v) in &resp.headers {
        out = out.header(*k, v);
    }
    let body = Bytes::from_owner(SentBody(resp.body));
    out.body(Full::new(body)).unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// A response body handed to hyper without a copy: the zeroizing buffer
/// itself, wiped when hyper drops the last reference after sending it.
struct SentBody(Redacted<Vec<u8>>);

impl AsRef<[u8]> for SentBody {
    fn as_ref(&self) -> &[u8] {
        self.0.expose()
    }
}
