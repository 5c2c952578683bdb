//! Process harness: starts the real `trawl standalone` binary on port 0 with a temp data dir,
//! talks HTTP to it, and prints its log when a test fails.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, Response};
use reqwest::StatusCode;
use serde_json::Value;

/// How long a server may take to print its address, to become ready, or to stop.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long an acknowledged record may take to become searchable in these tests (the
/// contract is about 1 s; the margin is for a loaded two-core machine).
pub const SEARCHABLE_TIMEOUT: Duration = Duration::from_secs(20);

/// Interval between two polls of a condition.
const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// Numbers the servers of one test process, so that every start gets its own config and log
/// file even when a test restarts a server on the same data dir.
static STARTS: AtomicUsize = AtomicUsize::new(0);

/// A running `trawl standalone`. Dropping it kills the process (SIGKILL) and, if the thread
/// is panicking (a failed assertion), prints the server's log.
pub struct Server {
    child: Option<Child>,
    /// Base URL, e.g. `http://127.0.0.1:41234`, read from the line the server prints.
    pub url: String,
    log_path: PathBuf,
    client: Client,
}

impl Server {
    /// Starts `trawl standalone --listen 127.0.0.1:0 --data-dir <data_dir> --config <file>`,
    /// where the config file (written beside `data_dir`) holds `extra_config` plus
    /// `[collector] enabled = false` (the tests own every record in the index, so
    /// `extra_config` must not have a `[collector]` section). Returns once `/health/ready`
    /// answers 200; panics with the server's log if that takes longer than [`START_TIMEOUT`].
    pub fn start(data_dir: &Path, extra_config: &str) -> Server {
        Server::start_role("standalone", data_dir, extra_config)
    }

    /// [`Server::start`] for another role (`indexer`, `searcher`).
    pub fn start_role(role: &str, data_dir: &Path, extra_config: &str) -> Server {
        Server::start_with_config(
            role,
            data_dir,
            &format!("{extra_config}\n\n[collector]\nenabled = false\n"),
        )
    }

    /// Starts `trawl <role>` with exactly `config` as its configuration file.
    pub fn start_with_config(role: &str, data_dir: &Path, config: &str) -> Server {
        Server::start_listening(role, data_dir, config, "127.0.0.1:0")
    }

    /// Starts `trawl <role>` on a given address (to restart a server on the same port).
    pub fn start_listening(role: &str, data_dir: &Path, config: &str, listen: &str) -> Server {
        let client = Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        Server::start_with_client(role, data_dir, config, listen, client)
    }

    /// [`Server::start_listening`] talking through `client` (e.g. one that trusts a test CA,
    /// for a server with `[auth.tls]`).
    pub fn start_with_client(
        role: &str,
        data_dir: &Path,
        config: &str,
        listen: &str,
        client: Client,
    ) -> Server {
        Server::start_with_env(role, data_dir, config, listen, client, &[])
    }

    /// [`Server::start_with_client`] with extra environment variables for the process (e.g.
    /// the indexer's `TRAWL_TEST_FAULT_DIR` hook).
    pub fn start_with_env(
        role: &str,
        data_dir: &Path,
        config: &str,
        listen: &str,
        client: Client,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Server {
        let mut server = Server::spawn_with_env(role, data_dir, config, listen, client, env, true);
        server.wait_ready();
        server
    }

    /// [`Server::start_with_env`] without waiting for `/health/ready`: returns once the
    /// process has printed the address it listens on, or (`wait_for_address` false, with a
    /// plain-HTTP `listen` naming its port) at once: the server prints its address only once
    /// every role is up.
    pub fn spawn_with_env(
        role: &str,
        data_dir: &Path,
        config: &str,
        listen: &str,
        client: Client,
        env: &[(&str, &std::ffi::OsStr)],
        wait_for_address: bool,
    ) -> Server {
        let n = STARTS.fetch_add(1, Ordering::SeqCst);
        let parent = data_dir.parent().expect("data_dir has a parent");
        let config_path = parent.join(format!("trawl-{n}.toml"));
        let log_path = parent.join(format!("trawl-{n}.log"));
        fs::write(&config_path, config).unwrap();
        let log = fs::File::create(&log_path).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_trawl"));
        // The developer's own TRAWL_* settings must not change what a test runs.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("TRAWL_") {
                command.env_remove(key);
            }
        }
        // `role` may carry the role's flags (`standalone --demo`).
        let mut child = command
            .args(role.split_whitespace())
            .arg("--listen")
            .arg(listen)
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--config")
            .arg(&config_path)
            .env("TRAWL_LOG", "info,tantivy=warn")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawning the trawl binary");

        // The first stdout line carries the address; the reader thread keeps draining stdout
        // afterwards so that the server never blocks on (or dies from) a full pipe.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = tx.send(first);
            }
            for _ in lines {}
        });
        let mut server = Server {
            child: Some(child),
            url: String::new(),
            log_path,
            client,
        };
        if !wait_for_address {
            server.url = format!("http://{listen}");
            return server;
        }
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(line) => line,
            Err(err) => panic!("the server printed no address ({err})"),
        };
        server.url = line
            .strip_prefix("trawl listening on ")
            .unwrap_or_else(|| panic!("unexpected first stdout line: {line:?}"))
            .trim()
            .to_string();
        server
    }

    /// Polls `/health/ready` until it answers 200, failing fast if the process exits.
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("the server exited before it was ready: {status}");
            }
            if let Ok(resp) = self.client.get(self.at("/health/ready")).send() {
                if resp.status() == StatusCode::OK {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the server was not ready within {START_TIMEOUT:?}"
            );
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Kills the process with SIGKILL (what `Child::kill` sends on Unix) and reaps it: no
    /// shutdown code runs.
    pub fn kill9(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Whether the process has exited by itself. `Child` keeps the status it reaped, so
    /// [`Server::wait_exit`] still returns it.
    pub fn has_exited(&mut self) -> bool {
        self.child.as_mut().unwrap().try_wait().unwrap().is_some()
    }

    /// Waits (at most `timeout`) for the process to exit by itself (a crash point of the fault
    /// hook), reaps it and returns its exit status; panics if it is still running then.
    pub fn wait_exit(mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        let mut child = self.child.take().unwrap();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                // Dropping `self` while panicking prints the server's log.
                panic!("the server did not exit within {timeout:?}");
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Sends SIGTERM and waits (bounded) for a clean exit; panics if the exit status is not
    /// success.
    pub fn stop(mut self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM failed: {status}");
        let deadline = Instant::now() + START_TIMEOUT;
        let child = self.child.as_mut().unwrap();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "the server exited with {status} on SIGTERM"
                );
                self.child = None;
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not stop within {START_TIMEOUT:?} of SIGTERM"
            );
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// `self.url` + `path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Response {
        self.client.get(self.at(path)).send().unwrap()
    }

    /// `POST /api/v1/{stream}/ingest` with `body` as is and, if given, `Content-Encoding`.
    /// Returns the status and the JSON body.
    pub fn ingest_raw(
        &self,
        stream: &str,
        body: Vec<u8>,
        encoding: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .post(self.at(&format!("/api/v1/{stream}/ingest")))
            .header("content-type", "application/x-ndjson")
            .body(body);
        if let Some(encoding) = encoding {
            req = req.header("content-encoding", encoding);
        }
        json_of(req.send().unwrap())
    }

    /// Ingests `lines` as one zstd-compressed NDJSON batch; asserts 200 and returns the answer.
    pub fn ingest_zstd(&self, stream: &str, lines: &[String]) -> Value {
        let (status, body) = self.ingest_raw(stream, zstd_body(lines), Some("zstd"));
        assert_eq!(status, StatusCode::OK, "ingest answered {body}");
        body
    }

    /// Ingests `lines` as one plain NDJSON batch; asserts 200 and returns the answer.
    pub fn ingest_plain(&self, stream: &str, lines: &[String]) -> Value {
        let (status, body) = self.ingest_raw(stream, ndjson(lines), None);
        assert_eq!(status, StatusCode::OK, "ingest answered {body}");
        body
    }

    /// `GET /api/v1/{stream}/search` with `params`; returns the status and the JSON body.
    pub fn search_raw(&self, stream: &str, params: &[(&str, &str)]) -> (StatusCode, Value) {
        let resp = self
            .client
            .get(self.at(&format!("/api/v1/{stream}/search")))
            .query(params)
            .send()
            .unwrap();
        json_of(resp)
    }

    /// Searches; asserts 200 and returns the answer.
    pub fn search(&self, stream: &str, params: &[(&str, &str)]) -> Value {
        let (status, body) = self.search_raw(stream, params);
        assert_eq!(status, StatusCode::OK, "search {params:?} answered {body}");
        body
    }

    /// The exact `total` of a search of the `logs` stream for `q` (plus `params`), with
    /// `limit=0`.
    pub fn total(&self, q: &str, params: &[(&str, &str)]) -> u64 {
        let mut all = vec![("q", q), ("limit", "0")];
        all.extend_from_slice(params);
        let body = self.search("logs", &all);
        body["total"]
            .as_u64()
            .unwrap_or_else(|| panic!("no total in {body}"))
    }

    /// Waits until searching `logs` for `q` totals exactly `expected`; panics (naming the last
    /// total) after [`SEARCHABLE_TIMEOUT`].
    pub fn wait_total(&self, q: &str, expected: u64) {
        let mut last = None;
        wait_until(
            &format!("`{q}` totals {expected}"),
            SEARCHABLE_TIMEOUT,
            || {
                let total = self.total(q, &[]);
                last = Some(total);
                total == expected
            },
        );
        assert_eq!(last, Some(expected));
    }

    /// The `logs` entry of `GET /api/v1/streams`.
    pub fn logs_stream(&self) -> Value {
        let resp = self.get("/api/v1/streams");
        let (status, body) = json_of(resp);
        assert_eq!(status, StatusCode::OK, "streams answered {body}");
        body["streams"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["name"] == "logs"))
            .cloned()
            .unwrap_or_else(|| panic!("no logs stream in {body}"))
    }

    /// The value of the Prometheus sample whose line starts with `series ` (name and labels
    /// exactly as exposed), or `None` when /metrics has no such line.
    pub fn metric(&self, series: &str) -> Option<f64> {
        let text = self.get("/metrics").text().unwrap();
        text.lines().find_map(|line| {
            line.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
                .map(|value| value.trim().parse::<f64>().unwrap())
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            let log = fs::read_to_string(&self.log_path).unwrap_or_default();
            eprintln!(
                "----- server log {} -----\n{log}----- end of server log -----",
                self.log_path.display()
            );
        }
    }
}

/// Polls `condition` every 25 ms until it holds; panics naming `desc` after `timeout`.
/// A loopback port free at the time of asking, for a process that must be restarted on the
/// same address.
/// Starts `role` with the crash point `point` armed (the test fault directory `faults`), runs
/// `then` against it, waits for the abort there, and disarms the point.
pub fn crash_at(
    role: &str,
    data: &Path,
    faults: &Path,
    point: &str,
    config: &str,
    then: impl FnOnce(&Server),
) {
    use std::os::unix::process::ExitStatusExt;
    fs::create_dir_all(faults).unwrap();
    fs::write(faults.join(point), b"").unwrap();
    let server = Server::start_with_env(
        role,
        data,
        &format!("{config}\n\n[collector]\nenabled = false\n"),
        "127.0.0.1:0",
        Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap(),
        &[("TRAWL_TEST_FAULT_DIR", faults.as_os_str())],
    );
    then(&server);
    let status = server.wait_exit(START_TIMEOUT);
    assert_eq!(status.signal(), Some(6), "aborted at {point}: {status}");
    fs::remove_file(faults.join(point)).unwrap();
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `probe` gives `expected`; panics naming the last value it gave after `timeout`.
pub fn wait_for<T: PartialEq + std::fmt::Debug>(
    desc: &str,
    timeout: Duration,
    expected: T,
    mut probe: impl FnMut() -> T,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let last = probe();
        if last == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting until {desc}: {last:?}, expected {expected:?}"
        );
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Waits until `condition` holds; panics after `timeout`.
pub fn wait_until(desc: &str, timeout: Duration, condition: impl FnMut() -> bool) {
    wait_for(desc, timeout, true, condition);
}

/// The status and JSON body of a response (`Value::Null` if the body is not JSON).
pub fn json_of(resp: Response) -> (StatusCode, Value) {
    let status = resp.status();
    let text = resp.text().unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, body)
}

/// `lines` joined into an NDJSON body (each line ended by `\n`).
pub fn ndjson(lines: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in lines {
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out
}

/// `lines` as a zstd-compressed NDJSON body.
pub fn zstd_body(lines: &[String]) -> Vec<u8> {
    zstd_bytes(&ndjson(lines))
}

/// `data` compressed as one zstd frame.
pub fn zstd_bytes(data: &[u8]) -> Vec<u8> {
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// The generated `logs` records: every field is a pure function of the record number `i`, so
/// that a test computes the expected answer of any query from the generator itself.
pub mod gen {
    use serde_json::json;

    /// 2026-11-25T10:00:00Z in nanoseconds since the epoch.
    pub const BASE_NANOS: i64 = 1_795_600_800_000_000_000;

    /// Nanoseconds between two consecutive records: not a round number, so that every
    /// timestamp has all nine fractional digits significant.
    pub const STEP_NANOS: i64 = 250_000_007;

    pub const NAMESPACES: [&str; 4] = ["payments", "checkout", "search", "auth"];
    pub const LEVELS: [&str; 3] = ["info", "warn", "error"];

    /// Record `i`'s timestamp, nanoseconds since the epoch (strictly increasing in `i`).
    pub fn nanos(i: u64) -> i64 {
        BASE_NANOS + i as i64 * STEP_NANOS
    }

    /// Record `i`'s timestamp in RFC 3339 with nine fractional digits, as the server prints it.
    pub fn ts(i: u64) -> String {
        rfc3339(nanos(i))
    }

    /// Formats a time of 2026-11-25 between 00:00 and 24:00 UTC (all the tests use).
    pub fn rfc3339(nanos: i64) -> String {
        let day = 1_795_564_800_000_000_000_i64; // 2026-11-25T00:00:00Z
        let of_day = nanos - day;
        assert!(
            (0..86_400_000_000_000).contains(&of_day),
            "{nanos} is not on 2026-11-25"
        );
        let secs = of_day / 1_000_000_000;
        let frac = of_day % 1_000_000_000;
        format!(
            "2026-11-25T{:02}:{:02}:{:02}.{frac:09}Z",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        )
    }

    pub fn namespace(i: u64) -> &'static str {
        NAMESPACES[(i % 4) as usize]
    }

    pub fn level(i: u64) -> &'static str {
        LEVELS[(i % 3) as usize]
    }

    /// Every 7th record mentions a timeout.
    pub fn has_timeout(i: u64) -> bool {
        i.is_multiple_of(7)
    }

    /// Every 5th record has the phrase "connection reset".
    pub fn has_connection_reset(i: u64) -> bool {
        i.is_multiple_of(5)
    }

    /// Every 11th record has "reset connection": both words, not the phrase.
    pub fn has_reset_connection(i: u64) -> bool {
        i.is_multiple_of(11)
    }

    /// The message of record `i`: its number, its batch's marker word, and the words above.
    pub fn message(i: u64, marker: &str) -> String {
        let mut m = format!("request {i} handled {marker}");
        if has_timeout(i) {
            m.push_str(" upstream timeout");
        }
        if has_connection_reset(i) {
            m.push_str(" connection reset by peer");
        }
        if has_reset_connection(i) {
            m.push_str(" will reset connection");
        }
        m
    }

    /// Record `i` as one NDJSON line of the `logs` stream.
    pub fn line(i: u64, marker: &str) -> String {
        json!({
            "timestamp": ts(i),
            "namespace": namespace(i),
            "pod": format!("{}-{}", namespace(i), i % 3),
            "container": "app",
            "level": level(i),
            "message": message(i, marker),
            "labels": {"app": namespace(i)},
            "attributes": {"seq": i},
            "file": "/var/log/pods/e2e/app/0.log",
            "offset": i * 100,
        })
        .to_string()
    }

    /// Records `range` as NDJSON lines, all carrying `marker`.
    pub fn lines(range: std::ops::Range<u64>, marker: &str) -> Vec<String> {
        range.map(|i| line(i, marker)).collect()
    }

    #[test]
    fn rfc3339_formats_exact_nanoseconds() {
        assert_eq!(rfc3339(BASE_NANOS), "2026-11-25T10:00:00.000000000Z");
        assert_eq!(ts(1), "2026-11-25T10:00:00.250000007Z");
        assert_eq!(ts(9_999), "2026-11-25T10:41:39.750069993Z");
    }
}
