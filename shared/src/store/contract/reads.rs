//! The contract cases of the read path (fetch, reads recorded, planned reads).

use super::*;

pub async fn fetch_answers_only_what_exists(store: Subject) {
    let w = world(store).await;
    let missing_token = ParsedToken::generate().id().clone();
    let missing_key = KeyId::generate(&w.tenant);
    let got = w
        .store
        .fetch(&Fetch {
            tokens: vec![w.root.token_id.clone(), missing_token.clone(), w.root.token_id.clone()],
            keys: vec![missing_key],
            tenant: Some(w.tenant.clone()),
            ..Fetch::default()
        })
        .await
        .unwrap();
    assert_eq!(got.tokens.len(), 1);
    assert_eq!(got.tokens[&w.root.token_id], w.root, "a token reads back as written");
    assert!(got.keys.is_empty());
    assert_eq!(got.tenant.map(|t| t.modes), Some(TenantModes::default()));
    let none = w.store.fetch(&Fetch { tenant: Some(TenantId::generate()), ..Fetch::default() }).await.unwrap();
    assert!(none.tenant.is_none());
}

pub async fn record_read_counts_on_the_key_and_the_token(store: Subject) {
    let w = world(store).await;
    let key = w.key("k", T0);
    w.store.create_key(&key, &w.event(AuditAction::KeyCreate, T0)).await.unwrap();
    let t1 = T0.plus_seconds(3);
    for _ in 0..3 {
        w.store
            .record_read(&key.key_id, &w.root.token_id, t1, &w.read_event(&key.key_id, &w.root.token_id, t1))
            .await
            .unwrap();
    }
    let k = w.get_key(&key.key_id).await.unwrap();
    let t = w.token(&w.root.token_id).await.unwrap();
    assert_eq!((k.retrievals, k.last_used_at), (3, Some(t1)));
    assert_eq!((t.uses, t.last_used_at), (3, Some(t1)));
    assert_eq!(w.actions().await.iter().filter(|a| **a == AuditAction::KeyRead).count(), 3);
}

/// A read of a key or token deleted meanwhile: its event stays (the read
/// was served), and nothing is stored for the one that is gone.
pub async fn record_read_of_a_vanished_key_or_token_stores_nothing_for_it(store: Subject) {
    let w = world(store).await;
    let key = w.key("k", T0);
    w.store.create_key(&key, &w.event(AuditAction::KeyCreate, T0)).await.unwrap();
    let gone_token = ParsedToken::generate().id().clone();
    w.store.record_read(&key.key_id, &gone_token, T0, &w.read_event(&key.key_id, &gone_token, T0)).await.unwrap();
    let gone_key = KeyId::generate(&w.tenant);
    w.store.record_read(&gone_key, &w.root.token_id, T0, &w.read_event(&gone_key, &w.root.token_id, T0)).await.unwrap();
    let k = w.get_key(&key.key_id).await.unwrap();
    assert_eq!((k.retrievals, k.last_used_at), (1, Some(T0)), "the key that is there counts");
    assert_eq!(w.token(&w.root.token_id).await.unwrap().uses, 1, "the token that is there counts");
    assert!(w.token(&gone_token).await.is_none(), "no stub of the token that is gone");
    assert!(w.get_key(&gone_key).await.is_none(), "no stub of the key that is gone");
}

pub async fn unrecord_read_takes_back_counts_and_event_never_below_zero(store: Subject) {
    let w = world(store).await;
    let key = w.key("k", T0);
    w.store.create_key(&key, &w.event(AuditAction::KeyCreate, T0)).await.unwrap();
    let read = w.read_event(&key.key_id, &w.root.token_id, T0);
    w.store.record_read(&key.key_id, &w.root.token_id, T0, &read).await.unwrap();
    w.store.unrecord_read(&key.key_id, &w.root.token_id, &read).await.unwrap();
    assert_eq!(w.get_key(&key.key_id).await.unwrap().retrievals, 0);
    assert_eq!(w.token(&w.root.token_id).await.unwrap().uses, 0);
    assert_eq!(w.actions().await, vec![AuditAction::KeyCreate], "the failed read's event is gone");
    w.store.unrecord_read(&key.key_id, &w.root.token_id, &read).await.unwrap();
    assert_eq!(w.get_key(&key.key_id).await.unwrap().retrievals, 0, "never below zero");
    assert_eq!(w.token(&w.root.token_id).await.unwrap().uses, 0, "never below zero");
}

/// Each expectation, broken alone, makes the write a no-op; while all hold,
/// the read is recorded as `record_read` records it.
pub async fn expected_read_is_recorded_only_while_every_expectation_holds(store: Subject) {
    let w = world(store).await;
    let key = KeyRecord { mode_overrides: ModeOverrides::from([(Environment::Staging, Mode::Live)]), ..w.key("k", T0) };
    w.store.create_key(&key, &w.event(AuditAction::KeyCreate, T0)).await.unwrap();
    let holds = w.expect_read(&key);
    type Break<'a> = Box<dyn Fn(&mut ExpectedRead) + 'a>;
    let broken: Vec<(&str, Break)> = vec![
        ("verifier", Box::new(|e| e.verifier[0] ^= 1)),
        ("tenant", Box::new(|e| e.tenant_id = TenantId::generate())),
        ("name", Box::new(|e| e.key_name = "old".into())),
        ("llm type", Box::new(|e| e.llm_type = "groq".into())),
        ("tenant setting", Box::new(|e| e.mode = Mode::Live)),
        ("override", Box::new(|e| e.source = Source::KeyOverride)),
        ("override mode", Box::new(|e| (e.environment, e.source) = (Environment::Staging, Source::KeyOverride))),
        ("override beats setting", Box::new(|e| (e.environment, e.mode) = (Environment::Staging, Mode::Mock))),
        ("envelope", Box::new(|e| e.envelope = Some(Envelope { nonce: [8; 12], ..key.current.envelope.clone() }))),
        ("version", Box::new(|e| e.version.number = 2)),
        ("stage", Box::new(|e| e.version.stage = Stage::Previous)),
        ("other key", Box::new(|e| e.key_id = KeyId::generate(&e.tenant_id))),
        ("other token", Box::new(|e| e.token_id = ParsedToken::generate().id().clone())),
    ];
    for (what, break_it) in &broken {
        let mut e = holds.clone();
        break_it(&mut e);
        assert!(
            !w.store.record_expected_read(&e, T0, &w.read_event(&key.key_id, &w.root.token_id, T0)).await.unwrap(),
            "{what}"
        );
    }
    assert_eq!(w.actions().await, vec![AuditAction::KeyCreate], "no event for a plan that failed");
    let staging = ExpectedRead {
        environment: Environment::Staging,
        mode: Mode::Live,
        source: Source::KeyOverride,
        ..holds.clone()
    };
    let live = ExpectedRead { envelope: Some(key.current.envelope.clone()), ..staging.clone() };
    let guarded = ExpectedRead { mode: Mode::Live, source: Source::Guardrail, ..holds.clone() };
    let t1 = T0.plus_seconds(1);
    for e in [&holds, &staging, &live, &guarded] {
        assert!(w.store.record_expected_read(e, t1, &w.read_event(&key.key_id, &w.root.token_id, t1)).await.unwrap());
    }
    let k = w.get_key(&key.key_id).await.unwrap();
    let t = w.token(&w.root.token_id).await.unwrap();
    assert_eq!((k.retrievals, k.last_used_at), (4, Some(t1)), "only the reads whose expectations held");
    assert_eq!((t.uses, t.last_used_at), (4, Some(t1)));
    assert_eq!(w.audit().await.len(), 5, "the key's creation and four reads");
    // A retry of a write that landed (the same event) is recognised as done
    // and counts nothing more.
    let again = w.read_event(&key.key_id, &w.root.token_id, t1);
    assert!(w.store.record_expected_read(&holds, t1, &again).await.unwrap());
    assert!(w.store.record_expected_read(&holds, t1, &again).await.unwrap(), "a retry of a landed write");
    assert_eq!(w.get_key(&key.key_id).await.unwrap().retrievals, 5, "counted once");
}

/// The tenant-setting rule: a tenant item without the setting serves the
/// default; a changed setting defeats the plan.
pub async fn expected_read_follows_the_tenant_setting(store: Subject) {
    let w = world(store).await;
    let key = w.key("k", T0);
    w.store.create_key(&key, &w.event(AuditAction::KeyCreate, T0)).await.unwrap();
    let holds = w.expect_read(&key);
    assert!(w.store.record_expected_read(&holds, T0, &w.read_event(&key.key_id, &w.root.token_id, T0)).await.unwrap());
    w.store
        .update_modes(&w.tenant, &[(Environment::Development, Mode::Live)], &w.event(AuditAction::SettingsUpdate, T0))
        .await
        .unwrap();
    assert!(!w.store.record_expected_read(&holds, T0, &w.read_event(&key.key_id, &w.root.token_id, T0)).await.unwrap());
    let live = ExpectedRead { mode: Mode::Live, ..holds };
    assert!(w.store.record_expected_read(&live, T0, &w.read_event(&key.key_id, &w.root.token_id, T0)).await.unwrap());
}

/// The live-token rule holds the plan: expired or revoked, nothing recorded.
pub async fn expected_read_needs_a_live_token(store: Subject) {
    let w = world(store).await;
    let key = w.key("k", T0);
    w.store.create_key(&key, &w.event(AuditAction::KeyCreate, T0)).await.unwrap();
    let holds = w.expect_read(&key);
    let expiry = w.root.grant.expires_at;
    let just_before = Timestamp::from_millis(expiry.millis() - 1);
    assert!(w
        .store
        .record_expected_read(&holds, just_before, &w.read_event(&key.key_id, &w.root.token_id, just_before))
        .await
        .unwrap());
    assert!(
        !w.store
            .record_expected_read(&holds, expiry, &w.read_event(&key.key_id, &w.root.token_id, expiry))
            .await
            .unwrap(),
        "expired"
    );
    w.revoke(&w.root.token_id, T0, 60).await.unwrap();
    assert!(
        !w.store.record_expected_read(&holds, T0, &w.read_event(&key.key_id, &w.root.token_id, T0)).await.unwrap(),
        "revoked"
    );
    assert_eq!(w.get_key(&key.key_id).await.unwrap().retrievals, 1);
}

/// A planned read of a previous or pending version holds only while that
/// version stands where it stood and is readable.
pub async fn expected_read_follows_the_version(store: Subject) {
    let w = world(store).await;
    let (key, got) = w.three_versions().await;
    let plan = |number, stage, envelope: &Envelope| ExpectedRead {
        version: PlannedVersion { number, stage },
        envelope: Some(envelope.clone()),
        ..w.expect_read(&got)
    };
    let previous = plan(1, Stage::Previous, &key.current.envelope);
    let current = plan(2, Stage::Current, &got.current.envelope);
    let pending = plan(3, Stage::Pending, &got.pending.as_ref().unwrap().envelope);
    let t = T0.plus_seconds(1);
    for e in [&previous, &current, &pending] {
        assert!(
            w.store.record_expected_read(e, t, &w.read_event(&key.key_id, &w.root.token_id, t)).await.unwrap(),
            "{:?}",
            e.version
        );
    }
    let wrong = [
        plan(1, Stage::Current, &key.current.envelope),
        plan(2, Stage::Previous, &got.current.envelope),
        plan(3, Stage::Current, &got.pending.as_ref().unwrap().envelope),
        plan(1, Stage::Previous, &got.current.envelope),
    ];
    for e in &wrong {
        assert!(
            !w.store.record_expected_read(e, t, &w.read_event(&key.key_id, &w.root.token_id, t)).await.unwrap(),
            "{:?}",
            e.version
        );
    }
    // Past its window the previous version is not served, even before
    // cleanup destroys it.
    let late = T0.plus_seconds(60);
    assert!(!w
        .store
        .record_expected_read(&previous, late, &w.read_event(&key.key_id, &w.root.token_id, late))
        .await
        .unwrap());
    // Promoted: the pending plan and the current plan both fail.
    let promote = got.promotion(0, late).unwrap();
    w.store.update_key(&w.tenant, &key.key_id, &promote, late, &w.event(AuditAction::KeyPromote, late)).await.unwrap();
    for e in [&current, &pending] {
        assert!(
            !w.store.record_expected_read(e, late, &w.read_event(&key.key_id, &w.root.token_id, late)).await.unwrap(),
            "{:?}",
            e.version
        );
    }
    let promoted = ExpectedRead { version: PlannedVersion { number: 3, stage: Stage::Current }, ..pending.clone() };
    assert!(w
        .store
        .record_expected_read(&promoted, late, &w.read_event(&key.key_id, &w.root.token_id, late))
        .await
        .unwrap());
    assert_eq!(w.get_key(&key.key_id).await.unwrap().retrievals, 4);
}
