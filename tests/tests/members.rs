//! Members and roles against moto: invitations (once per person, without
//! case), role changes and removals, the last owner kept, a token granting
//! no role stronger than itself, the events, and bad input answered with
//! the field at fault.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a failed unwrap is a failed test")]

use aws_sdk_dynamodb::types::AttributeValue;
use ibyok_tests::{Env, Req};
use serde_json::{json, Value};

async fn invite(env: &Env, token: &str, body: Value) -> ibyok_tests::Resp {
    env.call(Req::post("/members").token(token).json(body)).await
}

async fn member_events(env: &Env) -> Vec<(String, String)> {
    let r = env.call(Req::get("/audit?limit=100").token(&env.root)).await.expect(200);
    r.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("member."))
        .map(|e| (e["action"].as_str().unwrap().to_owned(), e["detail"].as_str().unwrap_or("").to_owned()))
        .collect()
}

#[tokio::test]
async fn members_are_invited_changed_and_removed_and_the_last_owner_stays() {
    let env = Env::new().await;
    // Invitations, by GitHub login and by email.
    let ana =
        invite(&env, &env.root, json!({"provider": "github", "login": "Ana-Dev", "role": "owner", "name": "Ana"}))
            .await
            .expect(201);
    assert_eq!(ana.body["login"], "Ana-Dev");
    assert_eq!((ana.body["role"].as_str(), ana.body["name"].as_str()), (Some("owner"), Some("Ana")));
    assert!(ana.body["subject"].is_null() && ana.body["lastSignInAt"].is_null() && ana.body.get("email").is_none());
    let ana_id = ana.body["memberId"].as_str().unwrap().to_owned();
    assert!(ana_id.starts_with("mem_"));
    env.clock.advance_seconds(1);
    let bo = invite(&env, &env.root, json!({"provider": "oidc", "email": "bo@acme.example", "role": "developer"}))
        .await
        .expect(201);
    assert_eq!(
        (bo.body["email"].as_str(), bo.body["name"].as_str()),
        (Some("bo@acme.example"), Some("bo@acme.example"))
    );
    let bo_id = bo.body["memberId"].as_str().unwrap().to_owned();

    // One member per person in a tenant, whatever the case.
    let again = invite(&env, &env.root, json!({"provider": "github", "login": "ana-dev", "role": "viewer"})).await;
    again.expect_error(409, "conflict");
    // Another tenant invites the same person apart.
    let (_, other_root) = env.other_tenant().await;
    invite(&env, &other_root, json!({"provider": "github", "login": "ana-dev", "role": "owner"})).await.expect(201);

    let list = env.call(Req::get("/members").token(&env.root)).await.expect(200);
    let ids: Vec<&str> =
        list.body["members"].as_array().unwrap().iter().map(|m| m["memberId"].as_str().unwrap()).collect();
    assert_eq!(ids, [ana_id.as_str(), bo_id.as_str()]);
    assert!(list.body["nextCursor"].is_null());

    // The last owner cannot step down or go.
    let patch =
        |id: &str, role: &str| Req::patch(&format!("/members/{id}")).token(&env.root).json(json!({"role": role}));
    env.call(patch(&ana_id, "admin")).await.expect_error(409, "conflict");
    env.call(Req::delete(&format!("/members/{ana_id}")).token(&env.root)).await.expect_error(409, "conflict");
    // With a second owner it can.
    assert_eq!(env.call(patch(&bo_id, "owner")).await.expect(200).body["role"], "owner");
    assert_eq!(env.call(patch(&ana_id, "viewer")).await.expect(200).body["role"], "viewer");
    env.call(Req::delete(&format!("/members/{ana_id}")).token(&env.root)).await.expect(204);
    env.call(Req::delete(&format!("/members/{ana_id}")).token(&env.root)).await.expect_error(404, "not_found");
    env.call(patch(&ana_id, "viewer")).await.expect_error(404, "not_found");
    // Another tenant's member is not found here.
    let theirs = invite(&env, &other_root, json!({"provider": "oidc", "email": "x@y.example", "role": "viewer"}))
        .await
        .expect(201);
    let theirs = theirs.body["memberId"].as_str().unwrap();
    env.call(patch(theirs, "admin")).await.expect_error(404, "not_found");

    // Each change is an event of the caller, naming the member.
    let events = member_events(&env).await;
    let actions: Vec<&str> = events.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(actions, ["member.delete", "member.update", "member.update", "member.create", "member.create"]);
    assert!(events[0].1.contains(&ana_id) && events[0].1.contains("github:ana-dev"), "{events:?}");
    assert!(events[1].1.ends_with("owner to viewer"), "{events:?}");
}

#[tokio::test]
async fn a_token_grants_no_role_stronger_than_itself() {
    let env = Env::new().await;
    let owner =
        invite(&env, &env.root, json!({"provider": "github", "login": "owner", "role": "owner"})).await.expect(201);
    let owner_id = owner.body["memberId"].as_str().unwrap().to_owned();
    // A token that may manage members but holds a developer's scopes only.
    let (_, manager) = env
        .issue(
            &env.root,
            json!({"name": "m", "scopes": ["members:write", "keys:read", "tokens:write", "usage:read", "settings:read"]}),
        )
        .await;
    invite(&env, &manager, json!({"provider": "github", "login": "dev", "role": "developer"})).await.expect(201);
    invite(&env, &manager, json!({"provider": "github", "login": "view", "role": "viewer"})).await.expect(201);
    for role in ["admin", "owner"] {
        let r = invite(&env, &manager, json!({"provider": "github", "login": "boss", "role": role})).await;
        r.expect_error(403, "forbidden");
    }
    // Nor may it demote or remove someone above it.
    let demote = Req::patch(&format!("/members/{owner_id}")).token(&manager).json(json!({"role": "viewer"}));
    env.call(demote).await.expect_error(403, "forbidden");
    env.call(Req::delete(&format!("/members/{owner_id}")).token(&manager)).await.expect_error(403, "forbidden");
    // Reading members needs members:read; a token without it is refused.
    let (_, keys_only) = env.issue(&env.root, json!({"name": "k", "scopes": ["keys:read"]})).await;
    env.call(Req::get("/members").token(&keys_only)).await.expect_error(403, "forbidden");
    let (_, reader) = env.issue(&env.root, json!({"name": "r", "scopes": ["members:read"]})).await;
    let list = env.call(Req::get("/members").token(&reader)).await.expect(200);
    assert_eq!(list.body["members"].as_array().unwrap().len(), 3);
    invite(&env, &reader, json!({"provider": "github", "login": "x", "role": "viewer"}))
        .await
        .expect_error(403, "forbidden");
}

#[tokio::test]
async fn bad_invitations_name_their_field_and_write_nothing() {
    let env = Env::new().await;
    for (body, field) in [
        (json!({"provider": "gitlab", "login": "a", "role": "viewer"}), "provider"),
        (json!({"provider": "github", "login": "-a", "role": "viewer"}), "login"),
        (json!({"provider": "github", "login": "a", "role": "root"}), "role"),
        (json!({"provider": "github", "email": "a@b.example", "role": "viewer"}), "email"),
        (json!({"provider": "oidc", "email": "not-an-email", "role": "viewer"}), "email"),
        (json!({"provider": "oidc", "email": "a@b.example", "role": "viewer", "name": ""}), "name"),
        (json!({"provider": "oidc", "email": "a@b.example", "role": "viewer", "extra": 1}), "extra"),
        (json!({"provider": "oidc", "role": "viewer"}), "email"),
    ] {
        let r = invite(&env, &env.root, body.clone()).await.expect_error(400, "invalid_request");
        assert!(r.body["error"]["message"].as_str().unwrap().starts_with(field), "{body}: {}", r.text());
    }
    let patch = Req::patch("/members/mem_nope").token(&env.root).json(json!({"role": "viewer"}));
    env.call(patch).await.expect_error(404, "not_found");
    let list = env.call(Req::get("/members").token(&env.root)).await.expect(200);
    assert_eq!(list.body["members"], json!([]));
    assert!(member_events(&env).await.is_empty());
}

/// A root token made before the members' scopes existed holds them: a
/// root holds every scope, whenever it was made.
#[tokio::test]
async fn a_root_token_from_before_members_holds_their_scopes() {
    let env = Env::new().await;
    let root = ibyok::token::ParsedToken::parse(&env.root).unwrap();
    let old: Vec<AttributeValue> =
        ["keys:read", "keys:write", "tokens:read", "tokens:write", "settings:read", "settings:write", "usage:read"]
            .into_iter()
            .map(|s| AttributeValue::S(s.into()))
            .collect();
    // The item and its replicas, as the earlier code wrote them.
    let mut keys = vec![(env.tables.tokens.clone(), "tokenId", root.id().to_string())];
    for r in 0..ibyok::store::schema::RECORD_REPLICAS {
        keys.push((env.tables.replicas.clone(), "replicaId", format!("token#{}#{r}", root.id())));
    }
    for (table, attr, id) in keys {
        env.dynamo
            .update_item()
            .table_name(table)
            .key(attr, AttributeValue::S(id))
            .update_expression("SET scopes = :s")
            .condition_expression("attribute_exists(tokenId)")
            .expression_attribute_values(":s", AttributeValue::L(old.clone()))
            .send()
            .await
            .unwrap();
    }
    env.call(Req::get("/members").token(&env.root)).await.expect(200);
    invite(&env, &env.root, json!({"provider": "github", "login": "first", "role": "owner"})).await.expect(201);
}
