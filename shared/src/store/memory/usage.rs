//! The counters in memory ([`UsageStore`]): batches applied exactly, as in DynamoDB.

use super::*;

#[async_trait]
impl UsageStore for MemoryStore {
    async fn apply_usage(&self, batch: &UsageBatch, _now: Timestamp) -> Result<(), StoreError> {
        self.with(|s| {
            let done = s.batches.get(&batch.id).cloned();
            let fresh: Vec<_> =
                batch.reads.iter().filter(|r| done.as_ref().is_none_or(|d| r.seq > *d)).cloned().collect();
            let mut tally = Tally::default();
            for r in &fresh {
                tally.add(r);
            }
            add_tally(s, &tally);
            s.batches.insert(batch.id.clone(), batch.last_seq.clone());
            Ok(())
        })
    }

    async fn daily_usage(&self, tenant: &TenantId, from: Day, to: Day) -> Result<Vec<DailyCount>, StoreError> {
        self.read(|s| {
            s.daily
                .iter()
                .filter(|((t, day, _), n)| t == tenant && (from..=to).contains(day) && **n > 0)
                .map(|((_, day, subject), n)| DailyCount { day: *day, subject: subject.clone(), reads: *n })
                .collect()
        })
    }
}
