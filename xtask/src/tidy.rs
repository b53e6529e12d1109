//! The repository's own rules, checked on every CI run (`cargo xtask tidy`) and by the
//! test suite (`tidy_holds` below).

use std::fs;
use std::path::{Path, PathBuf};

use clap::CommandFactory as _;
use serde_json::Value;
use xshell::Shell;

use crate::util::{Result, metadata, step};

/// The layers, lowest first. A crate may depend on crates of its own rank or below,
/// never above.
const LAYERS: [&[&str]; 10] = [
    &["kest-canon"],
    &["kest-crypto"],
    &["kest-trust"],
    &["kest-passport"],
    &["kest-policy"],
    &["kest-identity"],
    &["kest-propagation"],
    &["kest-macros", "kest"],
    &["kest-mcp"],
    &["kest-cli"],
];

/// Workspace crates outside the layers: test support, which layer crates may use only
/// as a dev-dependency, and the examples and automation, which nothing may depend on.
const TEST_SUPPORT: &str = "kest-testkit";

/// Runs every rule and reports all violations at once.
pub(crate) fn run(sh: &Shell, root: &Path) -> Result {
    step("tidy");
    let problems = problems(sh, root)?;
    if problems.is_empty() {
        eprintln!("tidy: ok");
        Ok(())
    } else {
        for problem in &problems {
            eprintln!("tidy: {problem}");
        }
        Err(format!("{} problems", problems.len()).into())
    }
}

/// Every rule's violations.
pub(crate) fn problems(sh: &Shell, root: &Path) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let files = walk(root);
    let metadata = metadata(sh)?;
    problems.extend(layering(&metadata));
    problems.extend(facade_only(&metadata));
    allow_reasons(root, &files, &mut problems);
    module_docs(root, &files, &mut problems);
    trailing_whitespace(root, &files, &mut problems);
    vectors_match_shared(root, &mut problems);
    readme(root, &mut problems);
    changelog(root, &mut problems);
    docs_pages(root, &mut problems);
    doc_examples_compiled(root, &files, &mut problems);
    task_list(root, &mut problems);
    ci_script(root, &mut problems);
    Ok(problems)
}

/// The rank of a workspace crate: its layer, or above every layer for the examples and
/// automation. `None` for test support.
fn rank(name: &str) -> Option<usize> {
    if name == TEST_SUPPORT {
        return None;
    }
    Some(
        LAYERS
            .iter()
            .position(|layer| layer.contains(&name))
            .unwrap_or(LAYERS.len()),
    )
}

/// One dependency of a workspace package, as `cargo metadata` lists it.
struct Dependency<'m> {
    /// The package that depends.
    from: &'m str,
    /// The package depended on.
    on: &'m str,
    /// `normal`, `dev` or `build`.
    kind: &'m str,
}

/// Every dependency of every workspace package, and the workspace's package names.
fn dependencies(metadata: &Value) -> (Vec<&str>, Vec<Dependency<'_>>) {
    fn text<'v>(value: &'v Value, key: &str) -> Option<&'v str> {
        value.get(key)?.as_str()
    }
    let packages = metadata
        .get("packages")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let members = packages.iter().filter_map(|p| text(p, "name")).collect();
    let mut all = Vec::new();
    for package in packages {
        let from = text(package, "name").unwrap_or_default();
        let listed = package
            .get("dependencies")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        all.extend(listed.iter().map(|dependency| Dependency {
            from,
            on: text(dependency, "name").unwrap_or_default(),
            kind: text(dependency, "kind").unwrap_or("normal"),
        }));
    }
    (members, all)
}

/// No workspace crate depends on one above it (`cargo metadata`, normal, build and dev
/// dependencies alike), and test support is only ever a dev-dependency.
pub(crate) fn layering(metadata: &Value) -> Vec<String> {
    let (members, all) = dependencies(metadata);
    let mut problems = Vec::new();
    for Dependency { from, on, kind } in all {
        if !members.contains(&on) || on == from {
            continue;
        }
        match (rank(from), rank(on)) {
            (_, None) if kind != "dev" => problems.push(format!(
                "layering: {from} has {on} as a {kind} dependency; test support is for dev-dependencies only"
            )),
            (Some(below), Some(above)) if above > below => problems.push(format!(
                "layering: {from} depends on {on} ({kind}), which is above it \
                 (kest-canon → kest-crypto → kest-trust → kest-passport → kest-policy → \
                 kest-identity → kest-propagation → kest-macros / kest → kest-mcp → kest-cli)"
            )),
            _ => {}
        }
    }
    problems
}

/// The examples are written as an application would be: the only Kest crate they depend
/// on (outside dev-dependencies) is `kest`.
const FACADE_USERS: [&str; 2] = ["kest-quickstart", "kest-examples"];

/// An example that names a layer crate instead of going through the facade. Crates built
/// on the facade (`kest-mcp`) are not layers: the facade cannot re-export them.
pub(crate) fn facade_only(metadata: &Value) -> Vec<String> {
    let facade = rank("kest");
    dependencies(metadata)
        .1
        .into_iter()
        .filter(|d| {
            FACADE_USERS.contains(&d.from)
                && d.on.starts_with("kest-")
                && rank(d.on) < facade
                && d.kind != "dev"
        })
        .map(|Dependency { from, on, .. }| {
            format!(
                "facade: {from} depends on {on}; examples use `kest` alone (`kest::{}`)",
                on.trim_start_matches("kest-")
            )
        })
        .collect()
}

/// Every allow attribute says why (`reason = "..."`). Clippy's
/// `allow_attributes_without_reason` checks the workspace; this also covers the fuzz
/// crate and code clippy does not see.
fn allow_reasons(root: &Path, files: &[PathBuf], problems: &mut Vec<String>) {
    for path in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
    {
        let Ok(text) = fs::read_to_string(path) else {
            continue;
        };
        for (at, _) in text.match_indices("allow(") {
            let before = text.get(..at).unwrap_or_default();
            let attribute = before.ends_with("#[") || before.ends_with("#![");
            if !attribute {
                continue;
            }
            let rest = text.get(at..).unwrap_or_default();
            let mut depth = 0_usize;
            let end = rest
                .char_indices()
                .find(|(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth = depth.saturating_sub(1),
                        _ => {}
                    }
                    *c == ')' && depth == 0
                })
                .map_or(rest.len(), |(i, _)| i);
            if !rest.get(..end).unwrap_or_default().contains("reason") {
                let line = before.matches('\n').count() + 1;
                problems.push(format!(
                    "{}:{line}: #[allow] without a `reason`",
                    relative(root, path)
                ));
            }
        }
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

/// Every Rust block the project publishes is compiled: each book page with one, and the
/// README, is included as a doctest of the `kest` crate.
fn doc_examples_compiled(root: &Path, files: &[PathBuf], problems: &mut Vec<String>) {
    let lib = fs::read_to_string(root.join("crates/kest/src/lib.rs")).unwrap_or_default();
    let pages = files.iter().filter(|path| {
        let rel = relative(root, path);
        rel == "README.md" || (rel.starts_with("docs/src/") && rel.ends_with(".md"))
    });
    for page in pages {
        let Ok(text) = fs::read_to_string(page) else {
            continue;
        };
        let rel = relative(root, page);
        if text.contains("```rust") && !lib.contains(&format!("include_str!(\"../../../{rel}\")")) {
            problems.push(format!(
                "{rel}: has Rust blocks but is not a doctest (add it to `mod book` in crates/kest/src/lib.rs)"
            ));
        }
    }
}

/// `docs/src/development.md` lists exactly the tasks `cargo xtask` has.
fn task_list(root: &Path, problems: &mut Vec<String>) {
    let Ok(page) = fs::read_to_string(root.join("docs/src/development.md")) else {
        problems.push("docs/src/development.md is missing".into());
        return;
    };
    // The rows of the table whose header is `| task | ...`.
    let mut documented: Vec<String> = page
        .lines()
        .skip_while(|line| !line.starts_with("| task |"))
        .take_while(|line| line.starts_with('|'))
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .map(|task| {
            task.split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    documented.sort();
    documented.dedup();
    let mut tasks: Vec<String> = crate::Cli::command()
        .get_subcommands()
        .map(|task| task.get_name().to_owned())
        .collect();
    tasks.sort();
    if documented != tasks {
        problems.push(format!(
            "docs/src/development.md lists the tasks {documented:?}, but cargo xtask has {tasks:?}"
        ));
    }
}

fn ci_script(root: &Path, problems: &mut Vec<String>) {
    match fs::read_to_string(root.join(".ci/run")) {
        Ok(text) if text.contains("cargo xtask ci") => {}
        _ => problems.push(".ci/run must run `cargo xtask ci`".into()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing, reason = "tests")]

    use serde_json::json;

    use super::layering;
    use crate::util::{metadata, workspace_root};

    /// The repository follows its rules: tidy runs with the test suite, not only in CI.
    #[test]
    fn tidy_holds() {
        let sh = xshell::Shell::new().unwrap_or_else(|error| panic!("{error}"));
        sh.change_dir(workspace_root());
        let problems =
            super::problems(&sh, &workspace_root()).unwrap_or_else(|error| panic!("{error}"));
        assert!(problems.is_empty(), "{}", problems.join("\n"));
        // The real metadata has the layer crates, so the layering rule had something to see.
        let real = metadata(&sh).unwrap_or_else(|error| panic!("{error}"));
        assert!(real.to_string().contains("\"kest-propagation\""));
    }

    fn package(name: &str, dependencies: &[(&str, Option<&str>)]) -> serde_json::Value {
        json!({
            "name": name,
            "dependencies": dependencies
                .iter()
                .map(|(on, kind)| json!({"name": on, "kind": kind}))
                .collect::<Vec<_>>(),
        })
    }

    /// An example that depends on a layer crate is named; `kest`, crates built on it
    /// (`kest-mcp`) and dev-dependencies are fine.
    #[test]
    fn examples_go_through_the_facade() {
        let workspace = json!({"packages": [
            package("kest-quickstart", &[("kest", None), ("kest-testkit", Some("dev"))]),
            package("kest-examples", &[("kest", None), ("kest-policy", None), ("axum", None), ("kest-mcp", None)]),
        ]});
        let problems = super::facade_only(&workspace);
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(
            problems[0].contains("kest-examples depends on kest-policy"),
            "{}",
            problems[0]
        );
    }

    /// An upward dependency fails, naming both crates; downward, same-rank and foreign
    /// ones pass; test support only as a dev-dependency.
    #[test]
    fn an_upward_dependency_is_named() {
        let workspace = json!({"packages": [
            package("kest-canon", &[("serde", None), ("kest-testkit", Some("dev"))]),
            package("kest-passport", &[("kest-canon", None), ("kest-policy", Some("dev"))]),
            package("kest-policy", &[("kest-passport", None), ("kest-policy", Some("dev"))]),
            package("kest", &[("kest-macros", None), ("kest-policy", None)]),
            package("kest-macros", &[]),
            package("kest-identity", &[("kest-propagation", None), ("kest-testkit", None)]),
            package("kest-propagation", &[("kest-identity", None)]),
            package("kest-testkit", &[("kest-passport", None)]),
            package("kest-examples", &[("kest", None)]),
            package("kest-cli", &[("kest-examples", Some("build"))]),
        ]});
        let problems = layering(&workspace);
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert!(
            problems[0].contains("kest-passport depends on kest-policy (dev)"),
            "{}",
            problems[0]
        );
        assert!(
            problems[1].contains("kest-identity depends on kest-propagation (normal)"),
            "{}",
            problems[1]
        );
        assert!(
            problems[2].contains("kest-identity has kest-testkit as a normal dependency"),
            "{}",
            problems[2]
        );
        assert!(
            problems[3].contains("kest-cli depends on kest-examples (build)"),
            "{}",
            problems[3]
        );
    }
}
