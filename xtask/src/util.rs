//! What several tasks share: the workspace's places (root, target directory, tools
//! directory, `cargo metadata`), progress lines, Python virtual environments, and cargo
//! tools installed on demand.

use std::path::{Path, PathBuf};

use xshell::{Shell, cmd};

/// The error type of every task: each reports one line.
pub(crate) type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The workspace root: the parent of this crate's directory.
pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Prints a step's heading.
pub(crate) fn step(name: &str) {
    eprintln!("\n==> {name}");
}

/// `cargo metadata` for the workspace's own packages, parsed.
pub(crate) fn metadata(sh: &Shell) -> Result<serde_json::Value> {
    let text = cmd!(sh, "cargo metadata --format-version 1 --no-deps --locked")
        .quiet()
        .read()?;
    Ok(serde_json::from_str(&text)?)
}

/// Set by `cargo xtask ci` while a phase builds into a directory of its own: the target
/// directory that installed tools, virtual environments and services stay in.
pub(crate) const TARGET_BASE_VAR: &str = "KEST_XTASK_TARGET_BASE";

/// The cargo target directory. What the tasks install lives under it, so repeated runs
/// reuse it and `cargo clean` removes it. During a CI phase that builds into a
/// directory of its own, this is still the enclosing target directory.
pub(crate) fn target_dir(sh: &Shell) -> Result<PathBuf> {
    if let Ok(base) = sh.var(TARGET_BASE_VAR) {
        return Ok(PathBuf::from(base));
    }
    metadata(sh)?
        .get("target_directory")
        .and_then(serde_json::Value::as_str)
        .map(PathBuf::from)
        .ok_or_else(|| "cargo metadata has no target_directory".into())
}

/// A tool's executable: the one on `PATH` when `bin {probe...}` runs, else the one
/// installed under `<target>/kest-tools`, installing it there from crates.io (at
/// `version`, `--locked`) first. Cargo subcommands are run as `cargo-x x ...`, which is
/// what `cargo x ...` does.
pub(crate) fn cargo_tool(
    sh: &Shell,
    package: &str,
    version: &str,
    bin: &str,
    probe: &[&str],
) -> Result<PathBuf> {
    if cmd!(sh, "{bin} {probe...}")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_ok()
    {
        return Ok(PathBuf::from(bin));
    }
    let root = target_dir(sh)?.join("kest-tools");
    let path = root.join("bin").join(bin);
    if !path.exists() {
        step(&format!(
            "install {package} {version} into {}",
            root.display()
        ));
        cmd!(
            sh,
            "cargo install --locked --root {root} --version {version} {package}"
        )
        .run()?;
    }
    Ok(path)
}

/// Creates the virtual environment `venv` unless it exists, and installs `packages` into it
/// unless the Python statement `check` already runs there. Returns its interpreter.
pub(crate) fn ensure_venv(
    sh: &Shell,
    venv: &Path,
    check: &str,
    packages: &[&str],
) -> Result<PathBuf> {
    let python = venv.join("bin").join("python");
    if !python.exists() {
        cmd!(sh, "python3 -m venv {venv}").run()?;
    }
    let installed = cmd!(sh, "{python} -c {check}")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_ok();
    if !installed {
        cmd!(
            sh,
            "{python} -m pip install --quiet --disable-pip-version-check {packages...}"
        )
        .run()?;
    }
    Ok(python)
}
