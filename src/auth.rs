//! Bearer-token authentication and role-based authorization of every HTTP endpoint, and the
//! token hashes of `[[auth.tokens]]` (`trawl token hash`, `trawl token new`).
//!
//! When `[auth]` lists tokens, every request except `/health/*` and the console's files must carry
//! `Authorization: Bearer <token>`. A missing or unknown token is 401 (with
//! `WWW-Authenticate: Bearer`), a token whose role does not cover the endpoint is 403; both
//! answer the API's JSON error body and never echo the token. What each endpoint needs is
//! decided in one table, [`classify`]. An authenticated request carries its token's
//! [`Scope`] (namespaces) as a request extension, which the query routes enforce.
//!
//! The audit webhook also accepts, instead of a token, a client certificate verified by the
//! TLS listener against `auth.tls.client_ca_path` (the API server's webhook kubeconfig can
//! present one): the TLS acceptor adds the peer's certificates to the request's extensions
//! only when the handshake verified them.
//!
//! Hashes: `sha256:<salt-hex>:<digest-hex>` where digest = SHA-256(salt ‖ token), or the
//! unsalted `sha256:<digest-hex>` = SHA-256(token) (`printf %s "$TOKEN" | sha256sum`). Tokens
//! are long random strings (`trawl token new` makes 256-bit ones), so a fast hash is enough:
//! there is no dictionary to try, and a slow hash would only cost every request time.
//! Comparison is constant-time.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::RngCore;
use sha2::{Digest, Sha256};
use trawl_config::{AuthConfig, Role};
use trawl_model::{ApiError, ErrorCode};

#[cfg(feature = "query")]
use trawl_query::Scope;

/// Bytes of a new token's randomness (256 bits).
const TOKEN_BYTES: usize = 32;
/// Bytes of a hash's salt.
const SALT_BYTES: usize = 16;
/// Prefix of tokens made by `trawl token new`, so that secret scanners recognise them.
const TOKEN_PREFIX: &str = "trawl_";

/// A fresh random token: `trawl_` and 64 hex digits.
pub fn new_token() -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", hex(&bytes))
}

/// The salted hash of `token` with a fresh random salt, as `[[auth.tokens]] hash` takes it.
pub fn hash_token(token: &str) -> String {
    let mut salt = [0u8; SALT_BYTES];
    rand::rng().fill_bytes(&mut salt);
    hash_with_salt(token, &salt)
}

fn hash_with_salt(token: &str, salt: &[u8]) -> String {
    format!("sha256:{}:{}", hex(salt), hex(&digest(salt, token)))
}

fn digest(salt: &[u8], token: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(salt);
    hasher.update(token.as_bytes());
    hasher.finalize().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A parsed `hash` of `[[auth.tokens]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHash {
    salt: Vec<u8>,
    digest: [u8; 32],
}

impl TokenHash {
    /// Parses `sha256:<salt-hex>:<digest-hex>` or `sha256:<digest-hex>` (no salt); `None` for
    /// anything else (the configuration's validation names the key).
    pub fn parse(text: &str) -> Option<TokenHash> {
        let rest = text.strip_prefix("sha256:")?;
        let (salt, digest) = match rest.split_once(':') {
            Some((salt, digest)) => (unhex(salt)?, digest),
            None => (Vec::new(), rest),
        };
        let digest: [u8; 32] = unhex(digest)?.try_into().ok()?;
        Some(TokenHash { salt, digest })
    }

    /// Whether `token` hashes to this, compared in constant time.
    pub fn verify(&self, token: &str) -> bool {
        constant_time_eq(&digest(&self.salt, token), &self.digest)
    }
}

/// Equality whose time does not depend on where the inputs differ.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// What an endpoint requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Anyone: the health probes.
    Public,
    /// A token with the `ingest` role (or `admin`).
    Ingest,
    /// A token with the `read` role (or `admin`).
    Read,
    /// An `admin` token: `/metrics` and every endpoint not in the table.
    Admin,
}

impl Need {
    fn role(self) -> Option<Role> {
        match self {
            Need::Public => None,
            Need::Ingest => Some(Role::Ingest),
            Need::Read => Some(Role::Read),
            Need::Admin => Some(Role::Admin),
        }
    }
}

/// The one table of what each endpoint needs, by method and path. What is not listed needs
/// `admin` (deny by default), so a new endpoint is closed until it is classified here.
pub fn classify(method: &Method, path: &str) -> Need {
    let segments: Vec<&str> = path
        .trim_start_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let post = *method == Method::POST;
    let read_method = matches!(*method, Method::GET | Method::POST | Method::HEAD);
    match segments.as_slice() {
        ["health", ..] => Need::Public,
        // The web console's page and files hold no data; it asks for a token on a 401.
        [] | ["console", ..] if matches!(*method, Method::GET | Method::HEAD) => Need::Public,
        // OTLP/HTTP logs and Loki push.
        ["v1", "logs"] if post => Need::Ingest,
        ["loki", "api", "v1", "push"] if post => Need::Ingest,
        ["api", "v1", "_elastic", rest @ ..] => classify_elastic(method, rest),
        ["api", "v1", "audit", "webhook"] if post => Need::Ingest,
        ["api", "v1", "audit", "reports", _] if read_method => Need::Read,
        ["api", "v1", "events", "reports", _] if read_method => Need::Read,
        ["api", "v1", "pods", _, _, "story"] if read_method => Need::Read,
        ["api", "v1", "streams"] if read_method => Need::Read,
        ["api", "v1", _, "ingest"] if post => Need::Ingest,
        ["api", "v1", _, "search" | "export"] if read_method => Need::Read,
        ["api", "v1", _, "tail"] if *method == Method::GET => Need::Read,
        ["api", "v1", _, "_leaf", "search" | "groups"] if post => Need::Read,
        ["api", "v1", "_leaf", "streams"] if post => Need::Read,
        ["api", "v1", "_leaf", "elastic", "search" | "schemas"] if post => Need::Read,
        _ => Need::Admin,
    }
}

/// The Elasticsearch-compatible subset under `/api/v1/_elastic`: `_bulk` writes, the search
/// and metadata endpoints read (what Grafana, Kibana and clients probe), the rest is admin.
fn classify_elastic(method: &Method, rest: &[&str]) -> Need {
    let write_method = matches!(*method, Method::POST | Method::PUT);
    let read_method = matches!(*method, Method::GET | Method::POST | Method::HEAD);
    match rest {
        ["_bulk"] | [_, "_bulk"] if write_method => Need::Ingest,
        // Cluster information (`GET /`), health and license probes.
        [] | ["_cluster", "health"] | ["_license"] | ["_xpack"] | ["_nodes", ..] if read_method => {
            Need::Read
        }
        ["_cat", ..] if read_method => Need::Read,
        // `indices.exists` and `indices.get`: an index's mappings and settings (no records).
        [index] if matches!(*method, Method::GET | Method::HEAD) && !index.starts_with('_') => {
            Need::Read
        }
        _ if read_method
            && rest.iter().any(|s| {
                matches!(
                    *s,
                    "_search" | "_msearch" | "_count" | "_mapping" | "_mappings" | "_field_caps"
                )
            }) =>
        {
            Need::Read
        }
        _ => Need::Admin,
    }
}

/// Whether `path` is the audit webhook, which also accepts a verified client certificate.
fn is_webhook(path: &str) -> bool {
    path.trim_end_matches('/') == "/api/v1/audit/webhook"
}

/// A configured token, ready to check.
#[derive(Debug, Clone)]
struct Token {
    name: String,
    hash: TokenHash,
    role: Role,
    #[cfg_attr(not(feature = "query"), allow(dead_code))]
    namespaces: Vec<String>,
    #[cfg_attr(not(feature = "query"), allow(dead_code))]
    clusters: Vec<String>,
}

/// Checks requests against `[[auth.tokens]]`.
#[derive(Debug, Clone)]
pub struct Authenticator {
    tokens: Vec<Token>,
}

impl Authenticator {
    /// The authenticator of `config`, `None` when it lists no tokens (authentication off).
    /// A hash that does not parse is an error naming the token (validation catches it first).
    pub fn from_config(config: &AuthConfig) -> anyhow::Result<Option<Arc<Authenticator>>> {
        if !config.enabled() {
            return Ok(None);
        }
        let tokens = config
            .tokens
            .iter()
            .map(|t| {
                let hash = TokenHash::parse(&t.hash).ok_or_else(|| {
                    anyhow::anyhow!("auth token `{}`: hash is not a sha256 token hash", t.name)
                })?;
                Ok(Token {
                    name: t.name.clone(),
                    hash,
                    role: t.role,
                    namespaces: t.namespaces.clone(),
                    clusters: t.clusters.clone(),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Some(Arc::new(Authenticator { tokens })))
    }

    /// Adds a fresh random token with the `ingest` role for the in-process collector of
    /// `trawl standalone` (when `collector.token` is unset) and returns it. It lives only in
    /// this process's memory.
    #[cfg_attr(not(feature = "collector"), allow(dead_code))]
    pub fn add_internal_ingest_token(&mut self) -> String {
        let token = new_token();
        let mut salt = [0u8; SALT_BYTES];
        rand::rng().fill_bytes(&mut salt);
        self.tokens.push(Token {
            name: "standalone-collector".to_string(),
            hash: TokenHash {
                salt: salt.to_vec(),
                digest: digest(&salt, &token),
            },
            role: Role::Ingest,
            namespaces: Vec::new(),
            clusters: Vec::new(),
        });
        token
    }

    /// The configured token `presented` is, if any. Every hash is checked, so the time taken
    /// does not say which token matched.
    fn find(&self, presented: &str) -> Option<&Token> {
        let mut found = None;
        for token in &self.tokens {
            if token.hash.verify(presented) && found.is_none() {
                found = Some(token);
            }
        }
        found
    }

    /// Decides a request: `Ok` with the token that allows it (`None` for a public endpoint or a
    /// webhook call with a verified client certificate), or the error to answer.
    fn check<'a>(
        &'a self,
        method: &Method,
        path: &str,
        authorization: Option<&HeaderValue>,
        verified_client_cert: bool,
    ) -> Result<Option<&'a Token>, AuthError> {
        let need = classify(method, path);
        let Some(role) = need.role() else {
            return Ok(None);
        };
        if need == Need::Ingest && verified_client_cert && is_webhook(path) {
            return Ok(None);
        }
        let Some(value) = authorization else {
            return Err(AuthError::Missing);
        };
        let presented = value
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|token| !token.is_empty())
            .ok_or(AuthError::Malformed)?;
        let token = self.find(presented).ok_or(AuthError::Invalid)?;
        if !token.role.allows(role) {
            return Err(AuthError::Forbidden {
                token: token.name.clone(),
                role: token.role,
                need,
            });
        }
        Ok(Some(token))
    }
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization` header.
    Missing,
    /// An `Authorization` header that is not `Bearer <token>`.
    Malformed,
    /// A bearer token that matches no configured hash.
    Invalid,
    /// A valid token whose role does not cover the endpoint.
    Forbidden {
        /// The token's `name` (not secret).
        token: String,
        role: Role,
        need: Need,
    },
}

impl AuthError {
    /// The code of the error answer: `unauthorized` (401) for who-are-you, `forbidden` (403)
    /// for not-allowed.
    pub fn code(&self) -> ErrorCode {
        match self {
            AuthError::Forbidden { .. } => ErrorCode::Forbidden,
            _ => ErrorCode::Unauthorized,
        }
    }

    /// The message of the JSON error body; never contains the presented token.
    pub fn message(&self) -> String {
        match self {
            AuthError::Missing => {
                "authentication required: send `Authorization: Bearer <token>`".to_string()
            }
            AuthError::Malformed => "the Authorization header must be `Bearer <token>`".to_string(),
            AuthError::Invalid => "invalid bearer token".to_string(),
            AuthError::Forbidden { token, role, need } => {
                let needed = match need {
                    Need::Ingest => "the ingest or admin role",
                    Need::Read => "the read or admin role",
                    Need::Admin | Need::Public => "the admin role",
                };
                format!(
                    "token `{token}` has the {} role; this endpoint needs {needed}",
                    role_name(*role)
                )
            }
        }
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Ingest => "ingest",
        Role::Read => "read",
        Role::Admin => "admin",
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let code = self.code();
        let mut response = ApiError::new(code, self.message()).into_response();
        if code == ErrorCode::Unauthorized {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"trawl\""),
            );
        }
        response
    }
}

/// Gives the request its token's namespace and cluster scope, which the query routes enforce.
#[cfg(feature = "query")]
fn attach_scope(request: &mut Request, token: &Token) {
    let set = |list: &[String]| (!list.is_empty()).then(|| list.iter().cloned().collect());
    let scope = Scope::of(set(&token.namespaces), set(&token.clusters));
    request.extensions_mut().insert(scope);
}

/// Without the query role there is nothing to scope.
#[cfg(not(feature = "query"))]
fn attach_scope(_request: &mut Request, _token: &Token) {}

/// Whether the TLS handshake of this request's connection verified a client certificate:
/// the rustls acceptor records the peer's certificates, and with a client CA configured the
/// handshake fails for any certificate that does not chain to it.
fn has_verified_client_cert(request: &Request) -> bool {
    request
        .extensions()
        .get::<Arc<axum_server::tls::TlsInfo>>()
        .is_some_and(|info| !info.peer_certificates.is_empty())
}

/// The middleware: refuses what [`Authenticator`] refuses, and gives every authenticated
/// request its token's namespace scope.
pub async fn middleware(
    State(auth): State<Arc<Authenticator>>,
    mut request: Request,
    next: Next,
) -> Response {
    let verified = has_verified_client_cert(&request);
    let decision = auth.check(
        request.method(),
        request.uri().path(),
        request.headers().get(header::AUTHORIZATION),
        verified,
    );
    match decision {
        Ok(token) => {
            if let Some(token) = token {
                attach_scope(&mut request, token);
            }
            next.run(request).await
        }
        Err(err) => {
            tracing::debug!(
                method = %request.method(),
                path = request.uri().path(),
                code = %err.code(),
                "request refused"
            );
            err.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use trawl_config::TokenConfig;

    #[test]
    fn classification_table() {
        use Need::*;
        let cases: &[(&str, &str, Need)] = &[
            ("GET", "/health/live", Public),
            ("GET", "/health/ready", Public),
            ("GET", "/", Public),
            ("GET", "/console/js/app.js", Public),
            ("POST", "/", Admin),
            ("DELETE", "/console/style.css", Admin),
            ("POST", "/api/v1/logs/ingest", Ingest),
            ("POST", "/api/v1/my-app/ingest", Ingest),
            ("GET", "/api/v1/logs/ingest", Admin),
            ("POST", "/api/v1/audit/webhook", Ingest),
            ("POST", "/api/v1/_elastic/_bulk", Ingest),
            ("PUT", "/api/v1/_elastic/_bulk", Ingest),
            ("POST", "/api/v1/_elastic/logs/_bulk", Ingest),
            ("POST", "/v1/logs", Ingest),
            ("POST", "/loki/api/v1/push", Ingest),
            ("GET", "/api/v1/logs/search", Read),
            ("POST", "/api/v1/audit/search", Read),
            ("GET", "/api/v1/logs/export", Read),
            ("POST", "/api/v1/logs/export", Read),
            ("GET", "/api/v1/logs/tail", Read),
            ("POST", "/api/v1/logs/tail", Admin),
            ("GET", "/api/v1/audit/reports/top-users", Read),
            ("GET", "/api/v1/streams", Read),
            ("POST", "/api/v1/logs/_leaf/search", Read),
            ("POST", "/api/v1/audit/_leaf/groups", Read),
            ("GET", "/api/v1/audit/_leaf/groups", Admin),
            ("POST", "/api/v1/_leaf/streams", Read),
            ("GET", "/api/v1/_leaf/streams", Admin),
            ("POST", "/api/v1/_leaf/elastic/search", Read),
            ("POST", "/api/v1/_leaf/elastic/schemas", Read),
            ("GET", "/api/v1/_leaf/elastic/search", Admin),
            ("GET", "/api/v1/_elastic", Read),
            ("HEAD", "/api/v1/_elastic/", Read),
            ("GET", "/api/v1/_elastic/_search", Read),
            ("POST", "/api/v1/_elastic/logs/_search", Read),
            ("POST", "/api/v1/_elastic/_msearch", Read),
            ("POST", "/api/v1/_elastic/logs/_count", Read),
            ("GET", "/api/v1/_elastic/logs/_mapping", Read),
            ("GET", "/api/v1/_elastic/logs/_field_caps", Read),
            ("GET", "/api/v1/_elastic/_cat/indices", Read),
            ("GET", "/api/v1/_elastic/_nodes/http", Read),
            ("GET", "/api/v1/_elastic/logs", Read),
            ("HEAD", "/api/v1/_elastic/logs", Read),
            ("GET", "/api/v1/_elastic/_tasks", Admin),
            ("DELETE", "/api/v1/_elastic/logs", Admin),
            ("GET", "/api/v1/_elastic/_bulk", Admin),
            ("PUT", "/api/v1/_elastic/logs", Admin),
            ("GET", "/metrics", Admin),
            ("GET", "/api/v1/nope", Admin),
            ("DELETE", "/api/v1/logs/search", Admin),
        ];
        for (method, path, need) in cases {
            let method: Method = method.parse().unwrap();
            assert_eq!(classify(&method, path), *need, "{method} {path}");
        }
    }

    #[test]
    fn hashes_verify_only_their_token() {
        let hash = hash_token("s3cret");
        assert!(hash.starts_with("sha256:"));
        let parts: Vec<&str> = hash.split(':').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[1].len(), SALT_BYTES * 2);
        assert_eq!(parts[2].len(), 64);
        let parsed = TokenHash::parse(&hash).unwrap();
        assert!(parsed.verify("s3cret"));
        assert!(!parsed.verify("s3cret "));
        assert!(!parsed.verify(""));
        // Salted: the same token hashes differently each time.
        assert_ne!(hash_token("s3cret"), hash);
    }

    #[test]
    fn known_hashes() {
        // printf %s abc | sha256sum
        let unsalted = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert!(TokenHash::parse(unsalted).unwrap().verify("abc"));
        // SHA-256("ab" ‖ "c") is SHA-256("abc"): the salt is prepended.
        let salted = format!("sha256:6162:{}", &unsalted["sha256:".len()..]);
        assert!(TokenHash::parse(&salted).unwrap().verify("c"));
        assert_eq!(hash_with_salt("c", b"ab"), salted);
    }

    #[test]
    fn malformed_hashes_are_refused() {
        for bad in [
            "",
            "sha256:",
            "sha256:abc",
            "md5:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            "sha256:zz:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            "sha256:abc:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015",
        ] {
            assert_eq!(TokenHash::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn new_tokens_are_random_and_prefixed() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(a.len(), TOKEN_PREFIX.len() + TOKEN_BYTES * 2);
    }

    fn authenticator() -> Arc<Authenticator> {
        let token = |name: &str, secret: &str, role, namespaces: &[&str]| TokenConfig {
            name: name.into(),
            hash: hash_token(secret),
            role,
            namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
            clusters: Vec::new(),
        };
        let config = AuthConfig {
            tokens: vec![
                token("collector", "ingest-secret", Role::Ingest, &[]),
                token("team-a", "read-secret", Role::Read, &["a"]),
                token("ops", "admin-secret", Role::Admin, &[]),
            ],
            tls: None,
        };
        Authenticator::from_config(&config).unwrap().unwrap()
    }

    fn check(
        auth: &Authenticator,
        method: Method,
        path: &str,
        header: Option<&str>,
        cert: bool,
    ) -> Result<Option<String>, AuthError> {
        let value = header.map(|h| HeaderValue::from_str(h).unwrap());
        auth.check(&method, path, value.as_ref(), cert)
            .map(|t| t.map(|t| t.name.clone()))
    }

    #[test]
    fn decisions() {
        let auth = authenticator();
        let a = &auth;
        assert_eq!(check(a, Method::GET, "/health/live", None, false), Ok(None));
        assert_eq!(
            check(a, Method::GET, "/api/v1/logs/search", None, false),
            Err(AuthError::Missing)
        );
        assert_eq!(
            check(
                a,
                Method::GET,
                "/api/v1/logs/search",
                Some("Basic dTpw"),
                false
            ),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            check(
                a,
                Method::GET,
                "/api/v1/logs/search",
                Some("Bearer nope"),
                false
            ),
            Err(AuthError::Invalid)
        );
        assert_eq!(
            check(
                a,
                Method::GET,
                "/api/v1/logs/search",
                Some("bearer read-secret"),
                false
            ),
            Ok(Some("team-a".into()))
        );
        assert_eq!(
            check(
                a,
                Method::GET,
                "/api/v1/logs/search",
                Some("Bearer ingest-secret"),
                false
            ),
            Err(AuthError::Forbidden {
                token: "collector".into(),
                role: Role::Ingest,
                need: Need::Read
            })
        );
        assert_eq!(
            check(
                a,
                Method::POST,
                "/api/v1/logs/ingest",
                Some("Bearer read-secret"),
                false
            )
            .unwrap_err()
            .code()
            .http_status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            check(
                a,
                Method::GET,
                "/metrics",
                Some("Bearer read-secret"),
                false
            )
            .unwrap_err()
            .code(),
            ErrorCode::Forbidden
        );
        assert_eq!(
            check(
                a,
                Method::GET,
                "/metrics",
                Some("Bearer admin-secret"),
                false
            ),
            Ok(Some("ops".into()))
        );
        // A verified client certificate stands in for a token on the webhook only.
        assert_eq!(
            check(a, Method::POST, "/api/v1/audit/webhook", None, true),
            Ok(None)
        );
        assert_eq!(
            check(a, Method::POST, "/api/v1/logs/ingest", None, true),
            Err(AuthError::Missing)
        );
        assert_eq!(
            check(a, Method::POST, "/api/v1/audit/webhook", None, false),
            Err(AuthError::Missing)
        );
    }

    #[test]
    fn messages_never_echo_the_token() {
        let auth = authenticator();
        for header in ["Bearer leaked-secret-value", "Token leaked-secret-value"] {
            let err = check(
                &auth,
                Method::GET,
                "/api/v1/logs/search",
                Some(header),
                false,
            )
            .unwrap_err();
            assert!(!err.message().contains("leaked"), "{}", err.message());
        }
    }

    #[test]
    fn disabled_without_tokens() {
        assert!(Authenticator::from_config(&AuthConfig::default())
            .unwrap()
            .is_none());
    }
}
