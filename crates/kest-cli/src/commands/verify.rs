//! `kest verify`: check a passport, a baggage header or one JWS against trusted keys.

use kest_canon::{Sha256Digest, Untrusted};
use kest_crypto::{Jwk, JwksKeyResolver, KeySources, PrivateJwk, StaticKeyResolver};
use kest_passport::{PassportError, Strictness, VerificationReport, Verifier};
use kest_propagation::{AnnouncedTip, InboundPassport, PropagationError};
use serde_json::json;

use crate::error::CliError;
use crate::input::{self, Input};
use crate::output;

/// The options of `kest verify`.
#[derive(Debug, Clone, Default)]
pub struct VerifyArgs {
    /// Input file; stdin when absent or `-`.
    pub file: Option<String>,
    /// Trusted keys, `PRINCIPAL=JWKFILE`.
    pub keys: Vec<String>,
    /// Trusted JWK Set files.
    pub jwks: Vec<String>,
    /// The tip the passport must end at.
    pub expect_tip: Option<String>,
    /// Strictness of the label audit.
    pub strictness: Strictness,
    /// Machine-readable output.
    pub json: bool,
}

/// Builds the resolver from `--key` and `--jwks`.
///
/// # Errors
/// [`CliError::Input`] for unreadable or invalid key files, or when no key is given.
pub fn resolver(keys: &[String], jwks: &[String]) -> Result<KeySources, CliError> {
    if keys.is_empty() && jwks.is_empty() {
        return Err(CliError::input(
            "no trusted keys: pass --key PRINCIPAL=JWKFILE or --jwks FILE",
        ));
    }
    let mut fixed = StaticKeyResolver::new();
    for pair in keys {
        // Principals may hold `=` (`spiffe://x/a=b`), file names rarely do: split at the last.
        let (principal, path) = pair.rsplit_once('=').ok_or_else(|| {
            CliError::input(format!(
                "--key `{}`: expected PRINCIPAL=JWKFILE",
                Untrusted::new(pair)
            ))
        })?;
        let text = input::read(Some(path))?;
        let jwk =
            Jwk::from_json(&text).map_err(|error| CliError::input(format!("{path}: {error}")))?;
        if PrivateJwk::from_json(&text).is_ok() {
            tracing::warn!(
                "{path} holds a private key; only its public part is used. Verifiers need only \
                 the public key (`kest keygen` prints it)"
            );
        }
        fixed
            .insert_jwk(principal, &jwk)
            .map_err(|error| CliError::input(format!("{path}: {error}")))?;
    }
    // The auditor's own files: each `--jwks` key speaks for the principal its `kid` names.
    // United, so that a principal holding an Ed25519 key in one and a P-256 key in another
    // (a migration to KMS) is verified with the key of each entry's algorithm.
    let mut sources = KeySources::new().with(fixed);
    for path in jwks {
        let text = input::read(Some(path))?;
        let set = JwksKeyResolver::from_json(&text)
            .map_err(|error| CliError::input(format!("{path}: {error}")))?;
        sources.push(set);
    }
    Ok(sources)
}

/// Runs `kest verify`.
///
/// # Errors
/// [`CliError::Failed`] with one line naming the entry and cause when verification fails;
/// [`CliError::Input`] when it cannot run.
pub fn run(args: &VerifyArgs) -> Result<(), CliError> {
    let resolver = resolver(&args.keys, &args.jwks)?;
    let text = input::read(args.file.as_deref())?;
    let mut expected = args
        .expect_tip
        .as_deref()
        .map(Sha256Digest::from_hex)
        .transpose()
        .map_err(|error| CliError::input(format!("--expect-tip: {error}")))?;
    let limits = input::limits();
    let verifier = |tip: Option<Sha256Digest>| {
        let verifier = Verifier::new(&resolver)
            .strictness(args.strictness)
            .limits(limits);
        match tip {
            Some(tip) => verifier.expect_tip(tip),
            None => verifier,
        }
    };
    let outcome = match input::classify(&text)? {
        Input::Passport(json) => verifier(expected).verify_json(&json).map(Outcome::Passport),
        Input::Baggage(baggage) => {
            let inbound = InboundPassport::from_baggage(&baggage);
            if !inbound.is_present() {
                return Err(input::no_passport_in_baggage());
            }
            let announced = match inbound.announced_tip() {
                Ok(announced) => announced,
                Err(error) => return fail(args.json, None, &error.to_string()),
            };
            let differs = match (expected, announced) {
                (Some(given), AnnouncedTip::Hash(tip)) => (given != tip).then(|| tip.to_hex()),
                (Some(_), AnnouncedTip::Empty) => Some("0 (an empty chain)".to_owned()),
                _ => None,
            };
            if let (Some(given), Some(announced)) = (expected, differs) {
                return fail(
                    args.json,
                    None,
                    &format!(
                        "--expect-tip {given} differs from the header's kest.chain_tip {announced}"
                    ),
                );
            }
            expected = expected.or(inbound.tip());
            // Each member is verified on its own, exactly as a passport file would be, so
            // the cause reported is the same whatever the transport.
            match inbound.choose_verified(None, &verifier(expected), &limits) {
                Ok(Some(report)) => Ok(Outcome::Passport(report)),
                Ok(None) => verifier(expected).verify_json("[]").map(Outcome::Passport),
                Err(PropagationError::Passport { source, .. }) => Err(source),
                Err(error) => return fail(args.json, None, &error.to_string()),
            }
        }
        Input::Jws(jws) => verifier(expected)
            .verify_entry(&jws)
            .map(|entry| Outcome::Entry(Box::new(entry))),
    };
    match outcome {
        Ok(outcome) => report(args.json, &outcome),
        Err(error) => fail(args.json, Some(&error), &error.to_string()),
    }
}

enum Outcome {
    Passport(VerificationReport),
    Entry(Box<kest_passport::SignedEntry>),
}

fn report(json: bool, outcome: &Outcome) -> Result<(), CliError> {
    match (outcome, json) {
        (Outcome::Passport(report), true) => output::line(
            &json!({
                "verified": true,
                "entries": report.len(),
                "tip": report.tip().map(|tip| tip.to_hex()),
                "strict": report.is_strict(),
                "findings": report.findings().iter().map(kest_passport::Finding::to_json).collect::<Vec<_>>(),
            })
            .to_string(),
        ),
        (Outcome::Passport(report), false) => {
            let tip = report
                .tip()
                .map_or_else(|| "none".to_owned(), |tip| tip.to_hex());
            let mode = if report.is_strict() {
                "strict"
            } else {
                "lenient"
            };
            let entries = match report.len() {
                1 => "1 entry".to_owned(),
                count => format!("{count} entries"),
            };
            output::line(&format!(
                "verified: {entries}, tip {tip} ({mode} label audit)"
            ))?;
            for finding in report.findings() {
                output::line(&format!("finding: {finding}"))?;
            }
            Ok(())
        }
        (Outcome::Entry(entry), true) => output::line(
            &json!({
                "verified": true,
                "entries": 1,
                "entry_id": entry.entry().entry_id().to_string(),
                "hash": entry.hash().to_hex(),
                "principal": entry.entry().principal(),
            })
            .to_string(),
        ),
        (Outcome::Entry(entry), false) => output::line(&format!(
            "verified: entry `{}` ({} by {}), hash {}",
            entry.entry().entry_id(),
            Untrusted::new(entry.entry().operation()),
            Untrusted::new(entry.entry().principal().unwrap_or_default()),
            entry.hash()
        )),
    }
}

/// Prints the failure (as JSON on stdout with `--json`) and returns the error that sets
/// the exit code: 2 when the text is no readable passport (the check could not run), 1
/// otherwise.
fn fail(json: bool, error: Option<&PassportError>, message: &str) -> Result<(), CliError> {
    if json {
        output::line(
            &json!({
                "verified": false,
                "error": {
                    "index": error.and_then(PassportError::index),
                    "entry_id": error.and_then(entry_id_of),
                    "cause": error.and_then(PassportError::fault).map_or_else(|| message.to_owned(), ToString::to_string),
                    "message": message,
                }
            })
            .to_string(),
        )?;
    }
    if matches!(error, Some(PassportError::NotAnArray { .. })) {
        return Err(CliError::Input(format!("unreadable passport: {message}")));
    }
    Err(CliError::Failed(format!("verification failed: {message}")))
}

fn entry_id_of(error: &PassportError) -> Option<String> {
    match error {
        PassportError::Entry { entry_id, .. } => entry_id.clone(),
        _ => None,
    }
}
