//! How a JSON number becomes a Cedar value, shared by every Cedar engine (in process,
//! agent, Verified Permissions) so that all three accept and refuse the same numbers.

use serde_json::Number;

/// A JSON number as Cedar can hold it.
pub(crate) enum CedarNumber {
    /// An integer, or a whole-valued double (`3.0` is the number 3, as in Rego and JSON).
    Long(i64),
    /// A number with at most four decimal places, as Cedar's `decimal` text.
    Decimal(String),
}

/// Cedar has no floating point: anything that is neither whole nor a `decimal` (four
/// places, within ±922337203685477.5807) cannot be expressed, and is refused with the
/// reason, never turned into a different value.
pub(crate) fn cedar_number(number: &Number) -> Result<CedarNumber, String> {
    if let Some(whole) = number.as_i64() {
        return Ok(CedarNumber::Long(whole));
    }
    let value = number.as_f64().unwrap_or(f64::NAN);
    if value.fract() == 0.0 && value.abs() < 9.0e18 {
        #[allow(
            clippy::cast_possible_truncation,
            reason = "bounded and whole just above"
        )]
        return Ok(CedarNumber::Long(value as i64));
    }
    let scaled = value * 10_000.0;
    if value.is_finite() && scaled.fract() == 0.0 && scaled.abs() < 9.2e18 {
        Ok(CedarNumber::Decimal(format!("{value:.4}")))
    } else {
        Err(format!(
            "the number {number} has no exact Cedar representation"
        ))
    }
}
