//! The contract cases of rate limits and quotas.

use super::*;

pub async fn count_request_stops_at_the_limit_per_token_and_minute(store: Subject) {
    let w = world(store).await;
    let other = w.child(&w.root, T0, 3600);
    let minute = T0.seconds() / 60;
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(w.store.count_request(&w.root.token_id, minute, 3).await.unwrap());
    }
    use RateCount::*;
    assert_eq!(got, [Within { count: 1 }, Within { count: 2 }, Within { count: 3 }, FirstOver, Over]);
    // Another minute, another token: counted apart.
    assert_eq!(w.store.count_request(&w.root.token_id, minute + 1, 3).await.unwrap(), Within { count: 1 });
    assert_eq!(w.store.count_request(&other.token_id, minute, 3).await.unwrap(), Within { count: 1 });
    // A limit of one.
    assert_eq!(w.store.count_request(&other.token_id, minute + 7, 1).await.unwrap(), Within { count: 1 });
    assert_eq!(w.store.count_request(&other.token_id, minute + 7, 1).await.unwrap(), FirstOver);
    assert!(w.actions().await.is_empty(), "counting writes no event");
}

pub async fn count_request_is_exact_under_concurrency(store: Subject) {
    let w = world(store).await;
    let minute = T0.seconds() / 60;
    let calls = (0..40).map(|_| w.store.count_request(&w.root.token_id, minute, 10));
    let got: Vec<RateCount> = futures::future::join_all(calls).await.into_iter().map(Result::unwrap).collect();
    let mut within: Vec<u32> =
        got.iter().filter_map(|c| if let RateCount::Within { count } = c { Some(*count) } else { None }).collect();
    within.sort_unstable();
    assert_eq!(within, (1..=10).collect::<Vec<_>>());
    assert_eq!(got.iter().filter(|c| **c == RateCount::FirstOver).count(), 1);
    assert_eq!(got.iter().filter(|c| **c == RateCount::Over).count(), 29);
}

pub async fn quota_is_set_on_the_tenant_and_removed(store: Subject) {
    let w = world(store).await;
    let tenant = || async { w.store.fetch(&Fetch { tenant: Some(w.tenant.clone()), ..Fetch::default() }).await };
    assert_eq!(tenant().await.unwrap().tenant.unwrap().reads_per_month, None);
    w.store.set_quota(&w.tenant, Some(1_000)).await.unwrap();
    let t = tenant().await.unwrap().tenant.unwrap();
    assert_eq!(t.reads_per_month, Some(1_000));
    assert_eq!(t.modes, TenantModes::default(), "the rest of the tenant stays");
    w.store.set_quota(&w.tenant, None).await.unwrap();
    assert_eq!(tenant().await.unwrap().tenant.unwrap().reads_per_month, None);
    let r = w.store.set_quota(&TenantId::generate(), Some(1)).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    assert!(w.actions().await.is_empty(), "an operator change writes no event");
}

pub async fn quota_counts_stop_at_the_quota_per_tenant_and_month(store: Subject) {
    let w = world(store).await;
    let month = Month::of(T0);
    assert_eq!(w.store.quota_used(&w.tenant, month).await.unwrap(), 0);
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(w.store.count_quota_read(&w.tenant, month, 3).await.unwrap());
    }
    assert_eq!(got, [true, true, true, false]);
    assert_eq!(w.store.quota_used(&w.tenant, month).await.unwrap(), 3, "a refusal counts nothing");
    // A raised quota admits more; another month and another tenant start at zero.
    assert!(w.store.count_quota_read(&w.tenant, month, 4).await.unwrap());
    assert!(w.store.count_quota_read(&w.tenant, month.next(), 1).await.unwrap());
    let other = TenantId::generate();
    assert!(w.store.count_quota_read(&other, month, 1).await.unwrap());
    assert_eq!(w.store.quota_used(&w.tenant, month).await.unwrap(), 4);
    assert_eq!(w.store.quota_used(&w.tenant, month.next()).await.unwrap(), 1);
    // Taken back, never below zero.
    w.store.uncount_quota_read(&w.tenant, month.next()).await.unwrap();
    w.store.uncount_quota_read(&w.tenant, month.next()).await.unwrap();
    assert_eq!(w.store.quota_used(&w.tenant, month.next()).await.unwrap(), 0);
    w.store.uncount_quota_read(&w.tenant, month.next().next()).await.unwrap();
    // Exact under concurrency.
    let calls = (0..30).map(|_| w.store.count_quota_read(&other, month.next(), 12));
    let got: Vec<bool> = futures::future::join_all(calls).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(got.iter().filter(|c| **c).count(), 12);
    assert_eq!(w.store.quota_used(&other, month.next()).await.unwrap(), 12);
}
