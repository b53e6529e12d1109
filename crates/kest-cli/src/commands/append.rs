//! `kest append`: sign one more entry onto a passport.

use kest_crypto::{KeySigner, SigningKey};
use kest_passport::{EntryBuilder, Limits, Passport, PolicyContext};
use kest_trust::{OriginMap, TrustScore, WeakestLink};

use crate::error::CliError;
use crate::{input, output};

/// The options of `kest append`.
#[derive(Debug, Clone, Default)]
pub struct AppendArgs {
    /// Private JWK file.
    pub key: String,
    /// Workload id of the signer.
    pub principal: String,
    /// Operation name.
    pub operation: String,
    /// Passport file to extend; an empty passport when absent.
    pub passport: Option<String>,
    /// Origin of the data this entry handles.
    pub origin: Option<String>,
    /// Custom origins, `NAME=SCORE`.
    pub origin_scores: Vec<String>,
    /// Taints introduced.
    pub added_taints: Vec<String>,
    /// Taints cleared.
    pub removed_taints: Vec<String>,
    /// Replaces the derived trust score.
    pub trust_override: Option<u8>,
    /// Function-level policies that ran.
    pub policies: Vec<String>,
    /// Data classification.
    pub classification: Option<String>,
    /// Trace id; the tip's, or a fresh one, when absent.
    pub trace_id: Option<String>,
    /// Where to write the passport; stdout when absent.
    pub out: Option<String>,
}

/// Runs `kest append`.
///
/// # Errors
/// [`CliError::Input`] for unusable keys, passports or options.
pub fn run(args: &AppendArgs) -> Result<(), CliError> {
    let key_text = input::read(Some(&args.key))?;
    let key = SigningKey::from_jwk_json(&key_text)
        .map_err(|error| CliError::input(format!("{}: {error}", args.key)))?;
    let signer = KeySigner::new(key, args.principal.clone());

    let mut passport = match &args.passport {
        Some(path) => {
            let text = input::read(Some(path))?;
            let limits = Limits {
                max_bytes: input::MAX_INPUT_BYTES,
                ..Limits::default()
            };
            Passport::decode(&text, &limits)
                .map_err(|error| CliError::input(format!("{path}: {error}")))?
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
