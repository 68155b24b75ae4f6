//! `POST /github/secret-scanning`: GitHub's secret scanning partner program
//! reports strings it found in public that match the token format; each
//! that is a token of this deployment is revoked with its descendants.
//!
//! In order:
//!
//! 1. The signature ([`crate::scanning`]): ECDSA P-256 over the raw body by
//!    a current key of GitHub's. Without it, 401, and nothing is read or
//!    written (the keys document may be fetched, at most once a minute).
//! 2. The body: a JSON array of `{token, type, url, source}` (400).
//! 3. Each string's shape and checksum ([`ParsedToken::parse`]): one that
//!    fails is a `false_positive` without any lookup. A report with none
//!    left ends here: it has cost no store call.
//! 4. The report's count against [`REPORTS_PER_MINUTE`], one counter for
//!    the whole deployment (429 past it), so that replays of a signed body
//!    cannot make the store work without bound.
//! 5. The lookups: one consistent batch read per 100 distinct token ids,
//!    [`LOOKUP_CONCURRENCY`] at once. A token is ours when its id is stored
//!    and the stored verifier matches ([`ParsedToken::matches`]); another
//!    deployment's token (same format, unknown id) or a token purged after
//!    its expiry is a `false_positive`.
//! 6. Each token of ours not revoked yet: revoked with its descendants as
//!    `DELETE /tokens/{id}` revokes (the same code: the root's revocation
//!    and its `token.leaked` event at once, the event retracted if the
//!    revocation fails; then the cascade), [`REVOKE_CONCURRENCY`] trees at
//!    once. A token revoked already (by its owner, or by an earlier report)
//!    has its cascade walked again, with no second event or notice: a
//!    repeated report changes nothing, and a report retried after a failure
//!    completes a cascade that the failure cut short.
//! 7. One notice per tenant (per 100 tokens) through the notices' topic;
//!    a notice that fails is logged (the events hold the same).
//! 8. 200 with GitHub's feedback, one entry per reported match in order:
//!    `token_hash` (hex SHA-256 of the string), `token_type`, `label`.
//!
//! A failure of the store after some revocations answers 503: GitHub sends
//! the report again, and step 6 makes that safe.

use super::limits::{minute_of, seconds_to_next_minute};
use super::{ApiError, ApiResponse, Ctx};
use crate::ids::{TenantId, TokenId};
use crate::keycache::KeyLookup;
use crate::notify::{LeakNotice, LeakedToken, MAX_LEAKED_PER_NOTICE};
use crate::scanning::{self, clip, Feedback, Label, Reported, REPORTS_PER_MINUTE};
use crate::store::{AuditAction, Fetch, RateCount, Revocable, TokenRecord};
use crate::store::{AuditStore, LimitStore, ReadStore, TokenStore};
use crate::token::ParsedToken;
use futures::stream::{self, StreamExt};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Distinct token ids per batch read.
const LOOKUP_CHUNK: usize = 100;
/// Batch reads in flight at once.
pub const LOOKUP_CONCURRENCY: usize = 8;
/// Leaked tokens' trees revoked at once (each cascades 64 at a time).
pub const REVOKE_CONCURRENCY: usize = 16;

/// The id the reports' counter is kept under: a digest in its own domain,
/// which no token's id can equal.
fn report_counter_id() -> TokenId {
    let digest = Sha256::new().chain_update(b"ibyok:report-counter:v1\0github").finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    TokenId::from_digest(&first)
}

/// A token of ours found in the report, with where it was first reported.
struct Found<'r> {
    record: TokenRecord,
    report: &'r Reported,
}

// The store: the token reads, the revocations and their events, the
// reports' counter.
impl<S: TokenStore + ReadStore + LimitStore + AuditStore + ?Sized> Ctx<'_, S> {
    pub(crate) async fn github_secret_scanning(&mut self) -> Result<ApiResponse, ApiError> {
        self.check_report_signature().await?;
        let reported = scanning::parse_report(self.req.body.expose()).map_err(ApiError::BadRequest)?;
        let parsed: Vec<Option<ParsedToken>> = reported.iter().map(|r| ParsedToken::parse(&r.token)).collect();
        let mut ours: HashMap<TokenId, Found<'_>> = HashMap::new();
        if parsed.iter().any(Option::is_some) {
            self.count_report().await?;
            let records = self.look_up(&parsed).await?;
            for (p, r) in parsed.iter().zip(&reported) {
                let Some(p) = p else { continue };
                if let Some(record) = records.get(p.id()).filter(|t| p.matches(&t.verifier)) {
                    ours.entry(p.id().clone()).or_insert_with(|| Found { record: record.clone(), report: r });
                }
            }
            self.revoke_leaked(&ours).await?;
        }
        let feedback: Vec<Feedback> = parsed
            .iter()
            .zip(&reported)
            .map(|(p, r)| Feedback {
                token_hash: scanning::token_hash(&r.token),
                token_type: r.token_type.clone(),
                label: match p {
                    Some(p) if ours.contains_key(p.id()) => Label::TruePositive,
                    _ => Label::FalsePositive,
                },
            })
            .collect();
        Ok(ApiResponse::json(200, &feedback))
    }

    /// 401 unless a current key of GitHub's signed the raw body.
    async fn check_report_signature(&self) -> Result<(), ApiError> {
        let (Some(id), Some(signature)) = (self.req.github_key_id.as_deref(), self.req.github_signature.as_deref())
        else {
            return Err(ApiError::Unauthorized);
        };
        let url = &self.app.config.github_keys_url;
        match self.app.reporter_keys.key(url, id.trim(), self.now).await {
            KeyLookup::Found(key) if key.verifies(self.req.body.expose(), signature) => Ok(()),
            KeyLookup::Found(_) | KeyLookup::Unknown => {
                tracing::warn!(request_id = %self.req.request_id, key_id = %id, "a secret scanning report's signature does not verify");
                Err(ApiError::Unauthorized)
            }
            KeyLookup::Unavailable(why) => {
                Err(ApiError::Unavailable(format!("GitHub's secret scanning keys: {why}").into()))
            }
        }
    }

    /// One report against [`REPORTS_PER_MINUTE`].
    async fn count_report(&self) -> Result<(), ApiError> {
        let minute = minute_of(self.now);
        match self.app.store.count_request(&report_counter_id(), minute, REPORTS_PER_MINUTE).await? {
            RateCount::Within { .. } => Ok(()),
            over => {
                if over == RateCount::FirstOver {
                    tracing::warn!(request_id = %self.req.request_id, "secret scanning reports past their limit this minute");
                }
                Err(ApiError::RateLimited { retry_after: seconds_to_next_minute(self.now) })
            }
        }
    }

    /// The stored records of the distinct ids among `parsed`.
    async fn look_up(&self, parsed: &[Option<ParsedToken>]) -> Result<HashMap<TokenId, TokenRecord>, ApiError> {
        let mut seen = HashSet::new();
        let ids: Vec<TokenId> =
            parsed.iter().flatten().map(|p| p.id().clone()).filter(|id| seen.insert(id.clone())).collect();
        let store = &self.app.store;
        let chunks: Vec<Fetch> =
            ids.chunks(LOOKUP_CHUNK).map(|c| Fetch { tokens: c.to_vec(), ..Fetch::default() }).collect();
        // By index: a closure over borrowed items is not general enough
        // for the boxed handler future.
        let batches: Vec<_> = stream::iter(0..chunks.len())
            .map(|i| store.fetch(&chunks[i]))
            .buffer_unordered(LOOKUP_CONCURRENCY)
            .collect()
            .await;
        let mut out = HashMap::new();
        for batch in batches {
            out.extend(batch?.tokens);
        }
        Ok(out)
    }

    /// Revokes each of `ours` with its descendants, records the newly
    /// revoked ones' `token.leaked`, and sends their tenants' notices.
    async fn revoke_leaked(&self, ours: &HashMap<TokenId, Found<'_>>) -> Result<(), ApiError> {
        let found: Vec<&Found<'_>> = ours.values().collect();
        let results: Vec<(usize, Result<bool, ApiError>)> = stream::iter(0..found.len())
            .map(|i| {
                let one = found[i];
                async move { (i, self.revoke_one_leaked(one).await) }
            })
            .buffer_unordered(REVOKE_CONCURRENCY)
            .collect()
            .await;
        let mut by_tenant: BTreeMap<&TenantId, Vec<LeakedToken>> = BTreeMap::new();
        let mut failed = None;
        for (i, r) in results {
            match r {
                Ok(true) => by_tenant.entry(&found[i].record.tenant_id).or_default().push(leaked(found[i])),
                Ok(false) => {}
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        self.notify_leaks(by_tenant).await;
        failed.map_or(Ok(()), Err)
    }

    /// `Ok(true)`: revoked now, its event written; `Ok(false)`: revoked
    /// already (its cascade walked again) or purged meanwhile.
    async fn revoke_one_leaked(&self, found: &Found<'_>) -> Result<bool, ApiError> {
        let record = &found.record;
        let root = Revocable { token_id: record.token_id.clone(), expires_at: Some(record.grant.expires_at) };
        if record.revoked_at.is_some() {
            self.revoke_all(&record.tenant_id, vec![root], HashSet::new()).await?;
            return Ok(false);
        }
        let mut event = self.event_as(&record.tenant_id, &record.token_id, AuditAction::TokenLeaked, None);
        event.detail = Some(
            serde_json::json!({
                "url": clip(&found.report.url, scanning::MAX_URL_CHARS),
                "source": clip(&found.report.source, scanning::MAX_SOURCE_CHARS),
            })
            .to_string(),
        );
        match self.revoke_recorded(&record.tenant_id, &event, root).await {
            Ok(()) => Ok(true),
            // Purged by cleanup since the read: nothing left to revoke.
            Err(ApiError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn notify_leaks(&self, by_tenant: BTreeMap<&TenantId, Vec<LeakedToken>>) {
        let Some(notifier) = &self.app.notifier else { return };
        for (tenant, tokens) in by_tenant {
            for chunk in tokens.chunks(MAX_LEAKED_PER_NOTICE) {
                let notice = LeakNotice { tenant_id: tenant.clone(), reported_at: self.now, tokens: chunk.to_vec() };
                if let Err(e) = notifier.leaked(&notice).await {
                    let cause = crate::fault::chain(&e);
                    tracing::warn!(request_id = %self.req.request_id, tenant_id = %tenant, cause = %cause, "could not send a leak notice");
                }
            }
        }
    }
}

fn leaked(found: &Found<'_>) -> LeakedToken {
    LeakedToken {
        token_id: found.record.token_id.clone(),
        name: found.record.name.clone(),
        url: clip(&found.report.url, scanning::MAX_URL_CHARS),
        source: clip(&found.report.source, scanning::MAX_SOURCE_CHARS),
    }
}
