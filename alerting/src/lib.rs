//! Alerting over logs and audit events: rules (from `trawl-config`) evaluated on a schedule
//! through a [`Searcher`] (the query crate, behind one adapter in the binary), alert state that
//! survives restarts, delivery to Alertmanager's v2 API and to plain JSON webhooks with retries,
//! and the `GET /api/v1/rules` and `GET /api/v1/alerts` routes.
//!
//! ```text
//! engine.rs   the schedule: groups every interval, reload on change and SIGHUP, leadership
//! eval.rs     one rule over one window: exceptions, groups, values, samples, exact queries
//! state.rs    pending -> firing -> resolved per group; the state file under data_dir
//! notify.rs   Alertmanager and webhook payloads, delivery workers with backoff
//! http.rs     GET /api/v1/rules, GET /api/v1/alerts
//! metrics.rs  per-rule evaluations, failures, duration, notifications
//! source.rs   the search contract the engine runs on
//! ```

mod engine;
mod eval;
mod http;
mod metrics;
mod notify;
mod source;
mod state;

pub use engine::{Always, Engine, Leadership, Settings};
pub use source::{Found, Search, SearchFuture, Searcher};

/// Why alerting could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The rule files or packs do not load (the message names file, rule and key).
    #[error("alerting rules: {0}")]
    Rules(#[from] trawl_config::Error),
    /// The state directory or file could not be read or written.
    #[error("alerting state {path}: {source}")]
    State {
        /// The file or directory.
        path: std::path::PathBuf,
        /// What the operating system (or the decoder) said.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP client for deliveries could not be built.
    #[error("alerting delivery client: {0}")]
    Client(String),
}

/// A result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
