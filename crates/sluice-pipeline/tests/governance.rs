//! Governance through the library: a permission matrix over real POSIX owners, modes, ACL
//! xattrs and pipeline rules, checked on lexical, dense and hybrid search, lineage and export;
//! a mode change that re-embeds nothing; PII policies on a planted fixture; the audit trail
//! of a run; and cost records that add up.
//!
//! Files are given other owners with `chown`, which needs root: without it the permission
//! tests say so and skip.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use sluice_config::{AccessRule, PiiPolicyPlan, PrincipalMap};
use sluice_core::{Principal, ReadAccess};
use sluice_pipeline::{
    ACL_GROUP, ACL_GROUP_OBJ, ACL_MASK, ACL_OTHER, ACL_READ, ACL_USER, ACL_USER_OBJ, AclEntry, Engine, Quiet, Scope,
    encode_posix_acl,
};
use sluice_store::{ExportFormat, SearchMode};

use common::engine_with;

const ALICE: u32 = 51001;
const BOB: u32 = 51002;
const CAROL: u32 = 51003;
const DAVE: u32 = 51004;
const ENG: u32 = 52001;
const HR: u32 = 52002;
const FINANCE: u32 = 52003;

/// Numeric ids with no local account are captured as `user:51001`; the pipeline maps them.
fn access_plan(plan: &mut sluice_config::PipelinePlan) {
    let map = |from: String, to: &str| PrincipalMap { from, to: vec![to.to_owned()] };
    plan.access.map = vec![
        map(format!("user:{ALICE}"), "user:alice"),
        map(format!("user:{BOB}"), "user:bob"),
        map(format!("user:{CAROL}"), "user:carol"),
        map(format!("user:{DAVE}"), "user:dave"),
        map(format!("group:{ENG}"), "group:eng"),
        map(format!("group:{HR}"), "group:hr"),
        map(format!("group:{FINANCE}"), "group:finance"),
    ];
    plan.access.rules = vec![
        AccessRule {
            path: glob::Pattern::new("hr/**").unwrap(),
            readers: vec!["group:hr".into()],
            replace: true,
            public: false,
        },
        AccessRule {
            path: glob::Pattern::new("public/**").unwrap(),
            readers: Vec::new(),
            replace: false,
            public: true,
        },
    ];
}

fn principal(user: &str, groups: &[&str]) -> ReadAccess {
    ReadAccess::of(&Principal { user: user.into(), groups: groups.iter().map(|g| g.to_string()).collect() })
}

/// A file of the matrix: its path, what makes it readable, and who may read it.
struct Case {
    path: &'static str,
    owner: u32,
    group: u32,
    mode: u32,
    acl: Option<Vec<AclEntry>>,
    readers: &'static [&'static str],
}

fn entry(tag: u16, perm: u16, id: u32) -> AclEntry {
    AclEntry { tag, perm, id }
}

fn cases() -> Vec<Case> {
    let acl_base = |extra: Vec<AclEntry>, mask: u16| {
        let mut entries = vec![entry(ACL_USER_OBJ, 6, u32::MAX), entry(ACL_GROUP_OBJ, 0, u32::MAX)];
        entries.extend(extra);
        entries.push(entry(ACL_MASK, mask, u32::MAX));
        entries.push(entry(ACL_OTHER, 0, u32::MAX));
        // The kernel takes an ACL only in its canonical order (by tag, then id).
        entries.sort_by_key(|entry| (entry.tag, entry.id));
        entries
    };
    vec![
        Case { path: "alice-private.txt", owner: ALICE, group: ENG, mode: 0o600, acl: None, readers: &["alice"] },
        Case {
            path: "eng-shared.txt",
            owner: BOB,
            group: ENG,
            mode: 0o640,
            acl: None,
            readers: &["alice", "bob", "carol"],
        },
        Case {
            path: "world.txt",
            owner: DAVE,
            group: HR,
            mode: 0o644,
            acl: None,
            readers: &["alice", "bob", "carol", "dave"],
        },
        // The rule replaces what the share says (everyone) with group hr.
        Case { path: "hr/salaries.txt", owner: DAVE, group: ENG, mode: 0o644, acl: None, readers: &["bob"] },
        Case {
            path: "acl-granted.txt",
            owner: ALICE,
            group: ENG,
            mode: 0o600,
            acl: Some(acl_base(vec![entry(ACL_USER, ACL_READ, CAROL), entry(ACL_GROUP, ACL_READ, HR)], ACL_READ)),
            readers: &["alice", "carol", "bob"],
        },
        // The mask takes read away from the named entry.
        Case {
            path: "acl-masked.txt",
            owner: DAVE,
            group: ENG,
            mode: 0o600,
            acl: Some(acl_base(vec![entry(ACL_USER, ACL_READ, ALICE)], 0)),
            readers: &["dave"],
        },
        Case {
            path: "public/handbook.txt",
            owner: DAVE,
            group: HR,
            mode: 0o600,
            acl: None,
            readers: &["dave", "alice", "bob", "carol", "anonymous"],
        },
        // Everyone may read the file, but only group finance may enter its folder (0750,
        // root:finance): not others, and not the file's own owner dave, who is in no group
        // of the folder.
        Case { path: "closed/inner.txt", owner: DAVE, group: FINANCE, mode: 0o644, acl: None, readers: &["carol"] },
        Case { path: "nobody.txt", owner: 0, group: 0, mode: 0o000, acl: None, readers: &[] },
    ]
}

fn readers() -> Vec<(&'static str, ReadAccess)> {
    vec![
        ("alice", principal("alice", &["eng"])),
        ("bob", principal("bob", &["hr"])),
        ("carol", principal("carol", &["eng", "finance"])),
        ("dave", principal("dave", &[])),
        ("anonymous", ReadAccess::anonymous()),
    ]
}

/// Writes the matrix under `inbox`; `None` (with the reason printed) where this machine
/// cannot set owners or ACLs.
fn write_matrix(inbox: &Path) -> Option<()> {
    std::fs::create_dir_all(inbox.join("hr")).unwrap();
    std::fs::create_dir_all(inbox.join("public")).unwrap();
    std::fs::create_dir_all(inbox.join("closed")).unwrap();
    for folder in [inbox.to_owned(), inbox.join("hr"), inbox.join("public")] {
        std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(inbox.join("closed"), std::fs::Permissions::from_mode(0o750)).unwrap();
    if std::os::unix::fs::chown(inbox.join("closed"), Some(0), Some(FINANCE)).is_err() {
        eprintln!("SKIPPED: changing file owners needs root (chown failed)");
        return None;
    }
    for (index, case) in cases().iter().enumerate() {
        let path = inbox.join(case.path);
        let text = format!(
            "Governance memo number {index}. The codeword for this memo is quokka{index}. It covers the {} \
             budget, the {} schedule and the review of {} contracts for the coming quarter.",
            ["harbour", "orchard", "granite", "lantern", "willow", "copper", "meadow", "beacon", "thistle"][index],
            ["spring", "summer", "autumn", "winter", "annual", "weekly", "monthly", "daily", "yearly"][index],
            ["supplier", "cleaning", "catering", "security", "transport", "printing", "software", "hardware", "legal"]
                [index],
        );
        std::fs::write(&path, text).unwrap();
        std::os::unix::fs::chown(&path, Some(case.owner), Some(case.group)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(case.mode)).unwrap();
        if let Some(acl) = &case.acl
            && let Err(err) = xattr::set(&path, "system.posix_acl_access", &encode_posix_acl(acl))
        {
            eprintln!("SKIPPED: this file system does not take POSIX ACLs ({err})");
            return None;
        }
    }
    Some(())
}

/// The matrix's file names each reader may see.
fn expected() -> BTreeMap<&'static str, BTreeSet<&'static str>> {
    let mut expected: BTreeMap<&str, BTreeSet<&str>> =
        readers().into_iter().map(|(name, _)| (name, BTreeSet::new())).collect();
    for case in cases() {
        for reader in case.readers {
            expected.get_mut(reader).unwrap().insert(case.path);
        }
    }
    expected
}

fn relative(path: &str, inbox: &Path) -> String {
    let root = std::fs::canonicalize(inbox).unwrap();
    path.strip_prefix(&format!("{}/", root.display())).unwrap_or(path).to_owned()
}

#[test]
fn the_permission_matrix_leaks_nothing_and_hides_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (inbox, data) = (dir.path().join("inbox"), dir.path().join("data"));
    if write_matrix(&inbox).is_none() {
        return;
    }
    let engine = engine_with(&inbox, &data, access_plan);
    let summary = engine.run(&Scope::All, &Quiet).unwrap();
    assert_eq!(summary.indexed, cases().len(), "{summary:?}");
    let expected = expected();

    // Every chunk, as the administrator sees it, for lineage below.
    let all = engine.search("governance memo codeword", None, 100, SearchMode::Lexical, &ReadAccess::Unrestricted, "t");
    let all = all.unwrap().hits;
    assert_eq!(all.len(), cases().len());

    for (name, access) in readers() {
        let allowed = &expected[name];
        for mode in [SearchMode::Lexical, SearchMode::Dense, SearchMode::Hybrid] {
            let hits = engine.search("governance memo codeword budget", None, 100, mode, &access, name).unwrap().hits;
            let seen: BTreeSet<String> = hits.iter().map(|hit| relative(&hit.path, &inbox)).collect();
            let allowed_owned: BTreeSet<String> = allowed.iter().map(|p| p.to_string()).collect();
            assert_eq!(seen, allowed_owned, "{name} searching in {mode:?} mode");
        }
        for (index, case) in cases().iter().enumerate() {
            let query = format!("quokka{index}");
            let hits = engine.search(&query, None, 1, SearchMode::Lexical, &access, name).unwrap().hits;
            let found = hits.iter().any(|hit| relative(&hit.path, &inbox) == case.path);
            assert_eq!(found, allowed.contains(case.path), "{name} looking for {}", case.path);
            // The filter is inside the nearest-neighbour search: the best readable chunk comes
            // back even when the nearest chunk of all is one the reader may not see.
            let dense = engine.search(&query, None, 1, SearchMode::Dense, &access, name).unwrap().hits;
            assert_eq!(dense.len(), usize::from(!allowed.is_empty()), "{name}: one dense hit for {query}");
        }
        for hit in &all {
            let lineage = engine.operations().lineage(hit.chunk_id, &access, false).unwrap();
            let may = allowed.contains(relative(&hit.path, &inbox).as_str());
            assert_eq!(lineage.is_some(), may, "{name}: lineage of {}", hit.path);
        }
        let out = dir.path().join(format!("export-{name}.jsonl"));
        engine.operations().export(None, &access, false, ExportFormat::Jsonl, false, &out, "test").unwrap();
        let exported: BTreeSet<String> = std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .map(|line| {
                let row: serde_json::Value = serde_json::from_str(line).unwrap();
                relative(row["path"].as_str().unwrap(), &inbox)
            })
            .collect();
        assert_eq!(exported, allowed.iter().map(|p| p.to_string()).collect(), "{name}: export");
    }

    // Verify checks that both indexes filter on the catalog's readers.
    assert_eq!(engine.store().verify(None).unwrap().problem_count, 0);
    let widened = common::tamper_catalog(
        &data,
        "UPDATE documents SET readers = '[\"everyone\"]' WHERE rel_path = 'alice-private.txt'",
    );
    assert_eq!(widened, 1);
    let report = engine.store().verify(None).unwrap();
    assert_eq!(report.problem_count, 2, "{:?}", report.problems);
    assert!(
        report.problems.iter().any(|p| p.starts_with("Qdrant lets [\"user:alice\"] read")),
        "{:?}",
        report.problems
    );
}

#[test]
fn a_mode_change_re_embeds_nothing_and_takes_effect_in_the_next_version() {
    let dir = tempfile::tempdir().unwrap();
    let (inbox, data) = (dir.path().join("inbox"), dir.path().join("data"));
    if write_matrix(&inbox).is_none() {
        return;
    }
    let engine = engine_with(&inbox, &data, access_plan);
    let first = engine.run(&Scope::All, &Quiet).unwrap();
    let chunks_before = engine.store().chunk_ids_visible_at(1).unwrap()[0].len();
    let alice = principal("alice", &["eng"]);
    let sees_world = |version| {
        let hits = engine.search("quokka2", Some(version), 5, SearchMode::Lexical, &alice, "alice").unwrap().hits;
        hits.iter().any(|hit| hit.path.ends_with("world.txt"))
    };
    assert!(sees_world(1));

    // Only the mode changes (the bytes and the modification time stay).
    std::fs::set_permissions(inbox.join("world.txt"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let second = engine.run(&Scope::All, &Quiet).unwrap();
    assert_eq!(second.version, Some(2));
    assert_eq!((second.access_changed, second.changed, second.new), (1, 0, 0), "{second:?}");
    assert_eq!(second.embeddings_computed, 0, "a permission change must not embed anything");
    assert_eq!(second.chunks_reused, second.chunks_added, "chunks come from the catalog, not the extractor");
    assert!(first.embeddings_computed > 0);
    assert_eq!(engine.store().chunk_ids_visible_at(2).unwrap()[0].len(), chunks_before);
    assert!(!sees_world(2), "version 2 carries the new ACL");
    // Version 1 keeps the ACL it was committed with, but under `history = "current"` (the
    // default) a reader who lost access loses it in every version.
    assert!(!sees_world(1), "a revoked reader reads the file through version 1");
    let admin = engine.search("quokka2", Some(1), 5, SearchMode::Lexical, &ReadAccess::Unrestricted, "admin").unwrap();
    assert!(admin.hits.iter().any(|hit| hit.path.ends_with("world.txt")), "version 1 still holds it");
    let dave = principal("dave", &[]);
    let hits = engine.search("quokka2", None, 5, SearchMode::Dense, &dave, "dave").unwrap().hits;
    assert!(hits.iter().any(|hit| hit.path.ends_with("world.txt")), "the owner still reads it");
    assert_eq!(engine.store().verify(None).unwrap().problem_count, 0);

    // Nothing changed since: no version.
    assert_eq!(engine.run(&Scope::All, &Quiet).unwrap().version, None);
}

/// Values the fixture plants, and those it plants with broken checksums.
fn planted() -> (String, serde_json::Value) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/pii");
    let text = std::fs::read_to_string(root.join("planted.md")).unwrap();
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("planted.expected.json")).unwrap()).unwrap();
    (text, expected)
}

fn values(expected: &serde_json::Value, key: &str) -> Vec<String> {
    expected[key].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
}

#[test]
fn pii_is_tagged_or_masked_as_configured_and_never_reaches_the_audit_log() {
    let (text, expected) = planted();
    let flagged: Vec<String> =
        ["email", "iban", "card", "phone", "ip"].iter().flat_map(|kind| values(&expected, kind)).collect();
    let not_flagged = values(&expected, "not_flagged");
    for policy in [PiiPolicyPlan::Tag, PiiPolicyPlan::Mask] {
        let dir = tempfile::tempdir().unwrap();
        let (inbox, data) = (dir.path().join("inbox"), dir.path().join("data"));
        std::fs::create_dir_all(&inbox).unwrap();
        std::fs::write(inbox.join("memo.md"), &text).unwrap();
        let engine = engine_with(&inbox, &data, |plan| plan.pii.policy = policy);
        engine.run(&Scope::All, &Quiet).unwrap();
        let chunks = engine.store().catalog().chunks_visible_at("default", 1).unwrap();
        let stored: String = chunks.iter().map(|chunk| chunk.text.as_str()).collect::<Vec<_>>().join("\n");
        let kinds: BTreeSet<&str> = chunks.iter().flat_map(|chunk| chunk.pii.iter().map(String::as_str)).collect();
        assert_eq!(kinds, BTreeSet::from(["card", "email", "iban", "ip", "phone"]), "{policy:?}");
        for value in &flagged {
            assert_eq!(stored.contains(value.as_str()), policy == PiiPolicyPlan::Tag, "{policy:?}: {value}");
        }
        for value in &not_flagged {
            assert!(stored.contains(value.as_str()), "{policy:?}: {value} has a bad checksum and stays");
        }
        if policy == PiiPolicyPlan::Mask {
            assert!(stored.contains("[EMAIL]") && stored.contains("[IBAN]") && stored.contains("[CARD]"));
        }
        // Counts go to lineage and the audit log; values go nowhere else.
        let lineage =
            engine.operations().lineage(chunks[0].chunk_id, &ReadAccess::Unrestricted, true).unwrap().unwrap();
        let counted: usize = lineage.pii.document.values().sum();
        assert_eq!(counted, flagged.len(), "{:?}", lineage.pii.document);
        let audit = engine.store().catalog().audit_entries(None, 0, 10_000).unwrap();
        let action = if policy == PiiPolicyPlan::Tag { "pii_tagged" } else { "redacted" };
        let entry = audit.iter().find(|entry| entry.action == action).expect("the PII decision is audited");
        assert_eq!(entry.detail["counts"]["iban"], 2);
        let log = serde_json::to_string(&audit).unwrap();
        for value in flagged.iter().chain(&not_flagged) {
            assert!(!log.contains(value.as_str()), "{value} leaked into the audit log");
        }
    }

    // drop-chunk: no chunk holding a value survives; a clean document is untouched.
    let dir = tempfile::tempdir().unwrap();
    let (inbox, data) = (dir.path().join("inbox"), dir.path().join("data"));
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::write(inbox.join("memo.md"), &text).unwrap();
    std::fs::write(inbox.join("clean.txt"), "The lock gates open at dawn and close at dusk.").unwrap();
    let engine = engine_with(&inbox, &data, |plan| plan.pii.policy = PiiPolicyPlan::DropChunk);
    engine.run(&Scope::All, &Quiet).unwrap();
    let chunks = engine.store().catalog().chunks_visible_at("default", 1).unwrap();
    assert!(chunks.iter().any(|chunk| chunk.path.ends_with("clean.txt")));
    assert!(chunks.iter().all(|chunk| chunk.pii.is_empty()));
    let stored: String = chunks.iter().map(|chunk| chunk.text.as_str()).collect();
    assert!(flagged.iter().all(|value| !stored.contains(value.as_str())));
    let audit = engine.store().catalog().audit_entries(None, 0, 10_000).unwrap();
    assert!(audit.iter().any(|entry| entry.action == "redacted" && entry.detail["policy"] == "drop-chunk"));
}

#[test]
fn a_run_is_audited_and_its_costs_add_up() {
    let dir = tempfile::tempdir().unwrap();
    let (inbox, data) = (dir.path().join("inbox"), dir.path().join("data"));
    std::fs::create_dir_all(&inbox).unwrap();
    for i in 0..5 {
        let text =
            format!("Report {i}. The quarterly ledger of the canal company lists repairs to gate {i}. ").repeat(20);
        std::fs::write(inbox.join(format!("doc-{i}.txt")), text).unwrap();
    }
    std::fs::write(inbox.join("copy.txt"), std::fs::read(inbox.join("doc-0.txt")).unwrap()).unwrap();
    std::fs::write(inbox.join("empty.txt"), "").unwrap();
    let bytes: u64 = std::fs::read_dir(&inbox).unwrap().map(|entry| entry.unwrap().metadata().unwrap().len()).sum();
    let engine = engine_with(&inbox, &data, |_| {});
    let summary = engine.run(&Scope::All, &Quiet).unwrap();
    assert_eq!((summary.indexed, summary.duplicates, summary.quarantined_total()), (5, 1, 1));

    let audit = engine.store().catalog().audit_entries(None, 0, 10_000).unwrap();
    let count = |action: &str| audit.iter().filter(|entry| entry.action == action).count();
    assert_eq!((count("ingested"), count("duplicate"), count("quarantined"), count("version_committed")), (5, 1, 1, 1));
    assert!(audit.iter().all(|entry| entry.principal == "pipeline"));
    std::fs::remove_file(inbox.join("doc-4.txt")).unwrap();
    engine.run(&Scope::All, &Quiet).unwrap();
    engine.operations().promote(1, "carol", false).unwrap();
    let audit = engine.store().catalog().audit_entries(None, 0, 10_000).unwrap();
    assert!(audit.iter().any(|entry| entry.action == "retired" && entry.subject.ends_with("doc-4.txt")));
    assert!(audit.iter().any(|entry| entry.action == "promoted" && entry.principal == "carol"));
    let verification = engine.store().catalog().verify_audit(None).unwrap();
    assert!(verification.first_bad.is_none(), "{verification:?}");

    // Costs: every processed file has a row; the version totals are their sums; the stages'
    // wall times are the run's.
    let report = engine.store().catalog().cost_report("default", Some(1)).unwrap();
    let version = &report.versions[0];
    assert_eq!(version.files, 7);
    assert_eq!(version.outcomes.get("indexed"), Some(&5));
    assert_eq!(version.bytes, bytes);
    let stage_sum: f64 = version.stages.values().map(|stage| stage.total.wall).sum();
    assert!((stage_sum - version.total.wall).abs() < 1e-5);
    let source_sum: f64 = version.sources.iter().map(|source| source.total.wall).sum();
    assert!((source_sum - version.total.wall).abs() < 1e-5);
    for (stage, seconds) in &summary.stage_seconds {
        let recorded = version.stages.get(stage.as_str()).map_or(0.0, |s| s.total.wall);
        assert!((recorded - seconds).abs() < 1e-3 + seconds * 1e-6, "{stage}: {recorded} vs {seconds}");
    }
    assert!(version.stages["embed"].total.cpu > 0.0, "the forward pass used CPU time");
    assert_eq!(version.tokens, summary_tokens(&engine));
}

/// Tokens of the chunks visible at version 1.
fn summary_tokens(engine: &Engine) -> u64 {
    let chunks = engine.store().catalog().chunks_visible_at("default", 1).unwrap();
    chunks.iter().map(|chunk| u64::from(chunk.token_count)).sum()
}
