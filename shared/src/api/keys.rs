//! `/keys`: create, list, show, update, rotate (to a current or pending
//! version), promote, list versions, delete.

use super::body::{check_name, fill_page, JsonObject, SecretField};
use super::views::{KeyView, VersionView};
use super::{ApiError, ApiResponse, Ctx};
use crate::envelope;
use crate::ids::KeyId;
use crate::kms::KeyContext;
use crate::mode::{Environment, Mode, ModeOverrides};
use crate::secret::SecretValue;
use crate::store::{
    AuditAction, Conflict, Fetch, KeyChange, KeyRecord, KeyVersion, StoreError, MAX_PREVIOUS_VALID_FOR,
};
use crate::store::{AuditStore, KeyStore, LimitStore, ReadStore};
use crate::token::Scope;
use serde_json::Value;

const MAX_VALUE_BYTES: usize = 8192;

fn llm_type_ok(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 32
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// `…` and the value's last four characters when it has at least twelve.
pub fn preview(value: &str) -> String {
    let n = value.chars().count();
    if n >= 12 {
        let tail: String = value.chars().skip(n - 4).collect();
        format!("…{tail}")
    } else {
        "…".to_owned()
    }
}

fn take_value(field: SecretField) -> Result<SecretValue, ApiError> {
    let value = match field {
        SecretField::Absent => return Err(ApiError::bad("value", "is required")),
        SecretField::NotString => return Err(ApiError::bad("value", "must be a string")),
        SecretField::Value(v) => v,
    };
    let raw = value.expose_value();
    if raw.is_empty() || raw.len() > MAX_VALUE_BYTES || raw.trim().is_empty() {
        return Err(ApiError::bad("value", "must be 1 to 8192 bytes and not only white space"));
    }
    Ok(value)
}

/// `previousValidFor`: whole seconds, 0 to 30 days; absent is 0.
fn previous_valid_for(body: &JsonObject) -> Result<i64, ApiError> {
    const FIELD: &str = "previousValidFor";
    match body.raw(FIELD) {
        None => Ok(0),
        Some(Value::Number(n)) => n
            .as_i64()
            .filter(|s| (0..=MAX_PREVIOUS_VALID_FOR).contains(s))
            .ok_or_else(|| ApiError::bad(FIELD, "must be a whole number of seconds from 0 to 2592000")),
        Some(_) => Err(ApiError::bad(FIELD, "must be a whole number of seconds from 0 to 2592000")),
    }
}

/// `modeOverrides` on top of `current`; `null` clears an environment when
/// `allow_null` (PATCH).
fn apply_overrides(current: &ModeOverrides, raw: &Value, allow_null: bool) -> Result<ModeOverrides, ApiError> {
    const FIELD: &str = "modeOverrides";
    let Value::Object(map) = raw else {
        return Err(ApiError::bad(FIELD, "must be an object of environment to mode"));
    };
    let mut out = current.clone();
    for (env, mode) in map {
        let env = Environment::parse(env)
            .ok_or_else(|| ApiError::bad(FIELD, "environments are development, staging and production"))?;
        match mode {
            Value::Null if allow_null => {
                out.remove(&env);
            }
            Value::String(m) => {
                let m = Mode::parse(m).ok_or_else(|| ApiError::bad(FIELD, "modes are mock and live"))?;
                out.insert(env, m);
            }
            _ => return Err(ApiError::bad(FIELD, "modes are mock and live")),
        }
    }
    Ok(out)
}

// The store: authenticating, then the keys.
impl<S: KeyStore + ReadStore + LimitStore + AuditStore + ?Sized> Ctx<'_, S> {
    fn guard_overrides(&self, overrides: &ModeOverrides) -> Result<(), ApiError> {
        match overrides.iter().find(|(e, m)| !self.app.config.guardrails.permits(**e, **m)) {
            Some(_) => {
                Err(ApiError::Conflict("modeOverrides: production cannot be mock while PROD_MOCK_ALLOWED=false".into()))
            }
            None => Ok(()),
        }
    }

    pub(crate) async fn create_key(&mut self) -> Result<ApiResponse, ApiError> {
        let (caller, _) = self.authenticate(Fetch::default()).await?;
        self.require(&caller, Scope::KeysWrite).await?;
        if caller.token.grant.key_ids.is_some() {
            return Err(self.forbid(&caller, "a token restricted to keyIds cannot create keys").await);
        }
        let (body, value) = JsonObject::parse_with_value(self.req, &["name", "llmType", "value", "modeOverrides"])?;
        let name = check_name("name", body.str("name")?)?;
        let llm_type = body.str("llmType")?;
        if !llm_type_ok(llm_type) {
            return Err(ApiError::bad("llmType", "must match ^[a-z0-9][a-z0-9-]{0,31}$"));
        }
        let value = take_value(value)?;
        let mode_overrides = match body.raw("modeOverrides") {
            None => ModeOverrides::new(),
            Some(raw) => apply_overrides(&ModeOverrides::new(), raw, false)?,
        };
        self.guard_overrides(&mode_overrides)?;

        let tenant_id = caller.token.tenant_id.clone();
        let key_id = KeyId::generate(&tenant_id);
        let ctx = KeyContext::new(&tenant_id, &key_id, 1);
        let sealed = envelope::seal(self.app.kms.as_ref(), &ctx, &value).await?;
        let key = KeyRecord {
            key_id: key_id.clone(),
            tenant_id,
            name,
            llm_type: llm_type.to_owned(),
            mode_overrides,
            created_at: self.now,
            updated_at: self.now,
            last_used_at: None,
            retrievals: 0,
            current: KeyVersion::new(1, self.now, preview(value.expose_value()), sealed),
            previous: None,
            pending: None,
            last_version: 1,
        };
        drop(value);
        let mut audit = self.event(&caller, AuditAction::KeyCreate, Some(key_id));
        audit.version = Some(1);
        self.app.store.create_key(&key, &audit).await.map_err(|e| match e {
            StoreError::Conflict(_) => ApiError::internal("a fresh key id collided"),
            e => e.into(),
        })?;
        Ok(ApiResponse::json(201, &KeyView::from(&key)))
    }

    pub(crate) async fn list_keys(&mut self) -> Result<ApiResponse, ApiError> {
        let (caller, _) = self.authenticate(Fetch::default()).await?;
        self.require(&caller, Scope::KeysList).await?;
        let paging = self.req.paging()?;
        let grant = &caller.token.grant;
        let (store, tenant) = (&self.app.store, &caller.token.tenant_id);
        let (keys, cursor) = fill_page(
            paging.limit,
            paging.cursor,
            |n, c| async move { store.list_keys(tenant, n, c.as_deref()).await },
            |k: &KeyRecord| grant.allows_key(&k.key_id),
        )
        .await?;
        let views: Vec<KeyView> = keys.iter().map(KeyView::from).collect();
        Ok(ApiResponse::json(200, &serde_json::json!({"keys": views, "nextCursor": cursor})))
    }

    async fn caller_and_key(&mut self, id: &str, scope: Scope) -> Result<(super::auth::Caller, KeyRecord), ApiError> {
        let key_id = KeyId::parse(id);
        // Every key route shows the key with its counters.
        let fetch = Fetch { keys: key_id.iter().cloned().collect(), usage: true, ..Fetch::default() };
        let (caller, mut fetched) = self.authenticate(fetch).await?;
        self.require(&caller, scope).await?;
        let key = self.visible_key(&caller, &mut fetched, key_id.as_ref()).await?;
        Ok((caller, key))
    }

    pub(crate) async fn get_key(&mut self, id: &str) -> Result<ApiResponse, ApiError> {
        let (_, key) = self.caller_and_key(id, Scope::KeysList).await?;
        Ok(ApiResponse::json(200, &KeyView::from(&key)))
    }

    pub(crate) async fn update_key(&mut self, id: &str) -> Result<ApiResponse, ApiError> {
        let (caller, mut key) = self.caller_and_key(id, Scope::KeysWrite).await?;
        let body = JsonObject::parse(self.req, &["name", "modeOverrides"])?;
        if body.is_empty() {
            return Err(ApiError::bad("body", "name or modeOverrides is required"));
        }
        if body.has("name") {
            key.name = check_name("name", body.str("name")?)?;
        }
        if let Some(raw) = body.raw("modeOverrides") {
            key.mode_overrides = apply_overrides(&key.mode_overrides, raw, true)?;
        }
        self.guard_overrides(&key.mode_overrides)?;
        let change = KeyChange::Meta { name: key.name.clone(), mode_overrides: key.mode_overrides.clone() };
        let audit = self.event(&caller, AuditAction::KeyUpdate, Some(key.key_id.clone()));
        self.app
            .store
            .update_key(&key.tenant_id, &key.key_id, &change, self.now, &audit)
            .await
            .map_err(not_found_as_key)?;
        key.updated_at = self.now;
        Ok(ApiResponse::json(200, &KeyView::from(&key)))
    }

    /// `PUT /keys/{keyId}/value`: a new version, current at once (the
    /// current one kept as previous for `previousValidFor`) or pending.
    pub(crate) async fn rotate_key(&mut self, id: &str) -> Result<ApiResponse, ApiError> {
        let (caller, mut key) = self.caller_and_key(id, Scope::KeysWrite).await?;
        let (body, value) = JsonObject::parse_with_value(self.req, &["value", "stage", "previousValidFor"])?;
        let value = take_value(value)?;
        let pending = match body.opt_str("stage")? {
            None | Some("current") => false,
            Some("pending") => true,
            Some(_) => return Err(ApiError::bad("stage", "must be current or pending")),
        };
        let valid_for = previous_valid_for(&body)?;
        // The window is the promote's to give; 0 (nothing kept) is the only
        // value that means the same here.
        if pending && valid_for != 0 {
            return Err(ApiError::bad(
                "previousValidFor",
                "applies when a version becomes current: give it to promote",
            ));
        }
        let number = key.next_version();
        let ctx = KeyContext::new(&key.tenant_id, &key.key_id, number);
        let sealed = envelope::seal(self.app.kms.as_ref(), &ctx, &value).await?;
        let version = KeyVersion::new(number, self.now, preview(value.expose_value()), sealed);
        drop(value);
        let change = match pending {
            true => key.staging(version),
            false => key.rotation(version, valid_for, self.now),
        };
        let mut audit = self.event(&caller, AuditAction::KeyRotate, Some(key.key_id.clone()));
        audit.version = Some(number);
        self.change_versions(&mut key, &change, &audit).await?;
        Ok(ApiResponse::json(200, &KeyView::from(&key)))
    }

    /// `POST /keys/{keyId}/promote`: the pending version becomes current.
    pub(crate) async fn promote_key(&mut self, id: &str) -> Result<ApiResponse, ApiError> {
        let (caller, mut key) = self.caller_and_key(id, Scope::KeysWrite).await?;
        let body = JsonObject::parse_optional(self.req, &["previousValidFor"])?;
        let valid_for = previous_valid_for(&body)?;
        let change = key
            .promotion(valid_for, self.now)
            .ok_or_else(|| ApiError::Conflict("the key has no pending version to promote".into()))?;
        let mut audit = self.event(&caller, AuditAction::KeyPromote, Some(key.key_id.clone()));
        audit.version = key.pending.as_ref().map(|v| v.number);
        self.change_versions(&mut key, &change, &audit).await?;
        Ok(ApiResponse::json(200, &KeyView::from(&key)))
    }

    /// `GET /keys/{keyId}/versions`: newest first, retired ones until
    /// cleanup destroys them.
    pub(crate) async fn list_versions(&mut self, id: &str) -> Result<ApiResponse, ApiError> {
        let (_, key) = self.caller_and_key(id, Scope::KeysList).await?;
        let versions: Vec<VersionView> =
            key.versions(self.now).into_iter().map(|(v, s)| VersionView::new(v, s)).collect();
        Ok(ApiResponse::json(200, &serde_json::json!({ "versions": versions })))
    }

    async fn change_versions(
        &self,
        key: &mut KeyRecord,
        change: &KeyChange,
        audit: &crate::store::AuditEvent,
    ) -> Result<(), ApiError> {
        self.app.store.update_key(&key.tenant_id, &key.key_id, change, self.now, audit).await.map_err(|e| match e {
            StoreError::Conflict(Conflict::Changed) => {
                ApiError::Conflict("the key's versions changed meanwhile: read them and try again".into())
            }
            e => not_found_as_key(e),
        })?;
        key.apply_versions(change);
        key.updated_at = self.now;
        Ok(())
    }

    pub(crate) async fn delete_key(&mut self, id: &str) -> Result<ApiResponse, ApiError> {
        let (caller, key) = self.caller_and_key(id, Scope::KeysWrite).await?;
        let audit = self.event(&caller, AuditAction::KeyDelete, Some(key.key_id.clone()));
        self.app.store.delete_key(&key.tenant_id, &key.key_id, &audit).await.map_err(not_found_as_key)?;
        Ok(ApiResponse::no_content())
    }
}

/// A key deleted between the read and the write answers as a missing key.
pub(crate) fn not_found_as_key(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::NotFound("no such key"),
        e => e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preview_shows_the_last_four_of_long_values_only() {
        assert_eq!(preview("sk-abcdefghXy9Q"), "…Xy9Q");
        assert_eq!(preview("abcdefghijk"), "…");
        assert_eq!(preview("abcdefghijkl"), "…ijkl");
    }

    #[test]
    fn llm_type_pattern() {
        for ok in ["openai", "a", "0x", "my-provider", &"a".repeat(32)] {
            assert!(llm_type_ok(ok), "{ok}");
        }
        for bad in ["", "-a", "OpenAI", "a_b", &"a".repeat(33), "é"] {
            assert!(!llm_type_ok(bad), "{bad}");
        }
    }
}
