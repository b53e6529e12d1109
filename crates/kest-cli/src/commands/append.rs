//! `kest append`: sign one more entry onto a passport.

use kest_crypto::{KeySigner, KeySources, SigningKey, StaticKeyResolver};
use kest_passport::{EntryBuilder, Passport, PolicyContext, UnverifiedPassport, Verifier};
use kest_trust::{OriginMap, TrustScore, WeakestLink};

use crate::commands::verify;
use crate::error::CliError;
use crate::{input, output};

/// The options of `kest append`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AppendArgs {
    /// The signer's private JWK as `--key FILE`; or, as `--key PRINCIPAL=JWKFILE`, a
    /// public key trusted to verify the passport being extended (repeatable)
    #[arg(long = "key", value_name = "FILE|PRINCIPAL=JWKFILE")]
    pub keys: Vec<String>,
    /// The signer's private JWK (for a path that contains `=`)
    #[arg(long, value_name = "FILE")]
    pub signing_key: Option<String>,
    /// Trust the keys of a JWK Set to verify the passport being extended (repeatable)
    #[arg(long, value_name = "FILE")]
    pub jwks: Vec<String>,
    /// Extend the passport without verifying it (it is then only as trustworthy as the file)
    #[arg(long)]
    pub unverified: bool,
    /// The signer's workload id.
    #[arg(long, value_name = "ID")]
    pub principal: String,
    /// The operation the entry records.
    #[arg(long, value_name = "NAME")]
    pub operation: String,
    /// The passport to extend.
    #[arg(long, value_name = "FILE")]
    pub passport: Option<String>,
    /// Where the entry's data came from (an origin of the trust map).
    #[arg(long, value_name = "O")]
    pub origin: Option<String>,
    /// Register a custom origin, NAME=SCORE (repeatable).
    #[arg(long = "origin-score", value_name = "NAME=SCORE")]
    pub origin_scores: Vec<String>,
    /// A taint this entry introduces (repeatable).
    #[arg(long = "added-taint", value_name = "T")]
    pub added_taints: Vec<String>,
    /// A taint this entry clears (repeatable).
    #[arg(long = "removed-taint", value_name = "T")]
    pub removed_taints: Vec<String>,
    /// Set the trust score instead of deriving it (recorded in the entry).
    #[arg(long, value_name = "N")]
    pub trust_override: Option<u8>,
    /// A function-level policy that allowed the operation (repeatable).
    #[arg(long = "policy", value_name = "P")]
    pub policies: Vec<String>,
    /// Data classification (default `system`).
    #[arg(long, value_name = "C")]
    pub classification: Option<String>,
    /// OpenTelemetry trace id; default the tip's, or a fresh one.
    #[arg(long, value_name = "HEX")]
    pub trace_id: Option<String>,
    /// Write the passport here instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<String>,
}

/// Runs `kest append`.
///
/// The passport given with `--passport` is verified before anything is signed onto it,
/// with the keys of `--key PRINCIPAL=JWKFILE` and `--jwks` and the signer's own key for
/// its own principal; without keys for its other signers it is refused, unless
/// `--unverified` says to take it as it is.
///
/// # Errors
/// [`CliError::Input`] for unusable keys, passports or options; [`CliError::Failed`] when
/// the passport does not verify.
pub fn run(args: &AppendArgs) -> Result<(), CliError> {
    let (signing_path, trusted) = split_keys(args)?;
    let key_text = input::read(Some(&signing_path))?;
    let key = SigningKey::from_jwk_json(&key_text)
        .map_err(|error| CliError::input(format!("{signing_path}: {error}")))?;
    let own_key = key.verifying_key().clone();
    let signer = KeySigner::new(key, args.principal.clone());

    let mut passport = match &args.passport {
        Some(path) => {
            let text = input::read(Some(path))?;
            let limits = input::limits();
            if args.unverified {
                UnverifiedPassport::decode(&text, &limits)
                    .map_err(|error| CliError::input(format!("{path}: {error}")))?
                    .dangerous_assume_verified()
            } else {
                let own = StaticKeyResolver::new().with_key(args.principal.clone(), own_key);
                let mut resolver = KeySources::new().with(own);
                if !trusted.is_empty() || !args.jwks.is_empty() {
                    resolver.push(verify::resolver(&trusted, &args.jwks)?);
                }
                Verifier::new(&resolver)
                    .limits(limits)
                    .verify_json(&text)
                    .map_err(|error| {
                        CliError::Failed(format!(
                            "{path} does not verify, so nothing was signed onto it: {error} \
                             (trust its signers with --key PRINCIPAL=JWKFILE or --jwks, or pass --unverified)"
                        ))
                    })?
                    .into_passport()
            }
        }
        None => Passport::new(),
    };

    let mut origins = OriginMap::new();
    for pair in &args.origin_scores {
        let (name, score) = pair.split_once('=').ok_or_else(|| {
            CliError::input(format!("--origin-score `{pair}`: expected NAME=SCORE"))
        })?;
        let score = score
            .parse::<u8>()
            .ok()
            .and_then(|s| TrustScore::new(s).ok())
            .ok_or_else(|| {
                CliError::input(format!("--origin-score `{pair}`: SCORE must be 0..=100"))
            })?;
        origins
            .register(name, score)
            .map_err(|error| CliError::input(format!("--origin-score: {error}")))?;
    }
    let origin_score = origins
        .score_or_default(args.origin.as_deref())
        .map_err(|error| CliError::input(format!("--origin: {error}")))?;

    let trace_id = args.trace_id.clone().unwrap_or_else(|| {
        passport
            .tip()
            .and_then(|tip| {
                tip.entry()
                    .label(kest_passport::LABEL_TRACE_ID)
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string())
    });
    let mut builder = EntryBuilder::new(args.operation.clone())
        .principal(args.principal.clone())
        .trace_id(trace_id)
        .origin_score(origin_score)
        .added_taints(args.added_taints.iter().cloned())
        .removed_taints(args.removed_taints.iter().cloned())
        .policy_context(PolicyContext {
            function_policies: args.policies.clone(),
            ..PolicyContext::default()
        });
    if let Some(classification) = &args.classification {
        builder = builder.classification(classification.clone());
    }
    if let Some(value) = args.trust_override {
        let score = TrustScore::new(value)
            .map_err(|error| CliError::input(format!("--trust-override: {error}")))?;
        builder = builder.trust_override(score);
    }
    passport
        .append(builder, &signer, &WeakestLink)
        .map_err(|error| CliError::input(error.to_string()))?;
    output::write_public(args.out.as_deref(), &passport.to_json())
}

/// The signing key's path and the trusted `PRINCIPAL=JWKFILE` pairs, from `--key` and
/// `--signing-key`.
fn split_keys(args: &AppendArgs) -> Result<(String, Vec<String>), CliError> {
    let (pairs, files): (Vec<&String>, Vec<&String>) =
        args.keys.iter().partition(|key| key.contains('='));
    let signing = match (&args.signing_key, files.as_slice()) {
        (Some(path), []) => path.clone(),
        (None, [path]) => (*path).clone(),
        (None, []) => {
            return Err(CliError::input(
                "no signing key: pass --key FILE (or --signing-key FILE)",
            ));
        }
        _ => {
            return Err(CliError::input(
                "more than one signing key: pass one --key FILE (trusted keys are --key PRINCIPAL=JWKFILE)",
            ));
        }
    };
    Ok((signing, pairs.into_iter().cloned().collect()))
}
