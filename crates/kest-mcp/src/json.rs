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

    /// Without repeated members, the strict reading is serde_json's own, value for value.
    #[test]
    fn it_reads_what_serde_json_reads() {
        let text = r#"{"t":true,"f":false,"n":null,"s":"a\"b\u00e9\n","u":18446744073709551615,
                      "i":-9007199254740993,"x":1.5e300,"e":[],"o":{},"deep":[[{"k":[null,true]}]]}"#;
        let strict = parse_strict(text).unwrap();
        let lenient: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(strict, lenient);
        assert_eq!(strict["t"], true);
        assert_eq!(strict["f"], false);
        assert_eq!(strict["s"], "a\"b\u{e9}\n");
    }

    proptest::proptest! {
        /// Any JSON value, written out and read back strictly, is the same value.
        #[test]
        fn any_value_round_trips(value in json_value()) {
            let text = serde_json::to_string(&value).unwrap();
            proptest::prop_assert_eq!(parse_strict(&text).unwrap(), value);
        }
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::Bool),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<u64>().prop_map(serde_json::Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(serde_json::Value::from),
            ".*".prop_map(serde_json::Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
                proptest::collection::btree_map(".*", inner, 0..6)
                    .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
            ]
        })
    }
}
