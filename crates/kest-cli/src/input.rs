//! Reading command input and telling what it is.

use std::io::Read as _;

use kest_passport::{EntryHash, Limits, UnverifiedEntry, UnverifiedPassport};
use kest_propagation::{Baggage, BaggageLimits, InboundPassport};

use crate::error::CliError;

/// The most input any command reads: a hostile file cannot exhaust memory.
pub const MAX_INPUT_BYTES: usize = 64 * 1024 * 1024;

/// Reads `path`, or standard input for `None` or `-`, up to [`MAX_INPUT_BYTES`].
///
/// # Errors
/// [`CliError::Io`] or [`CliError::Input`] when the input is too large or not UTF-8.
pub fn read(path: Option<&str>) -> Result<String, CliError> {
    let label = path.unwrap_or("-");
    let mut bytes = Vec::new();
    let limit = u64::try_from(MAX_INPUT_BYTES).unwrap_or(u64::MAX) + 1;
    let result = match path {
        None | Some("-") => std::io::stdin().lock().take(limit).read_to_end(&mut bytes),
        Some(file) => std::fs::File::open(file).and_then(|f| f.take(limit).read_to_end(&mut bytes)),
    };
    result.map_err(|error| CliError::io(label, error))?;
    if bytes.len() > MAX_INPUT_BYTES {
        return Err(CliError::input(format!(
            "{label}: input is larger than {MAX_INPUT_BYTES} bytes"
        )));
    }
    String::from_utf8(bytes).map_err(|_| CliError::input(format!("{label}: input is not UTF-8")))
}

/// What an input holds.
#[derive(Debug)]
pub enum Input {
    /// A passport's JSON array.
    Passport(String),
    /// A `baggage` header value (with or without the `baggage:` name).
    Baggage(Baggage),
    /// One compact JWS.
    Jws(String),
}

/// Tells a passport, a baggage header and a single JWS apart.
///
/// # Errors
/// [`CliError::Input`] when the text is none of these.
pub fn classify(text: &str) -> Result<Input, CliError> {
    let text = text.trim();
    if text.starts_with('[') {
        return Ok(Input::Passport(text.to_owned()));
    }
    let header = text
        .get(..8)
        .filter(|name| name.eq_ignore_ascii_case("baggage:"))
        .and_then(|_| text.get(8..))
        .unwrap_or(text)
        .trim();
    if header.contains("kest.") && header.contains('=') {
        let limits = BaggageLimits {
            max_bytes: MAX_INPUT_BYTES,
            ..BaggageLimits::default()
        };
        return Baggage::parse(header, &limits)
            .map(Input::Baggage)
            .map_err(|error| CliError::input(format!("baggage header: {error}")));
    }
    let jws_shaped = text.matches('.').count() == 2
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if jws_shaped {
        return Ok(Input::Jws(text.to_owned()));
    }
    Err(CliError::input(
        "input is not a passport (JSON array), a `baggage` header with kest members, or a JWS",
    ))
}

/// Limits for passports the CLI reads: the input size limit, the default entry limit.
#[must_use]
pub fn limits() -> Limits {
    Limits {
        max_bytes: MAX_INPUT_BYTES,
        ..Limits::default()
    }
}

/// A passport read structurally (signatures unchecked), with the tip a baggage header
/// announced, for the commands that display passports.
///
/// # Errors
/// [`CliError::Input`] when the passport cannot be decoded, or a baggage header carries
/// none.
pub fn load_unverified(input: Input) -> Result<(UnverifiedPassport, Option<EntryHash>), CliError> {
    let limits = limits();
    match input {
        Input::Passport(text) => UnverifiedPassport::decode(&text, &limits)
            .map(|passport| (passport, None))
            .map_err(CliError::input),
        Input::Baggage(baggage) => {
            let inbound = InboundPassport::from_baggage(&baggage);
            if !inbound.is_present() {
                return Err(no_passport_in_baggage());
            }
            let passport = inbound
                .choose_unverified(None, &limits)
                .map_err(CliError::input)?
                .unwrap_or_default();
            Ok((passport, inbound.tip()))
        }
        Input::Jws(jws) => {
            let entry = UnverifiedEntry::parse(&jws)
                .map_err(|fault| CliError::input(format!("entry 0: {fault}")))?;
            // A lone entry is shown on its own, whatever its parents.
            if entry.entry().parents().is_root() {
                UnverifiedPassport::decode(&format!("[\"{jws}\"]"), &limits)
                    .map(|passport| (passport, None))
                    .map_err(CliError::input)
            } else {
                Err(CliError::input(
                    "a single non-root JWS is not a passport; inspect the passport it belongs to",
                ))
            }
        }
    }
}

/// The error for a baggage header with `kest.` members but no passport or chain tip.
#[must_use]
pub fn no_passport_in_baggage() -> CliError {
    CliError::input(
        "the baggage header carries no passport: none of kest.passport, kest.passport_z, \
         kest.claim_check or kest.chain_tip",
    )
}
