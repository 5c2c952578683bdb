//! Lines in the styles of the public loghub samples (HDFS, Apache error logs, Spark, OpenSSH,
//! Zookeeper, BGL), written by this generator from templates, as flat `logs` records of one
//! pod per system. Unlike the `logs` corpus, most of each record is free text with many
//! distinct tokens (block ids, IPs, hosts, ports), which is what makes real lines costlier to
//! index than the bench corpus.

use std::fmt::Write as _;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::zipf::Zipf;
use super::{push_json_str, Civil, LineSource, CORPUS_START_NS};

/// The systems, each one pod: (namespace, pod, container, weight in the mix).
const SYSTEMS: &[(&str, &str, &str, u32)] = &[
    ("hadoop", "hdfs-datanode-3", "datanode", 30),
    ("web", "apache-0", "httpd", 10),
    ("analytics", "spark-executor-7", "executor", 25),
    ("bastion", "sshd-0", "sshd", 15),
    ("coordination", "zookeeper-1", "zookeeper", 10),
    ("hpc", "bgl-ras-0", "ras", 10),
];

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];

/// Writes loghub-style records, deterministically from a seed.
pub struct LoghubGenerator {
    rng: StdRng,
    now_ns: i64,
    cumulative: Vec<u32>,
    users: Zipf,
    hosts: Zipf,
}

impl LoghubGenerator {
    pub fn new(seed: u64) -> LoghubGenerator {
        let mut total = 0;
        let cumulative = SYSTEMS
            .iter()
            .map(|s| {
                total += s.3;
                total
            })
            .collect();
        LoghubGenerator {
            rng: StdRng::seed_from_u64(seed ^ 0x6c6f_6768_7562),
            now_ns: CORPUS_START_NS,
            cumulative,
            users: Zipf::new(400, 1.1),
            hosts: Zipf::new(2000, 1.05),
        }
    }

    fn ip(&mut self) -> String {
        let h = self.hosts.sample(&mut self.rng) as u32;
        format!(
            "{}.{}.{}.{}",
            10 + h % 200,
            (h * 7) % 256,
            (h * 13) % 256,
            h % 251 + 1
        )
    }

    fn block(&mut self) -> String {
        let id: i64 = self
            .rng
            .random_range(-9_000_000_000_000_000_000..9_000_000_000_000_000_000);
        format!("blk_{id}")
    }

    /// One line of `system` at time `t`, and its level.
    fn line(&mut self, system: usize, t: &Civil) -> (String, &'static str) {
        let mut s = String::with_capacity(160);
        let r: u32 = self.rng.random_range(0..100);
        let level = match system {
            0 => {
                // HDFS: `081109 203615 148 INFO dfs.DataNode$PacketResponder: ...`
                let _ = write!(
                    s,
                    "{:02}{:02}{:02} {:02}{:02}{:02} {} ",
                    t.year % 100,
                    t.month,
                    t.day,
                    t.hour,
                    t.minute,
                    t.second,
                    self.rng.random_range(10..3000)
                );
                let block = self.block();
                let ip = self.ip();
                let port = self.rng.random_range(30000..60000);
                if r < 40 {
                    let size = self.rng.random_range(1000..67_108_864);
                    let _ = write!(s, "INFO dfs.DataNode$PacketResponder: Received block {block} of size {size} from /{ip}");
                } else if r < 70 {
                    let n = self.rng.random_range(0..3);
                    let _ = write!(s, "INFO dfs.DataNode$PacketResponder: PacketResponder {n} for block {block} terminating");
                } else if r < 90 {
                    let _ = write!(s, "INFO dfs.DataNode$DataXceiver: Receiving block {block} src: /{ip}:{port} dest: /{ip}:50010");
                } else if r < 98 {
                    let _ = write!(s, "INFO dfs.FSNamesystem: BLOCK* NameSystem.addStoredBlock: blockMap updated: {ip}:50010 is added to {block} size 67108864");
                } else {
                    let _ = write!(s, "WARN dfs.DataNode$DataXceiver: {ip}:50010:Got exception while serving {block} to /{ip}:");
                    return (s, "warn");
                }
                "info"
            }
            1 => {
                // Apache error log: `[Sun Dec 04 04:47:44 2005] [notice] ...`
                let _ = write!(
                    s,
                    "[{} {} {:02} {:02}:{:02}:{:02} {}] ",
                    DAYS[(t.day as usize) % 7],
                    MONTHS[(t.month as usize + 11) % 12],
                    t.day,
                    t.hour,
                    t.minute,
                    t.second,
                    t.year
                );
                if r < 45 {
                    let _ = write!(
                        s,
                        "[notice] jk2_init() Found child {} in scoreboard slot {}",
                        self.rng.random_range(1000..30000),
                        self.rng.random_range(1..12)
                    );
                    "info"
                } else if r < 80 {
                    s.push_str("[notice] workerEnv.init() ok /etc/httpd/conf/workers2.properties");
                    "info"
                } else {
                    let ip = self.ip();
                    let _ = write!(
                        s,
                        "[error] [client {ip}] Directory index forbidden by rule: /var/www/html/"
                    );
                    "error"
                }
            }
            2 => {
                // Spark: `17/06/09 20:10:40 INFO executor.CoarseGrainedExecutorBackend: ...`
                let _ = write!(
                    s,
                    "{:02}/{:02}/{:02} {:02}:{:02}:{:02} ",
                    t.year % 100,
                    t.month,
                    t.day,
                    t.hour,
                    t.minute,
                    t.second
                );
                let task = self.rng.random_range(0..5000);
                let stage = self.rng.random_range(0..200);
                if r < 35 {
                    let _ = write!(
                        s,
                        "INFO executor.Executor: Running task {task}.0 in stage {stage}.0 (TID {})",
                        task * 3 + stage
                    );
                } else if r < 65 {
                    let _ = write!(s, "INFO executor.Executor: Finished task {task}.0 in stage {stage}.0 (TID {}). {} bytes result sent to driver", task * 3 + stage, self.rng.random_range(900..3000));
                } else if r < 85 {
                    let _ = write!(
                        s,
                        "INFO storage.BlockManager: Found block rdd_{}_{task} locally",
                        self.rng.random_range(2..40)
                    );
                } else if r < 97 {
                    let _ = write!(s, "INFO storage.MemoryStore: Block broadcast_{stage} stored as values in memory (estimated size {}.0 KB, free {}.{} MB)", self.rng.random_range(1..400), self.rng.random_range(100..20000), self.rng.random_range(0..10));
                } else {
                    let _ = write!(
                        s,
                        "WARN storage.BlockManager: Putting block rdd_{stage}_{task} failed"
                    );
                    return (s, "warn");
                }
                "info"
            }
            3 => {
                // OpenSSH: `Dec 10 06:55:46 LabSZ sshd[24200]: ...`
                let _ = write!(
                    s,
                    "{} {:2} {:02}:{:02}:{:02} LabSZ sshd[{}]: ",
                    MONTHS[(t.month as usize + 11) % 12],
                    t.day,
                    t.hour,
                    t.minute,
                    t.second,
                    self.rng.random_range(1000..32000)
                );
                let ip = self.ip();
                let port = self.rng.random_range(1024..65535);
                let user = self.users.sample(&mut self.rng);
                if r < 30 {
                    let _ = write!(
                        s,
                        "Failed password for invalid user user{user} from {ip} port {port} ssh2"
                    );
                    "warn"
                } else if r < 50 {
                    let _ = write!(s, "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}  user=root");
                    "warn"
                } else if r < 70 {
                    let _ = write!(s, "Received disconnect from {ip}: 11: Bye Bye [preauth]");
                    "info"
                } else if r < 85 {
                    let _ = write!(s, "reverse mapping checking getaddrinfo for host-{user}.example.net [{ip}] failed - POSSIBLE BREAK-IN ATTEMPT!");
                    "warn"
                } else {
                    let _ = write!(s, "Accepted publickey for user{user} from {ip} port {port} ssh2: RSA SHA256:{:016x}", self.rng.random::<u64>());
                    "info"
                }
            }
            4 => {
                // Zookeeper: `2015-07-29 17:41:44,747 - INFO  [QuorumPeer[myid=1]/...] - ...`
                let _ = write!(
                    s,
                    "{:04}-{:02}-{:02} {:02}:{:02}:{:02},{:03} - ",
                    t.year,
                    t.month,
                    t.day,
                    t.hour,
                    t.minute,
                    t.second,
                    t.nanos / 1_000_000
                );
                let ip = self.ip();
                let session: u64 = self.rng.random();
                if r < 40 {
                    let _ = write!(s, "INFO  [NIOServerCxn.Factory:0.0.0.0/0.0.0.0:2181:NIOServerCnxnFactory@197] - Accepted socket connection from /{ip}:{}", self.rng.random_range(30000..60000));
                    "info"
                } else if r < 75 {
                    let _ = write!(s, "INFO  [SyncThread:1:ZooKeeperServer@595] - Established session 0x{session:x} with negotiated timeout 10000 for client /{ip}:{}", self.rng.random_range(30000..60000));
                    "info"
                } else if r < 95 {
                    let _ = write!(s, "WARN  [NIOServerCxn.Factory:0.0.0.0/0.0.0.0:2181:NIOServerCnxn@357] - caught end of stream exception EndOfStreamException: Unable to read additional data from client sessionid 0x{session:x}, likely client has closed socket");
                    "warn"
                } else {
                    let _ = write!(s, "ERROR [LearnerHandler-/{ip}:{}:LearnerHandler@562] - Unexpected exception causing shutdown while sock still open", self.rng.random_range(30000..60000));
                    "error"
                }
            }
            _ => {
                // BGL: `- 1117838570 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.50.675872 ...`
                let node = format!(
                    "R{:02}-M{}-N{}-C:J{:02}-U{:02}",
                    self.rng.random_range(0..80),
                    self.rng.random_range(0..2),
                    self.rng.random_range(0..16),
                    self.rng.random_range(2..18),
                    self.rng.random_range(1..12)
                );
                let epoch = self.now_ns / 1_000_000_000;
                let _ = write!(
                    s,
                    "- {epoch} {:04}.{:02}.{:02} {node} {:04}-{:02}-{:02}-{:02}.{:02}.{:02}.{:06} {node} RAS KERNEL ",
                    t.year, t.month, t.day, t.year, t.month, t.day, t.hour, t.minute, t.second, t.nanos / 1000
                );
                if r < 60 {
                    s.push_str("INFO instruction cache parity error corrected");
                    "info"
                } else if r < 85 {
                    let _ = write!(s, "INFO generating core.{}", self.rng.random_range(1..9000));
                    "info"
                } else {
                    let _ = write!(
                        s,
                        "FATAL data TLB error interrupt at 0x{:08x}",
                        self.rng.random::<u32>()
                    );
                    "fatal"
                }
            }
        };
        (s, level)
    }
}

impl LineSource for LoghubGenerator {
    fn next_line(&mut self, out: &mut Vec<u8>) {
        self.now_ns += self.rng.random_range(100_000..2_000_000);
        let pick = self
            .rng
            .random_range(0..*self.cumulative.last().unwrap_or(&1));
        let system = self.cumulative.iter().position(|&c| pick < c).unwrap_or(0);
        let t = Civil::from_nanos(self.now_ns);
        let (message, level) = self.line(system, &t);
        let (namespace, pod, container, _) = SYSTEMS[system];
        out.extend_from_slice(b"{\"timestamp\":\"");
        t.rfc3339_nanos(out);
        out.extend_from_slice(b"\",\"cluster\":\"bench\",\"node\":\"node-");
        out.extend_from_slice((system + 1).to_string().as_bytes());
        out.extend_from_slice(b"\",\"namespace\":");
        push_json_str(out, namespace);
        out.extend_from_slice(b",\"pod\":");
        push_json_str(out, pod);
        out.extend_from_slice(b",\"container\":");
        push_json_str(out, container);
        out.extend_from_slice(b",\"stream\":\"stdout\",\"level\":\"");
        out.extend_from_slice(level.as_bytes());
        out.extend_from_slice(b"\",\"message\":");
        push_json_str(out, &message);
        out.extend_from_slice(b"}\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bytes_and_every_system_in_the_mix() {
        let lines = |seed| {
            let mut g = LoghubGenerator::new(seed);
            let mut out = Vec::new();
            for _ in 0..2000 {
                g.next_line(&mut out);
            }
            out
        };
        let a = lines(7);
        assert_eq!(a, lines(7));
        assert_ne!(a, lines(8));
        let text = String::from_utf8(a).unwrap();
        for (_, pod, _, _) in SYSTEMS {
            assert!(text.contains(pod), "{pod} missing");
        }
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(
                v["message"].as_str().is_some_and(|m| m.len() > 20),
                "{line}"
            );
        }
        assert!(text.contains("dfs.DataNode$PacketResponder"));
        assert!(text.contains("POSSIBLE BREAK-IN ATTEMPT!"));
        assert!(text.contains("RAS KERNEL"));
    }
}
