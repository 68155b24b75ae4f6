//! Tokens and the token tree in memory ([`TokenStore`]).

use super::*;

#[async_trait]
impl TokenStore for MemoryStore {
    async fn create_token(&self, token: &TokenRecord, audit: &AuditEvent) -> Result<(), StoreError> {
        self.with(|s| {
            if token_landed(s, token)? {
                return Ok(());
            }
            check_issuer(s, token)?;
            insert_token(s, token);
            push_audit(s, audit);
            Ok(())
        })
    }

    async fn revoke_token(
        &self,
        tenant: &TenantId,
        token: &Revocable,
        at: Timestamp,
        revoked_grace_seconds: i64,
    ) -> Result<Vec<Revocable>, StoreError> {
        let token = &token.token_id;
        self.with(|s| {
            let t = s.tokens.get_mut(token).filter(|t| &t.tenant_id == tenant).ok_or(StoreError::NotFound)?;
            t.revoked_at.get_or_insert(at);
            let purge = t.purge_second(revoked_grace_seconds);
            s.purge_at.insert(token.clone(), purge);
            let children = s.children.get(token).into_iter().flatten();
            Ok(children
                .map(|c| Revocable { token_id: c.clone(), expires_at: s.tokens.get(c).map(|t| t.grant.expires_at) })
                .collect())
        })
    }

    async fn list_tokens(
        &self,
        tenant: &TenantId,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<TokenRecord>, StoreError> {
        let after = decode_cursor(tenant, cursor)?;
        self.read(|s| {
            let mut tokens: Vec<_> = s.tokens.values().filter(|t| &t.tenant_id == tenant).collect();
            tokens.sort_by_key(|t| (t.created_at, t.token_id.clone()));
            let items = tokens.into_iter().map(|t| (format!("{:020}{}", t.created_at.millis(), t.token_id), t.clone()));
            page(tenant, items, limit, after)
        })
    }

    async fn purge_tokens(&self, now: Timestamp) -> Result<PurgeReport, StoreError> {
        self.with(|s| {
            let now = now.seconds();
            let due: Vec<TokenId> = s.purge_at.iter().filter(|(_, at)| **at <= now).map(|(id, _)| id.clone()).collect();
            for id in &due {
                s.purge_at.remove(id);
                s.notice_at.remove(id);
                if let Some(issuer) = s.tokens.remove(id).and_then(|t| t.issued_by) {
                    if let Some(set) = s.children.get_mut(&issuer) {
                        set.remove(id);
                    }
                }
                s.children.remove(id);
            }
            Ok(PurgeReport { items_read: due.len(), deleted: due.len() })
        })
    }
}
