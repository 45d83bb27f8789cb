//! Filtered search (issue 18): every filter narrows a query's hits to exactly the documents it
//! names, in lexical, dense and hybrid search, with the reader's access applied as well; and with
//! `k = 1` the one hit is the best chunk that matches, because both retrievers filter before
//! they rank.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, SystemTime};

use sluice_config::AccessRule;
use sluice_core::{Principal, ReadAccess, SearchFilter};
use sluice_pipeline::{Engine, Quiet, Scope, Search};
use sluice_store::SearchMode;

use common::engine_with;

const QUERY: &str = "harbour dredging budget";

/// The documents, each mentioning the budget: path and content.
const FILES: &[(&str, &str)] = &[
    (
        "reports/2024/q1.md",
        "# Harbour report 2024\n\n## Dredging budget\n\nThe harbour dredging budget for the first quarter was \
         approved on 3 March 2024 after the survey of the silted channel near the northern quay.\n",
    ),
    (
        "reports/2023/plan.html",
        "<html><head><title>Hafenplan</title><meta name=\"author\" content=\"Jürgen Groß\">\
         <meta name=\"date\" content=\"2023-06-01\"></head><body><h1>Hafen</h1><p>Das Budget für die \
         Ausbaggerung des Hafens wurde im Juni beschlossen. Die Arbeiten an der nördlichen Kaimauer beginnen \
         im Herbst, sobald die Genehmigungen der Behörden vorliegen.</p></body></html>",
    ),
    (
        "mail/notice.eml",
        "From: Ana Diaz <ana@example.com>\nTo: board@example.com\nSubject: Harbour dredging budget\n\
         Date: Mon, 10 Jan 2022 10:00:00 +0000\n\nThe board will vote on the harbour dredging budget next \
         week; the contractor's estimate is attached to the minutes of the last meeting.\n",
    ),
    (
        "notes/brief.txt",
        "Le budget du dragage du port a été voté par le conseil municipal. Les travaux commenceront au \
         printemps, après la saison des tempêtes, et dureront environ six semaines.\n",
    ),
    (
        "restricted/audit.txt",
        "Audit finding: the harbour dredging budget was exceeded by twelve percent because the contractor \
         billed the removal of contaminated silt twice in the autumn invoices.\n",
    ),
];

/// Readable only by the `audit` group (a pipeline rule).
fn audit_rule(plan: &mut sluice_config::PipelinePlan) {
    plan.access.rules = vec![AccessRule {
        path: glob::Pattern::new("restricted/**").unwrap(),
        readers: vec!["group:audit".into()],
        replace: true,
        public: false,
    }];
}

fn write_files(inbox: &Path) {
    // Documents without a date of their own are dated by their file: 1 January 2020.
    let file_time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_577_836_800);
    for (path, content) in FILES {
        let path = inbox.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        std::fs::File::options().write(true).open(&path).unwrap().set_modified(file_time).unwrap();
    }
}

fn search(
    engine: &Engine,
    mode: SearchMode,
    k: usize,
    filter: &SearchFilter,
    access: &ReadAccess,
) -> Vec<(String, String)> {
    let search = Search { query: QUERY.into(), version: None, k, mode, filter: filter.clone() };
    let hits = engine.search_filtered(&search, access, "test").unwrap().hits;
    hits.into_iter().map(|hit| (hit.path, hit.chunk_id.to_hex())).collect()
}

#[test]
fn each_filter_narrows_the_hits_to_its_documents_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let (inbox, data) = (dir.path().join("inbox"), dir.path().join("data"));
    write_files(&inbox);
    let engine = engine_with(&inbox, &data, audit_rule);
    let summary = engine.run(&Scope::All, &Quiet).unwrap();
    assert_eq!(summary.indexed, FILES.len(), "{summary:?}");
    let root = std::fs::canonicalize(&inbox).unwrap().display().to_string();
    let relative = |path: &str| path.strip_prefix(&format!("{root}/")).unwrap_or(path).to_owned();

    let filter = |edit: &dyn Fn(&mut SearchFilter)| {
        let mut filter = SearchFilter::default();
        edit(&mut filter);
        filter
    };
    let (q1, plan, notice, brief, audit) = (FILES[0].0, FILES[1].0, FILES[2].0, FILES[3].0, FILES[4].0);
    let cases: Vec<(&str, SearchFilter, Vec<&str>)> = vec![
        ("no filter", SearchFilter::default(), vec![q1, plan, notice, brief, audit]),
        ("language deu", filter(&|f| f.language = vec!["deu".into()]), vec![plan]),
        ("language fr (639-1)", filter(&|f| f.language = vec!["fr".into()]), vec![brief]),
        ("format email", filter(&|f| f.format = vec!["email".into()]), vec![notice]),
        ("MIME type", filter(&|f| f.format = vec!["text/markdown".into(), "text/html".into()]), vec![q1, plan]),
        ("path prefix", filter(&|f| f.path_prefix = Some(format!("{root}/reports/"))), vec![q1, plan]),
        ("path of one file", filter(&|f| f.path_prefix = Some(format!("{root}/{brief}"))), vec![brief]),
        ("a prefix that is no folder", filter(&|f| f.path_prefix = Some(format!("{root}/rep"))), vec![]),
        ("source", filter(&|f| f.source = vec![root.clone()]), vec![q1, plan, notice, brief, audit]),
        ("another source", filter(&|f| f.source = vec!["/elsewhere".into()]), vec![]),
        ("author address", filter(&|f| f.author = vec!["ANA@example.com".into()]), vec![notice]),
        ("author name", filter(&|f| f.author = vec!["jürgen groß".into()]), vec![plan]),
        ("dated from 2023", filter(&|f| f.date_from = Some("2023-01-01".into())), vec![q1, plan]),
        ("dated up to 2022", filter(&|f| f.date_to = Some("2022-12-31".into())), vec![notice, brief, audit]),
        (
            "dated in June 2023",
            filter(&|f| {
                f.date_from = Some("2023-06-01".into());
                f.date_to = Some("2023-06-30".into());
            }),
            vec![plan],
        ),
        ("heading", filter(&|f| f.heading = Some("Dredging BUDGET".into())), vec![q1]),
        (
            "several at once",
            filter(&|f| {
                f.language = vec!["eng".into()];
                f.date_to = Some("2022-12-31".into());
            }),
            vec![notice, audit],
        ),
    ];
    let auditor = ReadAccess::of(&Principal { user: "ines".into(), groups: vec!["audit".into()] });
    let outsider = ReadAccess::of(&Principal { user: "olaf".into(), groups: vec!["staff".into()] });
    for (name, filter, expected) in &cases {
        for (reader, access) in [("auditor", &auditor), ("outsider", &outsider)] {
            let mut expected: BTreeSet<String> = expected.iter().map(|path| path.to_string()).collect();
            if reader == "outsider" {
                expected.remove(audit);
            }
            for mode in [SearchMode::Lexical, SearchMode::Dense, SearchMode::Hybrid] {
                let hits = search(&engine, mode, 100, filter, access);
                let found: BTreeSet<String> = hits.iter().map(|(path, _)| relative(path)).collect();
                assert_eq!(found, expected, "{name}, {reader}, {mode:?}");

                // k = 1: the best chunk that matches. Lexical and dense scores do not depend on
                // what else is visible, so it is the first match of the unfiltered ranking; a
                // fused rank does (ranks are positions in each list), so hybrid is compared
                // with its own filtered ranking.
                let one = search(&engine, mode, 1, filter, access);
                let reference = if mode == SearchMode::Hybrid {
                    hits.clone()
                } else {
                    search(&engine, mode, 100, &SearchFilter::default(), access)
                };
                let best = reference.into_iter().find(|(path, _)| expected.contains(&relative(path)));
                assert_eq!(one.first().cloned(), best, "k = 1: {name}, {reader}, {mode:?}");
            }
        }
    }

    let bad = Search {
        query: QUERY.into(),
        filter: SearchFilter { language: vec!["klingon".into()], ..Default::default() },
        k: 3,
        ..Default::default()
    };
    let refused = engine.search_filtered(&bad, &auditor, "test").unwrap_err();
    assert!(refused.to_string().contains("language"), "{refused}");
}
