//! The client commands: HTTP to the dev server or API Gateway, configured
//! by `IBYOK_URL` and `IBYOK_TOKEN` (flags override; without a token, the
//! session `ibyok login` kept, [`crate::session`]).

use crate::output::{relative, table, text};
use ibyok::api::Redacted;
use ibyok::secret::{SecretValue, TokenSecret};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{json, Value};
use std::io::IsTerminal;

/// The token and every value stay in the zeroizing secret types; bodies that
/// carry one are written and read through zeroizing buffers.
pub struct Client {
    base: String,
    /// `None` for the exchanges, which take no bearer token.
    token: Option<TokenSecret>,
    agent: ureq::Agent,
    /// Whether the expiry warning was printed (once a process).
    warned: std::cell::Cell<bool>,
}

/// A token expiring within this many seconds draws a warning.
pub const EXPIRY_WARNING_SECONDS: i64 = 7 * 86_400;

/// The warning for a token whose `Ibyok-Token-Expires-At` header is `header`,
/// if it expires within [`EXPIRY_WARNING_SECONDS`] of `now`.
pub fn expiry_warning(header: &str, now: ibyok::clock::Timestamp) -> Option<String> {
    let at = ibyok::clock::Timestamp::parse_rfc3339(header.trim())?;
    let left = at.seconds() - now.seconds();
    if left >= EXPIRY_WARNING_SECONDS {
        return None;
    }
    let when = match left {
        l if l <= 0 => "it has expired".to_owned(),
        l if l < 3600 => format!("in {} minutes", (l + 59) / 60),
        l if l < 2 * 86_400 => format!("in {} hours", l / 3600),
        l => format!("in {} days", l / 86_400),
    };
    Some(format!("warning: this token expires at {} ({when}); get a new one before then", at.rfc3339()))
}

/// A failure to show on stderr; the process exits non-zero.
pub type CliError = String;

impl Client {
    pub fn new(url: &str, token: Option<TokenSecret>) -> Result<Self, CliError> {
        let token = token.ok_or("no token: sign in with `ibyok login`, or set IBYOK_TOKEN (or pass --token)")?;
        Ok(Self { token: Some(token), ..Self::anonymous(url) })
    }

    /// No expiry warning: a session of `ibyok login` ends within hours by
    /// design, and the 401 after its end says to sign in again.
    pub fn without_expiry_warning(self) -> Self {
        self.warned.set(true);
        self
    }

    /// A client that sends no token (the workload exchanges).
    pub fn anonymous(url: &str) -> Self {
        let agent = ureq::AgentBuilder::new().timeout(std::time::Duration::from_secs(30)).build();
        Self { base: url.trim_end_matches('/').to_owned(), token: None, agent, warned: std::cell::Cell::new(false) }
    }

    /// Sends a request; answers the JSON body of a 2xx, or the server's
    /// error message. For bodies that carry no secret.
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, CliError> {
        let body = body.map(|b| json_bytes(&b));
        let raw = self.send(method, path, body.as_ref())?;
        if raw.expose().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(raw.expose()).map_err(|e| format!("unreadable response: {e}"))
    }

    /// Sends a request with an optional JSON body; answers a 2xx's body in a
    /// zeroizing buffer (empty for a 204), or the server's error message.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Redacted<Vec<u8>>>,
    ) -> Result<Redacted<Vec<u8>>, CliError> {
        self.try_send(method, path, body)?.map_err(|refused| refused.message)
    }

    /// As [`Client::send`], with the server's refusal (its status and
    /// message) apart from a failure to reach it.
    pub fn try_send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Redacted<Vec<u8>>>,
    ) -> Result<Result<Redacted<Vec<u8>>, Refused>, CliError> {
        let mut req = self
            .agent
            .request(method, &format!("{}{path}", self.base))
            .set("user-agent", concat!("ibyok-cli/", env!("CARGO_PKG_VERSION")));
        if let Some(token) = &self.token {
            let authorization: Redacted = format!("Bearer {}", token.expose_token()).into();
            req = req.set("authorization", authorization.expose());
        }
        let result = match body {
            Some(b) => req.set("content-type", "application/json").send_bytes(b.expose()),
            None => req.call(),
        };
        if let Ok(resp) | Err(ureq::Error::Status(_, resp)) = &result {
            self.warn_of_expiry(resp);
        }
        match result {
            Ok(resp) if resp.status() == 204 => Ok(Ok(Vec::new().into())),
            Ok(resp) => read_body(resp).map(Ok),
            Err(ureq::Error::Status(status, resp)) => {
                let body: Value = resp.into_json().unwrap_or(Value::Null);
                let code = body["error"]["code"].as_str().unwrap_or("error");
                let msg = body["error"]["message"].as_str().unwrap_or("the server answered with an error");
                Ok(Err(Refused { status, message: format!("{msg} ({code}, HTTP {status})") }))
            }
            Err(e) => Err(format!("cannot reach {}: {e}", self.base)),
        }
    }
}

/// A request the server answered with an error status.
#[derive(Debug)]
pub struct Refused {
    pub status: u16,
    /// "its message (its code, HTTP status)".
    pub message: String,
}

impl Client {
    /// Prints the expiry warning to stderr, once, when the server says the
    /// token expires within 7 days.
    fn warn_of_expiry(&self, resp: &ureq::Response) {
        use ibyok::clock::Clock;
        if self.warned.get() {
            return;
        }
        let header = resp.header(ibyok::api::TOKEN_EXPIRES_HEADER);
        if let Some(warning) = header.and_then(|h| expiry_warning(h, ibyok::clock::SystemClock.now())) {
            self.warned.set(true);
            eprintln!("{warning}");
        }
    }
}

/// A response body into a buffer that wipes what it outgrows.
fn read_body(resp: ureq::Response) -> Result<Redacted<Vec<u8>>, CliError> {
    let mut buf = Redacted::with_capacity(1024);
    std::io::copy(&mut resp.into_reader(), &mut buf).map_err(|e| format!("unreadable response: {e}"))?;
    Ok(buf)
}

/// JSON into a zeroizing buffer.
pub fn json_bytes(v: &impl Serialize) -> Redacted<Vec<u8>> {
    let mut buf = Redacted::with_capacity(256);
    // Serialising our own request types cannot fail.
    let _ = serde_json::to_writer(&mut buf, v);
    buf
}

fn expose_value<S: Serializer>(v: &SecretValue, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.expose_value())
}

fn expose_token<S: Serializer>(t: &TokenSecret, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(t.expose_token())
}

/// Writes JSON (pretty) to stdout through a zeroizing buffer.
pub fn print_secret_json(v: &impl Serialize) {
    use std::io::Write;
    let mut buf = Redacted::with_capacity(1024);
    let _ = serde_json::to_writer_pretty(&mut buf, v);
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(buf.expose()).and_then(|_| out.write_all(b"\n"));
}

/// A key value from standard input (piped) or a prompt without echo —
/// never from the command line.
pub fn read_value() -> Result<SecretValue, CliError> {
    let value = if std::io::stdin().is_terminal() {
        let typed =
            rpassword::prompt_password("Value (not echoed): ").map_err(|e| format!("cannot read the value: {e}"))?;
        SecretValue::new(typed)
    } else {
        let mut buf = Redacted::with_capacity(256);
        std::io::copy(&mut std::io::stdin().lock(), &mut buf)
            .map_err(|e| format!("cannot read the value from stdin: {e}"))?;
        let bytes = buf.expose_mut();
        while bytes.last().is_some_and(|b| matches!(b, b'\n' | b'\r')) {
            bytes.pop();
        }
        SecretValue::from_redacted(buf).ok_or("cannot read the value from stdin: not UTF-8")?
    };
    if value.expose_value().is_empty() {
        return Err("empty value".into());
    }
    Ok(value)
}

/// The body of `POST /keys` and `PUT /keys/{keyId}/value`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KeyBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    llm_type: Option<&'a str>,
    #[serde(serialize_with = "expose_value")]
    value: &'a SecretValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    mode_overrides: Option<serde_json::Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stage: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_valid_for: Option<u64>,
}

/// `PUT /keys/{keyId}/value` with a value read from stdin or a prompt: a
/// new current version (the one it replaces readable for
/// `previous_valid_for` seconds), or a pending one.
pub fn rotate(c: &Client, key_id: &str, pending: bool, previous_valid_for: Option<u64>) -> Result<Value, CliError> {
    let value = read_value()?;
    let body = json_bytes(&KeyBody {
        name: None,
        llm_type: None,
        value: &value,
        mode_overrides: None,
        stage: pending.then_some("pending"),
        previous_valid_for,
    });
    drop(value);
    let raw = c.send("PUT", &format!("/keys/{key_id}/value"), Some(&body))?;
    serde_json::from_slice(raw.expose()).map_err(|e| format!("unreadable response: {e}"))
}

pub fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn pairs(list: &[String], what: &str) -> Result<serde_json::Map<String, Value>, CliError> {
    list.iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_owned(), json!(v)))
                .ok_or_else(|| format!("{what} must look like NAME=VALUE, not `{p}`"))
        })
        .collect()
}

pub fn key_rows(keys: &[Value]) {
    let rows = keys
        .iter()
        .map(|k| {
            vec![
                text(&k["keyId"]),
                text(&k["name"]),
                text(&k["llmType"]),
                text(&k["version"]),
                text(&k["preview"]),
                relative(&k["lastUsedAt"]),
                relative(&k["updatedAt"]),
            ]
        })
        .collect();
    table(&["KEY ID", "NAME", "TYPE", "VERSION", "PREVIEW", "LAST USED", "UPDATED"], rows);
}

/// One key's metadata, as JSON or a one-row table.
pub fn print_key(k: &Value, as_json: bool) {
    if as_json {
        print_json(k);
    } else {
        key_rows(std::slice::from_ref(k));
    }
}

/// `GET /keys/{keyId}/versions`.
pub fn versions(c: &Client, key_id: &str, as_json: bool) -> Result<(), CliError> {
    let listed = c.call("GET", &format!("/keys/{key_id}/versions"), None)?;
    if as_json {
        print_json(&listed);
        return Ok(());
    }
    let rows = listed["versions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|v| {
            vec![
                text(&v["version"]),
                text(&v["stage"]),
                relative(&v["createdAt"]),
                relative(&v["retiresAt"]),
                text(&v["preview"]),
            ]
        })
        .collect();
    table(&["VERSION", "STAGE", "CREATED", "RETIRES", "PREVIEW"], rows);
    Ok(())
}

pub fn keys_add(c: &Client, name: &str, llm_type: &str, overrides: &[String], as_json: bool) -> Result<(), CliError> {
    let mode_overrides = if overrides.is_empty() { None } else { Some(pairs(overrides, "--mode-override")?) };
    let value = read_value()?;
    let body = json_bytes(&KeyBody {
        name: Some(name),
        llm_type: Some(llm_type),
        value: &value,
        mode_overrides,
        stage: None,
        previous_valid_for: None,
    });
    drop(value);
    let raw = c.send("POST", "/keys", Some(&body))?;
    let created: Value = serde_json::from_slice(raw.expose()).map_err(|e| format!("unreadable response: {e}"))?;
    if as_json {
        print_json(&created);
    } else {
        key_rows(std::slice::from_ref(&created));
    }
    Ok(())
}

pub fn keys_list(c: &Client, as_json: bool) -> Result<(), CliError> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cur) => format!("/keys?limit=100&cursor={cur}"),
            None => "/keys?limit=100".to_owned(),
        };
        let page = c.call("GET", &path, None)?;
        all.extend(page["keys"].as_array().cloned().unwrap_or_default());
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    if as_json {
        print_json(&json!({"keys": all}));
    } else {
        key_rows(&all);
    }
    Ok(())
}

/// What `ibyok tokens create` asks for.
pub struct NewToken<'a> {
    pub name: &'a str,
    pub scopes: &'a [String],
    pub expires_in: Option<u64>,
    pub key_ids: &'a [String],
    pub cidrs: &'a [String],
    pub rate_limit: Option<u32>,
}

pub fn tokens_create(c: &Client, t: NewToken<'_>, as_json: bool) -> Result<(), CliError> {
    let NewToken { name, scopes, expires_in, key_ids, cidrs, rate_limit } = t;
    let mut body = json!({"name": name, "scopes": scopes});
    if let Some(r) = rate_limit {
        body["rateLimit"] = json!(r);
    }
    if let Some(e) = expires_in {
        body["expiresIn"] = json!(e);
    }
    if !key_ids.is_empty() {
        body["keyIds"] = json!(key_ids);
    }
    if !cidrs.is_empty() {
        body["allowedCidrs"] = json!(cidrs);
    }
    let raw = c.send("POST", "/tokens", Some(&json_bytes(&body)))?;
    let created: CreatedToken =
        serde_json::from_slice(raw.expose()).map_err(|e| format!("unreadable response: {e}"))?;
    if as_json {
        print_secret_json(&created);
    } else {
        eprintln!(
            "Token {} created, expires {}. It is shown once:",
            text(&created.token_id),
            relative(&created.expires_at)
        );
        println!("{}", created.token.expose_token());
    }
    Ok(())
}

/// `POST /tokens`'s answer, its new token held as a secret. The fields are
/// in the order `--json` prints them (alphabetical, as for every other
/// command).
#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct CreatedToken {
    allowed_cidrs: Value,
    created_at: Value,
    expires_at: Value,
    issued_by: Value,
    key_ids: Value,
    name: Value,
    /// Absent from a server before rate limits.
    #[serde(default)]
    rate_limit: Value,
    scopes: Value,
    #[serde(serialize_with = "expose_token")]
    token: TokenSecret,
    token_id: Value,
}

/// What `ibyok admin bootstrap --json` prints.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bootstrapped<'a> {
    pub expires_at: &'a ibyok::clock::Timestamp,
    pub tenant_id: &'a ibyok::ids::TenantId,
    #[serde(serialize_with = "expose_token")]
    pub token: &'a TokenSecret,
    pub token_id: &'a ibyok::ids::TokenId,
}

pub fn print_bootstrapped(b: &Bootstrapped<'_>) {
    print_secret_json(b);
}

pub fn tokens_list(c: &Client, query: &str, as_json: bool) -> Result<(), CliError> {
    let page = c.call("GET", &format!("/tokens?{query}"), None)?;
    if as_json {
        print_json(&page);
        return Ok(());
    }
    let rows = page["tokens"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|t| {
            vec![
                text(&t["tokenId"]),
                text(&t["name"]),
                text(&t["scopes"]),
                relative(&t["expiresAt"]),
                relative(&t["lastUsedAt"]),
                if t["revokedAt"].is_null() { "live".into() } else { format!("revoked {}", relative(&t["revokedAt"])) },
            ]
        })
        .collect();
    table(&["TOKEN ID", "NAME", "SCOPES", "EXPIRES", "LAST USED", "STATE"], rows);
    Ok(())
}

pub fn settings_modes(c: &Client, set: &[String], as_json: bool) -> Result<(), CliError> {
    let modes = if set.is_empty() {
        c.call("GET", "/settings/modes", None)?
    } else {
        c.call("PUT", "/settings/modes", Some(Value::Object(pairs(set, "--set")?)))?
    };
    if as_json {
        print_json(&modes);
    } else {
        let rows =
            ["development", "staging", "production"].iter().map(|e| vec![(*e).to_owned(), text(&modes[*e])]).collect();
        table(&["ENVIRONMENT", "DEFAULT MODE"], rows);
    }
    Ok(())
}

pub fn usage(c: &Client, as_json: bool) -> Result<(), CliError> {
    let u = c.call("GET", "/usage", None)?;
    if as_json {
        print_json(&u);
        return Ok(());
    }
    let keys = u["keys"].as_array().cloned().unwrap_or_default();
    table(
        &["KEY ID", "NAME", "RETRIEVALS", "LAST USED"],
        keys.iter()
            .map(|k| vec![text(&k["keyId"]), text(&k["name"]), text(&k["retrievals"]), relative(&k["lastUsedAt"])])
            .collect(),
    );
    println!();
    let tokens = u["tokens"].as_array().cloned().unwrap_or_default();
    table(
        &["TOKEN ID", "NAME", "USES", "LAST USED"],
        tokens
            .iter()
            .map(|t| vec![text(&t["tokenId"]), text(&t["name"]), text(&t["uses"]), relative(&t["lastUsedAt"])])
            .collect(),
    );
    let q = &u["quota"];
    if q.is_object() {
        println!();
        println!(
            "Quota: {} of {} value reads this month; resets {}",
            text(&q["used"]),
            text(&q["readsPerMonth"]),
            relative(&q["resetsAt"])
        );
    }
    Ok(())
}

/// Fetches one key's current value (for `run`), straight into the secret
/// type.
pub fn value(c: &Client, key_id: &str, env: Option<&str>) -> Result<SecretValue, CliError> {
    value_of(c, key_id, env, None)
}

/// Fetches one version of a key's value (`current` when `None`).
pub fn value_of(c: &Client, key_id: &str, env: Option<&str>, version: Option<&str>) -> Result<SecretValue, CliError> {
    #[derive(Deserialize)]
    struct Read {
        value: SecretValue,
    }
    let query: Vec<String> =
        [("env", env), ("version", version)].iter().filter_map(|(k, v)| v.map(|v| format!("{k}={v}"))).collect();
    let path = match query.is_empty() {
        true => format!("/external/keys/{key_id}/value"),
        false => format!("/external/keys/{key_id}/value?{}", query.join("&")),
    };
    let raw = c.send("GET", &path, None)?;
    let read: Read = serde_json::from_slice(raw.expose()).map_err(|_| "the response has no value")?;
    Ok(read.value)
}

/// `ibyok run`: fetch every key, then replace this process with the command
/// (no shell, nothing on disk; its exit code is the command's).
pub fn run(c: &Client, env_vars: &[String], env: Option<&str>, command: &[String]) -> Result<(), CliError> {
    let (program, args) = command.split_first().ok_or("no command given after --")?;
    let mut cmd = std::process::Command::new(program);
    cmd.args(args);
    for pair in env_vars {
        let (name, key_id) =
            pair.split_once('=').ok_or_else(|| format!("--env-var must look like NAME=key_…, not `{pair}`"))?;
        cmd.env(name, value(c, key_id, env)?.expose_value());
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let err = cmd.exec();
        Err(format!("cannot run {program}: {err}"))
    }
    #[cfg(not(unix))]
    {
        let status = cmd.status().map_err(|e| format!("cannot run {program}: {e}"))?;
        std::process::exit(status.code().unwrap_or(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ibyok::clock::Timestamp;

    #[test]
    fn expiry_warning_within_seven_days_only() {
        let now = Timestamp::parse_rfc3339("2026-12-01T00:00:00Z").unwrap();
        assert_eq!(expiry_warning("2026-12-08T00:00:00Z", now), None, "exactly 7 days: no warning");
        assert_eq!(expiry_warning("2027-01-01T00:00:00Z", now), None);
        let w = expiry_warning("2026-12-07T23:59:59Z", now).unwrap();
        assert!(w.starts_with("warning:") && w.contains("2026-12-07T23:59:59Z") && w.contains("in 6 days"), "{w}");
        assert!(expiry_warning("2026-12-01T05:00:00Z", now).unwrap().contains("in 5 hours"));
        assert!(expiry_warning("2026-12-02T12:00:00Z", now).unwrap().contains("in 36 hours"));
        assert!(expiry_warning("2026-12-01T00:10:00Z", now).unwrap().contains("in 10 minutes"));
        assert!(expiry_warning("2026-11-30T00:00:00Z", now).unwrap().contains("expired"));
        assert_eq!(expiry_warning("not a time", now), None);
    }
}
