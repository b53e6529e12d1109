//! A W3C Baggage codec: parse and format the `baggage` header, with limits.

use std::fmt;

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

use crate::PropagationError;

/// Characters a baggage value may not hold unescaped: everything outside `baggage-octet`
/// (`%x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E`), plus `%` itself.
const VALUE_ESCAPES: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b',')
    .add(b';')
    .add(b'\\')
    .add(b'%');

/// Limits on a baggage header. The defaults are the W3C specification's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BaggageLimits {
    /// Most list members. Default 64.
    pub max_members: usize,
    /// Most bytes in the header. Default 8192.
    pub max_bytes: usize,
}

impl Default for BaggageLimits {
    fn default() -> Self {
        Self {
            max_members: 64,
            max_bytes: 8192,
        }
    }
}

/// One list member: a key, its (decoded) value and any properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The key.
    pub key: String,
    /// The value, percent-decoded.
    pub value: String,
    /// Properties: `key` or `key=value` (decoded), in order.
    pub properties: Vec<(String, Option<String>)>,
}

/// A parsed `baggage` header: ordered members, each key at most once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Baggage {
    members: Vec<Member>,
    /// Whether a `kest.passport` member was raw JSON, as the Python package writes it.
    raw_json_passport: bool,
}

/// The key whose raw-JSON form is read across commas.
const PASSPORT_KEY: &str = "kest.passport";

/// Where a member that starts at the beginning of `rest` ends, when it is a
/// `kest.passport` member whose value is raw JSON (`["` …): the Python package's
/// `KestHttpxInterceptor` writes its inline passport that way, commas unencoded. The value
/// runs to the `]` that closes its `[` (strings and escapes respected), and the member on
/// to the next comma. `Ok(None)` for any other member.
fn raw_json_member_end(rest: &str, index: usize) -> Result<Option<usize>, PropagationError> {
    let trimmed = rest.trim_start();
    let Some(after_key) = trimmed.strip_prefix(PASSPORT_KEY) else {
        return Ok(None);
    };
    let after_key_trimmed = after_key.trim_start();
    let Some(value) = after_key_trimmed.strip_prefix('=') else {
        return Ok(None);
    };
    let value_trimmed = value.trim_start();
    // Raw JSON opens with `["`; a W3C value (what Kest writes) has its quotes encoded,
    // `[%22`, and is read as any other member.
    let raw = value_trimmed
        .strip_prefix('[')
        .is_some_and(|inside| inside.trim_start().starts_with('"'));
    if !raw {
        return Ok(None);
    }
    let value_start = rest.len() - value_trimmed.len();
    let (mut depth, mut in_string, mut escaped) = (0_usize, false, false);
    for (position, byte) in value_trimmed.bytes().enumerate() {
        match (in_string, escaped, byte) {
            (true, true, _) => escaped = false,
            (true, false, b'\\') => escaped = true,
            (true, false, b'"') => in_string = false,
            (true, false, _) => {}
            (false, _, b'"') => in_string = true,
            (false, _, b'[') => depth += 1,
            (false, _, b']') => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    let closed = value_start + position + 1;
                    let tail = rest.get(closed..).unwrap_or_default();
                    let to_comma = tail.find(',').unwrap_or(tail.len());
                    let between = tail.get(..to_comma).unwrap_or_default().trim();
                    if !(between.is_empty() || between.starts_with(';')) {
                        return Err(PropagationError::MalformedMember {
                            index,
                            reason: "text after the raw JSON `kest.passport` value".into(),
                        });
                    }
                    return Ok(Some(closed + to_comma));
                }
            }
            (false, _, _) => {}
        }
    }
    Err(PropagationError::MalformedMember {
        index,
        reason: "a raw JSON `kest.passport` value that is never closed".into(),
    })
}

fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn decode_value(text: &str, index: usize) -> Result<String, PropagationError> {
    // `%` must begin an escape: a stray one is malformed, never passed on as it is.
    let bytes = text.as_bytes();
    for (position, _) in text.match_indices('%') {
        let hex = bytes.get(position + 1..position + 3);
        if !hex.is_some_and(|pair| pair.iter().all(u8::is_ascii_hexdigit)) {
            return Err(PropagationError::MalformedMember {
                index,
                reason: format!("a `%` at byte {position} of the value begins no escape"),
            });
        }
    }
    percent_decode_str(text)
        .decode_utf8()
        .map(|value| value.into_owned())
        .map_err(|_| PropagationError::MalformedMember {
            index,
            reason: "the value is not UTF-8 once percent-decoded".into(),
        })
}

impl Baggage {
    /// An empty baggage.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses a `baggage` header value within `limits`.
    ///
    /// Whitespace around keys, values and separators is ignored and empty list members are
    /// skipped. Values may hold any character but `,` and `;`. One exception reads what the
    /// Python package sends: a `kest.passport` value that starts with `["` is raw JSON and
    /// runs to its matching `]`, commas and all (see [`Baggage::has_raw_json_passport`]);
    /// it is taken only if it closes, and the passport readers then parse it completely
    /// or refuse it. When a key repeats, the last member wins.
    ///
    /// ```
    /// use kest_propagation::Baggage;
    /// let baggage = Baggage::parse("kest.user=alice%20smith;p=1, kest.task = t1", &Default::default())?;
    /// assert_eq!(baggage.get("kest.user"), Some("alice smith"));
    /// assert_eq!(baggage.get("kest.task"), Some("t1"));
    /// # Ok::<(), kest_propagation::PropagationError>(())
    /// ```
    ///
    /// # Errors
    /// [`PropagationError::BaggageTooLarge`], [`PropagationError::TooManyMembers`] or
    /// [`PropagationError::MalformedMember`] naming the member.
    pub fn parse(header: &str, limits: &BaggageLimits) -> Result<Self, PropagationError> {
        if header.len() > limits.max_bytes {
            return Err(PropagationError::BaggageTooLarge {
                len: header.len(),
                limit: limits.max_bytes,
            });
        }
        let mut baggage = Self::new();
        let mut count = 0;
        let mut rest = header;
        let mut index = 0;
        loop {
            let (raw, raw_json, next) = match raw_json_member_end(rest, index)? {
                Some(end) => (rest.get(..end).unwrap_or_default(), true, rest.get(end..)),
                None => match rest.find(',') {
                    Some(comma) => (
                        rest.get(..comma).unwrap_or_default(),
                        false,
                        rest.get(comma..),
                    ),
                    None => (rest, false, None),
                },
            };
            if !raw.trim().is_empty() {
                count += 1;
                if count > limits.max_members {
                    return Err(PropagationError::TooManyMembers {
                        limit: limits.max_members,
                    });
                }
                let member = if raw_json {
                    baggage.raw_json_passport = true;
                    Self::parse_raw_json_member(raw, index)?
                } else {
                    Self::parse_member(raw, index)?
                };
                baggage.insert(member)?;
            }
            match next.and_then(|next| next.strip_prefix(',')) {
                Some(after) => rest = after,
                None => break,
            }
            index += 1;
        }
        Ok(baggage)
    }

    /// A `kest.passport` member whose value is raw JSON: the value is taken as it is (no
    /// percent-decoding: JSON text is not percent-encoded), properties after it as usual.
    fn parse_raw_json_member(raw: &str, index: usize) -> Result<Member, PropagationError> {
        let (_, value) = raw.split_once('=').unwrap_or_default();
        let value = value.trim_start();
        let close = value.rfind(']').unwrap_or(value.len().saturating_sub(1));
        let json = value.get(..=close).unwrap_or(value);
        let tail = value.get(close + 1..).unwrap_or_default();
        let properties = Self::parse_properties(tail.split(';').skip(1), index)?;
        Ok(Member {
            key: PASSPORT_KEY.to_owned(),
            value: json.to_owned(),
            properties,
        })
    }

    /// Whether the `kest.passport` member was raw JSON, commas unencoded, as the Python
    /// package's interceptor writes it: not W3C baggage, but read so that its lineage is
    /// not lost. Kest never writes it that way.
    #[must_use]
    pub const fn has_raw_json_passport(&self) -> bool {
        self.raw_json_passport
    }

    fn parse_member(raw: &str, index: usize) -> Result<Member, PropagationError> {
        let malformed = |reason: &str| PropagationError::MalformedMember {
            index,
            reason: reason.to_owned(),
        };
        let mut parts = raw.split(';');
        let pair = parts.next().unwrap_or_default();
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| malformed("expected `key=value`"))?;
        let key = key.trim();
        if !is_token(key) {
            return Err(malformed("the key is not a token"));
        }
        let value = decode_value(value.trim(), index)?;
        Ok(Member {
            key: key.to_owned(),
            value,
            properties: Self::parse_properties(parts, index)?,
        })
    }

    /// The `;`-separated properties after a member's value.
    fn parse_properties<'a>(
        parts: impl Iterator<Item = &'a str>,
        index: usize,
    ) -> Result<Vec<(String, Option<String>)>, PropagationError> {
        let mut properties = Vec::new();
        for property in parts {
            let property = property.trim();
            if property.is_empty() {
                continue;
            }
            let (name, value) = match property.split_once('=') {
                Some((name, value)) => (name.trim(), Some(decode_value(value.trim(), index)?)),
                None => (property, None),
            };
            if !is_token(name) {
                return Err(PropagationError::MalformedMember {
                    index,
                    reason: "a property key is not a token".into(),
                });
            }
            properties.push((name.to_owned(), value));
        }
        Ok(properties)
    }

    /// The value of `key`.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&str> {
        self.member(key).map(|member| member.value.as_str())
    }

    /// The member with `key`.
    #[must_use]
    pub fn member(&self, key: &str) -> Option<&Member> {
        self.members.iter().find(|member| member.key == key)
    }

    /// Sets `key` to `value`, replacing any member with that key.
    ///
    /// # Errors
    /// [`PropagationError::MalformedMember`] when `key` is not a token.
    pub fn set(
        &mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<(), PropagationError> {
        self.insert(Member {
            key: key.into(),
            value: value.into(),
            properties: Vec::new(),
        })
    }

    /// Inserts a member, replacing any member with the same key (in its position).
    ///
    /// # Errors
    /// [`PropagationError::MalformedMember`] when a key is not a token.
    pub fn insert(&mut self, member: Member) -> Result<(), PropagationError> {
        let tokens = is_token(&member.key) && member.properties.iter().all(|(k, _)| is_token(k));
        if !tokens {
            return Err(PropagationError::MalformedMember {
                index: self.members.len(),
                reason: "keys must be tokens".into(),
            });
        }
        match self.members.iter_mut().find(|m| m.key == member.key) {
            Some(existing) => *existing = member,
            None => self.members.push(member),
        }
        Ok(())
    }

    /// Removes `key`; returns whether it was present.
    pub fn remove(&mut self, key: &str) -> bool {
        let before = self.members.len();
        self.members.retain(|member| member.key != key);
        before != self.members.len()
    }

    /// The members, in order.
    #[must_use]
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// Whether there are no members.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The header value: members joined by `,`, values always percent-encoded.
    #[must_use]
    pub fn to_header(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Baggage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, member) in self.members.iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            write!(
                f,
                "{}={}",
                member.key,
                utf8_percent_encode(&member.value, VALUE_ESCAPES)
            )?;
            for (name, value) in &member.properties {
                match value {
                    Some(value) => {
                        write!(f, ";{name}={}", utf8_percent_encode(value, VALUE_ESCAPES))?;
                    }
                    None => write!(f, ";{name}")?,
                }
            }
        }
        Ok(())
    }
}
