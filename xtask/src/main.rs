//! Project automation, in Rust rather than shell: `cargo xtask <task>`. The tasks are
//! the variants of [`Task`]; `cargo xtask --help` lists them, and the tidy rules check
//! that `docs/src/development.md` lists the same.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line tool reports progress on its terminal"
)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use xshell::{Shell, cmd};

mod bench;
mod chaos;
mod live;
mod mutants;
mod python;
mod services;
mod soak;
mod tidy;
mod util;

use util::{Result, cargo_tool, step, target_dir, workspace_root};

/// cargo-hack, which checks each feature on its own.
const CARGO_HACK: (&str, &str) = ("cargo-hack", "0.6.46");
/// cargo-fuzz, which runs the fuzz targets.
const CARGO_FUZZ: (&str, &str) = ("cargo-fuzz", "0.13.2");
/// mdBook, which builds the book.
const MDBOOK: (&str, &str) = ("mdbook", "0.5.4");
/// cargo-deny, for `deny`.
const CARGO_DENY: (&str, &str) = ("cargo-deny", "0.20.2");

/// Project automation for Kest for Rust.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

/// The tasks. Each line of documentation is what `docs/src/development.md` says of it.
#[derive(Debug, Subcommand)]
enum Task {
    /// `cargo fmt --check`; clippy with `-D warnings` on all targets and features
    Lint,
    /// The suite with all features, then again with default features for the crates whose behaviour depends on features
    Test,
    /// `cargo doc` with warnings denied
    Doc,
    /// The repository's rules: layering, `#[allow]` reasons, module docs, vectors, README, changelog, docs pages and this task list
    Tidy,
    /// `cargo check` of every crate under each of its features on its own (cargo-hack), warnings denied
    Features,
    /// `cargo deny check bans licenses sources` against `deny.toml`, offline (advisories need the network: see the docs)
    Deny,
    /// Installs and starts the live components on 127.0.0.1; `services stop` stops them
    Services {
        /// `start` (the default) or `stop`.
        #[arg(value_enum, default_value = "start")]
        action: services::Action,
    },
    /// Installs the live components, then runs the suite with `KEST_LIVE=1`
    Live,
    /// A run of each fuzz target (cargo-fuzz, installed when missing) on the committed corpora in `fuzz/corpus`, minimized after runs of a minute or more
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 20)]
        seconds: u32,
    },
    /// Mutation testing (cargo-mutants, installed when missing) of the security core, or of `--file` F, each file against its own crate's tests; prints the per-file table and fails under 90 %
    Mutants {
        /// A source file to mutate instead of the security core (repeatable).
        #[arg(long = "file")]
        files: Vec<String>,
    },
    /// The fault matrix: the multi-hop services as four processes against the real services, under load, with one fault per cell (Redis, the Cedar agent, the OIDC provider, KMS, a hop); every answer verified offline, runs counted against entries; fails on a broken chain, a run without an entry, a hang or no recovery
    Chaos {
        /// Run only this cell (repeatable): redis, cedar-agent, oidc, kms, hop.
        #[arg(long = "cell")]
        cells: Vec<String>,
    },
    /// The multi-hop services under steady load for `--minutes` (default 10), verification on, claim checks in Redis, RSS sampled each second: passes with 0 broken chains and < 5 % growth after warm-up
    Soak {
        /// Minutes of load.
        #[arg(long, default_value_t = 10)]
        minutes: u32,
    },
    /// Builds kest-rs (PyO3) into a venv; runs its tests and the kest package's own suite plain, accelerated and strict
    Python,
    /// Criterion benchmarks and peak RSS; `--compare-python` adds the Python package's figures and the kest_rs binding against it; arguments after `--` go to criterion
    Bench {
        /// Also measure the Python package (installed into a venv) and print ratios.
        #[arg(long)]
        compare_python: bool,
        /// Arguments for criterion.
        #[arg(last = true)]
        criterion: Vec<String>,
    },
    /// The multi-hop services under load, with inbound verification on and off: requests/s, p50/p99, broken chains
    Load {
        /// Concurrent clients.
        #[arg(long, default_value_t = 32)]
        clients: u32,
        /// Seconds of load.
        #[arg(long, default_value_t = 30)]
        seconds: u32,
    },
    /// Builds the book into `docs/book` (mdBook, installed when missing); `--serve` serves it
    Book {
        /// Serve it on 127.0.0.1:3000 and rebuild on change.
        #[arg(long)]
        serve: bool,
    },
    /// Tidy, lint, deny, features, doc, the suite with the live tier, the default-feature run, the Python binding, fuzz smoke: what `.ci/run` runs
    Ci,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = Shell::new().map_err(Into::into).and_then(|sh| {
        sh.change_dir(workspace_root());
        run(&sh, cli.task)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(sh: &Shell, task: Task) -> Result {
    match task {
        Task::Lint => lint(sh),
        Task::Test => test(sh),
        Task::Doc => doc(sh),
        Task::Tidy => tidy::run(sh, &workspace_root()),
        Task::Features => features(sh),
        Task::Deny => deny(sh),
        Task::Services { action } => services::run(sh, action),
        Task::Live => live::run(sh),
        Task::Fuzz { seconds } => fuzz(sh, seconds),
        Task::Python => python::run(sh),
        Task::Mutants { files } => mutants::run(sh, &files),
        Task::Soak { minutes } => soak::run(sh, minutes),
        Task::Chaos { cells } => chaos::run(sh, &cells),
        Task::Bench {
            compare_python,
            criterion,
        } => bench::run(sh, compare_python, &criterion),
        Task::Load { clients, seconds } => load(sh, clients, seconds),
        Task::Book { serve } => book(sh, serve),
        Task::Ci => ci(sh),
    }
}

fn lint(sh: &Shell) -> Result {
    step("fmt");
    cmd!(sh, "cargo fmt --all --check").run()?;
    step("clippy");
    cmd!(
        sh,
        "cargo clippy --workspace --all-targets --all-features --locked -- -D warnings"
    )
    .run()?;
    Ok(())
}

fn doc(sh: &Shell) -> Result {
    step("doc");
    cmd!(
        sh,
        "cargo doc --workspace --all-features --no-deps --locked"
    )
    .env("RUSTDOCFLAGS", "-D warnings")
    .run()?;
    Ok(())
}

/// Every crate under each of its features alone (and none), so that a feature that does
/// not build, or warns, on its own is caught. `full` is the union of the others.
fn features(sh: &Shell) -> Result {
    let hack = cargo_tool(
        sh,
        CARGO_HACK.0,
        CARGO_HACK.1,
        "cargo-hack",
        &["hack", "--version"],
    )?;
    step("check each feature on its own");
    cmd!(
        sh,
        "{hack} hack check --workspace --exclude xtask --each-feature --exclude-features full --locked"
    )
    .env("RUSTFLAGS", "-D warnings")
    .run()?;
    Ok(())
}

/// The supply-chain policy of `deny.toml`: banned crates, licenses and sources. The crate
/// graph comes from `cargo metadata` for this machine's target with every feature, which
/// needs nothing beyond what a build downloads; no advisory database is fetched.
fn deny(sh: &Shell) -> Result {
    let deny = cargo_tool(
        sh,
        CARGO_DENY.0,
        CARGO_DENY.1,
        "cargo-deny",
        &["deny", "--version"],
    )?;
    step("cargo deny: bans, licenses, sources");
    let host = cmd!(sh, "rustc -vV")
        .read()?
        .lines()
        .find_map(|line| line.strip_prefix("host: ").map(str::to_owned))
        .ok_or("rustc -vV names no host")?;
    let metadata = cmd!(
        sh,
        "cargo metadata --locked --all-features --filter-platform {host} --format-version 1"
    )
    .quiet()
    .read()?;
    let path = target_dir(sh)?.join("kest-deny-metadata.json");
    std::fs::write(&path, metadata)?;
    cmd!(
        sh,
        "{deny} deny --metadata-path {path} check bans licenses sources"
    )
    .run()?;
    Ok(())
}

/// The crates tested again with default features: the wire crates (sorted maps instead of
/// `preserve_order`, which Cedar turns on: canonical bytes must not depend on it), and
/// those whose behaviour changes with features (the mock identity exists only with
/// `test-util`; https needs `tls`). Each group is its own build: cargo unifies features
/// over the packages of one command, and kest-identity's tests turn on its `test-util`,
/// which must stay off for the `kest` binary's.
const DEFAULT_FEATURE_TESTS: [&[&str]; 2] = [
    &[
        "kest-canon",
        "kest-crypto",
        "kest-passport",
        "kest-identity",
        "kest-propagation",
    ],
    &["kest-cli"],
];

fn default_feature_tests(sh: &Shell) -> Result {
    for group in DEFAULT_FEATURE_TESTS {
        step(&format!("test (default features): {}", group.join(", ")));
        let packages = group.iter().flat_map(|p| ["-p", p]);
        cmd!(sh, "cargo test --locked {packages...}").run()?;
    }
    Ok(())
}

fn test(sh: &Shell) -> Result {
    step("test (all features)");
    cmd!(sh, "cargo test --workspace --all-features --locked").run()?;
    default_feature_tests(sh)
}

/// Runs at least this long minimize the corpus afterwards; CI's short smoke run does not.
const MINIMIZE_AFTER_SECONDS: u32 = 60;

/// A run of every fuzz target, installing cargo-fuzz when it is missing.
fn fuzz(sh: &Shell, seconds: u32) -> Result {
    let fuzz = cargo_tool(
        sh,
        CARGO_FUZZ.0,
        CARGO_FUZZ.1,
        "cargo-fuzz",
        &["fuzz", "--version"],
    )?;
    let _dir = sh.push_dir("fuzz");
    let targets = cmd!(sh, "{fuzz} fuzz list").read()?;
    let time = format!("-max_total_time={seconds}");
    for target in targets.lines().map(str::trim).filter(|t| !t.is_empty()) {
        step(&format!("fuzz {target} ({seconds} s)"));
        // Stable toolchains need RUSTC_BOOTSTRAP for the sanitizer flags cargo-fuzz passes.
        cmd!(sh, "{fuzz} fuzz run {target} -- {time} -rss_limit_mb=2048")
            .env("RUSTC_BOOTSTRAP", "1")
            .run()?;
        // After a long run, keep the corpus (`fuzz/corpus/<target>`, committed) minimal: the
        // fewest inputs that reach the same coverage.
        if seconds >= MINIMIZE_AFTER_SECONDS {
            step(&format!("fuzz {target}: minimize the corpus"));
            cmd!(sh, "{fuzz} fuzz cmin {target}")
                .env("RUSTC_BOOTSTRAP", "1")
                .run()?;
        }
    }
    Ok(())
}

/// `cargo xtask load`: the multi-hop services under concurrent clients, checking every
/// final passport; once with every hop verifying its inbound passport, once with
/// verification off, to show its cost.
fn load(sh: &Shell, clients: u32, seconds: u32) -> Result {
    let (clients, seconds) = (clients.to_string(), seconds.to_string());
    for (label, mode) in [
        ("ingress verified", None),
        ("ingress not verified", Some("--insecure-unverified")),
    ] {
        step(&format!("load: multi_hop, release build, {label}"));
        let mode = mode.into_iter();
        cmd!(
            sh,
            "cargo run --locked --release -p kest-examples --example multi_hop -- --load --clients {clients} --seconds {seconds} {mode...}"
        )
        .run()?;
    }
    Ok(())
}

/// Builds the book (or serves it), with mdBook installed when missing.
fn book(sh: &Shell, serve: bool) -> Result {
    let mdbook = cargo_tool(sh, MDBOOK.0, MDBOOK.1, "mdbook", &["--version"])?;
    if serve {
        step("book: serving on http://127.0.0.1:3000");
        cmd!(sh, "{mdbook} serve docs").run()?;
    } else {
        step("book");
        cmd!(sh, "{mdbook} build docs").run()?;
    }
    Ok(())
}

fn ci(sh: &Shell) -> Result {
    tidy::run(sh, &workspace_root())?;
    let phases = Phases::new(sh)?;
    phases.run(sh, "lint", lint)?;
    deny(sh)?;
    phases.run(sh, "features", features)?;
    phases.run(sh, "doc", doc)?;
    // Before the live tier: its tests have the binding it installs verify passports.
    phases.run(sh, "python", python::run)?;
    phases.run(sh, "test-all-features", |sh| {
        let env = live::environment(sh)?;
        step("test (all features, live tier)");
        let tested = cmd!(sh, "cargo test --workspace --all-features --locked")
            .envs(env)
            .run();
        // Stop the services whatever the outcome, so that CI leaves nothing running.
        services::stop(sh)?;
        Ok(tested?)
    })?;
    phases.run(sh, "test-default-features", default_feature_tests)?;
    phases.run(sh, "fuzz", |sh| fuzz(sh, 20))?;
    eprintln!("\nci: all green");
    Ok(())
}

/// How `ci` spends disk. A clone that builds into its own `target/` (CI's fresh clone)
/// builds each phase into `target/ci-<phase>` and removes it once the phase passes, since
/// no later phase reuses it: the peak is one phase's build, not the sum of them all.
/// Incremental compilation, which a single build never reuses, is off there, and test
/// binaries carry no debug information (panics still name their file and line). A target
/// directory outside the clone is shared between runs, so there every phase builds into
/// it and keeps what it built.
struct Phases {
    /// The target directory, when phases build apart from it.
    base: Option<std::path::PathBuf>,
}

impl Phases {
    fn new(sh: &Shell) -> Result<Self> {
        let target = target_dir(sh)?;
        let own = target.starts_with(workspace_root());
        if own {
            sh.set_var("CARGO_INCREMENTAL", "0");
            sh.set_var("CARGO_PROFILE_DEV_DEBUG", "false");
            sh.set_var("CARGO_PROFILE_DEV_STRIP", "debuginfo");
            sh.set_var(util::TARGET_BASE_VAR, &target);
        }
        Ok(Self {
            base: own.then_some(target),
        })
    }

    fn run(&self, sh: &Shell, name: &str, phase: impl FnOnce(&Shell) -> Result) -> Result {
        let Some(base) = &self.base else {
            return phase(sh);
        };
        let dir = base.join(format!("ci-{name}"));
        sh.set_var("CARGO_TARGET_DIR", &dir);
        let outcome = phase(sh);
        sh.set_var("CARGO_TARGET_DIR", base);
        outcome?;
        eprintln!(
            "ci: phase {name} used {} MiB of build; removing it",
            dir_size(&dir) >> 20
        );
        std::fs::remove_dir_all(&dir).or_else(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Ok(())
            } else {
                Err(e)
            }
        })?;
        Ok(())
    }
}

/// Bytes of the regular files under `dir` (symbolic links are not followed).
fn dir_size(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(std::result::Result::ok)
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => dir_size(&entry.path()),
            Ok(kind) if kind.is_file() => entry.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::Cli;

    /// The task list parses as documented.
    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
