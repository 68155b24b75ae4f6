//! Expiry notices in memory ([`NoticeStore`]).

use super::*;

#[async_trait]
impl NoticeStore for MemoryStore {
    async fn claim_expiry_notices(&self, now: Timestamp) -> Result<Vec<ExpiryNotice>, StoreError> {
        self.with(|s| {
            let due: Vec<TokenId> =
                s.notice_at.iter().filter(|(_, at)| **at <= now.seconds()).map(|(id, _)| id.clone()).collect();
            let mut out = Vec::new();
            for id in due {
                s.notice_at.remove(&id);
                if let Some(t) = s.tokens.get(&id).filter(|t| t.is_live(now)) {
                    out.push(ExpiryNotice {
                        token_id: id,
                        name: t.name.clone(),
                        tenant_id: t.tenant_id.clone(),
                        expires_at: t.grant.expires_at,
                    });
                }
            }
            Ok(out)
        })
    }

    async fn release_expiry_notice(&self, token: &TokenId, notice_second: i64) -> Result<(), StoreError> {
        self.with(|s| {
            if s.tokens.contains_key(token) {
                s.notice_at.insert(token.clone(), notice_second);
            }
            Ok(())
        })
    }
}
