//! Checking a shard's digests against its events (`ibyok audit verify`):
//! signatures, the chain, and each event changed, deleted, inserted or
//! reordered, with its shard and time.

use super::*;

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
