//! JSON read strictly: a member named twice in one object is an error, not "last wins".
//!
//! The proxy decides on what it parsed and forwards the bytes it read. If the two sides
//! could read one message differently (`{"name":"summarize","name":"send_email"}`), the
//! policy would decide one call and the server run another. Refusing duplicates removes
//! the difference.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Parses `text` as JSON, refusing a member name repeated in any object. serde_json's
/// recursion limit (128) bounds the nesting.
///
/// # Errors
/// What is wrong, with the line and column serde_json gives.
pub(crate) fn parse_strict(text: &str) -> Result<Value, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = deserializer.deserialize_any(StrictVisitor)?;
    deserializer.end()?;
    Ok(value)
}

struct StrictVisitor;

struct Strict(Value);

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(value)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number JSON cannot hold"))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if members.contains_key(&key) {
                return Err(de::Error::custom(format!(
                    "member `{}` appears twice in one object",
                    kest::canon::escape_untrusted(&key, 80)
                )));
            }
            let Strict(value) = map.next_value()?;
            members.insert(key, value);
        }
        Ok(Value::Object(members))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::parse_strict;

    #[test]
    fn a_repeated_member_is_refused_at_any_depth() {
        let value = parse_strict(r#"{"a":[1,2.5,{"b":null}],"c":"x"}"#).unwrap();
        assert_eq!(value["a"][1], 2.5);
        for text in [
            r#"{"name":"summarize","name":"send_email"}"#,
            r#"{"params":{"arguments":{"to":"a","to":"b"}}}"#,
            r#"[{"x":1},{"y":1,"y":2}]"#,
        ] {
            let error = parse_strict(text).unwrap_err();
            assert!(error.to_string().contains("appears twice"), "{error}");
        }
        assert!(parse_strict(r#"{"a":1} {"b":2}"#).is_err(), "trailing data");
        assert!(
            parse_strict(&"[".repeat(200)).is_err(),
            "nesting is bounded"
        );
    }
}
