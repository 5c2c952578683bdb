//! The cluster's Kubernetes Events end to end: `trawl standalone` whose collector reads a fake
//! Kubernetes API server (the collector's tests' `fake_events_api`: Events list and watch,
//! Leases) through a kubeconfig, holds the Events lease and ships to its own indexer. A watch
//! expiring with 410 Gone makes it list again, and a SIGKILL makes it resume from the saved
//! resourceVersion: what is shipped twice either way is one document, so the `events` stream
//! holds each update exactly once.

use serde_json::Value;

use crate::support::{wait_until, Server, SEARCHABLE_TIMEOUT};

#[path = "../../collector/src/tests/fake_events_api.rs"]
#[allow(dead_code)] // The collector's tests use what this test does not.
mod fake_events_api;

use fake_events_api::{event, FakeEventsApi};

/// The fake API on a runtime of its own (the e2e tests are blocking).
struct Api {
    fake: FakeEventsApi,
    _runtime: tokio::runtime::Runtime,
}

impl Api {
    fn start(lists: Vec<(Vec<Value>, u64)>) -> Api {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let fake = runtime.block_on(FakeEventsApi::start(lists));
        Api {
            fake,
            _runtime: runtime,
        }
    }

    fn watches_from(&self) -> Vec<String> {
        self.fake.state(|s| s.watches_from.clone())
    }

    fn list_calls(&self) -> usize {
        self.fake.state(|s| s.list_calls)
    }
}

fn total(server: &Server, q: &str) -> u64 {
    let body = server.search("events", &[("q", q), ("limit", "0")]);
    body["total"].as_u64().unwrap()
}

/// Waits until `uid` at `count` is searchable: every batch shipped before it is too.
fn wait_for_update(server: &Server, uid: &str, count: u64) {
    let q = format!("event_uid:{uid} AND count:{count}");
    wait_until(&format!("{q} searchable"), SEARCHABLE_TIMEOUT, || {
        total(server, &q) == 1
    });
}

#[test]
fn events_from_the_api_through_a_410_relist_and_a_sigkill_are_each_update_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(tmp.path().join("pods")).unwrap();
    // The first list: two Events; after the 410, the second list holds their latest states.
    let api = Api::start(vec![
        (
            vec![event("web-1", "e-1", 10, 1), event("db-0", "e-2", 11, 1)],
            20,
        ),
        (
            vec![
                event("web-1", "e-1", 21, 2),
                event("db-0", "e-2", 11, 1),
                event("web-2", "e-3", 22, 1),
            ],
            30,
        ),
    ]);
    let config = format!(
        "cluster = \"prod\"\n[indexer]\ncommit_interval_ms = 200\n[collector]\npods_dir = \"{}\"\n\
         node_name = \"node-e2e\"\naudit_webhook = false\n[collector.kubernetes]\nenabled = false\n\
         kubeconfig = \"{}\"\nevents = true\nevents_lease_namespace = \"trawl\"\n",
        tmp.path().join("pods").display(),
        api.fake.kubeconfig(tmp.path()).display()
    );
    let server = Server::start_with_config("standalone", &data, &config);
    wait_until("the first list indexed", SEARCHABLE_TIMEOUT, || {
        total(&server, "*") == 2
    });
    wait_until("the watch from the list", SEARCHABLE_TIMEOUT, || {
        api.watches_from() == ["20"]
    });
    api.fake.watch_event("MODIFIED", "web-1", "e-1", 21, 2);
    api.fake.watch_event("ADDED", "web-2", "e-3", 22, 1);
    wait_for_update(&server, "e-3", 1);
    assert_eq!(total(&server, "*"), 4);
    // The watch expires: a list again (it ships the three Events once more), then a watch
    // from its version; a new Event after that is searchable only once the relist is.
    api.fake.expire(23);
    wait_until("the watch after the relist", SEARCHABLE_TIMEOUT, || {
        api.watches_from() == ["20", "30"]
    });
    assert_eq!(api.list_calls(), 2);
    api.fake.watch_event("ADDED", "cart-0", "e-4", 31, 1);
    wait_for_update(&server, "e-4", 1);
    assert_eq!(
        total(&server, "*"),
        5,
        "the relisted Events are not indexed twice"
    );
    let hit = server.search("events", &[("q", "event_uid:e-4"), ("limit", "1")]);
    assert_eq!(hit["hits"][0]["cluster"], "prod");
    assert_eq!(hit["hits"][0]["node"], "node-1");
    server.kill9();

    // After a SIGKILL the collector resumes from the version it saved: no list, no resend of
    // what was indexed, and the next update once.
    let server = Server::start_with_config("standalone", &data, &config);
    wait_until("the watch resumed", SEARCHABLE_TIMEOUT, || {
        api.watches_from().len() == 3
    });
    assert_eq!(api.watches_from()[2], "31");
    assert_eq!(api.list_calls(), 2);
    api.fake.watch_event("MODIFIED", "cart-0", "e-4", 32, 2);
    wait_for_update(&server, "e-4", 2);
    assert_eq!(total(&server, "*"), 6);
    assert_eq!(total(&server, "event_uid:e-1"), 2, "two updates of e-1");
    server.stop();
}
