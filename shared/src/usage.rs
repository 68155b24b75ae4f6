//! Usage counters: how value reads become counts.
//!
//! A value read writes one item, its audit event (`key.read`, outcome `ok`).
//! It writes nothing on the key's or the token's item: a key, or a token
//! shared by a fleet, read 10,000 times a second would otherwise be one
//! partition taking 10,000 writes a second, past DynamoDB's 1,000.
//!
//! The counters are aggregated from the events instead. The DynamoDB
//! deployment's usage function reads the audit table's stream in batches
//! ([`crate::store::dynamo::stream`] turns a batch into a [`UsageBatch`]),
//! and [`UsageStore::apply_usage`](crate::store::UsageStore::apply_usage) adds each
//! batch's [`Tally`]: `retrievals` and `lastUsedAt` on each key, `uses` and
//! `lastUsedAt` on each token, and reads per UTC day per key and per token
//! (`GET /usage/daily`) — one write per key, token and day per batch, however
//! many reads the batch holds.
//!
//! Exact under retries: a batch is applied in transactions that also move
//! its checkpoint (the last stream sequence number applied, under the
//! batch's id), so a batch delivered again skips what already landed. A
//! read taken back (its event deleted: a planned read that no longer held,
//! a value that did not open) arrives as a removal and counts −1; an event
//! dropped by the retention TTL does not.
//!
//! The memory store (`ibyok dev`, unit tests) counts as it records, at once.

use crate::clock::Timestamp;
use crate::ids::{KeyId, TenantId, TokenId};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use time::{Date, Duration, OffsetDateTime};

/// How many days of daily counts are kept and served.
pub const DAILY_RETENTION_DAYS: i64 = 90;

/// A UTC day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(Date);

impl Day {
    pub fn of(at: Timestamp) -> Self {
        let dt = OffsetDateTime::from_unix_timestamp(at.seconds()).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        Day(dt.date())
    }

    /// `YYYY-MM-DD`, and nothing else.
    pub fn parse(s: &str) -> Option<Self> {
        let format = time::macros::format_description!("[year]-[month]-[day]");
        if s.len() != 10 {
            return None;
        }
        Date::parse(s, &format).ok().map(Day)
    }

    pub fn plus_days(self, n: i64) -> Self {
        Day(self.0.saturating_add(Duration::days(n)))
    }

    /// Days from `self` to `later` (negative if `later` is earlier).
    pub fn days_until(self, later: Day) -> i64 {
        (later.0 - self.0).whole_days()
    }

    /// The first millisecond of the day.
    pub fn start(self) -> Timestamp {
        Timestamp::from_millis(self.0.midnight().assume_utc().unix_timestamp() * 1000)
    }

    /// The days `from..=to`, oldest first.
    pub fn range(from: Day, to: Day) -> impl Iterator<Item = Day> {
        (0..=from.days_until(to)).map(move |i| from.plus_days(i))
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.0.year(), u8::from(self.0.month()), self.0.day())
    }
}

impl serde::Serialize for Day {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What a count is of.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Subject {
    Key(KeyId),
    Token(TokenId),
}

/// One day's reads of one key or token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DailyCount {
    pub day: Day,
    pub subject: Subject,
    pub reads: u64,
}

/// A position in a stream shard. DynamoDB's sequence numbers are decimal
/// strings of up to 40 digits that grow within a shard: ordered by length,
/// then by digits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeqNo(pub String);

impl Ord for SeqNo {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.len().cmp(&other.0.len()).then_with(|| self.0.cmp(&other.0))
    }
}

impl PartialOrd for SeqNo {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A successful read (+1), or one taken back (−1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CountedRead {
    pub seq: SeqNo,
    pub tenant_id: TenantId,
    pub key_id: KeyId,
    pub token_id: TokenId,
    pub at: Timestamp,
    pub delta: i64,
}

/// One delivery of the audit stream, as the usage function receives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageBatch {
    /// Names the batch across redeliveries: the id of its first record
    /// (a redelivery starts at the same record).
    pub id: String,
    /// The last record of the batch, counted or not.
    pub last_seq: SeqNo,
    /// The reads in the batch, in stream order.
    pub reads: Vec<CountedRead>,
}

/// A count and the latest read in it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Count {
    pub n: i64,
    /// The latest read counted (+1); a take-back never moves it.
    pub last_at: Option<Timestamp>,
}

impl Count {
    fn add(&mut self, r: &CountedRead) {
        self.n += r.delta;
        if r.delta > 0 {
            self.last_at = self.last_at.max(Some(r.at));
        }
    }
}

/// What a run of reads adds to the counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub keys: BTreeMap<KeyId, Count>,
    pub tokens: BTreeMap<TokenId, Count>,
    pub daily: BTreeMap<(TenantId, Day, Subject), i64>,
}

impl Tally {
    pub fn add(&mut self, r: &CountedRead) {
        self.keys.entry(r.key_id.clone()).or_default().add(r);
        self.tokens.entry(r.token_id.clone()).or_default().add(r);
        let day = Day::of(r.at);
        *self.daily.entry((r.tenant_id.clone(), day, Subject::Key(r.key_id.clone()))).or_default() += r.delta;
        *self.daily.entry((r.tenant_id.clone(), day, Subject::Token(r.token_id.clone()))).or_default() += r.delta;
    }

    /// The items a store writes for this tally.
    pub fn items(&self) -> usize {
        self.keys.len() + self.tokens.len() + self.daily.len()
    }

    /// Splits `reads` into runs whose tallies write at most `max_items`
    /// items each (a transaction's limit, less its checkpoint), in order.
    pub fn runs(reads: &[CountedRead], max_items: usize) -> Vec<(Tally, &CountedRead)> {
        let mut out = Vec::new();
        let mut tally = Tally::default();
        let mut last: Option<&CountedRead> = None;
        for r in reads {
            let mut next = tally.clone();
            next.add(r);
            if next.items() > max_items {
                if let Some(l) = last {
                    out.push((std::mem::take(&mut tally), l));
                }
                tally = Tally::default();
                tally.add(r);
            } else {
                tally = next;
            }
            last = Some(r);
        }
        if let Some(l) = last {
            out.push((tally, l));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_parse_print_and_count() {
        let d = Day::parse("2026-11-30").unwrap();
        assert_eq!(d.to_string(), "2026-11-30");
        assert_eq!(d.plus_days(1).to_string(), "2026-12-01");
        assert_eq!(d.days_until(Day::parse("2026-12-02").unwrap()), 2);
        for bad in ["2026-11-31", "2026-1-01", "20261130", "", "2026-11-30T00:00:00Z", "+02026-11-30"] {
            assert!(Day::parse(bad).is_none(), "{bad}");
        }
        assert_eq!(Day::of(d.start()), d);
        assert_eq!(Day::of(d.start().plus_millis(-1)), Day::parse("2026-11-29").unwrap());
        assert_eq!(Day::range(d, d.plus_days(2)).count(), 3);
    }

    #[test]
    fn sequence_numbers_order_by_length_then_digits() {
        let s = |x: &str| SeqNo(x.into());
        assert!(s("99") < s("100"));
        assert!(s("100") < s("101"));
        assert_eq!(s("7").cmp(&s("7")), Ordering::Equal);
    }

    #[test]
    fn runs_keep_order_and_stay_under_the_limit() {
        let tenant = TenantId::generate();
        let token = crate::token::ParsedToken::generate().id().clone();
        let reads: Vec<CountedRead> = (0..50)
            .map(|i| CountedRead {
                seq: SeqNo(format!("{:03}", i)),
                tenant_id: tenant.clone(),
                key_id: KeyId::generate(&tenant),
                token_id: token.clone(),
                at: Timestamp::from_millis(1_800_000_000_000 + i),
                delta: 1,
            })
            .collect();
        let runs = Tally::runs(&reads, 20);
        let total: i64 = runs.iter().map(|(t, _)| t.keys.values().map(|c| c.n).sum::<i64>()).sum();
        assert_eq!(total, 50);
        assert!(runs.iter().all(|(t, _)| t.items() <= 20));
        assert_eq!(runs.last().unwrap().1.seq, SeqNo("049".into()));
        let taken_back = CountedRead { delta: -1, at: Timestamp::from_millis(1_900_000_000_000), ..reads[0].clone() };
        let mut t = Tally::default();
        t.add(&reads[0]);
        t.add(&taken_back);
        assert_eq!(
            t.keys[&reads[0].key_id],
            Count { n: 0, last_at: Some(reads[0].at) },
            "a take-back never moves lastUsedAt"
        );
    }
}
