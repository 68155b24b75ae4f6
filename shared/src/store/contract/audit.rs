//! The contract cases of the audit log.

use super::*;

/// An event retracted is gone, and only it; retracting a gone one is fine.
pub async fn retract_event_removes_that_event_only(store: Subject) {
    let w = world(store).await;
    let keep = w.event(AuditAction::TokenRevoke, T0);
    let gone = w.event(AuditAction::TokenRevoke, T0);
    w.store.append_audit(&keep).await.unwrap();
    w.store.append_audit(&gone).await.unwrap();
    w.store.retract_event(&gone).await.unwrap();
    w.store.retract_event(&gone).await.unwrap();
    let left: Vec<String> = w.audit().await.into_iter().map(|e| e.request_id).collect();
    assert_eq!(left, vec![keep.request_id.clone()]);
}

/// Newest first; events of one millisecond in the reverse of the order they
/// were made; paging by cursor loses and repeats nothing.
pub async fn audit_lists_newest_first_with_cursors(store: Subject) {
    let w = world(store).await;
    let mut made = Vec::new();
    for i in 0..7 {
        // Three events share a millisecond.
        let at = T0.plus_seconds(if i < 3 { 0 } else { i });
        let mut e = w.event(AuditAction::AuthDenied, at);
        e.request_id = format!("r{i}");
        e.outcome = Outcome::Denied;
        e.key_id = Some(KeyId::generate(&w.tenant));
        e.environment = Some(Environment::Staging);
        e.effective_mode = Some(Mode::Mock);
        e.source_ip = Some("10.0.0.1".into());
        e.user_agent = Some("contract".into());
        w.store.append_audit(&e).await.unwrap();
        made.push(e);
    }
    let listed = w.audit().await;
    let ids: Vec<&str> = listed.iter().map(|e| e.request_id.as_str()).collect();
    assert_eq!(ids, ["r6", "r5", "r4", "r3", "r2", "r1", "r0"]);
    let first = listed.iter().find(|e| e.request_id == "r4").unwrap();
    let want = &made[4];
    assert_eq!(
        (first.at, first.action, first.outcome, &first.key_id, first.environment, first.effective_mode),
        (want.at, want.action, want.outcome, &want.key_id, want.environment, want.effective_mode),
        "an event reads back as written"
    );
    assert_eq!((&first.source_ip, &first.user_agent), (&want.source_ip, &want.user_agent));
    let other = TenantId::generate();
    assert!(w.store.list_audit(&other, 10, None).await.unwrap().items.is_empty(), "one tenant's events only");
    let page = w.store.list_audit(&w.tenant, 3, None).await.unwrap();
    let r = w.store.list_audit(&other, 3, page.next.as_deref()).await;
    assert!(matches!(r, Err(StoreError::BadCursor)), "{r:?}");
}

/// Pages stay exact when one partition holds most of the newest events
/// (the DynamoDB store reads a few events a partition, then more only from
/// those that may still hold newer ones).
pub async fn audit_pages_are_exact_when_one_shard_holds_most_events(store: Subject) {
    let w = world(store).await;
    let crowded = crate::store::audit_shard(&crate::ids::new_event_id());
    let mut made = Vec::new();
    for i in 0..40i64 {
        let mut e = w.event(AuditAction::AuthDenied, T0.plus_seconds(i));
        // Most of them in one shard, the rest wherever their ids fall.
        if i % 8 != 0 {
            while crate::store::audit_shard(&e.event_id) != crowded {
                e.event_id = crate::ids::new_event_id();
            }
        }
        e.request_id = format!("r{i:02}");
        w.store.append_audit(&e).await.unwrap();
        made.push(e.request_id.clone());
    }
    made.reverse();
    for page_size in [1, 7, 25, 100] {
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = w.store.list_audit(&w.tenant, page_size, cursor.as_deref()).await.unwrap();
            assert!(page.items.len() <= page_size);
            seen.extend(page.items.into_iter().map(|e| e.request_id));
            match page.next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen, made, "pages of {page_size}");
    }
}
