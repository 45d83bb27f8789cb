//! Context for retrieval (issue 18): what the model embeds for a chunk is its document's title
//! and the headings above it, then its text; the chunk's own text, span and text hash stay the
//! text alone. Export (with vectors) and `verify` find each vector under that input's key.

mod common;

use sluice_core::ReadAccess;
use sluice_pipeline::{Quiet, Scope};
use sluice_store::ExportFormat;

use common::engine_with;

#[test]
fn a_chunk_is_embedded_with_its_title_and_the_text_alone_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let (inbox, data) = (dir.path().join("inbox"), dir.path().join("data"));
    std::fs::create_dir_all(&inbox).unwrap();
    let paragraph = "The dredger works the northern channel at night, when the ferries are moored.";
    std::fs::write(
        inbox.join("titled.html"),
        format!("<html><head><title>Harbour works</title></head><body><p>{paragraph}</p></body></html>"),
    )
    .unwrap();
    std::fs::write(inbox.join("plain.txt"), "A plain note about the lighthouse keeper's logbook and its entries.\n")
        .unwrap();
    let engine = engine_with(&inbox, &data, |_| {});
    engine.run(&Scope::All, &Quiet).unwrap();

    let out = dir.path().join("export.jsonl");
    engine.operations().export(None, &ReadAccess::Unrestricted, true, ExportFormat::Jsonl, true, &out, "t").unwrap();
    let rows: Vec<serde_json::Value> =
        std::fs::read_to_string(&out).unwrap().lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    let vector_of = |row: &serde_json::Value| -> Vec<f32> {
        row["vector"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
    };
    let embed = |text: &str| engine.embedder().embed(&[text], 4096).unwrap().remove(0);
    let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-4);
    let titled = rows.iter().find(|row| row["path"].as_str().unwrap().ends_with("titled.html")).unwrap();
    assert_eq!(titled["text"], paragraph, "the context stays out of the chunk's text");
    assert!(close(&vector_of(titled), &embed(&format!("Harbour works\n\n{paragraph}"))));
    assert!(!close(&vector_of(titled), &embed(paragraph)));
    let plain = rows.iter().find(|row| row["path"].as_str().unwrap().ends_with("plain.txt")).unwrap();
    assert!(close(&vector_of(plain), &embed(plain["text"].as_str().unwrap())));

    let report = engine.operations().verify(None).unwrap();
    assert_eq!(report.problems, Vec::<String>::new(), "{report:?}");
    assert!(report.vectors_compared >= 2, "{report:?}");
}
