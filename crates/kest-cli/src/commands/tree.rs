//! `kest tree`: the passport's DAG as text, Mermaid, Graphviz DOT or an HTML page.

use clap::ValueEnum;
use kest_passport::render::{dot, html, mermaid, text_tree};

use crate::error::CliError;
use crate::{input, output};

/// Output formats of `kest tree`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum TreeFormat {
    /// An indented tree for the terminal.
    #[default]
    Text,
    /// A Mermaid flowchart.
    Mermaid,
    /// A Graphviz digraph.
    Dot,
    /// One self-contained HTML page (inline CSS and JavaScript) that draws the DAG;
    /// clicking an entry shows its details.
    Html,
}

/// Runs `kest tree`. Signatures are not checked; use `kest verify` for that.
///
/// # Errors
/// [`CliError::Input`] when the input is not a readable passport.
pub fn run(file: Option<&str>, format: TreeFormat) -> Result<(), CliError> {
    let text = input::read(file)?;
    let (passport, _) = input::load_unverified(input::classify(&text)?)?;
    let drawing = match format {
        TreeFormat::Text => text_tree(&passport),
        TreeFormat::Mermaid => mermaid(&passport),
        TreeFormat::Dot => dot(&passport),
        TreeFormat::Html => html(&passport),
    };
    output::line(drawing.trim_end())
}
