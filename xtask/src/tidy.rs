//! The repository's own rules, checked on every CI run.

use std::fs;
use std::path::{Path, PathBuf};

use crate::{Result, step};

/// Runs every rule and reports all violations at once.
pub(crate) fn run(root: &Path) -> Result {
    step("tidy");
    let mut problems = Vec::new();
    let files = walk(root);
    module_docs(root, &files, &mut problems);
    trailing_whitespace(root, &files, &mut problems);
    vectors_match_shared(root, &mut problems);
    readme(root, &mut problems);
    changelog(root, &mut problems);
    docs_pages(root, &mut problems);
    ci_script(root, &mut problems);
    if problems.is_empty() {
        eprintln!("tidy: ok ({} files)", files.len());
        Ok(())
    } else {
        for problem in &problems {
            eprintln!("tidy: {problem}");
        }
        Err(format!("{} problems", problems.len()).into())
    }
}

/// Source and text files, skipping build output, VCS data and copied vectors.
fn walk(root: &Path) -> Vec<PathBuf> {
    let skip = [
        "target",
        ".git",
        "vectors",
        "book",
        "corpus",
        "artifacts",
        ".venv",
    ];
    let mut out = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if !skip.contains(&name.as_str()) {
                    pending.push(path);
                }
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Every Rust file opens with a `//!` comment saying what it is for.
fn module_docs(root: &Path, files: &[PathBuf], problems: &mut Vec<String>) {
    for path in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
    {
        let Ok(text) = fs::read_to_string(path) else {
            continue;
        };
        if !text.trim_start().starts_with("//!") {
            problems.push(format!(
                "{}: does not start with a `//!` module comment",
                relative(root, path)
            ));
        }
    }
}

fn trailing_whitespace(root: &Path, files: &[PathBuf], problems: &mut Vec<String>) {
    let checked = ["rs", "md", "toml", "cedar", "rego", "py", "sh", "yml"];
    for path in files {
        let Some(ext) = path.extension().and_then(|e| e.to_str()) else {
            continue;
        };
        if !checked.contains(&ext) {
            continue;
        }
        let Ok(text) = fs::read_to_string(path) else {
            continue;
        };
        if let Some((line, _)) = text
            .lines()
            .enumerate()
            .find(|(_, l)| l.ends_with(' ') || l.ends_with('\t'))
        {
            problems.push(format!(
                "{}:{}: trailing whitespace",
                relative(root, path),
                line + 1
            ));
        }
    }
}

/// `vectors/` is a committed copy of the shared vectors; when the shared directory is
/// present, the copy must be byte-identical.
fn vectors_match_shared(root: &Path, problems: &mut Vec<String>) {
    let shared = root.join("../shared/vectors");
    if !shared.is_dir() {
        eprintln!("tidy: ../shared/vectors is not here; the committed copy is used as is");
        return;
    }
    let ours = root.join("vectors");
    for path in walk(&shared) {
        let rel = path.strip_prefix(&shared).unwrap_or(&path);
        match (fs::read(&path), fs::read(ours.join(rel))) {
            (Ok(theirs), Ok(mine)) if theirs == mine => {}
            (Ok(_), Ok(_)) => problems.push(format!(
                "vectors/{}: differs from ../shared/vectors",
                rel.display()
            )),
            (Ok(_), Err(_)) => problems.push(format!("vectors/{}: missing", rel.display())),
            (Err(_), _) => {}
        }
    }
}

/// The README opens with exactly the two set-up commands.
fn readme(root: &Path, problems: &mut Vec<String>) {
    let Ok(text) = fs::read_to_string(root.join("README.md")) else {
        problems.push("README.md is missing".into());
        return;
    };
    let Some(block) = text.split("```").nth(1) else {
        problems.push("README.md has no code block".into());
        return;
    };
    let commands: Vec<&str> = block
        .lines()
        .skip(1)
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let expected = ["cargo run --example quickstart", "cargo xtask ci"];
    if commands != expected {
        problems.push(format!(
            "README.md: the first code block must be exactly {expected:?}, found {commands:?}"
        ));
    }
}

fn changelog(root: &Path, problems: &mut Vec<String>) {
    match fs::read_to_string(root.join("CHANGELOG.md")) {
        Ok(text) if text.contains("## [Unreleased]") && text.contains("keepachangelog.com") => {}
        Ok(_) => problems.push(
            "CHANGELOG.md: keep the Keep a Changelog format with an [Unreleased] section".into(),
        ),
        Err(_) => problems.push("CHANGELOG.md is missing".into()),
    }
}

/// The book has a page for every published crate, linked from its summary.
fn docs_pages(root: &Path, problems: &mut Vec<String>) {
    let Ok(summary) = fs::read_to_string(root.join("docs/src/SUMMARY.md")) else {
        problems.push("docs/src/SUMMARY.md is missing".into());
        return;
    };
    let Ok(crates) = fs::read_dir(root.join("crates")) else {
        return;
    };
    for entry in crates.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "kest-testkit" {
            continue;
        }
        let page = format!("crates/{name}.md");
        if !summary.contains(&format!("({page})")) {
            problems.push(format!("docs/src/SUMMARY.md: no link to {page}"));
        }
        if !root.join("docs/src").join(&page).is_file() {
            problems.push(format!("docs/src/{page} is missing"));
        }
    }
    // Every link in the summary resolves.
    for link in summary
        .split("](")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
    {
        if !root.join("docs/src").join(link).is_file() {
            problems.push(format!("docs/src/SUMMARY.md links to missing {link}"));
        }
    }
}

fn ci_script(root: &Path, problems: &mut Vec<String>) {
    match fs::read_to_string(root.join(".ci/run")) {
        Ok(text) if text.contains("cargo xtask ci") => {}
        _ => problems.push(".ci/run must run `cargo xtask ci`".into()),
    }
}
