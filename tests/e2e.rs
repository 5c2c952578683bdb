//! End-to-end tests of the `trawl` binary: each test starts the real `trawl standalone`
//! (`CARGO_BIN_EXE_trawl`) on port 0 with its own temp data dir, talks HTTP to it, and asserts
//! exact results.
//!
//! Module map:
//! - `support`   — the process harness (`Server`: start, SIGKILL, SIGTERM, ingest and search
//!   helpers, `/metrics` lookup), `wait_until` for bounded polling, and `gen`, the
//!   deterministic record generator every expected count is computed from.
//! - `alerting`  — rules delivered through a real Alertmanager to a receiver of the test's
//!   own: a threshold rule with `for` fires once and resolves, the audit pack's exec rule
//!   fires and honours an excepted user, a kill -9 while firing neither duplicates nor loses
//!   the alert, an Alertmanager down for 30 s gets the alert once back.
//! - `skeleton`  — zstd ingest of 10,000 records, exact totals of time-bounded queries,
//!   nanosecond-exact bounds, sort/limit/fields; SIGKILL right after an acknowledgement and
//!   SIGTERM shutdown lose nothing and duplicate nothing.
//! - `merge`     — tiny splits merged in the background while searches run: totals never go
//!   down or past what was sent, and end exact with no duplicates.
//! - `crash_merge` — the binary aborted by the fault hook right after a merge or retention is
//!   recorded in the metastore: after a restart every record is there exactly once, the
//!   replaced splits' directories are gone and retention's victims stay gone.
//! - `audit_dedup` — audit events resent through the webhook and the ingest endpoint after
//!   their first copies were sealed and the server killed: indexed once; a new stage of the
//!   same audit id is still indexed.
//! - `auth`      — tokens hashed by `trawl token hash`: no token 401, wrong role 403, a
//!   namespace-scoped read token sees only its namespaces in search, aggregations, export,
//!   tail and reports; HTTPS with a test CA (plain HTTP refused) and the audit webhook taking
//!   a client certificate of the configured CA; limits answered 400 and 422 with JSON errors.
//! - `bad_input` — malformed and non-UTF-8 lines, unknown stream, oversized and bomb bodies,
//!   truncated zstd, unsupported encoding, unparsable query: exact statuses and the server
//!   stays up with the good lines searchable.
//! - `fault_proxy` — a proxy between collector and indexer that forwards, refuses every
//!   request with a status, or answers 413 over a body size, switchable during a test.
//! - `clusters`  — two clusters' records searched, aggregated and reported apart; a read token
//!   scoped to one cluster sees that cluster only.
//! - `collector` — real `trawl collector` and `trawl indexer` processes: pod logs rotated by
//!   rename and copytruncate, the collector SIGKILLed and restarted, the indexer down for a
//!   while; every line indexed exactly once and whole. A collector pointed at a 404 and then
//!   at the right URL loses nothing; batches over the indexer's body limit are split, a line
//!   too large alone is dead-lettered; a collector without `indexer_url` or a searcher
//!   without indexers refuses to start, naming the key.
//! - `compat_ingest` — Elasticsearch `_bulk` with Fluent Bit, Vector and Filebeat documents
//!   (exact per-item statuses, mapped fields), a declared generic stream (dynamic and declared
//!   fields, export), auto-creation surviving a restart, OTLP/HTTP protobuf and JSON, Loki push
//!   JSON and snappy protobuf.
//! - `agents`    — every agent fixture under tests/fixtures/agents/ (recorded or hand-written
//!   from the agent's documented output) replayed against a fresh server: exact record counts
//!   and sample fields; `_bulk` documents in Trawl's own names; Fluent Bit `http` lines on the
//!   native ingest API, the small ingest answer and the dead-letter store (API and CLI).
//! - `config_check` — `trawl config check` passes a good file and names a bad key with its file.
//! - `console`   — the web console's page and files from standalone, an indexer and a searcher:
//!   content types, ETag and 304, gzip (the whole under 300 KB), 404, public with auth on; a
//!   searcher's streams say which indexers answered.
//! - `faults`    — 200,000 lines through real collector and indexer processes under seeded
//!   SIGKILLs, rotations, a full disk (507) and a window in which every batch is refused
//!   (404, then 413): every line exported back exactly once.
//! - `fuzz_seeds` — not end to end: the seed corpus of every cargo-fuzz target run through
//!   the target's check (fuzz/checks/), so that `cargo test` covers them without cargo-fuzz.
//! - `shared_tier` — a `trawl indexer` publishing to a real S3-protocol server (`s3s-fs`) and
//!   a real PostgreSQL metastore: every sealed split uploaded once and published exactly; the
//!   S3 server away during ingest, a merge (output published, inputs marked, then collected),
//!   a kill between upload and publish, and a lost volume; `trawl storage check` stays clean.
//!   Every audit report through a searcher over the tier equals the report of one indexer
//!   holding the same events, before and after the indexer's volume is lost.
//!   A searcher whose first act is a large export downloads the splits whole and exports
//!   every record once.
//! - `distributed` — two `trawl indexer` processes and a `trawl searcher` root: merged totals,
//!   hit order and aggregations equal what one index would answer, and so does every audit
//!   report (rows, order and drill-down queries, under `limit`, `q` and `group_by`); an
//!   indexer down makes the answer partial and says so.
//! - `export_tail` — a live-tail client connected before an ingest receives exactly the
//!   matching records; exports in every format hold exactly the matching records (sorted in
//!   hit order when asked); the `trawl search` and `trawl export` client commands, and their
//!   error messages.
//! - `events`    — Kubernetes Events of both API versions and watch events: one document per
//!   update across relists, resends and a SIGKILL; the `pod-failures` report against a ground
//!   truth, each row's query finding its documents.
//! - `kube_events` — `trawl standalone` collecting the cluster's Events from a fake Kubernetes
//!   API under the Events lease: through a 410 relist and a SIGKILL, each update indexed once.
//! - `kubesphere` — KubeSphere's ks-apiserver as a client: Fluent Bit, kube-auditing and
//!   events-exporter documents `_bulk`-written to `ks-logstash-*-<date>`, then the exact bodies
//!   of its logging, auditing and events clients (search, count over time, statistics, every
//!   filter kind) answered with counts, buckets, pages and `_source` shapes equal to a
//!   computed ground truth; its version probe, `hits.total` by client major, refusals (scroll,
//!   audit fields not kept) and a namespace-scoped token.
//! - `resend`    — a batch resent to `_bulk`, the ingest API, OTLP or Loki push (after a dropped
//!   answer, `"errors": true`, SIGKILL, a seal) is answered again and indexed once; `_bulk`
//!   `create` of a written `_id` is a 409 item; lean answers and `filter_path`; WAL replay
//!   keeps records that no longer fit a changed stream and refuses to drop a removed one.

#[path = "e2e/fault_proxy.rs"]
mod fault_proxy;
#[path = "e2e/support.rs"]
mod support;

#[path = "e2e/agents.rs"]
mod agents;
#[path = "e2e/alerting.rs"]
mod alerting;
#[path = "e2e/audit_dedup.rs"]
mod audit_dedup;
#[path = "e2e/auth.rs"]
mod auth;
#[path = "e2e/bad_input.rs"]
mod bad_input;
#[path = "e2e/clusters.rs"]
mod clusters;
#[path = "e2e/collector.rs"]
mod collector;
#[path = "e2e/compat_ingest.rs"]
mod compat_ingest;
#[path = "e2e/config_check.rs"]
mod config_check;
#[path = "e2e/console.rs"]
mod console;
#[path = "e2e/crash_merge.rs"]
mod crash_merge;
#[path = "e2e/distributed.rs"]
mod distributed;
#[path = "e2e/elastic.rs"]
mod elastic;
#[path = "e2e/events.rs"]
mod events;
#[path = "e2e/export_tail.rs"]
mod export_tail;
#[path = "e2e/faults.rs"]
mod faults;
#[path = "e2e/fuzz_seeds.rs"]
mod fuzz_seeds;
#[path = "e2e/kube_events.rs"]
mod kube_events;
#[path = "e2e/kubesphere.rs"]
mod kubesphere;
#[path = "e2e/merge.rs"]
mod merge;
#[path = "e2e/resend.rs"]
mod resend;
#[path = "e2e/shared_tier.rs"]
mod shared_tier;
#[path = "e2e/skeleton.rs"]
mod skeleton;
