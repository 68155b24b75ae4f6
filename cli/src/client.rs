//! The client commands: HTTP to the dev server or API Gateway, configured
//! by `IBYOK_URL` and `IBYOK_TOKEN` (flags override).

use crate::output::{relative, table, text};
use serde_json::{json, Value};
use std::io::{IsTerminal, Read};

pub struct Client {
    base: String,
    token: String,
    agent: ureq::Agent,
}

/// A failure to show on stderr; the process exits non-zero.
pub type CliError = String;

impl Client {
    pub fn new(url: &str, token: Option<&str>) -> Result<Self, CliError> {
        let token = token.ok_or("no token: set IBYOK_TOKEN or pass --token")?.to_owned();
        let agent = ureq::AgentBuilder::new().timeout(std::time::Duration::from_secs(30)).build();
        Ok(Self { base: url.trim_end_matches('/').to_owned(), token, agent })
    }

    /// Sends a request; answers the JSON body of a 2xx, or the server's
    /// error message.
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, CliError> {
        let req = self
            .agent
            .request(method, &format!("{}{path}", self.base))
            .set("authorization", &format!("Bearer {}", self.token))
            .set("user-agent", concat!("ibyok-cli/", env!("CARGO_PKG_VERSION")));
        let result = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        match result {
            Ok(resp) if resp.status() == 204 => Ok(Value::Null),
            Ok(resp) => resp.into_json().map_err(|e| format!("unreadable response: {e}")),
            Err(ureq::Error::Status(status, resp)) => {
                let body: Value = resp.into_json().unwrap_or(Value::Null);
                let code = body["error"]["code"].as_str().unwrap_or("error");
                let msg = body["error"]["message"].as_str().unwrap_or("the server answered with an error");
                Err(format!("{msg} ({code}, HTTP {status})"))
            }
            Err(e) => Err(format!("cannot reach {}: {e}", self.base)),
        }
    }
}

/// A key value from standard input (piped) or a prompt without echo —
/// never from the command line.
pub fn read_value() -> Result<String, CliError> {
    let value = if std::io::stdin().is_terminal() {
        rpassword::prompt_password("Value (not echoed): ").map_err(|e| format!("cannot read the value: {e}"))?
    } else {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map_err(|e| format!("cannot read the value from stdin: {e}"))?;
        s.trim_end_matches(['\n', '\r']).to_owned()
    };
    if value.is_empty() {
        return Err("empty value".into());
    }
    Ok(value)
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
                text(&k["preview"]),
                relative(&k["lastUsedAt"]),
                relative(&k["updatedAt"]),
            ]
        })
        .collect();
    table(&["KEY ID", "NAME", "TYPE", "PREVIEW", "LAST USED", "UPDATED"], rows);
}

pub fn keys_add(c: &Client, name: &str, llm_type: &str, overrides: &[String], as_json: bool) -> Result<(), CliError> {
    let value = read_value()?;
    let mut body = json!({"name": name, "llmType": llm_type, "value": value});
    if !overrides.is_empty() {
        body["modeOverrides"] = Value::Object(pairs(overrides, "--mode-override")?);
    }
    let created = c.call("POST", "/keys", Some(body))?;
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

pub fn tokens_create(
    c: &Client,
    name: &str,
    scopes: &[String],
    expires_in: Option<u64>,
    key_ids: &[String],
    cidrs: &[String],
    as_json: bool,
) -> Result<(), CliError> {
    let mut body = json!({"name": name, "scopes": scopes});
    if let Some(e) = expires_in {
        body["expiresIn"] = json!(e);
    }
    if !key_ids.is_empty() {
        body["keyIds"] = json!(key_ids);
    }
    if !cidrs.is_empty() {
        body["allowedCidrs"] = json!(cidrs);
    }
    let created = c.call("POST", "/tokens", Some(body))?;
    if as_json {
        print_json(&created);
    } else {
        eprintln!(
            "Token {} created, expires {}. It is shown once:",
            text(&created["tokenId"]),
            relative(&created["expiresAt"])
        );
        println!("{}", text(&created["token"]));
    }
    Ok(())
}

pub fn tokens_list(c: &Client, as_json: bool) -> Result<(), CliError> {
    let page = c.call("GET", "/tokens?limit=100", None)?;
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
    Ok(())
}

pub fn audit(c: &Client, limit: u32, as_json: bool) -> Result<(), CliError> {
    let page = c.call("GET", &format!("/audit?limit={limit}"), None)?;
    if as_json {
        print_json(&page);
        return Ok(());
    }
    let rows = page["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| {
            vec![
                relative(&e["at"]),
                text(&e["action"]),
                text(&e["outcome"]),
                text(&e["tokenId"]),
                text(&e["keyId"]),
                text(&e["environment"]),
                text(&e["sourceIp"]),
            ]
        })
        .collect();
    table(&["WHEN", "ACTION", "OUTCOME", "TOKEN", "KEY", "ENV", "SOURCE"], rows);
    Ok(())
}

/// Fetches one key's value (for `get` and `run`).
pub fn value(c: &Client, key_id: &str, env: Option<&str>) -> Result<String, CliError> {
    let path = match env {
        Some(e) => format!("/external/keys/{key_id}/value?env={e}"),
        None => format!("/external/keys/{key_id}/value"),
    };
    let v = c.call("GET", &path, None)?;
    v["value"].as_str().map(str::to_owned).ok_or_else(|| "the response has no value".into())
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
        cmd.env(name, value(c, key_id, env)?);
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
