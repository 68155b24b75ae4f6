//! The keys aggregate: a key's record, its versions (current, previous,
//! pending) and the rules that change them.

use super::{AuditEvent, Page, PurgeReport, StoreError};
use crate::clock::Timestamp;
use crate::envelope::Envelope;
use crate::ids::{KeyId, TenantId};
use crate::mode::ModeOverrides;
use async_trait::async_trait;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRecord {
    pub key_id: KeyId,
    pub tenant_id: TenantId,
    pub name: String,
    pub llm_type: String,
    pub mode_overrides: ModeOverrides,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    pub retrievals: u64,
    /// The version served by default.
    pub current: KeyVersion,
    /// The version that was current before, with `retires_at`: readable
    /// until then, retired after, destroyed by the next cleanup.
    pub previous: Option<KeyVersion>,
    /// A version stored beside the current one, read only when asked for.
    pub pending: Option<KeyVersion>,
    /// The highest version number ever given: numbers are never reused.
    pub last_version: u64,
}

/// One stored version of a key's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyVersion {
    /// From 1 (the value given at creation).
    pub number: u64,
    pub created_at: Timestamp,
    /// A previous version's end: readable before, retired from then on.
    pub retires_at: Option<Timestamp>,
    pub preview: String,
    pub envelope: Envelope,
}

impl KeyVersion {
    /// A version's first stage: created now.
    pub fn new(number: u64, created_at: Timestamp, preview: String, envelope: Envelope) -> Self {
        Self { number, created_at, retires_at: None, preview, envelope }
    }
}

/// A version's stage (`GET /keys/{keyId}/versions`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Current,
    Previous,
    Pending,
    /// A previous version past its window, until cleanup destroys it.
    Retired,
}

/// Which version a read asks for (`?version=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum VersionSelector {
    #[default]
    Current,
    Previous,
    Pending,
    Number(u64),
}

impl VersionSelector {
    /// `current`, `previous`, `pending` or a version number (digits).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "current" => Some(Self::Current),
            "previous" => Some(Self::Previous),
            "pending" => Some(Self::Pending),
            n if !n.is_empty() && n.len() <= 19 && n.bytes().all(|b| b.is_ascii_digit()) => {
                n.parse().ok().map(Self::Number)
            }
            _ => None,
        }
    }
}

/// How long the version that stops being current stays readable, in
/// seconds (`previousValidFor`).
pub const MAX_PREVIOUS_VALID_FOR: i64 = 2_592_000;

impl KeyRecord {
    /// The stored versions with their stage at `now`, newest first.
    pub fn versions(&self, now: Timestamp) -> Vec<(&KeyVersion, Stage)> {
        let mut out = vec![(&self.current, Stage::Current)];
        out.extend(self.pending.iter().map(|v| (v, Stage::Pending)));
        out.extend(
            self.previous.iter().map(|v| (v, if previous_readable(v, now) { Stage::Previous } else { Stage::Retired })),
        );
        out.sort_by_key(|(v, _)| std::cmp::Reverse(v.number));
        out
    }

    /// The version a read asks for, if it is readable at `now` (a retired
    /// version, or one that does not exist, is `None`).
    pub fn select(&self, which: VersionSelector, now: Timestamp) -> Option<(&KeyVersion, Stage)> {
        let readable = self.versions(now).into_iter().filter(|(_, stage)| *stage != Stage::Retired);
        readable.into_iter().find(|(v, stage)| match which {
            VersionSelector::Current => *stage == Stage::Current,
            VersionSelector::Previous => *stage == Stage::Previous,
            VersionSelector::Pending => *stage == Stage::Pending,
            VersionSelector::Number(n) => v.number == n,
        })
    }

    /// What the store must hold for `version` (planned at `stage`) to be
    /// served at `at`, with `envelope` when live: the same number in the
    /// same place, readable, and the same envelope. The memory store's form
    /// of the DynamoDB adapter's condition.
    pub fn holds_version(&self, version: &PlannedVersion, envelope: Option<&Envelope>, at: Timestamp) -> bool {
        let slot = match version.stage {
            Stage::Current => Some(&self.current),
            Stage::Previous => self.previous.as_ref().filter(|v| previous_readable(v, at)),
            Stage::Pending => self.pending.as_ref(),
            Stage::Retired => None,
        };
        slot.is_some_and(|v| v.number == version.number && envelope.is_none_or(|e| *e == v.envelope))
    }

    /// The change that makes `new` the current version: the current one
    /// becomes previous for `previous_valid_for` seconds (none at 0: it is
    /// retired, and destroyed, at once); an earlier previous is destroyed.
    pub fn rotation(&self, new: KeyVersion, previous_valid_for: i64, now: Timestamp) -> KeyChange {
        KeyChange::Versions {
            expect: self.stamp(),
            current: Some(new.clone()),
            previous: self.demoted(previous_valid_for, now),
            pending: Slot::Keep,
            last_version: new.number.max(self.last_version),
        }
    }

    /// The change that stores `new` as the pending version (a pending one
    /// before it is destroyed).
    pub fn staging(&self, new: KeyVersion) -> KeyChange {
        KeyChange::Versions {
            expect: self.stamp(),
            current: None,
            previous: Slot::Keep,
            last_version: new.number.max(self.last_version),
            pending: Slot::Set(new),
        }
    }

    /// The change that makes the pending version current, as a rotation
    /// does; `None` without a pending version.
    pub fn promotion(&self, previous_valid_for: i64, now: Timestamp) -> Option<KeyChange> {
        let pending = self.pending.clone()?;
        Some(KeyChange::Versions {
            expect: self.stamp(),
            current: Some(KeyVersion { retires_at: None, ..pending }),
            previous: self.demoted(previous_valid_for, now),
            pending: Slot::Remove,
            last_version: self.last_version,
        })
    }

    /// The next version number.
    pub fn next_version(&self) -> u64 {
        self.last_version.max(self.current.number).saturating_add(1)
    }

    fn demoted(&self, previous_valid_for: i64, now: Timestamp) -> Slot {
        match previous_valid_for {
            0 => Slot::Remove,
            s => Slot::Set(KeyVersion { retires_at: Some(now.plus_seconds(s)), ..self.current.clone() }),
        }
    }

    fn stamp(&self) -> VersionStamp {
        VersionStamp {
            current: self.current.number,
            last: self.last_version,
            pending: self.pending.as_ref().map(|v| v.number),
        }
    }

    /// Applies a version change (the memory store's write, and what a
    /// handler answers after the store took it).
    pub fn apply_versions(&mut self, change: &KeyChange) {
        if let KeyChange::Versions { current, previous, pending, last_version, .. } = change {
            if let Some(c) = current {
                self.current = c.clone();
            }
            previous.apply(&mut self.previous);
            pending.apply(&mut self.pending);
            self.last_version = *last_version;
        }
    }

    /// Whether cleanup destroys the previous version at `now`: its window
    /// closed at or before `now`'s second (whole seconds, rounded up, in
    /// both stores: never before its time).
    pub fn previous_due(&self, now: Timestamp) -> bool {
        self.previous.as_ref().and_then(|v| v.retires_at).is_some_and(|r| r.ceil_seconds() <= now.seconds())
    }

    /// Whether `change` has landed on this record: a retry of a change
    /// whose first answer was lost finds its own versions (their envelopes
    /// are unique).
    pub fn shows(&self, change: &KeyChange) -> bool {
        let KeyChange::Versions { current, pending, last_version, .. } = change else { return false };
        self.last_version == *last_version
            && current.as_ref().is_none_or(|c| c.number == self.current.number && c.envelope == self.current.envelope)
            && match pending {
                Slot::Set(p) => self.pending.as_ref().is_some_and(|kp| kp.envelope == p.envelope),
                Slot::Remove => self.pending.is_none(),
                Slot::Keep => true,
            }
    }
}

fn previous_readable(v: &KeyVersion, now: Timestamp) -> bool {
    v.retires_at.is_some_and(|r| now < r)
}

/// A planned read's version: its number and where it stood.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlannedVersion {
    pub number: u64,
    /// Current, previous or pending.
    pub stage: Stage,
}

/// What a version change expects to find (a concurrent change fails it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VersionStamp {
    pub current: u64,
    pub last: u64,
    pub pending: Option<u64>,
}

/// What a version change does to the previous or pending version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Slot {
    Keep,
    /// Destroyed: its ciphertext and wrapped key go.
    Remove,
    Set(KeyVersion),
}

impl Slot {
    fn apply(&self, slot: &mut Option<KeyVersion>) {
        match self {
            Slot::Keep => {}
            Slot::Remove => *slot = None,
            Slot::Set(v) => *slot = Some(v.clone()),
        }
    }
}

/// A change to an existing key.
// One per request, never held in bulk: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum KeyChange {
    /// A new current or pending version, or a promotion (built by
    /// [`KeyRecord::rotation`], [`KeyRecord::staging`],
    /// [`KeyRecord::promotion`]). Written only if the key's versions are
    /// still `expect`, else `Conflict::Changed`; a retry of this very change
    /// that landed is `Ok`.
    Versions {
        expect: VersionStamp,
        /// A new current version (`None`: the current one stays).
        current: Option<KeyVersion>,
        previous: Slot,
        pending: Slot,
        last_version: u64,
    },
    Meta {
        name: String,
        mode_overrides: ModeOverrides,
    },
}

/// Keys and their versions.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// One round trip; `Conflict::Exists` if the id exists (never overwrites;
    /// a retry of this very write, recognised by its ciphertext, is `Ok`).
    async fn create_key(&self, key: &KeyRecord, audit: &AuditEvent) -> Result<(), StoreError>;

    /// One round trip; `NotFound` unless the key exists in `tenant`.
    async fn update_key(
        &self,
        tenant: &TenantId,
        key: &KeyId,
        change: &KeyChange,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// One round trip; `NotFound` if the key is another tenant's. A key
    /// already gone is `Ok` and writes no event (its deletion wrote one).
    async fn delete_key(&self, tenant: &TenantId, key: &KeyId, audit: &AuditEvent) -> Result<(), StoreError>;

    /// Two round trips (index query, then consistent batch read), oldest first.
    async fn list_keys(
        &self,
        tenant: &TenantId,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<KeyRecord>, StoreError>;

    /// Destroys the previous versions whose window closed at or before
    /// `now` (their ciphertext and wrapped key), reading only those.
    async fn retire_versions(&self, now: Timestamp) -> Result<PurgeReport, StoreError>;
}
