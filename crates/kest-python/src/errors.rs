//! Exceptions. The classes live in `kest_rs._errors` (Python), so that they can also derive
//! from the `rfc8785` package's exceptions when it is installed: code that catches
//! `rfc8785.CanonicalizationError` around `sign_entry` keeps working under `accelerate()`.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

/// Builds an exception of the class `name` from `kest_rs._errors` with `message`, and sets
/// `attributes` on it.
pub(crate) fn raise(
    py: Python<'_>,
    name: &str,
    message: impl Into<String>,
    attributes: &[(&str, Py<PyAny>)],
) -> PyErr {
    let message = message.into();
    let built = || -> PyResult<PyErr> {
        let class = py.import("kest_rs._errors")?.getattr(name)?;
        let instance = class.call1((message.clone(),))?;
        for (attribute, value) in attributes {
            instance.setattr(*attribute, value.bind(py))?;
        }
        Ok(PyErr::from_value(instance))
    };
    // Only a broken installation (the Python half missing) ends here; say so rather than
    // lose the message.
    built().unwrap_or_else(|error| {
        PyRuntimeError::new_err(format!(
            "{message} (and kest_rs._errors could not raise it: {error})"
        ))
    })
}

/// `kest_rs.CanonicalizationError`.
pub(crate) fn canonicalization(py: Python<'_>, message: impl Into<String>) -> PyErr {
    raise(py, "CanonicalizationError", message, &[])
}

/// `kest_rs.IntegerDomainError`.
pub(crate) fn integer_domain(py: Python<'_>, message: impl Into<String>) -> PyErr {
    raise(py, "IntegerDomainError", message, &[])
}

/// `kest_rs.FloatDomainError`.
pub(crate) fn float_domain(py: Python<'_>, message: impl Into<String>) -> PyErr {
    raise(py, "FloatDomainError", message, &[])
}

/// `kest_rs.KeyError_`: a key or JWK that cannot be used.
pub(crate) fn key(py: Python<'_>, message: impl Into<String>) -> PyErr {
    raise(py, "KeyRejected", message, &[])
}

/// `kest_rs.SigningError`.
pub(crate) fn signing(py: Python<'_>, message: impl Into<String>) -> PyErr {
    raise(py, "SigningError", message, &[])
}

/// `kest_rs.BaggageError`.
pub(crate) fn baggage(py: Python<'_>, message: impl Into<String>) -> PyErr {
    raise(py, "BaggageError", message, &[])
}
