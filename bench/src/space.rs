//! Where an index's bytes go: every tantivy index under a directory (hot indexes and splits of
//! a data directory), summed by component (doc store, postings, term dictionary, positions,
//! fast fields, fieldnorms) and by field, as fractions of a raw size when one is given.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tantivy::Index;

use crate::{report, Error, Result};

/// Bytes per component and per (component, field) over every index found.
#[derive(Debug, Default)]
pub struct SpaceUsage {
    pub indexes: usize,
    pub total: u64,
    pub components: BTreeMap<&'static str, u64>,
    pub fields: BTreeMap<(&'static str, String), u64>,
}

/// Sums the space usage of every index (a directory holding `meta.json`) under `root`.
pub fn measure(root: &Path) -> Result<SpaceUsage> {
    let mut usage = SpaceUsage::default();
    for dir in index_dirs(root)? {
        let index = Index::open_in_dir(&dir)?;
        let searcher = index.reader()?.searcher();
        let space = searcher.space_usage()?;
        usage.indexes += 1;
        usage.total += space.total().get_bytes();
        for segment in space.segments() {
            let mut add =
                |component: &'static str, fields: &tantivy::space_usage::PerFieldSpaceUsage| {
                    *usage.components.entry(component).or_default() += fields.total().get_bytes();
                    for field in fields.fields() {
                        *usage
                            .fields
                            .entry((component, field.field_name().to_string()))
                            .or_default() += field.total().get_bytes();
                    }
                };
            add("termdict", segment.termdict());
            add("postings", segment.postings());
            add("positions", segment.positions());
            add("fast_fields", segment.fast_fields());
            add("fieldnorms", segment.fieldnorms());
            *usage.components.entry("store").or_default() += segment.store().total().get_bytes();
        }
    }
    Ok(usage)
}

/// Prints the usage: each component, then the `top` largest (component, field) pairs, as MB
/// and, with `raw_bytes`, as a fraction of it.
pub fn print(scenario: &str, usage: &SpaceUsage, raw_bytes: Option<u64>, top: usize) {
    let ratio = |bytes: u64| raw_bytes.map(|raw| bytes as f64 / raw.max(1) as f64);
    let show = |name: &str, bytes: u64| match ratio(bytes) {
        Some(r) => report::metric(scenario, name, r, "x_raw_ndjson"),
        None => report::metric(scenario, name, bytes as f64 / 1e6, "MB"),
    };
    show("space_total", usage.total);
    for (component, bytes) in &usage.components {
        show(&format!("space_{component}"), *bytes);
    }
    let mut fields: Vec<_> = usage.fields.iter().collect();
    fields.sort_by(|a, b| b.1.cmp(a.1));
    for ((component, field), bytes) in fields.into_iter().take(top) {
        show(&format!("space_{component}.{field}"), *bytes);
    }
}

fn index_dirs(root: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if dir.join("meta.json").is_file() {
            found.push(dir);
            continue;
        }
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(err) if dir == root => return Err(Error::Io(err)),
            Err(_) => continue,
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(entry.path());
            }
        }
    }
    found.sort();
    Ok(found)
}
