//! The contract cases of expiry notices.

use super::*;

pub async fn expiry_notices_are_claimed_once_seven_days_before_expiry(store: Subject) {
    let w = world(store).await;
    let day = 86_400;
    // Lives 30 days: due at day 23. Lives 3 days: never noticed.
    let long = w.child(&w.root, T0, 30 * day);
    let short = w.child(&w.root, T0, 3 * day);
    let revoked = w.child(&w.root, T0, 30 * day);
    for t in [&long, &short, &revoked] {
        w.store.create_token(t, &w.event(AuditAction::TokenCreate, T0)).await.unwrap();
    }
    assert_eq!(long.notice_second(), Some(T0.seconds() + 23 * day));
    assert_eq!(short.notice_second(), None);
    w.revoke(&revoked.token_id, T0.plus_seconds(day), 30 * day).await.unwrap();
    let at = |d: i64| T0.plus_seconds(d * day);
    assert!(w.store.claim_expiry_notices(at(22)).await.unwrap().is_empty(), "not due yet");
    let got = w.store.claim_expiry_notices(at(23)).await.unwrap();
    assert_eq!(got.len(), 1, "the revoked token is not noticed, the short one never: {got:?}");
    assert_eq!(
        got[0],
        ExpiryNotice {
            token_id: long.token_id.clone(),
            name: long.name.clone(),
            tenant_id: w.tenant.clone(),
            expires_at: long.grant.expires_at
        }
    );
    assert!(w.store.claim_expiry_notices(at(24)).await.unwrap().is_empty(), "once, not daily");
    // Put back (its send failed): claimed again on the next run, once.
    w.store.release_expiry_notice(&long.token_id, long.notice_second().unwrap()).await.unwrap();
    assert_eq!(w.store.claim_expiry_notices(at(24)).await.unwrap().len(), 1);
    assert!(w.store.claim_expiry_notices(at(25)).await.unwrap().is_empty());
    // The root token (a year) is due 7 days before its expiry.
    let root_due = Timestamp::from_millis(w.root.notice_second().unwrap() * 1000);
    let got = w.store.claim_expiry_notices(root_due).await.unwrap();
    assert_eq!(got.iter().map(|n| &n.token_id).collect::<Vec<_>>(), [&w.root.token_id]);
    assert!(w.actions().await.iter().all(|a| *a == AuditAction::TokenCreate), "notices write no event");
}
