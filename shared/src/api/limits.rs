//! Token rate limits on the request path.
//!
//! A limited token's request is counted with [`LimitStore::count_request`]: one
//! conditional write of a small counter item per (token, UTC minute), shared
//! by every instance. The write goes out beside a round trip the request
//! makes anyway wherever the limit is known before the token is read: on the
//! planned read (the plan holds the token's grant) and on any route once
//! this instance has seen the token (its limit is part of its grant, which
//! never changes). Only a token's first request on an instance waits for its
//! count after authentication. An unlimited token never counts.
//!
//! A tenant's monthly quota of value reads is counted the same way, by
//! [`LimitStore::count_quota_read`] beside the read's own writes, only for a
//! tenant that has one (the read path reads the tenant's record anyway, and
//! a plan remembers it). A read the quota refuses is taken back.
//!
//! [`LimitStore::count_request`]: crate::store::LimitStore::count_request
//! [`LimitStore::count_quota_read`]: crate::store::LimitStore::count_quota_read

use super::{ApiError, ApiResponse, Ctx};
use crate::clock::{Month, Timestamp};
use crate::ids::KeyId;
use crate::ids::{TenantId, TokenId};
use crate::store::AuditEvent;
use crate::store::{AuditAction, Outcome, RateCount, StoreError};
use crate::store::{AuditStore, LimitStore, ReadStore};
use std::collections::HashMap;
use std::sync::Mutex;

pub const RATE_LIMIT_HEADER: &str = "ratelimit-limit";
pub const RATE_REMAINING_HEADER: &str = "ratelimit-remaining";
pub const RATE_RESET_HEADER: &str = "ratelimit-reset";

/// The smallest and largest `rateLimit` (requests a minute).
pub const MIN_RATE_LIMIT: u64 = 1;
pub const MAX_RATE_LIMIT: u64 = 100_000;

/// The UTC minute of `now` (epoch seconds / 60).
pub fn minute_of(now: Timestamp) -> i64 {
    now.millis().div_euclid(60_000)
}

/// Whole seconds from `now` to the start of the next UTC minute (1–60).
pub fn seconds_to_next_minute(now: Timestamp) -> i64 {
    let next = (minute_of(now) + 1) * 60_000;
    (next - now.millis() + 999) / 1000
}

/// The `RateLimit-*` headers of a response to a limited token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RateHeaders {
    pub limit: u32,
    pub remaining: u32,
    pub reset: i64,
}

impl RateHeaders {
    pub(crate) fn apply(self, resp: &mut ApiResponse) {
        resp.headers.push((RATE_LIMIT_HEADER, self.limit.to_string()));
        resp.headers.push((RATE_REMAINING_HEADER, self.remaining.to_string()));
        resp.headers.push((RATE_RESET_HEADER, self.reset.to_string()));
    }
}

/// A count taken on the planned path before the store confirmed the token,
/// for the full path to use instead of counting the request twice.
pub(crate) struct PreCounted {
    pub limit: u32,
    pub result: Result<RateCount, StoreError>,
}

/// What this instance knows of a token's limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Known {
    /// Never seen here.
    Unknown,
    Unlimited,
    Limited(u32),
    /// Limited, and refused already in this minute: no need to count.
    Over(u32),
}

#[derive(Clone, Copy)]
struct Memo {
    limit: Option<u32>,
    over_in: Option<i64>,
}

/// The limits of the tokens this instance has authenticated (a grant never
/// changes once issued), and which of them were refused in the current
/// minute. Holds no secret. Bounded: full, it starts afresh.
#[derive(Default)]
pub(crate) struct LimitMemo(Mutex<HashMap<TokenId, Memo>>);

const MAX_MEMOS: usize = 4096;

impl LimitMemo {
    pub(crate) fn known(&self, token: &TokenId, minute: i64) -> Known {
        let Some(memo) = self.0.lock().ok().and_then(|m| m.get(token).copied()) else { return Known::Unknown };
        match memo.limit {
            None => Known::Unlimited,
            Some(l) if memo.over_in == Some(minute) => Known::Over(l),
            Some(l) => Known::Limited(l),
        }
    }

    fn update(&self, token: &TokenId, f: impl FnOnce(&mut Memo)) {
        if let Ok(mut m) = self.0.lock() {
            if m.len() >= MAX_MEMOS && !m.contains_key(token) {
                m.clear();
            }
            f(m.entry(token.clone()).or_insert(Memo { limit: None, over_in: None }));
        }
    }

    /// Records an authenticated token's limit.
    pub(crate) fn learn(&self, token: &TokenId, limit: Option<u32>) {
        self.update(token, |m| m.limit = limit);
    }

    fn over(&self, token: &TokenId, limit: u32, minute: i64) {
        self.update(token, |m| {
            m.limit = Some(limit);
            m.over_in = Some(minute);
        });
    }
}

/// Seconds from `now` to the next UTC month, when a quota resets.
pub fn seconds_to_next_month(now: Timestamp) -> i64 {
    (Month::of(now).next().start().seconds() - now.seconds()).max(1)
}

/// Counts one value read against the tenant's quota, if it has one.
pub(crate) async fn count_quota<S: LimitStore + ?Sized>(
    store: &S,
    tenant: &TenantId,
    quota: Option<u64>,
    now: Timestamp,
) -> Option<Result<bool, StoreError>> {
    match quota {
        Some(q) => Some(store.count_quota_read(tenant, Month::of(now), q).await),
        None => None,
    }
}

// The store: the rate and quota counters, the first refusal's event, and
// a read taken back when its quota count fails.
impl<S: ReadStore + LimitStore + AuditStore + ?Sized> Ctx<'_, S> {
    /// Settles a read's quota count once the read's own writes (and decrypt)
    /// are done. `served`: the read would be answered with its value. A
    /// refused (or uncounted) read that would have been served is taken
    /// back and answered 429 (or 503); a counted read that is not served
    /// is uncounted. Otherwise the read's own outcome stands.
    pub(crate) async fn settle_quota(
        &self,
        tenant: &TenantId,
        read: (&KeyId, &TokenId, &AuditEvent),
        served: bool,
        counted: Option<Result<bool, StoreError>>,
    ) -> Result<(), ApiError> {
        match counted {
            None => Ok(()),
            Some(Ok(true)) if served => Ok(()),
            Some(Ok(true)) => {
                self.uncount_quota(tenant).await;
                Ok(())
            }
            Some(_) if !served => Ok(()),
            Some(Ok(false)) => {
                self.take_back_read(read.0, read.1, read.2).await;
                Err(ApiError::QuotaExceeded { retry_after: seconds_to_next_month(self.now) })
            }
            Some(Err(e)) => {
                self.take_back_read(read.0, read.1, read.2).await;
                Err(e.into())
            }
        }
    }

    /// Takes back a quota count whose read was not served (best effort).
    pub(crate) async fn uncount_quota(&self, tenant: &TenantId) {
        if let Err(e) = self.app.store.uncount_quota_read(tenant, Month::of(self.now)).await {
            tracing::warn!(request_id = %self.req.request_id, error = %e, "could not take back a quota count");
        }
    }

    /// Applies a limited token's count (taken, or to take now): the
    /// `RateLimit-*` headers, and a 429 over the limit, the minute's first
    /// one recorded as an `auth.limited` event.
    pub(crate) async fn apply_rate(
        &mut self,
        tenant: &TenantId,
        token: &TokenId,
        limit: u32,
        counted: Option<Result<RateCount, StoreError>>,
    ) -> Result<(), ApiError> {
        let minute = minute_of(self.now);
        let counted = match counted {
            Some(c) => c,
            None => self.app.store.count_request(token, minute, limit).await,
        }?;
        let reset = seconds_to_next_minute(self.now);
        let remaining = match counted {
            RateCount::Within { count } => limit.saturating_sub(count),
            RateCount::FirstOver | RateCount::Over => 0,
        };
        *self.rate = Some(RateHeaders { limit, remaining, reset });
        if matches!(counted, RateCount::Within { .. }) {
            return Ok(());
        }
        self.app.limit_memo.over(token, limit, minute);
        if counted == RateCount::FirstOver {
            let mut event = self.event_as(tenant, token, AuditAction::AuthLimited, None);
            event.outcome = Outcome::Denied;
            if let Err(e) = self.app.store.append_audit(&event).await {
                tracing::warn!(request_id = %self.req.request_id, error = %e, "could not record auth.limited");
            }
        }
        Err(ApiError::RateLimited { retry_after: reset })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_and_resets_are_utc_minutes() {
        let t = Timestamp::from_millis(120_000);
        assert_eq!(minute_of(t), 2);
        assert_eq!(seconds_to_next_minute(t), 60);
        assert_eq!(seconds_to_next_minute(t.plus_millis(1)), 60);
        assert_eq!(seconds_to_next_minute(t.plus_millis(59_001)), 1);
        assert_eq!(seconds_to_next_minute(t.plus_millis(59_999)), 1);
        assert_eq!(minute_of(t.plus_millis(59_999)), 2);
    }

    #[test]
    fn the_memo_knows_limits_and_refusals_by_minute() {
        let memo = LimitMemo::default();
        let t = TokenId::from_stored("tok_a".into());
        assert_eq!(memo.known(&t, 5), Known::Unknown);
        memo.learn(&t, None);
        assert_eq!(memo.known(&t, 5), Known::Unlimited);
        memo.learn(&t, Some(3));
        assert_eq!(memo.known(&t, 5), Known::Limited(3));
        memo.over(&t, 3, 5);
        assert_eq!(memo.known(&t, 5), Known::Over(3));
        assert_eq!(memo.known(&t, 6), Known::Limited(3));
    }
}
