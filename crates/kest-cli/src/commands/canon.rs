//! `kest canon`: RFC 8785 canonical form of JSON.

use kest_canon::{Canonicalizer, NumberMode};

use crate::error::CliError;
use crate::{input, output};

/// Runs `kest canon`.
///
/// # Errors
/// [`CliError::Failed`] naming the first invalid line or document.
pub fn run(file: Option<&str>, lines: bool, ieee: bool) -> Result<(), CliError> {
    let text = input::read(file)?;
    let mode = if ieee {
        NumberMode::Ieee754
    } else {
        NumberMode::SafeIntegers
    };
    let canon = Canonicalizer::new().number_mode(mode);
    let one = |json: &str| -> Result<String, String> {
        let bytes = canon
            .canonicalize_text(json.as_bytes())
            .map_err(|e| e.to_string())?;
        String::from_utf8(bytes).map_err(|e| e.to_string())
    };
    if !lines {
        let canonical = one(&text).map_err(CliError::Failed)?;
        return output::line(&canonical);
    }
    let mut out = String::with_capacity(text.len());
    for (index, json) in text.lines().enumerate() {
        let canonical =
            one(json).map_err(|error| CliError::Failed(format!("line {}: {error}", index + 1)))?;
        out.push_str(&canonical);
        out.push('\n');
    }
    if out.ends_with('\n') {
        out.pop();
    }
    if out.is_empty() && text.is_empty() {
        return Ok(());
    }
    output::line(&out)
}
