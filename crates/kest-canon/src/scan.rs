//! A pre-parse scan of JSON text for what `serde_json` accepts but canonical JSON must not.
//!
//! `serde_json` turns an integer literal too large for `u64` into a double without telling
//! anyone, and its messages for broken surrogate escapes are hard to tell apart from other
//! syntax errors. The Python package parses integer literals as integers and then refuses
//! any outside ±(2^53−1); it also reads `NaN` and `Infinity` and then refuses them. This
//! scan looks only at number literals, bare words and `\u` escapes, so that the same input
//! fails here with the same kind of error. Everything else is left to `serde_json`.

use crate::error::{CanonError, shorten};
use crate::limits::MAX_SAFE_INTEGER;

/// Walks `text` and reports the first lone surrogate escape, non-finite literal or (when
/// `check_integers`) integer literal outside the safe range.
pub(crate) fn scan(text: &[u8], check_integers: bool) -> Result<(), CanonError> {
    let mut scanner = Scanner {
        text,
        pos: 0,
        line: 1,
        line_start: 0,
    };
    scanner.run(check_integers)
}

struct Scanner<'a> {
    text: &'a [u8],
    pos: usize,
    line: usize,
    line_start: usize,
}

impl Scanner<'_> {
    fn peek(&self, offset: usize) -> Option<u8> {
        self.text.get(self.pos + offset).copied()
    }

    fn column(&self, at: usize) -> usize {
        at.saturating_sub(self.line_start) + 1
    }

    fn run(&mut self, check_integers: bool) -> Result<(), CanonError> {
        while let Some(byte) = self.peek(0) {
            match byte {
                b'\n' => {
                    self.pos += 1;
                    self.line += 1;
                    self.line_start = self.pos;
                }
                b'"' => self.string()?,
                b'-' | b'0'..=b'9' => self.number(check_integers)?,
                b'N' | b'I' => self.bare_word()?,
                _ => self.pos += 1,
            }
        }
        Ok(())
    }

    /// Skips a string, checking its `\u` escapes. Stops quietly at anything malformed:
    /// `serde_json` reports those with a better message.
    fn string(&mut self) -> Result<(), CanonError> {
        self.pos += 1;
        while let Some(byte) = self.peek(0) {
            match byte {
                b'"' => {
                    self.pos += 1;
                    return Ok(());
                }
                b'\\' if self.peek(1) == Some(b'u') => {
                    let start = self.pos;
                    let Some(unit) = self.hex_escape(start) else {
                        self.pos += 2;
                        continue;
                    };
                    self.pos += 6;
                    if (0xD800..=0xDBFF).contains(&unit) {
                        let low = self
                            .peek(0)
                            .filter(|b| *b == b'\\')
                            .and_then(|_| self.hex_escape(self.pos));
                        match low {
                            Some(low) if (0xDC00..=0xDFFF).contains(&low) => self.pos += 6,
                            _ => return Err(self.lone_surrogate(start, unit)),
                        }
                    } else if (0xDC00..=0xDFFF).contains(&unit) {
                        return Err(self.lone_surrogate(start, unit));
                    }
                }
                b'\\' => self.pos += 2,
                // A raw newline inside a string is a syntax error; count it anyway so
                // positions stay right for the error serde_json will raise.
                b'\n' => {
                    self.pos += 1;
                    self.line += 1;
                    self.line_start = self.pos;
                }
                _ => self.pos += 1,
            }
        }
        Ok(())
    }

    /// Reads the four hex digits of a `\uXXXX` escape starting at `at`.
    fn hex_escape(&self, at: usize) -> Option<u16> {
        if self.text.get(at..at + 2)? != b"\\u" {
            return None;
        }
        let digits = self.text.get(at + 2..at + 6)?;
        let digits = std::str::from_utf8(digits).ok()?;
        u16::from_str_radix(digits, 16).ok()
    }

    fn lone_surrogate(&self, at: usize, unit: u16) -> CanonError {
        CanonError::LoneSurrogate {
            escape: format!("\\u{unit:04x}"),
            line: self.line,
            column: self.column(at),
        }
    }

    fn number(&mut self, check_integers: bool) -> Result<(), CanonError> {
        let start = self.pos;
        let mut integral = true;
        while let Some(byte) = self.peek(0) {
            match byte {
                b'0'..=b'9' | b'-' | b'+' => {}
                b'.' | b'e' | b'E' => integral = false,
                _ => break,
            }
            self.pos += 1;
        }
        let literal = self.text.get(start..self.pos).unwrap_or_default();
        let literal = std::str::from_utf8(literal).unwrap_or_default();
        if literal == "-" && self.text.get(self.pos..self.pos + 8) == Some(b"Infinity") {
            self.pos += 8;
            return Err(self.non_finite(start, "-Infinity"));
        }
        if check_integers && integral && !integer_is_safe(literal) {
            return Err(CanonError::IntegerOutOfRange {
                literal: shorten(literal),
                location: format!("line {}, column {}", self.line, self.column(start)),
            });
        }
        Ok(())
    }

    fn bare_word(&mut self) -> Result<(), CanonError> {
        let start = self.pos;
        for word in ["NaN", "Infinity"] {
            if self.text.get(start..start + word.len()) == Some(word.as_bytes()) {
                self.pos += word.len();
                return Err(self.non_finite(start, word));
            }
        }
        self.pos += 1;
        Ok(())
    }

    fn non_finite(&self, at: usize, literal: &str) -> CanonError {
        CanonError::NonFiniteNumber {
            literal: literal.to_owned(),
            line: self.line,
            column: self.column(at),
        }
    }
}

/// Whether an integer literal (optional `-`, then digits) lies within ±(2^53−1).
/// Malformed literals count as safe: the parser rejects them with a syntax error.
fn integer_is_safe(literal: &str) -> bool {
    let digits = literal.strip_prefix('-').unwrap_or(literal);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    let significant = digits.trim_start_matches('0');
    if significant.len() > 16 {
        return false;
    }
    significant
        .parse::<u64>()
        .map_or(true, |n| n <= MAX_SAFE_INTEGER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_bounds() {
        assert!(integer_is_safe("9007199254740991"));
        assert!(integer_is_safe("-9007199254740991"));
        assert!(!integer_is_safe("9007199254740992"));
        assert!(!integer_is_safe("-9007199254740992"));
        assert!(!integer_is_safe("123456789012345678901234567890"));
        assert!(integer_is_safe("0000000000000000000000001"));
    }

    #[test]
    fn surrogates_inside_strings_only() {
        assert!(scan(br#""\ud83d\ude00""#, true).is_ok());
        assert!(matches!(
            scan(br#"{"a":"\ud800"}"#, true),
            Err(CanonError::LoneSurrogate { column: 7, .. })
        ));
        assert!(matches!(
            scan(b"[1,\n \"x\\udc00\"]", true),
            Err(CanonError::LoneSurrogate {
                line: 2,
                column: 4,
                ..
            })
        ));
        // An escaped quote does not end the string, so the number after it is not seen.
        assert!(scan(br#""\" 99999999999999999999""#, true).is_ok());
    }

    #[test]
    fn bare_words() {
        assert!(matches!(
            scan(b"[NaN]", true),
            Err(CanonError::NonFiniteNumber { column: 2, .. })
        ));
        assert!(matches!(
            scan(b"-Infinity", true),
            Err(CanonError::NonFiniteNumber { .. })
        ));
        assert!(scan(br#"{"NaN":"Infinity"}"#, true).is_ok());
    }
}
