//! `[auth]`: bearer tokens and TLS.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[auth]` section. With no tokens, every request is allowed (the standalone default on
/// 127.0.0.1).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Accepted bearer tokens. Empty (the default) disables authentication.
    pub tokens: Vec<TokenConfig>,
    /// Serve HTTPS with this certificate. Unset (the default) serves plain HTTP.
    pub tls: Option<TlsConfig>,
}

impl AuthConfig {
    /// Whether requests must carry a bearer token: true when at least one token is configured.
    pub fn enabled(&self) -> bool {
        !self.tokens.is_empty()
    }
}

/// One `[[auth.tokens]]` entry. Only the token's hash is stored: `trawl token new` prints a new
/// token with its hash, `trawl token hash` hashes an existing one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Name of the token's holder, for logs and metrics. Required, unique.
    pub name: String,
    /// `sha256:<salt hex>:<digest hex>`, the digest being SHA-256 of the salt's bytes followed
    /// by the token (what `trawl token hash` prints), or the unsalted `sha256:<digest hex>`
    /// (`printf %s "$TOKEN" | sha256sum`). Lowercase hex, 64 digits of digest. Required.
    pub hash: String,
    /// What the token may do. Required.
    pub role: Role,
    /// Namespaces whose records the token may read (exact names), in every read endpoint and
    /// whatever the query says; audit events by their `namespace`, so cluster-scoped events
    /// only without a list. Empty (the default) means all.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Clusters whose records the token may read (their `cluster` field), likewise in every
    /// read endpoint; with `namespaces` too, records must be in both. Empty (the default)
    /// means all.
    #[serde(default)]
    pub clusters: Vec<String>,
}

/// What a token may do: `ingest` and `read` only what they say, `admin` everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Push records (collector, `_bulk`, OTLP, audit webhook).
    Ingest,
    /// Search, export, tail and reports.
    Read,
    /// Everything, including administrative endpoints.
    Admin,
}

impl Role {
    /// Whether a token with this role may do what `needed` is required for.
    pub fn allows(self, needed: Role) -> bool {
        self == Role::Admin || self == needed
    }
}

/// `[auth.tls]`: the server's certificate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain. Required.
    pub cert_path: PathBuf,
    /// PEM private key. Required.
    pub key_path: PathBuf,
    /// PEM bundle of CAs for client certificates. When set, clients are asked for (not required
    /// to present) a certificate; one that does not chain to these CAs fails the handshake, and
    /// a verified one authenticates the audit webhook without a token. Unset (the default):
    /// client certificates are not asked for.
    #[serde(default)]
    pub client_ca_path: Option<PathBuf>,
}
