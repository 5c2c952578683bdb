//! Alerting end to end through a real Alertmanager (Debian's `prometheus-alertmanager`),
//! started on loopback with a route to a webhook receiver of the test's own: what Alertmanager
//! routes onward is what these tests check (labels, sample lines, the query, the resolve).
//!
//! The Alertmanager binary is `$ALERTMANAGER_BIN`, else `/usr/bin/prometheus-alertmanager`
//! (`.ci/run` installs it and sets the variable). Without it these tests fail with a message
//! saying how to install it, unless `SKIP_ALERTMANAGER_TESTS=1` is set (for a developer's
//! machine without the package; CI never sets it).
//!
//! Match rules run with the default `match_lag_ms` (10 s): with a shorter lag, a loaded machine
//! makes some events searchable only after the round that covered their time (the documented
//! limit of incremental evaluation), and the test would miss them.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{free_port, json_of, wait_until, Server};

/// How long an alert may take from its events' ingest to Alertmanager's receiver: the
/// evaluation interval, the `for`, Alertmanager's `group_wait`, on a loaded two-core machine.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long Alertmanager is kept down in `alertmanager_down_then_back_receives_the_alert`:
/// 30 s, or `ALERTMANAGER_DOWN_SECS` (the retry path is the same either way).
fn down_window() -> Duration {
    let secs = std::env::var("ALERTMANAGER_DOWN_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    Duration::from_secs(secs)
}

/// A free loopback port below the kernel's ephemeral range (32768 and up), for an Alertmanager
/// that starts later on it: a port of that range may meanwhile become the local end of some
/// connection or another server's port 0.
fn port_for_later() -> u16 {
    let start = 20_000 + (std::process::id() % 5_000) as u16 * 2;
    (start..32_000)
        .chain(20_000..start)
        .find(|port| TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("a free port between 20000 and 32000")
}

/// The Alertmanager binary, or `None` when it is absent and the tests may skip.
fn alertmanager_bin() -> Option<PathBuf> {
    let path = std::env::var_os("ALERTMANAGER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/prometheus-alertmanager"));
    if path.exists() {
        return Some(path);
    }
    if std::env::var("SKIP_ALERTMANAGER_TESTS").as_deref() == Ok("1") {
        eprintln!(
            "alerting e2e skipped: no Alertmanager at {}",
            path.display()
        );
        return None;
    }
    panic!(
        "no Alertmanager at {}: install it (apt-get install -y prometheus-alertmanager), set \
         ALERTMANAGER_BIN to its path, or set SKIP_ALERTMANAGER_TESTS=1 to skip these tests",
        path.display()
    );
}

/// A webhook receiver: every JSON body posted to it, in order.
struct Receiver {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let bodies: Arc<Mutex<Vec<Value>>> = Arc::default();
        let sink = Arc::clone(&bodies);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let sink = Arc::clone(&sink);
                std::thread::spawn(move || serve(stream, sink));
            }
        });
        Receiver { url, bodies }
    }

    /// Every alert Alertmanager sent, with the notification's status on each.
    fn alerts(&self) -> Vec<Value> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .flat_map(|body| body["alerts"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// The alerts sent for rule `name` with notification status `status`.
    fn sent(&self, name: &str, status: &str) -> Vec<Value> {
        self.alerts()
            .into_iter()
            .filter(|a| a["labels"]["alertname"] == name && a["status"] == status)
            .collect()
    }
}

/// Answers HTTP/1.1 requests on one connection (Alertmanager keeps connections alive).
fn serve(stream: std::net::TcpStream, sink: Arc<Mutex<Vec<Value>>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut length = 0usize;
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if let Ok(value) = serde_json::from_slice::<Value>(&body) {
            sink.lock().unwrap().push(value);
        }
        let answer = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// A real Alertmanager on loopback routing every alert, one group per alert, to `receiver`.
struct Alertmanager {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Alertmanager {
    fn start(bin: &Path, dir: &Path, port: u16, receiver: &Receiver) -> Alertmanager {
        std::fs::create_dir_all(dir).unwrap();
        let config = dir.join("alertmanager.yml");
        std::fs::write(
            &config,
            format!(
                "route:\n  receiver: test\n  group_by: ['...']\n  group_wait: 1s\n  \
                 group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: test\n    \
                 webhook_configs:\n      - url: '{}'\n        send_resolved: true\n",
                receiver.url
            ),
        )
        .unwrap();
        let log = dir.join("alertmanager.log");
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // No gossip: each test's Alertmanager stands alone.
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let am = Alertmanager {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        };
        let client = reqwest::blocking::Client::new();
        wait_until("Alertmanager is ready", Duration::from_secs(30), || {
            client
                .get(format!("{}/-/ready", am.url))
                .send()
                .is_ok_and(|r| r.status().is_success())
        });
        am
    }

    /// The alerts Alertmanager holds for rule `name`.
    fn alerts(&self, name: &str) -> Vec<Value> {
        let body: Value = reqwest::blocking::get(format!("{}/api/v2/alerts", self.url))
            .unwrap()
            .json()
            .unwrap();
        body.as_array()
            .unwrap()
            .iter()
            .filter(|a| a["labels"]["alertname"] == name)
            .cloned()
            .collect()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("----- alertmanager log -----\n{log}----- end -----");
        }
    }
}

fn now_rfc3339() -> String {
    trawl_model::Timestamp::now().to_rfc3339()
}

/// The real exec event of the fixture as `user` into pod `pod`, stamped now.
fn exec_event(user: &str, pod: &str, audit_id: &str) -> String {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/audit/exec_pod.json"
    ))
    .unwrap();
    let mut event: Value = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|e| e["stage"] == "ResponseStarted")
        .expect("the fixture has a ResponseStarted stage");
    let now = now_rfc3339();
    event["requestReceivedTimestamp"] = json!(now);
    event["stageTimestamp"] = json!(now);
    event["user"]["username"] = json!(user);
    event["objectRef"]["name"] = json!(pod);
    event["auditID"] = json!(audit_id);
    event.to_string()
}

fn error_line(pod: &str, i: u32) -> String {
    json!({
        "timestamp": now_rfc3339(),
        "namespace": "payments",
        "pod": pod,
        "level": "error",
        "message": format!("charge failed attempt {i}"),
    })
    .to_string()
}

/// The alerts of `GET /api/v1/alerts` for rule `name`.
fn trawl_alerts(server: &Server, name: &str) -> Vec<Value> {
    let (status, body) = json_of(server.get("/api/v1/alerts"));
    assert_eq!(status, 200, "{body}");
    body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["rule"] == name)
        .cloned()
        .collect()
}

fn wait_sent(receiver: &Receiver, name: &str, status: &str, n: usize) {
    wait_until(
        &format!("{n} {status} notification(s) of {name} reach the receiver"),
        DELIVERY_TIMEOUT,
        || receiver.sent(name, status).len() >= n,
    );
}

fn write_rules(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("rules.toml");
    std::fs::write(&path, text).unwrap();
    path
}

const THRESHOLD_RULES: &str = r#"
[[groups]]
name = "payments"
interval = "1s"

[[groups.rules]]
name = "PaymentErrors"
kind = "threshold"
stream = "logs"
query = "level:error"
window = "20s"
group_by = ["namespace"]
condition = "count >= 3"
for = "3s"
labels = { severity = "page" }
annotations = { summary = "{{ $labels.namespace }}: {{ $value }} errors" }
"#;

#[test]
fn threshold_rule_with_for_fires_once_and_resolves() {
    let Some(bin) = alertmanager_bin() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    let am = Alertmanager::start(&bin, &dir.path().join("am"), free_port(), &receiver);
    let rules = write_rules(dir.path(), THRESHOLD_RULES);
    let hook = Receiver::start();
    let server = Server::start(
        &dir.path().join("data"),
        &format!(
            "[alerting]\nrule_files = [{rules:?}]\nalertmanagers = [\"{}\"]\nwebhooks = [\"{}\"]\n",
            am.url, hook.url
        ),
    );
    let lines: Vec<String> = (0..3).map(|i| error_line(&format!("api-{i}"), i)).collect();
    server.ingest_plain("logs", &lines);

    // Pending first (`for` = 3s), then firing.
    wait_until("the rule is pending or firing", DELIVERY_TIMEOUT, || {
        !trawl_alerts(&server, "PaymentErrors").is_empty()
    });
    wait_sent(&receiver, "PaymentErrors", "firing", 1);
    let firing = receiver.sent("PaymentErrors", "firing");
    assert_eq!(firing.len(), 1, "{firing:?}");
    let alert = &firing[0];
    assert_eq!(
        alert["labels"],
        json!({"alertname": "PaymentErrors", "namespace": "payments", "severity": "page"})
    );
    assert_eq!(alert["annotations"]["summary"], "payments: 3 errors");
    let samples: Vec<&str> = alert["annotations"]["samples"]
        .as_str()
        .unwrap()
        .lines()
        .collect();
    assert_eq!(samples.len(), 3, "{samples:?}");
    for i in 0..3 {
        assert_eq!(
            samples
                .iter()
                .filter(|s| s.ends_with(&format!("payments/api-{i} charge failed attempt {i}")))
                .count(),
            1,
            "{samples:?}"
        );
    }
    // The query of the annotations finds exactly the events, over the alert's window.
    let query = alert["annotations"]["query"].as_str().unwrap();
    assert_eq!(query, "(level:error) namespace:\"payments\"");
    let found = server.search(
        "logs",
        &[
            ("q", query),
            ("start", alert["annotations"]["start"].as_str().unwrap()),
            ("end", alert["annotations"]["end"].as_str().unwrap()),
            ("limit", "0"),
        ],
    );
    assert_eq!(found["total"], 3);
    let generator = alert["generatorURL"].as_str().unwrap();
    assert!(
        generator.starts_with(&format!("{}/api/v1/logs/search?q=", server.url)),
        "{generator}"
    );
    let (status, linked) = json_of(reqwest::blocking::get(generator).unwrap());
    assert_eq!(status, 200);
    assert_eq!(linked["total"], 3);

    // The events leave the 20 s window: resolved, once; never fired again.
    wait_sent(&receiver, "PaymentErrors", "resolved", 1);
    assert_eq!(receiver.sent("PaymentErrors", "firing").len(), 1);
    assert_eq!(receiver.sent("PaymentErrors", "resolved").len(), 1);
    assert!(trawl_alerts(&server, "PaymentErrors").is_empty());
    // The plain webhook got the same two changes, in order, each once.
    wait_until("the webhook gets the resolve", DELIVERY_TIMEOUT, || {
        hook.bodies.lock().unwrap().len() >= 2
    });
    let bodies = hook.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    for (body, status) in bodies.iter().zip(["firing", "resolved"]) {
        assert_eq!(body["version"], "1");
        assert_eq!(body["source"], "trawl");
        let alerts = body["alerts"].as_array().unwrap();
        assert_eq!(alerts.len(), 1, "{body}");
        assert_eq!(alerts[0]["status"], status);
        assert_eq!(alerts[0]["labels"], alert["labels"]);
        assert!(alerts[0]["generatorURL"].is_string());
    }
    let (_, rules) = json_of(server.get("/api/v1/rules"));
    let rule = &rules["groups"][0]["rules"][0];
    assert_eq!(rule["name"], "PaymentErrors");
    assert_eq!(rule["health"], "ok");
    assert_eq!(rule["error"], Value::Null);
    assert!(rule["last_evaluation"].is_string());
    assert!(
        server
            .metric(r#"trawl_alerting_notifications_sent_total{rule="PaymentErrors",receiver="alertmanager"}"#)
            .unwrap()
            >= 2.0
    );
    assert!(
        server
            .metric(r#"trawl_alerting_rule_evaluations_total{rule="PaymentErrors"}"#)
            .unwrap()
            >= 3.0
    );
}

#[test]
fn pack_exec_rule_fires_on_exec_and_not_on_an_excepted_user() {
    let Some(bin) = alertmanager_bin() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    let am = Alertmanager::start(&bin, &dir.path().join("am"), free_port(), &receiver);
    let server = Server::start(
        &dir.path().join("data"),
        &format!(
            "[alerting]\npacks = [\"kubernetes-audit\"]\npack_interval_secs = 1\n\
             alertmanagers = [\"{}\"]\n\
             [alerting.tune.K8sExecIntoPod]\nignore_users = [\"ci-*\"]\n",
            am.url
        ),
    );
    server.ingest_plain(
        "audit",
        &[
            exec_event("alice", "web-1", "a1"),
            exec_event("ci-runner", "web-2", "a2"),
        ],
    );
    wait_sent(&receiver, "K8sExecIntoPod", "firing", 1);
    // Both events were in the window that fired alice's alert: Alertmanager holds hers only.
    let held = am.alerts("K8sExecIntoPod");
    assert_eq!(held.len(), 1, "{held:?}");
    let sent = receiver.sent("K8sExecIntoPod", "firing");
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        sent[0]["labels"],
        json!({
            "alertname": "K8sExecIntoPod",
            "name": "web-1",
            "namespace": "default",
            "pack": "kubernetes-audit",
            "severity": "warning",
            "subresource": "exec",
            "user": "alice",
        })
    );
    let samples = sent[0]["annotations"]["samples"].as_str().unwrap();
    assert_eq!(samples.lines().count(), 1, "{samples}");
    assert!(
        samples.contains(
            "user=alice verb=create resource=pods subresource=exec namespace=default name=web-1 \
             status_code=101"
        ),
        "{samples}"
    );
    assert!(samples.contains("exec_command=bash"), "{samples}");
    // The excepted user's exec is in the index all the same.
    let found = server.search("audit", &[("q", "user:\"ci-runner\""), ("limit", "0")]);
    assert_eq!(found["total"], 1);
}

const MATCH_RULES: &str = r#"
[[groups]]
name = "audit"
interval = "1s"

[[groups.rules]]
name = "ExecSeen"
kind = "match"
stream = "audit"
query = "resource:pods AND subresource:exec AND stage:ResponseStarted"
group_by = ["user"]
keep_firing_for = "15s"
"#;

#[test]
fn a_restart_while_firing_neither_duplicates_nor_loses_the_alert() {
    let Some(bin) = alertmanager_bin() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    let am = Alertmanager::start(&bin, &dir.path().join("am"), free_port(), &receiver);
    let rules = write_rules(dir.path(), MATCH_RULES);
    let config = format!(
        "[alerting]\nrule_files = [{rules:?}]\nalertmanagers = [\"{}\"]\n",
        am.url
    );
    let data = dir.path().join("data");
    let server = Server::start(&data, &config);
    server.ingest_plain("audit", &[exec_event("bob", "db-0", "r1")]);
    wait_sent(&receiver, "ExecSeen", "firing", 1);
    let before = trawl_alerts(&server, "ExecSeen");
    assert_eq!(before.len(), 1);
    assert_eq!(before[0]["state"], "firing");

    // Killed without a chance to say anything, then started again on the same data.
    server.kill9();
    let server = Server::start(&data, &config);
    let after = trawl_alerts(&server, "ExecSeen");
    assert_eq!(after.len(), 1, "the firing alert is remembered");
    assert_eq!(after[0]["fired_at"], before[0]["fired_at"]);
    assert_eq!(after[0]["labels"], before[0]["labels"]);

    // It resolves 15 s after its event, through the restarted process; fired once only.
    wait_sent(&receiver, "ExecSeen", "resolved", 1);
    assert_eq!(receiver.sent("ExecSeen", "firing").len(), 1);
    assert_eq!(receiver.sent("ExecSeen", "resolved").len(), 1);
    assert_eq!(
        receiver.sent("ExecSeen", "resolved")[0]["labels"],
        json!({"alertname": "ExecSeen", "user": "bob"})
    );
}

#[test]
fn alertmanager_down_then_back_receives_the_alert() {
    let Some(bin) = alertmanager_bin() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    let port = port_for_later();
    let am_url = format!("http://127.0.0.1:{port}");
    let rules = write_rules(dir.path(), MATCH_RULES.replace("15s", "10m").as_str());
    let server = Server::start(
        &dir.path().join("data"),
        &format!(
            "[alerting]\nrule_files = [{rules:?}]\n\
             max_retry_backoff_ms = 2000\nalertmanagers = [\"{am_url}\"]\n"
        ),
    );
    let down_since = Instant::now();
    server.ingest_plain("audit", &[exec_event("carol", "cache-0", "d1")]);
    wait_until("the alert fires in Trawl", DELIVERY_TIMEOUT, || {
        trawl_alerts(&server, "ExecSeen")
            .first()
            .is_some_and(|a| a["state"] == "firing")
    });
    let failures =
        format!(r#"trawl_alerting_delivery_failures_total{{url="{am_url}/api/v2/alerts"}}"#);
    wait_until("a delivery attempt has failed", DELIVERY_TIMEOUT, || {
        server.metric(&failures).is_some_and(|n| n >= 1.0)
    });
    // Alertmanager stays away for the whole window (deliberate downtime, not a wait for a
    // condition), then comes up on the address Trawl keeps retrying.
    if let Some(rest) = down_window().checked_sub(down_since.elapsed()) {
        std::thread::sleep(rest);
    }
    let failed = server.metric(&failures).unwrap();
    assert!(failed >= 2.0, "retried while down: {failed}");
    let _am = Alertmanager::start(&bin, &dir.path().join("am"), port, &receiver);
    wait_sent(&receiver, "ExecSeen", "firing", 1);
    let sent = receiver.sent("ExecSeen", "firing");
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        sent[0]["labels"],
        json!({"alertname": "ExecSeen", "user": "carol"})
    );
    assert_eq!(receiver.alerts().len(), 1);
}

/// The names of the rules `GET /api/v1/rules` lists, and its `reload_error`.
fn rule_names(server: &Server) -> (Vec<String>, Value) {
    let (status, body) = json_of(server.get("/api/v1/rules"));
    assert_eq!(status, 200, "{body}");
    let names = body["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().clone())
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    (names, body["reload_error"].clone())
}

fn match_rule(name: &str) -> String {
    format!("[[groups.rules]]\nname = \"{name}\"\nkind = \"match\"\nquery = \"panic\"\n")
}

#[test]
fn rules_reload_on_change_and_on_sighup_and_a_bad_file_keeps_the_old_rules() {
    let dir = tempfile::tempdir().unwrap();
    let head = "[[groups]]\nname = \"g\"\ninterval = \"1s\"\n";
    let rules = write_rules(dir.path(), &format!("{head}{}", match_rule("A")));
    let server = Server::start(
        &dir.path().join("data"),
        &format!("[alerting]\nrule_files = [{rules:?}]\nreload_check_ms = 100\n"),
    );
    assert_eq!(rule_names(&server), (vec!["A".to_string()], Value::Null));
    std::fs::write(
        &rules,
        format!("{head}{}{}", match_rule("A"), match_rule("B")),
    )
    .unwrap();
    wait_until("the changed file is loaded", DELIVERY_TIMEOUT, || {
        rule_names(&server).0 == ["A", "B"]
    });
    std::fs::write(
        &rules,
        format!("{head}{}condition = \"x\"\n", match_rule("C")),
    )
    .unwrap();
    wait_until("the bad file is refused", DELIVERY_TIMEOUT, || {
        rule_names(&server).1.is_string()
    });
    let (names, error) = rule_names(&server);
    assert_eq!(names, ["A", "B"], "the previous rules keep running");
    let error = error.as_str().unwrap();
    assert!(
        error.contains(&format!("{}: groups.g.rules.C.condition", rules.display())),
        "{error}"
    );
    drop(server);

    // With change detection slowed to an hour, SIGHUP reloads.
    let rules = write_rules(dir.path(), &format!("{head}{}", match_rule("A")));
    let server = Server::start(
        &dir.path().join("data2"),
        &format!("[alerting]\nrule_files = [{rules:?}]\nreload_check_ms = 3600000\n"),
    );
    assert_eq!(rule_names(&server).0, ["A"]);
    std::fs::write(&rules, format!("{head}{}", match_rule("D"))).unwrap();
    let status = Command::new("kill")
        .arg("-HUP")
        .arg(server.pid().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    wait_until("SIGHUP reloads the rules", DELIVERY_TIMEOUT, || {
        rule_names(&server).0 == ["D"]
    });
}

#[test]
fn config_check_names_the_file_group_rule_and_key_of_a_bad_rule() {
    let dir = tempfile::tempdir().unwrap();
    let rules = write_rules(
        dir.path(),
        "[[groups]]\nname = \"web\"\n[[groups.rules]]\nname = \"Errors\"\nkind = \"threshold\"\n\
         query = \"level:error\"\nwindow = \"5m\"\ncondition = \"count >> 3\"\n",
    );
    let config = dir.path().join("trawl.toml");
    std::fs::write(
        &config,
        format!("[alerting]\nrule_files = [{rules:?}]\npacks = [\"kubernetes-audit\"]\n"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_trawl"))
        .args(["config", "check"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "`{}: groups.web.rules.Errors.condition`: `> 3` is not a number",
            rules.display()
        )),
        "{stderr}"
    );
    std::fs::write(
        &rules,
        "[[groups]]\nname = \"web\"\n[[groups.rules]]\nname = \"Errors\"\nkind = \"threshold\"\n\
         query = \"level:error\"\nwindow = \"5m\"\ncondition = \"count > 3\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_trawl"))
        .args(["config", "check"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The events of fixture `file`, stamped now, with fresh audit ids (`tag` + line), and with
/// every field of `changes` (a JSON pointer and its value) set.
fn fixture_events(file: &str, tag: &str, changes: &[(&str, Value)]) -> Vec<String> {
    let path = format!("{}/tests/fixtures/audit/{file}", env!("CARGO_MANIFEST_DIR"));
    let now = now_rfc3339();
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            let mut event: Value = serde_json::from_str(line).unwrap();
            event["apiVersion"] = json!("audit.k8s.io/v1");
            event["requestReceivedTimestamp"] = json!(now);
            event["stageTimestamp"] = json!(now);
            if let Some(object) = event.as_object_mut() {
                object.remove("timestamp");
            }
            event["auditID"] = json!(format!("{tag}-{i}"));
            for (pointer, value) in changes {
                *event.pointer_mut(pointer).unwrap() = value.clone();
            }
            event.to_string()
        })
        .collect()
}

#[test]
fn the_audit_pack_on_real_events_fires_what_it_documents_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        "[alerting]\npacks = [\"kubernetes-audit\"]\npack_interval_secs = 1\n",
    );
    let user = |name: &str| vec![("/user/username", json!(name))];
    let mut events = Vec::new();
    events.extend(fixture_events("attach_pod.json", "attach", &[]));
    events.extend(fixture_events(
        "attach_cluster_admin_role.json",
        "crb-admin",
        &[],
    ));
    events.extend(fixture_events(
        "create_clusterrolebinding.json",
        "crb-basic",
        &[],
    ));
    events.extend(fixture_events(
        "delete_namespace_foo.json",
        "ns-delete",
        &[],
    ));
    events.extend(fixture_events(
        "anonymous_creates_namespace_foo.json",
        "anon",
        &[],
    ));
    // Pods of the replicaset controller are ignored; the same specs written by people are not.
    events.extend(fixture_events(
        "create_nginx_pod_privileged.json",
        "priv-rs",
        &[],
    ));
    events.extend(fixture_events(
        "create_nginx_pod_privileged.json",
        "priv",
        &user("dave"),
    ));
    events.extend(fixture_events(
        "create_nginx_pod_sensitive_mount.json",
        "mount",
        &user("erin"),
    ));
    events.extend(fixture_events(
        "create_nginx_pod_unprivileged.json",
        "plain",
        &user("frank"),
    ));
    // A secret read by a person, and by a service account (ignored).
    let get = |name: &str| {
        vec![
            ("/user/username", json!(name)),
            ("/verb", json!("get")),
            ("/responseStatus/code", json!(200)),
        ]
    };
    events.extend(fixture_events(
        "create_secret.json",
        "get-grace",
        &get("grace"),
    ));
    events.extend(fixture_events(
        "create_secret.json",
        "get-sa",
        &get("system:serviceaccount:app:reader"),
    ));
    // 20 denials of one user within the window: a burst.
    for i in 0..20 {
        let mut denied = get("mallory");
        denied[2] = ("/responseStatus/code", json!(403));
        events.extend(fixture_events(
            "create_secret.json",
            &format!("deny-{i}"),
            &denied,
        ));
    }
    server.ingest_plain("audit", &events);

    let expected: BTreeMap<String, Vec<String>> = [
        ("K8sAnonymousAllowed", "create /api/v1/namespaces"),
        (
            "K8sClusterAdminBinding",
            "minikube-user some-reader-binding",
        ),
        ("K8sExecIntoPod", "minikube-user attach"),
        ("K8sForbiddenBurst", "mallory"),
        ("K8sNamespaceDeleted", "minikube-user foo"),
        ("K8sPrivilegedOrHostPathPod", "dave"),
        ("K8sPrivilegedOrHostPathPod", "erin"),
        ("K8sSecretReadByPerson", "grace example-secret"),
    ]
    .into_iter()
    .fold(BTreeMap::new(), |mut map, (rule, what)| {
        map.entry(rule.to_string())
            .or_insert_with(Vec::new)
            .push(what.to_string());
        map
    });
    let describe = |alert: &Value| -> String {
        let l = &alert["labels"];
        let parts: Vec<&str> = match alert["rule"].as_str().unwrap() {
            "K8sAnonymousAllowed" => vec!["verb", "request_path"],
            "K8sClusterAdminBinding" | "K8sNamespaceDeleted" | "K8sSecretReadByPerson" => {
                vec!["user", "name"]
            }
            "K8sExecIntoPod" => vec!["user", "subresource"],
            _ => vec!["user"],
        }
        .into_iter()
        .map(|k| l[k].as_str().unwrap_or("?"))
        .collect();
        parts.join(" ")
    };
    let deadline = Instant::now() + DELIVERY_TIMEOUT;
    let last = loop {
        let (_, body) = json_of(server.get("/api/v1/alerts"));
        let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for alert in body["alerts"].as_array().unwrap() {
            seen.entry(alert["rule"].as_str().unwrap().to_string())
                .or_default()
                .push(describe(alert));
        }
        seen.values_mut().for_each(|v| v.sort());
        if seen == expected || Instant::now() > deadline {
            break seen;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(last, expected);
}

#[test]
fn split_roles_evaluate_in_the_searcher_over_every_indexer_and_not_in_an_indexer() {
    let dir = tempfile::tempdir().unwrap();
    let rules = write_rules(
        dir.path(),
        &THRESHOLD_RULES.replace("for = \"3s\"", "for = \"0s\""),
    );
    let alerting = format!("[alerting]\nrule_files = [{rules:?}]\n");
    // The indexers are given the same [alerting]: they must not evaluate (each sees a part).
    let a = Server::start_role("indexer", &dir.path().join("a"), &alerting);
    let b = Server::start_role("indexer", &dir.path().join("b"), &alerting);
    let root = Server::start_role(
        "searcher",
        &dir.path().join("root"),
        &format!(
            "{alerting}[query]\nindexers = [\"{}\", \"{}\"]\n",
            a.url, b.url
        ),
    );
    // Two errors on one indexer, one on the other: only the whole cluster reaches 3.
    a.ingest_plain("logs", &[error_line("api-0", 0), error_line("api-1", 1)]);
    b.ingest_plain("logs", &[error_line("api-2", 2)]);
    wait_until("the searcher fires", DELIVERY_TIMEOUT, || {
        trawl_alerts(&root, "PaymentErrors")
            .first()
            .is_some_and(|alert| alert["state"] == "firing")
    });
    let alert = &trawl_alerts(&root, "PaymentErrors")[0];
    assert_eq!(alert["count"], 3);
    assert_eq!(
        alert["annotations"]["samples"]
            .as_str()
            .unwrap()
            .lines()
            .count(),
        3
    );
    for indexer in [&a, &b] {
        assert_eq!(indexer.get("/api/v1/rules").status(), 404);
    }
}

/// Whether `server` evaluates the rules now (`GET /api/v1/rules`).
fn leads(server: &Server) -> bool {
    let (status, body) = json_of(server.get("/api/v1/rules"));
    assert_eq!(status, 200, "{body}");
    body["leader"].as_bool().unwrap()
}

/// An indexer and two searchers with `alerting` (lines of `[alerting]`, `rule_files` given) on
/// one PostgreSQL metastore and S3 server, once one of them leads: the servers, and the
/// searchers as (leader, other). `None` when PostgreSQL or s3s-fs is missing.
struct TwoSearchers {
    _pg: crate::shared_tier::servers::Postgres,
    _s3: crate::shared_tier::servers::S3Server,
    _dir: tempfile::TempDir,
    indexer: Server,
    leader: Server,
    other: Server,
}

impl TwoSearchers {
    fn start(rules_text: &str, alerting: &str) -> Option<TwoSearchers> {
        use crate::shared_tier::servers::{self, Postgres, S3Server};
        if !servers::postgres_available() || !servers::s3_available() {
            return None;
        }
        let pg = Postgres::start();
        let s3 = S3Server::start();
        let dir = tempfile::tempdir().unwrap();
        let rules = write_rules(dir.path(), rules_text);
        let shared = crate::shared_tier::config(&pg, &s3, 1000);
        let indexer = Server::start_role("indexer", &dir.path().join("a"), &shared);
        let searcher_config = format!(
            "{shared}[alerting]\nrule_files = [{rules:?}]\n{alerting}\n\
             [query]\nindexers = [\"{}\"]\n",
            indexer.url
        );
        let s1 = Server::start_role("searcher", &dir.path().join("s1"), &searcher_config);
        let s2 = Server::start_role("searcher", &dir.path().join("s2"), &searcher_config);
        wait_until("one searcher leads", DELIVERY_TIMEOUT, || {
            leads(&s1) != leads(&s2)
        });
        let (leader, other) = if leads(&s1) { (s1, s2) } else { (s2, s1) };
        Some(TwoSearchers {
            _pg: pg,
            _s3: s3,
            _dir: dir,
            indexer,
            leader,
            other,
        })
    }
}

/// Two searchers with the same `[alerting]` on one PostgreSQL metastore: the one holding the
/// `alerting` lease evaluates and sends, the other neither evaluates nor sends; the leader
/// killed, the other takes the lease over and fires what the rules find.
#[test]
fn searchers_on_one_metastore_take_turns_at_alerting() {
    let receiver = Receiver::start();
    // A window long enough to outlast the lease moving over (at most its 15 s term and a
    // renewal).
    let rules = THRESHOLD_RULES
        .replace("for = \"3s\"", "for = \"0s\"")
        .replace("window = \"20s\"", "window = \"10m\"");
    // Bound whole: its servers live as long as the test.
    let Some(cluster) = TwoSearchers::start(&rules, &format!("webhooks = [\"{}\"]", receiver.url))
    else {
        return;
    };
    // The fields not taken (PostgreSQL, S3) stay in `cluster` until the end.
    let TwoSearchers {
        indexer: a,
        leader,
        other,
        ..
    } = cluster;
    // The gauge follows at the engine's next tick.
    wait_until("the leader's gauge says so", DELIVERY_TIMEOUT, || {
        leader.metric("trawl_alerting_leader") == Some(1.0)
    });
    assert_eq!(other.metric("trawl_alerting_leader"), Some(0.0));

    a.ingest_plain(
        "logs",
        &[
            error_line("api-0", 0),
            error_line("api-1", 1),
            error_line("api-2", 2),
        ],
    );
    wait_sent(&receiver, "PaymentErrors", "firing", 1);
    // Sent by the leader alone; the other has not even evaluated.
    let senders: BTreeMap<String, usize> =
        receiver
            .alerts()
            .iter()
            .fold(BTreeMap::new(), |mut senders, alert| {
                let url = alert["generatorURL"].as_str().unwrap_or_default();
                let sender = url.split("/api/").next().unwrap_or_default().to_string();
                *senders.entry(sender).or_default() += 1;
                senders
            });
    assert_eq!(
        senders.keys().cloned().collect::<Vec<_>>(),
        vec![leader.url.clone()],
        "{senders:?}"
    );
    assert_eq!(trawl_alerts(&other, "PaymentErrors"), Vec::<Value>::new());
    assert!(!leads(&other));
    // Its alerts say it does not lead (a client behind a Service may reach either).
    assert_eq!(json_of(other.get("/api/v1/alerts")).1["leader"], false);
    assert_eq!(json_of(leader.get("/api/v1/alerts")).1["leader"], true);

    // The leader gone: the other takes the lease when it lapses, and fires.
    leader.kill9();
    wait_until("the other searcher leads", Duration::from_secs(60), || {
        leads(&other)
    });
    wait_until("the other searcher fires", DELIVERY_TIMEOUT, || {
        receiver
            .sent("PaymentErrors", "firing")
            .iter()
            .any(|alert| {
                alert["generatorURL"]
                    .as_str()
                    .is_some_and(|url| url.starts_with(&format!("{}/", other.url)))
            })
    });
    assert_eq!(trawl_alerts(&other, "PaymentErrors")[0]["count"], 3);
    assert_eq!(other.metric("trawl_alerting_leader"), Some(1.0));
    assert!(leads(&other));
}

/// A leading searcher that stops gives the `alerting` lease up: with a term so long that
/// waiting it out would take at least a minute after the stop (the last renewal at most a
/// third of the term before it), the other searcher leads at its next try, within 30 s.
#[test]
fn a_searcher_that_stops_gives_the_alerting_lease_up() {
    // Bound whole: its servers live as long as the test.
    let Some(cluster) = TwoSearchers::start(THRESHOLD_RULES, "lease_secs = 90") else {
        return;
    };
    let TwoSearchers { leader, other, .. } = cluster;
    leader.stop();
    wait_until(
        "the other searcher leads before the lease's term",
        Duration::from_secs(45),
        || leads(&other),
    );
}
