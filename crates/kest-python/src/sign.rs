//! `kest_rs.Signer` and `kest_rs.sign_entry`.

use std::sync::{Arc, Mutex, PoisonError};

use kest_crypto::{KeySigner, PrivateJwk, Signer as _, SigningKey};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyBytes;
use zeroize::Zeroizing;

use crate::convert::{canon_error, to_python, to_value};
use crate::entry::payload_of;
use crate::errors;

/// An Ed25519 or ES256 key held in Rust, with the principal it signs as.
///
/// It is an identity provider in the Python package's sense (`get_identity()` and
/// `sign(payload) -> JWS`), so it can be passed anywhere the package takes one, and
/// `sign_entry` uses it without touching Python at all.
#[pyclass(module = "kest_rs", name = "Signer", frozen)]
pub(crate) struct Signer {
    inner: Arc<KeySigner>,
}

#[pymethods]
impl Signer {
    /// A signer from a 32-byte Ed25519 seed.
    #[staticmethod]
    fn from_seed(py: Python<'_>, seed: &[u8], principal: &str) -> PyResult<Self> {
        let key = SigningKey::from_ed25519_seed(seed)
            .map_err(|error| errors::key(py, error.to_string()))?;
        Ok(Self::new(key, principal))
    }

    /// A signer from a private JWK (a dict with `d`). The principal is `principal`, or
    /// the JWK's `kid`.
    #[staticmethod]
    #[pyo3(signature = (jwk, principal=None))]
    fn from_jwk(py: Python<'_>, jwk: &Bound<'_, PyAny>, principal: Option<&str>) -> PyResult<Self> {
        let text = Zeroizing::new(to_value(jwk)?.to_string());
        let private =
            PrivateJwk::from_json(&text).map_err(|error| errors::key(py, error.to_string()))?;
        let principal = match (principal, private.public.kid.as_deref()) {
            (Some(principal), _) | (None, Some(principal)) => principal.to_owned(),
            (None, None) => {
                return Err(errors::key(
                    py,
                    "the JWK has no `kid`; pass the principal it signs as",
                ));
            }
        };
        let key =
            SigningKey::from_jwk(&private).map_err(|error| errors::key(py, error.to_string()))?;
        Ok(Self::new(key, &principal))
    }

    /// A signer with a new random Ed25519 key.
    #[staticmethod]
    fn generate(py: Python<'_>, principal: &str) -> PyResult<Self> {
        let key =
            SigningKey::generate_ed25519().map_err(|error| errors::key(py, error.to_string()))?;
        Ok(Self::new(key, principal))
    }

    /// The principal (`kid`) it signs as.
    #[getter]
    fn principal(&self) -> &str {
        self.inner.key_id()
    }

    /// The principal: the Python package's `IdentityProvider.get_identity`.
    fn get_identity(&self) -> &str {
        self.inner.key_id()
    }

    /// The public key as a JWK dict, with `kid` set to the principal.
    fn public_jwk<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let mut jwk = self.inner.key().verifying_key().to_jwk();
        jwk.kid = Some(self.inner.key_id().to_owned());
        let value =
            serde_json::to_value(&jwk).map_err(|error| errors::key(py, error.to_string()))?;
        to_python(py, &value)
    }

    /// Signs `payload` (the canonical entry bytes) and returns the compact JWS: the
    /// Python package's `IdentityProvider.sign`. The GIL is released while signing.
    fn sign(&self, py: Python<'_>, payload: &[u8]) -> PyResult<String> {
        let signer = Arc::clone(&self.inner);
        let payload = payload.to_vec();
        py.detach(move || kest_crypto::sign_compact(signer.as_ref(), &payload))
            .map_err(|error| errors::signing(py, error.to_string()))
    }

    fn __repr__(&self) -> String {
        format!(
            "kest_rs.Signer(principal={:?}, alg={}, key=<secret>)",
            self.inner.key_id(),
            self.inner.algorithm()
        )
    }
}

impl Signer {
    fn new(key: SigningKey, principal: &str) -> Self {
        Self {
            inner: Arc::new(KeySigner::new(key, principal)),
        }
    }
}

/// Keys lifted out of `cryptography` key objects, so that each is read once. The entry
/// holds the key object and the principal object themselves, so their addresses cannot
/// be reused while cached.
struct Lifted {
    key_object: Py<PyAny>,
    principal: Py<PyAny>,
    signer: Arc<KeySigner>,
}

const LIFTED_CAPACITY: usize = 64;
static LIFTED: Mutex<Vec<Lifted>> = Mutex::new(Vec::new());

/// `StaticIdentity.sign` and the `cryptography` Ed25519 private key class, when both
/// packages are importable.
static PACKAGE_SIGN: PyOnceLock<Option<(Py<PyAny>, Py<PyAny>)>> = PyOnceLock::new();

fn package_sign(py: Python<'_>) -> Option<&(Py<PyAny>, Py<PyAny>)> {
    PACKAGE_SIGN
        .get_or_init(py, || {
            let sign = py
                .import("kest.core.identity.providers.local")
                .and_then(|module| module.getattr("StaticIdentity"))
                .and_then(|class| class.getattr("sign"))
                .ok()?;
            let key_class = py
                .import("cryptography.hazmat.primitives.asymmetric.ed25519")
                .and_then(|module| module.getattr("Ed25519PrivateKey"))
                .ok()?;
            Some((sign.unbind(), key_class.unbind()))
        })
        .as_ref()
}

/// The Rust signer for `provider`, when its key is reachable: a `kest_rs.Signer`, or a
/// provider whose `sign` is the package's own `StaticIdentity.sign` (so the JWS is known
/// to be the header, payload and Ed25519 signature Rust makes) and whose `private_key`
/// is a `cryptography` Ed25519 key.
fn reachable_signer(provider: &Bound<'_, PyAny>) -> PyResult<Option<Arc<KeySigner>>> {
    if let Ok(signer) = provider.cast::<Signer>() {
        return Ok(Some(Arc::clone(&signer.get().inner)));
    }
    let py = provider.py();
    let Some((package_sign, key_class)) = package_sign(py) else {
        return Ok(None);
    };
    let Ok(method) = provider.getattr("sign") else {
        return Ok(None);
    };
    let unmodified = method
        .getattr("__func__")
        .is_ok_and(|function| function.is(package_sign.bind(py)));
    if !unmodified {
        return Ok(None);
    }
    let Ok(key_object) = provider.getattr("private_key") else {
        return Ok(None);
    };
    let principal_object = provider.getattr("principal")?;
    // A hit is the same key object and the same principal object as when the key was
    // lifted; the key's class was checked then, and cannot change since.
    let lifted = LIFTED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(found) = lifted.iter().find(|entry| {
        entry.key_object.bind(py).is(&key_object) && entry.principal.bind(py).is(&principal_object)
    }) {
        return Ok(Some(Arc::clone(&found.signer)));
    }
    drop(lifted);
    if !key_object.is_instance(key_class.bind(py))? {
        return Ok(None);
    }
    let principal: String = principal_object.str()?.to_cow()?.into_owned();
    let seed: Zeroizing<Vec<u8>> = Zeroizing::new(
        key_object
            .call_method0("private_bytes_raw")?
            .cast::<PyBytes>()?
            .as_bytes()
            .to_vec(),
    );
    let key =
        SigningKey::from_ed25519_seed(&seed).map_err(|error| errors::key(py, error.to_string()))?;
    let signer = Arc::new(KeySigner::new(key, principal));
    let mut lifted = LIFTED.lock().unwrap_or_else(PoisonError::into_inner);
    if lifted.len() >= LIFTED_CAPACITY {
        lifted.clear();
    }
    lifted.push(Lifted {
        key_object: key_object.unbind(),
        principal: principal_object.unbind(),
        signer: Arc::clone(&signer),
    });
    Ok(Some(signer))
}

/// Signs `entry` with `provider` and returns the JWS: the contract of
/// `kest.core._core.sign_entry`, byte for byte. With a reachable key the signature is
/// made in Rust with the GIL released; otherwise `provider.sign(payload)` is called.
#[pyfunction]
pub(crate) fn sign_entry<'py>(
    entry: &Bound<'py, PyAny>,
    provider: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = entry.py();
    let payload = payload_of(entry)?;
    match reachable_signer(provider)? {
        Some(signer) => {
            // The canonical form and the signature need no Python objects: both run
            // with the GIL released.
            let signed = py.detach(move || {
                let bytes = payload.canonical().map_err(Failure::Canon)?;
                kest_crypto::sign_compact(signer.as_ref(), &bytes).map_err(Failure::Sign)
            });
            match signed {
                Ok(jws) => Ok(jws.into_pyobject(py)?.into_any()),
                Err(Failure::Canon(error)) => Err(canon_error(py, &error)),
                Err(Failure::Sign(error)) => Err(errors::signing(py, error.to_string())),
            }
        }
        None => {
            let bytes = payload
                .canonical()
                .map_err(|error| canon_error(py, &error))?;
            provider.call_method1("sign", (PyBytes::new(py, &bytes),))
        }
    }
}

enum Failure {
    Canon(kest_canon::CanonError),
    Sign(kest_crypto::CryptoError),
}
