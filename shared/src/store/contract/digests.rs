//! The contract cases of the audit digests.

use super::*;
use crate::digest::{self, VerifyOptions};
use crate::kms::local::LocalSigner;
use crate::kms::Signer;

fn digest_of(w: &World, shard: u32, seq: u64, through: Timestamp) -> AuditDigest {
    AuditDigest {
        tenant_id: w.tenant.clone(),
        shard,
        seq,
        through,
        statement: format!("{{\"seq\":{seq}}}"),
        signature: vec![1, 2, 3],
        index: vec![seq as u8; 40],
        expires_at: Some(through.plus_seconds(86_400)),
    }
}

/// A digest is written once per shard and seq (a second write is
/// `Conflict::Exists` and changes nothing); the newest of a shard reads
/// back whole; the listing runs newest `through` first across shards,
/// within `from`/`to`, by cursor, one tenant's only.
pub async fn digests_are_written_once_and_listed_newest_first(store: Subject) {
    let w = world(store).await;
    assert_eq!(w.store.last_digest(&w.tenant, 3).await.unwrap(), None);
    let a = digest_of(&w, 3, 0, T0);
    let b = digest_of(&w, 3, 1, T0.plus_seconds(60));
    let c = digest_of(&w, 7, 0, T0.plus_seconds(30));
    for d in [&a, &b, &c] {
        w.store.put_digest(d).await.unwrap();
    }
    let again = AuditDigest { statement: "other".into(), ..b.clone() };
    assert_conflict(w.store.put_digest(&again).await, Conflict::Exists, "the same seq twice");
    assert_eq!(w.store.last_digest(&w.tenant, 3).await.unwrap(), Some(b.clone()), "the newest, as written");
    assert_eq!(w.store.last_digest(&w.tenant, 7).await.unwrap(), Some(c.clone()));
    // The by-time listing may trail a write (DynamoDB's index): it holds
    // all three once settled.
    let mut listed = Vec::new();
    for _ in 0..20 {
        listed.clear();
        let mut cursor: Option<String> = None;
        loop {
            let page = w.store.list_digests(&w.tenant, None, None, 2, cursor.as_deref()).await.unwrap();
            assert!(page.items.len() <= 2);
            listed.extend(page.items);
            cursor = page.next;
            if cursor.is_none() {
                break;
            }
        }
        if listed.len() == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(listed, vec![b.clone(), c.clone(), a.clone()], "newest through first");
    let window = w.store.list_digests(&w.tenant, Some(T0.plus_seconds(10)), Some(T0.plus_seconds(40)), 10, None);
    assert_eq!(window.await.unwrap().items, vec![c.clone()], "through within [from, to]");
    let other = TenantId::generate();
    assert!(w.store.list_digests(&other, None, None, 10, None).await.unwrap().items.is_empty());
    let page = w.store.list_digests(&w.tenant, None, None, 1, None).await.unwrap();
    let r = w.store.list_digests(&other, None, None, 1, page.next.as_deref()).await;
    assert!(matches!(r, Err(StoreError::BadCursor)), "{r:?}");
}

/// A shard's events in `(after, through]`, oldest first, at most `limit`,
/// and only that shard's.
pub async fn shard_events_are_one_shards_range_in_order(store: Subject) {
    let w = world(store).await;
    let mut made = Vec::new();
    for i in 0..40 {
        let e = w.event(AuditAction::TokenCreate, T0.plus_seconds(i));
        w.store.append_audit(&e).await.unwrap();
        made.push(e);
    }
    let shard = audit_shard(&made[0].event_id);
    let want: Vec<&AuditEvent> = made
        .iter()
        .filter(|e| audit_shard(&e.event_id) == shard)
        .filter(|e| e.at > T0 && e.at <= T0.plus_seconds(30))
        .collect();
    let got = w.store.shard_events(&w.tenant, shard, T0.millis(), T0.plus_seconds(30).millis(), 100).await.unwrap();
    let ids = |v: &[&AuditEvent]| v.iter().map(|e| e.event_id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&got.iter().collect::<Vec<_>>()), ids(&want));
    assert!(got.iter().all(|e| e.tenant_id.as_ref() == Some(&w.tenant)));
    let first = w.store.shard_events(&w.tenant, shard, 0, T0.plus_seconds(40).millis(), 1).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].event_id, made[0].event_id, "oldest first");
}

/// A digest run covers every event settled, chains each shard's digests,
/// writes nothing when nothing is new, and verifies against the events it
/// covered; a changed event is named.
pub async fn digest_run_covers_settled_events_and_verifies(store: Subject) {
    let w = world(store).await;
    let signer = LocalSigner::ephemeral().unwrap();
    for i in 0..50 {
        w.store.append_audit(&w.event(AuditAction::TokenCreate, T0.plus_seconds(i))).await.unwrap();
    }
    let now = T0.plus_seconds(49 + digest::SETTLE_SECONDS);
    // With the bootstrap's own events, if it writes any.
    let written = w.audit().await.len();
    let first = digest::run(w.store.as_ref(), &signer, now, 90).await.unwrap();
    assert_eq!(first.events, written, "{first:?}");
    assert!(first.tenants >= 1);
    let again = digest::run(w.store.as_ref(), &signer, now.plus_seconds(1), 90).await.unwrap();
    assert_eq!((again.digests, again.events), (0, 0), "nothing new, nothing written");
    // Events after the settle window wait for the next run.
    let late = w.event(AuditAction::TokenRevoke, now.plus_seconds(-10));
    w.store.append_audit(&late).await.unwrap();
    let next = digest::run(w.store.as_ref(), &signer, now.plus_seconds(60), 90).await.unwrap();
    assert_eq!((next.events, next.digests), (0, 0), "still inside the settle window");
    let next = digest::run(w.store.as_ref(), &signer, now.plus_seconds(digest::SETTLE_SECONDS), 90).await.unwrap();
    assert_eq!((next.events, next.digests), (1, 1));

    let check_now = now.plus_seconds(digest::SETTLE_SECONDS + 1);
    let verify = |events: Vec<AuditEvent>, digests: Vec<AuditDigest>, key: Vec<u8>| {
        let published: Vec<digest::Published> = digests
            .into_iter()
            .map(|d| digest::Published { statement: d.statement, signature: d.signature, index: d.index })
            .collect();
        digest::verify(
            &events,
            &published,
            &key,
            VerifyOptions { now: check_now, from_start: true, max_age_seconds: Some(86_400) },
        )
    };
    let events = w.audit().await;
    let mut digests = Vec::new();
    for _ in 0..40 {
        digests.clear();
        let mut cursor: Option<String> = None;
        loop {
            let page = w.store.list_digests(&w.tenant, None, None, 10, cursor.as_deref()).await.unwrap();
            digests.extend(page.items);
            cursor = page.next;
            if cursor.is_none() {
                break;
            }
        }
        if digests.len() == first.digests + 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let key = signer.public_key().await.unwrap();
    let clean = verify(events.clone(), digests.clone(), key.clone());
    assert!(clean.findings.is_empty(), "{:#?}", clean.findings);
    assert_eq!(clean.events_checked, written + 1);

    let mut changed = events.clone();
    let victim = changed.iter_mut().find(|e| e.event_id == late.event_id).unwrap();
    victim.source_ip = Some("203.0.113.7".into());
    let found = verify(changed, digests, key);
    assert_eq!(found.findings.len(), 1, "{:#?}", found.findings);
    let f = &found.findings[0];
    assert_eq!(
        (f.kind, f.shard, f.at, f.event_id.as_deref()),
        (digest::FindingKind::Changed, audit_shard(&late.event_id), late.at, Some(late.event_id.as_str()))
    );
}
