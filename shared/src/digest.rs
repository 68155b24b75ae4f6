//! A verifiable audit log: signed digests over each audit shard, in the
//! style of CloudTrail's log-file validation, at no extra write per event.
//!
//! **What a digest is.** For each of a tenant's audit shards
//! (`<tenantId>#<shard>`), the scheduled run ([`run`]: the cleanup function,
//! `ibyok dev` on its `--purge-every` schedule, `ibyok admin digest`) takes
//! the events written since the shard's last digest, up to
//! [`SETTLE_SECONDS`] ago, computes each event's hash over its canonical
//! serialisation ([`canonical_event`], version 1), and signs a statement
//! ([`Statement`]) holding the Merkle root of those hashes ([`merkle_root`],
//! RFC 6962), their count, the time range, and the SHA-256 of the previous
//! digest's statement (a chain per shard), with a dedicated asymmetric KMS
//! key (ECDSA P-256, SHA-256). Beside the signed statement the digest keeps
//! its index ([`Leaf`]: each event's time, id and hash, in order), which the
//! root authenticates, so that a verifier can name each event changed,
//! deleted, inserted or moved, not only say that a digest does not match.
//!
//! **Concurrent writers.** A digest covers only events whose time is at
//! least [`SETTLE_SECONDS`] (5 minutes) old. An event's time is its
//! request's start, and no request outlives its function's 20 s timeout, so
//! every write and every take-back of an event lands long before the run
//! that covers it: no late writer slips behind a digest.
//!
//! **Retention.** Events carry a TTL (`IBYOK_AUDIT_RETENTION_DAYS`). A
//! digest records the earliest expiry of its events (`firstExpiry`); from
//! then on DynamoDB may remove some of them, so a verifier checks that
//! digest's signature and place in the chain but not its events. A digest
//! itself expires [`DIGEST_MARGIN_SECONDS`] after the retention of the
//! newest event it can cover, and its successor records when
//! (`prevExpiresAt`), so a predecessor gone by expiry is told from one
//! deleted.
//!
//! **What it does not do.** It detects changes after the fact; it does not
//! prevent them. Events newer than the shard's last digest are not yet
//! covered (at most [`SETTLE_SECONDS`] plus the schedule's interval). A
//! shard whose newest digests are deleted with their events shows as a gap
//! only once its newest remaining digest is older than the heartbeat
//! ([`HEARTBEAT_SECONDS`]: a quiet shard still gets a digest a day).

use crate::clock::Timestamp;
use crate::fault::{Fault, FaultKind};
use crate::ids::TenantId;
use crate::kms::{KmsError, Signer};
use crate::store::schema::AUDIT_SHARDS;
use crate::store::{audit_shard, AuditDigest, AuditEvent, Conflict, DigestStore, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, HashMap};

/// The canonical serialisation's version (the `v` of an event and of a
/// statement).
pub const FORMAT: u64 = 1;
/// Only events at least this old are digested.
pub const SETTLE_SECONDS: i64 = 300;
/// A shard with no new events still gets a digest once its last one is
/// this old, so that deleting the newest digests shows as a gap.
pub const HEARTBEAT_SECONDS: i64 = 86_400;
/// At most this many events in one digest (its index stays under
/// DynamoDB's 400 KB item limit: ~61 bytes an event); more make several
/// digests in one run.
pub const MAX_EVENTS: usize = 4_000;
/// A digest is kept this long past the retention of the events it covers.
pub const DIGEST_MARGIN_SECONDS: i64 = 2 * 86_400;
/// The signing algorithm (KMS `ECDSA_SHA_256` over the statement's bytes).
pub const ALGORITHM: &str = "ECDSA_SHA_256";

pub type Hash = [u8; 32];

/// The canonical serialisation of an event, version 1: the event as
/// `GET /audit` shows it, plus `eventId`, with `at` as integer
/// milliseconds, `v: 1`, absent and `null` fields left out, written as
/// RFC 8785 (JCS) JSON: keys sorted, no whitespace, strings escaped as
/// JSON requires and nothing more. The tenant is not part of it (a digest
/// names its tenant and shard); neither is the retention TTL.
pub fn canonical_event(e: &AuditEvent) -> Vec<u8> {
    let mut v = serde_json::to_value(e).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("at".into(), Value::from(e.at.millis()));
        m.insert("eventId".into(), Value::from(e.event_id.clone()));
        m.insert("v".into(), Value::from(FORMAT));
    }
    let mut out = Vec::new();
    write_canonical(&v, &mut out);
    out
}

/// RFC 8785 for the values events and statements hold (strings, integers,
/// booleans, objects, arrays; `null` members left out).
fn write_canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.iter().filter(|(_, v)| !v.is_null()).map(|(k, _)| k).collect();
            keys.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(Value::from(k.as_str()).to_string().as_bytes());
                out.push(b':');
                write_canonical(&m[k], out);
            }
            out.push(b'}');
        }
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(x, out);
            }
            out.push(b']');
        }
        other => out.extend_from_slice(other.to_string().as_bytes()),
    }
}

/// An event's leaf hash: SHA-256 of `0x00` and its canonical bytes.
pub fn event_hash(e: &AuditEvent) -> Hash {
    Sha256::new().chain_update([0u8]).chain_update(canonical_event(e)).finalize().into()
}

/// The Merkle tree hash of RFC 6962 (section 2.1) over leaf hashes: an
/// empty list hashes to SHA-256 of nothing; a node is SHA-256 of `0x01`,
/// the left and the right hash; a list splits at the largest power of two
/// below its length.
pub fn merkle_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaves[0],
        n => {
            let mut k = 1;
            while k * 2 < n {
                k *= 2;
            }
            let (l, r) = leaves.split_at(k);
            Sha256::new()
                .chain_update([1u8])
                .chain_update(merkle_root(l))
                .chain_update(merkle_root(r))
                .finalize()
                .into()
        }
    }
}

/// What a digest signs, serialised canonically (RFC 8785) as the bytes
/// signed and chained.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Statement {
    pub v: u64,
    pub tenant_id: String,
    pub shard: u32,
    /// 0 for a shard's first digest, then one more each.
    pub seq: u64,
    /// The range covered: events with `after < at <= through` (epoch
    /// milliseconds); `after` is the previous digest's `through`, 0 first.
    pub after: i64,
    pub through: i64,
    pub count: u64,
    /// Hex of the Merkle root of the events' hashes, oldest first (by time,
    /// then event id).
    pub root: String,
    /// Hex of SHA-256 of the previous digest's statement; 64 zeros first.
    pub prev: String,
    /// When the previous digest expires (its absence after that is no gap).
    pub prev_expires_at: Option<i64>,
    /// When this digest expires (its TTL).
    pub expires_at: Option<i64>,
    /// The earliest retention expiry of its events: after it, its events
    /// are no longer checked.
    pub first_expiry: Option<i64>,
    /// The signing key (the KMS key's ARN or id; `local` for `ibyok dev`).
    pub key_id: String,
    pub created_at: i64,
}

impl Statement {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        write_canonical(&serde_json::to_value(self).unwrap_or(Value::Null), &mut out);
        out
    }
}

/// The chain's link: SHA-256 of a statement's bytes, in hex.
pub fn statement_hash(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// One entry of a digest's index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leaf {
    pub at: i64,
    pub event_id: String,
    pub hash: Hash,
}

/// The index's bytes, version 1: per event, in order, `at` (8 bytes, big
/// endian, milliseconds), the event id's length (1 byte) and bytes, and
/// the leaf hash (32 bytes).
pub fn encode_index(leaves: &[Leaf]) -> Vec<u8> {
    let mut out = Vec::with_capacity(leaves.len() * 61);
    for l in leaves {
        out.extend_from_slice(&l.at.to_be_bytes());
        let id = &l.event_id.as_bytes()[..l.event_id.len().min(255)];
        out.push(id.len() as u8);
        out.extend_from_slice(id);
        out.extend_from_slice(&l.hash);
    }
    out
}

pub fn decode_index(mut b: &[u8]) -> Option<Vec<Leaf>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let at = i64::from_be_bytes(b.get(..8)?.try_into().ok()?);
        let n = usize::from(*b.get(8)?);
        let id = std::str::from_utf8(b.get(9..9 + n)?).ok()?.to_owned();
        let hash: Hash = b.get(9 + n..9 + n + 32)?.try_into().ok()?;
        out.push(Leaf { at, event_id: id, hash });
        b = &b[9 + n + 32..];
    }
    Some(out)
}

/// What one digest run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DigestReport {
    pub tenants: usize,
    /// Digests written (each one KMS `Sign`).
    pub digests: usize,
    /// Events they cover.
    pub events: usize,
    /// Shards skipped because another run wrote their next digest first.
    pub raced: usize,
}

fn signing_failed(e: KmsError) -> StoreError {
    match e {
        KmsError::Unavailable(f) => StoreError::Unavailable(f),
        KmsError::Internal(f) => StoreError::Internal(f),
        KmsError::Integrity => StoreError::internal(FaultKind::Service, "the audit signing key refused to sign"),
    }
}

/// Digests every tenant's shards up to `now` − [`SETTLE_SECONDS`]
/// (module docs). Idempotent and safe to run concurrently: a digest's seq
/// is written once per shard, so a second run's write fails and it moves on.
pub async fn run<S: DigestStore + ?Sized>(
    store: &S,
    signer: &dyn Signer,
    now: Timestamp,
    retention_days: i64,
) -> Result<DigestReport, StoreError> {
    let tenants = store.digest_tenants().await?;
    let mut report = DigestReport { tenants: tenants.len(), ..DigestReport::default() };
    for tenant in &tenants {
        let shards = (0..AUDIT_SHARDS).map(|shard| digest_shard(store, signer, tenant, shard, now, retention_days));
        for r in futures::future::join_all(shards).await {
            let r = r?;
            report.digests += r.digests;
            report.events += r.events;
            report.raced += r.raced;
        }
    }
    tracing::info!(tenants = report.tenants, digests = report.digests, events = report.events, "audit digests");
    Ok(report)
}

async fn digest_shard<S: DigestStore + ?Sized>(
    store: &S,
    signer: &dyn Signer,
    tenant: &TenantId,
    shard: u32,
    now: Timestamp,
    retention_days: i64,
) -> Result<DigestReport, StoreError> {
    let mut report = DigestReport::default();
    let cutoff = now.plus_seconds(-SETTLE_SECONDS).millis();
    let last = store.last_digest(tenant, shard).await?;
    let (mut seq, mut after, mut prev, mut prev_expires_at, mut heartbeat_due) = match &last {
        None => (0, 0, "0".repeat(64), None, false),
        Some(d) => {
            let s = parse_statement(&d.statement)
                .ok_or_else(|| StoreError::internal(FaultKind::Data, "a stored digest's statement does not parse"))?;
            (
                s.seq + 1,
                s.through,
                statement_hash(d.statement.as_bytes()),
                s.expires_at,
                cutoff - s.through >= HEARTBEAT_SECONDS * 1000,
            )
        }
    };
    while after < cutoff {
        let mut events = store.shard_events(tenant, shard, after, cutoff, MAX_EVENTS + 1).await?;
        let mut through = cutoff;
        let full = events.len() > MAX_EVENTS;
        if full {
            // Cut after the last whole millisecond (a shard takes at most
            // 1,000 writes a second, so a millisecond never fills a digest).
            let next_at = events[MAX_EVENTS].at.millis();
            events.truncate(MAX_EVENTS);
            let last_at = events.last().map_or(after, |e| e.at.millis());
            through = last_at;
            if next_at == last_at {
                events.retain(|e| e.at.millis() < last_at);
                through = last_at - 1;
            }
        }
        if events.is_empty() && !heartbeat_due {
            break;
        }
        let leaves: Vec<Leaf> = events
            .iter()
            .map(|e| Leaf { at: e.at.millis(), event_id: e.event_id.clone(), hash: event_hash(e) })
            .collect();
        let hashes: Vec<Hash> = leaves.iter().map(|l| l.hash).collect();
        let expires_at = now.plus_seconds(retention_days * 86_400 + DIGEST_MARGIN_SECONDS).millis();
        let statement = Statement {
            v: FORMAT,
            tenant_id: tenant.to_string(),
            shard,
            seq,
            after,
            through,
            count: leaves.len() as u64,
            root: hex(&merkle_root(&hashes)),
            prev: prev.clone(),
            prev_expires_at,
            expires_at: Some(expires_at),
            first_expiry: events.iter().filter_map(|e| e.retain_until).map(Timestamp::millis).min(),
            key_id: signer.key_id().to_owned(),
            created_at: now.millis(),
        };
        let bytes = statement.to_bytes();
        let signature = signer.sign(&bytes).await.map_err(signing_failed)?;
        let text =
            String::from_utf8(bytes).map_err(|_| StoreError::internal(FaultKind::Local, "a statement is not UTF-8"))?;
        let digest = AuditDigest {
            tenant_id: tenant.clone(),
            shard,
            seq,
            through: Timestamp::from_millis(through),
            statement: text,
            signature,
            index: encode_index(&leaves),
            expires_at: Some(Timestamp::from_millis(expires_at)),
        };
        match store.put_digest(&digest).await {
            Ok(()) => {}
            Err(StoreError::Conflict(Conflict::Exists)) => {
                report.raced += 1;
                return Ok(report);
            }
            Err(e) => return Err(e),
        }
        report.digests += 1;
        report.events += leaves.len();
        prev = statement_hash(digest.statement.as_bytes());
        prev_expires_at = Some(expires_at);
        seq += 1;
        after = through;
        heartbeat_due = false;
        if !full {
            break;
        }
    }
    Ok(report)
}

pub fn parse_statement(text: &str) -> Option<Statement> {
    serde_json::from_str(text).ok()
}

/// Checks an ECDSA P-256 / SHA-256 signature (ASN.1 DER) with a public key
/// (DER SubjectPublicKeyInfo, as KMS `GetPublicKey` gives it).
pub fn signature_valid(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, public_key).verify(message, signature).is_ok()
}

/// One digest as `GET /audit/digests` lists it.
#[derive(Clone, Debug)]
pub struct Published {
    pub statement: String,
    pub signature: Vec<u8>,
    pub index: Vec<u8>,
}

/// What a verification found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum FindingKind {
    /// An event's content differs from what was digested.
    Changed,
    /// A digested event is gone.
    Deleted,
    /// An event in a digested range that no digest holds.
    Inserted,
    /// A digested event now stands at another time (another place in the order).
    Reordered,
    /// Digests missing from a shard's chain, or one replaced; or none recent.
    Gap,
    /// A digest whose signature does not verify with the published key.
    BadSignature,
    /// A digest whose index does not match its signed root.
    BadIndex,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub kind: FindingKind,
    pub shard: u32,
    /// The event's time (as digested), or where the gap begins.
    pub at: Timestamp,
    pub event_id: Option<String>,
    pub detail: String,
}

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    pub digests: usize,
    /// Events checked against a digest.
    pub events_checked: usize,
    /// Events newer than their shard's last digest (not yet covered).
    pub uncovered: usize,
    /// Digests whose events are past retention (signature and chain checked only).
    pub expired: usize,
    pub findings: Vec<Finding>,
}

/// What to check.
#[derive(Clone, Copy, Debug)]
pub struct VerifyOptions {
    pub now: Timestamp,
    /// The digests start at the beginning (no `--from`): a shard's first
    /// digest must be its first, or follow one that expired.
    pub from_start: bool,
    /// The digests run up to now (no `--to`): a shard whose newest digest is
    /// older than this many seconds is a gap.
    pub max_age_seconds: Option<i64>,
}

struct Checked {
    s: Statement,
    leaves: Option<Vec<Leaf>>,
    /// The signature verified and the events are within retention.
    compare: bool,
    trusted: bool,
}

/// Recomputes every digest from `events` (the tenant's, as `GET /audit`
/// lists them; any order), checks each signature with `public_key` and
/// each shard's chain, and names every event changed, deleted, inserted or
/// moved, and every gap.
pub fn verify(events: &[AuditEvent], digests: &[Published], public_key: &[u8], o: VerifyOptions) -> VerifyReport {
    let mut report = VerifyReport { digests: digests.len(), ..VerifyReport::default() };
    let at = Timestamp::from_millis;
    let mut by_shard: BTreeMap<u32, Vec<Checked>> = BTreeMap::new();
    for d in digests {
        let Some(s) = parse_statement(&d.statement) else {
            report.findings.push(Finding {
                kind: FindingKind::BadSignature,
                shard: 0,
                at: at(0),
                event_id: None,
                detail: "a digest's statement does not parse".into(),
            });
            continue;
        };
        let signed = signature_valid(public_key, d.statement.as_bytes(), &d.signature);
        if !signed {
            report.findings.push(Finding {
                kind: FindingKind::BadSignature,
                shard: s.shard,
                at: at(s.through),
                event_id: None,
                detail: format!(
                    "digest {} (through {}) is not signed by the published key",
                    s.seq,
                    at(s.through).rfc3339()
                ),
            });
        }
        let leaves = decode_index(&d.index);
        let root_ok = leaves.as_ref().is_some_and(|l| {
            l.len() as u64 == s.count && hex(&merkle_root(&l.iter().map(|x| x.hash).collect::<Vec<_>>())) == s.root
        });
        if signed && !root_ok {
            report.findings.push(Finding {
                kind: FindingKind::BadIndex,
                shard: s.shard,
                at: at(s.through),
                event_id: None,
                detail: format!("digest {}'s index does not match its signed root", s.seq),
            });
        }
        let expired = s.first_expiry.is_some_and(|e| e <= o.now.millis());
        if signed && expired {
            report.expired += 1;
        }
        let compare = signed && root_ok && !expired;
        by_shard.entry(s.shard).or_default().push(Checked {
            s,
            leaves: if root_ok { leaves } else { None },
            compare,
            trusted: signed,
        });
    }

    // Each shard's events, by id.
    let mut shard_events: HashMap<u32, Vec<&AuditEvent>> = HashMap::new();
    for e in events {
        shard_events.entry(audit_shard(&e.event_id)).or_default().push(e);
    }

    for (shard, mut chain) in by_shard {
        chain.sort_by_key(|c| (c.s.seq, c.s.through));
        chain_findings(shard, &chain, o, &mut report.findings);
        let current = shard_events.remove(&shard).unwrap_or_default();
        let mut by_id: HashMap<&str, Vec<&AuditEvent>> = HashMap::new();
        for e in &current {
            by_id.entry(e.event_id.as_str()).or_default().push(e);
        }
        let mut matched: HashMap<(&str, i64), bool> = HashMap::new();
        for c in chain.iter().filter(|c| c.compare) {
            for l in c.leaves.iter().flatten() {
                report.events_checked += 1;
                let found = by_id
                    .get(l.event_id.as_str())
                    .and_then(|v| v.iter().find(|e| e.at.millis() == l.at).or_else(|| v.first()).copied());
                let mut finding = |kind, detail: String| {
                    report.findings.push(Finding {
                        kind,
                        shard,
                        at: at(l.at),
                        event_id: Some(l.event_id.clone()),
                        detail,
                    })
                };
                match found {
                    None => finding(FindingKind::Deleted, format!("digest {}'s event is gone", c.s.seq)),
                    Some(e) => {
                        matched.insert((e.event_id.as_str(), e.at.millis()), true);
                        if e.at.millis() != l.at {
                            finding(
                                FindingKind::Reordered,
                                format!("digested at {} ms, now at {} ms", l.at, e.at.millis()),
                            );
                        } else if event_hash(e) != l.hash {
                            finding(FindingKind::Changed, format!("differs from digest {}", c.s.seq));
                        }
                    }
                }
            }
        }
        let newest = chain.iter().filter(|c| c.trusted).map(|c| c.s.through).max();
        for e in &current {
            if matched.contains_key(&(e.event_id.as_str(), e.at.millis())) {
                continue;
            }
            let t = e.at.millis();
            let holder = chain.iter().find(|c| c.s.after < t && t <= c.s.through);
            match holder {
                Some(c) if c.compare => report.findings.push(Finding {
                    kind: FindingKind::Inserted,
                    shard,
                    at: e.at,
                    event_id: Some(e.event_id.clone()),
                    detail: format!("in digest {}'s range, not in it", c.s.seq),
                }),
                Some(_) => {}
                None if newest.is_some_and(|n| t > n) => report.uncovered += 1,
                None => {}
            }
        }
    }
    // Shards with events and no digest at all.
    for evs in shard_events.values() {
        report.uncovered += evs.len();
    }
    report.findings.sort_by_key(|f| (f.shard, f.at, f.kind));
    report
}

fn chain_findings(shard: u32, chain: &[Checked], o: VerifyOptions, out: &mut Vec<Finding>) {
    let at = Timestamp::from_millis;
    let gap =
        |from: i64, detail: String| Finding { kind: FindingKind::Gap, shard, at: at(from), event_id: None, detail };
    let trusted: Vec<&Checked> = chain.iter().filter(|c| c.trusted).collect();
    if let Some(first) = trusted.first() {
        let s = &first.s;
        let zero = "0".repeat(64);
        if s.seq == 0 && s.prev != zero {
            out.push(gap(s.after, "the shard's first digest names a predecessor".into()));
        }
        let expired = s.prev_expires_at.is_some_and(|e| e <= o.now.millis());
        if o.from_start && s.seq > 0 && !expired {
            out.push(gap(s.after, format!("digests 0 to {} are missing (not expired)", s.seq - 1)));
        }
    }
    for w in trusted.windows(2) {
        let (p, n) = (&w[0].s, &w[1].s);
        let p_hash = statement_hash(&p.to_bytes());
        if n.seq == p.seq {
            out.push(gap(n.after, format!("two digests numbered {}", n.seq)));
        } else if n.seq != p.seq + 1 {
            out.push(gap(p.through, format!("digests {} to {} are missing", p.seq + 1, n.seq - 1)));
        } else if n.prev != p_hash || n.after != p.through {
            out.push(gap(p.through, format!("digest {} does not follow digest {}", n.seq, p.seq)));
        }
    }
    if let (Some(max_age), Some(last)) = (o.max_age_seconds, trusted.last()) {
        if last.s.through < o.now.plus_seconds(-max_age).millis() {
            out.push(gap(last.s.through, format!("no digest since {}", at(last.s.through).rfc3339())));
        }
    }
}

/// An event as `GET /audit` lists it (with `eventId` and `atMillis`).
pub fn event_from_listing(v: &Value) -> Option<AuditEvent> {
    let mut e: AuditEvent = serde_json::from_value(v.clone()).ok()?;
    e.event_id = v.get("eventId")?.as_str()?.to_owned();
    e.at = Timestamp::from_millis(v.get("atMillis")?.as_i64()?);
    Some(e)
}

/// A digest as `GET /audit/digests` lists it.
pub fn digest_from_listing(v: &Value) -> Option<Published> {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    Some(Published {
        statement: v.get("statement")?.as_str()?.to_owned(),
        signature: STANDARD.decode(v.get("signature")?.as_str()?).ok()?,
        index: STANDARD.decode(v.get("index")?.as_str()?).ok()?,
    })
}

/// The public key a `GET /audit/digests` page publishes (DER).
pub fn public_key_from_listing(page: &Value) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    STANDARD.decode(page.get("publicKey")?.as_str()?).ok()
}

/// A public key file's bytes: DER, or its base64 (a line of text).
pub fn public_key_from_file(raw: Vec<u8>) -> Vec<u8> {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    let text = String::from_utf8_lossy(&raw).trim().to_owned();
    STANDARD.decode(text).unwrap_or(raw)
}

/// The earliest `after` of these digests: the events a verification needs
/// go back to it.
pub fn earliest_after(digests: &[Published]) -> Option<i64> {
    digests.iter().filter_map(|d| parse_statement(&d.statement)).map(|s| s.after).min()
}

/// The statements' chain link of a stored digest, for callers holding one.
pub fn digest_hash(d: &AuditDigest) -> String {
    statement_hash(d.statement.as_bytes())
}

/// The fault for a digest the store holds but cannot read.
pub fn unreadable() -> Fault {
    Fault::new(FaultKind::Data, "a stored digest does not parse")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(i: u8) -> Hash {
        Sha256::new().chain_update([0u8]).chain_update([i]).finalize().into()
    }

    fn node(l: Hash, r: Hash) -> Hash {
        Sha256::new().chain_update([1u8]).chain_update(l).chain_update(r).finalize().into()
    }

    #[test]
    fn merkle_root_follows_rfc_6962() {
        let (a, b, c, d, e) = (leaf(0), leaf(1), leaf(2), leaf(3), leaf(4));
        assert_eq!(merkle_root(&[]), <[u8; 32]>::from(Sha256::digest([])));
        assert_eq!(merkle_root(&[a]), a);
        assert_eq!(merkle_root(&[a, b]), node(a, b));
        assert_eq!(merkle_root(&[a, b, c]), node(node(a, b), c));
        assert_eq!(merkle_root(&[a, b, c, d]), node(node(a, b), node(c, d)));
        assert_eq!(merkle_root(&[a, b, c, d, e]), node(node(node(a, b), node(c, d)), e));
        assert_ne!(merkle_root(&[b, a]), merkle_root(&[a, b]));
    }

    #[test]
    fn canonical_event_is_sorted_compact_and_versioned() {
        use crate::store::{AuditAction, Outcome};
        let e = AuditEvent {
            tenant_id: None,
            at: Timestamp::from_millis(1_700_000_000_123),
            request_id: "r\"1".into(),
            action: AuditAction::KeyRead,
            token_id: None,
            key_id: None,
            version: Some(2),
            environment: None,
            effective_mode: None,
            outcome: Outcome::Ok,
            source_ip: Some("10.0.0.1".into()),
            user_agent: None,
            actor: None,
            identity_id: None,
            detail: None,
            event_id: "000000000001abcdefgh".into(),
            retain_until: Some(Timestamp::from_millis(1)),
        };
        assert_eq!(
            String::from_utf8(canonical_event(&e)).unwrap(),
            r#"{"action":"key.read","at":1700000000123,"eventId":"000000000001abcdefgh","outcome":"ok","requestId":"r\"1","sourceIp":"10.0.0.1","v":1,"version":2}"#
        );
    }

    #[test]
    fn index_round_trips() {
        let leaves = vec![
            Leaf { at: 5, event_id: "a".into(), hash: leaf(1) },
            Leaf { at: -1, event_id: "bcd".into(), hash: leaf(2) },
        ];
        assert_eq!(decode_index(&encode_index(&leaves)), Some(leaves));
        assert_eq!(decode_index(&[1, 2, 3]), None);
    }
}
