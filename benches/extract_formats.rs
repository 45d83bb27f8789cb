//! Extraction throughput per format over the real documents of the shared extraction corpus
//! (`../shared/corpora/extraction`; skipped with a message where it is absent). Files are
//! grouped by the format sniffed from their content; each group extracts its files (those that
//! extract, up to `FILES_PER_FORMAT`) in turn, and criterion reports bytes/s.
//!
//! `cargo bench -p sluice-extract --bench extract_formats`

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sluice_extract::{Limits, extract};

const FILES_PER_FORMAT: usize = 40;

fn corpus_files() -> Option<Vec<PathBuf>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora/extraction");
    if !root.is_dir() {
        eprintln!("SKIPPED: {} is absent (the shared corpora are not on this machine)", root.display());
        return None;
    }
    let mut files = Vec::new();
    let mut pending = vec![root];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() { pending.push(path) } else { files.push(path) }
        }
    }
    files.sort();
    Some(files)
}

/// (file name, bytes) of the files that extract, grouped by the format extraction reports.
fn by_format(files: Vec<PathBuf>) -> BTreeMap<String, Vec<(String, Vec<u8>)>> {
    let mut groups: BTreeMap<String, Vec<(String, Vec<u8>)>> = BTreeMap::new();
    for path in files {
        let Ok(bytes) = std::fs::read(&path) else { continue };
        let name = path.file_name().and_then(|name| name.to_str()).unwrap_or("").to_owned();
        if let Ok(document) = extract(&bytes, &name, &Limits::default()) {
            let group = groups.entry(document.format).or_default();
            if group.len() < FILES_PER_FORMAT {
                group.push((name, bytes));
            }
        }
    }
    groups
}

fn extraction_by_format(c: &mut Criterion) {
    let Some(files) = corpus_files() else { return };
    let mut group = c.benchmark_group("extract_format");
    group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    for (format, files) in by_format(files) {
        let bytes: usize = files.iter().map(|(_, bytes)| bytes.len()).sum();
        group.throughput(Throughput::Bytes(bytes as u64));
        let id = BenchmarkId::new(format.as_str(), format!("{} files", files.len()));
        group.bench_with_input(id, &files, |b, files| {
            b.iter(|| {
                for (name, bytes) in files {
                    let _ = extract(bytes, name, &Limits::default());
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, extraction_by_format);
criterion_main!(benches);
