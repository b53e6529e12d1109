//! `docs/src/cli.md` shows the `--help` of every command; this keeps it current.
//!
//! Each help block in the page follows a marker `<!-- kest-help: <subcommand> -->` (empty
//! for the top level). Run with `KEST_UPDATE_DOCS=1` to rewrite the blocks from the binary.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use std::process::Command;

const MARKER: &str = "<!-- kest-help:";

/// What `kest ARGS` prints, which must succeed. Lines are compared without trailing
/// whitespace, which clap emits on blank lines and the repository's tidy rules forbid.
fn printed(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_kest"))
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "kest {args:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
        .trim_end()
        .to_owned()
}

fn help(subcommand: &str) -> String {
    let mut args: Vec<&str> = subcommand.split_whitespace().collect();
    args.push("--help");
    printed(&args)
}

#[test]
fn cli_reference_matches_help_output() {
    let path = kest_testkit::workspace_root().join("docs/src/cli.md");
    let page = std::fs::read_to_string(&path).unwrap();
    let mut rebuilt = String::new();
    let mut rest = page.as_str();
    let mut stale = Vec::new();
    let mut covered = Vec::new();
    while let Some(at) = rest.find(MARKER) {
        let (before, after) = rest.split_at(at);
        rebuilt.push_str(before);
        let end_marker = after.find("-->").unwrap();
        let subcommand = after[MARKER.len()..end_marker].trim().to_owned();
        let marker_line = &after[..end_marker + 3];
        let block_start = after.find("```text\n").unwrap();
        let block_body_start = block_start + "```text\n".len();
        let block_end = block_body_start + after[block_body_start..].find("```").unwrap();
        let documented = after[block_body_start..block_end].trim_end_matches('\n');
        let actual = help(&subcommand);
        if documented != actual {
            stale.push(if subcommand.is_empty() {
                "kest".to_owned()
            } else {
                subcommand.clone()
            });
        }
        rebuilt.push_str(marker_line);
        rebuilt.push_str(&after[end_marker + 3..block_start]);
        rebuilt.push_str("```text\n");
        rebuilt.push_str(&actual);
        rebuilt.push('\n');
        covered.push(subcommand);
        rest = &after[block_end..];
    }
    rebuilt.push_str(rest);
    if std::env::var("KEST_UPDATE_DOCS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &rebuilt).unwrap();
        return;
    }
    assert!(
        stale.is_empty(),
        "docs/src/cli.md is stale for {stale:?}; run KEST_UPDATE_DOCS=1 cargo test -p kest-cli --test it docs_drift"
    );
    for subcommand in [
        "",
        "verify",
        "inspect",
        "tree",
        "canon",
        "keygen",
        "whoami",
        "append",
        "help",
        "policy eval",
        "policy test",
        "mcp proxy",
    ] {
        assert!(
            covered.iter().any(|c| c == subcommand),
            "docs/src/cli.md has no help block for `{subcommand}`"
        );
    }
}

/// `kest help X` prints what `kest X --help` does, for every command, and `kest help`
/// describes itself too.
#[test]
fn help_names_every_command() {
    for subcommand in [
        "",
        "verify",
        "inspect",
        "tree",
        "canon",
        "keygen",
        "whoami",
        "append",
        "help",
        "policy",
        "policy eval",
        "policy test",
        "mcp",
        "mcp proxy",
    ] {
        let mut args = vec!["help"];
        args.extend(subcommand.split_whitespace());
        assert_eq!(printed(&args), help(subcommand), "kest help {subcommand}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_kest"))
        .args(["help", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
}
