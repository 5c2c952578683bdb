//! The web console: the static files under `console/`, embedded in the binary and served at `/`
//! (the page) and `/console/*` (its modules and style) by every role that answers queries.
//!
//! The console is plain ES modules and CSS, with no build step, so what is embedded is exactly
//! what is in the repository. Each file is served with its content type, a strong `ETag` (a
//! digest of its bytes, so `If-None-Match` answers 304) and `Cache-Control: no-cache` (the
//! names carry no version, so a browser revalidates instead of keeping a stale module); a
//! client that accepts gzip gets the file compressed once, on first use.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

/// An embedded file: its path under `console/` and its bytes.
struct Asset {
    path: &'static str,
    bytes: &'static [u8],
}

macro_rules! assets {
    ($($path:literal),* $(,)?) => {
        &[$(Asset { path: $path, bytes: include_bytes!(concat!("../console/", $path)) }),*]
    };
}

/// Every file of the console. A file added to `console/` is served once it is listed here.
const ASSETS: &[Asset] = assets![
    "index.html",
    "style.css",
    "favicon.svg",
    "js/app.js",
    "js/api.js",
    "js/util.js",
    "js/chart.js",
    "js/query.js",
    "js/search.js",
    "js/tail.js",
    "js/audit.js",
    "js/overview.js",
];

/// An asset ready to serve: the headers computed once, the gzip form made on first use.
struct Prepared {
    etag: HeaderValue,
    content_type: &'static str,
    gzip: OnceLock<Option<Vec<u8>>>,
}

fn prepared() -> &'static [Prepared] {
    static PREPARED: OnceLock<Vec<Prepared>> = OnceLock::new();
    PREPARED.get_or_init(|| {
        ASSETS
            .iter()
            .map(|asset| {
                let digest = Sha256::digest(asset.bytes);
                let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
                Prepared {
                    etag: HeaderValue::from_str(&format!("\"{hex}\""))
                        .unwrap_or(HeaderValue::from_static("\"0\"")),
                    content_type: content_type(asset.path),
                    gzip: OnceLock::new(),
                }
            })
            .collect()
    })
}

/// The content type of a console file, by its extension.
fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    }
}

/// The routes of the console: `GET /` and `GET /console/{*path}`. They need no token (the
/// page holds no data; it asks for a token when the API answers 401).
pub fn routes() -> Router {
    Router::new()
        .route("/", get(|headers: HeaderMap| async move { serve("index.html", &headers) }))
        .route(
            "/console/{*path}",
            get(|Path(path): Path<String>, headers: HeaderMap| async move {
                serve(&path, &headers)
            }),
        )
}

/// Answers one console file: 404 for an unknown path, 304 when the client holds this version.
fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some(index) = ASSETS.iter().position(|a| a.path == path) else {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({"error": {
                "code": "not_found",
                "message": format!("no console file `{path}`"),
            }})),
        )
            .into_response();
    };
    let asset = &ASSETS[index];
    let ready = &prepared()[index];
    let common = [
        (header::ETAG, ready.etag.clone()),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (header::VARY, HeaderValue::from_static("accept-encoding")),
    ];
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|tag| tag.trim().trim_start_matches("W/") == ready.etag)
        });
    if matches {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    let content_type = [(
        header::CONTENT_TYPE,
        HeaderValue::from_static(ready.content_type),
    )];
    if accepts_gzip(headers) {
        if let Some(gz) = ready.gzip.get_or_init(|| gzip(asset.bytes)) {
            let encoding = [(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"))];
            return (common, content_type, encoding, gz.clone()).into_response();
        }
    }
    (common, content_type, asset.bytes).into_response()
}

/// Whether `Accept-Encoding` lists gzip with a non-zero weight.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or("").trim();
            let zero = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    == Some(0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !zero
        })
}

/// `bytes` gzipped, or `None` if compressing failed (the file is then served as is).
fn gzip(bytes: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).ok()?;
    encoder.finish().ok()
}

/// The size of the whole console gzipped, in bytes (the budget is 300 KB).
#[cfg(test)]
fn gzipped_total() -> usize {
    ASSETS
        .iter()
        .map(|a| gzip(a.bytes).map_or(a.bytes.len(), |g| g.len()))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_known_content_type() {
        for asset in ASSETS {
            assert_ne!(
                content_type(asset.path),
                "application/octet-stream",
                "{}",
                asset.path
            );
        }
    }

    #[test]
    fn whole_console_is_under_300_kb_gzipped() {
        let total = gzipped_total();
        assert!(total < 300 * 1024, "console is {total} bytes gzipped");
    }

    #[test]
    fn accept_encoding_parsing() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            accepts_gzip(&h)
        };
        assert!(with("gzip, deflate, br"));
        assert!(with("br;q=1.0, gzip;q=0.8"));
        assert!(!with("gzip;q=0"));
        assert!(!with("br"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn every_module_the_page_imports_is_embedded() {
        // Each `from "./x.js"` in a module names a file in the table, so no import 404s.
        for asset in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
            let text = std::str::from_utf8(asset.bytes).unwrap();
            for import in text.split("from \"./").skip(1) {
                let name = import.split('"').next().unwrap();
                let full = format!("js/{name}");
                assert!(
                    ASSETS.iter().any(|a| a.path == full),
                    "{} imports {full}, which is not embedded",
                    asset.path
                );
            }
        }
    }
}
