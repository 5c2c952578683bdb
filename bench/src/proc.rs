//! Child `trawl` processes and what `/proc` says about them (CPU time, resident memory).
//! A [`TrawlChild`] is killed when dropped, so that a failing scenario leaves nothing running.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::{Error, Result};

/// Locates the `trawl` binary: `$TRAWL_BIN`, else `$CARGO_TARGET_DIR/release/trawl`, else the
/// workspace's `target/release/trawl`.
pub fn trawl_binary() -> Result<PathBuf> {
    if let Ok(bin) = std::env::var("TRAWL_BIN") {
        let path = PathBuf::from(bin);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(Error::MissingBinary {
                tried: path.display().to_string(),
            })
        };
    }
    let target = match std::env::var("CARGO_TARGET_DIR") {
        Ok(dir) => PathBuf::from(dir),
        Err(_) => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
    };
    let path = target.join("release").join("trawl");
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::MissingBinary {
            tried: path.display().to_string(),
        })
    }
}

/// Stderr lines kept for error messages.
const STDERR_TAIL: usize = 40;

/// A running `trawl` process that printed the address it listens on.
pub struct TrawlChild {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
}

impl TrawlChild {
    /// Starts `bin args...` with `envs` and waits (up to `timeout`) for the line
    /// `trawl listening on http://...` on its stdout. Errors: the process could not start, or
    /// exited or stayed silent; the message carries the end of its stderr.
    pub fn start(
        bin: &Path,
        args: &[&str],
        envs: &[(String, String)],
        timeout: Duration,
    ) -> Result<TrawlChild> {
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // The bench's own variable, not a configuration key: the child would refuse it.
            .env_remove("TRAWL_BIN");
        // Quiet by default: per-request logging would cost the child CPU we are measuring.
        if std::env::var_os("TRAWL_LOG").is_none() {
            cmd.env("TRAWL_LOG", "warn");
        }
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::Child(format!("starting {}: {e}", bin.display())))?;
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(stderr) = child.stderr.take() {
            let tail = Arc::clone(&stderr_tail);
            std::thread::spawn(move || drain_lines(stderr, &tail));
        }
        let (tx, rx) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || {
                let mut sent = false;
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if !sent {
                        if let Some(url) = line.strip_prefix("trawl listening on ") {
                            let _ = tx.send(url.trim().to_string());
                            sent = true;
                        }
                    }
                }
            });
        }
        let mut this = TrawlChild {
            child,
            url: String::new(),
            stderr_tail,
        };
        match rx.recv_timeout(timeout) {
            Ok(url) => {
                this.url = url;
                Ok(this)
            }
            Err(_) => {
                std::thread::sleep(Duration::from_millis(200));
                let status = this.child.try_wait().ok().flatten();
                Err(Error::Child(format!(
                    "{} {} did not print its address ({}); stderr: {}",
                    bin.display(),
                    args.join(" "),
                    status.map_or("still running".to_string(), |s| s.to_string()),
                    this.stderr_tail()
                )))
            }
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The last lines the child wrote to stderr, joined by ` | `.
    pub fn stderr_tail(&self) -> String {
        self.stderr_tail
            .lock()
            .map(|t| t.iter().cloned().collect::<Vec<_>>().join(" | "))
            .unwrap_or_default()
    }

    /// User plus system CPU seconds the child has used so far.
    pub fn cpu_secs(&self) -> Result<f64> {
        cpu_secs_of(&format!("/proc/{}/stat", self.pid()))
    }

    /// The child's resident memory now and at its peak.
    pub fn memory(&self) -> Result<Memory> {
        memory_of(&format!("/proc/{}/status", self.pid()))
    }
}

impl Drop for TrawlChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn drain_lines<R: Read>(reader: R, tail: &Mutex<VecDeque<String>>) {
    for line in BufReader::new(reader).lines() {
        let Ok(line) = line else { break };
        if let Ok(mut t) = tail.lock() {
            if t.len() == STDERR_TAIL {
                t.pop_front();
            }
            t.push_back(line);
        }
    }
}

/// Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`, 100 if unknown).
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// CPU seconds (utime + stime) from a `/proc/<pid>/stat` file.
pub fn cpu_secs_of(stat_path: &str) -> Result<f64> {
    let text =
        std::fs::read_to_string(stat_path).map_err(|e| Error::path(Path::new(stat_path), e))?;
    parse_stat_cpu(&text)
        .map(|ticks| ticks as f64 / clock_ticks())
        .ok_or_else(|| Error::Protocol {
            what: stat_path.to_string(),
            detail: "no utime/stime".to_string(),
        })
}

/// This process's CPU seconds.
pub fn self_cpu_secs() -> Result<f64> {
    cpu_secs_of("/proc/self/stat")
}

/// utime + stime in ticks: fields 14 and 15, counted after the `)` that ends the command name
/// (which may itself hold spaces).
fn parse_stat_cpu(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state), so field n is at index n - 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Resident memory of a process, KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_kib: u64,
    /// `VmHWM`: the peak resident size so far.
    pub hwm_kib: u64,
    /// `RssAnon`: resident anonymous memory now (the heap and stacks, not mapped files).
    pub anon_kib: u64,
}

/// Samples a process's `RssAnon` every 50 ms on a thread of its own until dropped; the peak
/// seen (the kernel keeps a peak of the whole resident size only, which counts mapped index
/// files too).
pub struct AnonPeak {
    peak: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl AnonPeak {
    pub fn start(pid: u32) -> AnonPeak {
        use std::sync::atomic::Ordering;
        let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = {
            let (peak, stop) = (peak.clone(), stop.clone());
            std::thread::spawn(move || {
                let path = format!("/proc/{pid}/status");
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(m) = memory_of(&path) {
                        peak.fetch_max(m.anon_kib, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        };
        AnonPeak {
            peak,
            stop,
            thread: Some(thread),
        }
    }

    /// The peak `RssAnon` so far, KiB.
    pub fn peak_kib(&self) -> u64 {
        self.peak.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for AnonPeak {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The memory figures of a `/proc/<pid>/status` file.
pub fn memory_of(path: &str) -> Result<Memory> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::path(Path::new(path), e))?;
    Ok(parse_status_memory(&text))
}

fn parse_status_memory(text: &str) -> Memory {
    let mut m = Memory::default();
    for line in text.lines() {
        let value = |rest: &str| {
            rest.split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        if let Some(rest) = line.strip_prefix("VmRSS:") {
            m.rss_kib = value(rest);
        } else if let Some(rest) = line.strip_prefix("VmHWM:") {
            m.hwm_kib = value(rest);
        } else if let Some(rest) = line.strip_prefix("RssAnon:") {
            m.anon_kib = value(rest);
        }
    }
    m
}

/// Total size of the files under `dir`, bytes (0 for a missing directory).
pub fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

/// Cores of this machine (`available_parallelism`, 1 if unknown).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_cpu_with_spaces_in_name() {
        let stat =
            "1234 (trawl (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 10 0 0";
        assert_eq!(parse_stat_cpu(stat), Some(300));
        assert_eq!(parse_stat_cpu("garbage"), None);
    }

    #[test]
    fn status_memory() {
        let status =
            "Name:\ttrawl\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\nRssAnon:\t    4096 kB\n";
        assert_eq!(
            parse_status_memory(status),
            Memory {
                rss_kib: 10240,
                hwm_kib: 20480,
                anon_kib: 4096,
            }
        );
    }

    #[test]
    fn own_cpu_is_readable() {
        assert!(self_cpu_secs().unwrap() >= 0.0);
    }
}
