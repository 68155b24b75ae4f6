//! The data file of `ibyok dev --data-dir`: plain JSON of the records (the
//! values inside are the envelopes, sealed under the local master key).
use super::*;
use crate::token::{Grant, Scope};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct TokenRow {
    token_id: String,
    tenant_id: String,
    verifier: String,
    name: String,
    scopes: Vec<Scope>,
    expires_at: i64,
    key_ids: Option<Vec<String>>,
    allowed_cidrs: Option<Vec<String>>,
    /// Files written before rate limits have none.
    #[serde(default)]
    rate_limit: Option<u32>,
    created_at: i64,
    issued_by: Option<String>,
    ancestors: Vec<String>,
    revoked_at: Option<i64>,
    last_used_at: Option<i64>,
    uses: u64,
    /// Files written before workload identities have none.
    #[serde(default)]
    identity_id: Option<String>,
    /// Files written before sign-in have none.
    #[serde(default)]
    member_id: Option<String>,
    children: Vec<String>,
    purge_at: i64,
    /// When its expiry notice is due (epoch seconds); `None` once sent or
    /// for a short-lived token. Files written before notices: none.
    #[serde(default)]
    notice_at: Option<i64>,
}

#[derive(Serialize, Deserialize)]
struct KeyRow {
    key_id: String,
    tenant_id: String,
    name: String,
    llm_type: String,
    preview: String,
    mode_overrides: ModeOverrides,
    created_at: i64,
    updated_at: i64,
    last_used_at: Option<i64>,
    retrievals: u64,
    ciphertext: String,
    nonce: String,
    wrapped_key: String,
    /// The current version's number and creation; files written before
    /// versions have neither (version 1, created with the key).
    #[serde(default)]
    version: Option<u64>,
    #[serde(default)]
    version_created_at: Option<i64>,
    #[serde(default)]
    last_version: Option<u64>,
    #[serde(default)]
    previous: Option<VersionRow>,
    #[serde(default)]
    pending: Option<VersionRow>,
}

#[derive(Serialize, Deserialize)]
struct VersionRow {
    number: u64,
    created_at: i64,
    retires_at: Option<i64>,
    preview: String,
    ciphertext: String,
    nonce: String,
    wrapped_key: String,
}

impl VersionRow {
    fn of(v: &KeyVersion) -> Self {
        Self {
            number: v.number,
            created_at: v.created_at.millis(),
            retires_at: v.retires_at.map(Timestamp::millis),
            preview: v.preview.clone(),
            ciphertext: b64(&v.envelope.ciphertext),
            nonce: b64(&v.envelope.nonce),
            wrapped_key: b64(&v.envelope.wrapped_key),
        }
    }

    fn version(self) -> std::io::Result<KeyVersion> {
        Ok(KeyVersion {
            number: self.number,
            created_at: Timestamp::from_millis(self.created_at),
            retires_at: self.retires_at.map(Timestamp::from_millis),
            preview: self.preview,
            envelope: envelope(&self.ciphertext, &self.nonce, &self.wrapped_key)?,
        })
    }
}

fn envelope(ciphertext: &str, nonce: &str, wrapped_key: &str) -> std::io::Result<Envelope> {
    let nonce: [u8; 12] = unb64(nonce)?.try_into().map_err(|_| bad("nonce"))?;
    Ok(Envelope { ciphertext: unb64(ciphertext)?, nonce, wrapped_key: unb64(wrapped_key)? })
}

#[derive(Serialize, Deserialize)]
struct TenantRow {
    tenant_id: String,
    name: String,
    modes: TenantModes,
    created_at: i64,
    /// Files written before quotas have none.
    #[serde(default)]
    reads_per_month: Option<u64>,
}

/// A tenant's counted value reads in one UTC month.
#[derive(Serialize, Deserialize)]
struct QuotaRow {
    tenant_id: String,
    /// The first instant of the month (milliseconds).
    month_start: i64,
    used: u64,
}

#[derive(Serialize, Deserialize)]
struct AuditRow {
    tenant_id: String,
    /// Files written before event ids had a sequence number instead.
    #[serde(default)]
    seq: u64,
    #[serde(default)]
    event_id: Option<String>,
    /// The event's time to the millisecond (`event.at` shows whole
    /// seconds); files written before have none.
    #[serde(default)]
    at_millis: Option<i64>,
    event: AuditEvent,
}

/// One audit digest ([`AuditDigest`]).
#[derive(Serialize, Deserialize)]
struct DigestRow {
    tenant_id: String,
    shard: u32,
    seq: u64,
    through: i64,
    statement: String,
    signature: String,
    index: String,
    expires_at: Option<i64>,
}

/// One day's reads of one key (`key_…`) or token (`tok_…`).
#[derive(Serialize, Deserialize)]
struct DailyRow {
    tenant_id: String,
    day: String,
    id: String,
    reads: u64,
}

#[derive(Serialize, Deserialize, Default)]
struct File {
    tokens: Vec<TokenRow>,
    keys: Vec<KeyRow>,
    tenants: Vec<TenantRow>,
    audit: Vec<AuditRow>,
    /// Files written before daily counts have none.
    #[serde(default)]
    daily: Vec<DailyRow>,
    #[serde(default)]
    quota_used: Vec<QuotaRow>,
    #[serde(default)]
    identities: Vec<super::identities::IdentityRow>,
    /// Files written before members have none.
    #[serde(default)]
    members: Vec<super::members::MemberRow>,
    #[serde(default)]
    digests: Vec<DigestRow>,
}

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

fn unb64(s: &str) -> std::io::Result<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

pub(super) fn save(path: &std::path::Path, s: &State) -> std::io::Result<()> {
    let file = File {
        tokens: s
            .tokens
            .values()
            .map(|t| TokenRow {
                token_id: t.token_id.to_string(),
                tenant_id: t.tenant_id.to_string(),
                verifier: b64(&t.verifier),
                name: t.name.clone(),
                scopes: t.grant.scopes.iter().collect(),
                expires_at: t.grant.expires_at.millis(),
                key_ids: t.grant.key_ids.as_ref().map(|v| v.iter().map(ToString::to_string).collect()),
                allowed_cidrs: t.grant.allowed_cidrs.as_ref().map(|v| v.iter().map(ToString::to_string).collect()),
                rate_limit: t.grant.rate_limit,
                created_at: t.created_at.millis(),
                issued_by: t.issued_by.as_ref().map(ToString::to_string),
                ancestors: t.ancestors.iter().map(ToString::to_string).collect(),
                revoked_at: t.revoked_at.map(Timestamp::millis),
                last_used_at: t.last_used_at.map(Timestamp::millis),
                uses: t.uses,
                identity_id: t.identity_id.as_ref().map(ToString::to_string),
                member_id: t.member_id.as_ref().map(ToString::to_string),
                children: s.children.get(&t.token_id).into_iter().flatten().map(ToString::to_string).collect(),
                purge_at: s.purge_at.get(&t.token_id).copied().unwrap_or(t.grant.expires_at.ceil_seconds()) * 1000,
                notice_at: s.notice_at.get(&t.token_id).copied(),
            })
            .collect(),
        keys: s
            .keys
            .values()
            .map(|k| KeyRow {
                key_id: k.key_id.to_string(),
                tenant_id: k.tenant_id.to_string(),
                name: k.name.clone(),
                llm_type: k.llm_type.clone(),
                preview: k.current.preview.clone(),
                mode_overrides: k.mode_overrides.clone(),
                created_at: k.created_at.millis(),
                updated_at: k.updated_at.millis(),
                last_used_at: k.last_used_at.map(Timestamp::millis),
                retrievals: k.retrievals,
                ciphertext: b64(&k.current.envelope.ciphertext),
                nonce: b64(&k.current.envelope.nonce),
                wrapped_key: b64(&k.current.envelope.wrapped_key),
                version: Some(k.current.number),
                version_created_at: Some(k.current.created_at.millis()),
                last_version: Some(k.last_version),
                previous: k.previous.as_ref().map(VersionRow::of),
                pending: k.pending.as_ref().map(VersionRow::of),
            })
            .collect(),
        tenants: s
            .tenants
            .values()
            .map(|t| TenantRow {
                tenant_id: t.tenant_id.to_string(),
                name: t.name.clone(),
                modes: t.modes,
                created_at: t.created_at.millis(),
                reads_per_month: t.reads_per_month,
            })
            .collect(),
        quota_used: s
            .quota_used
            .iter()
            .map(|((tenant, month), used)| QuotaRow {
                tenant_id: tenant.to_string(),
                month_start: month.start().millis(),
                used: *used,
            })
            .collect(),
        identities: s.identities.rows(),
        members: s.members.rows(),
        digests: s
            .digests
            .values()
            .flat_map(|chain| chain.values())
            .map(|d| DigestRow {
                tenant_id: d.tenant_id.to_string(),
                shard: d.shard,
                seq: d.seq,
                through: d.through.millis(),
                statement: d.statement.clone(),
                signature: b64(&d.signature),
                index: b64(&d.index),
                expires_at: d.expires_at.map(Timestamp::millis),
            })
            .collect(),
        audit: s
            .audit
            .iter()
            .flat_map(|(tenant, events)| {
                events.iter().map(move |((at, id), e)| AuditRow {
                    tenant_id: tenant.to_string(),
                    seq: 0,
                    event_id: Some(id.clone()),
                    at_millis: Some(*at),
                    event: AuditEvent { retain_until: None, tenant_id: None, ..e.clone() },
                })
            })
            .collect(),
        daily: s
            .daily
            .iter()
            .map(|((tenant, day, subject), reads)| DailyRow {
                tenant_id: tenant.to_string(),
                day: day.to_string(),
                id: match subject {
                    UsageSubject::Key(k) => k.to_string(),
                    UsageSubject::Token(t) => t.to_string(),
                },
                reads: *reads,
            })
            .collect(),
    };
    let tmp = path.with_extension("json.tmp");
    crate::files::write_private(&tmp, &serde_json::to_vec(&file)?)?;
    std::fs::rename(tmp, path)
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, format!("data file: bad {what}"))
}

pub(super) fn load(bytes: &[u8]) -> std::io::Result<State> {
    let file: File = serde_json::from_slice(bytes)?;
    let mut s = State::default();
    for t in file.tokens {
        let id = TokenId::from_stored(t.token_id);
        let key_ids = t.key_ids.map(|v| v.into_iter().map(KeyId::from_stored).collect());
        let allowed_cidrs = match t.allowed_cidrs {
            None => None,
            Some(v) => Some(v.iter().map(|c| c.parse().map_err(|_| bad("CIDR"))).collect::<Result<_, _>>()?),
        };
        let rec = TokenRecord {
            token_id: id.clone(),
            tenant_id: TenantId::from_stored(t.tenant_id),
            verifier: unb64(&t.verifier)?,
            name: t.name,
            grant: Grant {
                scopes: t.scopes.into_iter().collect::<Scopes>(),
                expires_at: Timestamp::from_millis(t.expires_at),
                key_ids,
                allowed_cidrs,
                rate_limit: t.rate_limit.filter(|r| *r > 0),
            },
            created_at: Timestamp::from_millis(t.created_at),
            issued_by: t.issued_by.map(TokenId::from_stored),
            ancestors: t.ancestors.into_iter().map(TokenId::from_stored).collect(),
            revoked_at: t.revoked_at.map(Timestamp::from_millis),
            last_used_at: t.last_used_at.map(Timestamp::from_millis),
            uses: t.uses,
            identity_id: t.identity_id.map(crate::ids::IdentityId::from_stored),
            member_id: t.member_id.map(crate::ids::MemberId::from_stored),
        }
        .as_loaded();
        if !t.children.is_empty() {
            s.children.insert(id.clone(), t.children.into_iter().map(TokenId::from_stored).collect());
        }
        s.purge_at.insert(id.clone(), Timestamp::from_millis(t.purge_at).ceil_seconds());
        if let Some(at) = t.notice_at {
            s.notice_at.insert(id.clone(), at);
        }
        s.tokens.insert(id, rec);
    }
    for k in file.keys {
        let id = KeyId::from_stored(k.key_id);
        let number = k.version.unwrap_or(1);
        let current = KeyVersion {
            number,
            created_at: Timestamp::from_millis(k.version_created_at.unwrap_or(k.created_at)),
            retires_at: None,
            preview: k.preview,
            envelope: envelope(&k.ciphertext, &k.nonce, &k.wrapped_key)?,
        };
        s.keys.insert(
            id.clone(),
            KeyRecord {
                key_id: id,
                tenant_id: TenantId::from_stored(k.tenant_id),
                name: k.name,
                llm_type: k.llm_type,
                mode_overrides: k.mode_overrides,
                created_at: Timestamp::from_millis(k.created_at),
                updated_at: Timestamp::from_millis(k.updated_at),
                last_used_at: k.last_used_at.map(Timestamp::from_millis),
                retrievals: k.retrievals,
                current,
                previous: k.previous.map(VersionRow::version).transpose()?,
                pending: k.pending.map(VersionRow::version).transpose()?,
                last_version: k.last_version.unwrap_or(number),
            },
        );
    }
    for t in file.tenants {
        let id = TenantId::from_stored(t.tenant_id);
        s.tenants.insert(
            id.clone(),
            TenantRecord {
                tenant_id: id,
                name: t.name,
                modes: t.modes,
                created_at: Timestamp::from_millis(t.created_at),
                reads_per_month: t.reads_per_month,
            },
        );
    }
    for q in file.quota_used {
        let month = Month::of(Timestamp::from_millis(q.month_start));
        s.quota_used.insert((TenantId::from_stored(q.tenant_id), month), q.used);
    }
    for a in file.audit {
        let tenant = TenantId::from_stored(a.tenant_id);
        let event_id = a.event_id.unwrap_or_else(|| format!("{:012x}", a.seq));
        let at = a.at_millis.map_or(a.event.at, Timestamp::from_millis);
        let event = AuditEvent { tenant_id: Some(tenant.clone()), event_id: event_id.clone(), at, ..a.event };
        s.audit.entry(tenant).or_default().insert((event.at.millis(), event_id), event);
    }
    for d in file.daily {
        let day = Day::parse(&d.day).ok_or_else(|| bad("day"))?;
        let subject = if d.id.starts_with("tok_") {
            UsageSubject::Token(TokenId::from_stored(d.id))
        } else {
            UsageSubject::Key(KeyId::from_stored(d.id))
        };
        s.daily.insert((TenantId::from_stored(d.tenant_id), day, subject), d.reads);
    }
    s.identities = super::identities::Identities::from_rows(file.identities).ok_or_else(|| bad("identity"))?;
    s.members = super::members::Members::from_rows(file.members).ok_or_else(|| bad("member"))?;
    for d in file.digests {
        let tenant = TenantId::from_stored(d.tenant_id);
        let digest = AuditDigest {
            tenant_id: tenant.clone(),
            shard: d.shard,
            seq: d.seq,
            through: Timestamp::from_millis(d.through),
            statement: d.statement,
            signature: unb64(&d.signature)?,
            index: unb64(&d.index)?,
            expires_at: d.expires_at.map(Timestamp::from_millis),
        };
        s.digests.entry((tenant, d.shard)).or_default().insert(d.seq, digest);
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::contract::world;
    use std::sync::Arc;

    #[tokio::test]
    async fn versions_survive_a_restart_and_an_earlier_file_reads_as_version_one() {
        let dir = std::env::temp_dir().join(format!("ibyok-persist-{}", crate::ids::random_base62(12)));
        let store = Arc::new(MemoryStore::open_dir(&dir).unwrap());
        let w = world((store.clone() as Arc<dyn Store>).into()).await;
        let (key, before) = w.three_versions().await;
        let reopened = MemoryStore::open_dir(&dir).unwrap();
        let after = reopened.read(|s| s.keys.get(&key.key_id).cloned()).unwrap().unwrap();
        assert_eq!(after, before);
        // A file written before versions: no version fields on its keys.
        let path = dir.join("store.json");
        let mut file: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        for k in file["keys"].as_array_mut().unwrap() {
            for field in ["version", "version_created_at", "last_version", "previous", "pending"] {
                k.as_object_mut().unwrap().remove(field);
            }
        }
        let earlier = load(&serde_json::to_vec(&file).unwrap()).unwrap();
        let k = &earlier.keys[&key.key_id];
        assert_eq!((k.current.number, k.last_version, k.previous.is_none(), k.pending.is_none()), (1, 1, true, true));
        assert_eq!((k.current.created_at, &k.current.envelope), (k.created_at, &before.current.envelope));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
