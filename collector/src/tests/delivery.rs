//! Exactly-once delivery of container logs through rotations, restarts and outages.

use std::time::Duration;

use super::fake::*;

fn message(p: usize, n: usize) -> String {
    // Leading and trailing spaces must survive untouched.
    format!(" p{p}-{n:05} {} ", "x".repeat(n % 13))
}

fn mode(n: usize) -> WriteMode {
    match n % 7 {
        0 => WriteMode::Fragments,
        3 => WriteMode::SplitWrite,
        _ => WriteMode::Whole,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_through_rotations_and_restarts() {
    let root = tempfile::tempdir().unwrap();
    let (index, addr) = start_indexer().await;
    let cfg = config(root.path());
    let pods_dir = cfg.collector.pods_dir.clone();
    let mut pods = vec![
        PodLog::new(&pods_dir, "shop", "web-0", "uid-0", "app"),
        PodLog::new(&pods_dir, "shop", "web-1", "uid-1", "app"),
        PodLog::new(&pods_dir, "kube-system", "dns-0", "uid-2", "coredns"),
    ];
    let mut seq = 0;
    let mut handle = start(&cfg, addr).await;
    for round in 0..6 {
        for i in 0..60 {
            let n = round * 60 + i;
            for (p, pod) in pods.iter_mut().enumerate() {
                pod.write(&mut seq, &message(p, n), mode(n));
            }
            if i % 20 == 19 {
                for (p, pod) in pods.iter_mut().enumerate() {
                    if (round + p + i) % 2 == 0 {
                        pod.rotate_rename();
                    } else {
                        pod.copytruncate();
                    }
                }
            }
            if i % 10 == 0 {
                // Pacing only: lets the follower interleave with the writer.
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        }
        if round == 2 {
            handle.kill().await;
            handle = start(&cfg, addr).await;
        }
        if round == 4 {
            handle.shutdown().await;
            handle = start(&cfg, addr).await;
        }
    }
    wait_for_all(&index, &pods).await;
    handle.shutdown().await;
    assert_exactly_once(&index, &pods);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexer_outage_is_buffered_on_disk_then_delivered() {
    let root = tempfile::tempdir().unwrap();
    let (index, addr) = start_indexer().await;
    index.lock().unwrap().unavailable = true;
    let cfg = config(root.path());
    let pods_dir = cfg.collector.pods_dir.clone();
    let mut pods = vec![
        PodLog::new(&pods_dir, "shop", "web-0", "uid-0", "app"),
        PodLog::new(&pods_dir, "billing", "api-0", "uid-1", "api"),
    ];
    let mut seq = 0;
    let mut handle = start(&cfg, addr).await;
    for n in 0..150 {
        for (p, pod) in pods.iter_mut().enumerate() {
            pod.write(&mut seq, &message(p, n), mode(n));
        }
    }
    let buffered = handle.metrics().buffer_bytes.clone();
    wait_for("batches in the disk buffer", || buffered.get() > 0).await;
    wait_for("refused deliveries", || {
        index.lock().unwrap().refused_while_unavailable > 0
    })
    .await;
    // A crash during the outage: the buffered batches are sent first after the restart.
    handle.kill().await;
    let buffer_dir = cfg.collector_data_dir().join("buffer");
    assert!(std::fs::read_dir(&buffer_dir).unwrap().count() > 0);
    handle = start(&cfg, addr).await;
    for n in 150..300 {
        for (p, pod) in pods.iter_mut().enumerate() {
            pod.write(&mut seq, &message(p, n), mode(n));
        }
    }
    assert_eq!(count(&index), 0);
    index.lock().unwrap().unavailable = false;
    wait_for_all(&index, &pods).await;
    let buffered = handle.metrics().buffer_bytes.clone();
    wait_for("an empty buffer", || buffered.get() == 0).await;
    handle.shutdown().await;
    assert_exactly_once(&index, &pods);
    assert_eq!(std::fs::read_dir(&buffer_dir).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_index_data_is_resent_from_the_mark() {
    let root = tempfile::tempdir().unwrap();
    let (index, addr) = start_indexer().await;
    let cfg = config(root.path());
    let mut pod = PodLog::new(&cfg.collector.pods_dir, "shop", "web-0", "uid-0", "app");
    let mut seq = 0;
    let handle = start(&cfg, addr).await;
    for n in 0..50 {
        pod.write(&mut seq, &message(0, n), WriteMode::Whole);
    }
    wait_for("first records", || count(&index) >= 50).await;
    // The indexer loses everything (its marks too): the next batch is a gap from 0.
    {
        let mut i = index.lock().unwrap();
        i.marks.clear();
        i.records.clear();
    }
    for n in 50..60 {
        pod.write(&mut seq, &message(0, n), WriteMode::Whole);
    }
    wait_for("everything resent", || count(&index) >= 60).await;
    handle.shutdown().await;
    assert!(index.lock().unwrap().conflicts > 0);
    assert_exactly_once(&index, std::slice::from_ref(&pod));
}

/// Redaction masks secrets before records leave the node, and a namespace over its rate limit is
/// held back (counted) rather than dropped: every line arrives once. (The rate itself is
/// measured on a fake clock by `follower::tests::a_rate_limited_namespace_is_read_at_exactly_its_rate`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redaction_masks_secrets_and_rate_limits_hold_back_without_dropping() {
    let root = tempfile::tempdir().unwrap();
    let (index, addr) = start_indexer().await;
    let mut cfg = config(root.path());
    cfg.collector.redact = vec![trawl_config::RedactRule {
        name: "password".into(),
        pattern: r"(password=)\S+".into(),
        replacement: "${1}[REDACTED]".into(),
    }];
    cfg.collector.rate_limits = vec![trawl_config::RateLimit {
        namespace: "noisy-*".into(),
        lines_per_sec: 200,
        burst: 20,
    }];
    let pods_dir = cfg.collector.pods_dir.clone();
    let mut noisy = PodLog::new(&pods_dir, "noisy-batch", "job-0", "uid-n", "worker");
    let mut shop = PodLog::new(&pods_dir, "shop", "web-0", "uid-s", "app");
    let mut seq = 0;
    for n in 0..400 {
        noisy.write(&mut seq, &format!("tick {n:04}"), WriteMode::Whole);
    }
    for n in 0..50 {
        shop.write(
            &mut seq,
            &format!("login {n:02} user=ann password=hunter{n} ok"),
            WriteMode::Whole,
        );
    }
    let handle = start(&cfg, addr).await;
    let records = |ns: &str| -> Vec<String> {
        let index = index.lock().unwrap();
        let mut messages: Vec<String> = index
            .records
            .get("logs")
            .into_iter()
            .flatten()
            .filter(|r| r["namespace"] == ns)
            .map(|r| r["message"].as_str().unwrap().to_string())
            .collect();
        messages.sort();
        messages
    };
    wait_for("every shop line", || records("shop").len() >= 50).await;
    wait_for("every noisy line", || records("noisy-batch").len() >= 400).await;
    let limited = handle.metrics().rate_limited_records.get();
    handle.shutdown().await;

    let expected_shop: Vec<String> = (0..50)
        .map(|n| format!("login {n:02} user=ann password=[REDACTED] ok"))
        .collect();
    assert_eq!(records("shop"), expected_shop);
    let expected_noisy: Vec<String> = (0..400).map(|n| format!("tick {n:04}")).collect();
    assert_eq!(records("noisy-batch"), expected_noisy);
    // 400 lines against a bucket of 20 refilled at 200/s: some had to wait, each counted once
    // (how many depends on how often the follower came back, not on the limit), and never the
    // first 20, which the full bucket let through.
    assert!(
        (1..=380).contains(&limited),
        "rate-limited records counted: {limited}"
    );
}
