//! The identities aggregate's contract cases.

use super::{World, T0};
use crate::identity::{AwsRule, IdentityRecord, TrustRule};
use crate::ids::IdentityId;
use crate::store::identities::JtiClaim;
use crate::store::{AuditAction, Conflict, StoreError, TokenRecord};
use crate::token::{Grant, Scope};

fn identity(w: &World, creator: &TokenRecord) -> IdentityRecord {
    let mut ancestors = creator.ancestors.clone();
    ancestors.push(creator.token_id.clone());
    IdentityRecord {
        identity_id: IdentityId::generate(),
        tenant_id: w.tenant.clone(),
        name: "deploy".into(),
        rule: TrustRule::Aws(AwsRule { account_id: "123456789012".into(), role_name: "deployer".into() }),
        rights: Grant {
            scopes: [Scope::KeysRead, Scope::TokensWrite].into_iter().collect(),
            expires_at: creator.grant.expires_at,
            key_ids: None,
            allowed_cidrs: None,
            rate_limit: Some(60),
        },
        token_ttl: 900,
        created_at: T0,
        created_by: creator.token_id.clone(),
        ancestors,
        deleted_at: None,
    }
}

/// A token exchanged through `i` (created by the root) at `at`.
fn exchanged(w: &World, i: &IdentityRecord, at: crate::clock::Timestamp) -> TokenRecord {
    TokenRecord { grant: i.exchanged_grant(at), identity_id: Some(i.identity_id.clone()), ..w.child(&w.root, at, 900) }
}

pub async fn identities_are_created_once_by_a_live_creator(subject: super::Subject) {
    let w = super::world(subject).await;
    let i = identity(&w, &w.root);
    let audit = w.event(AuditAction::IdentityCreate, T0);
    w.store.create_identity(&i, &audit).await.unwrap();
    assert_eq!(w.store.get_identity(&i.identity_id).await.unwrap(), Some(i.clone()));
    // A retry of the same write is fine; another identity under the id is not.
    w.store.create_identity(&i, &audit).await.unwrap();
    let other = IdentityRecord { name: "other".into(), ..i.clone() };
    let e = w.store.create_identity(&other, &w.event(AuditAction::IdentityCreate, T0)).await.unwrap_err();
    assert!(matches!(e, StoreError::Conflict(Conflict::Exists)), "{e:?}");
    // A revoked creator creates nothing, and writes no event.
    let child = w.child(&w.root, T0, 3600);
    w.store.create_token(&child, &w.event(AuditAction::TokenCreate, T0)).await.unwrap();
    w.revoke(&child.token_id, T0.plus_seconds(1), 60).await.unwrap();
    let theirs = IdentityRecord { created_at: T0.plus_seconds(2), ..identity(&w, &child) };
    let e = w.store.create_identity(&theirs, &w.event(AuditAction::IdentityCreate, T0.plus_seconds(2))).await;
    assert!(matches!(e, Err(StoreError::Conflict(Conflict::IssuerNotLive))), "{e:?}");
    assert_eq!(w.store.get_identity(&theirs.identity_id).await.unwrap(), None);
    let creates = w.audit().await.iter().filter(|e| e.action == AuditAction::IdentityCreate).count();
    assert_eq!(creates, 1);
    assert_eq!(w.store.get_identity(&IdentityId::generate()).await.unwrap(), None);
}

pub async fn an_exchange_writes_its_token_under_creator_and_identity_and_claims_its_jti_once(subject: super::Subject) {
    let w = super::world(subject).await;
    let i = identity(&w, &w.root);
    w.store.create_identity(&i, &w.event(AuditAction::IdentityCreate, T0)).await.unwrap();
    let at = T0.plus_seconds(10);
    let t = exchanged(&w, &i, at);
    let claim = JtiClaim::new("https://issuer.example", "jti-1", at.plus_seconds(300));
    w.store.exchange(&i.identity_id, &t, Some(&claim), &w.event(AuditAction::AuthExchange, at)).await.unwrap();
    let stored = w.token(&t.token_id).await.expect("the token");
    assert_eq!(stored.identity_id.as_ref(), Some(&i.identity_id));
    assert!(!stored.grant.scopes.allows(Scope::TokensWrite));
    // The same jti again, in another exchange: refused, nothing written.
    let again = exchanged(&w, &i, at.plus_seconds(1));
    let e = w.store.exchange(&i.identity_id, &again, Some(&claim), &w.event(AuditAction::AuthExchange, at)).await;
    assert!(matches!(e, Err(StoreError::Conflict(Conflict::Replayed))), "{e:?}");
    assert_eq!(w.token(&again.token_id).await, None);
    // Past the claim's time, the jti is free again; without one, always.
    let later = at.plus_seconds(301);
    let third = exchanged(&w, &i, later);
    w.store.exchange(&i.identity_id, &third, Some(&claim), &w.event(AuditAction::AuthExchange, later)).await.unwrap();
    let fourth = exchanged(&w, &i, later);
    w.store.exchange(&i.identity_id, &fourth, None, &w.event(AuditAction::AuthExchange, later)).await.unwrap();
    // Revoking the creator reaches the exchanged tokens (they are its children).
    let children = w.revoke(&w.root.token_id, later.plus_seconds(1), 60).await.unwrap();
    for token in [&t, &third, &fourth] {
        assert!(children.contains(&token.token_id), "{children:?}");
    }
    let exchanges = w.audit().await.iter().filter(|e| e.action == AuditAction::AuthExchange).count();
    assert_eq!(exchanges, 3);
    // A revoked creator exchanges no more.
    let fifth = exchanged(&w, &i, later.plus_seconds(2));
    let e = w.store.exchange(&i.identity_id, &fifth, None, &w.event(AuditAction::AuthExchange, later)).await;
    assert!(matches!(e, Err(StoreError::Conflict(Conflict::IssuerNotLive))), "{e:?}");
}

pub async fn deleting_an_identity_marks_it_once_and_answers_its_tokens(subject: super::Subject) {
    let w = super::world(subject).await;
    let i = identity(&w, &w.root);
    w.store.create_identity(&i, &w.event(AuditAction::IdentityCreate, T0)).await.unwrap();
    let at = T0.plus_seconds(10);
    let t = exchanged(&w, &i, at);
    w.store.exchange(&i.identity_id, &t, None, &w.event(AuditAction::AuthExchange, at)).await.unwrap();
    let del = at.plus_seconds(5);
    let issued = w
        .store
        .delete_identity(&w.tenant, &i.identity_id, del, &w.event(AuditAction::IdentityDelete, del))
        .await
        .unwrap();
    assert_eq!(issued.iter().map(|r| &r.token_id).collect::<Vec<_>>(), [&t.token_id]);
    assert_eq!(issued[0].expires_at, Some(t.grant.expires_at));
    let stored = w.store.get_identity(&i.identity_id).await.unwrap().expect("kept, marked");
    assert_eq!(stored.deleted_at, Some(del));
    // Again: the first mark stays, no second event, the same tokens.
    let again = w
        .store
        .delete_identity(&w.tenant, &i.identity_id, del.plus_seconds(9), &w.event(AuditAction::IdentityDelete, del))
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(w.store.get_identity(&i.identity_id).await.unwrap().unwrap().deleted_at, Some(del));
    let deletes = w.audit().await.iter().filter(|e| e.action == AuditAction::IdentityDelete).count();
    assert_eq!(deletes, 1);
    // No exchange after the mark; another tenant's delete is not found.
    let late = exchanged(&w, &i, del.plus_seconds(1));
    let e = w.store.exchange(&i.identity_id, &late, None, &w.event(AuditAction::AuthExchange, del)).await;
    assert!(matches!(e, Err(StoreError::Conflict(Conflict::IssuerNotLive))), "{e:?}");
    let other = crate::ids::TenantId::generate();
    let e = w.store.delete_identity(&other, &i.identity_id, del, &w.event(AuditAction::IdentityDelete, del)).await;
    assert!(matches!(e, Err(StoreError::NotFound)), "{e:?}");
    let e = w
        .store
        .delete_identity(&w.tenant, &IdentityId::generate(), del, &w.event(AuditAction::IdentityDelete, del))
        .await;
    assert!(matches!(e, Err(StoreError::NotFound)), "{e:?}");
}

pub async fn list_identities_pages_oldest_first_within_the_tenant(subject: super::Subject) {
    let w = super::world(subject).await;
    let mut made = Vec::new();
    for n in 0..5 {
        let i = IdentityRecord { created_at: T0.plus_seconds(n), ..identity(&w, &w.root) };
        w.store.create_identity(&i, &w.event(AuditAction::IdentityCreate, T0)).await.unwrap();
        made.push(i.identity_id);
    }
    let first = w.store.list_identities(&w.tenant, 3, None).await.unwrap();
    let next = first.next.clone().expect("a second page");
    let second = w.store.list_identities(&w.tenant, 3, Some(&next)).await.unwrap();
    let listed: Vec<_> = first.items.iter().chain(&second.items).map(|i| i.identity_id.clone()).collect();
    assert_eq!(listed, made);
    let other = crate::ids::TenantId::generate();
    assert!(w.store.list_identities(&other, 10, None).await.unwrap().items.is_empty());
    assert!(matches!(w.store.list_identities(&other, 10, Some(&next)).await, Err(StoreError::BadCursor)));
}
