//! Sign-in with GitHub: an OAuth app's web flow (with PKCE, which GitHub
//! supports), the code exchanged for an access token, and the user read
//! from the API. People are matched by their numeric id; the login names
//! them only until their first sign-in binds the invitation to that id.

use super::{GithubApp, Person};
use crate::fetch::{self, Policy};
use crate::member::Provider;
use serde_json::Value;

pub use super::oidc::Failed;

pub fn authorize_url(app: &GithubApp, redirect_uri: &str, state: &str, challenge: &str) -> String {
    let query = serde_urlencoded::to_string([
        ("client_id", app.client_id.as_str()),
        ("redirect_uri", redirect_uri),
        ("scope", "read:user"),
        ("state", state),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
        ("allow_signup", "false"),
    ])
    .unwrap_or_default();
    format!("{}/login/oauth/authorize?{query}", app.web_url.trim_end_matches('/'))
}

pub async fn person(
    app: &GithubApp,
    redirect_uri: &str,
    code: &str,
    verifier: &str,
    policy: &Policy,
) -> Result<Person, Failed> {
    let form = crate::secret::Redacted::from(
        serde_urlencoded::to_string([
            ("client_id", app.client_id.as_str()),
            ("client_secret", app.client_secret.expose().as_str()),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ])
        .unwrap_or_default(),
    );
    let url = format!("{}/login/oauth/access_token", app.web_url.trim_end_matches('/'));
    let headers = [("content-type", "application/x-www-form-urlencoded"), ("accept", "application/json")];
    let resp = fetch::post(&url, &headers, form.expose().clone().into(), policy)
        .await
        .map_err(|e| Failed::Unavailable(format!("GitHub's token endpoint: {e}")))?;
    if resp.status >= 500 {
        return Err(Failed::Unavailable(format!("GitHub's token endpoint answered {}", resp.status)));
    }
    let body: Value = serde_json::from_slice(&resp.body).map_err(|_| Failed::Refused("not JSON".into()))?;
    // GitHub answers a refused code with 200 and an `error`.
    let Some(access) = body.get("access_token").and_then(Value::as_str) else {
        let why = body.get("error").and_then(Value::as_str).unwrap_or("no access_token");
        return Err(Failed::Refused(format!("GitHub refused the code: {why}")));
    };
    let bearer = crate::secret::Redacted::from(format!("Bearer {access}"));
    let headers = [
        ("authorization", bearer.expose().as_str()),
        ("accept", "application/vnd.github+json"),
        ("user-agent", "ibyok"),
    ];
    let url = format!("{}/user", app.api_url.trim_end_matches('/'));
    let resp = fetch::get_with(&url, &headers, policy)
        .await
        .map_err(|e| Failed::Unavailable(format!("GitHub's user API: {e}")))?;
    if resp.status >= 500 {
        return Err(Failed::Unavailable(format!("GitHub's user API answered {}", resp.status)));
    }
    if resp.status != 200 {
        return Err(Failed::Refused(format!("GitHub's user API answered {}", resp.status)));
    }
    let user: Value = serde_json::from_slice(&resp.body).map_err(|_| Failed::Refused("user: not JSON".into()))?;
    let id = user.get("id").and_then(Value::as_u64).ok_or_else(|| Failed::Refused("user: no numeric id".into()))?;
    let login = user.get("login").and_then(Value::as_str).map(str::to_owned);
    let name = user.get("name").and_then(Value::as_str).map(str::trim).filter(|n| !n.is_empty());
    let name = name.or(login.as_deref()).unwrap_or("GitHub user").chars().take(100).collect();
    Ok(Person { provider: Provider::Github, subject: id.to_string(), handle: login, name })
}
