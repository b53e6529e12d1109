//! The live tier: real components installed and started here, then the tests run with
//! `KEST_LIVE=1`. With it set, a missing component fails the test instead of skipping it.
//!
//! It needs a Python virtual environment with the reference package
//! (`kest==0.3.0.post1`), so that tests can have it verify passports Kest for Rust built,
//! and the services `cargo xtask services` starts.

use std::path::PathBuf;

use xshell::{Shell, cmd};

use crate::util::{Result, ensure_venv, step, target_dir};

/// The Python package the interop tests run against, what the mixed deployment test's
/// Python service runs on (FastAPI under uvicorn, claim checks in Redis), and the MCP
/// SDK of the MCP tests, pinned.
const PYTHON_PACKAGES: &[&str] = &[
    "kest==0.3.0.post1",
    "fastapi==0.165.0",
    "uvicorn==0.54.0",
    "redis==8.1.0",
    // The official MCP SDK: its ClientSession and MCPServer on either side of
    // `kest mcp proxy`.
    "mcp==2.3.0",
];

fn venv_dir(sh: &Shell) -> Result<PathBuf> {
    Ok(target_dir(sh)?.join("kest-live-venv"))
}

fn python(sh: &Shell) -> Result<PathBuf> {
    Ok(venv_dir(sh)?.join("bin").join("python"))
}

/// Installs everything the live tests need. Idempotent.
pub(crate) fn prepare(sh: &Shell) -> Result {
    step("live tier: Python venv with the reference package");
    let python = ensure_venv(
        sh,
        &venv_dir(sh)?,
        "import kest, cryptography, fastapi, uvicorn, redis, mcp.client, mcp.server",
        PYTHON_PACKAGES,
    )?;
    cmd!(sh, "{python} -c 'import kest.core.models.passport'").run()?;
    Ok(())
}

/// The interpreter of the venv `kest_rs` (the Python binding) is installed in, so that
/// live tests can have the binding verify what they built: `cargo xtask python` installs
/// it (in `ci`, a phase before the live tier); when it is not there yet, it is built now.
fn binding_python(sh: &Shell) -> Result<PathBuf> {
    let python = crate::python::venv(sh)?.join("bin").join("python");
    if python.exists()
        && cmd!(sh, "{python} -c 'import kest_rs'")
            .quiet()
            .run()
            .is_ok()
    {
        return Ok(python);
    }
    crate::python::install(sh)
}

/// Prepares the venv and starts the services; returns the environment the live tests
/// read.
pub(crate) fn environment(sh: &Shell) -> Result<Vec<(String, String)>> {
    prepare(sh)?;
    let mut env = vec![
        ("KEST_LIVE".to_owned(), "1".to_owned()),
        ("KEST_PYTHON".to_owned(), python(sh)?.display().to_string()),
        (
            "KEST_BINDING_PYTHON".to_owned(),
            binding_python(sh)?.display().to_string(),
        ),
    ];
    env.extend(crate::services::start(sh)?);
    Ok(env)
}

/// `cargo xtask live`: prepare, start the services, then run the whole suite with the
/// live tier on. The services keep running for further runs; `cargo xtask services stop`
/// stops them.
pub(crate) fn run(sh: &Shell) -> Result {
    let env = environment(sh)?;
    step("test (live tier)");
    cmd!(sh, "cargo test --workspace --all-features --locked")
        .envs(env)
        .run()?;
    Ok(())
}
