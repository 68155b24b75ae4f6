//! Sign-in with an OpenID provider: the authorization code flow with PKCE
//! (S256) and a `nonce`; the ID token verified by the provider's JWKS (the
//! same key cache as the workload exchange), `iss`, `aud` (and `azp` when
//! there are several audiences), `exp`/`iat`, and `nonce`.

use super::{OidcProvider, Person};
use crate::clock::Timestamp;
use crate::fetch::{self, Policy};
use crate::identity::jwks::{Jwks, KeyLookup};
use crate::identity::{jwt, Denied};
use crate::member::Provider;
use serde_json::Value;

/// The provider's endpoints, from its discovery document.
pub struct Endpoints {
    pub authorization: String,
    pub token: String,
}

/// Why a code did not become a person.
#[derive(Debug)]
pub enum Failed {
    /// The provider could not be reached, or answered 5xx: 503.
    Unavailable(String),
    /// The provider refused the code, or its answer does not parse.
    Refused(String),
    /// The ID token failed a check.
    IdToken(Denied),
}

/// Discovery (`{issuer}/.well-known/openid-configuration`), its `issuer`
/// checked.
pub async fn discover(issuer: &str, policy: &Policy) -> Result<Endpoints, String> {
    let url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
    let doc = crate::keycache::get_json(&url, policy).await?;
    if doc.get("issuer").and_then(Value::as_str) != Some(issuer) {
        return Err(format!("{url}: names another issuer"));
    }
    let text = |k: &str| doc.get(k).and_then(Value::as_str).map(str::to_owned).ok_or_else(|| format!("{url}: no {k}"));
    Ok(Endpoints { authorization: text("authorization_endpoint")?, token: text("token_endpoint")? })
}

/// Where the browser goes to sign in.
pub fn authorize_url(
    endpoint: &str,
    provider: &OidcProvider,
    redirect_uri: &str,
    state: &str,
    challenge: &str,
    nonce: &str,
) -> String {
    let query = serde_urlencoded::to_string([
        ("response_type", "code"),
        ("client_id", provider.client_id.as_str()),
        ("redirect_uri", redirect_uri),
        ("scope", "openid email profile"),
        ("state", state),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
        ("nonce", nonce),
    ])
    .unwrap_or_default();
    let sep = if endpoint.contains('?') { '&' } else { '?' };
    format!("{endpoint}{sep}{query}")
}

/// The code exchanged at the token endpoint (client secret by HTTP Basic),
/// and the ID token verified.
#[allow(clippy::too_many_arguments)]
pub async fn person(
    provider: &OidcProvider,
    token_endpoint: &str,
    redirect_uri: &str,
    code: &str,
    verifier: &str,
    nonce: &str,
    jwks: &Jwks,
    policy: &Policy,
    now: Timestamp,
) -> Result<Person, Failed> {
    use base64::Engine;
    let form = serde_urlencoded::to_string([
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", verifier),
    ])
    .unwrap_or_default();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        url_form(&provider.client_id),
        url_form(provider.client_secret.expose())
    ));
    let auth = crate::secret::Redacted::from(format!("Basic {basic}"));
    let headers = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("accept", "application/json"),
        ("authorization", auth.expose().as_str()),
    ];
    let resp = fetch::post(token_endpoint, &headers, form.into(), policy)
        .await
        .map_err(|e| Failed::Unavailable(format!("the token endpoint: {e}")))?;
    if resp.status >= 500 {
        return Err(Failed::Unavailable(format!("the token endpoint answered {}", resp.status)));
    }
    if resp.status != 200 {
        return Err(Failed::Refused(format!("the token endpoint answered {}", resp.status)));
    }
    let body: Value = serde_json::from_slice(&resp.body).map_err(|_| Failed::Refused("not JSON".into()))?;
    let id_token = body.get("id_token").and_then(Value::as_str).ok_or_else(|| Failed::Refused("no id_token".into()))?;
    verify_id_token(provider, id_token, nonce, jwks, now).await
}

/// The form encoding of a client id or secret in HTTP Basic (RFC 6749,
/// 2.3.1).
fn url_form(s: &str) -> String {
    serde_urlencoded::to_string([("", s)]).unwrap_or_default().trim_start_matches('=').to_owned()
}

/// The ID token's checks, in order: shape, the issuer's key (never one the
/// token names elsewhere), signature, `iss`, `aud`/`azp`, times, `nonce`,
/// `sub`.
pub async fn verify_id_token(
    provider: &OidcProvider,
    id_token: &str,
    nonce: &str,
    jwks: &Jwks,
    now: Timestamp,
) -> Result<Person, Failed> {
    let parsed = jwt::parse(id_token).map_err(Failed::IdToken)?;
    let key = match jwks.key(&provider.issuer, &parsed.kid, now).await {
        KeyLookup::Found(k) => k,
        KeyLookup::Unknown => return Err(Failed::IdToken(Denied::UnknownKey)),
        KeyLookup::Unavailable(why) => return Err(Failed::Unavailable(format!("the provider's keys: {why}"))),
    };
    parsed.verify_signature(&key).map_err(Failed::IdToken)?;
    let claims = &parsed.claims;
    if claims.get("iss").and_then(Value::as_str) != Some(provider.issuer.as_str()) {
        return Err(Failed::IdToken(Denied::Issuer));
    }
    if !jwt::audience_holds(claims, &provider.client_id) {
        return Err(Failed::IdToken(Denied::Audience));
    }
    // OpenID Connect Core 3.1.3.7: with several audiences, `azp` names us.
    if claims.get("aud").and_then(Value::as_array).is_some_and(|a| a.len() > 1)
        && claims.get("azp").and_then(Value::as_str) != Some(provider.client_id.as_str())
    {
        return Err(Failed::IdToken(Denied::Audience));
    }
    jwt::check_times(claims, now).map_err(Failed::IdToken)?;
    let nonce_ok = claims.get("nonce").and_then(Value::as_str).is_some_and(|n| super::same(n, nonce));
    if !nonce_ok {
        return Err(Failed::IdToken(Denied::Nonce));
    }
    let subject = claims.get("sub").and_then(Value::as_str).filter(|s| !s.is_empty() && s.len() <= 255);
    let subject = subject.ok_or(Failed::IdToken(Denied::Subject))?;
    let text = |k: &str| claims.get(k).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
    // Only a verified email can match an invitation by email.
    let verified = claims.get("email_verified").and_then(Value::as_bool) == Some(true);
    let email = text("email").filter(|_| verified).map(str::to_owned);
    let name: String =
        text("name").or(text("preferred_username")).or(email.as_deref()).unwrap_or(subject).chars().take(100).collect();
    Ok(Person { provider: Provider::Oidc, subject: subject.to_owned(), handle: email, name })
}
