//! `cargo xtask services`: installs and starts, on 127.0.0.1, the real components the live
//! tests talk to. Each is installed into the cargo target directory, started detached
//! with its output in a log file, and left running until `cargo xtask services stop`.
//!
//! | service | from | address | variable for the tests |
//! |---|---|---|---|
//! | Cedar agent | crates.io `cedar-agent` 0.2.0 | 127.0.0.1:18180 | `KEST_CEDAR_AGENT_URL` |
//! | OIDC provider | PyPI `oidc-provider-mock` 0.3.4 (tokens live 6 s) | 127.0.0.1:18190 | `KEST_OIDC_PROVIDER_URL` |
//! | AWS STS and KMS | PyPI `moto[server]` 5.2.5 | 127.0.0.1:18200 | `KEST_MOTO_URL` |
//! | Redis | Debian `redis-server` (apt, when missing) | 127.0.0.1:18210 | `KEST_REDIS_URL` |
//! | headless browser | Debian `chromium` (apt, when missing) | not a server | `KEST_CHROMIUM` |
//!
//! The Python services share one virtual environment, `<target>/kest-services/venv`.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use xshell::{Shell, cmd};

use crate::util::{Result, ensure_venv, step, target_dir};

const CEDAR_AGENT_VERSION: &str = "0.2.0";
const CEDAR_AGENT_PORT: u16 = 18180;
/// Policies the Cedar agent loads when it starts, if the file exists (in the state dir).
pub(crate) const CEDAR_AGENT_POLICIES: &str = "cedar-agent-policies.json";
const OIDC_PACKAGE: &str = "oidc-provider-mock==0.3.4";
const OIDC_PORT: u16 = 18190;
/// Seconds an ID token from the OIDC provider stays valid: short, so that the live tests
/// can watch one expire.
const OIDC_TOKEN_MAX_AGE: &str = "6";
const MOTO_PACKAGE: &str = "moto[server]==5.2.5";
const MOTO_PORT: u16 = 18200;
const REDIS_PORT: u16 = 18210;

/// The directory the services live in: `<target>/kest-services`.
pub(crate) fn state_dir(sh: &Shell) -> Result<PathBuf> {
    Ok(target_dir(sh)?.join("kest-services"))
}

/// What `cargo xtask services` does.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Action {
    /// Install what is missing and start what is not running.
    Start,
    /// Stop them.
    Stop,
}

/// `cargo xtask services [start|stop]`.
pub(crate) fn run(sh: &Shell, action: Action) -> Result {
    match action {
        Action::Start => start(sh).map(|env| {
            for (key, value) in env {
                eprintln!("{key}={value}");
            }
        }),
        Action::Stop => stop(sh),
    }
}

/// Installs what is missing, starts what is not running, and returns the variables the
/// live tests read.
pub(crate) fn start(sh: &Shell) -> Result<Vec<(String, String)>> {
    let dir = state_dir(sh)?;
    sh.create_dir(&dir)?;
    let mut env = Vec::new();

    step("service: Cedar agent");
    let agent = dir.join("bin").join("cedar-agent");
    if !agent.exists() {
        cmd!(
            sh,
            "cargo install cedar-agent --version {CEDAR_AGENT_VERSION} --locked --root {dir}"
        )
        .run()?;
    }
    let port = CEDAR_AGENT_PORT.to_string();
    let mut command = Command::new(&agent);
    command.args(["--addr", "127.0.0.1", "--port", &port]);
    // The policies it starts with, when a task left some (`cargo xtask chaos` does):
    // what a deployment's agent reloads when it restarts.
    let policies = dir.join(CEDAR_AGENT_POLICIES);
    if policies.exists() {
        command.arg("--policies").arg(&policies);
    }
    launch(&dir, "cedar-agent", &mut command, CEDAR_AGENT_PORT)?;
    env.push((
        "KEST_CEDAR_AGENT_URL".to_owned(),
        format!("http://127.0.0.1:{CEDAR_AGENT_PORT}"),
    ));

    step("service: Python services venv (OIDC provider, moto)");
    let bin = dir.join("venv").join("bin");
    ensure_venv(
        sh,
        &dir.join("venv"),
        "import oidc_provider_mock, moto.server",
        &[OIDC_PACKAGE, MOTO_PACKAGE],
    )?;

    step("service: OIDC provider");
    let port = OIDC_PORT.to_string();
    launch(
        &dir,
        "oidc-provider",
        Command::new(bin.join("oidc-provider-mock")).args([
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            "--token-max-age",
            OIDC_TOKEN_MAX_AGE,
        ]),
        OIDC_PORT,
    )?;
    env.push((
        "KEST_OIDC_PROVIDER_URL".to_owned(),
        format!("http://127.0.0.1:{OIDC_PORT}"),
    ));

    step("service: moto (AWS STS and KMS)");
    let port = MOTO_PORT.to_string();
    launch(
        &dir,
        "moto",
        Command::new(bin.join("moto_server")).args(["-H", "127.0.0.1", "-p", &port]),
        MOTO_PORT,
    )?;
    env.push((
        "KEST_MOTO_URL".to_owned(),
        format!("http://127.0.0.1:{MOTO_PORT}"),
    ));

    step("service: Redis");
    if cmd!(sh, "redis-server --version")
        .quiet()
        .ignore_stdout()
        .run()
        .is_err()
    {
        cmd!(sh, "apt-get update -q").run()?;
        cmd!(sh, "apt-get install -y -q redis-server").run()?;
    }
    let port = REDIS_PORT.to_string();
    launch(
        &dir,
        "redis",
        Command::new("redis-server").args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port,
            "--save",
            "",
            "--appendonly",
            "no",
        ]),
        REDIS_PORT,
    )?;
    env.push((
        "KEST_REDIS_URL".to_owned(),
        format!("redis://127.0.0.1:{REDIS_PORT}/"),
    ));

    step("browser: chromium (headless, for the HTML view's test)");
    if cmd!(sh, "chromium --version")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_err()
    {
        cmd!(sh, "apt-get update -q").run()?;
        cmd!(sh, "apt-get install -y -q chromium").run()?;
    }
    env.push(("KEST_CHROMIUM".to_owned(), "chromium".to_owned()));
    Ok(env)
}

/// Stops every service this task started.
pub(crate) fn stop(sh: &Shell) -> Result {
    let dir = state_dir(sh)?;
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "pid") {
            if let Ok(pid) = std::fs::read_to_string(&path) {
                let pid = pid.trim().to_owned();
                // The process group leader's id: kill the whole group.
                let _ = Command::new("kill")
                    .args(["--", &format!("-{pid}")])
                    .status();
            }
            let _ = std::fs::remove_file(&path);
        }
    }
    Ok(())
}

/// Sends `signal` (`TERM`, `KILL`, `STOP`, `CONT`) to the process group of service
/// `name` (as its pid file names it: `redis`, `cedar-agent`, `oidc-provider`, `moto`).
pub(crate) fn signal(sh: &Shell, name: &str, signal: &str) -> Result {
    let path = state_dir(sh)?.join(format!("{name}.pid"));
    let pid = std::fs::read_to_string(&path)
        .map_err(|error| format!("{name} was not started here ({}): {error}", path.display()))?;
    let status = Command::new("kill")
        .args([&format!("-{signal}"), "--", &format!("-{}", pid.trim())])
        .status()?;
    if !status.success() {
        return Err(format!("kill -{signal} {name} failed").into());
    }
    Ok(())
}

/// Stops service `name` (SIGKILL to its group) and waits until its port is closed.
pub(crate) fn kill(sh: &Shell, name: &str, port: u16) -> Result {
    signal(sh, name, "KILL")?;
    let _ = std::fs::remove_file(state_dir(sh)?.join(format!("{name}.pid")));
    let deadline = Instant::now() + Duration::from_secs(10);
    while listening(port) {
        if Instant::now() > deadline {
            return Err(format!("{name} still listens on {port} after SIGKILL").into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// The ports, by the names [`signal`] takes.
pub(crate) const PORTS: [(&str, u16); 4] = [
    ("cedar-agent", CEDAR_AGENT_PORT),
    ("oidc-provider", OIDC_PORT),
    ("moto", MOTO_PORT),
    ("redis", REDIS_PORT),
];

fn listening(port: u16) -> bool {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok()
}

/// Starts `command` detached (its own process group, output to `<name>.log`) unless
/// something already listens on `port`, then waits until the port accepts connections.
fn launch(dir: &Path, name: &str, command: &mut Command, port: u16) -> Result {
    if listening(port) {
        eprintln!("{name}: already listening on 127.0.0.1:{port}");
        return Ok(());
    }
    let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt as _;
        command.process_group(0);
    }
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .spawn()
        .map_err(|error| format!("cannot start {name}: {error}"))?;
    std::fs::write(dir.join(format!("{name}.pid")), child.id().to_string())?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if listening(port) {
            eprintln!("{name}: listening on 127.0.0.1:{port}");
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(format!(
        "{name} did not start listening on port {port}; see {}",
        dir.join(format!("{name}.log")).display()
    )
    .into())
}
