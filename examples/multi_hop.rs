//! A gateway and three services on 127.0.0.1, each protected by Kest: bearer tokens from
//! a local issuer, the passport carried in `baggage` over reqwest, one signed entry per
//! hop, verified at the end. The code is `kest_examples::hops`.
//!
//! ```text
//! cargo run --example multi_hop --features multi-hop
//! cargo run --example multi_hop --features redis -- --redis redis://127.0.0.1:6379/
//! cargo run --release --example multi_hop --features multi-hop -- --load --clients 32 --seconds 30
//! ```

#![allow(clippy::print_stdout, reason = "an example that reports on stdout")]

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use kest_examples::hops::{Deployment, Options};

/// Run the multi-hop demo once, or drive it with load.
#[derive(Parser)]
struct Args {
    /// Keep claim-checked passports in this Redis (`redis://host:port/`) instead of memory.
    #[arg(long)]
    redis: Option<String>,
    /// Passports above this many bytes go by claim check.
    #[arg(long)]
    inline_threshold: Option<usize>,
    /// Measure throughput and latency instead of making one call.
    #[arg(long)]
    load: bool,
    /// Concurrent clients for --load.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Seconds of --load.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
}

#[tokio::main]
async fn main() -> Result<(), kest_examples::hops::BoxError> {
    let args = Args::parse();
    let deployment = Deployment::start(Options {
        redis: args.redis,
        inline_threshold: args.inline_threshold,
    })
    .await?;
    if args.load {
        let deployment = Arc::new(deployment);
        let report =
            kest_examples::hops::load(deployment, args.clients, Duration::from_secs(args.seconds))
                .await?;
        println!(
            "{} requests in {} s with {} clients: {:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms, broken chains {}",
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
        "The request crossed {} services; the final passport:",
        passport.len()
    );
    println!("{}", kest_passport::render::text_tree(&passport).trim_end());
    println!("Verified offline with the four services' public keys; kest.user = alice throughout.");
    let (status, body) = deployment.call("not-a-token").await?;
    println!(
        "Without a valid token the gateway answers {status}: {}",
        body.trim()
    );
    deployment.shutdown();
    Ok(())
}
