//! `GET /external/keys/{keyId}/value`: the read path, the product.
//!
//! Round trips, in sequence: one `BatchGetItem` (token, key and tenant
//! settings, consistent), then — concurrently — the KMS `Decrypt` (live
//! only) and the usage and audit writes.

use super::keys::not_found_as_key;
use super::{ApiError, ApiResponse, Ctx};
use crate::envelope::{self, EnvelopeError};
use crate::ids::KeyId;
use crate::kms::{KeyContext, KmsError};
use crate::mode::{self, Environment, Mode, Source, TenantModes};
use crate::store::{AuditAction, Fetch};
use crate::token::Scope;
use serde::Serialize;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ModeInfo {
    environment: Environment,
    effective_mode: Mode,
    source: Source,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ValueView<'a> {
    key_id: &'a KeyId,
    name: &'a str,
    llm_type: &'a str,
    value: &'a str,
    mode_info: ModeInfo,
}

impl Ctx<'_> {
    pub(crate) async fn read_value(&mut self, id: &str) -> Result<ApiResponse, ApiError> {
        let key_id = KeyId::parse(id);
        let fetch = Fetch {
            keys: key_id.iter().cloned().collect(),
            tenant: key_id.as_ref().map(KeyId::tenant_hint),
            ..Fetch::default()
        };
        let (caller, mut fetched) = self.authenticate(fetch).await?;
        self.require(&caller, Scope::KeysRead).await?;
        let environment = match self.req.query_param("env") {
            None => self.app.config.environment,
            Some(e) => Environment::parse_query(e)
                .ok_or_else(|| ApiError::bad("env", "must be dev, development, staging, prod or production"))?,
        };
        let key = self.visible_key(&caller, &mut fetched, key_id.as_ref()).await?;
        let tenant_modes = fetched
            .tenant
            .filter(|t| t.tenant_id == caller.token.tenant_id)
            .map(|t| t.modes)
            .unwrap_or_else(TenantModes::default);
        let (effective_mode, source) =
            mode::resolve(&self.app.config.guardrails, environment, &key.mode_overrides, &tenant_modes);

        let mut audit = self.event(&caller, AuditAction::KeyRead, Some(key.key_id.clone()));
        audit.environment = Some(environment);
        audit.effective_mode = Some(effective_mode);
        let store = &self.app.store;
        let record = store.record_read(&key.key_id, &caller.token.token_id, self.now, &audit);

        let live;
        let fake;
        let value: &str = match effective_mode {
            Mode::Mock => {
                record.await.map_err(not_found_as_key)?;
                fake = mode::fake_value(&key.llm_type, &key.key_id);
                &fake
            }
            Mode::Live => {
                let ctx = KeyContext { tenant_id: key.tenant_id.clone(), key_id: key.key_id.clone() };
                let (opened, recorded) =
                    tokio::join!(envelope::open(self.app.kms.as_ref(), &ctx, &key.envelope), record);
                match (opened, recorded) {
                    (Ok(v), Ok(())) => {
                        live = v;
                        live.expose_value()
                    }
                    (Ok(_), Err(e)) => return Err(not_found_as_key(e)),
                    (Err(e), recorded) => {
                        if recorded.is_ok() {
                            // The read failed: take its counts back (best effort).
                            if let Err(undo) = store.unrecord_read(&key.key_id, &caller.token.token_id).await {
                                tracing::warn!(request_id = %self.req.request_id, error = %undo, "could not take back the counters of a failed read");
                            }
                        }
                        if matches!(e, EnvelopeError::Integrity | EnvelopeError::Kms(KmsError::Integrity)) {
                            tracing::error!(
                                alert = "integrity",
                                request_id = %self.req.request_id,
                                tenant_id = %key.tenant_id,
                                key_id = %key.key_id,
                                "stored envelope failed its integrity check: possible tampering"
                            );
                        }
                        return Err(e.into());
                    }
                }
            }
        };
        Ok(ApiResponse::json(
            200,
            &ValueView {
                key_id: &key.key_id,
                name: &key.name,
                llm_type: &key.llm_type,
                value,
                mode_info: ModeInfo { environment, effective_mode, source },
            },
        ))
    }
}
