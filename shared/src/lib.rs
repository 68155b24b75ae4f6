//! IBYOK's library: everything the Lambda functions, the local development
//! server and the command-line client share. This page is the crate's map:
//! its modules, then the architecture they implement
//! (`docs/architecture.md`; the other pages are beside it in `docs/`).
//!
//! One concept, one module:
//!
//! - [`secret`] — the types that hold key values, data keys and token secrets
//!   (zeroized on drop, redacted in `Debug`).
//! - [`ids`] — identifiers (`ten_…`, `key_…`, `tok_…`, `idn_…`, `mem_…`) and
//!   base62.
//! - [`clock`] — time, as a port so that tests can move it.
//! - [`token`] — the token format, checksum, hashing, scopes and the issuing
//!   rules.
//! - [`envelope`] — envelope encryption (seal/open) over the [`kms`] port.
//! - [`fault`] — a failed backend call: its kind and its cause.
//! - [`digest`] — the audit log's signed digests and their verification.
//! - [`identity`] — workload identities: the trust rules, the JWT and JWKS
//!   checks and the AWS STS exchange.
//! - [`member`] — people: a tenant's members, their roles and the rules for
//!   changing them.
//! - [`fetch`] — outbound HTTPS under one policy (no redirects, limits).
//! - [`keycache`] — public keys fetched from another service (OpenID
//!   issuers, GitHub) and cached per instance, under one set of rules.
//! - [`scanning`] — leaked-token reports from secret scanning (GitHub's
//!   partner program): its keys, the signature, the report and the answer.
//! - [`kms`] — the KMS port, its AWS adapter and a local adapter.
//! - [`maintenance`] — the scheduled work (cleanup), for the cleanup
//!   function and `ibyok dev`.
//! - [`mode`] — mock-mode resolution and the provider-shaped fakes.
//! - [`notify`] — notices to tenants (a token's expiry, tokens found leaked):
//!   the port, SNS and log adapters.
//! - [`store`] — the domain records, the storage port, its DynamoDB adapter,
//!   its in-memory adapter and the table definitions.
//! - [`aws`] — the AWS SDK clients, their timeouts and retries, built once.
//! - [`bootstrap`] — a tenant and its first (root) token, for the operator.
//! - [`config`] — configuration from environment variables.
//! - [`api`] — the HTTP contract: request parsing, routing, the route
//!   handlers and the error-to-response mapping.
//! - [`lambda`] — the bridge from `lambda_http` to [`api`] (feature `lambda`).
//! - [`telemetry`] — structured logging.
//! - [`usage`] — how value reads become counters (per key, per token, per
//!   day), aggregated from the audit events.
//!
#![doc = include_str!("../../docs/architecture.md")]

pub mod api;
pub mod aws;
pub mod bootstrap;
pub mod clock;
pub mod config;
pub mod digest;
pub mod envelope;
pub mod fault;
pub mod fetch;
pub mod files;
pub mod identity;
pub mod ids;
pub mod keycache;
pub mod kms;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod maintenance;
pub mod member;
pub mod mode;
pub mod notify;
pub mod scanning;
pub mod secret;
pub mod signin;
pub mod store;
pub mod telemetry;
pub mod token;
pub mod usage;
