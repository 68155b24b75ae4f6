//! Time. Stored as milliseconds since the epoch; shown as RFC 3339 in UTC
//! with `Z` and whole seconds, as the contract writes it.

use std::sync::atomic::{AtomicI64, Ordering};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }
    pub const fn millis(self) -> i64 {
        self.0
    }
    pub const fn seconds(self) -> i64 {
        self.0.div_euclid(1000)
    }
    /// Whole seconds, rounded up: the unit of purge times, so that a token
    /// is never purged before its time in either store.
    pub const fn ceil_seconds(self) -> i64 {
        self.0.div_euclid(1000) + if self.0.rem_euclid(1000) == 0 { 0 } else { 1 }
    }
    pub const fn plus_millis(self, ms: i64) -> Self {
        Self(self.0 + ms)
    }
    pub const fn plus_seconds(self, s: i64) -> Self {
        Self(self.0 + s * 1000)
    }
    pub fn rfc3339(self) -> String {
        let dt = OffsetDateTime::from_unix_timestamp(self.seconds()).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        dt.format(&Rfc3339).unwrap_or_default()
    }
    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        let dt = OffsetDateTime::parse(s, &Rfc3339).ok()?;
        Some(Self((dt.unix_timestamp_nanos() / 1_000_000) as i64))
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.rfc3339())
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse_rfc3339(&s).ok_or_else(|| serde::de::Error::custom("not an RFC 3339 time"))
    }
}

/// A UTC calendar month: the period of a tenant's quota.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    year: i32,
    /// 1 to 12.
    month: u8,
}

impl Month {
    pub fn of(t: Timestamp) -> Self {
        let dt = OffsetDateTime::from_unix_timestamp(t.seconds()).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        Self { year: dt.year(), month: u8::from(dt.month()) }
    }

    /// `YYYY-MM`.
    pub fn key(self) -> String {
        format!("{:04}-{:02}", self.year, self.month)
    }

    pub fn next(self) -> Self {
        match self.month {
            12 => Self { year: self.year + 1, month: 1 },
            m => Self { year: self.year, month: m + 1 },
        }
    }

    /// Its first instant.
    pub fn start(self) -> Timestamp {
        let month = time::Month::try_from(self.month).unwrap_or(time::Month::January);
        let date = time::Date::from_calendar_date(self.year, month, 1).unwrap_or(time::Date::MIN);
        Timestamp::from_millis(date.midnight().assume_utc().unix_timestamp() * 1000)
    }
}

pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let ns = OffsetDateTime::now_utc().unix_timestamp_nanos();
        Timestamp((ns / 1_000_000) as i64)
    }
}

/// A clock that tests move by hand.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        Self(AtomicI64::new(start.millis()))
    }
    pub fn advance_seconds(&self, s: i64) {
        self.0.fetch_add(s * 1000, Ordering::SeqCst);
    }
    pub fn set(&self, to: Timestamp) {
        self.0.store(to.millis(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_utc_calendar_months() {
        let t = Timestamp::parse_rfc3339("2026-12-31T23:59:59Z").unwrap();
        let m = Month::of(t);
        assert_eq!(m.key(), "2026-12");
        assert_eq!(m.next().key(), "2027-01");
        assert_eq!(m.next().start().rfc3339(), "2027-01-01T00:00:00Z");
        assert_eq!(m.start().rfc3339(), "2026-12-01T00:00:00Z");
        assert_eq!(Month::of(m.next().start()).key(), "2027-01");
        assert_eq!(Month::of(Timestamp::parse_rfc3339("2028-02-29T12:00:00Z").unwrap()).next().key(), "2028-03");
    }

    #[test]
    fn formats_whole_seconds_with_z() {
        let t = Timestamp::from_millis(1_795_703_653_999);
        assert_eq!(t.rfc3339(), "2026-11-26T14:34:13Z");
        assert_eq!(Timestamp::parse_rfc3339("2026-11-26T14:34:13Z").unwrap().seconds(), t.seconds());
    }
}
