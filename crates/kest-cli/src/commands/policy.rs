//! `kest policy eval` and `kest policy test`.

use std::path::Path;

use clap::ValueEnum;
use kest_policy::library::{self, CaseTable, Expect};
use kest_policy::{CedarEngine, EvaluationContext, PolicyEngine, RegoEngine};
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

fn read_sources(paths: &[String]) -> Result<Vec<(String, String)>, CliError> {
    paths
        .iter()
        .map(|path| Ok((path.clone(), input::read(Some(path))?)))
        .collect()
}

fn cedar_engine(
    sources: Vec<(String, String)>,
    entities: Option<String>,
) -> Result<CedarEngine, CliError> {
    let mut builder = CedarEngine::builder();
    for (name, source) in sources {
        builder = builder.policy_source(name, source);
    }
    // The library's models need Rust-computed attributes; apply them by policy name.
    for model in &library::MODELS {
        if let Some(enricher) = model.enricher {
            builder = builder.enricher(model.policy, enricher);
        }
    }
    if let Some(json) = entities {
        builder = builder.entities_json(json);
    }
    builder.build().map_err(CliError::input)
}

fn rego_engine(sources: Vec<(String, String)>) -> Result<RegoEngine, CliError> {
    sources
        .into_iter()
        .fold(RegoEngine::builder(), |builder, (name, source)| {
            builder.policy_source(name, source)
        })
        .build()
        .map_err(CliError::input)
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
    let engine: Box<dyn PolicyEngine> = match args.engine {
        EngineKind::Cedar => {
            let entities = args
                .entities
                .as_deref()
                .map(|path| input::read(Some(path)))
                .transpose()?;
            Box::new(cedar_engine(sources, entities)?)
        }
        EngineKind::Rego => {
            if args.entities.is_some() {
                return Err(CliError::input(
                    "--entities is a Cedar entity store; Rego takes none",
                ));
            }
            Box::new(rego_engine(sources)?)
        }
    };
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
    let cedar = cedar_engine(cedar_sources, None)?;
    let rego = rego_engine(rego_sources)?;
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
            let c = cedar.decide(&table.policy, &context).is_ok_and(|d| d.allow);
            let r = rego.decide(&table.policy, &context).is_ok_and(|d| d.allow);
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
