//! The passport's wire form: a JSON array of JWS strings, read within limits.

use std::cell::Cell;
use std::fmt;

use serde::Deserializer as _;
use serde::de::{self, SeqAccess, Visitor};

use crate::error::PassportError;
use crate::limits::Limits;
use crate::signed::SignedEntry;

/// Reads a passport's wire form `["h.p.s", ...]` as a list of strings, without looking
/// inside them: for codecs that carry passports as opaque text. More than
/// `limits.max_entries` strings or more than `limits.max_bytes` of text is refused, so
/// memory use is bounded by the text's size.
///
/// ```
/// use kest_passport::{Limits, parse_entry_list};
///
/// assert_eq!(parse_entry_list(r#"["a", "b"]"#, &Limits::default())?, ["a", "b"]);
/// assert!(parse_entry_list(r#"["a", 1]"#, &Limits::default()).is_err());
/// assert!(parse_entry_list(r#"["a"] ["b"]"#, &Limits::default()).is_err());
/// # Ok::<(), kest_passport::PassportError>(())
/// ```
///
/// # Errors
/// [`PassportError::TooLarge`], [`PassportError::TooManyEntries`] or
/// [`PassportError::NotAnArray`].
pub fn parse_entry_list(text: &str, limits: &Limits) -> Result<Vec<String>, PassportError> {
    if text.len() > limits.max_bytes {
        return Err(PassportError::TooLarge {
            len: text.len(),
            limit: limits.max_bytes,
        });
    }
    let too_many = Cell::new(false);
    let mut deserializer = serde_json::Deserializer::from_str(text);
    deserializer
        .deserialize_seq(JwsList {
            max: limits.max_entries,
            too_many: &too_many,
        })
        .and_then(|list| deserializer.end().map(|()| list))
        .map_err(|error| {
            if too_many.get() {
                PassportError::TooManyEntries {
                    limit: limits.max_entries,
                }
            } else {
                PassportError::NotAnArray {
                    reason: kest_canon::escape_untrusted(&error.to_string(), 200),
                }
            }
        })
}

/// Writes JWS strings as a compact JSON array. A JWS holds only base64url characters and
/// dots, so nothing needs escaping.
pub(crate) fn write_list<'a>(entries: impl Iterator<Item = &'a SignedEntry> + Clone) -> String {
    let size: usize = entries.clone().map(|entry| entry.jws_len() + 3).sum();
    let mut out = String::with_capacity(size + 2);
    let mut scratch = Vec::new();
    out.push('[');
    for (index, entry) in entries.enumerate() {
        if index > 0 {
            out.push(',');
        }
        out.push('"');
        entry.write_jws(&mut out, &mut scratch);
        out.push('"');
    }
    out.push(']');
    out
}

struct JwsList<'f> {
    max: usize,
    /// Set when the limit stopped the parse, so the caller reports it as such (serde's
    /// own error carries only text).
    too_many: &'f Cell<bool>,
}

impl<'de> Visitor<'de> for JwsList<'_> {
    type Value = Vec<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of JWS strings")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut list = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(self.max));
        while let Some(jws) = seq.next_element::<String>()? {
            if list.len() == self.max {
                self.too_many.set(true);
                return Err(de::Error::custom("too many entries"));
            }
            list.push(jws);
        }
        Ok(list)
    }
}
