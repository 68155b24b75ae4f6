//! `template.yaml` agrees with the code: its tables are exactly the ones
//! `ibyok::store::schema` defines, every crate in `functions/` is deployed as
//! an arm64 `provided.al2023` function built by cargo-lambda, and every API
//! route reaches the function whose crate serves it. No AWS server needed.

use ibyok::api::Route;
use ibyok::store::schema::{self, Attr, Table};
use serde_yaml::{Mapping, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the tests crate is in the workspace").to_path_buf()
}

fn template() -> Value {
    let path = workspace_root().join("template.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// The value under a CloudFormation short tag (`!Ref`, `!GetAtt`, `!Sub`, ...)
/// or the value itself.
fn untag(v: &Value) -> &Value {
    match v {
        Value::Tagged(t) => untag(&t.value),
        v => v,
    }
}

fn field<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    untag(v).get(key).map(untag)
}

fn req<'a>(v: &'a Value, key: &str, what: &str) -> &'a Value {
    field(v, key).unwrap_or_else(|| panic!("{what}: no `{key}`"))
}

fn string<'a>(v: &'a Value, key: &str, what: &str) -> &'a str {
    req(v, key, what).as_str().unwrap_or_else(|| panic!("{what}: `{key}` is not a string"))
}

fn seq<'a>(v: &'a Value, key: &str, what: &str) -> &'a [Value] {
    req(v, key, what).as_sequence().unwrap_or_else(|| panic!("{what}: `{key}` is not a list"))
}

fn is_true(v: &Value, key: &str, what: &str) -> bool {
    match req(v, key, what) {
        Value::Bool(b) => *b,
        Value::String(s) => s == "true",
        _ => false,
    }
}

/// The template's resources of one type, by logical id.
fn resources<'a>(t: &'a Value, ty: &str) -> BTreeMap<String, &'a Value> {
    let all: &Mapping =
        req(t, "Resources", "template").as_mapping().expect("Resources is a mapping of logical ids to resources");
    all.iter()
        .filter(|(_, r)| field(r, "Type").and_then(Value::as_str) == Some(ty))
        .map(|(id, r)| (id.as_str().expect("logical ids are strings").to_owned(), r))
        .collect()
}

/// A KeySchema as (attribute, HASH|RANGE) pairs, in order.
fn key_schema(v: &Value, what: &str) -> Vec<(String, String)> {
    seq(v, "KeySchema", what)
        .iter()
        .map(|k| (string(k, "AttributeName", what).to_owned(), string(k, "KeyType", what).to_owned()))
        .collect()
}

fn expected_key_schema(hash: Attr, range: Option<Attr>) -> Vec<(String, String)> {
    std::iter::once((hash.name.to_owned(), "HASH".to_owned()))
        .chain(range.map(|r| (r.name.to_owned(), "RANGE".to_owned())))
        .collect()
}

fn check_table(t: &Value, table: &Table) {
    let what = table.logical_id;
    let resource = *resources(t, "AWS::DynamoDB::Table")
        .get(what)
        .unwrap_or_else(|| panic!("template.yaml has no AWS::DynamoDB::Table `{what}`"));
    let props = req(resource, "Properties", what);

    assert_eq!(key_schema(props, what), expected_key_schema(table.hash, table.range), "{what}: KeySchema");

    // AttributeDefinitions name exactly the key attributes of the table and
    // its indexes, each once, with its type.
    let defined: Vec<(String, String)> = seq(props, "AttributeDefinitions", what)
        .iter()
        .map(|a| (string(a, "AttributeName", what).to_owned(), string(a, "AttributeType", what).to_owned()))
        .collect();
    let defined_set: BTreeSet<_> = defined.iter().cloned().collect();
    assert_eq!(defined_set.len(), defined.len(), "{what}: an attribute is defined twice: {defined:?}");
    let expected: BTreeSet<(String, String)> =
        table.key_attributes().iter().map(|a| (a.name.to_owned(), a.ty.as_str().to_owned())).collect();
    assert_eq!(defined_set, expected, "{what}: AttributeDefinitions");

    let gsis: BTreeMap<String, &Value> = field(props, "GlobalSecondaryIndexes")
        .map(|v| v.as_sequence().unwrap_or_else(|| panic!("{what}: GlobalSecondaryIndexes is not a list")).as_slice())
        .unwrap_or_default()
        .iter()
        .map(|i| (string(i, "IndexName", what).to_owned(), i))
        .collect();
    let expected_names: BTreeSet<&str> = table.indexes.iter().map(|i| i.name).collect();
    assert_eq!(gsis.keys().map(String::as_str).collect::<BTreeSet<_>>(), expected_names, "{what}: the GSIs");
    for index in table.indexes {
        let what = format!("{what} index {}", index.name);
        let gsi = gsis[index.name];
        assert_eq!(key_schema(gsi, &what), expected_key_schema(index.hash, index.range), "{what}: KeySchema");
        let projection = string(req(gsi, "Projection", &what), "ProjectionType", &what);
        if index.keys_only {
            assert_eq!(projection, "KEYS_ONLY", "{what}: projection");
        } else {
            assert_ne!(projection, "KEYS_ONLY", "{what}: projection");
        }
    }
    assert!(field(props, "LocalSecondaryIndexes").is_none(), "{what}: the schema has no local secondary index");

    match table.ttl {
        Some(attr) => {
            let ttl = req(props, "TimeToLiveSpecification", what);
            assert_eq!(string(ttl, "AttributeName", what), attr, "{what}: TTL attribute");
            assert!(is_true(ttl, "Enabled", what), "{what}: TTL is not enabled");
        }
        None => assert!(field(props, "TimeToLiveSpecification").is_none(), "{what}: the schema has no TTL"),
    }

    assert_eq!(string(props, "BillingMode", what), "PAY_PER_REQUEST", "{what}: BillingMode");
    let sse = req(props, "SSESpecification", what);
    assert!(is_true(sse, "SSEEnabled", what), "{what}: SSE is not enabled");
    assert_eq!(string(sse, "SSEType", what), "KMS", "{what}: SSEType");
    assert!(field(sse, "KMSMasterKeyId").is_some(), "{what}: SSE names no customer managed key");
    let pitr = req(props, "PointInTimeRecoverySpecification", what);
    assert!(is_true(pitr, "PointInTimeRecoveryEnabled", what), "{what}: point-in-time recovery is not enabled");
}

#[test]
fn tables_match_the_schema() {
    let t = template();
    for table in &schema::ALL {
        check_table(&t, table);
    }
    let in_template: BTreeSet<String> = resources(&t, "AWS::DynamoDB::Table").into_keys().collect();
    let in_schema: BTreeSet<String> = schema::ALL.iter().map(|t| t.logical_id.to_owned()).collect();
    assert_eq!(in_template, in_schema, "the template's tables are the schema's");
}

/// The package name of each crate under `functions/`.
fn function_crates() -> BTreeSet<String> {
    let dir = workspace_root().join("functions");
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
        let manifest = entry.expect("a directory entry").path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else { continue };
        let name = text
            .lines()
            .skip_while(|l| l.trim() != "[package]")
            .find_map(|l| {
                let (key, value) = l.split_once('=')?;
                (key.trim() == "name").then(|| value.trim().trim_matches('"').to_owned())
            })
            .unwrap_or_else(|| panic!("{} names no package", manifest.display()));
        out.insert(name);
    }
    assert!(!out.is_empty(), "no crates under {}", dir.display());
    out
}

/// A function property, from the function or else from `Globals.Function`.
fn function_property<'a>(t: &'a Value, function: &'a Value, key: &str) -> Option<&'a Value> {
    field(function, "Properties")
        .and_then(|p| field(p, key))
        .or_else(|| field(t, "Globals").and_then(|g| field(g, "Function")).and_then(|f| field(f, key)))
}

/// The template's functions by the binary cargo-lambda builds for them.
fn functions_by_binary(t: &Value) -> BTreeMap<String, (String, &Value)> {
    let mut out = BTreeMap::new();
    for (id, f) in resources(t, "AWS::Serverless::Function") {
        let metadata = req(f, "Metadata", &id);
        assert_eq!(string(metadata, "BuildMethod", &id), "rust-cargolambda", "{id}: BuildMethod");
        let binary = string(req(metadata, "BuildProperties", &id), "Binary", &id).to_owned();
        if let Some((other, _)) = out.insert(binary.clone(), (id.clone(), f)) {
            panic!("{other} and {id} both deploy the binary {binary}");
        }
    }
    out
}

#[test]
fn every_function_crate_is_deployed_for_arm64() {
    let t = template();
    let functions = functions_by_binary(&t);
    let crates = function_crates();
    assert_eq!(functions.keys().cloned().collect::<BTreeSet<_>>(), crates, "deployed binaries vs crates in functions/");
    for (binary, (id, f)) in &functions {
        let prop = |key: &str| {
            function_property(&t, f, key).unwrap_or_else(|| panic!("{id} ({binary}): no {key}, nor in Globals"))
        };
        assert_eq!(prop("Runtime").as_str(), Some("provided.al2023"), "{id}: Runtime");
        assert_eq!(prop("Handler").as_str(), Some("bootstrap"), "{id}: Handler");
        assert_eq!(prop("CodeUri").as_str(), Some("."), "{id}: CodeUri (cargo-lambda builds from the workspace)");
        let arches: Vec<&str> = prop("Architectures")
            .as_sequence()
            .expect("Architectures is a list")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(arches, ["arm64"], "{id}: Architectures");
    }
}

/// The routes each HTTP function's crate serves.
fn crate_routes() -> BTreeMap<&'static str, &'static [Route]> {
    BTreeMap::from([
        ("submit", submit::ROUTES),
        ("retrieve", retrieve::ROUTES),
        ("token-issue", token_issue::ROUTES),
        ("revoke", revoke::ROUTES),
        ("keys", keys::ROUTES),
        ("account", account::ROUTES),
        ("identities", identities::ROUTES),
        ("auth", auth::ROUTES),
    ])
}

/// The function that answers the `$default` (catch-all) route.
const CATCH_ALL: &str = "account";

#[test]
fn every_route_reaches_the_function_that_serves_it() {
    let t = template();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut catch_all = Vec::new();
    for (binary, (id, f)) in functions_by_binary(&t) {
        let mut routes = BTreeSet::new();
        let events = function_property(&t, f, "Events").and_then(Value::as_mapping).cloned().unwrap_or_default();
        for (name, event) in &events {
            let what = format!("{id} event {}", name.as_str().unwrap_or("?"));
            if string(event, "Type", &what) != "HttpApi" {
                continue;
            }
            let props = req(event, "Properties", &what);
            assert_eq!(string(props, "PayloadFormatVersion", &what), "2.0", "{what}: payload format");
            match (field(props, "Method"), field(props, "Path")) {
                (None, None) => catch_all.push(binary.clone()),
                (Some(m), Some(p)) => {
                    let key = format!("{} {}", m.as_str().expect("a method").to_ascii_uppercase(), p.as_str().unwrap());
                    if let Some(other) = seen.insert(key.clone(), binary.clone()) {
                        panic!("{key} is routed to both {other} and {binary}");
                    }
                    routes.insert(key);
                }
                _ => panic!("{what}: Method and Path go together"),
            }
        }
        let served: BTreeSet<String> = crate_routes()
            .get(binary.as_str())
            .map(|rs| rs.iter().map(|r| r.key().to_owned()).collect())
            .unwrap_or_default();
        assert_eq!(routes, served, "{id}: its HttpApi routes vs {binary}::ROUTES");
    }
    assert_eq!(catch_all, [CATCH_ALL], "exactly one function answers the $default route");
    let all: BTreeSet<String> = Route::ALL.iter().map(|r| r.key().to_owned()).collect();
    assert_eq!(seen.into_keys().collect::<BTreeSet<_>>(), all, "the API's routes vs Route::ALL");
}

#[test]
fn only_submit_and_retrieve_know_the_value_key() {
    let t = template();
    for (binary, (id, f)) in functions_by_binary(&t) {
        let has_key = field(f, "Properties")
            .and_then(|p| field(p, "Environment"))
            .and_then(|e| field(e, "Variables"))
            .and_then(|v| field(v, "IBYOK_KMS_KEY_ID"))
            .is_some();
        assert_eq!(has_key, binary == "submit" || binary == "retrieve", "{id}: IBYOK_KMS_KEY_ID");
    }
    let globals = field(&t, "Globals").and_then(|g| field(g, "Function"));
    let global_env = globals.and_then(|f| field(f, "Environment")).and_then(|e| field(e, "Variables"));
    assert!(global_env.and_then(|v| field(v, "IBYOK_KMS_KEY_ID")).is_none(), "IBYOK_KMS_KEY_ID in Globals");
}

#[test]
fn the_console_is_private_behind_cloudfront_with_the_apis_origin_and_headers() {
    let t = template();
    let bucket = resources(&t, "AWS::S3::Bucket")["ConsoleBucket"];
    let block = req(req(bucket, "Properties", "ConsoleBucket"), "PublicAccessBlockConfiguration", "ConsoleBucket");
    for k in ["BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"] {
        assert!(is_true(block, k, "ConsoleBucket"), "ConsoleBucket: {k}");
    }
    let dist = resources(&t, "AWS::CloudFront::Distribution");
    let config = req(req(dist["ConsoleDistribution"], "Properties", "dist"), "DistributionConfig", "dist");
    let origins = seq(config, "Origins", "dist");
    let s3 = origins.iter().find(|o| string(o, "Id", "origin") == "console").expect("the console origin");
    assert!(field(s3, "OriginAccessControlId").is_some(), "the bucket is read through origin access control");
    // Same origin: the default behaviour is the API, uncached.
    let default = req(config, "DefaultCacheBehavior", "dist");
    assert_eq!(string(default, "TargetOriginId", "default"), "api");
    assert_eq!(string(default, "ViewerProtocolPolicy", "default"), "https-only");
    let behaviours = seq(config, "CacheBehaviors", "dist");
    let patterns: BTreeSet<&str> = behaviours.iter().map(|b| string(b, "PathPattern", "behaviour")).collect();
    assert_eq!(patterns, BTreeSet::from(["/console", "/console/*"]));
    for b in behaviours {
        assert_eq!(string(b, "TargetOriginId", "behaviour"), "console");
        assert!(field(b, "ResponseHeadersPolicyId").is_some(), "the console's headers policy");
    }
    let policy = resources(&t, "AWS::CloudFront::ResponseHeadersPolicy")["ConsoleHeadersPolicy"];
    let headers = req(
        req(req(policy, "Properties", "policy"), "ResponseHeadersPolicyConfig", "policy"),
        "SecurityHeadersConfig",
        "policy",
    );
    let csp = req(headers, "ContentSecurityPolicy", "policy");
    assert_eq!(string(csp, "ContentSecurityPolicy", "policy"), ibyok::api::CONSOLE_CSP, "the dev server's CSP");
    assert_eq!(string(req(headers, "ReferrerPolicy", "policy"), "ReferrerPolicy", "policy"), "no-referrer");
    assert!(field(headers, "ContentTypeOptions").is_some(), "nosniff");
}
