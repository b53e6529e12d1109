//! The CLI's errors and the exit codes they map to.

use std::io;

use thiserror::Error;

/// Exit code when a check ran and failed: a passport did not verify, a line did not
/// canonicalize.
pub const EXIT_FAILED: u8 = 1;
/// Exit code for bad usage or unreadable input: the check could not run.
pub const EXIT_USAGE: u8 = 2;

/// Why a command failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CliError {
    /// The check ran and failed. The message is the one line to print.
    #[error("{0}")]
    Failed(String),
    /// The input could not be used: unreadable, too large, of no known form.
    #[error("{0}")]
    Input(String),
    /// The command printed its result and exits with this code (`kest policy eval`: 3 for
    /// a deny, 4 when the engine could not decide).
    #[error("exit {0}")]
    Exit(u8),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        source: io::Error,
    },
}

impl CliError {
    /// The process exit code for this error.
    #[must_use]
    pub const fn exit_code(&self) -> u8 {
        match self {
            Self::Failed(_) => EXIT_FAILED,
            Self::Exit(code) => *code,
            Self::Input(_) | Self::Io { .. } => EXIT_USAGE,
        }
    }

    pub(crate) fn input(message: impl std::fmt::Display) -> Self {
        Self::Input(message.to_string())
    }

    pub(crate) fn io(path: &str, source: io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            source,
        }
    }
}
