//! Extracts the files given (folders recursively) and prints, per file, the format or the
//! quarantine reason, the block count, the characters and the time taken. With `--text`, prints
//! the blocks too; with `--plain`, only the text, blocks separated by a blank line (what
//! `benches/pdf-vs-pdftotext.sh` compares), or nothing and exit status 1 if extraction failed.
//!
//! `cargo run --release -p sluice-extract --example extract -- [--text|--plain] PATH...`

use std::path::{Path, PathBuf};
use std::time::Instant;

fn main() {
    let mut show_text = false;
    let mut plain = false;
    let mut files = Vec::new();
    for arg in std::env::args().skip(1) {
        if arg == "--text" {
            show_text = true;
        } else if arg == "--plain" {
            plain = true;
        } else {
            collect(Path::new(&arg), &mut files);
        }
    }
    let limits = sluice_extract::Limits::default();
    for path in files {
        let bytes = std::fs::read(&path).unwrap_or_default();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let started = Instant::now();
        let result = std::panic::catch_unwind(|| sluice_extract::extract(&bytes, name, &limits));
        let ms = started.elapsed().as_secs_f64() * 1e3;
        if plain {
            match result {
                Ok(Ok(document)) => {
                    let blocks: Vec<&str> = document.blocks.iter().map(|block| block.text.as_str()).collect();
                    println!("{}", blocks.join("\n\n"));
                }
                _ => std::process::exit(1),
            }
            continue;
        }
        match result {
            Ok(Ok(document)) => {
                let chars: usize = document.blocks.iter().map(|b| b.text.chars().count()).sum();
                println!(
                    "{}\tok {}\tblocks={} chars={} pages={:?} children={} {ms:.1}ms",
                    path.display(),
                    document.format,
                    document.blocks.len(),
                    chars,
                    document.page_count,
                    document.children.len()
                );
                if show_text {
                    for block in &document.blocks {
                        println!("  [{:?} p{:?}] {}", block.kind, block.page, block.text.replace('\n', "⏎"));
                    }
                    for (key, value) in &document.metadata {
                        println!("  meta {key} = {value}");
                    }
                    for child in &document.children {
                        println!("  child {} ({} bytes)", child.name, child.bytes.len());
                    }
                }
            }
            Ok(Err(err)) => println!("{}\t{}\t{err} {ms:.1}ms", path.display(), err.reason()),
            Err(_) => println!("{}\tPANIC", path.display()),
        }
    }
}

fn collect(path: &Path, files: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> =
            std::fs::read_dir(path).into_iter().flatten().flatten().map(|entry| entry.path()).collect();
        entries.sort();
        for entry in entries {
            collect(&entry, files);
        }
    } else {
        files.push(path.to_owned());
    }
}
