//! An ingest answer never rests on a WAL write that is still queued: a batch that the source
//! marks find already taken (a collector resending its buffer after a restart, while the first
//! copy still waits for the WAL) is answered only once the write that took it is durable, and
//! refused with it if that write fails (the disk full, then a kill: the lines were lost).
//!
//! The tests drive `prepare_and_queue` directly, so that the order of events is theirs: the
//! first copy is queued (its marks reserved) and its WAL write held at the storage fault hook
//! until the test has queued the second copy; only then does the write go on, and fail.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use super::*;
use crate::disk_full_tests::{delivery, records, runtime, settings};

/// A storage fault hook that, once armed, holds the next storage write until the test releases
/// it and then fails it as a full disk; every other write passes.
#[derive(Clone, Default)]
struct Gate(Arc<Mutex<Option<mpsc::Receiver<()>>>>);

impl Gate {
    /// Arms the gate; sending on (or dropping) the returned sender releases the held write.
    fn arm(&self) -> mpsc::Sender<()> {
        let (release, held) = mpsc::channel();
        *self.0.lock().unwrap() = Some(held);
        release
    }

    fn hook(&self) -> crate::StorageFault {
        let armed = self.0.clone();
        Arc::new(move || {
            let held = armed.lock().unwrap().take()?;
            let _ = held.recv();
            Some(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                "no space left on device",
            ))
        })
    }
}

/// Queues a delivery batch of `logs` the way ingest does, without waiting for its answer.
fn queue(indexer: &Indexer, body: &[u8]) -> std::result::Result<Queued, IngestError> {
    indexer.prepare_and_queue(
        "logs",
        body,
        true,
        None,
        MAX_REPORTED_ERRORS,
        &Push::default(),
    )
}

/// The answer of a queued batch and its outcome.
type Answer = tokio::sync::oneshot::Receiver<std::result::Result<u64, String>>;

fn queued_reply(queued: std::result::Result<Queued, IngestError>) -> (Answer, IngestOutcome) {
    match queued {
        Ok(Queued::Reply(answer, outcome)) => (answer, outcome),
        Ok(_) => panic!("expected the batch to be queued, it waits for another request"),
        Err(err) => panic!("expected the batch to be queued, got {err:?}"),
    }
}

fn ingest(
    rt: &tokio::runtime::Runtime,
    indexer: &Indexer,
    body: Vec<u8>,
) -> std::result::Result<IngestOutcome, IngestError> {
    rt.block_on(indexer.ingest("logs", body, true))
}

#[test]
fn a_resend_covered_only_by_a_queued_write_is_answered_with_that_write_and_fails_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let gate = Gate::default();
    let indexer = Indexer::open(
        settings(dir.path(), Some(gate.hook())),
        Arc::new(Metrics::default()),
    )
    .unwrap();

    // Source `a` is new to the indexer (a file just rotated in): it has no durable mark.
    let release = gate.arm();
    let (first, outcome) = queued_reply(queue(&indexer, &delivery(0..5)));
    assert_eq!(outcome.accepted, 5);
    // The same batch again while the first copy waits for the WAL: the pending mark covers
    // every record of it, so nothing of it is written.
    let (resent, outcome) = queued_reply(queue(&indexer, &delivery(0..5)));
    assert_eq!((outcome.accepted, outcome.deduplicated), (0, 5));

    // The first copy's WAL write fails: the disk is full.
    release.send(()).unwrap();
    let first = rt.block_on(first).unwrap();
    assert!(first.is_err(), "the first copy was written: {first:?}");
    // So the resend must not be acknowledged: the collector would take its lines as indexed,
    // and the indexer, whose mark of `a` did not move, would take the next batch without
    // seeing the hole.
    let resent = rt.block_on(resent).unwrap();
    match &resent {
        Err(message) => assert!(message.contains("no space left on device"), "{message}"),
        Ok(_) => panic!(
            "the resend was acknowledged although no copy of its records is durable: {resent:?}"
        ),
    }
    indexer.flush();
    assert_eq!(records(&indexer), Vec::<u64>::new());

    // The collector retries the refused batch: taken once, and kept through a restart.
    let retried = ingest(&rt, &indexer, delivery(0..5)).unwrap();
    assert_eq!((retried.accepted, retried.deduplicated), (5, 0));
    indexer.flush();
    assert_eq!(records(&indexer), (0..5).collect::<Vec<_>>());
    indexer.shutdown();
    drop(indexer);

    let indexer = Indexer::open(settings(dir.path(), None), Arc::new(Metrics::default())).unwrap();
    assert_eq!(records(&indexer), (0..5).collect::<Vec<_>>());
    let again = ingest(&rt, &indexer, delivery(0..5)).unwrap();
    assert_eq!((again.accepted, again.deduplicated), (0, 5));
    match ingest(&rt, &indexer, delivery(7..9)) {
        Err(IngestError::Gap(marks)) => assert_eq!(marks.get("a"), Some(&50)),
        other => panic!("expected a gap at the durable mark 50, got {other:?}"),
    }
    indexer.shutdown();
}

#[test]
fn a_gap_judged_by_a_queued_write_is_reported_only_once_that_write_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let gate = Gate::default();
    let indexer = Indexer::open(
        settings(dir.path(), Some(gate.hook())),
        Arc::new(Metrics::default()),
    )
    .unwrap();
    // Durable mark of `a`: 20.
    assert_eq!(ingest(&rt, &indexer, delivery(0..2)).unwrap().accepted, 2);

    let release = gate.arm();
    let (first, _) = queued_reply(queue(&indexer, &delivery(2..5)));
    // Starts past the pending mark 50: a gap. Reported now, it would tell the sender that
    // the indexer holds `a` up to 50 (a collector drops what is below a reported mark).
    let gap = match queue(&indexer, &delivery(7..9)) {
        Ok(Queued::Gap(answer, marks)) => {
            assert_eq!(marks.get("a"), Some(&50));
            answer
        }
        Ok(_) => panic!("expected a gap"),
        Err(err) => panic!("the gap was reported before the write it rests on settled: {err:?}"),
    };
    release.send(()).unwrap();
    assert!(rt.block_on(first).unwrap().is_err());
    let gap = rt.block_on(gap).unwrap();
    assert!(
        gap.as_ref()
            .is_err_and(|m| m.contains("no space left on device")),
        "{gap:?}"
    );
    // Asked again, the gap is at the durable mark.
    match ingest(&rt, &indexer, delivery(7..9)) {
        Err(IngestError::Gap(marks)) => assert_eq!(marks.get("a"), Some(&20)),
        other => panic!("expected a gap at the durable mark 20, got {other:?}"),
    }
    indexer.flush();
    assert_eq!(records(&indexer), vec![0, 1]);
    indexer.shutdown();
}

#[test]
fn a_resend_answered_while_its_first_copy_is_durable_already_is_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let indexer = Indexer::open(settings(dir.path(), None), Arc::new(Metrics::default())).unwrap();
    let (first, _) = queued_reply(queue(&indexer, &delivery(0..5)));
    let (resent, outcome) = queued_reply(queue(&indexer, &delivery(0..5)));
    assert_eq!((outcome.accepted, outcome.deduplicated), (0, 5));
    assert!(rt.block_on(first).unwrap().is_ok());
    assert!(rt.block_on(resent).unwrap().is_ok());
    indexer.flush();
    assert_eq!(records(&indexer), (0..5).collect::<Vec<_>>());
    indexer.shutdown();
}

#[test]
fn the_envelope_is_the_first_line_alone() {
    let body = b"{\"sources\":[{\"id\":\"a\",\"start\":0,\"end\":3,\"offsets\":[0]},{\"id\":\"b\",\"start\":0,\"end\":1,\"offsets\":[]}]}\n{\"message\":\"x\"}\n";
    let first = ndjson_lines(body).next().map(|(_, line)| line);
    let envelope = parse_envelope(first).unwrap();
    let ids: Vec<&str> = envelope.sources.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["a", "b"]);
    for bad in [&b"not json\n{}"[..], b"{\"sources\":[]} trailing"] {
        let first = ndjson_lines(bad).next().map(|(_, line)| line);
        match parse_envelope(first) {
            Err(IngestError::BadEnvelope(message)) => {
                assert!(message.starts_with("delivery envelope: "), "{message}")
            }
            other => panic!("{:?}", other.map(|e| e.sources.len())),
        }
    }
    match parse_envelope(None) {
        Err(IngestError::BadEnvelope(message)) => assert_eq!(message, "empty delivery batch"),
        other => panic!("{:?}", other.map(|e| e.sources.len())),
    }
}
