//! Batches the indexer refuses: kept and retried while the refusal may pass (the collector
//! turning unready meanwhile), split after a 413, and what can never be taken in the
//! dead-letter file before the checkpoint moves past it.

use axum::http::StatusCode;

use super::fake::*;

fn dead_letters(root: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(root.join("data/collector/dead-letter/dead-letter.ndjson"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn refused(handle: &crate::CollectorHandle, status: &str) -> u64 {
    handle
        .metrics()
        .batches_refused
        .get_or_create(&vec![("status".to_string(), status.to_string())])
        .get()
}

/// Regression: a 404 (a wrong URL) used to drop every batch and advance the checkpoints. Now
/// nothing is acknowledged while it lasts, readiness fails after `stuck_ready_after_secs`,
/// and once the indexer answers every line arrives exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_refused_with_404_are_kept_until_the_indexer_takes_them() {
    let root = tempfile::tempdir().unwrap();
    let (index, addr) = start_indexer().await;
    index.lock().unwrap().refuse_with = Some(StatusCode::NOT_FOUND);
    let mut cfg = config(root.path());
    cfg.collector.stuck_ready_after_secs = 1;
    let mut pod = PodLog::new(&cfg.collector.pods_dir, "shop", "web-0", "uid-0", "app");
    let mut seq = 0;
    for n in 0..300 {
        pod.write(&mut seq, &format!("line {n:04}"), WriteMode::Whole);
    }
    let handle = start(&cfg, addr).await;
    let readiness = handle.readiness();
    assert!(readiness.is_ready());
    wait_for("refusals", || refused(&handle, "404") >= 3).await;
    wait_for("unready after a second stuck", || !readiness.is_ready()).await;
    wait_for("the time stuck published", || {
        handle.metrics().stuck_seconds.get() >= 1
    })
    .await;
    assert_eq!(count(&index), 0);
    assert_eq!(handle.metrics().records_shipped.get(), 0);

    index.lock().unwrap().refuse_with = None;
    wait_for_all(&index, std::slice::from_ref(&pod)).await;
    wait_for("ready again", || readiness.is_ready()).await;
    assert_eq!(handle.metrics().stuck_seconds.get(), 0);
    handle.shutdown().await;
    assert_exactly_once(&index, std::slice::from_ref(&pod));
    assert!(dead_letters(root.path()).is_empty());
}

/// The same for a collector restarted while refused: what it read is in its buffer and
/// checkpoints, none of it given up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_while_refused_loses_nothing() {
    let root = tempfile::tempdir().unwrap();
    let (index, addr) = start_indexer().await;
    index.lock().unwrap().refuse_with = Some(StatusCode::BAD_REQUEST);
    let cfg = config(root.path());
    let mut pod = PodLog::new(&cfg.collector.pods_dir, "shop", "web-0", "uid-0", "app");
    let mut seq = 0;
    for n in 0..200 {
        pod.write(&mut seq, &format!("line {n:04}"), WriteMode::Whole);
    }
    let handle = start(&cfg, addr).await;
    wait_for("refusals", || index.lock().unwrap().refused >= 3).await;
    handle.shutdown().await;
    for n in 200..300 {
        pod.write(&mut seq, &format!("line {n:04}"), WriteMode::Whole);
    }
    index.lock().unwrap().refuse_with = None;
    let handle = start(&cfg, addr).await;
    wait_for_all(&index, std::slice::from_ref(&pod)).await;
    handle.shutdown().await;
    assert_exactly_once(&index, std::slice::from_ref(&pod));
}

/// A deterministic incompressible text of `len` letters.
fn noise(len: usize, seed: u64) -> String {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            char::from(b'a' + ((x >> 33) % 26) as u8)
        })
        .collect()
}

/// A 413 splits the batch in halves until the parts pass; a record still too large alone goes
/// to the dead-letter file (with its source, offset and reason), and the lines after it in the
/// same file are indexed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_large_batches_are_split_and_a_record_too_large_alone_is_dead_lettered() {
    let root = tempfile::tempdir().unwrap();
    let (index, addr) = start_indexer().await;
    index.lock().unwrap().max_body_bytes = Some(4096);
    let cfg = config(root.path());
    let mut pod = PodLog::new(&cfg.collector.pods_dir, "shop", "web-0", "uid-0", "app");
    let mut other = PodLog::new(&cfg.collector.pods_dir, "shop", "web-1", "uid-1", "app");
    let mut seq = 0;
    for n in 0..400 {
        pod.write(
            &mut seq,
            &format!("line {n:04} {}", noise(40, n)),
            WriteMode::Whole,
        );
        other.write(&mut seq, &format!("other {n:04}"), WriteMode::Whole);
        if n == 150 {
            let huge = format!("huge {}", noise(12_000, 7));
            pod.write(&mut seq, &huge, WriteMode::Whole);
            pod.expected.pop();
        }
    }
    let handle = start(&cfg, addr).await;
    wait_for_all(&index, &[pod, other]).await;
    wait_for("the dead letter", || {
        handle
            .metrics()
            .dead_letter_records
            .get_or_create(&vec![(
                "reason".to_string(),
                "payload_too_large".to_string(),
            )])
            .get()
            == 1
    })
    .await;
    assert!(handle.metrics().batches_split.get() >= 2);
    assert!(index.lock().unwrap().too_large >= 2);
    handle.shutdown().await;
    // Nothing more arrived after the wait: no duplicate of a part.
    assert_eq!(count(&index), 800);

    let dead = dead_letters(root.path());
    assert_eq!(dead.len(), 1, "{dead:?}");
    let d = &dead[0];
    assert_eq!(d["stream"], "logs");
    assert!(
        d["file"]
            .as_str()
            .unwrap()
            .ends_with("web-0_uid-0/app/0.log"),
        "{d}"
    );
    assert!(
        d["reason"]
            .as_str()
            .unwrap()
            .starts_with("payload_too_large: "),
        "{d}"
    );
    let raw: serde_json::Value = serde_json::from_str(d["raw"].as_str().unwrap()).unwrap();
    assert!(raw["message"].as_str().unwrap().starts_with("huge "));
    assert_eq!(raw["offset"], d["offset"]);
    assert!(d["time"].as_str().unwrap().ends_with('Z'));
}

/// Lines the indexer rejects by line number are acknowledged with the rest and kept in the
/// dead-letter file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_rejected_by_number_go_to_the_dead_letter_file() {
    let root = tempfile::tempdir().unwrap();
    let (index, addr) = start_indexer().await;
    index.lock().unwrap().reject_containing = Some("poison".into());
    let cfg = config(root.path());
    let mut pod = PodLog::new(&cfg.collector.pods_dir, "shop", "web-0", "uid-0", "app");
    let mut seq = 0;
    for n in 0..100 {
        let text = if n % 25 == 3 {
            format!("poison {n:04}")
        } else {
            format!("line {n:04}")
        };
        pod.write(&mut seq, &text, WriteMode::Whole);
        if n % 25 == 3 {
            pod.expected.pop();
        }
    }
    let handle = start(&cfg, addr).await;
    wait_for_all(&index, std::slice::from_ref(&pod)).await;
    wait_for("four dead letters", || dead_letters(root.path()).len() == 4).await;
    handle.shutdown().await;
    assert_exactly_once(&index, std::slice::from_ref(&pod));
    let messages: Vec<String> = dead_letters(root.path())
        .iter()
        .map(|d| {
            assert_eq!(d["reason"], "rejected by the indexer: poisoned");
            let raw: serde_json::Value = serde_json::from_str(d["raw"].as_str().unwrap()).unwrap();
            raw["message"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        messages,
        vec!["poison 0003", "poison 0028", "poison 0053", "poison 0078"]
    );
}

/// With `indexer_urls`, the node ships to the first indexer of its own order; once that one
/// has refused for `failover_after_secs`, batches go to the next, each line exactly once (the
/// fake indexers keep no marks: nothing was acknowledged by the first, so nothing is resent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_indexer_refusing_past_failover_after_is_left_for_the_next() {
    let root = tempfile::tempdir().unwrap();
    let (a, a_addr) = start_indexer().await;
    let (b, b_addr) = start_indexer().await;
    let urls = vec![format!("http://{a_addr}"), format!("http://{b_addr}")];
    let mut cfg = config(root.path());
    cfg.collector.indexer_urls = urls.clone();
    cfg.collector.failover_after_secs = 1;
    // node-1's order of the two.
    let (first, second, second_addr) = if crate::ship::indexer_order("node-1", &urls)[0] == urls[0]
    {
        (a, b, b_addr)
    } else {
        (b, a, a_addr)
    };
    first.lock().unwrap().refuse_with = Some(StatusCode::SERVICE_UNAVAILABLE);
    let mut pod = PodLog::new(&cfg.collector.pods_dir, "shop", "web-0", "uid-0", "app");
    let mut seq = 0;
    for n in 0..300 {
        pod.write(&mut seq, &format!("line {n:04}"), WriteMode::Whole);
    }
    // The URL given is what standalone would pass; `indexer_urls` wins.
    let handle = start(&cfg, second_addr).await;
    wait_for("refusals by the first", || {
        first.lock().unwrap().refused >= 2
    })
    .await;
    wait_for_all(&second, std::slice::from_ref(&pod)).await;
    assert_eq!(handle.metrics().failovers.get(), 1);
    assert_eq!(count(&first), 0);
    // It stays with the second once the first answers again.
    first.lock().unwrap().refuse_with = None;
    for n in 300..400 {
        pod.write(&mut seq, &format!("line {n:04}"), WriteMode::Whole);
    }
    wait_for_all(&second, std::slice::from_ref(&pod)).await;
    assert_eq!(handle.metrics().failovers.get(), 1);
    handle.shutdown().await;
    assert_exactly_once(&second, std::slice::from_ref(&pod));
    assert_eq!(count(&first), 0);
}

#[test]
fn nodes_spread_over_the_indexers_and_keep_their_order() {
    let urls: Vec<String> = (0..3).map(|i| format!("http://indexer-{i}:7400")).collect();
    let mut first = [0usize; 3];
    for n in 0..300 {
        let node = format!("node-{n}");
        let order = crate::ship::indexer_order(&node, &urls);
        assert_eq!(order, crate::ship::indexer_order(&node, &urls), "stable");
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(sorted, urls, "every indexer once");
        first[urls.iter().position(|u| *u == order[0]).unwrap()] += 1;
        // Without indexer-2, the others keep their relative order.
        let without: Vec<String> = urls[..2].to_vec();
        let expected: Vec<String> = order
            .iter()
            .filter(|u| without.contains(u))
            .cloned()
            .collect();
        assert_eq!(crate::ship::indexer_order(&node, &without), expected);
    }
    // 300 nodes over 3 indexers: each gets a fair share.
    assert!(first.iter().all(|&n| (70..=130).contains(&n)), "{first:?}");
}
