//! Engines from policy files: the one loader behind `KEST_POLICY_DIR` (the runtime) and
//! `kest policy` (the command), so that one directory decides the same way in both.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use crate::{PolicyEngine, PolicyError};

/// An in-process engine that policy files load into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    /// Cedar: `*.cedar` files.
    Cedar,
    /// Rego: `*.rego` files.
    Rego,
}

impl EngineKind {
    /// The file extension of its policies.
    #[must_use]
    pub const fn extension(self) -> &'static str {
        match self {
            Self::Cedar => "cedar",
            Self::Rego => "rego",
        }
    }

    /// The engines this build holds (features `cedar` and `rego`).
    #[must_use]
    pub fn built_in() -> Vec<Self> {
        let mut kinds = Vec::new();
        if cfg!(feature = "cedar") {
            kinds.push(Self::Cedar);
        }
        if cfg!(feature = "rego") {
            kinds.push(Self::Rego);
        }
        kinds
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.extension())
    }
}

impl FromStr for EngineKind {
    type Err = PolicyError;

    /// `cedar` or `rego`, if this build has it.
    fn from_str(name: &str) -> Result<Self, PolicyError> {
        let kind = match name.trim() {
            "cedar" => Self::Cedar,
            "rego" => Self::Rego,
            other => {
                return Err(unavailable(&kest_canon::escape_untrusted(other, 40)));
            }
        };
        if Self::built_in().contains(&kind) {
            Ok(kind)
        } else {
            Err(unavailable(name))
        }
    }
}

fn unavailable(name: &str) -> PolicyError {
    let built: Vec<String> = EngineKind::built_in()
        .iter()
        .map(ToString::to_string)
        .collect();
    PolicyError::InvalidInput {
        engine: "loader",
        what: "engine",
        reason: format!(
            "`{name}` is unknown or not built in (this build has: {})",
            if built.is_empty() {
                "none".to_owned()
            } else {
                built.join(", ")
            }
        ),
    }
}

/// `(name, source)` of every policy file of `kind` in `dir`, sorted by name (the file
/// stem).
///
/// # Errors
/// [`PolicyError::Io`] when the directory or a file cannot be read,
/// [`PolicyError::InvalidInput`] when it holds no such file.
pub fn read_dir(kind: EngineKind, dir: &Path) -> Result<Vec<(String, String)>, PolicyError> {
    let files = read_files(kind, dir)?;
    if files.is_empty() {
        return Err(PolicyError::InvalidInput {
            engine: "loader",
            what: "policy directory",
            reason: format!("no .{} files in {}", kind.extension(), dir.display()),
        });
    }
    Ok(files)
}

/// The error for a file or directory that cannot be read.
pub(crate) fn io_error(path: &Path, error: &std::io::Error) -> PolicyError {
    PolicyError::Io {
        path: path.to_path_buf(),
        kind: error.kind(),
        reason: error.to_string(),
    }
}

/// As [`read_dir`], where no file is no error.
pub(crate) fn read_files(
    kind: EngineKind,
    dir: &Path,
) -> Result<Vec<(String, String)>, PolicyError> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|error| io_error(dir, &error))? {
        let path = entry.map_err(|error| io_error(dir, &error))?.path();
        if path.extension().is_some_and(|e| e == kind.extension()) {
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let source = std::fs::read_to_string(&path).map_err(|error| io_error(&path, &error))?;
            files.push((name, source));
        }
    }
    files.sort();
    Ok(files)
}

/// An engine of `kind` holding `sources`. A Cedar engine gets the model library's
/// enrichers (the attributes its models need computed in Rust), whatever the sources, so
/// a model decides the same here as anywhere; `entities` is a Cedar entity store.
///
/// # Errors
/// [`PolicyError::InvalidPolicy`] for a source that does not parse,
/// [`PolicyError::InvalidInput`] for entities given to Rego or an engine not built in.
pub fn engine_from_sources(
    kind: EngineKind,
    sources: Vec<(String, String)>,
    entities: Option<String>,
) -> Result<Arc<dyn PolicyEngine>, PolicyError> {
    match kind {
        #[cfg(feature = "cedar")]
        EngineKind::Cedar => {
            let mut builder = crate::CedarEngine::builder();
            for (name, source) in sources {
                builder = builder.policy_source(name, source);
            }
            for model in &crate::library::MODELS {
                if let Some(enricher) = model.enricher {
                    builder = builder.enricher(model.policy, enricher);
                }
            }
            if let Some(json) = entities {
                builder = builder.entities_json(json);
            }
            Ok(Arc::new(builder.build()?))
        }
        #[cfg(feature = "rego")]
        EngineKind::Rego => {
            if entities.is_some() {
                return Err(PolicyError::InvalidInput {
                    engine: "rego",
                    what: "entities",
                    reason: "a Cedar entity store was given to Rego, which takes none".into(),
                });
            }
            let builder = sources
                .into_iter()
                .fold(crate::RegoEngine::builder(), |builder, (name, source)| {
                    builder.policy_source(name, source)
                });
            Ok(Arc::new(builder.build()?))
        }
        #[allow(
            unreachable_patterns,
            reason = "reached only in builds without one of the engines"
        )]
        other => {
            let _ = (sources, entities);
            Err(unavailable(other.extension()))
        }
    }
}

/// An engine of `kind` holding every policy file of `dir`, as [`engine_from_sources`]
/// builds it.
///
/// # Errors
/// As [`read_dir`] and [`engine_from_sources`].
pub fn load_engine(kind: EngineKind, dir: &Path) -> Result<Arc<dyn PolicyEngine>, PolicyError> {
    engine_from_sources(kind, read_dir(kind, dir)?, None)
}
