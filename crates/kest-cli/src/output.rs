//! Writing results: stdout for data, files created safely.

use std::io::Write as _;

use crate::error::CliError;

/// Prints a line to standard output.
///
/// # Errors
/// [`CliError::Io`] when stdout is closed.
pub(crate) fn line(text: &str) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}").map_err(|error| CliError::io("stdout", error))
}

/// Writes `text` to `path`, or stdout for `None` or `-`.
///
/// # Errors
/// [`CliError::Io`].
pub(crate) fn write_public(path: Option<&str>, text: &str) -> Result<(), CliError> {
    match path {
        None | Some("-") => line(text),
        Some(path) => {
            std::fs::write(path, format!("{text}\n")).map_err(|error| CliError::io(path, error))
        }
    }
}
