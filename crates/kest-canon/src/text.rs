//! Safe handling of text that came from outside: showing it, and bounding its nesting.
//!
//! Principals, operations, claim ids and labels arrive in passports and headers that
//! anyone can write. Printed raw, a newline or an ANSI escape in them can forge a line of
//! a terminal report ("verified: …") or of a log; a megabyte claim id floods both. Every
//! place that shows such text goes through [`Untrusted`].

use std::fmt::{self, Write as _};

use crate::error::CanonError;

/// How many characters of untrusted text are shown before it is cut, by default.
pub const DEFAULT_SHOWN_CHARS: usize = 120;

/// Untrusted text, shown safely: control characters, Unicode direction overrides and
/// invisible formatting characters are escaped (`\n`, `\u{1b}`, `\u{202e}`), a backslash is
/// doubled so that escapes cannot be faked, and text longer than the limit is cut with
/// `…`.
///
/// ```
/// use kest_canon::Untrusted;
/// let forged = "w\n\x1b[32mverified: 9 entries";
/// assert_eq!(Untrusted::new(forged).to_string(), r"w\n\u{1b}[32mverified: 9 entries");
/// assert_eq!(Untrusted::new(&"x".repeat(500)).max_chars(4).to_string(), "xxxx…");
/// ```
#[derive(Clone, Copy)]
pub struct Untrusted<'a> {
    text: &'a str,
    max_chars: usize,
}

impl<'a> Untrusted<'a> {
    /// Wraps `text`, to be shown cut at [`DEFAULT_SHOWN_CHARS`] characters.
    #[must_use]
    pub const fn new(text: &'a str) -> Self {
        Self {
            text,
            max_chars: DEFAULT_SHOWN_CHARS,
        }
    }

    /// Cuts the text at `max_chars` characters instead.
    #[must_use]
    pub const fn max_chars(mut self, max_chars: usize) -> Self {
        self.max_chars = max_chars;
        self
    }
}

impl fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (count, ch) in self.text.chars().enumerate() {
            if count == self.max_chars {
                return f.write_char('…');
            }
            match ch {
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                _ if needs_escape(ch) => write!(f, "\\u{{{:x}}}", u32::from(ch))?,
                _ => f.write_char(ch)?,
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// Characters that change how surrounding text is displayed, or that cannot be seen.
fn needs_escape(ch: char) -> bool {
    ch.is_control()
        || matches!(
            ch,
            '\u{061c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2069}'
                | '\u{feff}'
                | '\u{fff9}'..='\u{fffb}'
        )
}

/// `text` with only the characters that change how text is displayed (controls, line
/// and bidirectional marks, invisible characters) escaped as `\u{..}`, and everything else,
/// backslashes included, as it is: for a message that may already hold escaped text and
/// must not be escaped twice.
///
/// ```
/// assert_eq!(kest_canon::neutralize("a\u{1b}[2Jb \\n"), "a\\u{1b}[2Jb \\n");
/// assert!(matches!(kest_canon::neutralize("plain"), std::borrow::Cow::Borrowed(_)));
/// ```
#[must_use]
pub fn neutralize(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for ch in text.chars() {
        if needs_escape(ch) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(ch)));
        } else {
            out.push(ch);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// `text` escaped and cut as [`Untrusted`] shows it, with at most `max_chars` characters.
#[must_use]
pub fn escape_untrusted(text: &str, max_chars: usize) -> String {
    Untrusted::new(text).max_chars(max_chars).to_string()
}

/// Checks that arrays and objects in the JSON `text` nest no deeper than `limit`, without
/// parsing it. Brackets inside strings do not count. Malformed text passes: the parser
/// reports it better.
///
/// Parsers that skip members they do not know (a JWS header's extra members, say) would
/// otherwise walk arbitrarily deep input.
///
/// ```
/// assert!(kest_canon::check_nesting(br#"{"a":[[1]],"s":"[[[["}"#, 3).is_ok());
/// assert!(kest_canon::check_nesting(b"[[[[]]]]", 3).is_err());
/// ```
///
/// # Errors
/// [`CanonError::TooDeep`] naming the byte offset where the limit was crossed.
pub fn check_nesting(text: &[u8], limit: usize) -> Result<(), CanonError> {
    let mut depth = 0_usize;
    let mut in_string = false;
    let mut escaped = false;
    for (offset, byte) in text.iter().enumerate() {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return Err(CanonError::TooDeep {
                        limit,
                        location: format!("byte {offset}"),
                    });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_could_forge_a_line() {
        let shown = Untrusted::new("a\r\nb\u{7}c\u{9b}d\u{202e}e\\f\u{2028}g").to_string();
        assert_eq!(shown, r"a\r\nb\u{7}c\u{9b}d\u{202e}e\\f\u{2028}g");
        assert!(!shown.chars().any(char::is_control));
    }

    #[test]
    fn keeps_ordinary_text_and_cuts_long_text() {
        assert_eq!(
            Untrusted::new("spiffe://ex.org/é").to_string(),
            "spiffe://ex.org/é"
        );
        assert_eq!(escape_untrusted("abcdef", 3), "abc…");
        assert_eq!(escape_untrusted("abc", 3), "abc");
        assert_eq!(escape_untrusted("", 3), "");
    }

    #[test]
    fn nesting_counts_only_outside_strings() {
        assert!(check_nesting(br#"["\"[[[[[", {"k":"\\"}]"#, 2).is_ok());
        let deep = "[".repeat(200_000);
        assert!(matches!(
            check_nesting(deep.as_bytes(), 128),
            Err(CanonError::TooDeep { limit: 128, ref location }) if location == "byte 128"
        ));
        assert!(check_nesting(b"[[]][[]]", 2).is_ok());
    }
}
