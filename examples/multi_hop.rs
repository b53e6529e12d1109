//! A gateway and three services on 127.0.0.1, each protected by Kest and trusting only
//! what it has verified: the gateway takes user input (trust 40, `unverified`), hop1
//! sanitizes it (declares trust 90), hop3 performs a guarded action that needs trust ≥ 80
//! and no `unverified` taint. Bearer tokens come from a local issuer, the passport travels
//! in `baggage` over reqwest, every hop verifies it against its peers' published keys. The
//! code is `kest_examples::hops`.
//!
//! ```text
//! cargo run --example multi_hop --features multi-hop
//! cargo run --example multi_hop --features multi-hop -- --serve
//! cargo run --example multi_hop --features redis -- --redis redis://127.0.0.1:6379/
//! cargo run --release --example multi_hop --features multi-hop -- --load --clients 32 --seconds 30
//! ```
//!
//! With `--serve`, the services keep running for probing: one line per service
//! (`gateway http://127.0.0.1:PORT/`, then hop1, hop2, hop3), then `token <bearer token
//! for alice>`, then they serve `POST /` (with `Authorization: Bearer` and `baggage`) and
//! `GET /.well-known/jwks.json` until standard input closes or the process is terminated.

#![allow(clippy::print_stdout, reason = "an example that reports on stdout")]

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use kest_examples::hops::{Deployment, HOPS, Options};

/// Run the multi-hop demo once, serve it for probing, or drive it with load.
#[derive(Parser)]
struct Args {
    /// Keep claim-checked passports in this Redis (`redis://host:port/`) instead of memory.
    #[arg(long)]
    redis: Option<String>,
    /// Passports above this many bytes go by claim check.
    #[arg(long)]
    inline_threshold: Option<usize>,
    /// Start the four services, print their URLs and a token, and serve until stdin
    /// closes or the process is terminated.
    #[arg(long, conflicts_with = "load")]
    serve: bool,
    /// Measure throughput and latency instead of making one call.
    #[arg(long)]
    load: bool,
    /// Concurrent clients for --load.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// With --load: requests a second in all, sent at a fixed pace (as fast as answers
    /// come otherwise).
    #[arg(long)]
    rate: Option<f64>,
    /// Seconds of --load.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Take inbound passports on faith (no verification), to measure what verification
    /// costs. Never in production.
    #[arg(long)]
    insecure_unverified: bool,
    /// Seconds a claim-checked passport stays redeemable (default 300).
    #[arg(long)]
    claim_ttl: Option<u64>,
    /// The four services' ports, gateway first (`--ports 20001,20002,20003,20004`).
    #[arg(long, value_delimiter = ',')]
    ports: Option<Vec<u16>>,
    /// With --serve: run only this service (0 is the gateway); the others run in
    /// processes of their own at --ports.
    #[arg(long, requires = "ports")]
    only: Option<usize>,
    /// Keep the services' keys and the local token issuer's in this directory, so that a
    /// restarted service keeps its key.
    #[arg(long)]
    key_dir: Option<std::path::PathBuf>,
    /// Ask this Cedar agent (which must hold the example's policies) instead of the
    /// in-process engine. Feature `chaos`.
    #[arg(long)]
    cedar_agent: Option<String>,
    /// Write the example's policies as a Cedar agent loads them (`--policies FILE`) to
    /// this file, and exit.
    #[arg(long)]
    write_agent_policies: Option<std::path::PathBuf>,
    /// Accept bearer tokens from this OIDC provider instead of the local issuer.
    #[arg(long)]
    oidc_issuer: Option<String>,
    /// hop2 signs through this AWS KMS key. Feature `chaos`.
    #[arg(long, requires = "kms_principal")]
    kms_key_id: Option<String>,
    /// The principal hop2 signs as through KMS (the STS caller's ARN), which its peers
    /// trust hop2's published keys for.
    #[arg(long)]
    kms_principal: Option<String>,
    /// Append each run of a protected step, with the entry it was recorded under, to
    /// `<DIR>/<service>.runs`.
    #[arg(long)]
    run_log: Option<std::path::PathBuf>,
    /// Drive the services at --ports from this process (feature `chaos`): --clients
    /// clients for --seconds, verifying every answer offline; events and the entries
    /// seen go to --out, a JSON summary to stdout.
    #[arg(long, conflicts_with_all = ["serve", "load"], requires = "ports")]
    drive: bool,
    /// Where --drive writes `events.jsonl` and `seen.txt`.
    #[arg(long, default_value = ".")]
    out: std::path::PathBuf,
}

#[tokio::main]
async fn main() -> Result<(), kest_examples::hops::BoxError> {
    let args = Args::parse();
    if let Some(path) = &args.write_agent_policies {
        std::fs::write(path, kest_examples::hops::agent_policies_json())?;
        return Ok(());
    }
    let ports = match args.ports.as_deref() {
        Some(&[a, b, c, d]) => Some([a, b, c, d]),
        Some(_) => return Err("--ports takes four ports".into()),
        None => None,
    };
    if args.drive {
        return drive(&args, ports.unwrap_or_default()).await;
    }
    // Spans and metrics over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set; else none.
    let _telemetry = kest::telemetry::init_from_env("multi_hop")?;
    let deployment = Deployment::start(Options {
        redis: args.redis.clone(),
        inline_threshold: args.inline_threshold,
        claim_ttl: args.claim_ttl.map(Duration::from_secs),
        verify_ingress: !args.insecure_unverified,
        token_lifetime: if args.serve {
            Duration::from_secs(24 * 3600)
        } else {
            Duration::from_secs(600)
        },
        ports,
        only: args.only,
        key_dir: args.key_dir.clone(),
        cedar_agent: args.cedar_agent.clone(),
        oidc_issuer: args.oidc_issuer.clone(),
        kms_key_id: args.kms_key_id.clone(),
        kms_principal: args.kms_principal.clone(),
        run_log: args.run_log.clone(),
    })
    .await?;
    if args.serve {
        return serve(deployment).await;
    }
    if args.load {
        let deployment = Arc::new(deployment);
        let report = kest_examples::hops::load(
            deployment,
            args.clients,
            Duration::from_secs(args.seconds),
            args.rate,
        )
        .await?;
        let mode = if args.insecure_unverified {
            "ingress NOT verified"
        } else {
            "ingress verified"
        };
        println!(
            "{} requests in {} s with {} clients ({mode}): {:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms, broken chains {}",
            report.requests,
            args.seconds,
            args.clients,
            report.per_second,
            report.p50.as_secs_f64() * 1000.0,
            report.p99.as_secs_f64() * 1000.0,
            report.broken
        );
        if report.broken > 0 {
            return Err(format!("{} broken or lost chains", report.broken).into());
        }
        return Ok(());
    }
    let token = deployment.token("alice", "support-bot", "refunds")?;
    let (status, body) = deployment.call(&token).await?;
    if status != 200 {
        return Err(format!("the gateway answered {status}: {body}").into());
    }
    let passport = deployment.check(&body, "alice")?;
    println!(
        "The request crossed {} services, each verifying what it received; the final passport:",
        passport.len()
    );
    println!(
        "{}",
        kest::passport::render::text_tree(&passport).trim_end()
    );
    println!("Verified offline with the four services' public keys; kest.user = alice throughout.");
    // The guarded action without the sanitizer: the gateway's own, validly signed entry
    // sent straight to hop3.
    let skipped = kest_examples::hops::gateway_only_baggage(&deployment)?;
    let (status, body) = deployment.call_hop(3, &token, Some(&skipped)).await?;
    println!(
        "Skipping the sanitizer, hop3 answers {status}: {}",
        body.lines().next().unwrap_or_default()
    );
    let (status, body) = deployment.call("not-a-token").await?;
    println!(
        "Without a valid token the gateway answers {status}: {}",
        body.trim()
    );
    deployment.shutdown();
    Ok(())
}

/// `--drive`: load against services in other processes, every answer verified offline.
#[cfg(feature = "chaos")]
async fn drive(args: &Args, ports: [u16; 4]) -> Result<(), kest_examples::hops::BoxError> {
    use kest_examples::drive::{DriveOptions, Tokens};
    let tokens = match (&args.oidc_issuer, &args.key_dir) {
        (Some(issuer), _) => Tokens::Oidc(issuer.clone()),
        (None, Some(dir)) => Tokens::Local(
            Box::new(kest_examples::hops::stored_issuer(dir)?),
            Duration::from_secs(600),
        ),
        (None, None) => return Err("--drive needs --oidc-issuer or the services' --key-dir".into()),
    };
    std::fs::create_dir_all(&args.out)?;
    let summary = kest_examples::drive::drive(DriveOptions {
        gateway: format!("http://127.0.0.1:{}/", ports[0]),
        jwks_urls: ports
            .iter()
            .map(|port| format!("http://127.0.0.1:{port}/.well-known/jwks.json"))
            .collect(),
        tokens,
        clients: args.clients,
        duration: Duration::from_secs(args.seconds),
        events: args.out.join("events.jsonl"),
        seen: args.out.join("seen.txt"),
    })
    .await?;
    println!("{summary}");
    Ok(())
}

#[cfg(not(feature = "chaos"))]
async fn drive(_: &Args, _: [u16; 4]) -> Result<(), kest_examples::hops::BoxError> {
    Err("--drive needs the example's `chaos` feature".into())
}

/// Prints where the services are and a token, then serves until stdin closes or the
/// process is told to stop.
async fn serve(deployment: Deployment) -> Result<(), kest_examples::hops::BoxError> {
    {
        let mut out = std::io::stdout().lock();
        for (name, url) in HOPS.iter().zip(deployment.urls()) {
            writeln!(out, "{name} {url}")?;
        }
        writeln!(
            out,
            "token {}",
            deployment.token("alice", "support-bot", "refunds")?
        )?;
        out.flush()?;
    }
    let stdin_closed = tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        // Returns at end of input (or on a read error): either way, time to stop.
        let _ = std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut sink);
    });
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = stdin_closed => {}
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    deployment.shutdown();
    Ok(())
}
