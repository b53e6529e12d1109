//! The formal-model library: seven access-control models in Cedar and Rego, with case
//! tables that both versions must agree on.
//!
//! The files live in the workspace's `policies/` directory and are embedded here; they can
//! also be loaded from disk with [`load_dir`].

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::{Enricher, EvaluationContext, PolicyError};

/// Helpers shared by the Rego models (`package kest.lib`).
pub const LIB_REGO: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/policies/lib.rego"));

/// One model of the library.
#[derive(Debug, Clone, Copy)]
pub struct Model {
    /// Short name, e.g. `bell_lapadula`: the file stem.
    pub name: &'static str,
    /// The policy name engines evaluate: `kest/<name>` (Cedar action, Rego package path).
    pub policy: &'static str,
    /// What it enforces, in one line.
    pub summary: &'static str,
    /// The Cedar source.
    pub cedar: &'static str,
    /// The Rego source.
    pub rego: &'static str,
    /// The case table (JSON).
    pub cases: &'static str,
    /// For Cedar, the attributes Rust computes under `context.derived`, if the model needs
    /// any.
    pub enricher: Option<Enricher>,
}

macro_rules! model {
    ($name:literal, $summary:literal, $enricher:expr) => {
        Model {
            name: $name,
            policy: concat!("kest/", $name),
            summary: $summary,
            cedar: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/policies/",
                $name,
                ".cedar"
            )),
            rego: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/policies/",
                $name,
                ".rego"
            )),
            cases: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/policies/cases/",
                $name,
                ".json"
            )),
            enricher: $enricher,
        }
    };
}

/// Every model.
pub static MODELS: [Model; 7] = [
    model!(
        "bell_lapadula",
        "confidentiality: no read up, no write down",
        None
    ),
    model!("biba", "integrity: no read down, no write up", None),
    model!(
        "brewer_nash",
        "conflict of interest: no access to a competitor in a conflict class already touched",
        Some(brewer_nash_derived)
    ),
    model!(
        "clark_wilson",
        "access only through certified (user, transformation, item) triples",
        None
    ),
    model!(
        "goguen_meseguer",
        "non-interference: cross-domain access only where the relation allows",
        None
    ),
    model!(
        "financial_limits",
        "per-transaction limit, MFA for withdrawals, high risk denied",
        None
    ),
    model!(
        "clearance",
        "trust score 80 or an admin config change; restricted countries denied",
        None
    ),
];

/// The model with this name or policy name.
#[must_use]
pub fn find(name: &str) -> Option<&'static Model> {
    MODELS.iter().find(|m| m.name == name || m.policy == name)
}

/// The Cedar enricher the library registers for a policy name, if any.
#[must_use]
pub fn enricher_for(policy: &str) -> Option<Enricher> {
    find(policy).and_then(|m| m.enricher)
}

/// A Cedar engine builder holding every model, with their enrichers.
#[cfg(feature = "cedar")]
pub fn cedar_builder() -> crate::CedarEngineBuilder {
    MODELS
        .iter()
        .fold(crate::CedarEngine::builder(), |builder, model| {
            let builder = builder.policy_source(format!("{}.cedar", model.name), model.cedar);
            match model.enricher {
                Some(enricher) => builder.enricher(model.policy, enricher),
                None => builder,
            }
        })
}

/// Every Cedar policy of the library as `(id, text)`, one policy each: the form a Cedar
/// agent's policy store takes. The id is the policy's `@id` annotation.
///
/// # Errors
/// [`PolicyError::InvalidPolicy`] if a model does not parse (a bug in the library).
#[cfg(feature = "cedar")]
pub fn cedar_policy_texts() -> Result<Vec<(String, String)>, PolicyError> {
    let mut texts = Vec::new();
    for model in &MODELS {
        let set: cedar_policy::PolicySet =
            model
                .cedar
                .parse()
                .map_err(
                    |error: cedar_policy::ParseErrors| PolicyError::InvalidPolicy {
                        engine: "cedar",
                        name: model.name.to_owned(),
                        reason: error.to_string(),
                    },
                )?;
        for policy in set.policies() {
            let id = policy
                .annotation("id")
                .map_or_else(|| policy.id().to_string(), str::to_owned);
            texts.push((id, policy.to_string()));
        }
    }
    Ok(texts)
}

/// A Rego engine builder holding every model and the shared helpers.
#[cfg(feature = "rego")]
pub fn rego_builder() -> crate::RegoEngineBuilder {
    MODELS.iter().fold(
        crate::RegoEngine::builder().policy_source("lib.rego", LIB_REGO),
        |builder, model| builder.policy_source(format!("{}.rego", model.name), model.rego),
    )
}

/// `context.derived` for Brewer-Nash, computed from the same input the Rego version reads:
///
/// - `input_valid`: the object's `company` and `conflict_class` are strings, and
///   `history` is absent, null, or a list of objects whose `company` and
///   `conflict_class` are strings;
/// - `companies_in_class`: the companies in the history whose `conflict_class` is the
///   object's.
#[must_use]
pub fn brewer_nash_derived(context: &EvaluationContext) -> Map<String, Value> {
    let document = context.document();
    let attributes = document.get("object").and_then(|o| o.get("attributes"));
    let text = |key: &str| attributes.and_then(|a| a.get(key)).and_then(Value::as_str);
    let (class, company) = (text("conflict_class"), text("company"));
    let entries: Option<Vec<(&str, &str)>> = match document.get("history") {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                Some((
                    item.get("company")?.as_str()?,
                    item.get("conflict_class")?.as_str()?,
                ))
            })
            .collect(),
        Some(_) => None,
    };
    let valid = class.is_some() && company.is_some() && entries.is_some();
    let companies: Vec<&str> = entries
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, entry_class)| Some(*entry_class) == class)
        .map(|(entry_company, _)| entry_company)
        .collect();
    let mut derived = Map::new();
    derived.insert("input_valid".into(), json!(valid));
    derived.insert("companies_in_class".into(), json!(companies));
    derived
}

/// A model's files as read from disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFiles {
    /// The file stem.
    pub name: String,
    /// The Cedar source, if a `.cedar` file exists.
    pub cedar: Option<String>,
    /// The Rego source, if a `.rego` file exists.
    pub rego: Option<String>,
    /// The case table, if `cases/<name>.json` exists.
    pub cases: Option<String>,
}

/// Reads every `<name>.cedar` / `<name>.rego` pair of a directory, with its case table,
/// through the same reader as [`crate::load_engine`]. `lib.rego` is returned as a model
/// named `lib` with only Rego.
///
/// # Errors
/// [`PolicyError::Io`] when the directory, a policy file or an existing case table
/// cannot be read.
pub fn load_dir(dir: &Path) -> Result<Vec<ModelFiles>, PolicyError> {
    use crate::loader::{EngineKind, io_error, read_files};
    fn model(models: &mut BTreeMap<String, ModelFiles>, name: String) -> &mut ModelFiles {
        models.entry(name.clone()).or_insert(ModelFiles {
            name,
            cedar: None,
            rego: None,
            cases: None,
        })
    }
    let mut models = BTreeMap::new();
    for (name, source) in read_files(EngineKind::Cedar, dir)? {
        model(&mut models, name).cedar = Some(source);
    }
    for (name, source) in read_files(EngineKind::Rego, dir)? {
        model(&mut models, name).rego = Some(source);
    }
    for model in models.values_mut() {
        let path = dir.join("cases").join(format!("{}.json", model.name));
        model.cases = match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => return Err(io_error(&path, &error)),
        };
    }
    Ok(models.into_values().collect())
}

/// The expected decision of a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    /// The policy must allow.
    Allow,
    /// The policy must deny (or fail, which is a deny).
    Deny,
}

/// One case of a table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// What it checks.
    pub name: String,
    /// Changes to the table's base context: objects merge, other values replace, and the
    /// string `"$absent"` removes a member.
    pub context: Value,
    /// The decision both languages must give.
    pub expect: Expect,
}

/// A model's case table: `policies/cases/<model>.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseTable {
    /// The model.
    pub model: String,
    /// The policy name to evaluate.
    pub policy: String,
    /// The context every case starts from: a complete evaluation context.
    pub base: Value,
    /// The cases.
    pub cases: Vec<Case>,
}

impl CaseTable {
    /// Parses a case table.
    ///
    /// # Errors
    /// [`PolicyError::InvalidInput`] when the JSON is not a case table.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        serde_json::from_str(text).map_err(|error| PolicyError::InvalidInput {
            engine: "library",
            what: "case table",
            reason: error.to_string(),
        })
    }

    /// The complete context of `case`: the base with the case's changes applied.
    ///
    /// # Errors
    /// [`PolicyError::Context`] when the result is not an object.
    pub fn context_for(&self, case: &Case) -> Result<EvaluationContext, PolicyError> {
        let mut document = self.base.clone();
        merge(&mut document, &case.context);
        EvaluationContext::from_document(document)
    }
}

/// Merges `patch` into `target`: objects recursively, anything else replaced, and
/// `"$absent"` deletes.
pub fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.as_str() == Some("$absent") {
                    target.remove(key);
                } else if let Some(existing) = target.get_mut(key) {
                    merge(existing, value);
                } else {
                    target.insert(key.clone(), value.clone());
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}
