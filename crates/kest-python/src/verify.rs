//! `kest_rs.verify`: the strict Rust verifier, run with the GIL released.

use kest_canon::Sha256Digest;
use kest_crypto::{Jwk, StaticKeyResolver};
use kest_passport::{Limits, PassportError, Strictness, VerificationReport, Verifier};
use kest_propagation::{
    Baggage, BaggageLimits, InboundPassport, PropagationError, claim_store_key,
};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use crate::convert::{to_python, to_value};
use crate::errors;

/// What the caller handed in as the passport.
enum Given {
    /// A passport's JSON text.
    Json(String),
    /// A `baggage` header value, and the passport redeemed for its claim check.
    Header(InboundPassport, Option<String>),
}

fn given(passport: &Bound<'_, PyAny>, store: Option<&Bound<'_, PyAny>>) -> PyResult<Given> {
    let py = passport.py();
    if let Ok(text) = passport.cast::<PyString>() {
        let text = text.to_cow()?;
        if text.trim_start().starts_with('[') {
            return Ok(Given::Json(text.into_owned()));
        }
        let baggage = Baggage::parse(&text, &BaggageLimits::default())
            .map_err(|error| verification(py, &error.to_string()))?;
        let inbound = InboundPassport::from_baggage(&baggage);
        let claimed = match (&inbound.claim_check, store) {
            (Some(id), Some(store)) => {
                let found = store.call_method1("get", (claim_store_key(id),))?;
                if found.is_none() {
                    None
                } else {
                    Some(found.str()?.to_cow()?.into_owned())
                }
            }
            _ => None,
        };
        return Ok(Given::Header(inbound, claimed));
    }
    let entries: Vec<String> = passport.extract().map_err(|_| {
        pyo3::exceptions::PyTypeError::new_err(
            "passport must be a list of JWS strings, a passport JSON string or a baggage header value",
        )
    })?;
    Ok(Given::Json(
        serde_json::to_string(&entries).unwrap_or_default(),
    ))
}

/// Builds the resolver from `{principal: JWK dict or JSON text}`.
fn resolver(keys: &Bound<'_, PyAny>) -> PyResult<StaticKeyResolver> {
    let py = keys.py();
    let keys = keys.cast::<PyDict>().map_err(|_| {
        pyo3::exceptions::PyTypeError::new_err("keys must be a dict of principal to JWK")
    })?;
    let mut resolver = StaticKeyResolver::new();
    for (principal, jwk) in keys.iter() {
        let principal: String = principal.extract()?;
        let text = match jwk.cast::<PyString>() {
            Ok(text) => text.to_cow()?.into_owned(),
            Err(_) => to_value(&jwk)?.to_string(),
        };
        let jwk = Jwk::from_json(&text)
            .map_err(|error| errors::key(py, format!("the key for `{principal}`: {error}")))?;
        resolver
            .insert_jwk(principal.clone(), &jwk)
            .map_err(|error| errors::key(py, format!("the key for `{principal}`: {error}")))?;
    }
    Ok(resolver)
}

/// Verifies a passport and returns its report as a dict:
/// `{"entries": [...], "tip": hex or None, "findings": [...], "strict": bool}`.
#[pyfunction]
#[pyo3(signature = (passport, keys, *, expect_tip=None, strict=None, store=None))]
pub(crate) fn verify<'py>(
    passport: &Bound<'py, PyAny>,
    keys: &Bound<'py, PyAny>,
    expect_tip: Option<&str>,
    strict: Option<bool>,
    store: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = passport.py();
    let given = given(passport, store)?;
    let resolver = resolver(keys)?;
    let tip = expect_tip
        .map(|text| {
            Sha256Digest::from_hex(text.trim()).map_err(|error| {
                pyo3::exceptions::PyValueError::new_err(format!("expect_tip: {error}"))
            })
        })
        .transpose()?;
    let strictness = match strict {
        None => Strictness::Auto,
        Some(true) => Strictness::Strict,
        Some(false) => Strictness::Lenient,
    };
    let outcome = py.detach(|| {
        let mut verifier = Verifier::new(&resolver).strictness(strictness);
        if let Some(tip) = tip {
            verifier = verifier.expect_tip(tip);
        }
        match given {
            Given::Json(text) => verifier.verify_json(&text).map_err(Failure::Passport),
            Given::Header(inbound, claimed) => inbound
                .choose_verified(claimed.as_deref(), &verifier, &Limits::default())
                .map_err(Failure::Propagation)
                .and_then(|report| report.ok_or(Failure::NoPassport)),
        }
    });
    match outcome {
        Ok(report) => report_dict(py, &report).map(Bound::into_any),
        Err(
            Failure::Passport(error)
            | Failure::Propagation(PropagationError::Passport { source: error, .. }),
        ) => Err(passport_error(py, &error)),
        Err(Failure::Propagation(error)) => Err(verification(py, &error.to_string())),
        Err(Failure::NoPassport) => Err(verification(py, "the baggage carries no Kest passport")),
    }
}

enum Failure {
    Passport(PassportError),
    Propagation(PropagationError),
    NoPassport,
}

/// `kest_rs.VerificationError` for a verifier error, with its index, entry id and cause.
pub(crate) fn passport_error(py: Python<'_>, error: &PassportError) -> PyErr {
    let (index, entry_id) = match error {
        PassportError::Entry {
            index, entry_id, ..
        } => (Some(*index), entry_id.clone()),
        _ => (None, None),
    };
    let cause = error
        .fault()
        .map_or_else(|| error.to_string(), ToString::to_string);
    raise_verification(py, &error.to_string(), index, entry_id, &cause)
}

/// A failure that concerns the passport as a whole: index and entry id are `None`.
fn verification(py: Python<'_>, cause: &str) -> PyErr {
    raise_verification(py, cause, None, None, cause)
}

fn raise_verification(
    py: Python<'_>,
    message: &str,
    index: Option<usize>,
    entry_id: Option<String>,
    cause: &str,
) -> PyErr {
    let index = index.map_or_else(
        || py.None(),
        |index| {
            index
                .into_pyobject(py)
                .map_or_else(|_| py.None(), |i| i.into_any().unbind())
        },
    );
    let entry_id = entry_id.map_or_else(
        || py.None(),
        |id| PyString::new(py, &id).into_any().unbind(),
    );
    let cause = PyString::new(py, cause).into_any().unbind();
    errors::raise(
        py,
        "VerificationError",
        message,
        &[("index", index), ("entry_id", entry_id), ("cause", cause)],
    )
}

/// The report as Python objects, built directly (a dict per entry costs about a
/// microsecond this way; through `serde_json::Value` it cost several).
fn report_dict<'py>(py: Python<'py>, report: &VerificationReport) -> PyResult<Bound<'py, PyDict>> {
    let entries = PyList::empty(py);
    for (index, signed) in report.passport().entries().iter().enumerate() {
        let entry = signed.entry();
        let item = PyDict::new(py);
        item.set_item(intern!(py, "index"), index)?;
        item.set_item(intern!(py, "entry_id"), entry.entry_id().to_string())?;
        item.set_item(intern!(py, "operation"), entry.operation())?;
        item.set_item(intern!(py, "principal"), entry.principal())?;
        item.set_item(intern!(py, "trust"), entry.trust_score().get())?;
        item.set_item(
            intern!(py, "taints"),
            PyList::new(py, entry.taints().iter().collect::<Vec<_>>())?,
        )?;
        item.set_item(
            intern!(py, "parents"),
            PyList::new(
                py,
                entry.parents().hashes().iter().map(|hash| hash.to_hex()),
            )?,
        )?;
        item.set_item(intern!(py, "hash"), signed.hash().to_hex())?;
        item.set_item(intern!(py, "alg"), signed.header().alg.as_str())?;
        item.set_item(intern!(py, "timestamp_ms"), entry.timestamp_ms())?;
        entries.append(item)?;
    }
    let findings = PyList::empty(py);
    for finding in report.findings() {
        findings.append(to_python(py, &finding.to_json())?)?;
    }
    let dict = PyDict::new(py);
    dict.set_item("entries", entries)?;
    dict.set_item("tip", report.tip().map(|tip| tip.to_hex()))?;
    dict.set_item("findings", findings)?;
    dict.set_item("strict", report.is_strict())?;
    Ok(dict)
}
