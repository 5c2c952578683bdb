//! The indexer as a [`StreamSource`]: the query routes read its hot indexes and splits through
//! the read contract of `trawl-index`, without knowing the indexer's type.

use std::sync::Arc;

use tokio::sync::broadcast;
use trawl_index::{StreamSource, StreamStats, TailBatch};
use trawl_model::Timestamp;

use crate::{Indexer, StreamSnapshot};

impl StreamSource for Indexer {
    fn snapshot(
        &self,
        stream: &str,
        start: Option<Timestamp>,
        end: Option<Timestamp>,
    ) -> trawl_index::Result<StreamSnapshot> {
        Indexer::snapshot(self, stream, start, end)
    }

    fn schema_snapshot(&self, stream: &str) -> trawl_index::Result<StreamSnapshot> {
        self.empty_snapshot(stream)
    }

    fn subscribe(&self, stream: &str) -> trawl_index::Result<broadcast::Receiver<Arc<TailBatch>>> {
        Indexer::subscribe(self, stream)
    }

    fn stream_stats(&self) -> Vec<StreamStats> {
        Indexer::stream_stats(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The read contract answers for the indexer's streams: the hot index is a `Hot` target,
    /// a sealed split a `Split` one, and an unknown stream is `UnknownStream`.
    #[test]
    fn the_indexer_serves_the_read_contract() {
        let dir = tempfile::tempdir().unwrap();
        let indexer = crate::tests::open(dir.path());
        let source: &dyn StreamSource = &indexer;
        let body = (0..3)
            .map(|i| format!(r#"{{"message":"line {i}"}}"#))
            .collect::<Vec<_>>()
            .join("\n");
        let outcome = crate::tests::runtime()
            .block_on(indexer.ingest("logs", body.into_bytes(), false))
            .unwrap();
        assert_eq!(outcome.accepted, 3);
        indexer.flush();
        let kinds = |s: &dyn StreamSource| -> Vec<trawl_index::TargetKind> {
            let snapshot = s.snapshot("logs", None, None).unwrap();
            snapshot.targets.iter().map(|t| t.kind).collect()
        };
        assert_eq!(kinds(source), vec![trawl_index::TargetKind::Hot]);
        indexer.seal_all();
        assert_eq!(kinds(source), vec![trawl_index::TargetKind::Split]);
        let schema = source.schema_snapshot("logs").unwrap();
        assert!(schema.targets.is_empty());
        assert!(schema.schema.get_field("message").is_ok());
        assert!(matches!(
            source.snapshot("nope", None, None),
            Err(trawl_index::Error::UnknownStream(name)) if name == "nope"
        ));
        assert!(matches!(
            source.subscribe("nope"),
            Err(trawl_index::Error::UnknownStream(_))
        ));
        let stats = source.stream_stats();
        let logs = stats.iter().find(|s| s.name == "logs").unwrap();
        assert_eq!((logs.docs, logs.splits), (3, 1));
    }
}
