//! `kest mcp proxy`: the hook in front of an MCP server, over stdio or streamable HTTP.

use std::path::Path;
use std::process::Stdio;

use kest_mcp::{HttpProxy, McpConfig, McpGuard, Proxy, Upstream};

use crate::error::CliError;

/// What `kest mcp proxy` was given.
#[derive(Debug)]
pub struct ProxyArgs {
    /// The Kest TOML file.
    pub config: String,
    /// Where the passport is rewritten after every recorded call.
    pub passport_out: Option<String>,
    /// A JSON-lines file for spans and metrics.
    pub spans: Option<String>,
    /// Serve streamable HTTP at this address instead of stdio.
    pub listen: Option<String>,
    /// The server's streamable HTTP endpoint, instead of a command.
    pub upstream: Option<String>,
    /// The server and its arguments.
    pub command: Vec<String>,
}

/// Runs the proxy until the server exits (or the client closes and the server then
/// exits).
///
/// # Errors
/// [`CliError::Input`] (exit 2) when the configuration or a policy cannot be used or the
/// server cannot be started; [`CliError::Failed`] when the relay itself fails.
pub fn proxy(args: &ProxyArgs) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|error| CliError::Failed(format!("cannot start the async runtime: {error}")))?;
    runtime.block_on(run(args))
}

async fn run(args: &ProxyArgs) -> Result<(), CliError> {
    let shown = |error: &dyn std::error::Error| {
        kest_canon::neutralize(&kest_mcp::error_chain(error)).into_owned()
    };
    let config = Path::new(&args.config);
    let (passport_out, command) = (args.passport_out.as_deref(), args.command.as_slice());
    let kest = kest::Kest::from_toml_file(config)
        .await
        .map_err(|error| CliError::input(shown(&error)))?;
    // Spans and metrics, as any Kest service exports them; flushed before the end.
    let telemetry = match &args.spans {
        Some(path) => kest::telemetry::init(
            kest.service_name(),
            kest::telemetry::Exporter::JsonLines(path.into()),
        )
        .map(Some),
        None => kest::telemetry::init_from_env(kest.service_name()),
    }
    .map_err(|error| CliError::input(shown(&error)))?;
    let rules =
        McpConfig::from_toml_file(config).map_err(|error| CliError::input(shown(&error)))?;
    let guard = McpGuard::new(kest, rules)
        .await
        .map_err(|error| CliError::input(shown(&error)))?;
    let upstream = match (&args.upstream, command.split_first()) {
        (Some(url), _) => Upstream::Url(url.clone()),
        (None, Some((program, rest))) => Upstream::Command {
            program: program.clone(),
            args: rest.to_vec(),
        },
        (None, None) => return Err(CliError::input("no server command after `--`")),
    };
    let relayed = match &args.listen {
        Some(address) => serve(guard, upstream, address, passport_out).await,
        None => relay_stdio(guard, upstream, passport_out).await,
    };
    if let Some(telemetry) = &telemetry
        && let Err(error) = telemetry.flush()
    {
        tracing::warn!(error = %error, "kest mcp proxy: spans could not all be exported");
    }
    relayed
}

/// The client on this process's stdio, the server a command or an HTTP endpoint.
async fn relay_stdio(
    guard: McpGuard,
    upstream: Upstream,
    passport_out: Option<&str>,
) -> Result<(), CliError> {
    let shown = |error: &dyn std::error::Error| {
        kest_canon::neutralize(&kest_mcp::error_chain(error)).into_owned()
    };
    let mut proxy = Proxy::new(guard);
    if let Some(path) = passport_out {
        proxy = proxy.passport_out(path);
    }
    let report = match upstream {
        Upstream::Url(url) => {
            proxy
                .run_to_url(tokio::io::stdin(), tokio::io::stdout(), url)
                .await
        }
        Upstream::Command { program, args } => {
            let mut child = tokio::process::Command::new(&program)
                .args(&args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .map_err(|error| {
                    CliError::input(format!(
                        "cannot start `{}`: {error}",
                        kest_canon::escape_untrusted(&program, 200)
                    ))
                })?;
            let (Some(to_server), Some(from_server)) = (child.stdin.take(), child.stdout.take())
            else {
                return Err(CliError::Failed(
                    "the server's stdio is not piped".to_owned(),
                ));
            };
            let relayed = proxy
                .run(
                    tokio::io::stdin(),
                    tokio::io::stdout(),
                    from_server,
                    to_server,
                )
                .await;
            // The server has had its stdin closed; give it a moment to finish, then stop it.
            if tokio::time::timeout(std::time::Duration::from_secs(5), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
            relayed
        }
    }
    .map_err(|error| CliError::Failed(shown(&error)))?;
    tracing::info!(
        recorded = report.recorded,
        refused = report.refused,
        "kest mcp proxy: session over"
    );
    Ok(())
}

/// Streamable HTTP at `address`, until Ctrl-C.
async fn serve(
    guard: McpGuard,
    upstream: Upstream,
    address: &str,
    passport_dir: Option<&str>,
) -> Result<(), CliError> {
    let shown = |error: &dyn std::error::Error| {
        kest_canon::neutralize(&kest_mcp::error_chain(error)).into_owned()
    };
    let mut proxy = HttpProxy::new(guard, upstream)
        .await
        .map_err(|error| CliError::input(shown(&error)))?;
    if let Some(dir) = passport_dir {
        std::fs::create_dir_all(dir).map_err(|error| {
            CliError::input(format!(
                "cannot create the passport directory `{}`: {error}",
                kest_canon::escape_untrusted(dir, 200)
            ))
        })?;
        proxy = proxy.passport_dir(dir);
    }
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|error| {
            CliError::input(format!(
                "cannot listen on `{}`: {error}",
                kest_canon::escape_untrusted(address, 200)
            ))
        })?;
    let bound = listener
        .local_addr()
        .map_err(|error| CliError::Failed(format!("the listening address: {error}")))?;
    {
        use std::io::Write as _;
        // Port 0 picks a port: the one chosen is what a caller needs to know.
        let _ = writeln!(std::io::stderr(), "listening on http://{bound}/mcp");
    }
    let closing = proxy.clone();
    axum::serve(listener, proxy.router())
        .with_graceful_shutdown(async move {
            stopped().await;
            closing.close();
        })
        .await
        .map_err(|error| CliError::Failed(format!("serving HTTP: {error}")))
}

/// Ctrl-C, or SIGTERM where there is one: the sessions end and their servers stop.
async fn stopped() {
    #[cfg(unix)]
    {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = terminate => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
