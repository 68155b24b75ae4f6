//! Sign-in's passing state in memory ([`SignInStore`]): not saved to the
//! data file (a sign-in in flight outlives no restart worth keeping).

use super::*;
use crate::secret::Redacted;
use crate::store::SignInStore;

/// Pending items kept before the expired ones are dropped.
const PENDING_KEPT: usize = 4096;

#[async_trait]
impl SignInStore for MemoryStore {
    async fn put_pending(&self, key: &str, data: &Redacted<String>, expires_at: Timestamp) -> Result<(), StoreError> {
        let mut pending =
            self.pending.lock().map_err(|_| StoreError::internal(FaultKind::Local, "store lock poisoned"))?;
        if pending.len() >= PENDING_KEPT {
            let oldest = pending.values().map(|(_, at)| *at).min();
            pending.retain(|_, (_, at)| Some(*at) != oldest);
        }
        if pending.contains_key(key) {
            return Err(StoreError::Conflict(Conflict::Exists));
        }
        pending.insert(key.to_owned(), (data.clone(), expires_at));
        Ok(())
    }

    async fn take_pending(&self, key: &str, now: Timestamp) -> Result<Option<Redacted<String>>, StoreError> {
        let mut pending =
            self.pending.lock().map_err(|_| StoreError::internal(FaultKind::Local, "store lock poisoned"))?;
        Ok(pending.remove(key).filter(|(_, at)| *at > now).map(|(data, _)| data))
    }
}
