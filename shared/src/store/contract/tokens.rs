//! The contract cases of tokens, the token tree, purging.

use super::*;

pub async fn create_token_records_the_child_for_its_issuer(store: Subject) {
    let w = world(store).await;
    let child = w.child(&w.root, T0, 3600);
    w.store.create_token(&child, &w.event(AuditAction::TokenCreate, T0)).await.unwrap();
    assert_eq!(w.token(&child.token_id).await.as_ref(), Some(&child), "reads back as written");
    // A retry of the same write (same verifier) is recognised.
    w.store.create_token(&child, &w.event(AuditAction::TokenCreate, T0)).await.unwrap();
    assert_eq!(w.actions().await, vec![AuditAction::TokenCreate], "one event");
    let children = w.revoke_known(&w.root, T0, 60).await.unwrap();
    let expected = Revocable { token_id: child.token_id.clone(), expires_at: Some(child.grant.expires_at) };
    assert_eq!(children, vec![expected], "revocation finds the child, with its expiry");
}

pub async fn create_token_never_overwrites(store: Subject) {
    let w = world(store).await;
    let child = w.child(&w.root, T0, 3600);
    w.store.create_token(&child, &w.event(AuditAction::TokenCreate, T0)).await.unwrap();
    let impostor = TokenRecord { token_id: child.token_id.clone(), ..w.child(&w.root, T0, 60) };
    let r = w.store.create_token(&impostor, &w.event(AuditAction::TokenCreate, T0)).await;
    assert_conflict(r, Conflict::Exists, "token id");
    assert_eq!(w.token(&child.token_id).await.map(|t| t.verifier), Some(child.verifier));
    assert_eq!(w.actions().await, vec![AuditAction::TokenCreate]);
}

/// The issuer must be live (the live-token rule) when the child is created:
/// revoked, expired and missing issuers are refused alike.
pub async fn create_token_needs_a_live_issuer(store: Subject) {
    let w = world(store).await;
    let revoked = w.child(&w.root, T0, 3600);
    let short = w.child(&w.root, T0, 10);
    for t in [&revoked, &short] {
        w.store.create_token(t, &w.event(AuditAction::TokenCreate, T0)).await.unwrap();
    }
    w.revoke_known(&revoked, T0, 60).await.unwrap();
    let missing = w.child(&w.root, T0, 3600);
    let later = T0.plus_seconds(10);
    let cases = [
        ("revoked issuer", w.child(&revoked, T0, 60)),
        ("expired issuer", w.child(&short, later, 60)),
        ("missing issuer", w.child(&missing, T0, 60)),
    ];
    for (what, orphan) in &cases {
        let r = w.store.create_token(orphan, &w.event(AuditAction::TokenCreate, orphan.created_at)).await;
        assert_conflict(r, Conflict::IssuerNotLive, what);
        assert!(w.token(&orphan.token_id).await.is_none(), "{what}: nothing written");
    }
    assert_eq!(w.actions().await, vec![AuditAction::TokenCreate; 2], "no event for a refused issue");
}

pub async fn revoke_keeps_the_first_revocation(store: Subject) {
    let w = world(store).await;
    let child = w.child(&w.root, T0, 3600);
    w.store.create_token(&child, &w.event(AuditAction::TokenCreate, T0)).await.unwrap();
    let first = T0.plus_seconds(1);
    assert!(w.revoke_known(&child, first, 60).await.unwrap().is_empty());
    w.revoke(&child.token_id, T0.plus_seconds(30), 60).await.unwrap();
    w.revoke_known(&child, T0.plus_seconds(31), 60).await.unwrap();
    assert_eq!(w.token(&child.token_id).await.unwrap().revoked_at, Some(first));
    let other = TenantId::generate();
    let root = Revocable { token_id: w.root.token_id.clone(), expires_at: Some(w.root.grant.expires_at) };
    let r = w.store.revoke_token(&other, &root, T0, 60).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "another tenant's token: {r:?}");
    assert!(w.token(&w.root.token_id).await.unwrap().revoked_at.is_none());
    let missing = ParsedToken::generate().id().clone();
    let r = w.revoke(&missing, T0, 60).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "a missing token: {r:?}");
    assert!(w.token(&missing).await.is_none(), "a revocation never creates a token");
}

/// Purge times follow `TokenRecord::purge_second`: expiry, or the grace
/// after the first revocation, whichever comes first, in whole seconds
/// rounded up; a second revocation never moves them.
pub async fn purge_follows_the_purge_rule(store: Subject) {
    let w = world(store).await;
    let grace = 100;
    // Expires at T0 + 1000.5 s, never revoked.
    let plain = TokenRecord {
        grant: Grant { expires_at: T0.plus_seconds(1000).plus_millis(500), ..w.child(&w.root, T0, 0).grant },
        ..w.child(&w.root, T0, 0)
    };
    // Revoked at T0 + 10 s: purged at T0 + 110 s; revoked again later.
    let revoked = w.child(&w.root, T0, 1000);
    // Expire at T0 + 50 s, revoked at T0 + 10 s: purged at expiry, whether
    // the revocation is given the expiry or not.
    let expiring = w.child(&w.root, T0, 50);
    let expiring_unknown = w.child(&w.root, T0, 50);
    for t in [&plain, &revoked, &expiring, &expiring_unknown] {
        w.store.create_token(t, &w.event(AuditAction::TokenCreate, T0)).await.unwrap();
    }
    w.revoke(&revoked.token_id, T0.plus_seconds(10), grace).await.unwrap();
    w.revoke_known(&expiring, T0.plus_seconds(10), grace).await.unwrap();
    w.revoke(&expiring_unknown.token_id, T0.plus_seconds(10), grace).await.unwrap();
    w.revoke_known(&revoked, T0.plus_seconds(90), grace).await.unwrap();
    let due = [
        (T0.plus_seconds(49), vec![]),
        (T0.plus_seconds(50), vec![&expiring, &expiring_unknown]),
        (T0.plus_seconds(109), vec![]),
        (T0.plus_seconds(110), vec![&revoked]),
        (T0.plus_seconds(1000).plus_millis(500), vec![]),
        (T0.plus_seconds(1001), vec![&plain]),
    ];
    for (now, gone) in due {
        let report = w.store.purge_tokens(now).await.unwrap();
        assert_eq!(report.deleted, gone.len(), "at {now:?}");
        for t in gone {
            assert!(w.token(&t.token_id).await.is_none(), "purged at {now:?}");
        }
    }
    assert!(w.token(&w.root.token_id).await.is_some(), "the root token stays");
}

/// Nothing an issuer keeps grows with history: a purged child is no longer
/// among its issuer's children, and the issuer keeps issuing.
pub async fn a_purged_child_leaves_its_issuer(store: Subject) {
    let w = world(store).await;
    let issuer = w.child(&w.root, T0, 100_000);
    w.store.create_token(&issuer, &w.event(AuditAction::TokenCreate, T0)).await.unwrap();
    let mut live = Vec::new();
    for round in 0..3 {
        let at = T0.plus_seconds(round * 100);
        for _ in 0..4 {
            let short = w.child(&issuer, at, 60);
            w.store.create_token(&short, &w.event(AuditAction::TokenCreate, at)).await.unwrap();
        }
        let kept = w.child(&issuer, at, 10_000);
        w.store.create_token(&kept, &w.event(AuditAction::TokenCreate, at)).await.unwrap();
        live.push(kept.token_id);
        let report = w.store.purge_tokens(at.plus_seconds(60)).await.unwrap();
        assert_eq!(report.deleted, 4, "round {round}: the short-lived children");
    }
    let mut children = w.revoke(&issuer.token_id, T0.plus_seconds(400), 60).await.unwrap();
    children.sort();
    live.sort();
    assert_eq!(children, live, "only the children still stored");
}

pub async fn list_tokens_pages_oldest_first(store: Subject) {
    let w = world(store).await;
    let mut ids = vec![w.root.token_id.clone()];
    for i in 1..=4 {
        let t = w.child(&w.root, T0.plus_seconds(i), 3600);
        w.store.create_token(&t, &w.event(AuditAction::TokenCreate, t.created_at)).await.unwrap();
        ids.push(t.token_id);
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = w.store.list_tokens(&w.tenant, 2, cursor.as_deref()).await.unwrap();
        seen.extend(page.items.into_iter().map(|t| t.token_id));
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let r = w.store.list_tokens(&TenantId::generate(), 2, cursor.as_deref().or(Some("AAAA"))).await;
    assert!(matches!(r, Err(StoreError::BadCursor)), "{r:?}");
}
