//! `cargo xtask chaos`: the fault matrix. The multi-hop services run as four processes
//! (release build, feature `chaos`) against the real components `cargo xtask services`
//! starts: claim checks in Redis (every passport over 256 bytes), decisions from the
//! Cedar agent, bearer tokens from the OIDC provider, hop2 signing through KMS on moto.
//! For each cell a load driver (another process) sends requests through the gateway for
//! the whole run and verifies every 200 answer offline against the keys the services
//! published before it started; one fault is injected while requests are in flight and
//! ended again. Every run of a protected step is logged with the entry it ran under.
//!
//! A cell passes when no answer's chain is broken, no step ran without a signed entry
//! (but for the calls in flight when the signer, or the process that signs, stops),
//! every entry in an answer has a logged run, no client had to give up waiting (a fault
//! is an error answered in time, never a hang), and service comes back after the fault.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use xshell::{Shell, cmd};

use crate::services;
use crate::util::{Result, step, target_dir};

/// The services' ports, gateway first.
const PORTS: [u16; 4] = [18301, 18302, 18303, 18304];
/// The hop that signs through KMS, and the one that is killed.
const KMS_HOP: usize = 2;
/// Concurrent clients.
const CLIENTS: u32 = 8;
/// When the fault starts, how long it lasts, and how long the run goes on after it.
const FAULT_AT: Duration = Duration::from_secs(10);
const FAULT_FOR: Duration = Duration::from_secs(15);
const AFTER: Duration = Duration::from_secs(20);
/// AWS credentials for moto (any will do; they name the emulated account's caller).
const AWS_ENV: [(&str, &str); 4] = [
    ("AWS_REGION", "us-east-1"),
    ("AWS_DEFAULT_REGION", "us-east-1"),
    ("AWS_ACCESS_KEY_ID", "AKIDKESTCHAOS"),
    ("AWS_SECRET_ACCESS_KEY", "kest-chaos-secret-access-key"),
];

/// The cells, in order.
pub(crate) const CELLS: [&str; 5] = ["redis", "cedar-agent", "oidc", "kms", "hop"];

/// What a cell's fault is, as the report says it.
fn fault_text(cell: &str) -> &'static str {
    match cell {
        "redis" => "Redis (claim checks) killed, then started again (empty)",
        "cedar-agent" => "Cedar agent killed, then restarted (policies reloaded from its file)",
        "oidc" => "OIDC provider down (JWKS unreachable), then restarted with a new key",
        "kms" => "moto (KMS, hop2's signer) frozen with SIGSTOP, then SIGCONT",
        _ => "hop2 killed with SIGKILL mid-request, then restarted",
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

fn listening(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

fn wait_listening(port: u16, what: &str, log: &Path) -> Result {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !listening(port) {
        if Instant::now() > deadline {
            return Err(format!("{what} did not listen on {port}; see {}", log.display()).into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Everything a cell needs to start processes.
struct Setup {
    binary: PathBuf,
    env: Vec<(String, String)>,
    kms_key_id: String,
    /// The principal the KMS key signs as (the STS caller's ARN).
    kms_principal: String,
}

impl Setup {
    fn var(&self, key: &str) -> Result<&str> {
        self.env
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
            .ok_or_else(|| format!("services gave no {key}").into())
    }

    fn ports_arg() -> String {
        PORTS.map(|port| port.to_string()).join(",")
    }

    /// Starts service `index` of the deployment in `dir`.
    fn hop(&self, dir: &Path, index: usize) -> Result<Child> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("hop{index}.log")))?;
        let child = Command::new(&self.binary)
            .args(["--serve", "--ports", &Self::ports_arg(), "--only"])
            .arg(index.to_string())
            .arg("--key-dir")
            .arg(dir.join("keys"))
            .arg("--run-log")
            .arg(dir.join("runs"))
            .args(["--redis", self.var("KEST_REDIS_URL")?])
            .args(["--inline-threshold", "256"])
            .args(["--cedar-agent", self.var("KEST_CEDAR_AGENT_URL")?])
            .args(["--oidc-issuer", self.var("KEST_OIDC_PROVIDER_URL")?])
            .args(["--kms-key-id", &self.kms_key_id])
            .args(["--kms-principal", &self.kms_principal])
            .env("AWS_ENDPOINT_URL", self.var("KEST_MOTO_URL")?)
            .envs(AWS_ENV)
            .stdin(Stdio::piped())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()?;
        Ok(child)
    }

    fn driver(&self, dir: &Path, seconds: u64) -> Result<Child> {
        Ok(Command::new(&self.binary)
            .args(["--drive", "--ports", &Self::ports_arg()])
            .args(["--clients", &CLIENTS.to_string()])
            .args(["--seconds", &seconds.to_string()])
            .args(["--oidc-issuer", self.var("KEST_OIDC_PROVIDER_URL")?])
            .arg("--out")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(dir.join("driver.log"))?))
            .spawn()?)
    }
}

/// The task: `cargo xtask chaos [--cell C]...`.
pub(crate) fn run(sh: &Shell, cells: &[String]) -> Result {
    for cell in cells {
        if !CELLS.contains(&cell.as_str()) {
            return Err(format!("no cell `{cell}`; the cells are {}", CELLS.join(", ")).into());
        }
    }
    let cells: Vec<&str> = if cells.is_empty() {
        CELLS.to_vec()
    } else {
        cells.iter().map(String::as_str).collect()
    };
    step("chaos: build multi_hop (release, feature chaos)");
    cmd!(
        sh,
        "cargo build --locked --release -p kest-examples --features chaos --example multi_hop"
    )
    .run()?;
    let binary = target_dir(sh)?.join("release/examples/multi_hop");
    step("chaos: services (the Cedar agent loads the example's policies from a file)");
    let state = services::state_dir(sh)?;
    std::fs::create_dir_all(&state)?;
    let policies = state.join(services::CEDAR_AGENT_POLICIES);
    cmd!(sh, "{binary} --write-agent-policies {policies}").run()?;
    // An agent started without the file would not reload the policies after a restart.
    let _ = services::kill(sh, "cedar-agent", service_port("cedar-agent")?);
    let env = services::start(sh)?;
    let moto = env
        .iter()
        .find(|(key, _)| key == "KEST_MOTO_URL")
        .map(|(_, value)| value.clone())
        .ok_or("services gave no moto")?;
    step("chaos: a P-256 signing key in KMS (moto) for hop2");
    let python = state.join("venv/bin/python");
    // The key, and the principal hop2 signs as with it (its STS caller ARN), which the
    // other hops trust hop2's published keys for.
    let script = "import boto3, sys\n\
        kms = boto3.client('kms', endpoint_url=sys.argv[1])\n\
        print(kms.create_key(KeySpec='ECC_NIST_P256', KeyUsage='SIGN_VERIFY')['KeyMetadata']['KeyId'])\n\
        print(boto3.client('sts', endpoint_url=sys.argv[1]).get_caller_identity()['Arn'])";
    let created = cmd!(sh, "{python} -c {script} {moto}")
        .envs(AWS_ENV)
        .read()?;
    let mut lines = created.lines().map(str::trim);
    let (Some(kms_key_id), Some(kms_principal)) = (lines.next(), lines.next()) else {
        return Err(format!("moto gave no key id and caller ARN: {created}").into());
    };
    let setup = Setup {
        binary,
        env,
        kms_key_id: kms_key_id.to_owned(),
        kms_principal: kms_principal.to_owned(),
    };
    let root = target_dir(sh)?.join("kest-chaos");
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for cell in cells {
        step(&format!("chaos: {cell}: {}", fault_text(cell)));
        let dir = root.join(cell);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let outcome = run_cell(sh, &setup, cell, &dir)?;
        println!("{}", outcome.row);
        problems.extend(outcome.problems.iter().map(|p| format!("{cell}: {p}")));
        rows.push(outcome.row);
    }
    let mut report = String::from(
        "| fault | sent | 200 | refused | failed | client timeouts | broken chains | runs / entries signed (runs without an entry) | entries answered without a run | first 200 after the fault | last failure after the fault |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for row in &rows {
        report.push_str(row);
        report.push('\n');
    }
    std::fs::write(root.join("report.md"), &report)?;
    println!(
        "\n{report}\n(written to {})",
        root.join("report.md").display()
    );
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n").into())
    }
}

fn service_port(name: &str) -> Result<u16> {
    services::PORTS
        .iter()
        .find(|(service, _)| *service == name)
        .map(|(_, port)| *port)
        .ok_or_else(|| format!("no service {name}").into())
}

struct CellOutcome {
    row: String,
    problems: Vec<String>,
}

/// Sleeps until `at` after `start`.
fn sleep_until(start: Instant, at: Duration) {
    if let Some(left) = at.checked_sub(start.elapsed()) {
        std::thread::sleep(left);
    }
}

fn run_cell(sh: &Shell, setup: &Setup, cell: &str, dir: &Path) -> Result<CellOutcome> {
    // The gateway first: it makes the key directory; then the rest.
    let mut hops = Vec::new();
    for (index, port) in PORTS.iter().enumerate() {
        hops.push(setup.hop(dir, index)?);
        wait_listening(
            *port,
            &format!("hop {index}"),
            &dir.join(format!("hop{index}.log")),
        )?;
    }
    let seconds = (FAULT_AT + FAULT_FOR + AFTER).as_secs();
    let mut driver = setup.driver(dir, seconds)?;
    let start = Instant::now();
    sleep_until(start, FAULT_AT);
    let fault_start = unix_ms();
    inject(sh, cell, &mut hops)?;
    sleep_until(start, FAULT_AT + FAULT_FOR);
    let fault_end = unix_ms();
    end(sh, setup, cell, dir, &mut hops)?;
    let deadline = Instant::now() + Duration::from_secs(seconds + 60);
    let status = loop {
        if let Some(status) = driver.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = driver.kill();
            stop_hops(&mut hops);
            return Err("the load driver did not end: a hang".into());
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut summary = String::new();
    if let Some(mut out) = driver.stdout.take() {
        std::io::Read::read_to_string(&mut out, &mut summary)?;
    }
    stop_hops(&mut hops);
    if !status.success() {
        return Err(format!(
            "the load driver failed; see {}",
            dir.join("driver.log").display()
        )
        .into());
    }
    std::fs::write(dir.join("summary.json"), &summary)?;
    analyse(cell, dir, &summary, fault_start, fault_end)
}

fn stop_hops(hops: &mut [Child]) {
    for hop in hops.iter_mut() {
        // Closing standard input asks the service to stop; SIGKILL if it does not.
        drop(hop.stdin.take());
    }
    std::thread::sleep(Duration::from_millis(500));
    for hop in hops.iter_mut() {
        if !matches!(hop.try_wait(), Ok(Some(_))) {
            let _ = hop.kill();
        }
        let _ = hop.wait();
    }
}

fn inject(sh: &Shell, cell: &str, hops: &mut [Child]) -> Result {
    match cell {
        "redis" => services::kill(sh, "redis", service_port("redis")?),
        "cedar-agent" => services::kill(sh, "cedar-agent", service_port("cedar-agent")?),
        "oidc" => services::kill(sh, "oidc-provider", service_port("oidc-provider")?),
        "kms" => services::signal(sh, "moto", "STOP"),
        _ => {
            let hop = hops.get_mut(KMS_HOP).ok_or("no hop2")?;
            hop.kill()?;
            hop.wait()?;
            Ok(())
        }
    }
}

fn end(sh: &Shell, setup: &Setup, cell: &str, dir: &Path, hops: &mut [Child]) -> Result {
    match cell {
        "kms" => services::signal(sh, "moto", "CONT"),
        "hop" => {
            let restarted = setup.hop(dir, KMS_HOP)?;
            if let Some(slot) = hops.get_mut(KMS_HOP) {
                *slot = restarted;
            }
            Ok(())
        }
        // Starts what is not running: the service that was killed.
        _ => services::start(sh).map(|_| ()),
    }
}

/// One request as the driver recorded it.
struct Event {
    t: u64,
    ms: u64,
    outcome: String,
}

impl Event {
    fn parse(line: &str) -> Result<Self> {
        let value: serde_json::Value = serde_json::from_str(line)?;
        let number = |key: &str| {
            value
                .get(key)
                .and_then(serde_json::Value::as_u64)
                .ok_or_else(|| format!("an event without `{key}`: {line}"))
        };
        Ok(Self {
            t: number("t")?,
            ms: number("ms")?,
            outcome: value
                .get("outcome")
                .and_then(serde_json::Value::as_str)
                .ok_or_else(|| format!("an event without `outcome`: {line}"))?
                .to_owned(),
        })
    }
}

/// What each service's run log says: the runs, and the entry signed for each (`None`
/// when it ran but none was, or the process died before it could be).
struct Runs {
    /// Per service: every run's entry.
    by_service: BTreeMap<String, Vec<Option<(String, String)>>>,
}

fn run_logs(dir: &Path) -> Result<Runs> {
    let mut by_service = BTreeMap::new();
    for entry in std::fs::read_dir(dir.join("runs"))? {
        let path = entry?.path();
        let name = path
            .file_stem()
            .and_then(|stem| stem.to_str())
            .unwrap_or_default()
            .to_owned();
        let text = std::fs::read_to_string(&path)?;
        let mut ran: Vec<&str> = Vec::new();
        let mut signed: BTreeMap<&str, Option<(String, String)>> = BTreeMap::new();
        for line in text.lines() {
            let mut parts = line.split(' ');
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some("R"), Some(run), None, None) => ran.push(run),
                (Some("E"), Some(run), Some(id), Some(principal)) => {
                    let entry = (id != "-").then(|| (id.to_owned(), principal.to_owned()));
                    signed.insert(run, entry);
                }
                _ => return Err(format!("{}: a malformed line `{line}`", path.display()).into()),
            }
        }
        let runs = ran
            .iter()
            .map(|run| signed.get(run).cloned().flatten())
            .collect();
        by_service.insert(name, runs);
    }
    Ok(Runs { by_service })
}

fn analyse(
    cell: &str,
    dir: &Path,
    summary: &str,
    fault_start: u64,
    fault_end: u64,
) -> Result<CellOutcome> {
    let summary: serde_json::Value = serde_json::from_str(summary.trim())
        .map_err(|error| format!("the driver's summary is not JSON: {error}"))?;
    let count = |outcome: &str| {
        summary
            .pointer(&format!("/outcomes/{outcome}"))
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    };
    let events: Vec<Event> = std::fs::read_to_string(dir.join("events.jsonl"))?
        .lines()
        .map(Event::parse)
        .collect::<Result<_>>()?;
    let ok_before = events
        .iter()
        .filter(|event| event.t < fault_start && event.outcome == "ok")
        .count();
    let first_ok_after = events
        .iter()
        .filter(|event| event.t >= fault_end && event.outcome == "ok")
        .map(|event| (event.t + event.ms).saturating_sub(fault_end))
        .min();
    let last_failure_after = events
        .iter()
        .filter(|event| event.t >= fault_end && event.outcome != "ok")
        .map(|event| (event.t + event.ms).saturating_sub(fault_end))
        .max();

    let logs = run_logs(dir)?;
    let runs: usize = logs.by_service.values().map(Vec::len).sum();
    let without_entry = logs
        .by_service
        .values()
        .flatten()
        .filter(|e| e.is_none())
        .count();
    let logged: BTreeSet<(String, String)> = logs
        .by_service
        .values()
        .flatten()
        .flatten()
        .cloned()
        .collect();
    let seen: Vec<(String, String)> = std::fs::read_to_string(dir.join("seen.txt"))?
        .lines()
        .filter(|line| !line.is_empty())
        .map(|line| {
            let (id, principal) = line.split_once(' ').unwrap_or((line, "-"));
            (id.to_owned(), principal.to_owned())
        })
        .collect();
    let unlogged = seen.iter().filter(|entry| !logged.contains(*entry)).count();
    // Each service signs as one principal: a logged tip of another is a run recorded
    // under someone else's entry.
    let foreign: Vec<&String> = logs
        .by_service
        .iter()
        .filter(|(_, runs)| {
            runs.iter()
                .flatten()
                .map(|(_, principal)| principal)
                .collect::<BTreeSet<_>>()
                .len()
                > 1
        })
        .map(|(service, _)| service)
        .collect();
    let sent = summary
        .get("sent")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    let failed = count("failed") + count("unreachable");
    let timeouts = count("timeout");
    let broken = count("broken");
    let seconds = |ms: Option<u64>| {
        ms.map_or_else(
            || "never".to_owned(),
            |ms| format!("{:.1} s", ms as f64 / 1000.0),
        )
    };
    let row = format!(
        "| {} | {sent} | {} | {} | {failed} | {timeouts} | {broken} | {runs} / {} ({without_entry}) | {unlogged} | {} | {} |",
        fault_text(cell),
        count("ok"),
        count("refused") + count("no_token"),
        logged.len(),
        seconds(first_ok_after),
        last_failure_after.map_or_else(|| "none".to_owned(), |ms| seconds(Some(ms))),
    );
    let mut problems = Vec::new();
    if broken > 0 {
        problems.push(format!("{broken} answers with a broken chain"));
    }
    // The hook signs after the step has run, so a signer that stops answering, or a
    // process killed between the two, can leave the calls already running without an
    // entry (their results are withheld, or die with the process); the signer gate stops
    // every call after them. So: none, except at most one per client in the cells that
    // stop the signer or the signing process.
    let allowed = if matches!(cell, "kms" | "hop") {
        CLIENTS as usize
    } else {
        0
    };
    if without_entry > allowed {
        problems.push(format!(
            "{without_entry} runs without a signed entry (at most {allowed} expected)"
        ));
    }
    if !foreign.is_empty() {
        problems.push(format!(
            "runs logged under another service's entry at {foreign:?}"
        ));
    }
    if unlogged > 0 {
        problems.push(format!("{unlogged} answered entries without a logged run"));
    }
    if timeouts > 0 {
        problems.push(format!(
            "{timeouts} requests the client gave up on (a hang)"
        ));
    }
    if ok_before == 0 {
        problems.push("no request succeeded before the fault".into());
    }
    if first_ok_after.is_none() {
        problems.push("service did not come back after the fault".into());
    }
    if let Some(errors) = summary.get("errors").and_then(serde_json::Value::as_array) {
        let mut out = std::fs::File::create(dir.join("errors.txt"))?;
        for error in errors {
            writeln!(out, "{error}")?;
        }
    }
    Ok(CellOutcome { row, problems })
}
