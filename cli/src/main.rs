//! `ibyok`: the local development server, the operator's bootstrap and the
//! command-line client.
//!
//! Running a deployment with it (`docs/operations.md`):
//!
#![doc = include_str!("../../docs/operations.md")]

mod audit;
mod client;
mod console;
mod dev;
mod identities;
mod members;
mod output;
mod session;
mod signin;

use clap::{Parser, Subcommand};
use client::Client;
use ibyok::secret::TokenSecret;

#[derive(Parser, Debug)]
#[command(name = "ibyok", version, about = "A vault for LLM provider API keys")]
struct Cli {
    /// The API's base URL.
    #[arg(long, global = true, env = "IBYOK_URL", default_value = "http://127.0.0.1:8787")]
    url: String,
    /// The access token (prefer the IBYOK_TOKEN variable: flags show in
    /// `ps`). Without one, the session `ibyok login` kept for this URL.
    #[arg(long, global = true, env = "IBYOK_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the local development server (not for production).
    Dev(dev::DevArgs),
    /// Manage keys.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Print a key's value only (for `$(ibyok get key_…)`).
    Get {
        key_id: String,
        /// dev, development, staging, prod or production.
        #[arg(long)]
        env: Option<String>,
        /// current (default), previous, pending or a version number.
        #[arg(long)]
        version: Option<String>,
    },
    /// Manage tokens.
    #[command(subcommand)]
    Tokens(TokensCmd),
    /// Show or change the tenant's settings.
    #[command(subcommand)]
    Settings(SettingsCmd),
    /// Usage counters of every key and token.
    Usage,
    /// The audit log, newest first; `ibyok audit verify` checks it against
    /// its signed digests.
    #[command(args_conflicts_with_subcommands = true)]
    Audit {
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[command(subcommand)]
        verify: Option<AuditCmd>,
    },
    /// Run a command with keys in its environment. With --identity, the
    /// workload's own credential is exchanged for a short-lived token first
    /// (kept in memory only).
    Run {
        /// NAME=key_… (repeatable).
        #[arg(long = "env-var", required = true)]
        env_vars: Vec<String>,
        #[arg(long)]
        env: Option<String>,
        #[command(flatten)]
        login: identities::WorkloadLogin,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Sign in as a person, in the browser (GitHub or the vault's OpenID
    /// provider): the session (12 hours, your role's scopes) is kept in the
    /// OS keyring, else in ~/.config/ibyok/session (mode 0600), and the
    /// other commands use it when no token is given. With --identity
    /// instead: exchange a workload's credential (OIDC token or AWS
    /// credentials) for a short-lived token through an identity, and print
    /// it (nothing kept).
    #[command(after_help = "IBYOK_KEYRING=off keeps the session in the file, never the keyring.")]
    Login {
        #[command(flatten)]
        person: signin::PersonLogin,
        #[command(flatten)]
        login: identities::WorkloadLogin,
    },
    /// End the session `ibyok login` kept for this URL (on the vault, then
    /// here). A token given by IBYOK_TOKEN or --token is left alone.
    Logout,
    /// Manage workload identities (who may exchange, for what).
    #[command(subcommand)]
    Identities(IdentitiesCmd),
    /// Manage the tenant's members (people) and their roles.
    #[command(subcommand)]
    Members(MembersCmd),
    /// Operator commands (straight to DynamoDB with the AWS configuration).
    #[command(subcommand)]
    Admin(AdminCmd),
}

#[derive(Subcommand, Debug)]
enum KeysCmd {
    /// Store a key; the value is read from stdin or a prompt, never argv.
    Add {
        #[arg(long)]
        name: String,
        #[arg(long = "llm-type")]
        llm_type: String,
        /// ENV=MODE, e.g. development=live (repeatable).
        #[arg(long = "mode-override")]
        mode_overrides: Vec<String>,
    },
    List,
    Show {
        key_id: String,
    },
    /// Store a new version of a key's value (read from stdin or a prompt):
    /// current at once, or pending until promoted.
    Rotate {
        key_id: String,
        /// Store it as the pending version (read only when asked for).
        #[arg(long)]
        pending: bool,
        /// Keep the version it replaces readable this long (e.g. 1h, 7d).
        #[arg(long = "previous-valid-for", value_parser = parse_duration_or_zero, conflicts_with = "pending")]
        previous_valid_for: Option<u64>,
    },
    /// Make the pending version current.
    Promote {
        key_id: String,
        /// Keep the version it replaces readable this long (e.g. 1h, 7d).
        #[arg(long = "previous-valid-for", value_parser = parse_duration_or_zero)]
        previous_valid_for: Option<u64>,
    },
    /// A key's versions, newest first.
    Versions {
        key_id: String,
    },
    Rm {
        key_id: String,
    },
}

#[derive(Subcommand, Debug)]
enum TokensCmd {
    Create {
        #[arg(long)]
        name: String,
        /// Repeatable, e.g. --scope keys:read.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        #[arg(long = "expires-in")]
        expires_in: Option<u64>,
        #[arg(long = "key-id")]
        key_ids: Vec<String>,
        #[arg(long = "cidr")]
        cidrs: Vec<String>,
        /// Requests a minute (1–100000); a limited issuer's child inherits its limit.
        #[arg(long = "rate-limit")]
        rate_limit: Option<u32>,
    },
    /// The tokens this one reaches; filters are ANDed.
    List {
        /// Live tokens expiring within this long (e.g. 7d, 12h, 3600).
        #[arg(long, value_parser = parse_duration)]
        expiring: Option<u64>,
        /// Live tokens not used for this long (e.g. 30d).
        #[arg(long, value_parser = parse_duration)]
        unused: Option<u64>,
        /// live, revoked or expired.
        #[arg(long, value_parser = ["live", "revoked", "expired"])]
        state: Option<String>,
    },
    /// Revoke a token (and its descendants); `self` revokes the one in use.
    Revoke { token_id: String },
}

#[derive(Subcommand, Debug)]
enum MembersCmd {
    List,
    /// Invite a person: github:LOGIN or oidc:EMAIL.
    Invite {
        who: String,
        /// owner, admin, developer or viewer.
        #[arg(long)]
        role: String,
        #[arg(long)]
        name: Option<String>,
    },
    /// Change a member's role.
    SetRole {
        member_id: String,
        #[arg(long)]
        role: String,
    },
    /// Remove a member.
    Rm {
        member_id: String,
    },
}

// Parsed once per process: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum IdentitiesCmd {
    /// An OIDC identity (--issuer, --audience, --subject) or an AWS one
    /// (--aws-account, --aws-role).
    Create {
        #[arg(long)]
        name: String,
        /// The OpenID issuer (`https://token.actions.githubusercontent.com`, …).
        #[arg(long, conflicts_with_all = ["aws_account", "aws_role"])]
        issuer: Option<String>,
        #[arg(long, requires = "issuer")]
        audience: Option<String>,
        #[arg(long, requires = "issuer")]
        subject: Option<String>,
        /// Let `*` in --subject stand for one segment.
        #[arg(long, requires = "subject")]
        subject_glob: bool,
        /// NAME=VALUE (repeatable; a name given twice allows each value).
        #[arg(long = "bound-claim", requires = "issuer")]
        bound_claims: Vec<String>,
        /// 12 digits.
        #[arg(long)]
        aws_account: Option<String>,
        #[arg(long, requires = "aws_account")]
        aws_role: Option<String>,
        /// Repeatable, e.g. --scope keys:read.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        #[arg(long = "key-id")]
        key_ids: Vec<String>,
        #[arg(long = "cidr")]
        cidrs: Vec<String>,
        #[arg(long = "rate-limit")]
        rate_limit: Option<u32>,
        /// Seconds an exchanged token lives (60–3600, default 900).
        #[arg(long = "token-ttl")]
        token_ttl: Option<u64>,
    },
    List,
    Show {
        identity_id: String,
    },
    /// Delete it: every token exchanged through it is refused from then on.
    Rm {
        identity_id: String,
    },
}

#[derive(Subcommand, Debug)]
enum SettingsCmd {
    /// Show the default mode per environment, or change it with --set.
    Modes {
        /// ENV=MODE, e.g. production=live (repeatable).
        #[arg(long)]
        set: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
enum AuditCmd {
    /// Recompute every digest from the events, check the signatures (with
    /// the published public key) and each shard's chain; report each event
    /// changed, deleted, inserted or moved, and each gap. Exits non-zero on
    /// any finding. Needs a token with usage:read.
    Verify {
        /// Only the digests made through this time or later (RFC 3339).
        #[arg(long)]
        from: Option<String>,
        /// Only the digests made through this time or earlier (RFC 3339).
        #[arg(long)]
        to: Option<String>,
        /// A file holding the public key to trust (DER, or its base64),
        /// instead of the one the API publishes.
        #[arg(long)]
        public_key: Option<std::path::PathBuf>,
        /// A shard whose newest digest is older than this is a gap (a
        /// quiet shard gets one a day).
        #[arg(long, default_value = "26h", value_parser = parse_duration)]
        max_age: u64,
    },
}

#[derive(Subcommand, Debug)]
enum AdminCmd {
    /// Create a tenant and print its first (root) token.
    Bootstrap {
        #[arg(long)]
        tenant: String,
        /// The tenant's first owner, `github:LOGIN` or `oidc:EMAIL`: a
        /// member invitation that binds at their first sign-in.
        #[arg(long, value_name = "PROVIDER:HANDLE")]
        owner: Option<String>,
    },
    /// Set a tenant's monthly quota of value reads, or remove it.
    Quota {
        /// The tenant's name (as given to bootstrap) or id.
        #[arg(long)]
        tenant: String,
        /// Value reads a UTC month (0 refuses every read).
        #[arg(long, required_unless_present = "unlimited", conflicts_with = "unlimited")]
        reads_per_month: Option<u64>,
        /// Remove the quota.
        #[arg(long)]
        unlimited: bool,
    },
    /// Create the tables from the code's schema, where missing (for a local
    /// AWS-protocol server; production tables come from template.yaml).
    CreateTables,
    /// Move items of the earlier layout to the current one: issuers' child
    /// sets to the children table, audit events to their shard partitions.
    /// Idempotent; the earlier layout keeps working without it.
    Migrate,
    /// Sign the audit log's new digests once, as the cleanup function does
    /// on its schedule (the key from IBYOK_AUDIT_SIGNING_KEY_ID).
    Digest,
}

async fn bootstrap(tenant: &str, owner: Option<&str>, as_json: bool) -> Result<(), String> {
    use ibyok::clock::Clock;
    let owner = owner
        .map(|o| {
            ibyok::member::Invitee::parse_spec(o)
                .ok_or_else(|| format!("--owner {o:?}: must be github:LOGIN or oidc:EMAIL"))
        })
        .transpose()?;
    let sdk = ibyok::aws::sdk_config().await;
    let store = ibyok::aws::dynamo_store(&sdk);
    let now = ibyok::clock::SystemClock.now();
    let b = ibyok::bootstrap::create_tenant(&store, tenant, now).await.map_err(|e| format!("bootstrap failed: {e}"))?;
    if let Some(owner) = owner {
        let retention = ibyok::config::Config::from_env().map(|c| c.audit_retention_days).unwrap_or(90);
        let m = ibyok::bootstrap::first_owner(&store, &b.tenant.tenant_id, owner, now, retention)
            .await
            .map_err(|e| format!("the tenant {} was made, but its owner was not: {e}", b.tenant.tenant_id))?;
        eprintln!("Owner {} invited as {} ({}).", m.invitee.key(), m.role.as_str(), m.member_id);
    }
    if as_json {
        client::print_bootstrapped(&client::Bootstrapped {
            expires_at: &b.root.grant.expires_at,
            tenant_id: &b.tenant.tenant_id,
            token: &b.token,
            token_id: &b.root.token_id,
        });
    } else {
        eprintln!("Tenant {} created. Its root token (all scopes, one year) is shown once:", b.tenant.tenant_id);
        println!("{}", b.token.expose_token());
    }
    Ok(())
}

/// `ibyok admin quota`: straight to the store, like bootstrap.
async fn quota(tenant: &str, reads_per_month: Option<u64>) -> Result<(), String> {
    let sdk = ibyok::aws::sdk_config().await;
    let store = ibyok::aws::dynamo_store(&sdk);
    let id = match ibyok::ids::TenantId::parse(tenant) {
        Some(id) => id,
        None => {
            let found = store.tenants_named(tenant).await.map_err(|e| format!("finding the tenant failed: {e}"))?;
            match found.as_slice() {
                [one] => one.tenant_id.clone(),
                [] => return Err(format!("no tenant is named `{tenant}`")),
                many => {
                    let ids: Vec<String> = many.iter().map(|t| t.tenant_id.to_string()).collect();
                    return Err(format!(
                        "{} tenants are named `{tenant}`; name one by id: {}",
                        many.len(),
                        ids.join(", ")
                    ));
                }
            }
        }
    };
    use ibyok::store::LimitStore;
    store.set_quota(&id, reads_per_month).await.map_err(|e| match e {
        ibyok::store::StoreError::NotFound => format!("no tenant {id}"),
        e => format!("setting the quota failed: {e}"),
    })?;
    match reads_per_month {
        Some(n) => eprintln!("Tenant {id}: at most {n} value reads a UTC month."),
        None => eprintln!("Tenant {id}: no quota."),
    }
    Ok(())
}

fn client_command(cli: &Cli, token: Option<TokenSecret>) -> Result<(), String> {
    let sessions = session::Sessions::from_env();
    match &cli.command {
        Command::Login { login, .. } if login.identity.is_some() => {
            return identities::login(&cli.url, login, cli.json)
        }
        Command::Login { person, .. } => return signin::login(&cli.url, person, &sessions, token.is_some(), cli.json),
        Command::Logout => return signin::logout(&cli.url, &sessions),
        _ => {}
    }
    let (token, from_session) = match &cli.command {
        Command::Run { login, .. } if login.identity.is_some() => {
            (Some(identities::exchange(&cli.url, login)?.0), false)
        }
        _ if token.is_some() => (token, false),
        _ => {
            let kept = sessions.load(&cli.url)?;
            let found = kept.is_some();
            (kept, found)
        }
    };
    let c = Client::new(&cli.url, token)?;
    let c = if from_session { c.without_expiry_warning() } else { c };
    dispatch(cli, c).map_err(|e| match from_session && e.ends_with("HTTP 401)") {
        true => format!("{e}\nThe session of `ibyok login` has ended (expired, signed out, or its member removed or demoted): run `ibyok login` again."),
        false => e,
    })
}

/// The commands that call the API with a token.
fn dispatch(cli: &Cli, c: Client) -> Result<(), String> {
    let j = cli.json;
    match &cli.command {
        Command::Keys(KeysCmd::Add { name, llm_type, mode_overrides }) => {
            client::keys_add(&c, name, llm_type, mode_overrides, j)
        }
        Command::Keys(KeysCmd::List) => client::keys_list(&c, j),
        Command::Keys(KeysCmd::Show { key_id }) => {
            let k = c.call("GET", &format!("/keys/{key_id}"), None)?;
            client::print_key(&k, j);
            Ok(())
        }
        Command::Keys(KeysCmd::Rotate { key_id, pending, previous_valid_for }) => {
            let k = client::rotate(&c, key_id, *pending, *previous_valid_for)?;
            client::print_key(&k, j);
            Ok(())
        }
        Command::Keys(KeysCmd::Promote { key_id, previous_valid_for }) => {
            let body = match previous_valid_for {
                Some(s) => serde_json::json!({ "previousValidFor": s }),
                None => serde_json::json!({}),
            };
            let k = c.call("POST", &format!("/keys/{key_id}/promote"), Some(body))?;
            client::print_key(&k, j);
            Ok(())
        }
        Command::Keys(KeysCmd::Versions { key_id }) => client::versions(&c, key_id, j),
        Command::Keys(KeysCmd::Rm { key_id }) => c.call("DELETE", &format!("/keys/{key_id}"), None).map(|_| ()),
        Command::Get { key_id, env, version } => {
            println!("{}", client::value_of(&c, key_id, env.as_deref(), version.as_deref())?.expose_value());
            Ok(())
        }
        Command::Tokens(TokensCmd::Create { name, scopes, expires_in, key_ids, cidrs, rate_limit }) => {
            let t = client::NewToken { name, scopes, expires_in: *expires_in, key_ids, cidrs, rate_limit: *rate_limit };
            client::tokens_create(&c, t, j)
        }
        Command::Tokens(TokensCmd::List { expiring, unused, state }) => {
            let mut query = String::from("limit=100");
            for (name, v) in [
                ("expiringWithin", expiring.map(|s| s.to_string())),
                ("unusedFor", unused.map(|s| s.to_string())),
                ("state", state.clone()),
            ] {
                if let Some(v) = v {
                    query.push_str(&format!("&{name}={v}"));
                }
            }
            client::tokens_list(&c, &query, j)
        }
        Command::Tokens(TokensCmd::Revoke { token_id }) => {
            c.call("DELETE", &format!("/tokens/{token_id}"), None).map(|_| ())
        }
        Command::Settings(SettingsCmd::Modes { set }) => client::settings_modes(&c, set, j),
        Command::Usage => client::usage(&c, j),
        Command::Audit { verify: Some(AuditCmd::Verify { from, to, public_key, max_age }), .. } => {
            audit::verify(&c, from.as_deref(), to.as_deref(), public_key.as_deref(), *max_age, j)
        }
        Command::Audit { limit, verify: None } => audit::list(&c, *limit, j),
        Command::Run { env_vars, env, command, .. } => client::run(&c, env_vars, env.as_deref(), command),
        Command::Identities(IdentitiesCmd::Create {
            name,
            issuer,
            audience,
            subject,
            subject_glob,
            bound_claims,
            aws_account,
            aws_role,
            scopes,
            key_ids,
            cidrs,
            rate_limit,
            token_ttl,
        }) => {
            let n = identities::NewIdentity {
                name,
                issuer: issuer.as_deref(),
                audience: audience.as_deref(),
                subject: subject.as_deref(),
                subject_glob: *subject_glob,
                bound_claims,
                aws_account: aws_account.as_deref(),
                aws_role: aws_role.as_deref(),
                scopes,
                key_ids,
                cidrs,
                rate_limit: *rate_limit,
                token_ttl: *token_ttl,
            };
            identities::create(&c, n, j)
        }
        Command::Identities(IdentitiesCmd::List) => identities::list(&c, j),
        Command::Identities(IdentitiesCmd::Show { identity_id }) => {
            client::print_json(&c.call("GET", &format!("/identities/{identity_id}"), None)?);
            Ok(())
        }
        Command::Identities(IdentitiesCmd::Rm { identity_id }) => {
            c.call("DELETE", &format!("/identities/{identity_id}"), None).map(|_| ())
        }
        Command::Members(MembersCmd::List) => members::list(&c, j),
        Command::Members(MembersCmd::Invite { who, role, name }) => members::invite(&c, who, role, name.as_deref(), j),
        Command::Members(MembersCmd::SetRole { member_id, role }) => members::set_role(&c, member_id, role, j),
        Command::Members(MembersCmd::Rm { member_id }) => {
            c.call("DELETE", &format!("/members/{member_id}"), None).map(|_| ())
        }
        Command::Login { .. } | Command::Logout | Command::Dev(_) | Command::Admin(_) => {
            unreachable!("handled before")
        }
    }
}

fn main() {
    let mut cli = Cli::parse();
    // The token moves into the secret type at once (no copy left in `cli`).
    let token = cli.token.take().map(TokenSecret::new);
    let result: Result<(), String> = match &cli.command {
        Command::Dev(_) | Command::Admin(_) => {
            ibyok::telemetry::init();
            let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("ibyok: cannot start the async runtime: {e}");
                    std::process::exit(1);
                }
            };
            rt.block_on(async {
                match cli.command {
                    Command::Dev(args) => dev::run(args).await.map_err(|e| e.to_string()),
                    Command::Admin(AdminCmd::Bootstrap { tenant, owner }) => {
                        bootstrap(&tenant, owner.as_deref(), cli.json).await
                    }
                    Command::Admin(AdminCmd::Quota { tenant, reads_per_month, unlimited: _ }) => {
                        quota(&tenant, reads_per_month).await
                    }
                    Command::Admin(AdminCmd::CreateTables) => {
                        let sdk = ibyok::aws::sdk_config().await;
                        let tables = ibyok::config::Tables::from_env();
                        ibyok::store::dynamo::create_tables(&aws_sdk_dynamodb::Client::new(&sdk), &tables)
                            .await
                            .map_err(|e| format!("creating the tables failed: {e}"))
                    }
                    Command::Admin(AdminCmd::Digest) => {
                        use ibyok::clock::Clock;
                        let sdk = ibyok::aws::sdk_config().await;
                        let store = ibyok::aws::dynamo_store(&sdk);
                        let signer = ibyok::aws::audit_signer()
                            .await
                            .ok_or("IBYOK_AUDIT_SIGNING_KEY_ID is not set: name the audit signing key")?;
                        let retention =
                            ibyok::config::Config::from_env().map_err(|e| e.to_string())?.audit_retention_days;
                        let now = ibyok::clock::SystemClock.now();
                        let report = ibyok::maintenance::digest(&store, signer.as_ref(), now, retention)
                            .await
                            .map_err(|e| format!("the digest run failed: {}", ibyok::fault::chain(&e)))?;
                        println!("{}", serde_json::to_string(&report).unwrap_or_default());
                        Ok(())
                    }
                    Command::Admin(AdminCmd::Migrate) => {
                        let sdk = ibyok::aws::sdk_config().await;
                        let store = ibyok::aws::dynamo_store(&sdk);
                        let report = store.migrate().await.map_err(|e| format!("migration failed: {e}"))?;
                        println!("{}", serde_json::to_string(&report).unwrap_or_default());
                        Ok(())
                    }
                    _ => Ok(()),
                }
            })
        }
        _ => client_command(&cli, token),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// As [`parse_duration`], and `0` (no window) too.
fn parse_duration_or_zero(s: &str) -> Result<u64, String> {
    match s.trim_end_matches(['s', 'm', 'h', 'd']) {
        d if !d.is_empty() && d.bytes().all(|b| b == b'0') => Ok(0),
        _ => parse_duration(s),
    }
}

/// Seconds from `90`, `90s`, `15m`, `12h` or `7d`.
fn parse_duration(s: &str) -> Result<u64, String> {
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = digits.parse().map_err(|_| format!("`{s}` is not a duration like 7d, 12h, 15m or 90"))?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("`{s}`: the unit must be s, m, h or d")),
    };
    n.checked_mul(unit).filter(|n| *n > 0).ok_or_else(|| format!("`{s}` is out of range"))
}
