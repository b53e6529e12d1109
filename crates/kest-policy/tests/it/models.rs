//! The model library: every case of every table, in both languages, agrees with the table
//! and with the other language; random inputs per model agree too.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use std::collections::BTreeMap;

use kest_policy::library::{self, CaseTable, Expect, MODELS};
use kest_policy::{CedarEngine, EvaluationContext, RegoEngine};

fn engines() -> (CedarEngine, RegoEngine) {
    (
        library::cedar_builder().build().unwrap(),
        library::rego_builder().build().unwrap(),
    )
}

/// Cedar and Rego decisions for one context. An engine error counts as a deny (that is
/// what callers do with it), and is reported so that a table can tell.
fn decide(
    cedar: &CedarEngine,
    rego: &RegoEngine,
    policy: &str,
    context: &EvaluationContext,
) -> (bool, bool) {
    let cedar = cedar
        .decide(policy, context)
        .map(|d| d.allow)
        .unwrap_or(false);
    let rego = rego
        .decide(policy, context)
        .map(|d| d.allow)
        .unwrap_or(false);
    (cedar, rego)
}

#[test]
fn every_case_in_both_languages() {
    let (cedar, rego) = engines();
    let mut counts = BTreeMap::new();
    let mut failures = Vec::new();
    for model in &MODELS {
        let table = CaseTable::parse(model.cases).unwrap();
        assert_eq!(table.model, model.name);
        assert_eq!(table.policy, model.policy);
        assert!(
            table.cases.len() >= 12,
            "{}: only {} cases",
            model.name,
            table.cases.len()
        );
        let allows = table
            .cases
            .iter()
            .filter(|c| c.expect == Expect::Allow)
            .count();
        assert!(
            allows >= 2 && allows < table.cases.len() - 2,
            "{}: needs both allows and denies",
            model.name
        );
        for case in &table.cases {
            let context = table.context_for(case).unwrap();
            let expected = case.expect == Expect::Allow;
            let (c, r) = decide(&cedar, &rego, model.policy, &context);
            if c != expected || r != expected {
                failures.push(format!(
                    "{} / {}: expected {:?}, cedar {c}, rego {r}",
                    model.name, case.name, case.expect
                ));
            }
        }
        counts.insert(model.name, table.cases.len());
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(counts.len(), 7);
}

/// A context every model's table allows is denied under a policy name no model has:
/// Cedar rules are keyed on the action, Rego on the package.
#[test]
fn an_unknown_policy_allows_nothing() {
    let (cedar, rego) = engines();
    for model in &MODELS {
        let table = CaseTable::parse(model.cases).unwrap();
        let allowed = table
            .cases
            .iter()
            .find(|c| c.expect == Expect::Allow)
            .unwrap();
        let context = table.context_for(allowed).unwrap();
        assert_eq!(decide(&cedar, &rego, model.policy, &context), (true, true));
        let (c, r) = decide(&cedar, &rego, "kest/no_such_model", &context);
        assert!(!c && !r, "{}: an unknown policy allowed", model.name);
    }
}

/// The files on disk are the ones embedded in the crate.
#[test]
fn embedded_files_match_the_policies_directory() {
    let dir = kest_testkit::workspace_root().join("policies");
    let on_disk = library::load_dir(&dir).unwrap();
    for model in &MODELS {
        let files = on_disk.iter().find(|f| f.name == model.name).unwrap();
        assert_eq!(files.cedar.as_deref(), Some(model.cedar), "{}", model.name);
        assert_eq!(files.rego.as_deref(), Some(model.rego), "{}", model.name);
        assert_eq!(files.cases.as_deref(), Some(model.cases), "{}", model.name);
    }
    let lib = on_disk.iter().find(|f| f.name == "lib").unwrap();
    assert_eq!(lib.rego.as_deref(), Some(library::LIB_REGO));
    assert_eq!(on_disk.len(), MODELS.len() + 1);
}

/// One loader reads a policy directory for the runtime, the CLI and the library: a file
/// that exists but cannot be read is an error naming it, never a model quietly missing
/// its cases; an engine loaded from the directory applies the library's enrichers.
#[test]
fn the_loader_reports_what_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("m.cedar"),
        "permit(principal, action, resource);",
    )
    .unwrap();
    std::fs::write(dir.path().join("m.rego"), "package kest.m\nallow := true").unwrap();
    std::fs::create_dir_all(dir.path().join("cases/m.json")).unwrap();
    let error = library::load_dir(dir.path()).unwrap_err();
    assert!(
        matches!(&error, kest_policy::PolicyError::Io { path, .. } if path.ends_with("cases/m.json")),
        "{error:?}"
    );
    std::fs::remove_dir(dir.path().join("cases/m.json")).unwrap();
    let models = library::load_dir(dir.path()).unwrap();
    assert_eq!(models.len(), 1);
    assert!(models[0].cedar.is_some() && models[0].rego.is_some() && models[0].cases.is_none());

    let empty = tempfile::tempdir().unwrap();
    let error = kest_policy::load_engine(kest_policy::EngineKind::Rego, empty.path()).unwrap_err();
    assert!(error.to_string().contains("no .rego files"), "{error}");
    let error =
        kest_policy::load_engine(kest_policy::EngineKind::Cedar, &empty.path().join("gone"))
            .unwrap_err();
    assert!(
        matches!(error, kest_policy::PolicyError::Io { .. }),
        "{error:?}"
    );
    assert!("prolog".parse::<kest_policy::EngineKind>().is_err());
}

/// The Brewer-Nash model needs attributes computed in Rust; loaded from the policies
/// directory, the Cedar engine has them, so it decides as the case table says.
#[tokio::test]
async fn a_loaded_cedar_engine_has_the_library_enrichers() {
    let dir = kest_testkit::workspace_root().join("policies");
    let engine = kest_policy::load_engine(kest_policy::EngineKind::Cedar, &dir).unwrap();
    let files = library::load_dir(&dir).unwrap();
    let brewer = files
        .iter()
        .find(|f| f.name.contains("brewer"))
        .expect("the Brewer-Nash model is in policies/");
    let table = CaseTable::parse(brewer.cases.as_deref().unwrap()).unwrap();
    for case in &table.cases {
        let context = table.context_for(case).unwrap();
        let allow = engine
            .evaluate(&table.policy, &context)
            .await
            .is_ok_and(|d| d.allow);
        assert_eq!(allow, case.expect == Expect::Allow, "{}", case.name);
    }
}
