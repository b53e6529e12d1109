//! The passport's wire form: a JSON array of JWS strings, read within limits.

use std::fmt;

use serde::Deserializer as _;
use serde::de::{self, SeqAccess, Visitor};

use crate::error::PassportError;
use crate::passport::Limits;

const TOO_MANY: &str = "kest: too many entries";

/// Reads `["h.p.s", ...]`, refusing more than `limits.max_entries` strings and more than
/// `limits.max_bytes` of text. Memory use is bounded by the text's size.
pub(crate) fn parse_list(text: &str, limits: &Limits) -> Result<Vec<String>, PassportError> {
    if text.len() > limits.max_bytes {
        return Err(PassportError::TooLarge {
            len: text.len(),
            limit: limits.max_bytes,
        });
    }
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let list = deserializer
        .deserialize_seq(JwsList {
            max: limits.max_entries,
        })
        .and_then(|list| deserializer.end().map(|()| list))
        .map_err(|error| {
            if error.to_string().starts_with(TOO_MANY) {
                PassportError::TooManyEntries {
                    limit: limits.max_entries,
                }
            } else {
                PassportError::NotAnArray {
                    reason: error.to_string(),
                }
            }
        })?;
    Ok(list)
}

struct JwsList {
    max: usize,
}

impl<'de> Visitor<'de> for JwsList {
    type Value = Vec<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of JWS strings")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut list = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(self.max));
        while let Some(jws) = seq.next_element::<String>()? {
            if list.len() == self.max {
                return Err(de::Error::custom(TOO_MANY));
            }
            list.push(jws);
        }
        Ok(list)
    }
}
