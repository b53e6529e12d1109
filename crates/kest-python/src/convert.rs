//! Python values to JSON values and back, with the `rfc8785` package's rules: `None`,
//! `bool`, `int` within ±(2^53−1), finite `float`, `str`, `list`, `tuple` and `dict` with
//! `str` keys; anything else is refused.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::{Map, Number, Value};

use crate::errors;

/// Converts `object` to a JSON value. Nesting deeper than [`kest_canon::MAX_DEPTH`] is
/// refused (a cyclic structure ends there too), so the conversion's stack is bounded.
pub(crate) fn to_value(object: &Bound<'_, PyAny>) -> PyResult<Value> {
    convert(object, 0)
}

fn convert(object: &Bound<'_, PyAny>, depth: usize) -> PyResult<Value> {
    let py = object.py();
    if depth > kest_canon::MAX_DEPTH {
        return Err(errors::canonicalization(
            py,
            format!(
                "nesting deeper than {} levels (or a structure that contains itself)",
                kest_canon::MAX_DEPTH
            ),
        ));
    }
    if object.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(flag) = object.cast::<PyBool>() {
        return Ok(Value::Bool(flag.is_true()));
    }
    if object.cast::<PyInt>().is_ok() {
        return integer(object);
    }
    if let Ok(float) = object.cast::<PyFloat>() {
        let value = float.value();
        return Number::from_f64(value).map(Value::Number).ok_or_else(|| {
            let shown = object
                .repr()
                .map_or_else(|_| value.to_string(), |repr| repr.to_string());
            errors::float_domain(py, format!("{shown} is not representable in JCS"))
        });
    }
    if let Ok(text) = object.cast::<PyString>() {
        return text
            .to_cow()
            .map(|text| Value::String(text.into_owned()))
            .map_err(|_| errors::canonicalization(py, "input contains non-UTF-8 codepoints"));
    }
    if let Ok(list) = object.cast::<PyList>() {
        return list
            .iter()
            .map(|item| convert(&item, depth + 1))
            .collect::<PyResult<Vec<_>>>()
            .map(Value::Array);
    }
    if let Ok(tuple) = object.cast::<PyTuple>() {
        return tuple
            .iter()
            .map(|item| convert(&item, depth + 1))
            .collect::<PyResult<Vec<_>>>()
            .map(Value::Array);
    }
    if let Ok(dict) = object.cast::<PyDict>() {
        let mut map = Map::new();
        for (key, item) in dict.iter() {
            let key = key
                .cast::<PyString>()
                .map_err(|_| errors::canonicalization(py, "object keys must be strings"))?
                .to_cow()
                .map_err(|_| errors::canonicalization(py, "input contains non-UTF-8 codepoints"))?
                .into_owned();
            map.insert(key, convert(&item, depth + 1)?);
        }
        return Ok(Value::Object(map));
    }
    let kind = object
        .get_type()
        .repr()
        .map_or_else(|_| "?".to_owned(), |repr| repr.to_string());
    Err(errors::canonicalization(
        py,
        format!("unsupported type: {kind}"),
    ))
}

fn integer(object: &Bound<'_, PyAny>) -> PyResult<Value> {
    let py = object.py();
    let out_of_range = || {
        let shown = object
            .str()
            .map_or_else(|_| "integer".to_owned(), |text| text.to_string());
        errors::integer_domain(
            py,
            format!("{shown} exceeds safe integer domain for JSON floats"),
        )
    };
    let value: i64 = object.extract().map_err(|_| out_of_range())?;
    if value.unsigned_abs() > kest_canon::MAX_SAFE_INTEGER {
        return Err(out_of_range());
    }
    Ok(Value::Number(value.into()))
}

/// Converts a JSON value to Python objects.
pub(crate) fn to_python<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(flag) => PyBool::new(py, *flag).to_owned().into_any(),
        Value::Number(number) => {
            if let Some(int) = number.as_i64() {
                int.into_pyobject(py)?.into_any()
            } else if let Some(int) = number.as_u64() {
                int.into_pyobject(py)?.into_any()
            } else {
                number
                    .as_f64()
                    .unwrap_or(f64::NAN)
                    .into_pyobject(py)?
                    .into_any()
            }
        }
        Value::String(text) => PyString::new(py, text).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_python(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (key, item) in map {
                dict.set_item(key, to_python(py, item)?)?;
            }
            dict.into_any()
        }
    })
}

/// The Python exception for a canonicalization failure: the `rfc8785` class it matches.
pub(crate) fn canon_error(py: Python<'_>, error: &kest_canon::CanonError) -> PyErr {
    match error {
        kest_canon::CanonError::IntegerOutOfRange { .. } => {
            errors::integer_domain(py, error.to_string())
        }
        kest_canon::CanonError::NonFiniteNumber { .. } => {
            errors::float_domain(py, error.to_string())
        }
        other => errors::canonicalization(py, other.to_string()),
    }
}
