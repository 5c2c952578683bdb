//! Real servers for tests: a PostgreSQL 15 server (Debian's, initialised into a temporary
//! directory, on a free loopback port, as the `postgres` user when the tests run as root) and
//! an S3-protocol server (`s3s-fs`, from crates.io) over a temporary directory.
//!
//! PostgreSQL's programs are taken from `$TRAWL_PG_BIN`, else the newest
//! `/usr/lib/postgresql/<n>/bin`; `s3s-fs` from `$S3S_FS_BIN`, else `PATH`. Without them a test
//! fails with how to install them, unless `SKIP_POSTGRES_TESTS=1` / `SKIP_S3_TESTS=1` is set
//! (for a developer's machine; `.ci/run` installs both and never sets these).
//!
//! Shared by `storage/tests/` and the end-to-end tests (`#[path]`), so it uses std only.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port (bound, then released for the server to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on loopback")
}

fn wait_for_port(port: u16, what: &str, child: &mut Child, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited ({status}) before listening:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "{what} did not listen on {port} within 60 s:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn pg_bin() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("TRAWL_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

/// Whether the PostgreSQL tests can run; panics with instructions if not, unless skipped.
pub fn postgres_available() -> bool {
    if pg_bin().is_some() {
        return true;
    }
    if std::env::var("SKIP_POSTGRES_TESTS").as_deref() == Ok("1") {
        eprintln!("PostgreSQL tests skipped: no server programs");
        return false;
    }
    panic!(
        "no PostgreSQL server programs under /usr/lib/postgresql/<n>/bin: install them \
         (apt-get install -y postgresql), set TRAWL_PG_BIN to their directory, or set \
         SKIP_POSTGRES_TESTS=1 to skip these tests"
    );
}

/// A PostgreSQL server of its own, stopped when dropped.
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    child: Option<Child>,
    as_postgres: bool,
}

impl Postgres {
    /// Initialises a cluster (trust authentication, user `trawl`, database `trawl`) and starts
    /// it.
    pub fn start() -> Postgres {
        let bin = pg_bin().expect("postgres_available() first");
        let dir = tempfile::Builder::new()
            .prefix("trawl-pg")
            .tempdir()
            .expect("temp dir");
        let as_postgres = is_root();
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown of the PostgreSQL directory failed");
        }
        let data = dir.path().join("data");
        let log = dir.path().join("initdb.log");
        let out = std::fs::File::create(&log).expect("initdb log");
        let status = Self::command(&bin, "initdb", as_postgres)
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "trawl", "--no-sync", "-E", "UTF8"])
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .status()
            .expect("initdb");
        assert!(
            status.success(),
            "initdb failed:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        let mut pg = Postgres {
            dir,
            bin,
            port: free_port(),
            child: None,
            as_postgres,
        };
        pg.start_again();
        let status = Self::command(&pg.bin, "createdb", false)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &pg.port.to_string(),
                "-U",
                "trawl",
                "trawl",
            ])
            .status()
            .expect("createdb");
        assert!(status.success(), "createdb failed");
        pg
    }

    fn command(bin: &Path, program: &str, as_postgres: bool) -> Command {
        if as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(bin.join(program));
            c
        } else {
            Command::new(bin.join(program))
        }
    }

    /// `postgres://` URI of the `trawl` database.
    pub fn uri(&self) -> String {
        format!("postgres://trawl@127.0.0.1:{}/trawl", self.port)
    }

    /// Starts the server (again, after [`Postgres::stop`]) on the same port and data.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = self.dir.path().join("postgres.log");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("postgres log");
        let mut child = Self::command(&self.bin, "postgres", self.as_postgres)
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(self.dir.path())
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=50",
            ])
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .expect("postgres");
        wait_for_port(self.port, "postgres", &mut child, &log);
        // Listening is not accepting: after a restart the server says "starting up" until its
        // recovery is done. pg_isready answers 0 once connections are accepted.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not accept connections within 60 s:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child = Some(child);
    }

    /// Stops the server: a fast shutdown (SIGINT to the postmaster, whose pid is in
    /// `postmaster.pid`: `runuser` does not pass signals on), every connection cut.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid_file = self.dir.path().join("data").join("postmaster.pid");
            let pid = std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|s| s.lines().next().map(|l| l.trim().to_string()))
                .unwrap_or_else(|| child.id().to_string());
            let _ = Command::new("kill").args(["-INT", &pid]).status();
            let _ = child.wait();
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

fn s3_bin() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("S3S_FS_BIN") {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("s3s-fs"))
            .find(|p| p.exists())
    })
}

/// Whether the S3 tests can run; panics with instructions if not, unless skipped.
pub fn s3_available() -> bool {
    if s3_bin().is_some() {
        return true;
    }
    if std::env::var("SKIP_S3_TESTS").as_deref() == Ok("1") {
        eprintln!("S3 tests skipped: no s3s-fs");
        return false;
    }
    panic!(
        "no s3s-fs (an S3-protocol server): install it (cargo install s3s-fs@0.14.1 --locked \
         --features binary), set S3S_FS_BIN to its path, or set SKIP_S3_TESTS=1 to skip \
         these tests"
    );
}

/// Access key and secret of the test S3 server.
pub const S3_ACCESS_KEY: &str = "trawl-test-key";
pub const S3_SECRET_KEY: &str = "trawl-test-secret";
/// The bucket the test S3 server has.
pub const S3_BUCKET: &str = "trawl";

/// An S3-protocol server over a directory of its own, stopped when dropped.
pub struct S3Server {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    child: Option<Child>,
}

impl S3Server {
    /// Starts `s3s-fs` with the bucket [`S3_BUCKET`].
    pub fn start() -> S3Server {
        let bin = s3_bin().expect("s3_available() first");
        let dir = tempfile::Builder::new()
            .prefix("trawl-s3")
            .tempdir()
            .expect("temp dir");
        std::fs::create_dir_all(dir.path().join("root").join(S3_BUCKET)).expect("bucket");
        let mut s3 = S3Server {
            dir,
            bin,
            port: free_port(),
            child: None,
        };
        s3.start_again();
        s3
    }

    /// The endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The directory the objects are files in (`<bucket>/<key>`).
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// Starts the server (again, after [`S3Server::stop`]) on the same port and directory.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = self.dir.path().join("s3s.log");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("s3s log");
        let mut child = Command::new(&self.bin)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", S3_ACCESS_KEY, "--secret-key", S3_SECRET_KEY])
            .arg(self.root())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .expect("s3s-fs");
        wait_for_port(self.port, "s3s-fs", &mut child, &log);
        self.child = Some(child);
    }

    /// Stops the server (SIGKILL: as abrupt as a store going away).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}
