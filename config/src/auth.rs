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

/// One `[[auth.tokens]]` entry. Only the token's hash is stored:
/// `printf %s "$TOKEN" | sha256sum`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Name of the token's holder, for logs and metrics. Required, unique.
    pub name: String,
    /// `sha256:` followed by the 64 lowercase hex digits of the token's SHA-256. Required.
    pub hash: String,
    /// What the token may do. Required.
    pub role: Role,
    /// Namespaces whose records the token may read (exact names). Empty (the default) means all.
    #[serde(default)]
    pub namespaces: Vec<String>,
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
    /// PEM bundle of CAs whose client certificates are required (mutual TLS). Unset (the
    /// default): client certificates are not asked for.
    #[serde(default)]
    pub client_ca_path: Option<PathBuf>,
}
