//! The unsorted export as a bounded pipeline: a producer walks the matching documents exactly
//! as [`super::walk::walk_unsorted`] does (targets in id order, segments in order, doc ids in
//! order, deleted documents skipped, `limit` applied) and cuts them into the same blocks of at
//! most [`BLOCK_ROWS`] ids; workers turn blocks into output (a record batch through the
//! columnar reader, or the lines of a text format) in parallel; the calling thread writes them
//! in block order.
//!
//! ```text
//! producer: scorer per segment --> blocks of doc ids --(jobs, bounded)--> workers (N)
//!      \--(one reply slot per block, in order, bounded)--> caller: wait for each slot in turn
//!                                                          --> encoder --> output
//! ```
//!
//! Memory is bounded by the window: at most ([`WINDOW_PER_WORKER`] + 1) × workers + 1 blocks
//! are in flight between the producer and the writer, each one block of output. Each worker
//! opens its own columns and doc-store reader per segment (with the small cache of the simple
//! path), so that a block's doc-store blocks are decompressed once (twice for a doc-store
//! block that two blocks of ids share) and workers never share a cache.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Mutex;

use arrow_array::RecordBatch;
use tantivy::query::Query;
use tantivy::{DocId, DocSet, SegmentReader, TantivyDocument, TERMINATED};
use trawl_index::SearchTarget;

use crate::error::{Error, Result};
use crate::export::arrow::Layout;
use crate::export::columns::SegmentColumns;
use crate::export::raw::RawBlock;
use crate::export::walk::{remaining, store_reader, WalkOptions, BLOCK_ROWS};
use crate::export::{csv, ndjson, ExportFormat, RawPlan};
use crate::query_text::weight;

/// Blocks per worker that may wait for the writer, besides the one each worker works on and
/// the one the writer waits for: one is enough for the workers never to wait on the writer's
/// order, and every block more is a block of memory.
const WINDOW_PER_WORKER: usize = 1;

/// Workers of one export: the machine's cores, at most four (the writer and the socket need a
/// share too, and one export should not take a large machine from every other query).
pub(crate) fn workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, 4))
}

/// One block of output, ready for the encoder.
pub(crate) enum Block {
    /// A record batch (Arrow, Parquet).
    Batch(RecordBatch),
    /// Encoded lines (CSV without its header, NDJSON), and how many rows they hold.
    Text(Vec<u8>, usize),
}

impl Block {
    pub(crate) fn rows(&self) -> usize {
        match self {
            Block::Batch(batch) => batch.num_rows(),
            Block::Text(_, rows) => *rows,
        }
    }
}

/// How blocks are turned into output.
#[derive(Clone, Copy)]
pub(crate) struct Shape<'a> {
    pub format: ExportFormat,
    pub layout: &'a Layout,
    /// False: every column from the doc store, as the simple path reads it (for comparisons).
    pub fast: bool,
}

/// A block of doc ids of one segment.
struct Job {
    /// (target position, segment ordinal).
    segment: (usize, usize),
    docs: Vec<DocId>,
    reply: SyncSender<Result<Block>>,
}

/// What the writer waits for, in order.
enum Slot {
    Pending(Receiver<Result<Block>>),
    Failed(Error),
}

/// Calls `write` with the blocks of the matching documents of `targets` (already in id order),
/// in the order of the simple walk, encoded by `workers` threads. Returns how many rows were
/// written; stops early (still `Ok`) when `options.cancelled` says so before a block.
pub(crate) fn export_unsorted(
    targets: &[&SearchTarget],
    query: &dyn Query,
    shape: Shape<'_>,
    workers: usize,
    options: &WalkOptions<'_>,
    write: &mut dyn FnMut(Block) -> Result<()>,
) -> Result<u64> {
    let workers = workers.max(1);
    let stop = AtomicBool::new(false);
    let (job_tx, job_rx) = sync_channel::<Job>(workers);
    let job_rx = Mutex::new(job_rx);
    let (slot_tx, slot_rx) = sync_channel::<Slot>(workers * WINDOW_PER_WORKER);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let job_rx = &job_rx;
            scope.spawn(move || work(targets, shape, job_rx));
        }
        let (stop_ref, limit) = (&stop, options.limit);
        scope.spawn(move || {
            if let Err(err) = produce(targets, query, limit, stop_ref, &job_tx, &slot_tx) {
                let _ = slot_tx.send(Slot::Failed(err));
            }
        });
        let result = consume(&slot_rx, options, write);
        // Whatever ended the export, the producer stops at its next block and the workers once
        // the jobs are gone; dropping the slots makes their replies fail rather than block.
        stop.store(true, Ordering::Relaxed);
        drop(slot_rx);
        result
    })
}

/// Writes the blocks in order as they become ready.
fn consume(
    slots: &Receiver<Slot>,
    options: &WalkOptions<'_>,
    write: &mut dyn FnMut(Block) -> Result<()>,
) -> Result<u64> {
    let mut written = 0u64;
    while let Ok(slot) = slots.recv() {
        if (options.cancelled)() {
            return Ok(written);
        }
        let block = match slot {
            Slot::Failed(err) => return Err(err),
            Slot::Pending(reply) => reply
                .recv()
                .map_err(|_| Error::Internal("an export worker stopped".into()))??,
        };
        let rows = block.rows() as u64;
        write(block)?;
        written += rows;
    }
    Ok(written)
}

/// The producer: the walk of the simple path, handing out blocks of ids instead of documents.
fn produce(
    targets: &[&SearchTarget],
    query: &dyn Query,
    limit: Option<u64>,
    stop: &AtomicBool,
    jobs: &SyncSender<Job>,
    slots: &SyncSender<Slot>,
) -> Result<()> {
    let mut emitted = 0u64;
    for (pos, target) in targets.iter().enumerate() {
        let weight = weight(query, &target.searcher, &target.id)?;
        for (ord, reader) in target.searcher.segment_readers().iter().enumerate() {
            let alive = reader.alive_bitset();
            let mut scorer = weight
                .scorer(reader, 1.0)
                .map_err(|e| internal(&target.id, e))?;
            let mut doc = scorer.doc();
            while doc != TERMINATED {
                if stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
                let room = remaining(limit, emitted).min(BLOCK_ROWS);
                let mut ids = Vec::with_capacity(room.min(BLOCK_ROWS));
                while doc != TERMINATED && ids.len() < room {
                    if alive.is_none_or(|a| a.is_alive(doc)) {
                        ids.push(doc);
                    }
                    doc = scorer.advance();
                }
                if !ids.is_empty() {
                    emitted += ids.len() as u64;
                    let (reply, pending) = sync_channel(1);
                    // The slot first: the writer waits on slots in order, so a slot must never
                    // wait behind a job that no worker can take.
                    if slots.send(Slot::Pending(pending)).is_err() {
                        return Ok(());
                    }
                    let job = Job {
                        segment: (pos, ord),
                        docs: ids,
                        reply,
                    };
                    if jobs.send(job).is_err() {
                        return Ok(());
                    }
                }
                if remaining(limit, emitted) == 0 {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

/// A worker: takes jobs until there are none, keeping the columns of its current segment.
fn work(targets: &[&SearchTarget], shape: Shape<'_>, jobs: &Mutex<Receiver<Job>>) {
    let mut current: Option<((usize, usize), Opened)> = None;
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        let result = (|| {
            let reuse = matches!(&current, Some((key, _)) if *key == job.segment);
            if !reuse {
                current = None;
                current = Some((job.segment, open(targets, shape, job.segment)?));
            }
            match &mut current {
                Some((_, opened)) => encode(opened, shape, &job.docs),
                None => Err(Error::Internal("no segment open".into())),
            }
        })();
        // A writer that went away no longer waits for this block.
        let _ = job.reply.send(result);
    }
}

/// A segment opened by a worker.
enum Opened {
    /// The columnar reader (Arrow, Parquet).
    Columns(SegmentColumns),
    /// Stored documents: the text formats, and record batches with a generic stream's dynamic
    /// paths as columns (built as the simple path builds them).
    Store(tantivy::store::StoreReader, String),
    /// NDJSON or CSV of a plain stream: stored documents read in place ([`RawPlan`]).
    Lines(tantivy::store::StoreReader, RawPlan),
}

fn open(targets: &[&SearchTarget], shape: Shape<'_>, (pos, ord): (usize, usize)) -> Result<Opened> {
    let target = targets
        .get(pos)
        .ok_or_else(|| Error::Internal("no such export target".into()))?;
    let reader: &SegmentReader = target
        .searcher
        .segment_readers()
        .get(ord)
        .ok_or_else(|| internal(&target.id, "no such segment"))?;
    let columnar = matches!(shape.format, ExportFormat::Arrow | ExportFormat::Parquet)
        && !shape.layout.columns.iter().any(|c| c.is_dynamic_path());
    if columnar {
        let open_store = || store_reader(reader, target);
        let columns = SegmentColumns::open(shape.layout, reader, open_store, shape.fast)?;
        return Ok(Opened::Columns(columns));
    }
    // Record batches reaching here have a dynamic path as a column: no plan reads those.
    let plan = match shape.fast {
        true => RawPlan::new(shape.layout, shape.format),
        false => None,
    };
    if let Some(plan) = plan {
        return Ok(Opened::Lines(store_reader(reader, target)?, plan));
    }
    Ok(Opened::Store(
        store_reader(reader, target)?,
        target.id.clone(),
    ))
}

fn encode(opened: &mut Opened, shape: Shape<'_>, docs: &[DocId]) -> Result<Block> {
    let (store, target) = match opened {
        Opened::Columns(columns) => return Ok(Block::Batch(columns.batch(shape.layout, docs)?)),
        Opened::Store(store, target) => (store, target),
        Opened::Lines(store, plan) => {
            let mut block = RawBlock::read(store, docs, &plan.wanted)?;
            return plan.encode(shape.format, shape.layout, &mut block, &[store]);
        }
    };
    let stored = docs
        .iter()
        .map(|&doc| store.get::<TantivyDocument>(doc))
        .collect::<tantivy::Result<Vec<_>>>()
        .map_err(|e| internal(target, e))?;
    let mut out = Vec::new();
    match shape.format {
        ExportFormat::Arrow | ExportFormat::Parquet => {
            return Ok(Block::Batch(shape.layout.batch_of_docs(&stored)?))
        }
        ExportFormat::Csv => csv::encode_docs(shape.layout, &stored, &mut out)?,
        ExportFormat::Ndjson => ndjson::encode_docs(shape.layout, &stored, &mut out)?,
    }
    Ok(Block::Text(out, stored.len()))
}

fn internal(target: &str, err: impl std::fmt::Display) -> Error {
    Error::Internal(format!("exporting target `{target}`: {err}"))
}
