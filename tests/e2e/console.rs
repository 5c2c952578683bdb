//! The web console is served by every role that answers queries (standalone, indexer,
//! searcher): the page at `/` and its files under `/console/` with their content types, an
//! `ETag` that answers 304, gzip when asked, 404 for a file it does not have, and no token
//! needed for the files even when auth is on. A searcher's `/api/v1/streams` says which
//! indexers answered (the console's overview shows it).

use std::io::Read;

use reqwest::blocking::Client;
use reqwest::header;
use serde_json::Value;

use crate::support::Server;

/// Every file of the console, with the content type it must be served with.
const FILES: &[(&str, &str)] = &[
    ("/", "text/html; charset=utf-8"),
    ("/console/style.css", "text/css; charset=utf-8"),
    ("/console/favicon.svg", "image/svg+xml"),
    ("/console/js/app.js", "text/javascript; charset=utf-8"),
    ("/console/js/api.js", "text/javascript; charset=utf-8"),
    ("/console/js/util.js", "text/javascript; charset=utf-8"),
    ("/console/js/chart.js", "text/javascript; charset=utf-8"),
    ("/console/js/query.js", "text/javascript; charset=utf-8"),
    ("/console/js/search.js", "text/javascript; charset=utf-8"),
    ("/console/js/tail.js", "text/javascript; charset=utf-8"),
    ("/console/js/audit.js", "text/javascript; charset=utf-8"),
    ("/console/js/overview.js", "text/javascript; charset=utf-8"),
];

/// Checks every console file on `server` and returns their gzipped total in bytes.
fn assert_serves_console(server: &Server) -> usize {
    let client = Client::new();
    let mut gzipped = 0;
    for (path, content_type) in FILES {
        let plain = client.get(server.at(path)).send().unwrap();
        assert_eq!(plain.status().as_u16(), 200, "{path}");
        assert_eq!(
            plain.headers()[header::CONTENT_TYPE],
            *content_type,
            "{path}"
        );
        assert_eq!(plain.headers()[header::CACHE_CONTROL], "no-cache", "{path}");
        assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
        let etag = plain.headers()[header::ETAG].clone();
        let body = plain.bytes().unwrap();
        assert!(!body.is_empty(), "{path}");

        let again = client
            .get(server.at(path))
            .header(header::IF_NONE_MATCH, etag.clone())
            .send()
            .unwrap();
        assert_eq!(again.status().as_u16(), 304, "{path}");
        assert_eq!(again.headers()[header::ETAG], etag);

        let gz = client
            .get(server.at(path))
            .header(header::ACCEPT_ENCODING, "gzip, br")
            .send()
            .unwrap();
        assert_eq!(gz.status().as_u16(), 200);
        assert_eq!(gz.headers()[header::CONTENT_ENCODING], "gzip", "{path}");
        assert_eq!(gz.headers()[header::CONTENT_TYPE], *content_type);
        let compressed = gz.bytes().unwrap();
        gzipped += compressed.len();
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(&compressed[..])
            .read_to_end(&mut unzipped)
            .unwrap();
        assert_eq!(unzipped, body, "{path} gzipped is the same file");
    }
    let page = server.get("/").text().unwrap();
    assert!(page.contains(r#"<script type="module" src="/console/js/app.js">"#));
    let missing = server.get("/console/js/nope.js");
    assert_eq!(missing.status().as_u16(), 404);
    let (_, body): (_, Value) = crate::support::json_of(missing);
    assert_eq!(body["error"]["code"], "not_found");
    gzipped
}

#[test]
fn every_query_role_serves_the_console_with_content_types_etags_and_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let standalone = Server::start(&dir.path().join("standalone"), "");
    let gzipped = assert_serves_console(&standalone);
    // The budget of the whole console.
    assert!(gzipped < 300 * 1024, "console is {gzipped} bytes gzipped");

    let indexer = Server::start_role("indexer", &dir.path().join("indexer"), "");
    assert_serves_console(&indexer);
    let config = format!("[query]\nindexers = [\"{}\"]\n", indexer.url);
    let searcher = Server::start_role("searcher", &dir.path().join("searcher"), &config);
    assert_serves_console(&searcher);

    // The searcher's streams say which indexers answered; an indexer's say nothing of it.
    let streams: Value = searcher.get("/api/v1/streams").json().unwrap();
    assert_eq!(
        streams["indexers"],
        serde_json::json!([{"url": indexer.url, "ok": true, "docs": 0}])
    );
    let own: Value = indexer.get("/api/v1/streams").json().unwrap();
    assert!(own.get("indexers").is_none());
    let indexer_url = indexer.url.clone();
    indexer.kill9();
    let streams: Value = searcher.get("/api/v1/streams").json().unwrap();
    assert_eq!(
        streams["indexers"],
        serde_json::json!([{"url": indexer_url, "ok": false}])
    );
    assert_eq!(streams["partial"], true);
}

#[test]
fn console_files_need_no_token_while_the_api_does() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[[auth.tokens]]\nname = \"ops\"\nhash = \"{}\"\nrole = \"admin\"\n",
        crate::auth::token_hash(crate::auth::ADMIN)
    );
    let server = Server::start(dir.path(), &config);
    for (path, _) in FILES {
        assert_eq!(server.get(path).status().as_u16(), 200, "{path}");
    }
    let api = server.get("/api/v1/logs/search");
    assert_eq!(api.status().as_u16(), 401);
    assert!(api.headers().contains_key(header::WWW_AUTHENTICATE));
    // Only reading is public: nothing else under `/` or `/console/`.
    let client = Client::new();
    let post = client.post(server.at("/")).send().unwrap();
    assert_eq!(post.status().as_u16(), 401);
}
