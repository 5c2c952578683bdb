//! Property test of the tailer against a simple model: whatever sequence of writes, rotations
//! (rename and copytruncate) and restarts happens, every complete line is delivered once.

use proptest::prelude::*;

use super::fake::*;

#[derive(Debug, Clone)]
enum Op {
    Write { pod: usize, lines: usize, mode: u8 },
    Rename { pod: usize },
    CopyTruncate { pod: usize },
    Crash,
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0..2usize, 1..15usize, 0..3u8).prop_map(|(pod, lines, mode)| Op::Write { pod, lines, mode }),
        2 => (0..2usize).prop_map(|pod| Op::Rename { pod }),
        2 => (0..2usize).prop_map(|pod| Op::CopyTruncate { pod }),
        1 => Just(Op::Crash),
        1 => Just(Op::Restart),
    ]
}

async fn run(ops: Vec<Op>) {
    let root = tempfile::tempdir().unwrap();
    let (index, addr) = start_indexer().await;
    let cfg = config(root.path());
    let mut pods = vec![
        PodLog::new(&cfg.collector.pods_dir, "a", "p0", "u0", "c"),
        PodLog::new(&cfg.collector.pods_dir, "b", "p1", "u1", "c"),
    ];
    let mut seq = 0;
    let mut n = 0;
    let mut handle = Some(start(&cfg, addr).await);
    for op in ops {
        match op {
            Op::Write { pod, lines, mode } => {
                for _ in 0..lines {
                    n += 1;
                    let mode = match mode {
                        0 => WriteMode::Whole,
                        1 => WriteMode::Fragments,
                        _ => WriteMode::SplitWrite,
                    };
                    pods[pod].write(&mut seq, &format!("line {n} of {pod}"), mode);
                }
            }
            Op::Rename { pod } => pods[pod].rotate_rename(),
            Op::CopyTruncate { pod } => pods[pod].copytruncate(),
            Op::Crash => {
                if let Some(h) = handle.take() {
                    h.kill().await;
                }
                handle = Some(start(&cfg, addr).await);
            }
            Op::Restart => {
                if let Some(h) = handle.take() {
                    h.shutdown().await;
                }
                handle = Some(start(&cfg, addr).await);
            }
        }
    }
    wait_for_all(&index, &pods).await;
    if let Some(h) = handle.take() {
        h.shutdown().await;
    }
    assert_exactly_once(&index, &pods);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn every_complete_line_is_delivered_once(ops in prop::collection::vec(op(), 1..12)) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(run(ops));
    }
}
