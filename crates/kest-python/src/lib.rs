//! kest-rs: the Kest for Rust core as a Python extension module (`kest_rs`).
//!
//! The module is a thin layer over `kest-canon`, `kest-crypto`, `kest-passport` and
//! `kest-propagation`: RFC 8785, entry signing with the GIL released, the strict
//! verifier, and the baggage tiers. Its Python half (`python/kest_rs`) adds
//! `accelerate()`, which moves an installed `kest` 0.3 package onto this core.
//!
//! It is built with maturin (`pip install ./crates/kest-python`) and tested from Python
//! by `cargo xtask python`; see the book's "Kest from Python" page.
//!
//! ```python
//! import kest_rs
//!
//! signer = kest_rs.Signer.from_seed(bytes(32), "spiffe://example/a")
//! entry = kest_rs.KestEntry("01900000-0000-7000-8000-000000000001", "op", "system", 100,
//!                           parent_ids=["0"], labels={"principal": "spiffe://example/a"})
//! jws = kest_rs.sign_entry(entry, signer)
//! report = kest_rs.verify([jws], {"spiffe://example/a": signer.public_jwk()})
//! assert report["entries"][0]["operation"] == "op"
//! ```

mod baggage;
mod convert;
mod entry;
mod errors;
mod sign;
mod verify;

use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// RFC 8785 canonical JSON of a Python value, equal to `rfc8785.dumps(obj)`, with the
/// same rejections: integers beyond ±(2^53−1) (`IntegerDomainError`), NaN and
/// infinities (`FloatDomainError`), non-string keys, lone surrogates and unsupported
/// types (`CanonicalizationError`).
#[pyfunction]
fn canonicalize<'py>(object: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let py = object.py();
    let value = convert::to_value(object)?;
    let bytes =
        kest_canon::canonicalize(&value).map_err(|error| convert::canon_error(py, &error))?;
    Ok(PyBytes::new(py, &bytes))
}

/// The native half of `kest_rs`.
#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(canonicalize, module)?)?;
    module.add_function(wrap_pyfunction!(sign::sign_entry, module)?)?;
    module.add_function(wrap_pyfunction!(verify::verify, module)?)?;
    module.add_function(wrap_pyfunction!(baggage::pack_baggage, module)?)?;
    module.add_function(wrap_pyfunction!(baggage::unpack_baggage, module)?)?;
    module.add_class::<entry::KestEntry>()?;
    module.add_class::<sign::Signer>()?;
    module.add("RUST_CORE_VERSION", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
