//! Item mapping: `*_item` functions write records, `*_from` read them back.

use super::*;

pub(super) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}
pub(super) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}
pub(super) fn b(v: &[u8]) -> AttributeValue {
    AttributeValue::B(Blob::new(v))
}
pub(super) fn list(v: impl IntoIterator<Item = String>) -> AttributeValue {
    AttributeValue::L(v.into_iter().map(AttributeValue::S).collect())
}

pub(super) fn bad(what: &str) -> StoreError {
    StoreError::internal(FaultKind::Data, format!("stored item has a bad or missing `{what}`"))
}

pub(super) fn get_s<'a>(item: &'a Item, k: &str) -> Result<&'a str, StoreError> {
    item.get(k).and_then(|v| v.as_s().ok()).map(String::as_str).ok_or_else(|| bad(k))
}
pub(super) fn opt_s(item: &Item, k: &str) -> Option<String> {
    item.get(k).and_then(|v| v.as_s().ok()).cloned()
}
pub(super) fn get_n<T: std::str::FromStr>(item: &Item, k: &str) -> Result<T, StoreError> {
    item.get(k).and_then(|v| v.as_n().ok()).and_then(|x| x.parse().ok()).ok_or_else(|| bad(k))
}
pub(super) fn opt_n<T: std::str::FromStr>(item: &Item, k: &str) -> Option<T> {
    item.get(k).and_then(|v| v.as_n().ok()).and_then(|x| x.parse().ok())
}
pub(super) fn get_b<'a>(item: &'a Item, k: &str) -> Result<&'a [u8], StoreError> {
    item.get(k).and_then(|v| v.as_b().ok()).map(|b| b.as_ref()).ok_or_else(|| bad(k))
}
pub(super) fn opt_list(item: &Item, k: &str) -> Result<Option<Vec<String>>, StoreError> {
    match item.get(k) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::L(l)) => {
            l.iter().map(|v| v.as_s().cloned().map_err(|_| bad(k))).collect::<Result<_, _>>().map(Some)
        }
        Some(_) => Err(bad(k)),
    }
}
pub(super) fn ts(item: &Item, k: &str) -> Result<Timestamp, StoreError> {
    get_n(item, k).map(Timestamp::from_millis)
}
pub(super) fn opt_ts(item: &Item, k: &str) -> Option<Timestamp> {
    opt_n(item, k).map(Timestamp::from_millis)
}

pub(super) fn purge_shard(id: &TokenId) -> String {
    (id.as_str().bytes().last().unwrap_or(0) % PURGE_SHARDS).to_string()
}

// ---------------------------------------------------------------- records

/// Encodes a token record as its stored item (also used to seed benchmarks).
pub fn token_item(t: &TokenRecord) -> Item {
    // Written before any revocation: purged at expiry (whole seconds, up).
    let purge = t.grant.expires_at.ceil_seconds();
    let mut item = Item::from([
        (TOKEN_ID.into(), s(t.token_id.as_str())),
        (TENANT_ID.into(), s(t.tenant_id.as_str())),
        ("verifier".into(), b(&t.verifier)),
        ("name".into(), s(&t.name)),
        ("scopes".into(), list(t.grant.scopes.iter().map(|s| s.as_str().to_owned()))),
        (CREATED_AT.into(), n(t.created_at.millis())),
        ("expiresAt".into(), n(t.grant.expires_at.millis())),
        ("ancestors".into(), list(t.ancestors.iter().map(ToString::to_string))),
        ("uses".into(), n(t.uses)),
        (PURGE_SHARD.into(), s(purge_shard(&t.token_id))),
        (PURGE_AT.into(), n(purge)),
        (TTL.into(), n(purge + TTL_MARGIN_SECONDS)),
    ]);
    if let Some(k) = &t.grant.key_ids {
        item.insert("keyIds".into(), list(k.iter().map(ToString::to_string)));
    }
    if let Some(c) = &t.grant.allowed_cidrs {
        item.insert("allowedCidrs".into(), list(c.iter().map(ToString::to_string)));
    }
    if let Some(at) = t.notice_second() {
        item.insert(NOTICE_SHARD.into(), s(purge_shard(&t.token_id)));
        item.insert(NOTICE_AT.into(), n(at));
    }
    if let Some(r) = t.grant.rate_limit {
        item.insert("rateLimit".into(), n(r));
    }
    if let Some(p) = &t.issued_by {
        item.insert("issuedBy".into(), s(p.as_str()));
    }
    if let Some(r) = t.revoked_at {
        item.insert("revokedAt".into(), n(r.millis()));
    }
    if let Some(u) = t.last_used_at {
        item.insert("lastUsedAt".into(), n(u.millis()));
    }
    if let Some(i) = &t.identity_id {
        item.insert(IDENTITY_ID.into(), s(i.as_str()));
    }
    if let Some(m) = &t.member_id {
        item.insert("memberId".into(), s(m.as_str()));
    }
    item
}

/// A child's entry under its issuer. Its TTL is the child's, a backstop for
/// cleanup, which deletes the entry with the child.
/// A child's entry under its issuer: a token, or the identity it was
/// exchanged through.
pub(super) fn child_item(issuer: &str, child: &TokenRecord) -> Item {
    Item::from([
        (ISSUER_ID.into(), s(issuer)),
        (TOKEN_ID.into(), s(child.token_id.as_str())),
        // Spares the revocation a read: its purge second needs the expiry.
        ("expiresAt".into(), n(child.grant.expires_at.millis())),
        (TTL.into(), n(child.grant.expires_at.ceil_seconds() + TTL_MARGIN_SECONDS)),
    ])
}

/// On an issuer's item once it has issued a token: revocation reads the
/// children table only for tokens that carry it. Constant size.
pub(super) const ISSUED: &str = "issued";

/// The earlier layout's set of child ids on the issuer's item (it grew with
/// every child ever issued). Read by revocation so that those items keep
/// working; never written.
pub(super) const LEGACY_CHILDREN: &str = "children";

/// The DynamoDB TTL deletes an item this long after cleanup should have: it
/// is a backstop, not the mechanism.
pub(super) const TTL_MARGIN_SECONDS: i64 = 86_400;

/// A grant as token and identity items hold it (`scopes`, `keyIds`,
/// `allowedCidrs`, `rateLimit`), its expiry under `expires_attr`.
pub(super) fn grant_from(item: &Item, expires_attr: &str) -> Result<Grant, StoreError> {
    let scopes = opt_list(item, "scopes")?
        .ok_or_else(|| bad("scopes"))?
        .iter()
        .map(|x| Scope::parse(x).ok_or_else(|| bad("scopes")))
        .collect::<Result<Scopes, _>>()?;
    let allowed_cidrs = match opt_list(item, "allowedCidrs")? {
        None => None,
        Some(v) => Some(v.iter().map(|c| c.parse().map_err(|_| bad("allowedCidrs"))).collect::<Result<_, _>>()?),
    };
    Ok(Grant {
        scopes,
        expires_at: ts(item, expires_attr)?,
        key_ids: opt_list(item, "keyIds")?.map(|v| v.into_iter().map(KeyId::from_stored).collect()),
        allowed_cidrs,
        rate_limit: match item.get("rateLimit") {
            None => None,
            Some(_) => Some(get_n::<u32>(item, "rateLimit").ok().filter(|r| *r > 0).ok_or_else(|| bad("rateLimit"))?),
        },
    })
}

/// Decodes a stored token item; a malformed item is `StoreError::Internal`.
pub fn token_from(item: &Item) -> Result<TokenRecord, StoreError> {
    Ok(TokenRecord {
        token_id: TokenId::from_stored(get_s(item, TOKEN_ID)?.to_owned()),
        tenant_id: TenantId::parse(get_s(item, TENANT_ID)?).ok_or_else(|| bad(TENANT_ID))?,
        verifier: get_b(item, "verifier")?.to_vec(),
        name: get_s(item, "name")?.to_owned(),
        grant: grant_from(item, "expiresAt")?,
        created_at: ts(item, CREATED_AT)?,
        issued_by: opt_s(item, "issuedBy").map(TokenId::from_stored),
        ancestors: opt_list(item, "ancestors")?.unwrap_or_default().into_iter().map(TokenId::from_stored).collect(),
        revoked_at: opt_ts(item, "revokedAt"),
        last_used_at: opt_ts(item, "lastUsedAt"),
        uses: opt_n(item, "uses").unwrap_or(0),
        identity_id: opt_s(item, IDENTITY_ID).map(IdentityId::from_stored),
        member_id: opt_s(item, "memberId").map(crate::ids::MemberId::from_stored),
    }
    .as_loaded())
}

pub(super) fn overrides_value(o: &ModeOverrides) -> AttributeValue {
    AttributeValue::M(o.iter().map(|(e, m)| (e.as_str().to_owned(), s(m.as_str()))).collect())
}

/// A key item holds its current version at the top level, where items
/// written before versions hold their only value (`ciphertext`, `nonce`,
/// `wrappedKey`, `preview`), with its number (`version`; absent: 1) and
/// creation (`versionCreatedAt`; absent: the key's); `lastVersion`, the
/// highest number given (absent: the current one); and at most two more
/// envelopes, each a map ([`version_value`]): `previous` (with `retiresAt`,
/// and then `retireShard`/`retireAt` for cleanup's index) and `pending`.
/// Retired versions are removed, so an item holds at most three envelopes.
pub(super) fn key_item(k: &KeyRecord) -> Item {
    let mut item = Item::from([
        (KEY_ID.into(), s(k.key_id.as_str())),
        (TENANT_ID.into(), s(k.tenant_id.as_str())),
        ("name".into(), s(&k.name)),
        ("llmType".into(), s(&k.llm_type)),
        ("modeOverrides".into(), overrides_value(&k.mode_overrides)),
        (CREATED_AT.into(), n(k.created_at.millis())),
        ("updatedAt".into(), n(k.updated_at.millis())),
        ("retrievals".into(), n(k.retrievals)),
        (LAST_VERSION.into(), n(k.last_version)),
    ]);
    item.extend(current_attributes(&k.current));
    if let Some(p) = &k.previous {
        item.extend(previous_attributes(&k.key_id, p));
    }
    if let Some(p) = &k.pending {
        item.insert(PENDING.into(), version_value(p));
    }
    if let Some(u) = k.last_used_at {
        item.insert("lastUsedAt".into(), n(u.millis()));
    }
    item
}

pub(super) const VERSION: &str = "version";
pub(super) const LAST_VERSION: &str = "lastVersion";
pub(super) const PREVIOUS: &str = "previous";
pub(super) const PENDING: &str = "pending";

/// The top-level attributes of the current version.
pub(super) fn current_attributes(v: &KeyVersion) -> [(String, AttributeValue); 6] {
    [
        (VERSION.into(), n(v.number)),
        ("versionCreatedAt".into(), n(v.created_at.millis())),
        ("preview".into(), s(&v.preview)),
        ("ciphertext".into(), b(&v.envelope.ciphertext)),
        ("nonce".into(), b(&v.envelope.nonce)),
        ("wrappedKey".into(), b(&v.envelope.wrapped_key)),
    ]
}

/// The previous version and its entry in cleanup's index.
pub(super) fn previous_attributes(key: &KeyId, v: &KeyVersion) -> [(String, AttributeValue); 3] {
    let retire_at = v.retires_at.map_or(0, Timestamp::ceil_seconds);
    [(PREVIOUS.into(), version_value(v)), (RETIRE_SHARD.into(), s(retire_shard(key))), (RETIRE_AT.into(), n(retire_at))]
}

pub(super) fn retire_shard(id: &KeyId) -> String {
    (id.as_str().bytes().last().unwrap_or(0) % RETIRE_SHARDS).to_string()
}

/// A previous or pending version as a map.
pub(super) fn version_value(v: &KeyVersion) -> AttributeValue {
    let mut m = Item::from([
        (VERSION.into(), n(v.number)),
        (CREATED_AT.into(), n(v.created_at.millis())),
        ("preview".into(), s(&v.preview)),
        ("ciphertext".into(), b(&v.envelope.ciphertext)),
        ("nonce".into(), b(&v.envelope.nonce)),
        ("wrappedKey".into(), b(&v.envelope.wrapped_key)),
    ]);
    if let Some(r) = v.retires_at {
        m.insert("retiresAt".into(), n(r.millis()));
    }
    AttributeValue::M(m)
}

fn envelope_from(item: &Item) -> Result<Envelope, StoreError> {
    let nonce: [u8; NONCE_LEN] = get_b(item, "nonce")?.try_into().map_err(|_| bad("nonce"))?;
    Ok(Envelope {
        ciphertext: get_b(item, "ciphertext")?.to_vec(),
        nonce,
        wrapped_key: get_b(item, "wrappedKey")?.to_vec(),
    })
}

fn version_from(item: &Item, k: &str) -> Result<Option<KeyVersion>, StoreError> {
    let m = match item.get(k) {
        None | Some(AttributeValue::Null(_)) => return Ok(None),
        Some(AttributeValue::M(m)) => m,
        Some(_) => return Err(bad(k)),
    };
    let number: u64 = get_n(m, VERSION).map_err(|_| bad(k))?;
    if number == 0 {
        return Err(bad(k));
    }
    Ok(Some(KeyVersion {
        number,
        created_at: ts(m, CREATED_AT).map_err(|_| bad(k))?,
        retires_at: opt_ts(m, "retiresAt"),
        preview: get_s(m, "preview").map_err(|_| bad(k))?.to_owned(),
        envelope: envelope_from(m).map_err(|_| bad(k))?,
    }))
}

/// Decodes a stored key item (the envelope decoder); a malformed item is
/// `StoreError::Internal`, never a panic. An item written before versions
/// reads as version 1, current, created with the key.
pub fn key_from(item: &Item) -> Result<KeyRecord, StoreError> {
    let mut mode_overrides = ModeOverrides::new();
    if let Some(AttributeValue::M(m)) = item.get("modeOverrides") {
        for (env, mode) in m {
            let env = Environment::parse(env).ok_or_else(|| bad("modeOverrides"))?;
            let mode = mode.as_s().ok().and_then(|x| Mode::parse(x)).ok_or_else(|| bad("modeOverrides"))?;
            mode_overrides.insert(env, mode);
        }
    }
    let created_at = ts(item, CREATED_AT)?;
    let number = match item.get(VERSION) {
        None => 1,
        Some(_) => get_n::<u64>(item, VERSION)?,
    };
    if number == 0 {
        return Err(bad(VERSION));
    }
    let current = KeyVersion {
        number,
        created_at: opt_ts(item, "versionCreatedAt").unwrap_or(created_at),
        retires_at: None,
        preview: get_s(item, "preview")?.to_owned(),
        envelope: envelope_from(item)?,
    };
    let previous = version_from(item, PREVIOUS)?;
    if previous.as_ref().is_some_and(|p| p.retires_at.is_none()) {
        return Err(bad(PREVIOUS));
    }
    let pending = version_from(item, PENDING)?;
    let highest = [Some(&current), previous.as_ref(), pending.as_ref()].into_iter().flatten().map(|v| v.number).max();
    let last_version = opt_n(item, LAST_VERSION).unwrap_or(number).max(highest.unwrap_or(number));
    Ok(KeyRecord {
        key_id: KeyId::from_stored(get_s(item, KEY_ID)?.to_owned()),
        tenant_id: TenantId::parse(get_s(item, TENANT_ID)?).ok_or_else(|| bad(TENANT_ID))?,
        name: get_s(item, "name")?.to_owned(),
        llm_type: get_s(item, "llmType")?.to_owned(),
        mode_overrides,
        created_at,
        updated_at: ts(item, "updatedAt")?,
        last_used_at: opt_ts(item, "lastUsedAt"),
        retrievals: opt_n(item, "retrievals").unwrap_or(0),
        current,
        previous,
        pending,
        last_version,
    })
}

pub(super) fn tenant_item(t: &TenantRecord) -> Item {
    let mut item = Item::from([
        (TENANT_ID.into(), s(t.tenant_id.as_str())),
        ("name".into(), s(&t.name)),
        (CREATED_AT.into(), n(t.created_at.millis())),
        ("development".into(), s(t.modes.development.as_str())),
        ("staging".into(), s(t.modes.staging.as_str())),
        ("production".into(), s(t.modes.production.as_str())),
    ]);
    if let Some(q) = t.reads_per_month {
        item.insert(READS_PER_MONTH.into(), n(q));
    }
    item
}

/// The tenant item's quota attribute.
pub(super) const READS_PER_MONTH: &str = "readsPerMonth";

pub(super) fn modes_from(item: &Item) -> Result<TenantModes, StoreError> {
    let mut modes = TenantModes::default();
    for env in Environment::ALL {
        if let Some(m) = opt_s(item, env.as_str()) {
            modes.set(env, Mode::parse(&m).ok_or_else(|| bad(env.as_str()))?);
        }
    }
    Ok(modes)
}

/// Decodes a stored tenant item; a malformed item is `StoreError::Internal`.
pub fn tenant_from(item: &Item) -> Result<TenantRecord, StoreError> {
    Ok(TenantRecord {
        // An earlier layout's copy is keyed `<tenantId>#<r>`.
        tenant_id: get_s(item, TENANT_ID)?.split('#').next().and_then(TenantId::parse).ok_or_else(|| bad(TENANT_ID))?,
        name: opt_s(item, "name").unwrap_or_default(),
        modes: modes_from(item)?,
        created_at: opt_ts(item, CREATED_AT).unwrap_or(Timestamp::from_millis(0)),
        reads_per_month: match item.get(READS_PER_MONTH) {
            None => None,
            Some(_) => Some(get_n::<u64>(item, READS_PER_MONTH)?),
        },
    })
}

pub(super) fn audit_item(e: &AuditEvent) -> Result<Item, StoreError> {
    let tenant =
        e.tenant_id.as_ref().ok_or_else(|| StoreError::internal(FaultKind::Data, "audit event without tenant"))?;
    let mut item = Item::from([
        (TENANT_ID.into(), s(audit_partition(tenant, e))),
        (EVENT_KEY.into(), s(event_key(e))),
        ("at".into(), n(e.at.millis())),
        ("requestId".into(), s(&e.request_id)),
        ("action".into(), s(enum_str(&e.action))),
        ("outcome".into(), s(enum_str(&e.outcome))),
    ]);
    let mut opt = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            item.insert(k.to_owned(), s(v));
        }
    };
    opt(TOKEN_ID, e.token_id.as_ref().map(ToString::to_string));
    opt(KEY_ID, e.key_id.as_ref().map(ToString::to_string));
    opt("environment", e.environment.map(|x| x.as_str().to_owned()));
    opt("effectiveMode", e.effective_mode.map(|x| x.as_str().to_owned()));
    opt("sourceIp", e.source_ip.clone());
    opt("userAgent", e.user_agent.clone());
    opt(IDENTITY_ID, e.identity_id.as_ref().map(ToString::to_string));
    opt("detail", e.detail.clone());
    if let Some(a) = &e.actor {
        item.insert("actor".into(), actor_value(a));
    }
    if let Some(v) = e.version {
        item.insert(VERSION.to_owned(), n(v));
    }
    if let Some(r) = e.retain_until {
        item.insert(TTL.into(), n(r.seconds()));
    }
    Ok(item)
}

/// The audit partition of an event: its tenant and a shard derived from its
/// event id (so that the key of an event is known from the event alone).
pub(super) fn audit_partition(tenant: &TenantId, e: &AuditEvent) -> String {
    format!("{tenant}#{:02}", audit_shard(&e.event_id))
}

/// Every audit partition of a tenant, the earlier layout's bare id last.
pub(super) fn audit_partitions(tenant: &TenantId) -> Vec<String> {
    (0..AUDIT_SHARDS).map(|i| format!("{tenant}#{i:02}")).chain(std::iter::once(tenant.to_string())).collect()
}

/// The tenant of an audit partition.
pub(super) fn audit_tenant(partition: &str) -> &str {
    partition.split_once('#').map_or(partition, |(t, _)| t)
}

/// The audit table's sort key: the time, then the event id (which orders
/// the events of one millisecond and makes a retried write recognisable).
pub(super) fn event_key(e: &AuditEvent) -> String {
    format!("{:015}#{}", e.at.millis(), e.event_id)
}

/// The counter item of a token's requests in one UTC minute.
pub(super) fn rate_counter_id(token: &TokenId, minute: i64) -> String {
    format!("rate#{token}#{minute}")
}

/// The counter item of a tenant's value reads in one UTC month, shard
/// `shard` (shard 0 has no suffix).
pub fn quota_counter_id(tenant: &TenantId, month: Month, shard: usize) -> String {
    match shard {
        0 => format!("quota#{tenant}#{}", month.key()),
        i => format!("quota#{tenant}#{}#{i}", month.key()),
    }
}

/// At most this many quota shards; one per [`QUOTA_READS_PER_SHARD`] of quota.
pub(super) const QUOTA_SHARDS: usize = 8;
pub const QUOTA_READS_PER_SHARD: u64 = 10_000;

/// A quota's share per shard: `ceil(quota / 10,000)` shards (1 to 8), the
/// quota split as evenly as it goes; the shares add up to the quota.
pub fn quota_shares(quota: u64) -> Vec<u64> {
    let k = quota.div_ceil(QUOTA_READS_PER_SHARD).clamp(1, QUOTA_SHARDS as u64);
    (0..k).map(|i| quota / k + u64::from(i < quota % k)).collect()
}

/// How long a month's quota counter is kept after the month ends.
pub(super) const QUOTA_KEPT_SECONDS: i64 = 366 * 86_400;

/// The live-token rule ([`TokenRecord::is_live`]) as a condition on a token
/// item, at the time bound to `:at` (milliseconds).
pub(super) const LIVE_TOKEN: &str = "attribute_not_exists(revokedAt) AND expiresAt > :at";

/// The serde name of a unit enum variant.
pub(super) fn enum_str<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

pub(super) fn enum_from<T: serde::de::DeserializeOwned>(item: &Item, k: &str) -> Result<T, StoreError> {
    serde_json::from_value(serde_json::Value::String(get_s(item, k)?.to_owned())).map_err(|_| bad(k))
}

pub(super) fn audit_from(item: &Item) -> Result<AuditEvent, StoreError> {
    Ok(AuditEvent {
        tenant_id: Some(TenantId::from_stored(audit_tenant(get_s(item, TENANT_ID)?).to_owned())),
        at: ts(item, "at")?,
        request_id: get_s(item, "requestId")?.to_owned(),
        action: enum_from(item, "action")?,
        token_id: opt_s(item, TOKEN_ID).map(TokenId::from_stored),
        key_id: opt_s(item, KEY_ID).map(KeyId::from_stored),
        version: opt_n(item, VERSION),
        environment: opt_s(item, "environment").and_then(|x| Environment::parse(&x)),
        effective_mode: opt_s(item, "effectiveMode").and_then(|x| Mode::parse(&x)),
        outcome: enum_from(item, "outcome")?,
        source_ip: opt_s(item, "sourceIp"),
        user_agent: opt_s(item, "userAgent"),
        actor: item.get("actor").map(actor_from).transpose()?,
        identity_id: opt_s(item, IDENTITY_ID).map(IdentityId::from_stored),
        detail: opt_s(item, "detail"),
        event_id: get_s(item, EVENT_KEY)?.split_once('#').map(|(_, id)| id.to_owned()).unwrap_or_default(),
        retain_until: opt_n::<i64>(item, TTL).map(|x| Timestamp::from_millis(x * 1000)),
    })
}

fn actor_value(a: &Actor) -> AttributeValue {
    let mut m = HashMap::from([("kind".to_owned(), s(a.kind.as_str()))]);
    let fields = [
        (TOKEN_ID, a.token_id.as_ref().map(ToString::to_string)),
        ("memberId", a.member_id.clone()),
        (IDENTITY_ID, a.identity_id.as_ref().map(ToString::to_string)),
        ("name", a.name.clone()),
    ];
    for (k, v) in fields {
        if let Some(v) = v {
            m.insert(k.to_owned(), s(v));
        }
    }
    AttributeValue::M(m)
}

fn actor_from(v: &AttributeValue) -> Result<Actor, StoreError> {
    let m = v.as_m().map_err(|_| bad("actor"))?;
    let text = |k: &str| m.get(k).and_then(|v| v.as_s().ok()).cloned();
    Ok(Actor {
        kind: text("kind").as_deref().and_then(ActorKind::parse).ok_or_else(|| bad("actor"))?,
        token_id: text(TOKEN_ID).map(TokenId::from_stored),
        member_id: text("memberId"),
        identity_id: text(IDENTITY_ID).map(IdentityId::from_stored),
        name: text("name"),
    })
}
