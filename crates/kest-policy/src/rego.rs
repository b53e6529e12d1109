//! Rego, in process (`regorus`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use async_trait::async_trait;
use regorus::{CompiledPolicy, Engine, Value as RegoValue};
use serde_json::Value;

use crate::{Decision, EvaluationContext, PolicyEngine, PolicyError};

const ENGINE: &str = "rego";

/// Rego evaluated in process.
///
/// A policy named `a/b` is the rule `data.a.b.allow`; it allows only when that rule is
/// `true`. The input is the evaluation context, unmodified (the Python package overwrites
/// `input.resource`). When a policy denies, its `reasons` rule, if it has one, supplies the
/// reasons. The engine is prepared once (policies parsed and checked when it is built) and
/// cloned for each evaluation.
///
/// ```
/// use kest_policy::{EvaluationContext, PolicyEngine, RegoEngine};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let engine = RegoEngine::builder()
///     .policy_source("trust.rego", r#"package app.read
///         default allow := false
///         allow if input.subject.trust_score >= 50"#)
///     .build()?;
/// let context = EvaluationContext::builder("w").build()?; // trust 100
/// assert!(engine.evaluate("app/read", &context).await?.allow);
/// assert!(!engine.evaluate("app/unknown", &context).await?.allow);
/// # Ok(()) }
/// ```
pub struct RegoEngine {
    prepared: Engine,
    packages: BTreeSet<String>,
    /// By policy name (`a/b` for package `data.a.b`): everything decided at build time.
    policies: HashMap<String, Prepared>,
}

/// One package, ready to evaluate.
struct Prepared {
    /// `data.a.b`.
    package: String,
    /// `data.a.b.allow`, compiled from only the modules it can reach: evaluating a
    /// compiled entry point shares everything analyzed at build time. `None` when the
    /// package has no `allow`.
    compiled: Option<CompiledPolicy>,
    /// What the package (and every package it refers to) reads of `input`; `None` when
    /// it uses `input` as a whole. Only that is converted for each evaluation.
    reads: Option<Members>,
    /// The reason given with an allow.
    allow_reason: String,
}

/// Top-level input members, each whole (`None`) or only some of its own members.
type Members = BTreeMap<String, Option<BTreeSet<String>>>;

impl fmt::Debug for RegoEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegoEngine")
            .field("packages", &self.packages)
            .finish_non_exhaustive()
    }
}

/// Builds a [`RegoEngine`].
#[derive(Debug, Default, Clone)]
#[must_use]
pub struct RegoEngineBuilder {
    sources: Vec<(String, String)>,
    data: Option<Value>,
}

impl RegoEngineBuilder {
    /// Adds a Rego module (Rego v1 syntax). `name` appears in error messages.
    pub fn policy_source(mut self, name: impl Into<String>, source: impl Into<String>) -> Self {
        self.sources.push((name.into(), source.into()));
        self
    }

    /// Base documents under `data`.
    pub fn data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    /// Parses and checks the modules.
    ///
    /// # Errors
    /// [`PolicyError::InvalidPolicy`] naming the module that does not parse.
    pub fn build(self) -> Result<RegoEngine, PolicyError> {
        let prepared = prepare(&self.sources, self.data.as_ref())?;
        let packages: BTreeSet<String> = prepared
            .get_packages()
            .map_err(|error| PolicyError::InvalidInput {
                engine: ENGINE,
                what: "packages",
                reason: error.to_string(),
            })?
            .into_iter()
            .collect();
        let ast = prepared
            .get_ast_as_json()
            .map_err(|error| PolicyError::InvalidInput {
                engine: ENGINE,
                what: "modules",
                reason: error.to_string(),
            })?;
        let analysis = analyze(&ast, &packages);
        let module_packages = analysis
            .as_ref()
            .map(|a| a.module_packages.as_slice())
            .unwrap_or_default();
        let mut policies = HashMap::with_capacity(packages.len());
        for package in &packages {
            // Each entry point is compiled from only the modules it can reach, so an
            // evaluation carries nothing else.
            let info = analysis.as_ref().and_then(|a| a.packages.get(package));
            let mut engine = match info {
                Some(info) => {
                    let needed: Vec<(String, String)> = self
                        .sources
                        .iter()
                        .zip(module_packages)
                        .filter(|(_, module_package)| info.closure.contains(*module_package))
                        .map(|(source, _)| source.clone())
                        .collect();
                    prepare(&needed, self.data.as_ref())?
                }
                None => prepared.clone(),
            };
            let entry: regorus::Rc<str> = format!("{package}.allow").into();
            let name = package.trim_start_matches("data.").replace('.', "/");
            policies.insert(
                name,
                Prepared {
                    package: package.clone(),
                    // A package without `allow` (a helper library) has no entry point.
                    compiled: engine.compile_with_entrypoint(&entry).ok(),
                    reads: info.and_then(|i| i.reads.clone()),
                    allow_reason: format!("{package}.allow is true"),
                },
            );
        }
        Ok(RegoEngine {
            prepared,
            packages,
            policies,
        })
    }
}

/// An engine holding `sources` (and `data`), analyzed and scheduled once, so that clones
/// start prepared instead of re-analyzing every module.
fn prepare(sources: &[(String, String)], data: Option<&Value>) -> Result<Engine, PolicyError> {
    let mut engine = Engine::new();
    for (name, source) in sources {
        engine
            .add_policy(name.clone(), source.clone())
            .map_err(|error| PolicyError::InvalidPolicy {
                engine: ENGINE,
                name: name.clone(),
                reason: error.to_string(),
            })?;
    }
    if let Some(data) = data {
        engine
            .add_data(RegoValue::from(data.clone()))
            .map_err(|error| PolicyError::InvalidInput {
                engine: ENGINE,
                what: "data",
                reason: error.to_string(),
            })?;
    }
    engine
        .eval_query("true".to_owned(), false)
        .map_err(|error| PolicyError::InvalidInput {
            engine: ENGINE,
            what: "modules",
            reason: error.to_string(),
        })?;
    Ok(engine)
}

impl RegoEngine {
    /// Starts a builder.
    pub fn builder() -> RegoEngineBuilder {
        RegoEngineBuilder::default()
    }

    /// Evaluates synchronously; [`PolicyEngine::evaluate`] wraps this.
    ///
    /// # Errors
    /// [`PolicyError::Evaluation`] when the rule fails or is not a boolean.
    pub fn decide(
        &self,
        policy: &str,
        context: &EvaluationContext,
    ) -> Result<Decision, PolicyError> {
        let Some(prepared) = self.policies.get(policy) else {
            return Ok(Decision::deny(vec![format!(
                "no Rego package for policy `{policy}`"
            )]));
        };
        let package = &prepared.package;
        let fail = |reason: String| PolicyError::Evaluation {
            engine: ENGINE,
            policy: policy.to_owned(),
            reason,
        };
        let input = match &prepared.reads {
            Some(members) => to_rego_members(context.document(), members),
            None => to_rego_object(context.document()),
        };
        let interpreted = || {
            let mut engine = self.prepared.clone();
            engine.set_input(to_rego_object(context.document()));
            engine.eval_rule(format!("{package}.allow"))
        };
        let allow = match &prepared.compiled {
            // A few constructs (`with input as …`) fail in regorus's compiled path; the
            // interpreter, with the whole input, is the reference, so ask it instead.
            Some(compiled) => compiled
                .eval_with_input(input.clone())
                .or_else(|_| interpreted()),
            None => Ok(RegoValue::Undefined),
        }
        .map_err(|error| fail(error.to_string()))?;
        match allow {
            RegoValue::Bool(true) => Ok(Decision::allow(vec![prepared.allow_reason.clone()])),
            RegoValue::Bool(false) | RegoValue::Undefined => {
                // Only denials pay for the full engine, to collect the package's reasons.
                let mut engine = self.prepared.clone();
                engine.set_input(to_rego_object(context.document()));
                let mut reasons = engine
                    .eval_rule(format!("{package}.reasons"))
                    .ok()
                    .map(|value| reason_strings(&value))
                    .unwrap_or_default();
                if reasons.is_empty() {
                    reasons.push(format!("{package}.allow is not true"));
                }
                Ok(Decision::deny(reasons))
            }
            other => Err(fail(format!("`allow` must be a boolean, found {other}"))),
        }
    }
}

fn reason_strings(value: &RegoValue) -> Vec<String> {
    let text = |v: &RegoValue| match v {
        RegoValue::String(s) => s.to_string(),
        other => other.to_string(),
    };
    match value {
        RegoValue::Set(items) => items.iter().map(text).collect(),
        RegoValue::Array(items) => items.iter().map(text).collect(),
        RegoValue::String(_) => vec![text(value)],
        _ => Vec::new(),
    }
}

#[async_trait]
impl PolicyEngine for RegoEngine {
    fn name(&self) -> &'static str {
        ENGINE
    }

    async fn evaluate(
        &self,
        policy: &str,
        context: &EvaluationContext,
    ) -> Result<Decision, PolicyError> {
        self.decide(policy, context)
    }
}

/// Converts only the input members a package reads.
fn to_rego_members(map: &serde_json::Map<String, Value>, members: &Members) -> RegoValue {
    let mut object = BTreeMap::new();
    for (key, wanted) in members {
        let Some(value) = map.get(key) else { continue };
        let converted = match (value, wanted) {
            (Value::Object(record), Some(wanted)) => RegoValue::from(
                wanted
                    .iter()
                    .filter_map(|name| {
                        record
                            .get(name)
                            .map(|item| (RegoValue::from(name.as_str()), to_rego(item)))
                    })
                    .collect::<BTreeMap<_, _>>(),
            ),
            (value, _) => to_rego(value),
        };
        object.insert(RegoValue::from(key.as_str()), converted);
    }
    RegoValue::from(object)
}

/// What the syntax trees say about each package.
struct Analysis {
    /// The package of each module, in the order the modules were added.
    module_packages: Vec<String>,
    packages: BTreeMap<String, PackageInfo>,
}

struct PackageInfo {
    /// What the package and everything it refers to read of `input`; `None` for all of it.
    reads: Option<Members>,
    /// The package and every package it refers to, directly or not.
    closure: BTreeSet<String>,
}

/// Reads the modules' syntax trees.
///
/// Every `input.a`, `input.a.b…` and `input["a"]` is recorded; `input` in any other
/// position (an argument, `with input as`, `input[x]`) means the whole input. A package
/// reaches every package it refers to through `data.…` or imports; a reference to `data`
/// as a whole reaches every package. When the trees cannot be read, `None`: every
/// package then gets the whole input and every module, so a policy always sees
/// everything it could look at.
fn analyze(ast_json: &str, packages: &BTreeSet<String>) -> Option<Analysis> {
    let Ok(Value::Array(modules)) = serde_json::from_str::<Value>(ast_json) else {
        return None;
    };
    // Per package: its own reads (None = whole) and the data paths it refers to.
    let mut own: BTreeMap<String, (Option<Members>, Vec<Vec<String>>)> = BTreeMap::new();
    let mut module_packages = Vec::with_capacity(modules.len());
    for module in &modules {
        let ast = module.get("ast")?;
        let (root, path) = ast
            .get("package")
            .and_then(|p| p.get("refr"))
            .and_then(chain)?;
        let name = std::iter::once("data")
            .chain(std::iter::once(root))
            .chain(path.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(".");
        module_packages.push(name.clone());
        let entry = own
            .entry(name)
            .or_insert_with(|| (Some(Members::new()), Vec::new()));
        for part in ["imports", "rules"] {
            if let Some(node) = ast.get(part) {
                walk(node, entry);
            }
        }
    }
    let mut infos = BTreeMap::new();
    for package in packages {
        let mut reads = Some(Members::new());
        let mut closure = BTreeSet::new();
        let mut pending = vec![package.clone()];
        while let Some(next) = pending.pop() {
            if !closure.insert(next.clone()) {
                continue;
            }
            let Some((uses, deps)) = own.get(&next) else {
                continue;
            };
            reads = merge_reads(reads, uses.as_ref());
            for dep in deps {
                let path = format!(
                    "data{}",
                    dep.iter().map(|s| format!(".{s}")).collect::<String>()
                );
                for other in packages {
                    let within = |outer: &str, inner: &str| {
                        inner == outer || inner.starts_with(&format!("{outer}."))
                    };
                    if within(&path, other) || within(other, &path) {
                        pending.push(other.clone());
                    }
                }
            }
        }
        infos.insert(package.clone(), PackageInfo { reads, closure });
    }
    Some(Analysis {
        module_packages,
        packages: infos,
    })
}

fn merge_reads(into: Option<Members>, from: Option<&Members>) -> Option<Members> {
    let (mut into, from) = (into?, from?);
    for (key, wanted) in from {
        match (into.get_mut(key), wanted) {
            (Some(Some(existing)), Some(more)) => existing.extend(more.iter().cloned()),
            (Some(slot), None) => *slot = None,
            (Some(None), Some(_)) => {}
            (None, wanted) => {
                into.insert(key.clone(), wanted.clone());
            }
        }
    }
    Some(into)
}

/// If `node` is a reference chain of literal fields from a variable, the variable and the
/// fields: `input.a["b"].c` is `("input", [a, b, c])`.
fn chain(node: &Value) -> Option<(&str, Vec<String>)> {
    if let Some(var) = node.get("Var") {
        return Some((var.get("value")?.as_str()?, Vec::new()));
    }
    if let Some(dot) = node.get("RefDot") {
        let field = dot
            .get("field")?
            .as_array()?
            .iter()
            .find_map(Value::as_str)?;
        let (root, mut path) = chain(dot.get("refr")?)?;
        path.push(field.to_owned());
        return Some((root, path));
    }
    if let Some(brack) = node.get("RefBrack") {
        let index = brack.get("index")?.get("String")?.get("value")?.as_str()?;
        let (root, mut path) = chain(brack.get("refr")?)?;
        path.push(index.to_owned());
        return Some((root, path));
    }
    None
}

fn walk(node: &Value, entry: &mut (Option<Members>, Vec<Vec<String>>)) {
    if let Some((root, path)) = chain(node) {
        match (root, path.as_slice()) {
            ("input", []) => entry.0 = None,
            ("input", [top]) => {
                if let Some(members) = &mut entry.0 {
                    members.insert(top.clone(), None);
                }
            }
            ("input", [top, member, ..]) => {
                if let Some(members) = &mut entry.0
                    && let Some(set) = members
                        .entry(top.clone())
                        .or_insert_with(|| Some(BTreeSet::new()))
                {
                    set.insert(member.clone());
                }
            }
            ("data", _) => entry.1.push(path),
            _ => {}
        }
        if matches!(root, "input" | "data") {
            return;
        }
    }
    match node {
        Value::Object(map) => map.values().for_each(|v| walk(v, entry)),
        Value::Array(items) => items.iter().for_each(|v| walk(v, entry)),
        _ => {}
    }
}

/// Converts the context straight into a Rego value, without copying it as JSON first.
fn to_rego_object(map: &serde_json::Map<String, Value>) -> RegoValue {
    let object: BTreeMap<RegoValue, RegoValue> = map
        .iter()
        .map(|(key, value)| (RegoValue::from(key.as_str()), to_rego(value)))
        .collect();
    RegoValue::from(object)
}

fn to_rego(value: &Value) -> RegoValue {
    match value {
        Value::Null => RegoValue::Null,
        Value::Bool(b) => RegoValue::from(*b),
        Value::String(s) => RegoValue::from(s.as_str()),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => RegoValue::from(i),
            (None, Some(u), _) => RegoValue::from(u),
            (None, None, Some(f)) => RegoValue::from(f),
            (None, None, None) => RegoValue::Null,
        },
        Value::Array(items) => RegoValue::from(items.iter().map(to_rego).collect::<Vec<_>>()),
        Value::Object(map) => to_rego_object(map),
    }
}
