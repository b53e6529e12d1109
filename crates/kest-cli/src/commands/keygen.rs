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
    if out == "-" {
        return output::line(&key.to_private_jwk().to_json());
    }
    let path = std::path::Path::new(out);
    if !force && path.exists() {
        return Err(CliError::input(format!(
            "{out} exists; pass --force to replace it"
        )));
    }
    // Created with mode 0600, never through an existing file.
    kest_identity::write_private_jwk(path, &key, force)
        .map_err(|error| CliError::Input(error.to_string()))?;
    output::line(&key.verifying_key().to_jwk().to_json())
}
