//! The contract cases of tenants and their settings.

use super::*;

pub async fn create_tenant_never_overwrites(store: Subject) {
    let w = world(store).await;
    let tenant = TenantRecord {
        tenant_id: w.tenant.clone(),
        name: "again".into(),
        modes: TenantModes::default(),
        created_at: T0,
        reads_per_month: None,
    };
    let (root, _) = bootstrap::root_token(&w.tenant, "again", T0);
    assert_conflict(w.store.create_tenant(&tenant, &root).await, Conflict::Exists, "same tenant id");
    assert!(w.token(&root.token_id).await.is_none(), "the refused tenant's root token was not written");
}

pub async fn update_modes_writes_the_change_and_its_event_together(store: Subject) {
    let w = world(store).await;
    let audit = w.event(AuditAction::SettingsUpdate, T0);
    let modes = w.store.update_modes(&w.tenant, &[(Environment::Staging, Mode::Live)], &audit).await.unwrap();
    assert_eq!(modes.staging, Mode::Live);
    assert_eq!(modes.development, Mode::Mock, "the rest stays");
    assert_eq!(w.modes().await, modes, "answers the stored whole");
    assert_eq!(w.actions().await, vec![AuditAction::SettingsUpdate]);
}

pub async fn update_modes_without_changes_writes_no_event(store: Subject) {
    let w = world(store).await;
    let audit = w.event(AuditAction::SettingsUpdate, T0);
    let modes = w.store.update_modes(&w.tenant, &[], &audit).await.unwrap();
    assert_eq!(modes, TenantModes::default());
    assert!(w.audit().await.is_empty(), "no change, no event");
}

pub async fn update_modes_of_a_missing_tenant_writes_nothing(store: Subject) {
    let w = world(store).await;
    let ghost = TenantId::generate();
    let audit = event_in(&ghost, AuditAction::SettingsUpdate, T0);
    let r = w.store.update_modes(&ghost, &[(Environment::Staging, Mode::Live)], &audit).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    assert!(w.store.list_audit(&ghost, 10, None).await.unwrap().items.is_empty(), "no event for a failed update");
    let got = w.store.fetch(&Fetch { tenant: Some(ghost), ..Fetch::default() }).await.unwrap();
    assert!(got.tenant.is_none(), "no tenant item made by the update");
}
