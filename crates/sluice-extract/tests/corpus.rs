//! Extraction over the real documents in `../shared/corpora/extraction` (not in the
//! repository; each test skips with a message where the folder is absent).
//!
//! `every_file_ends_with_text_or_a_reason` runs a slice that fits CI (every folder, every
//! format); `whole_corpus` (ignored) runs all of it: `cargo test --release -p sluice-extract
//! --test corpus -- --ignored`.

use std::path::{Path, PathBuf};

use sluice_extract::{ExtractedFile, Limits, extract_file};

fn corpus() -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora/extraction");
    if path.is_dir() {
        Some(path)
    } else {
        eprintln!("skipped: {} is absent (the shared corpora are not in this checkout)", path.display());
        None
    }
}

fn files_under(folder: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![folder.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn extract(path: &Path) -> Result<ExtractedFile, sluice_extract::ExtractError> {
    let bytes = std::fs::read(path).unwrap();
    let name = path.file_name().unwrap().to_str().unwrap();
    extract_file(&bytes, name, &Limits::default())
}

/// Every file gives text (or embedded files) or a reason; nothing panics. Returns the outcome
/// count per reason.
fn sweep(files: &[PathBuf]) -> std::collections::BTreeMap<String, usize> {
    let mut outcomes = std::collections::BTreeMap::new();
    for path in files {
        let outcome = std::panic::catch_unwind(|| extract(path));
        let key = match outcome {
            Err(_) => panic!("{} panicked the parser", path.display()),
            Ok(Ok(file)) => format!("ok {}", file.document.format),
            Ok(Err(err)) => err.reason().to_owned(),
        };
        *outcomes.entry(key).or_insert(0) += 1;
    }
    outcomes
}

#[test]
fn every_file_ends_with_text_or_a_reason() {
    let Some(corpus) = corpus() else { return };
    // Every 4th file of every folder: all formats and most failure modes, a few seconds.
    let files: Vec<PathBuf> = files_under(&corpus).into_iter().step_by(4).collect();
    let outcomes = sweep(&files);
    eprintln!("{} files: {outcomes:?}", files.len());
    for format in ["ok pdf", "ok docx", "ok pptx", "ok xlsx", "ok html", "ok email", "ok markdown"] {
        assert!(outcomes.contains_key(format), "no {format} in the slice: {outcomes:?}");
    }
}

#[test]
#[ignore = "the whole corpus (about 1,200 files); run by hand"]
fn whole_corpus() {
    let Some(corpus) = corpus() else { return };
    let files = files_under(&corpus);
    let outcomes = sweep(&files);
    eprintln!("{} files: {outcomes:?}", files.len());
}

#[test]
fn pypdf_page_counts_match_files_json() {
    let Some(corpus) = corpus() else { return };
    let folder = corpus.join("pypdf-sample-files");
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(folder.join("files.json")).unwrap()).unwrap();
    let mut checked = 0;
    for entry in index["data"].as_array().unwrap() {
        let (Some(path), Some(pages)) = (entry["path"].as_str(), entry["pages"].as_u64()) else { continue };
        let path = folder.join(path);
        if !path.exists() || entry["encrypted"].as_bool() == Some(true) {
            continue;
        }
        match extract(&path) {
            Ok(file) => {
                assert_eq!(file.document.page_count, Some(pages as u32), "{}", path.display());
                checked += 1;
            }
            Err(err) => eprintln!("{}: {err} (pages not compared)", path.display()),
        }
    }
    assert!(checked >= 20, "only {checked} PDFs compared");
}

#[test]
fn mbox_message_counts_match_mimekit() {
    let Some(corpus) = corpus() else { return };
    let folder = corpus.join("mimekit-email/mbox");
    for name in ["content-length", "issue1189"] {
        let expected: serde_json::Value =
            serde_json::from_slice(&std::fs::read(folder.join(format!("{name}.unix-offsets.json"))).unwrap()).unwrap();
        let file = extract(&folder.join(format!("{name}.mbox.txt"))).unwrap();
        assert_eq!(file.document.format, "mbox");
        assert_eq!(file.children.len(), expected.as_array().unwrap().len(), "{name}");
        assert!(file.children.iter().all(|child| child.outcome.is_ok()), "{name}: every message parses");
    }
}

#[test]
fn docx_tables_come_out_row_by_row() {
    let Some(corpus) = corpus() else { return };
    let file = extract(&corpus.join("python-docx/tbl-cell-access.docx")).unwrap();
    let rows: Vec<&str> = file
        .document
        .blocks
        .iter()
        .filter(|block| block.kind == sluice_core::BlockKind::Table)
        .map(|block| block.text.as_str())
        .collect();
    assert_eq!(&rows[..3], ["1 | 2 | 3", "4 | 5 | 6", "7 | 8 | 9"]);
}

#[test]
fn calamine_error_files_give_errors() {
    let Some(corpus) = corpus() else { return };
    let folder = corpus.join("calamine-sheets");
    for (name, reason) in [
        ("OOM_alloc3.xls", "parse_error"),
        ("issue_594_dos.ods", "parse_error"),
        ("pass_protected.xlsx", "encrypted"),
        ("pass_protected.ods", "encrypted"),
    ] {
        let err = extract(&folder.join(name)).unwrap_err();
        assert_eq!(err.reason(), reason, "{name}: {err}");
    }
}

#[test]
fn encrypted_and_scanned_pdfs_have_their_reasons() {
    let Some(corpus) = corpus() else { return };
    let encrypted = extract(&corpus.join("pdfminer-samples/samples/encryption/aes-256-r6.pdf")).unwrap_err();
    assert_eq!(encrypted.reason(), "encrypted");
    let scanned = extract(&corpus.join("ocrmypdf-scanned/linn.pdf")).unwrap_err();
    assert_eq!(scanned.reason(), "needs_ocr");
}

#[test]
fn html_charsets_follow_the_page_or_the_detector() {
    let Some(corpus) = corpus() else { return };
    let text = |name: &str| {
        let file = extract(&corpus.join("tika").join(name)).unwrap();
        file.document.blocks.iter().map(|block| block.text.clone()).collect::<Vec<_>>().join("\n")
    };
    // Declared ISO-8859-6 in a <meta http-equiv> (Arabic).
    assert!(text("testHTMLNoisyMetaEncoding_1.html").contains("الاتحاد الجزائري"));
    // Declared UTF-8 but not UTF-8: the detector's reading, not replacement characters.
    let misleading = text("testArabicMisleadingCharset.html");
    assert!(misleading.contains("في قرية من القرى") && !misleading.contains('\u{FFFD}'), "{misleading}");
}

#[test]
fn pdf_text_inside_form_xobjects_is_read() {
    let Some(corpus) = corpus() else { return };
    // tika's testPDF.pdf draws all of its text through form XObjects.
    let file = extract(&corpus.join("tika/testPDF.pdf")).unwrap();
    let text: Vec<&str> = file.document.blocks.iter().map(|block| block.text.as_str()).collect();
    assert!(text.join("\n").contains("Apache Tika"), "{text:?}");
    assert!(file.document.blocks.iter().all(|block| block.page == Some(1)));
}
