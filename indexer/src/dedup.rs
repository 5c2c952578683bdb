//! Resent push batches: a window of the fingerprints of the batches the push surfaces (`_bulk`,
//! the NDJSON ingest API, OTLP, Loki push) made durable, so that a batch an agent sends again
//! (after a timeout, a lost or unreadable answer, `"errors": true`) is answered as the first
//! time and not indexed again; and the document ids (`_bulk` `_id`) written lately, so that an
//! id written twice is refused even before its first document is searchable.
//!
//! A fingerprint is the xxh3-128 hash of the surface, the stream, the decoded body and the ids.
//! It travels in the batch's WAL entry (the same fsync as its records), is restored from the WAL
//! on recovery, and the window is saved to `resent.json` before each WAL truncation, so that a
//! seal does not shorten it. What a resend is answered is computed again from the same body
//! (validation is deterministic); only the ids refused as already written the first time are
//! kept, because they cannot be computed again.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::json_file;
use crate::Result;

/// A batch's fingerprint.
pub type Fingerprint = u128;

/// Most batches remembered, whatever the window: about 100 bytes each, so the window costs at
/// most ~100 MB of memory even when tiny batches arrive by the thousand per second (a window
/// this full is then shorter than configured).
const MAX_BATCHES: usize = 1_000_000;
/// How long an id written by `_bulk` is remembered besides the index: long enough to cover the
/// commit that makes it searchable (a second by default), many times over.
const RECENT_ID_NANOS: i64 = 10 * 60 * 1_000_000_000;
/// Most recent ids remembered (about 100 bytes each).
const MAX_RECENT_IDS: usize = 1_000_000;
/// The version of `resent.json`.
const FILE_VERSION: u32 = 1;

/// The push surface a batch came through; part of its fingerprint, so that the same bytes sent
/// to two surfaces are two batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// `POST /api/v1/{stream}/ingest` without a delivery envelope.
    Ingest,
    /// Elasticsearch `_bulk` (one batch per stream the request writes to).
    Bulk,
    /// OTLP/HTTP logs.
    Otlp,
    /// Loki push.
    Loki,
}

impl Surface {
    fn tag(self) -> u8 {
        match self {
            Surface::Ingest => 1,
            Surface::Bulk => 2,
            Surface::Otlp => 3,
            Surface::Loki => 4,
        }
    }
}

/// What a push ingest carries beyond its body.
#[derive(Debug, Clone, Default)]
pub struct Push {
    /// The surface, for the fingerprint; `None` turns resend detection off (delivery batches of
    /// the collector are deduplicated by their source marks instead).
    pub surface: Option<Surface>,
    /// Document ids given by the client (`_bulk` `_id`), by line of the body (0-based, blank
    /// lines not counted): a line whose id was already written is not written again and is
    /// listed in [`crate::IngestOutcome::conflicts`].
    pub ids: Vec<(usize, String)>,
    /// The [`body_hash`] of the request as received (decoded), when the NDJSON handed to ingest
    /// is derived from it in a way that may differ between sends (OTLP and Loki fill in the
    /// receive time, `_bulk` generates ids); the NDJSON itself is fingerprinted otherwise.
    pub origin: Option<u128>,
}

impl Push {
    /// A push through `surface` with no ids, fingerprinted by the NDJSON handed to ingest.
    pub fn from(surface: Surface) -> Push {
        Push {
            surface: Some(surface),
            ..Push::default()
        }
    }

    /// A push through `surface` of a batch derived from the request body `decoded`.
    pub fn of_request(surface: Surface, decoded: &[u8]) -> Push {
        Push {
            surface: Some(surface),
            origin: Some(body_hash(decoded)),
            ..Push::default()
        }
    }
}

/// The hash of a request body, for [`Push::origin`].
pub fn body_hash(body: &[u8]) -> u128 {
    twox_hash::XxHash3_128::oneshot(body)
}

/// The fingerprint of a batch of `stream` received through `surface`: of `origin` when given,
/// else of `body`, and of the ids.
pub fn fingerprint(
    surface: Surface,
    stream: &str,
    body: &[u8],
    origin: Option<u128>,
    ids: &[(usize, String)],
) -> u128 {
    let mut hasher = twox_hash::XxHash3_128::new();
    hasher.write(&[surface.tag()]);
    hasher.write(&(stream.len() as u64).to_le_bytes());
    hasher.write(stream.as_bytes());
    match origin {
        Some(origin) => {
            hasher.write(&[1]);
            hasher.write(&origin.to_le_bytes());
        }
        None => {
            hasher.write(&[0]);
            hasher.write(&(body.len() as u64).to_le_bytes());
            hasher.write(body);
        }
    }
    for (line, id) in ids {
        hasher.write(&(*line as u64).to_le_bytes());
        hasher.write(&(id.len() as u64).to_le_bytes());
        hasher.write(id.as_bytes());
    }
    hasher.finish_128()
}

/// What the window knows of a fingerprint.
pub(crate) enum Lookup {
    /// Never seen (or forgotten): the caller now holds a pending entry and must settle it
    /// ([`Window::settle`]) or forget it ([`Window::forget`]).
    New,
    /// Made durable before: the lines (0-based) refused then as already written.
    Known(Arc<[u32]>),
    /// Another request with the same batch is being written: wait, then look again.
    Pending(watch::Receiver<bool>),
}

struct Seen {
    at: i64,
    conflicts: Arc<[u32]>,
    /// Set while the batch's WAL write is in flight; dropped (waking the waiters) when settled.
    pending: Option<watch::Sender<bool>>,
}

/// The window of batches made durable, and of ids written lately.
pub(crate) struct Window {
    span: i64,
    seen: HashMap<Fingerprint, Seen>,
    order: VecDeque<(i64, Fingerprint)>,
    ids: HashMap<(String, String), i64>,
    id_order: VecDeque<(i64, String, String)>,
    path: PathBuf,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct WindowFile {
    version: u32,
    /// `[fingerprint (hex), received at (ns), lines refused as already written]`.
    batches: Vec<(String, i64, Vec<u32>)>,
}

impl Window {
    /// The window saved in `dir` (`resent.json`), without what is older than `span_nanos`. An
    /// unreadable file costs only the detection of resends, not data: it is logged and ignored.
    pub(crate) fn load(dir: &Path, span_nanos: i64, now: i64) -> Window {
        let path = dir.join("resent.json");
        let mut window = Window {
            span: span_nanos,
            seen: HashMap::new(),
            order: VecDeque::new(),
            ids: HashMap::new(),
            id_order: VecDeque::new(),
            path,
        };
        let file: WindowFile = match json_file::load(
            &window.path,
            "resend window",
            FILE_VERSION,
            &[],
        ) {
            Ok(file) => file,
            Err(err) => {
                tracing::error!(%err, "the window of resent batches is unreadable, starting empty");
                WindowFile::default()
            }
        };
        for (hex, at, conflicts) in file.batches {
            if let Ok(fp) = u128::from_str_radix(&hex, 16) {
                window.restore(fp, at, conflicts, now);
            }
        }
        window
    }

    /// Records a batch made durable before (from the saved window or the WAL).
    pub(crate) fn restore(&mut self, fp: Fingerprint, at: i64, conflicts: Vec<u32>, now: i64) {
        if at < now.saturating_sub(self.span) || self.seen.contains_key(&fp) {
            return;
        }
        self.seen.insert(
            fp,
            Seen {
                at,
                conflicts: conflicts.into(),
                pending: None,
            },
        );
        self.order.push_back((at, fp));
        self.expire(now);
    }

    /// Looks a batch up; an unknown one is entered as pending.
    pub(crate) fn begin(&mut self, fp: Fingerprint, now: i64) -> Lookup {
        self.expire(now);
        if let Some(seen) = self.seen.get(&fp) {
            return match &seen.pending {
                Some(tx) => Lookup::Pending(tx.subscribe()),
                None => Lookup::Known(seen.conflicts.clone()),
            };
        }
        let (tx, _) = watch::channel(false);
        self.seen.insert(
            fp,
            Seen {
                at: now,
                conflicts: Arc::from(Vec::new()),
                pending: Some(tx),
            },
        );
        self.order.push_back((now, fp));
        Lookup::New
    }

    /// Records the lines a pending batch refuses as already written.
    pub(crate) fn set_conflicts(&mut self, fp: Fingerprint, conflicts: &[u32]) {
        if let Some(seen) = self.seen.get_mut(&fp) {
            seen.conflicts = conflicts.into();
        }
    }

    /// The pending batch is durable: it is known from now on; its waiters wake.
    pub(crate) fn settle(&mut self, fp: Fingerprint) {
        if let Some(tx) = self.seen.get_mut(&fp).and_then(|s| s.pending.take()) {
            tx.send_replace(true);
        }
    }

    /// The pending batch was not written: forget it (its waiters wake and try themselves).
    pub(crate) fn forget(&mut self, fp: Fingerprint) {
        if self.seen.get(&fp).is_some_and(|s| s.pending.is_some()) {
            self.seen.remove(&fp);
        }
    }

    /// Claims the ids of a batch of `stream`: returns the lines whose id is already written
    /// (remembered here, earlier in the same batch, or `exists` in the index); the others are
    /// remembered from now on.
    pub(crate) fn claim_ids(
        &mut self,
        stream: &str,
        ids: &[(usize, String)],
        exists: impl Fn(&str) -> bool,
        now: i64,
    ) -> Vec<u32> {
        let mut conflicts = Vec::new();
        let mut in_batch = HashSet::new();
        for (line, id) in ids {
            let key = (stream.to_string(), id.clone());
            if self.ids.contains_key(&key) || !in_batch.insert(id.as_str()) || exists(id) {
                conflicts.push(*line as u32);
                continue;
            }
            self.ids.insert(key, now);
            self.id_order
                .push_back((now, stream.to_string(), id.clone()));
        }
        conflicts
    }

    /// Forgets ids claimed by a batch that was not written after all.
    pub(crate) fn release_ids(&mut self, stream: &str, ids: &[String]) {
        for id in ids {
            self.ids.remove(&(stream.to_string(), id.clone()));
        }
    }

    fn expire(&mut self, now: i64) {
        let cutoff = now.saturating_sub(self.span);
        while let Some(&(at, fp)) = self.order.front() {
            if at >= cutoff && self.order.len() <= MAX_BATCHES {
                break;
            }
            self.order.pop_front();
            if self
                .seen
                .get(&fp)
                .is_some_and(|s| s.at == at && s.pending.is_none())
            {
                self.seen.remove(&fp);
            }
        }
        let id_cutoff = now.saturating_sub(RECENT_ID_NANOS);
        while let Some((at, _, _)) = self.id_order.front() {
            if *at >= id_cutoff && self.id_order.len() <= MAX_RECENT_IDS {
                break;
            }
            if let Some((at, stream, id)) = self.id_order.pop_front() {
                let key = (stream, id);
                if self.ids.get(&key) == Some(&at) {
                    self.ids.remove(&key);
                }
            }
        }
    }

    /// Saves the batches made durable (durably: the WAL entries that carried them may be
    /// deleted next).
    pub(crate) fn save(&self) -> Result<()> {
        let batches = self
            .order
            .iter()
            .filter_map(|(at, fp)| {
                let seen = self.seen.get(fp)?;
                (seen.at == *at && seen.pending.is_none())
                    .then(|| (format!("{fp:032x}"), *at, seen.conflicts.to_vec()))
            })
            .collect();
        let file = WindowFile {
            version: FILE_VERSION,
            batches,
        };
        let bytes = serde_json::to_vec(&file).map_err(std::io::Error::other)?;
        json_file::replace(&self.path, &bytes)
    }

    /// How many batches the window holds.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60 * 1_000_000_000;

    #[test]
    fn fingerprints_tell_surface_stream_body_and_ids_apart() {
        let base = fingerprint(Surface::Bulk, "logs", b"{}\n", None, &[]);
        assert_eq!(base, fingerprint(Surface::Bulk, "logs", b"{}\n", None, &[]));
        assert_ne!(
            base,
            fingerprint(Surface::Ingest, "logs", b"{}\n", None, &[])
        );
        assert_ne!(base, fingerprint(Surface::Bulk, "web", b"{}\n", None, &[]));
        assert_ne!(
            base,
            fingerprint(Surface::Bulk, "logs", b"{} \n", None, &[])
        );
        assert_ne!(
            base,
            fingerprint(Surface::Bulk, "logs", b"{}\n", None, &[(0, "a".into())])
        );
        let origin = Some(body_hash(b"request"));
        let derived = fingerprint(Surface::Otlp, "logs", b"{\"t\":1}\n", origin, &[]);
        assert_eq!(
            derived,
            fingerprint(Surface::Otlp, "logs", b"{\"t\":2}\n", origin, &[]),
            "the origin stands for the body"
        );
        assert_ne!(
            derived,
            fingerprint(
                Surface::Otlp,
                "logs",
                b"{}\n",
                Some(body_hash(b"other")),
                &[]
            )
        );
    }

    #[test]
    fn a_batch_is_new_then_pending_then_known_until_the_window_passes() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Window::load(dir.path(), 15 * MIN, 0);
        assert!(matches!(w.begin(7, 0), Lookup::New));
        let Lookup::Pending(mut rx) = w.begin(7, 1) else {
            panic!("expected pending")
        };
        w.set_conflicts(7, &[3]);
        w.settle(7);
        assert!(*rx.borrow_and_update());
        match w.begin(7, 2) {
            Lookup::Known(c) => assert_eq!(&*c, &[3]),
            _ => panic!("expected known"),
        }
        assert!(matches!(w.begin(7, 15 * MIN + 1), Lookup::New));
    }

    #[test]
    fn a_forgotten_batch_is_new_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Window::load(dir.path(), 15 * MIN, 0);
        assert!(matches!(w.begin(7, 0), Lookup::New));
        let Lookup::Pending(rx) = w.begin(7, 0) else {
            panic!("expected pending")
        };
        w.forget(7);
        assert!(rx.has_changed().is_err(), "the waiter wakes");
        assert!(matches!(w.begin(7, 0), Lookup::New));
    }

    #[test]
    fn the_saved_window_survives_without_what_expired() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Window::load(dir.path(), 15 * MIN, 0);
        for fp in [1u128, 2, u128::MAX] {
            assert!(matches!(w.begin(fp, fp.min(5) as i64), Lookup::New));
            w.settle(fp);
        }
        assert!(matches!(w.begin(9, 10), Lookup::New)); // pending: not saved
        w.restore(4, 6 * MIN, vec![0, 2], 6 * MIN);
        w.save().unwrap();
        let mut again = Window::load(dir.path(), 15 * MIN, 15 * MIN + 3);
        assert_eq!(again.len(), 2, "1 and 2 expired; MAX and 4 kept");
        assert!(matches!(
            again.begin(u128::MAX, 15 * MIN + 3),
            Lookup::Known(_)
        ));
        match again.begin(4, 15 * MIN + 3) {
            Lookup::Known(c) => assert_eq!(&*c, &[0, 2]),
            _ => panic!("expected known"),
        }
        assert!(matches!(again.begin(9, 15 * MIN + 3), Lookup::New));
    }

    #[test]
    fn ids_conflict_when_known_repeated_or_in_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Window::load(dir.path(), 15 * MIN, 0);
        let ids = |v: &[&str]| -> Vec<(usize, String)> {
            v.iter()
                .enumerate()
                .map(|(i, s)| (i, s.to_string()))
                .collect()
        };
        let in_index = |id: &str| id == "old";
        assert_eq!(
            w.claim_ids("logs", &ids(&["a", "b", "a", "old"]), in_index, 0),
            [2, 3]
        );
        assert_eq!(w.claim_ids("logs", &ids(&["b", "c"]), in_index, 1), [0]);
        assert_eq!(
            w.claim_ids("web", &ids(&["b"]), in_index, 1),
            Vec::<u32>::new()
        );
        w.release_ids("logs", &["c".to_string()]);
        assert_eq!(
            w.claim_ids("logs", &ids(&["c"]), in_index, 2),
            Vec::<u32>::new()
        );
    }
}
