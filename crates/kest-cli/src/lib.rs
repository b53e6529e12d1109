//! The `kest` command-line tool, as a library so that its parts can be tested.
//!
//! Auditors and scripts use `kest` to verify passports offline, look inside them, draw
//! their lineage, canonicalize JSON and make keys. Its interface is a contract: flags,
//! output and exit codes are documented in `docs/src/cli.md` and checked against `--help`
//! by the test suite.
//!
//! | exit code | meaning |
//! |---|---|
//! | 0 | success: everything verified |
//! | 1 | the check ran and failed (verification, an invalid `canon` line) |
//! | 2 | the check could not run (usage, unreadable or unrecognized input, bad keys) |
//! | 3 | `policy eval`: the policy denies |
//! | 4 | `policy eval`: the engine could not decide (a deny too) |
//!
//! ```
//! use clap::Parser as _;
//! let cli = kest_cli::Cli::try_parse_from(["kest", "tree", "--format", "mermaid", "p.json"]).unwrap();
//! assert!(matches!(cli.command, kest_cli::Command::Tree { .. }));
//! ```

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kest_passport::Strictness;

pub mod commands;
mod error;
pub mod input;
mod output;

pub use error::{CliError, EXIT_FAILED, EXIT_USAGE};

/// Zero-trust execution lineage: verify, inspect and draw Kest passports.
#[derive(Debug, Parser)]
#[command(name = "kest", version, about, long_about = None, disable_help_subcommand = true)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Verify a passport, a `baggage` header value or one JWS against trusted keys.
    ///
    /// Exits 0 only when everything verifies; otherwise prints one line naming the
    /// entry's index, its `entry_id` and the cause, and exits 1.
    Verify {
        /// Passport JSON, baggage header or JWS; `-` or absent reads stdin.
        file: Option<String>,
        /// Trust the public key in JWKFILE for PRINCIPAL (repeatable).
        #[arg(long = "key", value_name = "PRINCIPAL=JWKFILE")]
        keys: Vec<String>,
        /// Trust the keys of a JWK Set, each for the principal its `kid` names (repeatable).
        #[arg(long, value_name = "FILE")]
        jwks: Vec<String>,
        /// Require the last entry to have this hash (detects truncation). A baggage
        /// header's `kest.chain_tip` is used when this is absent.
        #[arg(long, value_name = "HEX")]
        expect_tip: Option<String>,
        /// Fail on undeclared trust raises even in chains from other runtimes.
        #[arg(long, conflicts_with = "lenient")]
        strict: bool,
        /// Report undeclared trust raises as findings even in Kest-only chains.
        #[arg(long)]
        lenient: bool,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show each entry: index, entry_id, operation, principal, trust, taints, parents, hash.
    ///
    /// Signatures are not checked; use `kest verify` for that. A passport whose entries
    /// do not read or do not link is still shown, with a `fault` column marking each
    /// problem on its entry; the command then exits 1.
    Inspect {
        /// Passport JSON, baggage header or root JWS; `-` or absent reads stdin.
        file: Option<String>,
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Find every passport in files, directories (recursively) and span exports, verify
    /// each, and summarise per principal and per operation.
    ///
    /// Reads passport JSON, files of `baggage` header values or JWS (one per line), Kest's
    /// JSON-lines and SQLite span exports and OTLP JSON files (each flow once, at the
    /// longest passport its spans carry, with the denials). Exits 0 when every passport
    /// verifies, 1 when any fails, 2 when the audit cannot run.
    Audit {
        /// Files and directories to search.
        #[arg(value_name = "PATH", required = true)]
        paths: Vec<String>,
        /// Trust the public key in JWKFILE for PRINCIPAL (repeatable).
        #[arg(long = "key", value_name = "PRINCIPAL=JWKFILE")]
        keys: Vec<String>,
        /// Trust the keys of a JWK Set, each for the principal its `kid` names (repeatable).
        #[arg(long, value_name = "FILE")]
        jwks: Vec<String>,
        /// Report format.
        #[arg(long, value_enum, default_value_t)]
        format: commands::audit::AuditFormat,
        /// Write the report here instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<String>,
        /// Fail on undeclared trust raises even in chains from other runtimes.
        #[arg(long, conflicts_with = "lenient")]
        strict: bool,
        /// Report undeclared trust raises as findings even in Kest-only chains.
        #[arg(long)]
        lenient: bool,
    },
    /// Draw the passport's lineage DAG.
    ///
    /// Signatures are not checked; use `kest verify` for that.
    Tree {
        /// Passport JSON, baggage header or root JWS; `-` or absent reads stdin.
        file: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: commands::tree::TreeFormat,
    },
    /// Print the RFC 8785 canonical form of JSON, ending in a newline.
    Canon {
        /// JSON file; `-` or absent reads stdin.
        file: Option<String>,
        /// Treat every input line as one JSON text and print one canonical line each.
        #[arg(long)]
        lines: bool,
        /// Treat every number as an IEEE double (pure RFC 8785) instead of rejecting
        /// integers beyond ±(2^53-1) as the Python package does.
        #[arg(long)]
        ieee: bool,
    },
    /// Make an Ed25519 key: the private JWK goes to a file (mode 0600), the public JWK to
    /// stdout.
    Keygen {
        /// Derive the key from this 32-byte seed (64 hex characters) instead of randomly.
        #[arg(long, value_name = "HEX")]
        seed_hex: Option<String>,
        /// Where to write the private JWK; `-` prints it to stdout instead of the public JWK.
        #[arg(long, value_name = "FILE", default_value = "kest-key.jwk")]
        out: String,
        /// Replace the file if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Evaluate policies with the in-process engines.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Put Kest in front of Model Context Protocol servers.
    #[command(subcommand)]
    Mcp(McpCommand),
    /// Show the workload identity this environment signs as: the provider detected (SPIFFE
    /// socket, Bedrock agent, AWS KMS key, OIDC token, or a local key), the workload id,
    /// the algorithm, the key id and the public JWK.
    ///
    /// Exits 1 when the configured identity cannot be established.
    Whoami {
        /// Print one JSON object with `provider`, `workload_id`, `alg`, `kid` and `jwk`.
        #[arg(long)]
        json: bool,
    },
    /// Append one signed entry to a passport (empty when none is given), with trust and
    /// taints derived from its tip, and print the passport.
    Append(Box<commands::append::AppendArgs>),
    /// Print this message or the help of the given subcommand(s)
    Help {
        /// The subcommand to describe, and its own subcommand (`kest help policy eval`).
        #[arg(value_name = "COMMAND")]
        command: Vec<String>,
    },
}

/// `kest mcp` subcommands.
#[derive(Debug, Subcommand)]
pub enum McpCommand {
    /// Front an MCP server: start COMMAND and speak MCP to it on its stdin and stdout
    /// (or, with --upstream, be the HTTP client of a server that speaks streamable
    /// HTTP), and speak MCP to the client on this process's stdio (or, with --listen,
    /// serve streamable HTTP at http://ADDR/mcp). Every tools/call, resources/read and
    /// prompts/get is decided by policy before it reaches the server and recorded as a
    /// signed entry after it answers; the session's passport goes back in the result's
    /// _meta.baggage. A refused call is a JSON-RPC error and never reaches the server.
    /// Everything else passes unchanged. One MCP session is one flow.
    ///
    /// The configuration is a Kest TOML file: `[identity]`, `[policy]` and `[ingress]` as
    /// for any service, plus `[mcp]` (server, unlisted = "deny" | "guard",
    /// return_passport = "when_sent" | "always", max_message_bytes),
    /// `[mcp.tools.NAME]` (policy, origin, added_taints, removed_taints, trust_override,
    /// classification) and, for --listen, `[mcp.http]` (issuer, audience, jwks_uri,
    /// anonymous, allowed_origins, max_sessions, session_idle_seconds): every HTTP
    /// request's bearer token is validated against the issuer's keys, and the caller
    /// comes from the token alone. Exits 2 when the configuration or a policy cannot be
    /// used, or COMMAND cannot be started; otherwise with 0 when the server exits
    /// (stdio) or on Ctrl-C or SIGTERM (--listen).
    Proxy {
        /// The Kest TOML configuration.
        #[arg(long, value_name = "FILE")]
        config: String,
        /// Rewrite FILE (atomically) after every recorded call with the session's
        /// passport as JSON, the list of JWS `kest verify` reads. With --listen, a
        /// directory: each session's passport is `DIR/SESSION-ID.json`.
        #[arg(long, value_name = "FILE")]
        passport_out: Option<String>,
        /// Append every call's span and the metrics to FILE as JSON lines (`kest audit`
        /// reads it). Without it, spans and metrics go to the OTLP collector named by
        /// OTEL_EXPORTER_OTLP_ENDPOINT, when set.
        #[arg(long, value_name = "FILE")]
        spans: Option<String>,
        /// Serve streamable HTTP at http://ADDR/mcp instead of stdio (port 0 picks one;
        /// the address is printed on stderr as `listening on http://ADDR/mcp`). Each
        /// session starts its own COMMAND, or opens its own session on --upstream.
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// The server speaks streamable HTTP at URL: no COMMAND is started.
        #[arg(long, value_name = "URL", conflicts_with = "command")]
        upstream: Option<String>,
        /// The server to start, and its arguments (after `--`).
        #[arg(
            value_name = "COMMAND",
            last = true,
            required_unless_present = "upstream"
        )]
        command: Vec<String>,
    },
}

/// `kest policy` subcommands.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Evaluate one policy against a complete evaluation context and print `allow` or
    /// `deny` with the engine's reasons.
    ///
    /// Exits 0 on allow, 3 on deny, 4 when the engine cannot decide (which is also a deny),
    /// 2 for unusable input.
    Eval {
        /// The engine.
        #[arg(long, value_enum)]
        engine: commands::policy::EngineKind,
        /// A policy file (`.cedar` or `.rego`; repeatable).
        #[arg(long = "policy", value_name = "FILE", required = true)]
        policies: Vec<String>,
        /// The policy name: the Cedar action id, or the Rego package path `a/b`.
        #[arg(long, value_name = "NAME")]
        name: String,
        /// The complete evaluation context, as the engine receives it.
        #[arg(long, value_name = "CONTEXT.json")]
        input: String,
        /// A Cedar entity store (JSON).
        #[arg(long, value_name = "FILE")]
        entities: Option<String>,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run every case table under DIR against both languages; one line per model.
    ///
    /// Exits 1 if any case gives an unexpected decision in either language.
    Test {
        /// The policy directory: `<model>.cedar`, `<model>.rego`, `cases/<model>.json`.
        #[arg(default_value = "policies")]
        dir: String,
    },
}

/// The label-audit mode the `--strict` and `--lenient` flags ask for.
const fn strictness(strict: bool, lenient: bool) -> Strictness {
    match (strict, lenient) {
        (true, _) => Strictness::Strict,
        (_, true) => Strictness::Lenient,
        _ => Strictness::Auto,
    }
}

/// Runs a parsed command line.
///
/// # Errors
/// The [`CliError`] whose message `main` prints and whose exit code it returns.
pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Verify {
            file,
            keys,
            jwks,
            expect_tip,
            strict,
            lenient,
            json,
        } => commands::verify::run(&commands::verify::VerifyArgs {
            file,
            keys,
            jwks,
            expect_tip,
            strictness: strictness(strict, lenient),
            json,
        }),
        Command::Audit {
            paths,
            keys,
            jwks,
            format,
            out,
            strict,
            lenient,
        } => commands::audit::run(&commands::audit::AuditArgs {
            paths,
            keys,
            jwks,
            format,
            out,
            strictness: strictness(strict, lenient),
        }),
        Command::Inspect { file, json } => commands::inspect::run(file.as_deref(), json),
        Command::Tree { file, format } => commands::tree::run(file.as_deref(), format),
        Command::Canon { file, lines, ieee } => commands::canon::run(file.as_deref(), lines, ieee),
        Command::Keygen {
            seed_hex,
            out,
            force,
        } => commands::keygen::run(seed_hex.as_deref(), &out, force),
        Command::Policy(PolicyCommand::Eval {
            engine,
            policies,
            name,
            input,
            entities,
            json,
        }) => commands::policy::eval(&commands::policy::EvalArgs {
            engine,
            policies,
            name,
            input,
            entities,
            json,
        }),
        Command::Policy(PolicyCommand::Test { dir }) => commands::policy::test(&dir),
        Command::Whoami { json } => commands::whoami::run(json),
        Command::Mcp(McpCommand::Proxy {
            config,
            passport_out,
            spans,
            listen,
            upstream,
            command,
        }) => commands::mcp::proxy(&commands::mcp::ProxyArgs {
            config,
            passport_out,
            spans,
            listen,
            upstream,
            command,
        }),
        Command::Append(args) => commands::append::run(&args),
        Command::Help { command } => help(&command),
    }
}

/// `kest help [COMMAND...]`: the long help of the command named, as `--help` prints it.
/// Ours rather than clap's, so that `kest help --help` describes itself.
fn help(path: &[String]) -> Result<(), CliError> {
    use clap::CommandFactory as _;
    let mut command = Cli::command();
    for name in path {
        command = command.find_subcommand(name).cloned().ok_or_else(|| {
            CliError::input(format!(
                "no command `{}`; `kest help` lists them",
                kest_canon::escape_untrusted(name, 40)
            ))
        })?;
    }
    // Rendered by parsing `kest PATH --help`, so the text is exactly what `--help` prints.
    let args = std::iter::once("kest")
        .chain(path.iter().map(String::as_str))
        .chain(std::iter::once("--help"));
    let text = match Cli::try_parse_from(args) {
        Err(error) if error.kind() == clap::error::ErrorKind::DisplayHelp => error.render(),
        _ => return Err(CliError::input("no help for that command")),
    };
    output::line(text.to_string().trim_end())
}

/// An error message as it may reach a terminal: in each line, the characters that change
/// how text is displayed are escaped (a file name in it may hold them), the lines kept,
/// and text the message already escaped is left as it is.
fn printable(message: &str) -> String {
    message
        .lines()
        .map(kest_canon::neutralize)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Parses the process arguments, runs, prints any error as `kest: <message>` on stderr,
/// and returns the exit code.
#[must_use]
pub fn main_with_args() -> ExitCode {
    // Warnings (a local key made for this process, say) go to stderr.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::WARN)
        .with_target(false)
        .without_time()
        .try_init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // The command already printed its result.
        Err(CliError::Exit(code)) => ExitCode::from(code),
        Err(error) => {
            #[allow(
                clippy::print_stderr,
                reason = "the CLI reports its one error line on stderr"
            )]
            {
                eprintln!("kest: {}", printable(&error.to_string()));
            }
            ExitCode::from(error.exit_code())
        }
    }
}
