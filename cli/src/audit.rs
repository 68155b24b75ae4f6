//! The audit log from the command line: `ibyok audit` lists it, `ibyok
//! audit verify` checks it against its signed digests.

use crate::client::{print_json, CliError, Client};
use crate::output::{relative, table, text};

pub fn list(c: &Client, limit: u32, as_json: bool) -> Result<(), CliError> {
    let page = c.call("GET", &format!("/audit?limit={limit}"), None)?;
    if as_json {
        print_json(&page);
        return Ok(());
    }
    let rows = page["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| {
            vec![
                relative(&e["at"]),
                text(&e["action"]),
                text(&e["outcome"]),
                text(&e["tokenId"]),
                text(&e["keyId"]),
                text(&e["environment"]),
                text(&e["sourceIp"]),
            ]
        })
        .collect();
    table(&["WHEN", "ACTION", "OUTCOME", "TOKEN", "KEY", "ENV", "SOURCE"], rows);
    Ok(())
}

/// `ibyok audit verify`: every digest (of `--from`/`--to`), the events they
/// cover, checked by `ibyok::digest::verify`; an error (non-zero exit) on
/// any finding.
pub fn verify(
    c: &Client,
    from: Option<&str>,
    to: Option<&str>,
    pinned_key: Option<&std::path::Path>,
    max_age: u64,
    as_json: bool,
) -> Result<(), CliError> {
    use ibyok::clock::Timestamp;
    use ibyok::digest;
    let time = |name: &str, v: Option<&str>| -> Result<Option<Timestamp>, CliError> {
        v.map(|t| Timestamp::parse_rfc3339(t).ok_or_else(|| format!("--{name}: `{t}` is not an RFC 3339 time")))
            .transpose()
    };
    let (from_t, to_t) = (time("from", from)?, time("to", to)?);
    let mut query = String::from("limit=10");
    for (name, t) in [("from", from_t), ("to", to_t)] {
        if let Some(t) = t {
            query.push_str(&format!("&{name}={}", t.rfc3339()));
        }
    }
    let mut digests = Vec::new();
    let mut published = None;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(k) => format!("/audit/digests?{query}&cursor={k}"),
            None => format!("/audit/digests?{query}"),
        };
        let page = c.call("GET", &path, None)?;
        published = published.or_else(|| digest::public_key_from_listing(&page));
        for d in page["digests"].as_array().into_iter().flatten() {
            digests.push(digest::digest_from_listing(d).ok_or("a digest in the listing does not parse")?);
        }
        match page["nextCursor"].as_str() {
            Some(k) => cursor = Some(k.to_owned()),
            None => break,
        }
    }
    let public_key = match pinned_key {
        Some(path) => {
            let raw = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            digest::public_key_from_file(raw)
        }
        None => published.ok_or("the API publishes no audit signing key")?,
    };
    // The events back to the earliest digest's start (all of them without --from).
    let since = if from_t.is_some() { digest::earliest_after(&digests) } else { None };
    let mut events = Vec::new();
    let mut cursor: Option<String> = None;
    'pages: loop {
        let path = match &cursor {
            Some(k) => format!("/audit?limit=100&cursor={k}"),
            None => "/audit?limit=100".to_owned(),
        };
        let page = c.call("GET", &path, None)?;
        for e in page["events"].as_array().into_iter().flatten() {
            let e = digest::event_from_listing(e).ok_or("an event in the listing does not parse")?;
            if since.is_some_and(|s| e.at.millis() <= s) {
                break 'pages;
            }
            events.push(e);
        }
        match page["nextCursor"].as_str() {
            Some(k) => cursor = Some(k.to_owned()),
            None => break,
        }
    }
    let options = digest::VerifyOptions {
        now: ibyok::clock::Clock::now(&ibyok::clock::SystemClock),
        from_start: from_t.is_none(),
        max_age_seconds: if to_t.is_none() { Some(max_age as i64) } else { None },
    };
    let report = digest::verify(&events, &digests, &public_key, options);
    if as_json {
        print_json(&serde_json::to_value(&report).unwrap_or_default());
    } else {
        let rows = report
            .findings
            .iter()
            .map(|f| {
                vec![
                    serde_json::to_value(f.kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
                    f.shard.to_string(),
                    f.at.rfc3339(),
                    f.event_id.clone().unwrap_or_else(|| "-".into()),
                    f.detail.clone(),
                ]
            })
            .collect();
        if !report.findings.is_empty() {
            table(&["FINDING", "SHARD", "AT", "EVENT", "DETAIL"], rows);
        }
        eprintln!(
            "{} digests, {} events checked, {} not yet covered, {} past retention: {}",
            report.digests,
            report.events_checked,
            report.uncovered,
            report.expired,
            if report.findings.is_empty() {
                "verified".to_owned()
            } else {
                format!("{} findings", report.findings.len())
            }
        );
    }
    if report.findings.is_empty() {
        Ok(())
    } else {
        Err(format!("the audit log does not verify: {} findings", report.findings.len()))
    }
}
