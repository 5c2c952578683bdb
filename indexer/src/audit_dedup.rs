//! Deduplication of identified records (audit events by `(audit_id, stage)`, Kubernetes Events
//! by their object's uid and resourceVersion) against the sealed splits, so that it holds across
//! seals and restarts: the hot index replaces a second copy by its identity, and the in-memory
//! window drops recent ones, but neither sees a first copy that was already sealed. Each record
//! is looked up by its `_id` term only in the splits whose time range covers its timestamp (a
//! resent event carries the same timestamp), one term-dictionary lookup per segment; records
//! newer than every split, the usual case of fresh events, cost no lookup at all.

use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{DocSet, InvertedIndexReader, SegmentReader, Term, TERMINATED};

use crate::doc::Prepared;
use crate::stream::Stream;

/// Removes from `docs` the identified records a sealed split already holds (alive), keeping the
/// order of the rest; returns the remaining records and how many were removed. A split that
/// cannot be read is logged and treated as not holding the record: a record is indexed twice
/// rather than lost.
pub(crate) fn drop_sealed(
    stream: &Stream,
    id_field: Field,
    docs: Vec<Prepared>,
) -> (Vec<Prepared>, usize) {
    if docs.iter().all(|d| d.id.is_none()) {
        return (docs, 0);
    }
    let splits = stream.splits();
    let Some(newest) = splits.iter().map(|s| s.meta.max_timestamp).max() else {
        return (docs, 0);
    };
    let candidates: Vec<usize> = docs
        .iter()
        .enumerate()
        .filter(|(_, d)| d.id.is_some() && d.timestamp <= newest)
        .map(|(i, _)| i)
        .collect();
    if candidates.is_empty() {
        return (docs, 0);
    }
    let mut sealed = vec![false; docs.len()];
    for split in &splits {
        let range = split.meta.min_timestamp..=split.meta.max_timestamp;
        let covered: Vec<(usize, Term)> = candidates
            .iter()
            .filter(|&&i| !sealed[i] && range.contains(&docs[i].timestamp))
            .filter_map(|&i| {
                let id = docs[i].id.as_deref()?;
                Some((i, Term::from_field_text(id_field, id)))
            })
            .collect();
        if covered.is_empty() {
            continue;
        }
        let searcher = split.reader.searcher();
        for segment in searcher.segment_readers() {
            let inverted = match segment.inverted_index(id_field) {
                Ok(inverted) => inverted,
                Err(err) => {
                    tracing::warn!(split = %split.meta.id, %err, "cannot read a split's ids for deduplication");
                    continue;
                }
            };
            for (i, term) in &covered {
                if sealed[*i] {
                    continue;
                }
                match holds_alive(segment, &inverted, term) {
                    Ok(found) => sealed[*i] = found,
                    Err(err) => {
                        tracing::warn!(split = %split.meta.id, %err, "cannot read a split's ids for deduplication")
                    }
                }
            }
        }
    }
    let removed = sealed.iter().filter(|&&s| s).count();
    if removed == 0 {
        return (docs, 0);
    }
    let kept = docs
        .into_iter()
        .zip(sealed)
        .filter_map(|(doc, sealed)| (!sealed).then_some(doc))
        .collect();
    (kept, removed)
}

/// Whether a live document of `segment` has `term`.
fn holds_alive(
    segment: &SegmentReader,
    inverted: &InvertedIndexReader,
    term: &Term,
) -> std::io::Result<bool> {
    let Some(mut postings) = inverted.read_postings(term, IndexRecordOption::Basic)? else {
        return Ok(false);
    };
    let alive = segment.alive_bitset();
    let mut doc = postings.doc();
    while doc != TERMINATED {
        if alive.is_none_or(|bits| bits.is_alive(doc)) {
            return Ok(true);
        }
        doc = postings.advance();
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::disk_full_tests::{runtime, settings};
    use crate::tests::docs;
    use crate::{Indexer, IndexerSettings, Metrics};

    fn event(audit_id: &str, stage: &str, minute: u32) -> String {
        format!(
            r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"{audit_id}","stage":"{stage}","requestURI":"/api/v1/namespaces/shop/pods","verb":"list","user":{{"username":"alice"}},"responseStatus":{{"code":200}},"requestReceivedTimestamp":"2026-11-25T10:{minute:02}:00.123456Z","stageTimestamp":"2026-11-25T10:{minute:02}:00.223456Z"}}"#
        )
    }

    fn body(events: &[String]) -> Vec<u8> {
        events
            .iter()
            .flat_map(|e| format!("{e}\n").into_bytes())
            .collect()
    }

    fn audit_docs(indexer: &Indexer) -> u64 {
        docs(indexer, "audit")
    }

    fn deduplicated(indexer: &Indexer) -> u64 {
        let label = crate::metrics::StreamLabel {
            stream: "audit".into(),
        };
        indexer
            .metrics()
            .records_deduplicated
            .get_or_create(&label)
            .get()
    }

    fn open(s: &IndexerSettings) -> Indexer {
        Indexer::open(s.clone(), Arc::new(Metrics::default())).unwrap()
    }

    #[test]
    fn an_audit_event_resent_after_its_seal_and_a_restart_is_not_indexed_again() {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime();
        let s = settings(dir.path(), None);
        let first: Vec<String> = (0..3)
            .map(|i| event(&format!("id-{i}"), "ResponseComplete", i))
            .collect();
        let indexer = open(&s);
        let outcome = rt
            .block_on(indexer.ingest("audit", body(&first), false))
            .unwrap();
        assert_eq!(outcome.accepted, 3);
        indexer.seal_all();
        assert_eq!(audit_docs(&indexer), 3);
        indexer.shutdown();
        drop(indexer);

        // A new process: its memory window is empty, the first copies are sealed.
        let indexer = open(&s);
        let mut again = first.clone();
        again.push(event("id-0", "RequestReceived", 0));
        rt.block_on(indexer.ingest("audit", body(&again), false))
            .unwrap();
        assert_eq!(
            audit_docs(&indexer),
            4,
            "one new stage, three resends dropped"
        );
        assert_eq!(deduplicated(&indexer), 3);
        // Sealed again and resent once more, with a restart between: still four.
        indexer.seal_all();
        indexer.shutdown();
        drop(indexer);
        let indexer = open(&s);
        rt.block_on(indexer.ingest("audit", body(&again), false))
            .unwrap();
        assert_eq!(audit_docs(&indexer), 4);
        indexer.shutdown();
    }

    #[test]
    fn audit_events_of_a_purged_source_are_taken_again_when_it_comes_back() {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime();
        let s = settings(dir.path(), None);
        let indexer = open(&s);
        let events: Vec<String> = (0..3)
            .map(|i| event(&format!("p-{i}"), "ResponseComplete", i))
            .collect();
        // The same three events delivered from the source `spool`, its records at `start`...
        let delivery = |start: u64| {
            let offsets: Vec<u64> = (start..start + 3).collect();
            let envelope = serde_json::json!({"sources": [
                {"id": "spool", "start": start, "end": start + 3, "offsets": offsets}
            ]});
            let mut out = format!("{envelope}\n").into_bytes();
            out.extend(body(&events));
            out
        };
        let taken = rt
            .block_on(indexer.ingest("audit", delivery(0), true))
            .unwrap();
        assert_eq!(taken.accepted, 3);
        assert_eq!(audit_docs(&indexer), 3);
        let purged = indexer.purge_sources(&["spool".to_string()]).unwrap();
        assert_eq!(purged.records, 3);
        assert_eq!(audit_docs(&indexer), 0);
        // ...and again once the source is back: not taken for copies of what was removed.
        rt.block_on(indexer.ingest("audit", delivery(3), true))
            .unwrap();
        assert_eq!(audit_docs(&indexer), 3);
        assert_eq!(deduplicated(&indexer), 0);
        indexer.shutdown();
    }

    /// A core v1 Event of the kubelet at one update (`rv`, `count`).
    fn kube_event(uid: &str, rv: u32, count: u32) -> String {
        format!(
            r#"{{"apiVersion":"v1","kind":"Event","metadata":{{"name":"web-1.17a","namespace":"shop","uid":"{uid}","resourceVersion":"{rv}"}},"involvedObject":{{"kind":"Pod","namespace":"shop","name":"web-1","uid":"p-1"}},"reason":"BackOff","message":"Back-off restarting failed container","source":{{"component":"kubelet","host":"node-1"}},"firstTimestamp":"2026-11-25T10:00:00Z","lastTimestamp":"2026-11-25T10:{count:02}:00Z","count":{count},"type":"Warning"}}"#
        )
    }

    #[test]
    fn a_kubernetes_event_relisted_after_a_seal_and_a_restart_is_one_document_per_update() {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime();
        let s = settings(dir.path(), None);
        let indexer = open(&s);
        let first = vec![kube_event("e-1", 10, 1), kube_event("e-2", 11, 1)];
        let outcome = rt
            .block_on(indexer.ingest("events", body(&first), false))
            .unwrap();
        assert_eq!(outcome.accepted, 2);
        indexer.seal_all();
        indexer.shutdown();
        drop(indexer);

        // A relist after a restart: both objects again at the same resourceVersions, and one
        // of them updated (count 2, a new resourceVersion): one new document.
        let indexer = open(&s);
        let mut relist = first.clone();
        relist.push(kube_event("e-1", 12, 2));
        rt.block_on(indexer.ingest("events", body(&relist), false))
            .unwrap();
        assert_eq!(docs(&indexer, "events"), 3);
        // The same update again in the hot index, in another batch: still three.
        rt.block_on(indexer.ingest("events", body(&relist[2..]), false))
            .unwrap();
        rt.block_on(indexer.ingest("events", body(&relist[1..]), false))
            .unwrap();
        assert_eq!(docs(&indexer, "events"), 3);
        indexer.shutdown();
    }

    #[test]
    fn sealed_copies_are_found_without_the_memory_window() {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime();
        let mut s = settings(dir.path(), None);
        s.dedup_window = 0;
        s.merge_min_splits = 2;
        let indexer = open(&s);
        let events: Vec<String> = (0..4)
            .map(|i| event(&format!("w-{i}"), "ResponseComplete", i))
            .collect();
        rt.block_on(indexer.ingest("audit", body(&events[..2]), false))
            .unwrap();
        indexer.seal_all();
        rt.block_on(indexer.ingest("audit", body(&events[2..]), false))
            .unwrap();
        indexer.seal_all();
        // Each resent event is in a different split; the new one is in none.
        let mut resend = events.clone();
        resend.push(event("w-9", "ResponseComplete", 30));
        rt.block_on(indexer.ingest("audit", body(&resend), false))
            .unwrap();
        assert_eq!(audit_docs(&indexer), 5);
        assert_eq!(deduplicated(&indexer), 4);
        // After a merge of the two splits, the merged split is searched the same way.
        indexer.run_upkeep_once().unwrap();
        rt.block_on(indexer.ingest("audit", body(&resend), false))
            .unwrap();
        assert_eq!(audit_docs(&indexer), 5);
        indexer.shutdown();
    }
}
