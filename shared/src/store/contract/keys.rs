//! The contract cases of keys and their versions.

use super::*;

pub async fn create_key_writes_the_key_and_one_event(store: Subject) {
    let w = world(store).await;
    let key = w.key("k", T0);
    w.store.create_key(&key, &w.event(AuditAction::KeyCreate, T0)).await.unwrap();
    assert_eq!(w.get_key(&key.key_id).await.as_ref(), Some(&key), "reads back as written");
    // A retry of the same write (same ciphertext) is recognised, and writes
    // no second event.
    w.store.create_key(&key, &w.event(AuditAction::KeyCreate, T0)).await.unwrap();
    assert_eq!(w.actions().await, vec![AuditAction::KeyCreate]);
}

pub async fn create_key_never_overwrites(store: Subject) {
    let w = world(store).await;
    let key = w.key("k", T0);
    w.store.create_key(&key, &w.event(AuditAction::KeyCreate, T0)).await.unwrap();
    let other = KeyRecord { name: "other".into(), ..w.key("k", T0) };
    let other = KeyRecord { key_id: key.key_id.clone(), ..other };
    assert_conflict(w.store.create_key(&other, &w.event(AuditAction::KeyCreate, T0)).await, Conflict::Exists, "key id");
    assert_eq!(w.get_key(&key.key_id).await.map(|k| k.name), Some("k".into()), "the first write stays");
    assert_eq!(w.actions().await, vec![AuditAction::KeyCreate], "no event for the refused write");
}

pub async fn update_key_changes_value_or_metadata(store: Subject) {
    let w = world(store).await;
    let key = w.key("k", T0);
    w.store.create_key(&key, &w.event(AuditAction::KeyCreate, T0)).await.unwrap();
    let t1 = T0.plus_seconds(5);
    let v2 = version(2, t1);
    let change = key.rotation(v2.clone(), 0, t1);
    w.store.update_key(&w.tenant, &key.key_id, &change, t1, &w.event(AuditAction::KeyRotate, t1)).await.unwrap();
    let got = w.get_key(&key.key_id).await.unwrap();
    assert_eq!((&got.current, got.previous.as_ref(), got.updated_at), (&v2, None, t1));
    assert_eq!(got.name, "k", "a value change keeps the metadata");
    let t2 = T0.plus_seconds(9);
    let overrides = ModeOverrides::from([(Environment::Production, Mode::Mock)]);
    let change = KeyChange::Meta { name: "renamed".into(), mode_overrides: overrides.clone() };
    w.store.update_key(&w.tenant, &key.key_id, &change, t2, &w.event(AuditAction::KeyUpdate, t2)).await.unwrap();
    let got = w.get_key(&key.key_id).await.unwrap();
    assert_eq!((got.name.as_str(), &got.mode_overrides, got.updated_at), ("renamed", &overrides, t2));
    assert_eq!(got.current, v2, "a metadata change keeps the value");
    assert_eq!(w.actions().await, vec![AuditAction::KeyUpdate, AuditAction::KeyRotate, AuditAction::KeyCreate]);
}

pub async fn update_key_elsewhere_is_not_found_and_writes_nothing(store: Subject) {
    let w = world(store).await;
    let key = w.key("k", T0);
    w.store.create_key(&key, &w.event(AuditAction::KeyCreate, T0)).await.unwrap();
    let change = KeyChange::Meta { name: "stolen".into(), mode_overrides: ModeOverrides::new() };
    let other = TenantId::generate();
    let r = w.store.update_key(&other, &key.key_id, &change, T0, &event_in(&other, AuditAction::KeyUpdate, T0)).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "another tenant's key: {r:?}");
    let missing = KeyId::generate(&w.tenant);
    let r = w.store.update_key(&w.tenant, &missing, &change, T0, &w.event(AuditAction::KeyUpdate, T0)).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "a missing key: {r:?}");
    assert_eq!(w.get_key(&key.key_id).await.map(|k| k.name), Some("k".into()));
    assert_eq!(w.actions().await, vec![AuditAction::KeyCreate], "no event for a refused update");
    assert!(w.store.list_audit(&other, 10, None).await.unwrap().items.is_empty());
    assert!(w.get_key(&missing).await.is_none(), "an update never creates a key");
}

pub async fn delete_key_removes_it_once(store: Subject) {
    let w = world(store).await;
    let key = w.key("k", T0);
    w.store.create_key(&key, &w.event(AuditAction::KeyCreate, T0)).await.unwrap();
    let other = TenantId::generate();
    let r = w.store.delete_key(&other, &key.key_id, &event_in(&other, AuditAction::KeyDelete, T0)).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "another tenant's key: {r:?}");
    assert!(w.get_key(&key.key_id).await.is_some());
    w.store.delete_key(&w.tenant, &key.key_id, &w.event(AuditAction::KeyDelete, T0)).await.unwrap();
    assert!(w.get_key(&key.key_id).await.is_none());
    // Gone already (a retry, or a concurrent delete): done, and its
    // deletion already wrote the event.
    w.store.delete_key(&w.tenant, &key.key_id, &w.event(AuditAction::KeyDelete, T0)).await.unwrap();
    assert_eq!(w.actions().await, vec![AuditAction::KeyDelete, AuditAction::KeyCreate]);
}

pub async fn list_keys_pages_oldest_first_within_the_tenant(store: Subject) {
    let w = world(store).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let key = w.key(&format!("k{i}"), T0.plus_seconds(i));
        w.store.create_key(&key, &w.event(AuditAction::KeyCreate, T0)).await.unwrap();
        ids.push(key.key_id);
    }
    let (other, _) = {
        let b = bootstrap::create_tenant(w.store.as_ref(), "other", T0).await.unwrap();
        (b.tenant.tenant_id, b.root)
    };
    let stranger = KeyRecord { tenant_id: other.clone(), key_id: KeyId::generate(&other), ..w.key("x", T0) };
    w.store.create_key(&stranger, &event_in(&other, AuditAction::KeyCreate, T0)).await.unwrap();
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = w.store.list_keys(&w.tenant, 2, cursor.as_deref()).await.unwrap();
        assert!(page.items.len() <= 2, "a page holds at most the limit");
        seen.extend(page.items.into_iter().map(|k| k.key_id));
        match page.next {
            Some(c) => {
                let r = w.store.list_keys(&other, 2, Some(&c)).await;
                assert!(matches!(r, Err(StoreError::BadCursor)), "another tenant's cursor: {r:?}");
                cursor = Some(c);
            }
            None => break,
        }
    }
    assert_eq!(seen, ids, "every key once, oldest first, none of another tenant");
    for bad in ["", "not-a-cursor", "eyJ0ZW5hbnRJZCI6IlN4In0"] {
        let r = w.store.list_keys(&w.tenant, 2, Some(bad)).await;
        assert!(matches!(r, Err(StoreError::BadCursor)), "{bad:?}: {r:?}");
    }
}

/// A new current version keeps the old one as previous for its window; a
/// pending one waits beside it; a promotion makes it current. Each write
/// lands only on the versions it was computed from, with its event.
pub async fn versions_rotate_stage_and_promote(store: Subject) {
    let w = world(store).await;
    let key = w.key("k", T0);
    w.store.create_key(&key, &w.event(AuditAction::KeyCreate, T0)).await.unwrap();
    // v2 current, v1 previous for an hour.
    let t1 = T0.plus_seconds(10);
    let rotate = key.rotation(version(key.next_version(), t1), 3600, t1);
    w.store.update_key(&w.tenant, &key.key_id, &rotate, t1, &w.event(AuditAction::KeyRotate, t1)).await.unwrap();
    let got = w.get_key(&key.key_id).await.unwrap();
    assert_eq!((got.current.number, got.last_version), (2, 2));
    let previous = got.previous.clone().expect("v1 kept as previous");
    assert_eq!(
        (previous.number, previous.retires_at, &previous.envelope),
        (1, Some(t1.plus_seconds(3600)), &key.current.envelope)
    );
    // The same change again was computed from versions that are gone: a
    // conflict, with no event; a retry of the change that landed is done.
    let stale = key.rotation(version(2, t1), 0, t1);
    let r = w.store.update_key(&w.tenant, &key.key_id, &stale, t1, &w.event(AuditAction::KeyRotate, t1)).await;
    assert_conflict(r, Conflict::Changed, "a change from stale versions");
    w.store.update_key(&w.tenant, &key.key_id, &rotate, t1, &w.event(AuditAction::KeyRotate, t1)).await.unwrap();
    assert_eq!(w.get_key(&key.key_id).await.unwrap(), got, "a retry of a landed change changes nothing");
    // v3 pending, then v4 pending: v3 is destroyed; current and previous stay.
    let t2 = T0.plus_seconds(20);
    let stage3 = got.staging(version(got.next_version(), t2));
    w.store.update_key(&w.tenant, &key.key_id, &stage3, t2, &w.event(AuditAction::KeyRotate, t2)).await.unwrap();
    let got = w.get_key(&key.key_id).await.unwrap();
    assert_eq!(got.pending.as_ref().map(|v| v.number), Some(3));
    let stage4 = got.staging(version(got.next_version(), t2));
    w.store.update_key(&w.tenant, &key.key_id, &stage4, t2, &w.event(AuditAction::KeyRotate, t2)).await.unwrap();
    let got = w.get_key(&key.key_id).await.unwrap();
    assert_eq!(
        (
            got.current.number,
            got.previous.as_ref().map(|v| v.number),
            got.pending.as_ref().map(|v| v.number),
            got.last_version
        ),
        (2, Some(1), Some(4), 4)
    );
    // Promote v4 with no window: v2 is destroyed at once, and so is v1.
    let t3 = T0.plus_seconds(30);
    let promote = got.promotion(0, t3).expect("a pending version");
    w.store.update_key(&w.tenant, &key.key_id, &promote, t3, &w.event(AuditAction::KeyPromote, t3)).await.unwrap();
    let got = w.get_key(&key.key_id).await.unwrap();
    assert_eq!(
        (got.current.number, got.previous.is_none(), got.pending.is_none(), got.last_version),
        (4, true, true, 4)
    );
    assert_eq!(got.current.envelope, stage4_envelope(&stage4), "the pending envelope, now current");
    assert!(got.promotion(0, t3).is_none(), "nothing left to promote");
    assert_eq!(got.next_version(), 5, "numbers are never reused");
    let actions = w.actions().await;
    assert_eq!(actions.iter().filter(|a| **a == AuditAction::KeyRotate).count(), 3, "{actions:?}");
    assert_eq!(actions[0], AuditAction::KeyPromote);
    // Another tenant's key is not found.
    let other = TenantId::generate();
    let r = w
        .store
        .update_key(
            &other,
            &key.key_id,
            &got.staging(version(5, t3)),
            t3,
            &event_in(&other, AuditAction::KeyRotate, t3),
        )
        .await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
}

fn stage4_envelope(change: &KeyChange) -> Envelope {
    match change {
        KeyChange::Versions { pending: Slot::Set(v), .. } => v.envelope.clone(),
        _ => unreachable!(),
    }
}

/// Cleanup destroys a previous version once its window has closed (whole
/// seconds, never before), and nothing else.
pub async fn retire_versions_destroys_due_previous_versions_only(store: Subject) {
    let w = world(store).await;
    let (short, long) = (w.key("short", T0), w.key("long", T0));
    for (k, window) in [(&short, 10), (&long, 100)] {
        w.store.create_key(k, &w.event(AuditAction::KeyCreate, T0)).await.unwrap();
        let change = k.rotation(version(2, T0), window, T0);
        w.store.update_key(&w.tenant, &k.key_id, &change, T0, &w.event(AuditAction::KeyRotate, T0)).await.unwrap();
    }
    let report = w.store.retire_versions(T0.plus_millis(9_999)).await.unwrap();
    assert_eq!((report.items_read, report.deleted), (0, 0), "not yet due");
    let got = w.get_key(&short.key_id).await.unwrap();
    assert_eq!(
        got.versions(T0.plus_seconds(10)).iter().map(|(v, s)| (v.number, *s)).collect::<Vec<_>>(),
        vec![(2, Stage::Current), (1, Stage::Retired)]
    );
    let report = w.store.retire_versions(T0.plus_seconds(10)).await.unwrap();
    assert_eq!((report.items_read, report.deleted), (1, 1));
    let got = w.get_key(&short.key_id).await.unwrap();
    assert!(got.previous.is_none(), "destroyed");
    assert_eq!(got.current.number, 2, "the current version stays");
    assert!(w.get_key(&long.key_id).await.unwrap().previous.is_some(), "a window still open");
    let report = w.store.retire_versions(T0.plus_seconds(10)).await.unwrap();
    assert_eq!((report.items_read, report.deleted), (0, 0), "nothing twice");
    let report = w.store.retire_versions(T0.plus_seconds(100)).await.unwrap();
    assert_eq!(report.deleted, 1);
}
