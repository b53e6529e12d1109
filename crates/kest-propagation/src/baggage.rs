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
}

fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn decode_value(text: &str, index: usize) -> Result<String, PropagationError> {
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
    /// skipped. Values may hold any character but `,` and `;`; this reads what the Python
    /// package writes without percent-encoding, as long as it has no comma. When a key
    /// repeats, the last member wins.
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
        for (index, raw) in header.split(',').enumerate() {
            if raw.trim().is_empty() {
                continue;
            }
            count += 1;
            if count > limits.max_members {
                return Err(PropagationError::TooManyMembers {
                    limit: limits.max_members,
                });
            }
            baggage.insert(Self::parse_member(raw, index)?)?;
        }
        Ok(baggage)
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
                return Err(malformed("a property key is not a token"));
            }
            properties.push((name.to_owned(), value));
        }
        Ok(Member {
            key: key.to_owned(),
            value,
            properties,
        })
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
