//! Mock mode: which environment a read is for, whether it is served `live`
//! or as a provider-shaped fake, and which rule decided.
//!
//! Resolution, first match wins: the server's guardrails, the key's override
//! for that environment, the tenant's default for it.

use crate::ids::{base62_of_bytes, KeyId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Development,
    Staging,
    Production,
}

impl Environment {
    pub const ALL: [Environment; 3] = [Environment::Development, Environment::Staging, Environment::Production];

    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Development => "development",
            Environment::Staging => "staging",
            Environment::Production => "production",
        }
    }
    /// The full names only (settings, overrides, `IBYOK_ENV`).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == s)
    }
    /// The `env` query of the External API also takes `dev` and `prod`.
    pub fn parse_query(s: &str) -> Option<Self> {
        match s {
            "dev" => Some(Environment::Development),
            "prod" => Some(Environment::Production),
            _ => Self::parse(s),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Mock,
    Live,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Mock => "mock",
            Mode::Live => "live",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "mock" => Some(Mode::Mock),
            "live" => Some(Mode::Live),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Guardrail,
    KeyOverride,
    TenantSetting,
}

/// The server's guardrails, from its environment variables.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Guardrails {
    /// `DEV_MODE_FORCED`, `STAGING_MODE_FORCED`, `PROD_MODE_FORCED`.
    pub forced: BTreeMap<Environment, Mode>,
    /// `PROD_MOCK_ALLOWED` (true unless set to `false`).
    pub prod_mock_allowed: bool,
}

impl Guardrails {
    pub fn none() -> Self {
        Self { forced: BTreeMap::new(), prod_mock_allowed: true }
    }

    /// A configuration that cannot be honoured, named for the operator.
    pub fn conflict(&self) -> Option<&'static str> {
        (!self.prod_mock_allowed && self.forced.get(&Environment::Production) == Some(&Mode::Mock))
            .then_some("PROD_MODE_FORCED=mock conflicts with PROD_MOCK_ALLOWED=false")
    }

    /// Whether a write may make `env` serve `mode` (else 409).
    pub fn permits(&self, env: Environment, mode: Mode) -> bool {
        !(env == Environment::Production && mode == Mode::Mock && !self.prod_mock_allowed)
    }

    fn decide(&self, env: Environment) -> Option<Mode> {
        if let Some(m) = self.forced.get(&env) {
            return Some(*m);
        }
        (env == Environment::Production && !self.prod_mock_allowed).then_some(Mode::Live)
    }
}

/// A tenant's default mode per environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantModes {
    pub development: Mode,
    pub staging: Mode,
    pub production: Mode,
}

impl Default for TenantModes {
    /// The defaults of a new tenant.
    fn default() -> Self {
        Self { development: Mode::Mock, staging: Mode::Mock, production: Mode::Live }
    }
}

impl TenantModes {
    pub fn get(&self, env: Environment) -> Mode {
        match env {
            Environment::Development => self.development,
            Environment::Staging => self.staging,
            Environment::Production => self.production,
        }
    }
    pub fn set(&mut self, env: Environment, mode: Mode) {
        match env {
            Environment::Development => self.development = mode,
            Environment::Staging => self.staging = mode,
            Environment::Production => self.production = mode,
        }
    }
}

/// A key's overrides, by environment.
pub type ModeOverrides = BTreeMap<Environment, Mode>;

pub fn resolve(g: &Guardrails, env: Environment, overrides: &ModeOverrides, tenant: &TenantModes) -> (Mode, Source) {
    if let Some(m) = g.decide(env) {
        return (m, Source::Guardrail);
    }
    if let Some(m) = overrides.get(&env) {
        return (*m, Source::KeyOverride);
    }
    (tenant.get(env), Source::TenantSetting)
}

/// What must still be stored for a mode that [`resolve`] decided by `source`
/// to hold: the "mode still holds" rule, in one place. The memory store
/// evaluates it with [`ModeRequirement::holds`]; the DynamoDB adapter writes
/// it as conditions; the store contract suite holds the two together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModeRequirement {
    /// A guardrail decided: nothing stored matters.
    Nothing,
    /// The key's override for the environment is still this mode.
    KeyOverride(Environment, Mode),
    /// The key still has no override for the environment, and the tenant's
    /// setting (or the default, on a tenant without one) is still this mode.
    TenantSetting(Environment, Mode),
}

impl ModeRequirement {
    pub fn of(env: Environment, mode: Mode, source: Source) -> Self {
        match source {
            Source::Guardrail => ModeRequirement::Nothing,
            Source::KeyOverride => ModeRequirement::KeyOverride(env, mode),
            Source::TenantSetting => ModeRequirement::TenantSetting(env, mode),
        }
    }

    pub fn holds(&self, overrides: &ModeOverrides, tenant: &TenantModes) -> bool {
        match *self {
            ModeRequirement::Nothing => true,
            ModeRequirement::KeyOverride(env, mode) => overrides.get(&env) == Some(&mode),
            ModeRequirement::TenantSetting(env, mode) => !overrides.contains_key(&env) && tenant.get(env) == mode,
        }
    }
}

/// A provider-shaped fake value. Its suffix is stable for a key and derived
/// from the key id, never from the value.
pub fn fake_value(llm_type: &str, key_id: &KeyId) -> String {
    let digest = Sha256::new().chain_update(b"ibyok:mock:v1\0").chain_update(key_id.as_str()).finalize();
    let suffix = base62_of_bytes(&digest[..16], 22);
    match llm_type {
        "openai" => format!("sk-mock-openai-{suffix}"),
        "anthropic" => format!("sk-ant-mock-{suffix}"),
        "google" => format!("AIzaMock-{suffix}"),
        "groq" => format!("gsk-mock-{suffix}"),
        other => format!("mock-{other}-{suffix}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Environment::*;
    use Mode::*;

    #[test]
    fn resolution_table() {
        let tenant = TenantModes::default();
        let forced_dev_live = Guardrails { forced: [(Development, Live)].into(), prod_mock_allowed: true };
        let no_prod_mock = Guardrails { forced: BTreeMap::new(), prod_mock_allowed: false };
        let none = Guardrails::none();
        let dev_live: ModeOverrides = [(Development, Live)].into();
        let prod_mock: ModeOverrides = [(Production, Mock)].into();
        let empty = ModeOverrides::new();
        // (guardrails, env, overrides, expected mode, expected source)
        let cases = [
            (&none, Development, &empty, Mock, Source::TenantSetting),
            (&none, Staging, &empty, Mock, Source::TenantSetting),
            (&none, Production, &empty, Live, Source::TenantSetting),
            (&none, Development, &dev_live, Live, Source::KeyOverride),
            (&none, Production, &prod_mock, Mock, Source::KeyOverride),
            (&forced_dev_live, Development, &empty, Live, Source::Guardrail),
            (&forced_dev_live, Staging, &empty, Mock, Source::TenantSetting),
            (&no_prod_mock, Production, &prod_mock, Live, Source::Guardrail),
            (&no_prod_mock, Production, &empty, Live, Source::Guardrail),
            (&no_prod_mock, Development, &dev_live, Live, Source::KeyOverride),
        ];
        for (g, env, ov, mode, source) in cases {
            assert_eq!(resolve(g, env, ov, &tenant), (mode, source), "{g:?} {env:?} {ov:?}");
        }
    }

    #[test]
    fn forced_prod_mock_with_prod_mock_disallowed_is_a_conflict() {
        let g = Guardrails { forced: [(Production, Mock)].into(), prod_mock_allowed: false };
        assert!(g.conflict().is_some());
        assert!(!g.permits(Production, Mock));
        assert!(Guardrails::none().conflict().is_none());
    }

    #[test]
    fn fakes_have_the_provider_shape_and_are_stable() {
        let t = crate::ids::TenantId::generate();
        let k = KeyId::generate(&t);
        assert!(fake_value("openai", &k).starts_with("sk-mock-openai-"));
        assert!(fake_value("anthropic", &k).starts_with("sk-ant-mock-"));
        assert!(fake_value("google", &k).starts_with("AIzaMock-"));
        assert!(fake_value("groq", &k).starts_with("gsk-mock-"));
        assert!(fake_value("mistral", &k).starts_with("mock-mistral-"));
        assert_eq!(fake_value("openai", &k), fake_value("openai", &k));
        assert_ne!(fake_value("openai", &k), fake_value("openai", &KeyId::generate(&t)));
    }
}
