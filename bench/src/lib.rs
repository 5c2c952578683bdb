//! Trawl's benchmark harness: a seeded corpus generator (container logs, audit events, CRI
//! files laid out like `/var/log/pods`) and scenarios that start the real `trawl` binary, drive
//! it over HTTP and print one line per metric, beside raw tantivy where there is a baseline.

pub mod client;
pub mod corpus;
mod error;
pub mod proc;
pub mod raw;
pub mod report;
pub mod scenarios;
pub mod space;

pub use error::{Error, Result};
