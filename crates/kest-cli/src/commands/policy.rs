//! `kest policy eval` and `kest policy test`.

use std::path::Path;
use std::sync::Arc;

use clap::ValueEnum;
use kest_policy::library::{self, CaseTable, Expect};
use kest_policy::{EvaluationContext, PolicyEngine, engine_from_sources};
use serde_json::json;

use crate::error::CliError;
use crate::{input, output};

/// Exit code of `kest policy eval` for a deny.
pub const EXIT_DENY: u8 = 3;
/// Exit code of `kest policy eval` when the engine could not decide (a deny as well).
pub const EXIT_ENGINE_ERROR: u8 = 4;

/// The in-process engines `kest policy` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineKind {
    /// Cedar (`cedar-policy`).
    Cedar,
    /// Rego (`regorus`).
    Rego,
}

/// The options of `kest policy eval`.
#[derive(Debug, Clone)]
pub struct EvalArgs {
    /// Which engine.
    pub engine: EngineKind,
    /// Policy files.
    pub policies: Vec<String>,
    /// The policy name to evaluate.
    pub name: String,
    /// The complete evaluation context.
    pub input: String,
    /// Cedar entities.
    pub entities: Option<String>,
    /// Machine-readable output.
    pub json: bool,
}

impl From<EngineKind> for kest_policy::EngineKind {
    fn from(kind: EngineKind) -> Self {
        match kind {
            EngineKind::Cedar => Self::Cedar,
            EngineKind::Rego => Self::Rego,
        }
    }
}

fn read_sources(paths: &[String]) -> Result<Vec<(String, String)>, CliError> {
    paths
        .iter()
        .map(|path| Ok((path.clone(), input::read(Some(path))?)))
        .collect()
}

/// The engine, built by the loader the runtime uses (so the model library's enrichers
/// apply here exactly as they do in a service).
fn engine(
    kind: EngineKind,
    sources: Vec<(String, String)>,
    entities: Option<String>,
) -> Result<Arc<dyn PolicyEngine>, CliError> {
    engine_from_sources(kind.into(), sources, entities).map_err(CliError::input)
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|error| CliError::input(format!("cannot start the async runtime: {error}")))
}

/// Runs `kest policy eval`: 0 allow, 3 deny, 4 when the engine could not decide, 2 for
/// unusable input.
///
/// # Errors
/// [`CliError::Input`] for unreadable or invalid files; [`CliError::Exit`] for deny and
/// engine failures, after printing the result.
pub fn eval(args: &EvalArgs) -> Result<(), CliError> {
    let sources = read_sources(&args.policies)?;
    let document: serde_json::Value = serde_json::from_str(&input::read(Some(&args.input))?)
        .map_err(|error| CliError::input(format!("{}: {error}", args.input)))?;
    let context = EvaluationContext::from_document(document).map_err(CliError::input)?;
    if args.engine == EngineKind::Rego && args.entities.is_some() {
        return Err(CliError::input(
            "--entities is a Cedar entity store; Rego takes none",
        ));
    }
    let entities = args
        .entities
        .as_deref()
        .map(|path| input::read(Some(path)))
        .transpose()?;
    let engine = engine(args.engine, sources, entities)?;
    let result = runtime()?.block_on(engine.evaluate(&args.name, &context));
    let (verdict, reasons, code) = match &result {
        Ok(decision) if decision.allow => ("allow", decision.reasons.clone(), 0),
        Ok(decision) => ("deny", decision.reasons.clone(), EXIT_DENY),
        Err(error) => (
            "deny",
            vec![format!("engine error: {error}")],
            EXIT_ENGINE_ERROR,
        ),
    };
    if args.json {
        output::line(
            &json!({
                "decision": verdict,
                "policy": args.name,
                "engine": engine.name(),
                "reasons": reasons,
                "error": result.as_ref().err().map(ToString::to_string),
            })
            .to_string(),
        )?;
    } else {
        output::line(verdict)?;
        for reason in &reasons {
            output::line(&format!("  {reason}"))?;
        }
    }
    if code == 0 {
        Ok(())
    } else {
        Err(CliError::Exit(code))
    }
}

/// Runs `kest policy test`: every case table under `dir` against both languages.
///
/// # Errors
/// [`CliError::Failed`] naming the models with mismatches.
pub fn test(dir: &str) -> Result<(), CliError> {
    let root = Path::new(dir);
    let files = library::load_dir(root).map_err(CliError::input)?;
    let cedar_sources: Vec<(String, String)> = files
        .iter()
        .filter_map(|f| f.cedar.clone().map(|s| (format!("{}.cedar", f.name), s)))
        .collect();
    let rego_sources: Vec<(String, String)> = files
        .iter()
        .filter_map(|f| f.rego.clone().map(|s| (format!("{}.rego", f.name), s)))
        .collect();
    let cedar = engine(EngineKind::Cedar, cedar_sources, None)?;
    let rego = engine(EngineKind::Rego, rego_sources, None)?;
    let runtime = runtime()?;
    let mut failed = Vec::new();
    let mut models = 0;
    for file in files.iter().filter(|f| f.cases.is_some()) {
        let table = CaseTable::parse(file.cases.as_deref().unwrap_or_default())
            .map_err(|error| CliError::input(format!("cases/{}.json: {error}", file.name)))?;
        let (mut cedar_ok, mut rego_ok, mut disagree) = (0, 0, 0);
        let mut mismatches = Vec::new();
        for case in &table.cases {
            let context = table.context_for(case).map_err(CliError::input)?;
            let expected = case.expect == Expect::Allow;
            let decide = |engine: &Arc<dyn PolicyEngine>| {
                runtime
                    .block_on(engine.evaluate(&table.policy, &context))
                    .is_ok_and(|decision| decision.allow)
            };
            let (c, r) = (decide(&cedar), decide(&rego));
            cedar_ok += usize::from(c == expected);
            rego_ok += usize::from(r == expected);
            disagree += usize::from(c != r);
            if c != expected || r != expected {
                mismatches.push(format!(
                    "{} (expected {:?}, cedar {c}, rego {r})",
                    case.name, case.expect
                ));
            }
        }
        let total = table.cases.len();
        let status = if mismatches.is_empty() {
            "ok"
        } else {
            "MISMATCH"
        };
        output::line(&format!(
            "{}: {total} cases, cedar {cedar_ok}/{total}, rego {rego_ok}/{total}, {disagree} disagreements: {status}",
            file.name
        ))?;
        for mismatch in &mismatches {
            output::line(&format!("  {mismatch}"))?;
        }
        if !mismatches.is_empty() {
            failed.push(file.name.clone());
        }
        models += 1;
    }
    if models == 0 {
        return Err(CliError::input(format!(
            "{dir}: no case tables under cases/"
        )));
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::Failed(format!(
            "case tables failed: {}",
            failed.join(", ")
        )))
    }
}
