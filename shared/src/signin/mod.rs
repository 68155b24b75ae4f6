//! People's sign-in (API.md, *Sign-in*): a browser (or the CLI, through a
//! loopback redirect) is sent to the deployment's provider, comes back with
//! a code, and leaves with a one-time code of ours that `POST
//! /auth/session` turns into a session token, an ordinary `ibyok_` token
//! of the member's role.
//!
//! - [`SignInConfig`]: the enabled providers (a GitHub OAuth app, an
//!   OpenID provider), sign-up, the session's length, the public origin.
//! - [`oidc`] and [`github`]: each provider's authorize URL and the
//!   exchange of its code for a verified [`Person`].
//! - [`Attempt`] and [`Handoff`]: what a started sign-in and a finished one
//!   keep until they are taken, once ([`crate::store::SignInStore`], under a
//!   hash of `state` and of the code).
//!
//! The routes are in `api::signin`; who a person is in a tenant is
//! [`crate::member`]'s.

pub mod github;
pub mod oidc;

use crate::ids::{MemberId, TenantId, TokenId};
pub use crate::member::Person;
use crate::member::{Provider, Role, DEFAULT_SESSION_SECONDS};
use crate::secret::Redacted;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The cookie that binds a sign-in to its browser.
pub const COOKIE: &str = "ibyok_signin";
/// How long a started sign-in waits for its provider.
pub const ATTEMPT_SECONDS: i64 = 600;
/// How long a one-time code lives.
pub const CODE_SECONDS: i64 = 60;

/// An OpenID provider of the deployment.
#[derive(Clone, Debug)]
pub struct OidcProvider {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Redacted,
    /// The button's name ("Acme SSO"); default "OpenID Connect".
    pub name: String,
}

/// The deployment's GitHub OAuth app.
#[derive(Clone, Debug)]
pub struct GithubApp {
    pub client_id: String,
    pub client_secret: Redacted,
    /// `https://github.com` (authorize, access token).
    pub web_url: String,
    /// `https://api.github.com` (the user).
    pub api_url: String,
}

#[derive(Clone, Debug, Default)]
pub struct SignInConfig {
    pub oidc: Option<OidcProvider>,
    pub github: Option<GithubApp>,
    /// `IBYOK_SIGNUP=open`: a person who is no member gets a tenant of
    /// their own, as its owner. Closed by default.
    pub signup_open: bool,
    /// Seconds a session lasts (default 12 hours, at most 24).
    pub session_seconds: i64,
    /// The origin the console and the sign-in routes are served from
    /// (`https://vault.acme.example`): the providers' redirect URIs are
    /// `{public_url}/auth/{provider}/callback`. `None`: sign-in is off.
    pub public_url: Option<String>,
}

impl SignInConfig {
    pub fn off() -> Self {
        Self { session_seconds: DEFAULT_SESSION_SECONDS, ..Self::default() }
    }

    /// From the environment (or `ibyok dev`'s flags, which set the same
    /// names):
    /// - `IBYOK_PUBLIC_URL`: the console's origin (required for sign-in);
    /// - `IBYOK_OIDC_ISSUER`, `IBYOK_OIDC_CLIENT_ID`, `IBYOK_OIDC_CLIENT_SECRET`,
    ///   `IBYOK_OIDC_NAME`;
    /// - `IBYOK_GITHUB_CLIENT_ID`, `IBYOK_GITHUB_CLIENT_SECRET`,
    ///   `IBYOK_GITHUB_URL`, `IBYOK_GITHUB_API_URL`;
    /// - `IBYOK_SIGNUP` (`open` or `closed`), `IBYOK_SESSION_HOURS` (1–24).
    ///
    /// A deployment does not put a client secret in its environment: the
    /// function reads it from SSM Parameter Store at start
    /// ([`crate::aws`]) and sets it here.
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, crate::config::ConfigError> {
        use crate::config::ConfigError;
        let text = |k: &str| get(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let url = |k: &str| -> Result<Option<String>, ConfigError> {
            match text(k) {
                None => Ok(None),
                Some(u) => {
                    crate::fetch::check_url(&u, &crate::fetch::Policy::DEPLOYED.with_loopback_http(true))
                        .map_err(|e| ConfigError(format!("{k}: {e}")))?;
                    Ok(Some(u.trim_end_matches('/').to_owned()))
                }
            }
        };
        let mut cfg = Self::off();
        cfg.public_url = url("IBYOK_PUBLIC_URL")?;
        if let Some(issuer) = text("IBYOK_OIDC_ISSUER") {
            crate::fetch::check_url(&issuer, &crate::fetch::Policy::DEPLOYED.with_loopback_http(true))
                .map_err(|e| ConfigError(format!("IBYOK_OIDC_ISSUER: {e}")))?;
            let client_id =
                text("IBYOK_OIDC_CLIENT_ID").ok_or_else(|| ConfigError("IBYOK_OIDC_CLIENT_ID is not set".into()))?;
            cfg.oidc = Some(OidcProvider {
                issuer,
                client_id,
                client_secret: Redacted::from(get("IBYOK_OIDC_CLIENT_SECRET").unwrap_or_default()),
                name: text("IBYOK_OIDC_NAME").unwrap_or_else(|| "OpenID Connect".to_owned()),
            });
        }
        if let Some(client_id) = text("IBYOK_GITHUB_CLIENT_ID") {
            cfg.github = Some(GithubApp {
                client_id,
                client_secret: Redacted::from(get("IBYOK_GITHUB_CLIENT_SECRET").unwrap_or_default()),
                web_url: url("IBYOK_GITHUB_URL")?.unwrap_or_else(|| "https://github.com".to_owned()),
                api_url: url("IBYOK_GITHUB_API_URL")?.unwrap_or_else(|| "https://api.github.com".to_owned()),
            });
        }
        cfg.signup_open = match text("IBYOK_SIGNUP").as_deref() {
            None | Some("closed") => false,
            Some("open") => true,
            Some(v) => return Err(ConfigError(format!("IBYOK_SIGNUP must be `open` or `closed`, not `{v}`"))),
        };
        if let Some(h) = text("IBYOK_SESSION_HOURS") {
            let hours: i64 = h
                .parse()
                .ok()
                .filter(|h| (1..=crate::member::MAX_SESSION_SECONDS / 3600).contains(h))
                .ok_or_else(|| ConfigError("IBYOK_SESSION_HOURS must be a whole number from 1 to 24".into()))?;
            cfg.session_seconds = hours * 3600;
        }
        Ok(cfg)
    }

    /// The providers offered, in the order the sign-in page shows them.
    pub fn providers(&self) -> Vec<(Provider, String)> {
        let mut out = Vec::new();
        if self.public_url.is_none() {
            return out;
        }
        if self.github.is_some() {
            out.push((Provider::Github, "GitHub".to_owned()));
        }
        if let Some(o) = &self.oidc {
            out.push((Provider::Oidc, o.name.clone()));
        }
        out
    }

    pub fn enabled(&self, provider: Provider) -> bool {
        self.providers().iter().any(|(p, _)| *p == provider)
    }

    /// Where the provider sends the browser back.
    pub fn redirect_uri(&self, provider: Provider) -> Option<String> {
        let base = self.public_url.as_deref()?.trim_end_matches('/');
        Some(format!("{base}/auth/{}/callback", provider.as_str()))
    }

    /// Whether the cookie may go without `Secure` (a loopback origin:
    /// `ibyok dev`).
    pub fn loopback(&self) -> bool {
        self.public_url.as_deref().is_some_and(|u| {
            u.strip_prefix("http://")
                .map(|rest| rest.split(['/', ':']).next().is_some_and(crate::fetch::is_loopback))
                .unwrap_or(false)
        })
    }
}

/// A fresh secret of 32 random bytes, base64url.
pub fn random_secret() -> Redacted {
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
    let out = URL_SAFE_NO_PAD.encode(bytes);
    zeroize::Zeroize::zeroize(&mut bytes);
    Redacted::from(out)
}

/// The key a secret's item is stored under: SHA-256, hex, with its kind,
/// so that a reader of the table cannot redeem anything.
pub fn stored_key(kind: &str, secret: &str) -> String {
    format!("{kind}#{}", hex::encode(Sha256::digest(secret.as_bytes())))
}

/// PKCE's S256 challenge of `verifier` (RFC 7636).
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A hash of the browser's cookie, as the attempt and the code keep it.
pub fn browser_mark(cookie: &str) -> String {
    hex::encode(Sha256::digest(format!("browser:{cookie}").as_bytes()))
}

/// Equality in constant time (marks and challenges).
pub fn same(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'h>(header: Option<&'h str>, name: &str) -> Option<&'h str> {
    header?.split(';').filter_map(|c| c.trim().split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| v)
}

/// `Set-Cookie` for the sign-in's cookie (`None`: clear it).
pub fn set_cookie(value: Option<&str>, secure: bool) -> String {
    let (value, age) = match value {
        Some(v) => (v, ATTEMPT_SECONDS),
        None => ("", 0),
    };
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={value}; Path=/auth; HttpOnly; SameSite=Lax; Max-Age={age}{secure}")
}

/// A console path a sign-in may return to: `/console/` and below, no
/// scheme, host, `..`, backslash, percent-escape (`%2e%2e` is a `..` to a
/// browser) or control character (never an open redirect).
pub fn valid_return_to(path: &str) -> bool {
    path.starts_with("/console/")
        && path.len() <= 512
        && !path.contains("..")
        && !path.contains('\\')
        && !path.contains("//")
        && !path.contains('#')
        && !path.contains('%')
        && path.chars().all(|c| c.is_ascii_graphic())
}

/// A CLI's loopback redirect (RFC 8252): `http://127.0.0.1:PORT/…` or
/// `http://[::1]:PORT/…`, a port given, no fragment.
pub fn valid_cli_redirect(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://127.0.0.1:").or_else(|| url.strip_prefix("http://[::1]:")) else {
        return false;
    };
    let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let after = &rest[port.len()..];
    !port.is_empty()
        && port.parse::<u16>().is_ok_and(|p| p > 0)
        && (after.is_empty() || after.starts_with('/') || after.starts_with('?'))
        && !url.contains('#')
        && url.len() <= 512
        && url.chars().all(|c| c.is_ascii_graphic())
}

/// Whom a code is redeemable by.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Binding {
    /// The browser holding the cookie whose [`browser_mark`] this is.
    Browser(String),
    /// The CLI holding the PKCE verifier of this S256 challenge.
    Cli(String),
}

/// A started sign-in, kept under [`stored_key`]`("signin", state)`.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    pub provider: String,
    /// The browser that started it.
    pub browser: String,
    /// Our PKCE verifier with the provider.
    pub verifier: String,
    pub nonce: String,
    pub return_to: String,
    /// A CLI's loopback redirect and its PKCE challenge.
    pub cli: Option<(String, String)>,
}

/// A finished sign-in, kept under [`stored_key`]`("code", code)` for
/// [`CODE_SECONDS`] until `POST /auth/session` takes it.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Handoff {
    pub provider: String,
    pub tenant_id: String,
    pub member_id: String,
    pub anchor: String,
    pub name: String,
    pub role: String,
    pub binding: Binding,
}

impl Handoff {
    pub fn tenant(&self) -> Option<TenantId> {
        TenantId::parse(&self.tenant_id)
    }
    pub fn member(&self) -> Option<MemberId> {
        MemberId::parse(&self.member_id)
    }
    pub fn anchor(&self) -> TokenId {
        TokenId::from_stored(self.anchor.clone())
    }
    pub fn role(&self) -> Option<Role> {
        Role::parse(&self.role)
    }
}

/// Serialised into a wiping buffer (an attempt holds a PKCE verifier).
pub fn seal<T: Serialize>(value: &T) -> Redacted {
    Redacted::from(serde_json::to_string(value).unwrap_or_default())
}

pub fn open<T: for<'de> Deserialize<'de>>(data: &Redacted) -> Option<T> {
    serde_json::from_str(data.expose()).ok()
}

/// Why a sign-in was refused, as the `auth.signin` event and the log say
/// (never the response, which says only what the person can act on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `state` unknown, expired, used, or not this browser's.
    State,
    /// The provider refused the code, or answered what does not parse.
    Provider,
    /// The ID token failed a check (its [`crate::identity::Denied`] cause
    /// is logged beside).
    IdToken,
    /// The person is no member, and sign-up is closed.
    NotMember,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::State => "state",
            Refusal::Provider => "provider",
            Refusal::IdToken => "id_token",
            Refusal::NotMember => "not_member",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_paths_stay_in_the_console() {
        for ok in ["/console/", "/console/#/keys".split('#').next().unwrap(), "/console/index.html?x=1"] {
            assert!(valid_return_to(ok), "{ok}");
        }
        for bad in [
            "https://evil.example/",
            "//evil.example/console/",
            "/console//evil.example",
            "/console/../x",
            "/console/\\evil",
            "/keys",
            "/console/a b",
            "/console/#x",
            "/console/%2e%2e/auth/github/start",
            "",
        ] {
            assert!(!valid_return_to(bad), "{bad}");
        }
    }

    #[test]
    fn cli_redirects_are_loopback_only() {
        for ok in ["http://127.0.0.1:8123/callback", "http://[::1]:9/", "http://127.0.0.1:5000?state=x"] {
            assert!(valid_cli_redirect(ok), "{ok}");
        }
        for bad in [
            "http://127.0.0.1/cb",
            "http://127.0.0.1:0/",
            "http://127.0.0.1:99999/",
            "http://127.0.0.1.evil.example:80/",
            "https://127.0.0.1:80/",
            "http://localhost:80/",
            "http://127.0.0.1:80@evil.example/",
            "http://127.0.0.1:80/#x",
        ] {
            assert!(!valid_cli_redirect(bad), "{bad}");
        }
    }

    #[test]
    fn cookies_and_challenges() {
        assert_eq!(cookie(Some("a=1; ibyok_signin=xyz; b=2"), COOKIE), Some("xyz"));
        assert_eq!(cookie(Some("ibyok_signinx=1"), COOKIE), None);
        assert_eq!(cookie(None, COOKIE), None);
        // RFC 7636, appendix B.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(set_cookie(Some("v"), true).ends_with("; Secure"));
        assert!(set_cookie(None, false).contains("Max-Age=0"));
        assert_ne!(random_secret().expose(), random_secret().expose());
        assert!(stored_key("code", "x").starts_with("code#"));
    }
}
