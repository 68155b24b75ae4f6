//! Configuration from environment variables, read once at start.

use crate::mode::{Environment, Guardrails, Mode};
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tables {
    pub tokens: String,
    pub keys: String,
    pub tenants: String,
    pub audit: String,
    pub children: String,
    pub usage: String,
    pub limits: String,
    pub replicas: String,
    pub identities: String,
    pub digests: String,
    pub members: String,
}

impl Tables {
    /// Table names with a common prefix (tests and the dev server).
    pub fn with_prefix(prefix: &str) -> Self {
        Self {
            tokens: format!("{prefix}tokens"),
            keys: format!("{prefix}keys"),
            tenants: format!("{prefix}tenants"),
            audit: format!("{prefix}audit"),
            children: format!("{prefix}children"),
            usage: format!("{prefix}usage"),
            limits: format!("{prefix}limits"),
            replicas: format!("{prefix}replicas"),
            identities: format!("{prefix}identities"),
            digests: format!("{prefix}digests"),
            members: format!("{prefix}members"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    /// `IBYOK_ENV`: the environment reads resolve for when they name none.
    pub environment: Environment,
    pub guardrails: Guardrails,
    /// `IBYOK_AUDIT_RETENTION_DAYS` (default 90).
    pub audit_retention_days: i64,
    /// `IBYOK_REVOKED_RETENTION_SECONDS` (default 7 days): how long a revoked
    /// token stays listed before cleanup deletes it.
    pub revoked_retention_seconds: i64,
    /// `IBYOK_SERVER_ID`: the value of the `Ibyok-Server-Id` header that an
    /// AWS exchange's signature must cover (default `ibyok`).
    pub server_id: String,
    /// `IBYOK_STS_ENDPOINT`: where the AWS exchange sends its rebuilt
    /// request (default the regional endpoint of `AWS_REGION`).
    pub sts_endpoint: String,
    /// Plain HTTP to loopback addresses for OpenID issuers, STS and the
    /// secret scanning keys: set by `ibyok dev` and the tests, never by a
    /// deployment's environment.
    pub allow_loopback_http: bool,
    /// `IBYOK_GITHUB_KEYS_URL`: GitHub's secret scanning keys document
    /// (default [`crate::scanning::GITHUB_KEYS_URL`]).
    pub github_keys_url: String,
    /// People's sign-in: off unless the deployment names its public URL
    /// and a provider (see [`Config::from_lookup`]).
    pub sign_in: crate::signin::SignInConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            environment: Environment::Production,
            guardrails: Guardrails::none(),
            audit_retention_days: 90,
            revoked_retention_seconds: 7 * 24 * 3600,
            server_id: "ibyok".to_owned(),
            sts_endpoint: "https://sts.us-east-1.amazonaws.com/".to_owned(),
            allow_loopback_http: false,
            github_keys_url: crate::scanning::GITHUB_KEYS_URL.to_owned(),
            sign_in: crate::signin::SignInConfig::off(),
        }
    }
}

impl Config {
    /// What the service's own outbound requests may do (OpenID issuers and
    /// sign-in providers, STS, GitHub's keys): HTTPS, and loopback HTTP
    /// where this configuration allows it.
    pub fn outbound(&self) -> crate::fetch::Policy {
        crate::fetch::Policy::DEPLOYED.with_loopback_http(self.allow_loopback_http)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

fn parse_mode_var(name: &str, value: Option<String>) -> Result<Option<Mode>, ConfigError> {
    match value.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => {
            Mode::parse(v).map(Some).ok_or_else(|| ConfigError(format!("{name} must be `mock` or `live`, not `{v}`")))
        }
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the configuration through `get` (the process environment in
    /// production, a map in tests). Refuses a conflicting guardrail set.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut cfg = Config::default();
        if let Some(env) = get("IBYOK_ENV").filter(|v| !v.trim().is_empty()) {
            cfg.environment = Environment::parse(env.trim()).ok_or_else(|| {
                ConfigError(format!("IBYOK_ENV must be development, staging or production, not `{env}`"))
            })?;
        }
        let mut forced = BTreeMap::new();
        for (var, env) in [
            ("DEV_MODE_FORCED", Environment::Development),
            ("STAGING_MODE_FORCED", Environment::Staging),
            ("PROD_MODE_FORCED", Environment::Production),
        ] {
            if let Some(m) = parse_mode_var(var, get(var))? {
                forced.insert(env, m);
            }
        }
        let prod_mock_allowed = match get("PROD_MOCK_ALLOWED").as_deref().map(str::trim) {
            None | Some("") | Some("true") => true,
            Some("false") => false,
            Some(v) => return Err(ConfigError(format!("PROD_MOCK_ALLOWED must be `true` or `false`, not `{v}`"))),
        };
        cfg.guardrails = Guardrails { forced, prod_mock_allowed };
        if let Some(conflict) = cfg.guardrails.conflict() {
            return Err(ConfigError(conflict.to_owned()));
        }
        if let Some(days) = get("IBYOK_AUDIT_RETENTION_DAYS") {
            cfg.audit_retention_days = days
                .trim()
                .parse()
                .ok()
                .filter(|d| *d > 0)
                .ok_or_else(|| ConfigError("IBYOK_AUDIT_RETENTION_DAYS must be a positive integer".into()))?;
        }
        if let Some(secs) = get("IBYOK_REVOKED_RETENTION_SECONDS") {
            cfg.revoked_retention_seconds = secs
                .trim()
                .parse()
                .ok()
                .filter(|d| *d >= 0)
                .ok_or_else(|| ConfigError("IBYOK_REVOKED_RETENTION_SECONDS must be a whole number".into()))?;
        }
        if let Some(id) = get("IBYOK_SERVER_ID").map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
            if id.len() > 128 || !id.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(ConfigError("IBYOK_SERVER_ID must be 1 to 128 visible ASCII characters".into()));
            }
            cfg.server_id = id;
        }
        match get("IBYOK_STS_ENDPOINT").map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
            Some(url) => {
                crate::fetch::check_url(&url, &crate::fetch::Policy::DEPLOYED.with_loopback_http(true))
                    .map_err(|e| ConfigError(format!("IBYOK_STS_ENDPOINT: {e}")))?;
                cfg.sts_endpoint = url;
            }
            None => {
                if let Some(region) = get("AWS_REGION")
                    .filter(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
                {
                    cfg.sts_endpoint = format!("https://sts.{region}.amazonaws.com/");
                }
            }
        }
        if let Some(url) = get("IBYOK_GITHUB_KEYS_URL").map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
            crate::fetch::check_url(&url, &crate::fetch::Policy::DEPLOYED.with_loopback_http(true))
                .map_err(|e| ConfigError(format!("IBYOK_GITHUB_KEYS_URL: {e}")))?;
            cfg.github_keys_url = url;
        }
        cfg.sign_in = crate::signin::SignInConfig::from_lookup(&get)?;
        Ok(cfg)
    }
}

/// `IBYOK_KMS_KEY_ID`, for a function whose routes call KMS: required (a
/// missing key fails the start, naming the variable, rather than the first
/// request with a 500). The functions that make no KMS call never read it.
pub fn kms_key_id(get: impl Fn(&str) -> Option<String>) -> Result<String, ConfigError> {
    get("IBYOK_KMS_KEY_ID").map(|k| k.trim().to_owned()).filter(|k| !k.is_empty()).ok_or_else(|| {
        ConfigError(
            "IBYOK_KMS_KEY_ID is not set, and this function serves a route that seals or opens values with it".into(),
        )
    })
}

impl Tables {
    /// `IBYOK_TOKENS_TABLE`, `IBYOK_KEYS_TABLE`, `IBYOK_TENANTS_TABLE`,
    /// `IBYOK_AUDIT_TABLE`, `IBYOK_CHILDREN_TABLE`, `IBYOK_USAGE_TABLE`, `IBYOK_LIMITS_TABLE`,
    /// `IBYOK_REPLICAS_TABLE`, `IBYOK_IDENTITIES_TABLE`, `IBYOK_DIGESTS_TABLE`,
    /// `IBYOK_MEMBERS_TABLE`; each defaults to
    /// `ibyok-<name>`.
    pub fn from_env() -> Self {
        let get = |var: &str, default: &str| std::env::var(var).unwrap_or_else(|_| default.to_owned());
        Self {
            tokens: get("IBYOK_TOKENS_TABLE", "ibyok-tokens"),
            keys: get("IBYOK_KEYS_TABLE", "ibyok-keys"),
            tenants: get("IBYOK_TENANTS_TABLE", "ibyok-tenants"),
            audit: get("IBYOK_AUDIT_TABLE", "ibyok-audit"),
            children: get("IBYOK_CHILDREN_TABLE", "ibyok-children"),
            usage: get("IBYOK_USAGE_TABLE", "ibyok-usage"),
            limits: get("IBYOK_LIMITS_TABLE", "ibyok-limits"),
            replicas: get("IBYOK_REPLICAS_TABLE", "ibyok-replicas"),
            identities: get("IBYOK_IDENTITIES_TABLE", "ibyok-identities"),
            digests: get("IBYOK_DIGESTS_TABLE", "ibyok-digests"),
            members: get("IBYOK_MEMBERS_TABLE", "ibyok-members"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_to_production_without_guardrails() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.environment, Environment::Production);
        assert_eq!(c.guardrails, Guardrails::none());
    }

    #[test]
    fn refuses_to_start_on_conflicting_guardrails() {
        let err = cfg(&[("PROD_MODE_FORCED", "mock"), ("PROD_MOCK_ALLOWED", "false")]).unwrap_err();
        assert!(err.0.contains("PROD_MODE_FORCED") && err.0.contains("PROD_MOCK_ALLOWED"));
    }

    #[test]
    fn a_function_that_calls_kms_refuses_to_start_without_its_key() {
        let err = kms_key_id(|_| None).unwrap_err();
        assert!(err.to_string().contains("IBYOK_KMS_KEY_ID"), "{err}");
        assert!(kms_key_id(|_| Some("  ".into())).is_err(), "blank is unset");
        assert_eq!(kms_key_id(|_| Some("k-1".into())).unwrap(), "k-1");
    }

    #[test]
    fn refuses_unknown_values() {
        assert!(cfg(&[("IBYOK_ENV", "prod")]).is_err());
        assert!(cfg(&[("DEV_MODE_FORCED", "sometimes")]).is_err());
        assert!(cfg(&[("PROD_MOCK_ALLOWED", "no")]).is_err());
        let c = cfg(&[("IBYOK_ENV", "staging"), ("STAGING_MODE_FORCED", "live")]).unwrap();
        assert_eq!(c.guardrails.forced.get(&Environment::Staging), Some(&Mode::Live));
    }

    #[test]
    fn github_keys_url_is_github_unless_set_to_a_url_the_policy_allows() {
        assert_eq!(cfg(&[]).unwrap().github_keys_url, crate::scanning::GITHUB_KEYS_URL);
        let local = "http://127.0.0.1:9/meta/public_keys/secret_scanning";
        assert_eq!(cfg(&[("IBYOK_GITHUB_KEYS_URL", local)]).unwrap().github_keys_url, local);
        for bad in ["http://example.com/keys", "ftp://example.com/keys", "not a url"] {
            let err = cfg(&[("IBYOK_GITHUB_KEYS_URL", bad)]).unwrap_err();
            assert!(err.0.contains("IBYOK_GITHUB_KEYS_URL"), "{bad}: {err}");
        }
    }
}
