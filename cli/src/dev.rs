//! `ibyok dev`: the whole contract on one local port, through the same
//! handler code as the Lambdas, on embedded backends (or, with `--aws`, on
//! DynamoDB and KMS through the standard AWS configuration).

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use ibyok::api::body::{parse_query, MAX_BODY_BYTES};
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

/// The tenant to serve and a fresh root token for it: the data dir's first
/// tenant when there is one, else a new tenant.
/// The development tenant's id and a fresh root token for it.
async fn root_token(
    store: &dyn Store,
    existing: Option<ibyok::store::TenantRecord>,
) -> Result<(ibyok::ids::TenantId, TokenSecret), Error> {
    let now = SystemClock.now();
    match existing {
        Some(tenant) => {
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
            Ok((tenant.tenant_id, secret))
        }
        None => {
            let b = ibyok::bootstrap::create_tenant(store, "dev", now).await?;
            Ok((b.tenant.tenant_id, b.token))
        }
    }
}

fn write_token_file(path: &std::path::Path, token: &TokenSecret) -> std::io::Result<()> {
    let token = token.expose_token();
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        opts.mode(0o600);
        let mut f = opts.open(path)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        writeln!(f, "{token}")
    }
    #[cfg(not(unix))]
    {
        writeln!(opts.open(path)?, "{token}")
    }
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
    let listener = tokio::net::TcpListener::bind(args.listen).await.map_err(|e| -> Error {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            format!("{} is already in use; pass --listen HOST:PORT to choose another", args.listen).into()
        } else {
            format!("cannot listen on {}: {e}", args.listen).into()
        }
    })?;
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
    let (tenant, token) = root_token(store.as_ref(), existing).await?;
    if let Some(reads) = args.quota {
        store.set_quota(&tenant, Some(reads)).await?;
    }
    let app = Arc::new(App::new(store, kms, config));
    spawn_maintenance(app.clone(), Duration::from_secs(args.purge_every));

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
fn spawn_maintenance(app: Arc<App>, every: Duration) {
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
        }
    });
}

async fn serve_one(app: &App, req: Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
    if let Some(resp) = crate::console::serve(req.method(), req.uri().path()) {
        return resp;
    }
    let (parts, body) = req.into_parts();
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let resp = match Limited::new(body, MAX_BODY_BYTES + 1).collect().await {
        Ok(collected) => {
            let api = ApiRequest {
                method: parts.method.as_str().to_ascii_uppercase(),
                path: parts.uri.path().to_owned(),
                query: parse_query(parts.uri.query()),
                authorization: header("authorization").map(Into::into),
                content_type: header("content-type"),
                user_agent: header("user-agent"),
                source_ip: Some(peer.ip()),
                request_id: String::new(),
                // Without a copy when hyper hands over the only reference.
                body: Vec::from(collected.to_bytes()).into(),
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
