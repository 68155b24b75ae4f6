//! The DynamoDB tables, defined once. Tests and `ibyok dev --aws` create
//! tables from these definitions, and a test checks `template.yaml` against
//! them, so the two cannot drift.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttrType {
    S,
    N,
    B,
}

impl AttrType {
    pub fn as_str(self) -> &'static str {
        match self {
            AttrType::S => "S",
            AttrType::N => "N",
            AttrType::B => "B",
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Attr {
    pub name: &'static str,
    pub ty: AttrType,
}

#[derive(Clone, Copy, Debug)]
pub struct Index {
    pub name: &'static str,
    pub hash: Attr,
    pub range: Option<Attr>,
    /// The index projects the table's keys only: reads of the items go to
    /// the table itself, consistently.
    pub keys_only: bool,
}

#[derive(Clone, Copy, Debug)]
pub struct Table {
    /// The resource's logical id in `template.yaml`.
    pub logical_id: &'static str,
    /// The default table name's suffix (`ibyok-<suffix>`).
    pub suffix: &'static str,
    pub hash: Attr,
    pub range: Option<Attr>,
    pub indexes: &'static [Index],
    /// The TTL attribute (epoch seconds), a backstop for cleanup.
    pub ttl: Option<&'static str>,
    /// A stream of new and old images (the usage function reads it).
    pub stream: bool,
}

const fn s(name: &'static str) -> Attr {
    Attr { name, ty: AttrType::S }
}
const fn n(name: &'static str) -> Attr {
    Attr { name, ty: AttrType::N }
}

// The attributes that key a table or an index. The item mapping and the
// queries name them through these constants, never as literals.
pub const TOKEN_ID: &str = "tokenId";
pub const IDENTITY_ID: &str = "identityId";
pub const MEMBER_KEY: &str = "memberKey";
pub const SIGN_IN_KEY: &str = "signInKey";
pub const KEY_ID: &str = "keyId";
pub const TENANT_ID: &str = "tenantId";
pub const CREATED_AT: &str = "createdAt";
pub const EVENT_KEY: &str = "eventKey";
pub const ISSUER_ID: &str = "issuerId";
pub const PURGE_SHARD: &str = "purgeShard";
pub const PURGE_AT: &str = "purgeAt";
pub const USAGE_KEY: &str = "usageKey";
/// The partition of the usage function's checkpoints (no tenant id starts
/// with `~`).
pub const USAGE_CHECKPOINTS: &str = "~checkpoints";
/// On a key item while it holds a previous version: the shard and the
/// second its window closes, for cleanup to find it (sparse).
pub const RETIRE_SHARD: &str = "retireShard";
pub const RETIRE_AT: &str = "retireAt";
pub const COUNTER_ID: &str = "counterId";
/// A replica's key: `key#<keyId>#<r>` or `token#<tokenId>#<r>`.
pub const REPLICA_ID: &str = "replicaId";
pub const NOTICE_SHARD: &str = "noticeShard";
pub const NOTICE_AT: &str = "noticeAt";
/// The TTL attribute of the tokens and audit tables (epoch seconds).
pub const TTL: &str = "ttl";
/// A digest's shard, `<tenantId>#<shard>` (the digests table's key).
pub const DIGEST_SHARD: &str = "digestShard";
/// A digest's number in its shard's chain.
pub const DIGEST_SEQ: &str = "seq";
/// A digest's place in its tenant's listing: `<through>#<shard>#<seq>`,
/// zero-padded (the by-time index).
pub const DIGEST_TIME: &str = "digestTime";
/// The digests' listing per tenant, newest first (keys only).
pub const TIME_INDEX: &str = "by-time";

/// Audit partitions per tenant: an event goes to `<tenantId>#<shard>`, the
/// shard from its event id, so that one tenant's events spread over this
/// many partition keys (DynamoDB gives each 1,000 write units a second).
/// Events of the earlier layout stay under the bare tenant id, which the
/// listing reads as one more partition.
pub const AUDIT_SHARDS: u32 = 32;

pub const TENANT_INDEX: &str = "by-tenant";
pub const PURGE_INDEX: &str = "by-purge";
/// Tokens whose expiry notice is still to send, by when it is due: a sparse
/// index (the attributes go when the notice is claimed), sharded as the
/// purge index.
pub const NOTICE_INDEX: &str = "by-notice";
/// Purge index partitions, so that token writes spread over several.
pub const PURGE_SHARDS: u8 = 8;
/// The keys whose previous version is to be destroyed (sparse: only keys
/// holding a previous version are in it).
pub const RETIRE_INDEX: &str = "by-retire";
/// The members by their sign-in key ([`crate::member::MemberRecord::sign_in_key`]),
/// across tenants: how a sign-in finds a person's memberships.
pub const SIGN_IN_INDEX: &str = "by-sign-in";
/// Retire index partitions, as for the purge index.
pub const RETIRE_SHARDS: u8 = 8;

pub const TOKENS: Table = Table {
    logical_id: "TokensTable",
    suffix: "tokens",
    hash: s(TOKEN_ID),
    range: None,
    indexes: &[
        Index { name: TENANT_INDEX, hash: s(TENANT_ID), range: Some(n(CREATED_AT)), keys_only: true },
        Index { name: PURGE_INDEX, hash: s(PURGE_SHARD), range: Some(n(PURGE_AT)), keys_only: true },
        Index { name: NOTICE_INDEX, hash: s(NOTICE_SHARD), range: Some(n(NOTICE_AT)), keys_only: true },
    ],
    ttl: Some(TTL),
    stream: false,
};

pub const KEYS: Table = Table {
    logical_id: "KeysTable",
    suffix: "keys",
    hash: s(KEY_ID),
    range: None,
    indexes: &[
        Index { name: TENANT_INDEX, hash: s(TENANT_ID), range: Some(n(CREATED_AT)), keys_only: true },
        Index { name: RETIRE_INDEX, hash: s(RETIRE_SHARD), range: Some(n(RETIRE_AT)), keys_only: true },
    ],
    ttl: None,
    stream: false,
};

pub const TENANTS: Table = Table {
    logical_id: "TenantsTable",
    suffix: "tenants",
    hash: s(TENANT_ID),
    range: None,
    indexes: &[],
    ttl: None,
    stream: false,
};

pub const AUDIT: Table = Table {
    logical_id: "AuditTable",
    suffix: "audit",
    hash: s(TENANT_ID),
    range: Some(s(EVENT_KEY)),
    indexes: &[],
    ttl: Some(TTL),
    stream: true,
};

/// One small item per token issued by another (issuer, child): what a
/// revocation reads to cascade, with a consistent query of the issuer's
/// partition. Nothing grows on the issuer's own item; cleanup deletes a
/// child's entry with the child, and the TTL (the child's expiry) backs it.
pub const CHILDREN: Table = Table {
    logical_id: "ChildrenTable",
    suffix: "children",
    hash: s(ISSUER_ID),
    range: Some(s(TOKEN_ID)),
    indexes: &[],
    ttl: Some(TTL),
    stream: false,
};

/// The counters aggregated from the audit stream ([`crate::usage`]): reads
/// per UTC day per key and per token under the tenant
/// (`<day>#k#<keyId>`, `<day>#t#<tokenId>`, dropped by the TTL after
/// [`crate::usage::DAILY_RETENTION_DAYS`] and a margin), and the usage
/// function's checkpoints under [`USAGE_CHECKPOINTS`] (a day's TTL).
pub const USAGE: Table = Table {
    logical_id: "UsageTable",
    suffix: "usage",
    hash: s(TENANT_ID),
    range: Some(s(USAGE_KEY)),
    indexes: &[],
    ttl: Some(TTL),
    stream: false,
};

/// Small counters that expire: a token's requests in one UTC minute
/// (`rate#<tokenId>#<minute>`), a tenant's value reads in one UTC month
/// (`quota#<tenantId>#<YYYY-MM>`), and the exchanged JWTs' `jti`s, each
/// claimed once until its JWT expires (`jti#<digest>`). Their own table, apart from the records:
/// a counter is written on every request of a limited token, so it takes its
/// write units from no record's partition; its TTL sweeps it without a scan;
/// and only the functions that count may write it.
pub const LIMITS: Table = Table {
    logical_id: "LimitsTable",
    suffix: "limits",
    hash: s(COUNTER_ID),
    range: None,
    indexes: &[],
    ttl: Some(TTL),
    stream: false,
};

/// Copies of each tenant's, key's and token's item (`tenant#<tenantId>#<r>`,
/// `key#<keyId>#<r>`, `token#<tokenId>#<r>`; [`TENANT_REPLICAS`] of a
/// tenant, [`RECORD_REPLICAS`] of a key or token), written with the item by
/// every change to it: a read takes its tenant, key and token from one
/// replica each, at random, so that one of them is read over that many
/// partition keys (DynamoDB gives each 3,000 read units a second). A table
/// of their own, so that no copy enters the records' indexes. A token's
/// copies carry its TTL and go with it; a key's go with the key.
pub const REPLICAS: Table = Table {
    logical_id: "ReplicasTable",
    suffix: "replicas",
    hash: s(REPLICA_ID),
    range: None,
    indexes: &[],
    ttl: Some(TTL),
    stream: false,
};

/// Replicas of each key's and each token's item: one key, or one token,
/// takes 4 × 3,000 = 12,000 consistent reads a second.
pub const RECORD_REPLICAS: u32 = 4;

/// Replicas of each tenant's item: every read of a tenant's keys takes its
/// settings, so one tenant takes 8 × 3,000 = 24,000 consistent reads a
/// second.
pub const TENANT_REPLICAS: u32 = 8;

/// Workload identities ([`crate::identity`]), listed per tenant. A deleted
/// identity stays (hidden) until every token exchanged through it has
/// expired; its TTL then sweeps it. The tokens exchanged through one are
/// entered in the children table under its id, as a token's children are.
pub const IDENTITIES: Table = Table {
    logical_id: "IdentitiesTable",
    suffix: "identities",
    hash: s(IDENTITY_ID),
    range: None,
    indexes: &[Index { name: TENANT_INDEX, hash: s(TENANT_ID), range: Some(n(CREATED_AT)), keys_only: true }],
    ttl: Some(TTL),
    stream: false,
};

/// The audit log's signed digests ([`crate::digest`]): one chain per audit
/// shard (`<tenantId>#<shard>`, numbered by `seq`, each written once), and
/// a keys-only index listing a tenant's digests by time. A table of its
/// own: only the cleanup function writes it (it cannot write events), and
/// only the account function reads it. Kept by TTL past the retention of
/// the events a digest covers.
pub const DIGESTS: Table = Table {
    logical_id: "DigestsTable",
    suffix: "digests",
    hash: s(DIGEST_SHARD),
    range: Some(n(DIGEST_SEQ)),
    indexes: &[Index { name: TIME_INDEX, hash: s(TENANT_ID), range: Some(s(DIGEST_TIME)), keys_only: true }],
    ttl: Some(TTL),
    stream: false,
};

/// A tenant's members ([`crate::member`]), listed per tenant, under their
/// ids (`mem_…`); beside them, without a tenant (so outside the index), each
/// tenant's claimed invitations (`invite#<tenantId>#<provider>:<handle>`,
/// one member each) and its count of owners (`owners#<tenantId>`), which
/// every change to a member keeps in its transaction. Members are found at
/// sign-in through the sign-in index (the person's stable id once bound,
/// the invitation's handle until then).
pub const MEMBERS: Table = Table {
    logical_id: "MembersTable",
    suffix: "members",
    hash: s(MEMBER_KEY),
    range: None,
    indexes: &[
        Index { name: TENANT_INDEX, hash: s(TENANT_ID), range: Some(n(CREATED_AT)), keys_only: true },
        Index { name: SIGN_IN_INDEX, hash: s(SIGN_IN_KEY), range: None, keys_only: false },
    ],
    ttl: None,
    stream: false,
};

pub const ALL: [Table; 11] =
    [TOKENS, KEYS, TENANTS, AUDIT, CHILDREN, USAGE, LIMITS, REPLICAS, IDENTITIES, DIGESTS, MEMBERS];

impl Table {
    /// Every attribute that a key of the table or of an index names, once.
    pub fn key_attributes(&self) -> Vec<Attr> {
        let mut out: Vec<Attr> = Vec::new();
        let all = std::iter::once(self.hash)
            .chain(self.range)
            .chain(self.indexes.iter().flat_map(|i| std::iter::once(i.hash).chain(i.range)));
        for a in all {
            if !out.iter().any(|o| o.name == a.name) {
                out.push(a);
            }
        }
        out
    }
}
