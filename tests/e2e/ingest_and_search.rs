//! Ingest real files of every first-cut format, then find each by a phrase of its own, through
//! the CLI and through the HTTP API; a broken PDF is quarantined and nothing else is affected.

use std::path::Path;

use crate::support::{Workspace, extraction_corpus, hit_paths};

/// (file in the corpus, name in the inbox, a phrase only that file contains)
const DOCUMENTS: &[(&str, &str, &str)] = &[
    ("pypdf-sample-files/004-pdflatex-4-pages/pdflatex-4-pages.pdf", "four-pages.pdf", "Huardest gefburn Kjift"),
    ("pypdf-sample-files/011-google-doc-document/google-doc-document.pdf", "zen.pdf", "Sparse is better than dense"),
    ("readability-html/001/source.html", "coverage.html", "Blanket.js JavaScript code coverage library"),
    (
        "rust-book-markdown/ch00-00-introduction.md",
        "introduction.md",
        "people who crave speed and stability in a language",
    ),
    ("tika/multi-language.txt", "categories.txt", "pagamento de sucesso"),
];
const BROKEN: &str = "qpdf-malformed/issue-146.pdf";

fn inbox_with_corpus(workspace: &Workspace, corpus: &Path) -> std::path::PathBuf {
    let inbox = workspace.folder("inbox");
    for (source, name, _) in DOCUMENTS {
        std::fs::copy(corpus.join(source), inbox.join(name)).unwrap();
    }
    std::fs::copy(corpus.join(BROKEN), inbox.join("broken.pdf")).unwrap();
    inbox
}

fn top3_contains(paths: &[String], name: &str) -> bool {
    paths.iter().take(3).any(|path| path.ends_with(&format!("/{name}")))
}

#[test]
fn every_document_is_found_by_its_own_phrase_via_cli_and_http() {
    let Some(corpus) = extraction_corpus("every_document_is_found_by_its_own_phrase_via_cli_and_http") else {
        return;
    };
    let workspace = Workspace::new();
    let inbox = inbox_with_corpus(&workspace, &corpus);

    let summary = workspace.ingest(&inbox, None);
    assert_eq!(summary["version"], 1, "{summary}");
    assert_eq!(summary["indexed"], DOCUMENTS.len() as u64, "{summary}");
    assert_eq!(summary["quarantined"]["parse_error"], 1, "{summary}");
    assert!(summary["chunks_added"].as_u64().unwrap() >= DOCUMENTS.len() as u64);

    for (_, name, phrase) in DOCUMENTS {
        let paths = workspace.search_paths(phrase, &["-k", "3"]);
        assert!(top3_contains(&paths, name), "CLI search {phrase:?} should find {name}, got {paths:?}");
    }

    // The broken file is in quarantine with its stage and reason; the others were indexed.
    let catalog = workspace.open_catalog("default");
    let quarantine = catalog.quarantine("default").unwrap();
    assert_eq!(quarantine.len(), 1, "{quarantine:?}");
    assert!(quarantine[0].path.ends_with("/broken.pdf"));
    assert_eq!((quarantine[0].stage.as_str(), quarantine[0].reason.as_str()), ("extract", "parse_error"));
    assert!(!quarantine[0].detail.is_empty());
    drop(catalog);

    // The daemon over the same folder and data serves the same through HTTP, and indexes
    // nothing again (the ledger says everything is current).
    let pipeline = workspace.pipeline("default", &[&inbox], "");
    let daemon = workspace.start_daemon(&pipeline);
    assert_eq!(daemon.live_version(), Some(1));
    for (_, name, phrase) in DOCUMENTS {
        let response = daemon.search(phrase, "&k=3");
        let paths = hit_paths(&response);
        assert!(top3_contains(&paths, name), "HTTP search {phrase:?} should find {name}, got {paths:?}");
        let hit = &response["hits"][0];
        for field in ["chunk_id", "score", "text", "path", "char_start", "char_end", "valid_from"] {
            assert!(!hit[field].is_null(), "hit lacks {field}: {hit}");
        }
    }
    let (status, body) = daemon.get("/v1/search?k=3");
    assert_eq!(status, 400, "a search without q is a bad request: {body}");

    // POST /v1/search with a filter: only the formats asked for, the best of them first.
    let filtered = |filter: serde_json::Value| {
        let body = serde_json::json!({"query": "Sparse is better than dense", "k": 10, "filter": filter});
        let (status, answer) = daemon.post("/v1/search", body);
        assert_eq!(status, 200, "{answer}");
        hit_paths(&serde_json::from_str(&answer).unwrap())
    };
    let pdfs = filtered(serde_json::json!({"format": ["pdf"]}));
    assert!(pdfs.first().is_some_and(|path| path.ends_with("/zen.pdf")), "{pdfs:?}");
    assert!(pdfs.iter().all(|path| path.ends_with(".pdf")), "{pdfs:?}");
    let pages = filtered(serde_json::json!({"format": ["text/html"], "language": ["eng"]}));
    assert!(!pages.is_empty() && pages.iter().all(|path| path.ends_with("/coverage.html")), "{pages:?}");
    // A filter value that means nothing is a bad request; a body of the wrong shape (a key
    // misspelt) is refused as unprocessable, as every JSON body is.
    for (bad, expected) in [
        (serde_json::json!({"query": "dense", "filter": {"language": ["klingon"]}}), 400),
        (serde_json::json!({"query": "dense", "filters": {}}), 422),
    ] {
        let (status, answer) = daemon.post("/v1/search", bad);
        assert_eq!(status, expected, "{answer}");
        assert!(answer.contains("\"detail\""), "a problem document: {answer}");
    }
    assert_eq!(daemon.metric("sluice_embeddings_computed_total"), 0.0);
    // The CLI talks to the running daemon instead of opening the locked indexes.
    let paths = workspace.search_paths("Sparse is better than dense", &["-k", "3"]);
    assert!(top3_contains(&paths, "zen.pdf"), "{paths:?}");
    // With filter flags, through the daemon's POST /v1/search.
    let paths = workspace.search_paths("Sparse is better than dense", &["-k", "5", "--format", "markdown"]);
    assert!(!paths.is_empty() && paths.iter().all(|path| path.ends_with("/introduction.md")), "{paths:?}");
    daemon.stop();
}

#[test]
fn pdf_hits_carry_their_page() {
    let Some(corpus) = extraction_corpus("pdf_hits_carry_their_page") else {
        return;
    };
    let workspace = Workspace::new();
    let inbox = workspace.folder("inbox");
    std::fs::copy(corpus.join(DOCUMENTS[0].0), inbox.join("four-pages.pdf")).unwrap();
    workspace.ingest(&inbox, None);
    let response = workspace.json(&["search", "Huardest gefburn", "--mode", "lexical", "-k", "20"]);
    let pages: std::collections::BTreeSet<u64> =
        response["hits"].as_array().unwrap().iter().filter_map(|hit| hit["page"].as_u64()).collect();
    assert!(pages.len() >= 3 && pages.iter().all(|p| (1..=4).contains(p)), "pages {pages:?}");
    for hit in response["hits"].as_array().unwrap() {
        assert!(hit["char_start"].as_u64() < hit["char_end"].as_u64());
    }
}
