//! The contract cases of the usage counters.

use super::*;

/// Batches of the audit stream add exactly what they hold: a redelivery
/// (the same batch id, perhaps longer) adds only what did not land; a read
/// taken back counts −1; a key gone keeps only its daily counts.
pub async fn apply_usage_is_exact_under_redelivery(store: Subject) {
    use crate::usage::{CountedRead, DailyCount, Day, SeqNo, Subject as Of, UsageBatch};
    let w = world(store).await;
    let key = w.key("k", T0);
    let gone = w.key("gone", T0);
    for k in [&key, &gone] {
        w.store.create_key(k, &w.event(AuditAction::KeyCreate, T0)).await.unwrap();
    }
    let day2 = T0.plus_seconds(86_400);
    let read = |seq: u32, k: &KeyRecord, at: Timestamp, delta: i64| CountedRead {
        seq: SeqNo(format!("{seq:021}")),
        tenant_id: w.tenant.clone(),
        key_id: k.key_id.clone(),
        token_id: w.root.token_id.clone(),
        at,
        delta,
    };
    let first = vec![read(1, &key, T0, 1), read(2, &key, T0, 1), read(3, &gone, T0, 1)];
    let batch = UsageBatch {
        id: format!("b-{}", crate::ids::random_base62(8)),
        last_seq: SeqNo(format!("{:021}", 4)),
        reads: first.clone(),
    };
    w.store.apply_usage(&batch, T0).await.unwrap();
    w.store.apply_usage(&batch, T0).await.unwrap();
    let k = w.get_key(&key.key_id).await.unwrap();
    assert_eq!((k.retrievals, k.last_used_at), (2, Some(T0)), "a redelivered batch counts once");
    // Redelivered, longer: a read the next day, one taken back, and the
    // other key deleted meanwhile.
    w.store.delete_key(&w.tenant, &gone.key_id, &w.event(AuditAction::KeyDelete, T0)).await.unwrap();
    let mut longer = first;
    longer.extend([read(5, &key, day2, 1), read(6, &key, T0, -1), read(7, &gone, day2, 1)]);
    let again = UsageBatch { last_seq: SeqNo(format!("{:021}", 8)), reads: longer, ..batch.clone() };
    w.store.apply_usage(&again, day2).await.unwrap();
    w.store.apply_usage(&again, day2).await.unwrap();
    let k = w.get_key(&key.key_id).await.unwrap();
    assert_eq!((k.retrievals, k.last_used_at), (2, Some(day2)), "+1 and −1 once; a take-back never moves lastUsedAt");
    let t = w.token(&w.root.token_id).await.unwrap();
    assert_eq!((t.uses, t.last_used_at), (4, Some(day2)), "the token counts every read of both keys");
    assert!(w.get_key(&gone.key_id).await.is_none(), "no stub of the deleted key");
    let mut daily = w.store.daily_usage(&w.tenant, Day::of(T0), Day::of(day2)).await.unwrap();
    daily.sort_by(|a, b| (a.day, &a.subject).cmp(&(b.day, &b.subject)));
    let d = |at: Timestamp, of: Of, reads: u64| DailyCount { day: Day::of(at), subject: of, reads };
    let (kk, gk, tk) = (Of::Key(key.key_id.clone()), Of::Key(gone.key_id.clone()), Of::Token(w.root.token_id.clone()));
    let mut want = vec![
        d(T0, kk.clone(), 1),
        d(T0, gk.clone(), 1),
        d(T0, tk.clone(), 2),
        d(day2, kk, 1),
        d(day2, gk, 1),
        d(day2, tk, 2),
    ];
    want.sort_by(|a, b| (a.day, &a.subject).cmp(&(b.day, &b.subject)));
    assert_eq!(daily, want, "daily counts, the deleted key's included");
    let only_day2 = w.store.daily_usage(&w.tenant, Day::of(day2), Day::of(day2)).await.unwrap();
    assert_eq!(only_day2.len(), 3, "the range bounds the days");
    let other = TenantId::generate();
    assert!(
        w.store.daily_usage(&other, Day::of(T0), Day::of(day2)).await.unwrap().is_empty(),
        "another tenant sees none"
    );
}
