//! The members aggregate's contract cases.

use super::{World, T0};
use crate::bootstrap;
use crate::ids::MemberId;
use crate::member::{Invitee, MemberRecord, Provider, Role};
use crate::store::{AuditAction, Conflict, StoreError};

fn member(w: &World, handle: &str, role: Role) -> MemberRecord {
    MemberRecord {
        member_id: MemberId::generate(),
        tenant_id: w.tenant.clone(),
        invitee: Invitee::parse(Provider::Github, handle).unwrap(),
        subject: None,
        name: handle.to_owned(),
        role,
        created_at: T0,
        created_by: Some(w.root.token_id.clone()),
        last_sign_in_at: None,
        anchor: None,
    }
}

async fn events(w: &World, action: AuditAction) -> usize {
    w.audit().await.iter().filter(|e| e.action == action).count()
}

/// A member is created once per invitation in a tenant (without case),
/// its retry is fine, and another tenant invites the same person apart.
pub async fn members_are_invited_once_per_tenant(subject: super::Subject) {
    let w = super::world(subject).await;
    let ana = member(&w, "Ana", Role::Owner);
    w.store.create_member(&ana, &w.event(AuditAction::MemberCreate, T0)).await.unwrap();
    assert_eq!(w.store.get_member(&w.tenant, &ana.member_id).await.unwrap(), Some(ana.clone()));
    // The same write again (a retry) is fine, and writes nothing more.
    w.store.create_member(&ana, &w.event(AuditAction::MemberCreate, T0)).await.unwrap();
    assert_eq!(events(&w, AuditAction::MemberCreate).await, 1);
    // Another member under the same invitation, in any case, is refused.
    let again = member(&w, "ANA", Role::Viewer);
    let e = w.store.create_member(&again, &w.event(AuditAction::MemberCreate, T0)).await.unwrap_err();
    assert!(matches!(e, StoreError::Conflict(Conflict::AlreadyMember)), "{e:?}");
    assert_eq!(w.store.get_member(&w.tenant, &again.member_id).await.unwrap(), None);
    assert_eq!(events(&w, AuditAction::MemberCreate).await, 1);
    // Another tenant invites the same person, and sees only its own.
    let other = bootstrap::create_tenant(w.store.as_ref(), "other", T0).await.unwrap();
    let theirs = MemberRecord { tenant_id: other.tenant.tenant_id.clone(), ..member(&w, "ana", Role::Owner) };
    w.store.create_member(&theirs, &w.event(AuditAction::MemberCreate, T0)).await.unwrap();
    assert_eq!(w.store.get_member(&w.tenant, &theirs.member_id).await.unwrap(), None);
    let listed = w.store.list_members(&w.tenant, 10, None).await.unwrap();
    assert_eq!(listed.items, vec![ana]);
}

/// Roles change and members go, never the tenant's last owner; a refused
/// change writes nothing.
pub async fn the_last_owner_stays(subject: super::Subject) {
    let w = super::world(subject).await;
    let ana = member(&w, "ana", Role::Owner);
    let bo = member(&w, "bo", Role::Developer);
    for m in [&ana, &bo] {
        w.store.create_member(m, &w.event(AuditAction::MemberCreate, T0)).await.unwrap();
    }
    let update = || w.event(AuditAction::MemberUpdate, T0);
    // The only owner cannot step down or go.
    let e = w.store.set_member_role(&w.tenant, &ana.member_id, Role::Admin, &update()).await.unwrap_err();
    assert!(matches!(e, StoreError::Conflict(Conflict::LastOwner)), "{e:?}");
    let e = w.store.delete_member(&w.tenant, &ana.member_id, &w.event(AuditAction::MemberDelete, T0)).await;
    assert!(matches!(e, Err(StoreError::Conflict(Conflict::LastOwner))), "{e:?}");
    assert_eq!(w.store.get_member(&w.tenant, &ana.member_id).await.unwrap(), Some(ana.clone()));
    assert_eq!(events(&w, AuditAction::MemberUpdate).await + events(&w, AuditAction::MemberDelete).await, 0);
    // With a second owner, the first may step down.
    let (_, bo2) = w.store.set_member_role(&w.tenant, &bo.member_id, Role::Owner, &update()).await.unwrap();
    assert_eq!(bo2.role, Role::Owner);
    let (was, ana2) = w.store.set_member_role(&w.tenant, &ana.member_id, Role::Viewer, &update()).await.unwrap();
    assert_eq!(was, ana);
    assert_eq!(ana2, MemberRecord { role: Role::Viewer, ..ana.clone() });
    // The same role again changes nothing and writes no event.
    w.store.set_member_role(&w.tenant, &ana.member_id, Role::Viewer, &update()).await.unwrap();
    assert_eq!(events(&w, AuditAction::MemberUpdate).await, 2);
    // Now bo is the last owner.
    let e = w.store.delete_member(&w.tenant, &bo.member_id, &w.event(AuditAction::MemberDelete, T0)).await;
    assert!(matches!(e, Err(StoreError::Conflict(Conflict::LastOwner))), "{e:?}");
    let gone = w.store.delete_member(&w.tenant, &ana.member_id, &w.event(AuditAction::MemberDelete, T0)).await;
    assert_eq!(gone.unwrap(), ana2);
    assert_eq!(w.store.get_member(&w.tenant, &ana.member_id).await.unwrap(), None);
    // Gone: its invitation is free again, and it is not found any more.
    let e = w.store.delete_member(&w.tenant, &ana.member_id, &w.event(AuditAction::MemberDelete, T0)).await;
    assert!(matches!(e, Err(StoreError::NotFound)), "{e:?}");
    let back = member(&w, "ana", Role::Viewer);
    w.store.create_member(&back, &w.event(AuditAction::MemberCreate, T0)).await.unwrap();
    assert_eq!(events(&w, AuditAction::MemberDelete).await, 1);
}

/// Two demotions of the tenant's last two owners at once: one of them
/// stays an owner.
pub async fn concurrent_demotions_keep_an_owner(subject: super::Subject) {
    let w = super::world(subject).await;
    let ana = member(&w, "ana", Role::Owner);
    let bo = member(&w, "bo", Role::Owner);
    for m in [&ana, &bo] {
        w.store.create_member(m, &w.event(AuditAction::MemberCreate, T0)).await.unwrap();
    }
    let (update, delete) = (w.event(AuditAction::MemberUpdate, T0), w.event(AuditAction::MemberDelete, T0));
    let (a, b) = tokio::join!(
        w.store.set_member_role(&w.tenant, &ana.member_id, Role::Admin, &update),
        w.store.delete_member(&w.tenant, &bo.member_id, &delete),
    );
    assert!(a.is_ok() != b.is_ok(), "exactly one lands: {a:?} {b:?}");
    let owners = w.store.list_members(&w.tenant, 10, None).await.unwrap();
    assert_eq!(owners.items.iter().filter(|m| m.role == Role::Owner).count(), 1, "{owners:?}");
    // Members of another tenant, or ids never made, are not found.
    let e = w.store.set_member_role(&w.tenant, &MemberId::generate(), Role::Admin, &update).await;
    assert!(matches!(e, Err(StoreError::NotFound)), "{e:?}");
}

/// A sign-in finds an invitation by its handle, then binds it to the
/// person: from then on only the person's stable id finds it. The binding
/// is conditional on the member as read (a concurrent sign-in or change of
/// role loses nothing), and a demotion drops the anchor.
pub async fn sign_in_binds_an_invitation_to_the_person(subject: super::Subject) {
    use crate::member::Person;
    let w = super::world(subject).await;
    let ana = member(&w, "ana", Role::Developer);
    w.store.create_member(&ana, &w.event(AuditAction::MemberCreate, T0)).await.unwrap();
    let person = |id: &str, login: &str| Person {
        provider: Provider::Github,
        subject: id.to_owned(),
        handle: Some(login.to_owned()),
        name: "Ana Lima".into(),
    };
    let first = person("101", "ANA");
    let keys = |p: &Person| [vec![p.bound_key()], p.invite_key().into_iter().collect()].concat();
    // Eventually consistent index: a few tries.
    let mut found = Vec::new();
    for _ in 0..20 {
        found = w.store.find_sign_in(&keys(&first)).await.unwrap();
        if !found.is_empty() {
            break;
        }
    }
    assert_eq!(found, vec![ana.clone()]);
    let anchor = ana.new_anchor(T0);
    let bound = ana.signed_in(&first, anchor.token_id.clone(), T0);
    w.store.update_sign_in(&ana, &bound).await.unwrap();
    // The second binding of the same read loses.
    let other_anchor = ana.new_anchor(T0).token_id;
    let e = w.store.update_sign_in(&ana, &ana.signed_in(&first, other_anchor, T0)).await;
    assert!(matches!(e, Err(StoreError::Conflict(Conflict::Changed))), "{e:?}");
    assert_eq!(w.store.get_member(&w.tenant, &ana.member_id).await.unwrap(), Some(bound.clone()));
    // Whoever holds the login now is not found; the person is, renamed.
    let mut by_login = Vec::new();
    let mut by_id = Vec::new();
    for _ in 0..20 {
        by_login = w.store.find_sign_in(&keys(&person("202", "ana"))).await.unwrap();
        by_id = w.store.find_sign_in(&keys(&person("101", "ana-renamed"))).await.unwrap();
        if by_login.is_empty() && !by_id.is_empty() {
            break;
        }
    }
    assert!(by_login.is_empty(), "{by_login:?}");
    assert_eq!(by_id, vec![bound.clone()]);
    // A demotion drops the anchor; a promotion keeps it.
    let (_, up) = w
        .store
        .set_member_role(&w.tenant, &ana.member_id, Role::Admin, &w.event(AuditAction::MemberUpdate, T0))
        .await
        .unwrap();
    assert_eq!(up.anchor, bound.anchor);
    let (was, down) = w
        .store
        .set_member_role(&w.tenant, &ana.member_id, Role::Viewer, &w.event(AuditAction::MemberUpdate, T0))
        .await
        .unwrap();
    assert_eq!((was.anchor, down.anchor), (bound.anchor.clone(), None));
}

/// A pending sign-in item is taken once, and not after it expired.
pub async fn pending_sign_in_items_are_taken_once(subject: super::Subject) {
    let w = super::world(subject).await;
    let data = crate::secret::Redacted::from("{\"x\":1}".to_owned());
    w.store.put_pending("code#a", &data, T0.plus_seconds(60)).await.unwrap();
    let e = w.store.put_pending("code#a", &data, T0.plus_seconds(60)).await;
    assert!(matches!(e, Err(StoreError::Conflict(Conflict::Exists))), "{e:?}");
    let (a, b) = tokio::join!(w.store.take_pending("code#a", T0), w.store.take_pending("code#a", T0));
    let got: Vec<_> = [a.unwrap(), b.unwrap()].into_iter().flatten().collect();
    assert_eq!(got.len(), 1, "taken once");
    assert_eq!(got[0].expose(), data.expose());
    w.store.put_pending("code#b", &data, T0.plus_seconds(60)).await.unwrap();
    assert!(w.store.take_pending("code#b", T0.plus_seconds(60)).await.unwrap().is_none(), "expired");
    assert!(w.store.take_pending("code#b", T0).await.unwrap().is_none(), "and gone");
    assert!(w.store.take_pending("code#never", T0).await.unwrap().is_none());
}

/// Pages of members, oldest first, within the tenant; a cursor from
/// another tenant is refused.
pub async fn list_members_pages_oldest_first_within_the_tenant(subject: super::Subject) {
    let w = super::world(subject).await;
    let mut made = Vec::new();
    for i in 0..5 {
        let m = MemberRecord { created_at: T0.plus_seconds(i), ..member(&w, &format!("m{i}"), Role::Viewer) };
        w.store.create_member(&m, &w.event(AuditAction::MemberCreate, T0)).await.unwrap();
        made.push(m);
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = w.store.list_members(&w.tenant, 2, cursor.as_deref()).await.unwrap();
        seen.extend(page.items);
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, made);
    let other = bootstrap::create_tenant(w.store.as_ref(), "other", T0).await.unwrap();
    let first = w.store.list_members(&w.tenant, 2, None).await.unwrap();
    let e = w.store.list_members(&other.tenant.tenant_id, 2, first.next.as_deref()).await;
    assert!(matches!(e, Err(StoreError::BadCursor)), "{e:?}");
}
