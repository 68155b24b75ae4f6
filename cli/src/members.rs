//! The tenant's members from the command line: `ibyok members list`,
//! `invite`, `set-role` and `rm`.

use crate::client::{print_json, CliError, Client};
use crate::output::{relative, table, text};
use serde_json::{json, Value};

pub fn list(c: &Client, as_json: bool) -> Result<(), CliError> {
    let page = c.call("GET", "/members?limit=100", None)?;
    if as_json {
        print_json(&page);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = page["members"]
        .as_array()
        .map(|l| l.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|m| {
            let handle = if m["login"].is_string() { &m["login"] } else { &m["email"] };
            vec![
                text(&m["memberId"]),
                text(&m["name"]),
                format!("{}:{}", text(&m["provider"]), text(handle)),
                text(&m["role"]),
                if m["subject"].is_null() { "invited".into() } else { relative(&m["lastSignInAt"]) },
            ]
        })
        .collect();
    table(&["ID", "NAME", "WHO", "ROLE", "SIGNED IN"], rows);
    Ok(())
}

/// `who` is `github:LOGIN` or `oidc:EMAIL`.
pub fn invite(c: &Client, who: &str, role: &str, name: Option<&str>, as_json: bool) -> Result<(), CliError> {
    let (body, field) = match who.split_once(':') {
        Some(("github", login)) => (json!({"provider": "github", "login": login}), "login"),
        Some(("oidc", email)) => (json!({"provider": "oidc", "email": email}), "email"),
        _ => return Err(format!("{who:?}: must be github:LOGIN or oidc:EMAIL")),
    };
    let mut body = body;
    body["role"] = Value::from(role);
    if let Some(n) = name {
        body["name"] = Value::from(n);
    }
    let m = c.call("POST", "/members", Some(body))?;
    if as_json {
        print_json(&m);
    } else {
        println!("{} invited as {} ({})", text(&m[field]), text(&m["role"]), text(&m["memberId"]));
    }
    Ok(())
}

pub fn set_role(c: &Client, member_id: &str, role: &str, as_json: bool) -> Result<(), CliError> {
    let m = c.call("PATCH", &format!("/members/{member_id}"), Some(json!({"role": role})))?;
    if as_json {
        print_json(&m);
    } else {
        println!("{} is now {}", text(&m["name"]), text(&m["role"]));
    }
    Ok(())
}
