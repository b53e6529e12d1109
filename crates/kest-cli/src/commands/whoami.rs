//! `kest whoami`: which identity this environment signs as.

use kest_identity::IdentityInfo;

use crate::error::CliError;
use crate::output;

/// Runs `kest whoami`: detects the provider as a protected process would, proves it can
/// describe itself, and prints what it found.
///
/// # Errors
/// [`CliError::Failed`] when the configured identity cannot be established (the process
/// would refuse to sign, and so to run).
pub fn run(json: bool) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| CliError::Failed(format!("cannot start the async runtime: {error}")))?;
    let info = runtime
        .block_on(async {
            let provider = kest_identity::detect().await?;
            provider.describe().await
        })
        .map_err(|error| CliError::Failed(format!("no usable identity: {error}")))?;
    if json {
        output::line(&to_json(&info))
    } else {
        output::line(&to_text(&info))
    }
}

/// The one JSON object `--json` prints: `provider`, `workload_id`, `alg`, `kid`, `jwk`.
fn to_json(info: &IdentityInfo) -> String {
    serde_json::json!({
        "provider": info.provider,
        "workload_id": info.workload_id,
        "alg": info.alg.as_str(),
        "kid": info.kid,
        "jwk": info.jwk,
    })
    .to_string()
}

fn to_text(info: &IdentityInfo) -> String {
    let mut lines = vec![
        format!("provider     {}", info.provider),
        format!("workload id  {}", info.workload_id),
        format!("algorithm    {}", info.alg),
        format!("kid          {}", info.kid),
    ];
    if let Some(issuer) = &info.issuer {
        lines.push(format!("issuer       {issuer}"));
    }
    if let Some(chain) = &info.x5c {
        lines.push(format!("x5c          {} certificate(s)", chain.len()));
    }
    lines.push(format!("jwk          {}", info.jwk.to_json().as_str()));
    lines.join("\n")
}
