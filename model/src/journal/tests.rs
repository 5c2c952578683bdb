//! `journalctl -o json` entries (kubelet, containerd, the kernel's OOM killer) and flat
//! documents.

use serde_json::json;

use super::*;

fn parse(value: serde_json::Value) -> Result<JournalEntry> {
    parse_journal_line(value.to_string().as_bytes())
}

/// The kernel's OOM killer, as `journalctl -k -o json` prints it (no unit, no pid).
fn oom() -> serde_json::Value {
    json!({
        "__CURSOR": "s=5b1e0c;i=1a2b;b=9f8e7d6c;m=3c4d5e;t=5f6a7b8c9d0e1;x=7c8d9e0f",
        "__REALTIME_TIMESTAMP": "1795601700123456",
        "__MONOTONIC_TIMESTAMP": "91234567890",
        "_BOOT_ID": "9f8e7d6c5b4a39281706f5e4d3c2b1a0",
        "_TRANSPORT": "kernel",
        "PRIORITY": "3",
        "SYSLOG_FACILITY": "0",
        "SYSLOG_IDENTIFIER": "kernel",
        "MESSAGE": "Memory cgroup out of memory: Killed process 4242 (java) total-vm:4194304kB",
        "_HOSTNAME": "node-3",
        "_MACHINE_ID": "0123456789abcdef0123456789abcdef"
    })
}

#[test]
fn a_kernel_oom_kill_maps_onto_the_stream_fields() {
    assert_eq!(
        parse(oom()).unwrap(),
        JournalEntry {
            timestamp: Some(Timestamp(1_795_601_700_123_456_000)),
            cluster: String::new(),
            node: "node-3".into(),
            unit: String::new(),
            identifier: "kernel".into(),
            pid: None,
            priority: Some(3),
            level: "error".into(),
            message: "Memory cgroup out of memory: Killed process 4242 (java) total-vm:4194304kB"
                .into(),
            boot_id: "9f8e7d6c5b4a39281706f5e4d3c2b1a0".into(),
            cursor: "s=5b1e0c;i=1a2b;b=9f8e7d6c;m=3c4d5e;t=5f6a7b8c9d0e1;x=7c8d9e0f".into(),
        }
    );
}

#[test]
fn a_kubelet_entry_with_a_binary_message_and_a_stamped_node() {
    let entry = parse(json!({
        "__CURSOR": "s=1;i=2", "__REALTIME_TIMESTAMP": "1795601700000000",
        "PRIORITY": "4", "_PID": "812", "_SYSTEMD_UNIT": "kubelet.service",
        "SYSLOG_IDENTIFIER": "kubelet", "_HOSTNAME": "ip-10-0-0-12",
        // "probe fail\xff" as journalctl writes text that is not UTF-8.
        "MESSAGE": [112, 114, 111, 98, 101, 32, 102, 97, 105, 108, 255],
        "node": "node-1", "cluster": "prod"
    }))
    .unwrap();
    assert_eq!(entry.unit, "kubelet.service");
    assert_eq!(entry.pid, Some(812));
    assert_eq!(entry.level, "warn");
    assert_eq!(entry.message, "probe fail\u{fffd}");
    assert_eq!(entry.node, "node-1", "the stamped node wins over _HOSTNAME");
    assert_eq!(entry.cluster, "prod");
    assert_eq!(entry.dedup_key().unwrap(), "s=1;i=2");
}

#[test]
fn priorities_map_to_levels() {
    let levels: Vec<Option<&str>> = (-1..=8).map(level_of_priority).collect();
    assert_eq!(
        levels,
        [
            None,
            Some("fatal"),
            Some("fatal"),
            Some("fatal"),
            Some("error"),
            Some("warn"),
            Some("info"),
            Some("info"),
            Some("debug"),
            None
        ]
    );
}

#[test]
fn flat_documents_round_trip_and_bad_entries_say_why() {
    let entry = parse(oom()).unwrap();
    let flat = serde_json::to_value(&entry).unwrap();
    assert_eq!(flat["level"], "error");
    assert_eq!(parse(flat).unwrap(), entry);
    let flat =
        parse(json!({"message": "started", "unit": "containerd.service", "level": "WARNING"}))
            .unwrap();
    assert_eq!(flat.level, "warn");
    assert_eq!(flat.timestamp, None);

    let mut bad = oom();
    bad["PRIORITY"] = json!("9");
    assert!(parse(bad)
        .unwrap_err()
        .to_string()
        .contains("`priority` must be 0 to 7"));
    let mut bad = oom();
    bad["_PID"] = json!("abc");
    assert!(parse(bad)
        .unwrap_err()
        .to_string()
        .contains("`_PID` must be an integer"));
    let mut bad = oom();
    bad["MESSAGE"] = json!([1, 300]);
    assert!(parse(bad).unwrap_err().to_string().contains("`MESSAGE`"));
    assert!(parse(json!({"mesage": "x"}))
        .unwrap_err()
        .to_string()
        .contains("mesage"));
    assert!(parse_journal_line(b"[1]").is_err());
}
