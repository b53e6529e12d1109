//! `kest_rs.KestEntry`: the Python package's `KestEntry`, field for field.

use std::time::{SystemTime, UNIX_EPOCH};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use serde::Serialize;
use serde_json::Value;

use crate::convert::to_value;

const CLASSIFICATIONS: [&str; 5] = ["system", "data", "critic", "snapshot", "sanitizer"];
const POLICY_TIERS: [&str; 5] = [
    "enterprise_policies",
    "platform_policies",
    "app_policies",
    "function_policies",
    "deviations",
];

/// One lineage entry before signing: the constructor, fields, defaults and validation of
/// `kest.core._core.KestEntry`, plus an optional keyword `timestamp_ms`.
///
/// Fields hold the Python objects given (a list passed in is the list kept, as with the
/// dataclass), so code that mutates `entry.labels` after construction signs what it
/// mutated.
#[pyclass(module = "kest_rs", name = "KestEntry")]
pub(crate) struct KestEntry {
    #[pyo3(get, set)]
    entry_id: Py<PyAny>,
    #[pyo3(get, set)]
    operation: Py<PyAny>,
    #[pyo3(get, set)]
    classification: Py<PyAny>,
    #[pyo3(get, set)]
    trust_score: Py<PyAny>,
    #[pyo3(get, set)]
    parent_ids: Py<PyAny>,
    #[pyo3(get, set)]
    labels: Py<PyAny>,
    #[pyo3(get, set)]
    added_taints: Py<PyAny>,
    #[pyo3(get, set)]
    removed_taints: Py<PyAny>,
    #[pyo3(get, set)]
    taints: Py<PyAny>,
    #[pyo3(get, set)]
    schema_version: Py<PyAny>,
    #[pyo3(get, set)]
    runtime_name: Py<PyAny>,
    #[pyo3(get, set)]
    runtime_version: Py<PyAny>,
    #[pyo3(get, set)]
    policy_context: Py<PyAny>,
    #[pyo3(get, set, name = "_timestamp_ms")]
    timestamp: Py<PyAny>,
    #[pyo3(get, set, name = "_input_hash")]
    input: Py<PyAny>,
    #[pyo3(get, set, name = "_content_hash")]
    content: Py<PyAny>,
    #[pyo3(get, set, name = "_environment")]
    env: Py<PyAny>,
    #[pyo3(get, set, name = "_otel_context")]
    otel: Py<PyAny>,
    #[pyo3(get, set, name = "_metadata")]
    meta: Py<PyAny>,
}

/// `value or default`, as the dataclass's `__post_init__` writes it.
fn or_else<'py>(
    value: Option<Bound<'py, PyAny>>,
    default: impl FnOnce() -> Bound<'py, PyAny>,
) -> PyResult<Py<PyAny>> {
    match value {
        Some(value) if value.is_truthy()? => Ok(value.unbind()),
        _ => Ok(default().unbind()),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

#[pymethods]
impl KestEntry {
    #[new]
    #[pyo3(signature = (
        entry_id, operation, classification, trust_score, parent_ids=None, labels=None,
        added_taints=None, removed_taints=None, taints=None, schema_version=None,
        runtime_name=None, runtime_version=None, policy_context=None, *, timestamp_ms=None
    ))]
    #[expect(
        clippy::too_many_arguments,
        reason = "the Python dataclass's constructor"
    )]
    fn new<'py>(
        py: Python<'py>,
        entry_id: Bound<'py, PyAny>,
        operation: Bound<'py, PyAny>,
        classification: Bound<'py, PyAny>,
        trust_score: Bound<'py, PyAny>,
        parent_ids: Option<Bound<'py, PyAny>>,
        labels: Option<Bound<'py, PyAny>>,
        added_taints: Option<Bound<'py, PyAny>>,
        removed_taints: Option<Bound<'py, PyAny>>,
        taints: Option<Bound<'py, PyAny>>,
        schema_version: Option<Bound<'py, PyAny>>,
        runtime_name: Option<Bound<'py, PyAny>>,
        runtime_version: Option<Bound<'py, PyAny>>,
        policy_context: Option<Bound<'py, PyAny>>,
        timestamp_ms: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Self> {
        // An exact `str` that is already a known lowercase name is kept as it is (the
        // common case, and what `.lower()` would return); anything else goes through
        // `.lower()` as in the dataclass, including its AttributeError for non-strings.
        let exact = classification
            .cast_exact::<PyString>()
            .ok()
            .and_then(|text| {
                text.to_cow()
                    .ok()
                    .map(|text| CLASSIFICATIONS.contains(&text.as_ref()))
            })
            .unwrap_or(false);
        let lowered = if exact {
            classification.clone()
        } else {
            classification.call_method0("lower")?
        };
        let known = exact
            || lowered
                .cast::<PyString>()
                .ok()
                .and_then(|text| {
                    text.to_cow()
                        .ok()
                        .map(|text| CLASSIFICATIONS.contains(&text.as_ref()))
                })
                .unwrap_or(false);
        if !known {
            return Err(PyValueError::new_err(format!(
                "Invalid classification: {}",
                classification.str()?
            )));
        }
        let list = || PyList::empty(py).into_any();
        let text = |value: &str| PyString::new(py, value).into_any();
        let context = PyDict::new(py);
        match policy_context {
            Some(given) if given.is_truthy()? => {
                for tier in POLICY_TIERS {
                    context
                        .set_item(tier, given.call_method1("get", (tier, PyList::empty(py)))?)?;
                }
            }
            _ => {
                for tier in POLICY_TIERS {
                    context.set_item(tier, PyList::empty(py))?;
                }
            }
        }
        let timestamp = match timestamp_ms {
            Some(value) if !value.is_none() => {
                let ms: u64 = value.extract().map_err(|_| {
                    PyValueError::new_err("timestamp_ms must be a non-negative integer")
                })?;
                ms.into_pyobject(py)?.into_any().unbind()
            }
            _ => now_ms().into_pyobject(py)?.into_any().unbind(),
        };
        Ok(Self {
            entry_id: entry_id.unbind(),
            operation: operation.unbind(),
            classification: lowered.unbind(),
            trust_score: trust_score.unbind(),
            parent_ids: or_else(parent_ids, list)?,
            labels: or_else(labels, || PyDict::new(py).into_any())?,
            added_taints: or_else(added_taints, list)?,
            removed_taints: or_else(removed_taints, list)?,
            taints: or_else(taints, list)?,
            schema_version: or_else(schema_version, || text(kest_passport::SCHEMA_VERSION))?,
            runtime_name: or_else(runtime_name, || text("kest-python"))?,
            runtime_version: or_else(runtime_version, || text("0.3.0"))?,
            policy_context: context.into_any().unbind(),
            timestamp,
            input: text("").unbind(),
            content: text("").unbind(),
            env: PyDict::new(py).into_any().unbind(),
            otel: PyDict::new(py).into_any().unbind(),
            meta: py.None(),
        })
    }

    /// Milliseconds since the epoch, taken at construction unless `timestamp_ms` was given.
    #[getter]
    fn timestamp_ms(&self, py: Python<'_>) -> Py<PyAny> {
        self.timestamp.clone_ref(py)
    }

    /// Always `""` unless `_input_hash` is set, as in the Python package.
    #[getter]
    fn input_hash(&self, py: Python<'_>) -> Py<PyAny> {
        self.input.clone_ref(py)
    }

    /// Always `""` unless `_content_hash` is set, as in the Python package.
    #[getter]
    fn content_hash(&self, py: Python<'_>) -> Py<PyAny> {
        self.content.clone_ref(py)
    }

    /// `{}` unless `_environment` is set.
    #[getter]
    fn environment(&self, py: Python<'_>) -> Py<PyAny> {
        self.env.clone_ref(py)
    }

    /// `{}` unless `_otel_context` is set.
    #[getter]
    fn otel_context(&self, py: Python<'_>) -> Py<PyAny> {
        self.otel.clone_ref(py)
    }

    /// `None` unless `_metadata` is set.
    #[getter]
    fn metadata(&self, py: Python<'_>) -> Py<PyAny> {
        self.meta.clone_ref(py)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let mut fields = Vec::new();
        for (name, value) in self.public_fields() {
            fields.push(format!("{name}={}", value.bind(py).repr()?));
        }
        Ok(format!("KestEntry({})", fields.join(", ")))
    }

    /// Dataclass equality: the public fields, in order.
    fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<bool> {
        let Ok(other) = other.cast::<Self>() else {
            return Ok(false);
        };
        let other = other.borrow();
        for ((_, mine), (_, theirs)) in self.public_fields().into_iter().zip(other.public_fields())
        {
            if !mine.bind(py).eq(theirs.bind(py))? {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

impl KestEntry {
    fn public_fields(&self) -> [(&'static str, &Py<PyAny>); 13] {
        [
            ("entry_id", &self.entry_id),
            ("operation", &self.operation),
            ("classification", &self.classification),
            ("trust_score", &self.trust_score),
            ("parent_ids", &self.parent_ids),
            ("labels", &self.labels),
            ("added_taints", &self.added_taints),
            ("removed_taints", &self.removed_taints),
            ("taints", &self.taints),
            ("schema_version", &self.schema_version),
            ("runtime_name", &self.runtime_name),
            ("runtime_version", &self.runtime_version),
            ("policy_context", &self.policy_context),
        ]
    }

    /// The payload `sign_entry` signs.
    pub(crate) fn payload(&self, py: Python<'_>) -> PyResult<Payload> {
        Payload::read(|name| {
            let field = match name {
                "added_taints" => &self.added_taints,
                "classification" => &self.classification,
                "content_hash" => &self.content,
                "entry_id" => &self.entry_id,
                "environment" => &self.env,
                "input_hash" => &self.input,
                "labels" => &self.labels,
                "metadata" => &self.meta,
                "operation" => &self.operation,
                "otel_context" => &self.otel,
                "parent_ids" => &self.parent_ids,
                "policy_context" => &self.policy_context,
                "removed_taints" => &self.removed_taints,
                "runtime_name" => &self.runtime_name,
                "runtime_version" => &self.runtime_version,
                "schema_version" => &self.schema_version,
                "taints" => &self.taints,
                "timestamp_ms" => &self.timestamp,
                _ => &self.trust_score,
            };
            to_value(field.bind(py))
        })
    }
}

/// The payload of any object with the `KestEntry` attributes (the Python package's own
/// class, or a look-alike), read through its public attributes as `sign_entry` does.
pub(crate) fn payload_of(entry: &Bound<'_, PyAny>) -> PyResult<Payload> {
    if let Ok(native) = entry.cast::<KestEntry>() {
        return native.borrow().payload(entry.py());
    }
    Payload::read(|name| to_value(&entry.getattr(name)?))
}

/// The payload the Python package's `sign_entry` builds, member for member. Members are
/// declared in canonical (ASCII, sorted) order, so when every value is canonical as
/// `serde_json` writes it, so is the whole.
#[derive(Serialize)]
pub(crate) struct Payload {
    added_taints: Value,
    classification: Value,
    content_hash: Value,
    entry_id: Value,
    environment: Value,
    input_hash: Value,
    labels: Value,
    metadata: Value,
    operation: Value,
    otel_context: Value,
    parent_ids: Value,
    policy_context: Value,
    removed_taints: Value,
    runtime: Runtime,
    schema_version: Value,
    taints: Value,
    timestamp_ms: Value,
    trust_score: Value,
}

#[derive(Serialize)]
struct Runtime {
    name: Value,
    version: Value,
}

impl Payload {
    /// The payload with each member read by `field`, given the attribute name
    /// (`runtime_name` and `runtime_version` for the two members of `runtime`).
    fn read(mut field: impl FnMut(&str) -> PyResult<Value>) -> PyResult<Self> {
        Ok(Self {
            added_taints: field("added_taints")?,
            classification: field("classification")?,
            content_hash: field("content_hash")?,
            entry_id: field("entry_id")?,
            environment: field("environment")?,
            input_hash: field("input_hash")?,
            labels: field("labels")?,
            metadata: field("metadata")?,
            operation: field("operation")?,
            otel_context: field("otel_context")?,
            parent_ids: field("parent_ids")?,
            policy_context: field("policy_context")?,
            removed_taints: field("removed_taints")?,
            runtime: Runtime {
                name: field("runtime_name")?,
                version: field("runtime_version")?,
            },
            schema_version: field("schema_version")?,
            taints: field("taints")?,
            timestamp_ms: field("timestamp_ms")?,
            trust_score: field("trust_score")?,
        })
    }

    fn values(&self) -> [&Value; 19] {
        [
            &self.added_taints,
            &self.classification,
            &self.content_hash,
            &self.entry_id,
            &self.environment,
            &self.input_hash,
            &self.labels,
            &self.metadata,
            &self.operation,
            &self.otel_context,
            &self.parent_ids,
            &self.policy_context,
            &self.removed_taints,
            &self.runtime.name,
            &self.runtime.version,
            &self.schema_version,
            &self.taints,
            &self.timestamp_ms,
            &self.trust_score,
        ]
    }

    /// The RFC 8785 bytes: `serde_json` output when every member is canonical in form,
    /// else the full canonicalizer over the payload as a value.
    pub(crate) fn canonical(&self) -> Result<Vec<u8>, kest_canon::CanonError> {
        if self
            .values()
            .into_iter()
            .all(kest_canon::is_canonical_as_is)
        {
            return kest_canon::compact_bytes(self);
        }
        let value =
            serde_json::to_value(self).map_err(|error| kest_canon::CanonError::Unserializable {
                message: error.to_string(),
            })?;
        kest_canon::canonicalize(&value)
    }
}
