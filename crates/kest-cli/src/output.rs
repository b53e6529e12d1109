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

/// Writes `text` to `path` (creating it with mode 0600 on Unix, never following an
/// existing file), or to stdout for `-`.
///
/// # Errors
/// [`CliError::Io`], including when the file exists and `overwrite` is false.
pub(crate) fn write_private(path: &str, text: &str, overwrite: bool) -> Result<(), CliError> {
    if path == "-" {
        return line(text);
    }
    if overwrite {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(CliError::io(path, error)),
        }
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|error| {
        if error.kind() == std::io::ErrorKind::AlreadyExists {
            CliError::input(format!("{path} exists; pass --force to replace it"))
        } else {
            CliError::io(path, error)
        }
    })?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .map_err(|error| CliError::io(path, error))
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
