//! `/tokens` against moto: issuing rules, revocation with cascade, the
//! uniform 401, scopes, and listing within one's subtree.

use ibyok_tests::{Env, Req, Resp};
use serde_json::json;

#[tokio::test]
async fn issuing_answers_the_token_once_in_the_contract_shape() {
    let env = Env::new().await;
    let key = env.add_key(&env.root, "k", "openai", "sk-1").await;
    let body = json!({"name": "billing-service", "scopes": ["keys:read"], "expiresIn": 86400,
                      "keyIds": [key], "allowedCidrs": ["203.0.113.0/24"]});
    let r = env.call(Req::post("/tokens").token(&env.root).json(body)).await.expect(201);
    let b = &r.body;
    let token = b["token"].as_str().unwrap();
    assert!(token.starts_with("ibyok_") && token.len() == 44);
    assert!(b["tokenId"].as_str().unwrap().starts_with("tok_"));
    assert_eq!(b["scopes"], json!(["keys:read"]));
    assert_eq!(b["keyIds"], json!([key]));
    assert_eq!(b["allowedCidrs"], json!(["203.0.113.0/24"]));
    assert!(b["issuedBy"].as_str().unwrap().starts_with("tok_"));
    assert_eq!(b["rateLimit"], json!(null), "unlimited");
    assert_eq!(b.as_object().unwrap().len(), 11, "{b}");
    // Unrestricted tokens answer null for both lists; default expiry is 30 days.
    let r = env.call(Req::post("/tokens").token(&env.root).json(json!({"name": "n", "scopes": ["usage:read"]}))).await;
    let b = r.expect(201).body;
    assert_eq!(b["keyIds"], json!(null));
    assert_eq!(b["allowedCidrs"], json!(null));
    let created = ibyok::clock::Timestamp::parse_rfc3339(b["createdAt"].as_str().unwrap()).unwrap();
    let expires = ibyok::clock::Timestamp::parse_rfc3339(b["expiresAt"].as_str().unwrap()).unwrap();
    assert_eq!(expires.seconds() - created.seconds(), 2_592_000);
    // The listing never shows the secret.
    let listed = env.call(Req::get("/tokens").token(&env.root)).await.expect(200);
    assert!(!listed.text().contains("ibyok_"));
    assert!(listed.body["tokens"][0].get("lastUsedAt").is_some());
}

#[tokio::test]
async fn issue_requests_with_bad_fields_are_400_naming_the_field() {
    let env = Env::new().await;
    let cases = [
        (json!({"scopes": ["keys:read"]}), "name"),
        (json!({"name": "x".repeat(101), "scopes": ["keys:read"]}), "name"),
        (json!({"name": "n"}), "scopes"),
        (json!({"name": "n", "scopes": []}), "scopes"),
        (json!({"name": "n", "scopes": ["keys:admin"]}), "scopes"),
        (json!({"name": "n", "scopes": "keys:read"}), "scopes"),
        (json!({"name": "n", "scopes": ["keys:read"], "expiresIn": "60"}), "expiresIn"),
        (json!({"name": "n", "scopes": ["keys:read"], "expiresIn": 60.5}), "expiresIn"),
        (json!({"name": "n", "scopes": ["keys:read"], "expiresIn": 59}), "expiresIn"),
        (json!({"name": "n", "scopes": ["keys:read"], "expiresIn": 31_536_001}), "expiresIn"),
        (json!({"name": "n", "scopes": ["keys:read"], "allowedCidrs": ["10.0.0.0/33"]}), "allowedCidrs"),
        (json!({"name": "n", "scopes": ["keys:read"], "allowedCidrs": ["nope"]}), "allowedCidrs"),
        (json!({"name": "n", "scopes": ["keys:read"], "keyIds": ["key_missing"]}), "keyIds"),
        (json!({"name": "n", "scopes": ["keys:read"], "bogus": true}), "bogus"),
    ];
    for (body, field) in cases {
        let r = env.call(Req::post("/tokens").token(&env.root).json(body.clone())).await;
        let r = r.expect_error(400, "invalid_request");
        assert!(r.body["error"]["message"].as_str().unwrap().contains(field), "{body}: {}", r.text());
    }
    // A well-formed id of a key that does not exist, or of another tenant's key.
    let (_, other) = env.other_tenant().await;
    let theirs = env.add_key(&other, "t", "openai", "sk-1").await;
    let body = json!({"name": "n", "scopes": ["keys:read"], "keyIds": [theirs]});
    env.call(Req::post("/tokens").token(&env.root).json(body)).await.expect_error(400, "invalid_request");
}

#[tokio::test]
async fn a_token_can_only_issue_what_it_holds() {
    let env = Env::new().await;
    let k1 = env.add_key(&env.root, "k1", "openai", "sk-1").await;
    let k2 = env.add_key(&env.root, "k2", "openai", "sk-2").await;
    let (_, parent) = env
        .issue(
            &env.root,
            json!({"name": "p", "scopes": ["keys:write", "tokens:write"], "expiresIn": 3600,
                                 "keyIds": [k1], "allowedCidrs": ["10.0.0.0/8"]}),
        )
        .await;
    let from = |b: serde_json::Value| Req::post("/tokens").token(&parent).json(b).from_ip("10.1.2.3");
    // Escalations: 403.
    for body in [
        json!({"name": "c", "scopes": ["settings:read"]}),
        json!({"name": "c", "scopes": ["keys:read", "usage:read"]}),
        json!({"name": "c", "scopes": ["keys:read"], "keyIds": [k2]}),
        json!({"name": "c", "scopes": ["keys:read"], "keyIds": ["key_doesnotexistanywhere000000000"]}),
        json!({"name": "c", "scopes": ["keys:read"], "allowedCidrs": ["0.0.0.0/0"]}),
        json!({"name": "c", "scopes": ["keys:read"], "allowedCidrs": ["10.0.0.0/8", "192.168.0.0/16"]}),
    ] {
        env.call(from(body.clone())).await.expect_error(403, "forbidden");
    }
    // Within bounds: write implies read; lists inherited; expiry capped.
    let r = env.call(from(json!({"name": "c", "scopes": ["keys:read", "tokens:read"], "expiresIn": 31_536_000}))).await;
    let child = r.expect(201).body;
    assert_eq!(child["keyIds"], json!([k1]));
    assert_eq!(child["allowedCidrs"], json!(["10.0.0.0/8"]));
    let listed = env.call(Req::get("/tokens").token(&env.root)).await.expect(200);
    let parent_row = listed.body["tokens"].as_array().unwrap().iter().find(|t| t["name"] == "p").unwrap().clone();
    assert_eq!(child["expiresAt"], parent_row["expiresAt"]);
    let r = env.call(from(json!({"name": "c2", "scopes": ["keys:read"], "allowedCidrs": ["10.9.0.0/16"]}))).await;
    assert_eq!(r.expect(201).body["allowedCidrs"], json!(["10.9.0.0/16"]));
}

/// Builds a fresh request for one route.
type MakeReq = Box<dyn Fn() -> Req>;

async fn unauthorized_bodies(env: &Env, reqs: Vec<Req>) -> Vec<String> {
    let mut bodies = Vec::new();
    for req in reqs {
        let r = env.call(req).await.expect_error(401, "unauthorized");
        assert_eq!(r.raw.header("www-authenticate"), Some("Bearer"));
        bodies.push(r.text());
    }
    bodies
}

#[tokio::test]
async fn every_bad_token_gets_the_same_401() {
    let env = Env::new().await;
    let (_, expiring) = env.issue(&env.root, json!({"name": "e", "scopes": ["keys:read"], "expiresIn": 60})).await;
    let (rid, revoked) = env.issue(&env.root, json!({"name": "r", "scopes": ["keys:read"]})).await;
    env.call(Req::delete(&format!("/tokens/{rid}")).token(&env.root)).await.expect(204);
    env.clock.advance_seconds(61);
    let mut bad_checksum = env.root.clone();
    let last = bad_checksum.pop().unwrap();
    bad_checksum.push(if last == 'a' { 'b' } else { 'a' });
    let unknown = ibyok::token::ParsedToken::generate().secret().expose_token().to_owned();
    let reqs = vec![
        Req::get("/keys"),
        Req::get("/keys").auth_header(&format!("Basic {}", env.root)),
        Req::get("/keys").auth_header("Bearer"),
        Req::get("/keys").token("ibyok_short"),
        Req::get("/keys").token(&bad_checksum),
        Req::get("/keys").token(&unknown),
        Req::get("/keys").token(&expiring),
        Req::get("/keys").token(&revoked),
    ];
    let bodies = unauthorized_bodies(&env, reqs).await;
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "one answer for all: {bodies:?}");
    // Expired and revoked known tokens leave an auth.denied event.
    let audit = env.call(Req::get("/audit").token(&env.root)).await.expect(200);
    let denied = audit.body["events"].as_array().unwrap().iter().filter(|e| e["action"] == "auth.denied").count();
    assert_eq!(denied, 2);
}

#[tokio::test]
async fn each_route_needs_its_scope() {
    let env = Env::new().await;
    let key = env.add_key(&env.root, "k", "openai", "sk-1").await;
    let (tid, _) = env.issue(&env.root, json!({"name": "x", "scopes": ["keys:read"]})).await;
    // A token with every scope but the one the route needs must get 403.
    let routes: Vec<(&str, MakeReq)> = vec![
        ("keys:write", Box::new(|| Req::post("/keys").json(json!({"name": "n", "llmType": "openai", "value": "v"})))),
        ("keys:read", Box::new(|| Req::get("/keys"))),
        (
            "keys:read",
            Box::new({
                let k = key.clone();
                move || Req::get(&format!("/keys/{k}"))
            }),
        ),
        (
            "keys:write",
            Box::new({
                let k = key.clone();
                move || Req::patch(&format!("/keys/{k}")).json(json!({"name": "n"}))
            }),
        ),
        (
            "keys:write",
            Box::new({
                let k = key.clone();
                move || Req::put(&format!("/keys/{k}/value")).json(json!({"value": "v"}))
            }),
        ),
        (
            "keys:write",
            Box::new({
                let k = key.clone();
                move || Req::delete(&format!("/keys/{k}"))
            }),
        ),
        (
            "keys:read",
            Box::new({
                let k = key.clone();
                move || Req::get(&format!("/external/keys/{k}/value"))
            }),
        ),
        ("tokens:write", Box::new(|| Req::post("/tokens").json(json!({"name": "n", "scopes": ["usage:read"]})))),
        ("tokens:read", Box::new(|| Req::get("/tokens"))),
        (
            "tokens:write",
            Box::new({
                let t = tid.clone();
                move || Req::delete(&format!("/tokens/{t}"))
            }),
        ),
        ("settings:read", Box::new(|| Req::get("/settings/modes"))),
        ("settings:write", Box::new(|| Req::put("/settings/modes").json(json!({"staging": "live"})))),
        ("usage:read", Box::new(|| Req::get("/usage"))),
        ("usage:read", Box::new(|| Req::get("/audit"))),
    ];
    let all =
        ["keys:read", "keys:write", "tokens:read", "tokens:write", "settings:read", "settings:write", "usage:read"];
    for (needed, make) in &routes {
        let (read_of, write_of) = (needed.replace(":write", ":read"), needed.replace(":read", ":write"));
        // Drop the scope and, for a read, the write that implies it.
        let scopes: Vec<&str> =
            all.iter().copied().filter(|s| *s != *needed && !(needed.ends_with(":read") && *s == write_of)).collect();
        let (_, weak) = env.issue(&env.root, json!({"name": "weak", "scopes": scopes})).await;
        env.call(make().token(&weak)).await.expect_error(403, "forbidden");
        // And the write scope alone grants the read.
        if needed.ends_with(":read") && all.contains(&write_of.as_str()) {
            let (_, w) = env.issue(&env.root, json!({"name": "w", "scopes": [write_of]})).await;
            let r = env.call(make().token(&w)).await;
            assert!(r.status < 400, "{needed} via {write_of}: {}", r.text());
        }
        let _ = read_of;
    }
}

#[tokio::test]
async fn revocation_is_instant_and_cascades_to_every_descendant() {
    let env = Env::new().await;
    let key = env.add_key(&env.root, "k", "openai", "sk-1").await;
    let all = json!(["keys:read", "tokens:write"]);
    let (pid, parent) = env.issue(&env.root, json!({"name": "parent", "scopes": all})).await;
    let (_, child) = env.issue(&parent, json!({"name": "child", "scopes": all})).await;
    let (_, grandchild) = env.issue(&child, json!({"name": "grandchild", "scopes": ["keys:read"]})).await;
    let (_, sibling) = env.issue(&env.root, json!({"name": "sibling", "scopes": ["keys:read"]})).await;
    env.read(&grandchild, &key, "production").await.expect(200);
    env.call(Req::delete(&format!("/tokens/{pid}")).token(&env.root)).await.expect(204);
    for t in [&parent, &child, &grandchild] {
        env.read(t, &key, "production").await.expect_error(401, "unauthorized");
    }
    env.read(&sibling, &key, "production").await.expect(200);
    let listed = env.call(Req::get("/tokens").token(&env.root)).await.expect(200);
    for t in listed.body["tokens"].as_array().unwrap() {
        let revoked = !t["revokedAt"].is_null();
        let expected = ["parent", "child", "grandchild"].contains(&t["name"].as_str().unwrap());
        assert_eq!(revoked, expected, "{t}");
    }
    // Again: 204. Unknown or malformed: 404.
    env.call(Req::delete(&format!("/tokens/{pid}")).token(&env.root)).await.expect(204);
    env.call(Req::delete("/tokens/tok_AAAAAAAAAAAAAAAAAAAAAA").token(&env.root)).await.expect_error(404, "not_found");
    env.call(Req::delete("/tokens/nonsense").token(&env.root)).await.expect_error(404, "not_found");
}

#[tokio::test]
async fn a_revoked_token_cannot_issue_and_its_children_cannot_escape() {
    let env = Env::new().await;
    let (pid, parent) = env.issue(&env.root, json!({"name": "p", "scopes": ["tokens:write", "keys:read"]})).await;
    env.call(Req::delete(&format!("/tokens/{pid}")).token(&env.root)).await.expect(204);
    env.call(Req::post("/tokens").token(&parent).json(json!({"name": "c", "scopes": ["keys:read"]})))
        .await
        .expect_error(401, "unauthorized");
}

#[tokio::test]
async fn tokens_see_and_revoke_only_their_subtree() {
    let env = Env::new().await;
    let s = json!(["tokens:write"]);
    let (aid, a) = env.issue(&env.root, json!({"name": "a", "scopes": s})).await;
    let (a1id, _) = env.issue(&a, json!({"name": "a1", "scopes": s})).await;
    let (bid, b) = env.issue(&env.root, json!({"name": "b", "scopes": s})).await;
    let names = |r: Resp| -> Vec<String> {
        let mut v: Vec<String> =
            r.body["tokens"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_owned()).collect();
        v.sort();
        v
    };
    assert_eq!(names(env.call(Req::get("/tokens").token(&a)).await.expect(200)), vec!["a", "a1"]);
    assert_eq!(names(env.call(Req::get("/tokens").token(&b)).await.expect(200)), vec!["b"]);
    assert_eq!(names(env.call(Req::get("/tokens").token(&env.root)).await.expect(200)).len(), 4);
    // Outside the subtree: 404, like a missing token; the root is out of reach too.
    env.call(Req::delete(&format!("/tokens/{aid}")).token(&b)).await.expect_error(404, "not_found");
    env.call(Req::delete(&format!("/tokens/{a1id}")).token(&b)).await.expect_error(404, "not_found");
    let listed = env.call(Req::get("/tokens").token(&env.root)).await.expect(200);
    let root_id = listed.body["tokens"].as_array().unwrap().iter().find(|t| t["issuedBy"].is_null()).unwrap()
        ["tokenId"]
        .as_str()
        .unwrap()
        .to_owned();
    env.call(Req::delete(&format!("/tokens/{root_id}")).token(&a)).await.expect_error(404, "not_found");
    // Inside: fine.
    env.call(Req::delete(&format!("/tokens/{a1id}")).token(&a)).await.expect(204);
    // Another tenant's token: 404.
    let (_, other) = env.other_tenant().await;
    env.call(Req::delete(&format!("/tokens/{bid}")).token(&other)).await.expect_error(404, "not_found");
    env.call(Req::get("/keys").token(&b)).await.expect_error(403, "forbidden");
}

#[tokio::test]
async fn delete_tokens_self_revokes_the_caller_and_its_descendants_without_a_scope() {
    let env = Env::new().await;
    let key = env.add_key(&env.root, "k", "openai", "sk-1").await;
    let (_, me) = env.issue(&env.root, json!({"name": "me", "scopes": ["keys:read", "tokens:write"]})).await;
    let (_, mine) = env.issue(&me, json!({"name": "mine", "scopes": ["keys:read"]})).await;
    let (_, weak) = env.issue(&env.root, json!({"name": "weak", "scopes": ["usage:read"]})).await;
    env.call(Req::delete("/tokens/self").token(&me)).await.expect(204);
    env.read(&me, &key, "production").await.expect_error(401, "unauthorized");
    env.read(&mine, &key, "production").await.expect_error(401, "unauthorized");
    env.call(Req::delete("/tokens/self").token(&weak)).await.expect(204);
    env.call(Req::get("/usage").token(&weak)).await.expect_error(401, "unauthorized");
    env.call(Req::get("/tokens/self").token(&env.root)).await.expect_error(405, "method_not_allowed");
}

#[tokio::test]
async fn allowed_cidrs_refuse_other_source_addresses() {
    let env = Env::new().await;
    let key = env.add_key(&env.root, "k", "openai", "sk-1").await;
    let (_, t) = env
        .issue(
            &env.root,
            json!({"name": "n", "scopes": ["keys:read"], "allowedCidrs": ["203.0.113.0/24", "2001:db8::/32"]}),
        )
        .await;
    let read = |ip: Option<&str>| {
        let r = Req::get(&format!("/external/keys/{key}/value")).token(&t);
        match ip {
            Some(ip) => r.from_ip(ip),
            None => r,
        }
    };
    env.call(read(Some("203.0.113.7"))).await.expect(200);
    env.call(read(Some("2001:db8::5"))).await.expect(200);
    env.call(read(Some("198.51.100.1"))).await.expect_error(401, "unauthorized");
    env.call(read(None)).await.expect_error(401, "unauthorized");
}

#[tokio::test]
async fn key_ids_restrict_every_keys_route_and_forbid_creating_keys() {
    let env = Env::new().await;
    let k1 = env.add_key(&env.root, "k1", "openai", "sk-1").await;
    let k2 = env.add_key(&env.root, "k2", "openai", "sk-2").await;
    let (_, t) = env.issue(&env.root, json!({"name": "n", "scopes": ["keys:write"], "keyIds": [k1]})).await;
    env.read(&t, &k1, "production").await.expect(200);
    let r = env.read(&t, &k2, "production").await.expect_error(404, "not_found");
    let missing = env.read(&t, "key_nonsense", "production").await.expect_error(404, "not_found");
    assert_eq!(r.text(), missing.text());
    env.call(Req::get(&format!("/keys/{k2}")).token(&t)).await.expect_error(404, "not_found");
    let listed = env.call(Req::get("/keys").token(&t)).await.expect(200);
    let ids: Vec<_> = listed.body["keys"].as_array().unwrap().iter().map(|k| k["keyId"].clone()).collect();
    assert_eq!(ids, vec![json!(k1)]);
    let body = json!({"name": "n", "llmType": "openai", "value": "v"});
    env.call(Req::post("/keys").token(&t).json(body)).await.expect_error(403, "forbidden");
    let audit = env.call(Req::get("/audit").token(&env.root)).await.expect(200);
    let denied: Vec<_> =
        audit.body["events"].as_array().unwrap().iter().filter(|e| e["action"] == "auth.denied").cloned().collect();
    // The two 404s caused by the allow-list and the 403.
    assert_eq!(denied.len(), 3, "{denied:?}");
    assert!(denied.iter().any(|e| e["keyId"] == json!(k2) && e["outcome"] == "denied"));
}

/// `GET /tokens` filters: expiring within, unused for, state; ANDed; bad
/// values are 400 naming the parameter.
#[tokio::test]
async fn token_listing_filters_by_expiry_use_and_state() {
    let env = Env::new().await;
    let key = env.add_key(&env.root, "k", "openai", "sk-filter").await;
    let (soon, _) = env.issue(&env.root, json!({"name": "soon", "scopes": ["keys:read"], "expiresIn": 3600})).await;
    let (used, used_token) =
        env.issue(&env.root, json!({"name": "used", "scopes": ["keys:read"], "expiresIn": 864000})).await;
    let (idle, _) = env.issue(&env.root, json!({"name": "idle", "scopes": ["keys:read"], "expiresIn": 864000})).await;
    let (gone, _) = env.issue(&env.root, json!({"name": "gone", "scopes": ["keys:read"], "expiresIn": 864000})).await;
    env.call(Req::delete(&format!("/tokens/{gone}")).token(&env.root)).await.expect(204);
    env.clock.advance_seconds(7200);
    env.call(Req::get(&format!("/external/keys/{key}/value")).token(&used_token)).await.expect(200);
    // `lastUsedAt` comes from the audit stream (the usage function).
    env.settle().await;
    let names = |q: &'static str| {
        let env = &env;
        async move {
            let r = env.call(Req::get(&format!("/tokens?{q}")).token(&env.root)).await.expect(200);
            let mut ids: Vec<String> = r.body["tokens"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["tokenId"].as_str().unwrap().to_owned())
                .collect();
            ids.sort();
            ids
        }
    };
    let sorted = |mut v: Vec<&String>| {
        v.sort();
        v.into_iter().cloned().collect::<Vec<_>>()
    };
    assert_eq!(names("state=expired").await, vec![soon.clone()]);
    assert_eq!(names("state=revoked").await, vec![gone.clone()]);
    assert_eq!(names("expiringWithin=86400").await, Vec::<String>::new(), "the expired one is not live");
    assert_eq!(names("expiringWithin=864000").await, sorted(vec![&used, &idle]));
    // Unused for an hour: idle (never used, created 2 h ago) and the root;
    // `used` read just now.
    let unused = names("unusedFor=3600").await;
    assert!(unused.contains(&idle) && !unused.contains(&used) && !unused.contains(&gone), "{unused:?}");
    assert_eq!(names("unusedFor=3600&expiringWithin=864000&state=live").await, vec![idle.clone()]);
    for (q, field) in [
        ("state=dead", "state"),
        ("expiringWithin=0", "expiringWithin"),
        ("expiringWithin=abc", "expiringWithin"),
        ("unusedFor=-5", "unusedFor"),
    ] {
        let r = env.call(Req::get(&format!("/tokens?{q}")).token(&env.root)).await.expect_error(400, "invalid_request");
        assert!(r.body["error"]["message"].as_str().unwrap().starts_with(field), "{q}: {}", r.text());
    }
}
