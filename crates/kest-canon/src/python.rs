//! JSON text as Python's `json.dumps` writes it, for the places where the Python package's
//! exact bytes matter (JWS headers, baggage members).

use std::io;

use serde::Serialize;
use serde_json::ser::{CharEscape, CompactFormatter, Formatter};

/// The separators `json.dumps` is called with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PythonSeparators {
    /// `separators=(",", ":")`: what the Python package writes JWS headers with.
    Compact,
    /// The default `(", ", ": ")`: what `Passport.serialize` writes baggage members with.
    #[default]
    Default,
}

/// Writes `value` as `json.dumps(value, separators=…)` does with its default
/// `ensure_ascii=True`: every character outside printable ASCII becomes `\uXXXX`
/// (UTF-16 code units, lowercase hex). Keys are written in the value's own order; sort
/// them first where Python passes `sort_keys=True`.
///
/// ```
/// use kest_canon::{PythonSeparators, python_dumps};
///
/// let list = ["a.b.c", "é"];
/// assert_eq!(python_dumps(&list, PythonSeparators::Default), r#"["a.b.c", "\u00e9"]"#);
/// assert_eq!(python_dumps(&list, PythonSeparators::Compact), r#"["a.b.c","\u00e9"]"#);
/// ```
#[must_use]
pub fn python_dumps<T: Serialize + ?Sized>(value: &T, separators: PythonSeparators) -> String {
    let mut out = Vec::new();
    let mut serializer =
        serde_json::Serializer::with_formatter(&mut out, PythonFormatter { separators });
    // Serializing into a Vec fails only for values that are not JSON data (a map with
    // non-string keys); those come out as whatever was written before the failure.
    let _ = value.serialize(&mut serializer);
    // Everything written is ASCII.
    String::from_utf8(out).unwrap_or_default()
}

struct PythonFormatter {
    separators: PythonSeparators,
}

impl Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        match (first, self.separators) {
            (true, _) => Ok(()),
            (false, PythonSeparators::Compact) => writer.write_all(b","),
            (false, PythonSeparators::Default) => writer.write_all(b", "),
        }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.begin_array_value(writer, first)
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        match self.separators {
            PythonSeparators::Compact => writer.write_all(b":"),
            PythonSeparators::Default => writer.write_all(b": "),
        }
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        for ch in fragment.chars() {
            if (' '..='~').contains(&ch) {
                let mut buf = [0_u8; 4];
                writer.write_all(ch.encode_utf8(&mut buf).as_bytes())?;
            } else {
                let mut units = [0_u16; 2];
                for unit in ch.encode_utf16(&mut units) {
                    write!(writer, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        escape: CharEscape,
    ) -> io::Result<()> {
        CompactFormatter.write_char_escape(writer, escape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_and_astral_text_are_escaped_as_python_does() {
        // json.dumps(["\x00\t\"\\", "😀", "\x7f"]) in CPython 3.11
        let list = ["\u{0}\t\"\\", "\u{1F600}", "\u{7f}"];
        assert_eq!(
            python_dumps(&list, PythonSeparators::Default),
            r#"["\u0000\t\"\\", "\ud83d\ude00", "\u007f"]"#
        );
    }

    #[test]
    fn objects_use_the_chosen_separators() {
        let map: std::collections::BTreeMap<&str, u8> = [("a", 1), ("b", 2)].into();
        assert_eq!(
            python_dumps(&map, PythonSeparators::Default),
            r#"{"a": 1, "b": 2}"#
        );
        assert_eq!(
            python_dumps(&map, PythonSeparators::Compact),
            r#"{"a":1,"b":2}"#
        );
        assert_eq!(
            python_dumps(&Vec::<u8>::new(), PythonSeparators::Default),
            "[]"
        );
    }
}
