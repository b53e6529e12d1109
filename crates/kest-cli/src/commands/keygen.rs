//! `kest keygen`: an Ed25519 key as a private JWK file and its public JWK.

use kest_crypto::SigningKey;

use crate::error::CliError;
use crate::output;

/// Runs `kest keygen`.
///
/// # Errors
/// [`CliError::Input`] for a bad seed or an existing file.
pub fn run(seed_hex: Option<&str>, out: &str, force: bool) -> Result<(), CliError> {
    let key = match seed_hex {
        Some(seed) => SigningKey::from_ed25519_seed_hex(seed),
        None => SigningKey::generate_ed25519(),
    }
    .map_err(|error| CliError::input(format!("--seed-hex: {error}")))?;
    let private = key.to_private_jwk();
    output::write_private(out, &private.to_json(), force)?;
    if out != "-" {
        output::line(&key.verifying_key().to_jwk().to_json())?;
    }
    Ok(())
}
