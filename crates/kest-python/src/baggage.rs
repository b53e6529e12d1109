//! `kest_rs.pack_baggage` and `kest_rs.unpack_baggage`: the three passport tiers, written
//! and read the way the Python package's `BaggageManager` does.

use kest_canon::{PythonSeparators, python_dumps};
use kest_passport::Limits;
use kest_propagation::{
    DEFAULT_INLINE_THRESHOLD, InboundPassport, PropagationError, TierChoice, choose_tier,
    claim_store_key,
};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::errors;

const PASSPORT: &str = "kest.passport";
const PASSPORT_Z: &str = "kest.passport_z";
const CLAIM_CHECK: &str = "kest.claim_check";
const CHAIN_TIP: &str = "kest.chain_tip";

/// Packs a passport's entries into baggage members: `kest.passport` (the JSON, when at
/// most `threshold` bytes), else `kest.passport_z` (zlib level 1, padded base64url),
/// else `kest.claim_check` with the JSON stored under `kest.claim.<id>` through
/// `store.set(key, value)`. `kest.chain_tip` is always written.
///
/// The JSON is `json.dumps(entries)`, byte for byte. Without a store, a passport too
/// large for both tiers raises `BaggageError`, unless `oversize="compress"` asks for the
/// Python package's behaviour: send the oversized compressed member anyway.
#[pyfunction]
#[pyo3(signature = (entries, store=None, *, threshold=DEFAULT_INLINE_THRESHOLD, oversize="error"))]
pub(crate) fn pack_baggage<'py>(
    py: Python<'py>,
    entries: Vec<String>,
    store: Option<&Bound<'py, PyAny>>,
    threshold: usize,
    oversize: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let compress_anyway = match oversize {
        "error" => false,
        "compress" => true,
        other => {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "oversize must be \"error\" or \"compress\", not {other:?}"
            )));
        }
    };
    let (json, tip, choice) = py.detach(move || {
        let json = python_dumps(&entries, PythonSeparators::Default);
        let tip = entries.last().map_or_else(
            || "0".to_owned(),
            |last| kest_canon::sha256_hex(last.as_bytes()),
        );
        let choice = choose_tier(&json, threshold);
        (json, tip, choice)
    });
    let members = PyDict::new(py);
    match choice {
        TierChoice::Inline => members.set_item(PASSPORT, json)?,
        TierChoice::Compressed(compressed) => members.set_item(PASSPORT_Z, compressed)?,
        TierChoice::ClaimCheck { compressed } => match store {
            Some(store) if !store.is_none() => {
                let id = uuid::Uuid::new_v4().to_string();
                store.call_method1("set", (claim_store_key(&id), json))?;
                members.set_item(CLAIM_CHECK, id)?;
            }
            _ if compress_anyway => members.set_item(PASSPORT_Z, compressed)?,
            _ => {
                return Err(errors::baggage(
                    py,
                    format!(
                        "the passport is {} bytes ({} compressed), over the {threshold}-byte \
                         header threshold, and no store was given for a claim check",
                        json.len(),
                        compressed.len()
                    ),
                ));
            }
        },
    }
    members.set_item(CHAIN_TIP, tip)?;
    Ok(members)
}

/// A member's value: `members` is a dict, or a function from key to value such as
/// OpenTelemetry's `baggage.get_baggage`. Empty values count as absent, as in the Python
/// package.
fn member(members: &Bound<'_, PyAny>, key: &str) -> PyResult<Option<String>> {
    let value = if let Ok(dict) = members.cast::<PyDict>() {
        dict.get_item(key)?
    } else {
        Some(members.call1((key,))?)
    };
    match value {
        Some(value) if !value.is_none() => {
            let text = value.cast::<PyString>().map_err(|_| {
                errors::baggage(
                    members.py(),
                    format!("baggage member `{key}` is not a string"),
                )
            })?;
            let text = text.to_cow()?;
            Ok((!text.is_empty()).then(|| text.into_owned()))
        }
        _ => Ok(None),
    }
}

/// Reads the passport entries back from baggage members, in any tier the Python package
/// or Kest for Rust writes. A claim check is redeemed through `store.get(key)`.
///
/// Members are chosen as Kest's ingress does: the one whose last entry is
/// `kest.chain_tip`, or without a tip the one that extends the others. The entries are
/// returned as strings, unverified: pass them to `kest_rs.verify`. Raises
/// `BaggageError` when no member can be read: a claim check with no store or not in it,
/// a compressed member that does not inflate, text that is not a JSON list of strings,
/// a tip no member ends at, or anything over the size limits.
#[pyfunction]
#[pyo3(signature = (members, store=None))]
pub(crate) fn unpack_baggage(
    py: Python<'_>,
    members: &Bound<'_, PyAny>,
    store: Option<&Bound<'_, PyAny>>,
) -> PyResult<Vec<String>> {
    let inbound = InboundPassport {
        chain_tip: member(members, CHAIN_TIP)?,
        inline: member(members, PASSPORT)?,
        compressed: member(members, PASSPORT_Z)?,
        claim_check: member(members, CLAIM_CHECK)?,
    };
    let mut missing = None;
    let claimed = match (&inbound.claim_check, store) {
        (Some(id), Some(store)) if !store.is_none() => {
            let found = store.call_method1("get", (claim_store_key(id),))?;
            if found.is_none() {
                missing = Some(kest_canon::escape_untrusted(id, 80));
                None
            } else {
                Some(found.extract::<String>().map_err(|_| {
                    errors::baggage(py, "the claim store returned something other than a string")
                })?)
            }
        }
        _ => None,
    };
    let chosen = py
        .detach(|| inbound.choose_raw(claimed.as_deref(), &Limits::default()))
        .map_err(|error| match (error, missing) {
            (PropagationError::NoClaimStore { .. }, Some(id)) => {
                PropagationError::ClaimNotFound { id }
            }
            (error, _) => error,
        })
        .map_err(|error| errors::baggage(py, error.to_string()))?;
    Ok(chosen.map(|raw| raw.0).unwrap_or_default())
}
