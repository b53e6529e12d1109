//! Reading an entry payload, checking it against the [entry schema](https://github.com/kest-dev/kest-rust/blob/main/docs/src/wire-format.md#entry-payload) as it is parsed.
//!
//! The payload is deserialized straight into [`Entry`], field by field, rather than into a
//! `serde_json::Value` first: verification reads every entry of every passport, and the
//! intermediate map cost as much as the rest of parsing. Free-form members (labels,
//! environment, metadata, unknown members) are still kept as values.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;

use kest_canon::Sha256Digest;
use kest_trust::TrustScore;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::entry::{Deviation, Entry, LABEL_PRINCIPAL, Parents, PolicyContext, Runtime};
use crate::error::EntryFault;

impl Entry {
    /// Reads an entry from the JSON bytes of a payload, checking every member against
    /// the [entry schema](https://github.com/kest-dev/kest-rust/blob/main/docs/src/wire-format.md#entry-payload). Members this version does not know are kept.
    ///
    /// # Errors
    /// [`EntryFault::PayloadNotJson`] or [`EntryFault::Schema`] naming the field.
    pub fn from_json_slice(bytes: &[u8]) -> Result<Self, EntryFault> {
        let fault = RefCell::new(None);
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        let result = EntrySeed { fault: &fault }
            .deserialize(&mut deserializer)
            .and_then(|entry| deserializer.end().map(|()| entry));
        finish(result, fault)
    }

    /// Reads an entry from a parsed payload, with the same checks as
    /// [`Entry::from_json_slice`].
    ///
    /// # Errors
    /// [`EntryFault::Schema`] naming the field.
    pub fn from_value(value: Value) -> Result<Self, EntryFault> {
        let fault = RefCell::new(None);
        let result = EntrySeed { fault: &fault }.deserialize(value);
        finish(result, fault)
    }
}

fn finish(
    result: Result<Entry, serde_json::Error>,
    fault: RefCell<Option<EntryFault>>,
) -> Result<Entry, EntryFault> {
    let entry = result.map_err(|error| {
        fault
            .into_inner()
            .unwrap_or_else(|| EntryFault::PayloadNotJson {
                reason: error.to_string(),
            })
    })?;
    entry.check_kest_rust_rules()?;
    Ok(entry)
}

/// Carries the structured fault out of serde, whose errors are only text.
struct EntrySeed<'f> {
    fault: &'f RefCell<Option<EntryFault>>,
}

impl<'de> DeserializeSeed<'de> for EntrySeed<'_> {
    type Value = Entry;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Entry, D::Error> {
        deserializer.deserialize_map(self)
    }
}

/// The known members, in the order the visitor checks them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Known {
    AddedTaints,
    Classification,
    ContentHash,
    EntryId,
    Environment,
    InputHash,
    Labels,
    Metadata,
    Operation,
    OtelContext,
    ParentIds,
    PolicyContext,
    RemovedTaints,
    Runtime,
    SchemaVersion,
    Taints,
    TimestampMs,
    TrustScore,
}

const KNOWN: [(&str, Known); 18] = [
    ("added_taints", Known::AddedTaints),
    ("classification", Known::Classification),
    ("content_hash", Known::ContentHash),
    ("entry_id", Known::EntryId),
    ("environment", Known::Environment),
    ("input_hash", Known::InputHash),
    ("labels", Known::Labels),
    ("metadata", Known::Metadata),
    ("operation", Known::Operation),
    ("otel_context", Known::OtelContext),
    ("parent_ids", Known::ParentIds),
    ("policy_context", Known::PolicyContext),
    ("removed_taints", Known::RemovedTaints),
    ("runtime", Known::Runtime),
    ("schema_version", Known::SchemaVersion),
    ("taints", Known::Taints),
    ("timestamp_ms", Known::TimestampMs),
    ("trust_score", Known::TrustScore),
];

fn name_of(known: Known) -> &'static str {
    KNOWN
        .iter()
        .find(|(_, k)| *k == known)
        .map_or("?", |(name, _)| name)
}

enum Key {
    Known(Known),
    Other(String),
}

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Key, E> {
        Ok(KNOWN
            .iter()
            .find(|(known, _)| *known == name)
            .map_or_else(|| Key::Other(name.to_owned()), |(_, k)| Key::Known(*k)))
    }
}

impl<'de> de::Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

#[derive(Default)]
struct Slots {
    added_taints: Option<Vec<String>>,
    classification: Option<String>,
    content_hash: Option<String>,
    entry_id: Option<String>,
    environment: Option<Map<String, Value>>,
    input_hash: Option<String>,
    labels: Option<BTreeMap<String, Value>>,
    metadata: Option<Value>,
    operation: Option<String>,
    otel_context: Option<Map<String, Value>>,
    parent_ids: Option<Vec<String>>,
    policy_context: Option<Value>,
    removed_taints: Option<Vec<String>>,
    runtime: Option<Value>,
    schema_version: Option<String>,
    taints: Option<Vec<String>>,
    timestamp_ms: Option<Value>,
    trust_score: Option<Value>,
    extra: BTreeMap<String, Value>,
}

impl<'de> Visitor<'de> for EntrySeed<'_> {
    type Value = Entry;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an entry payload object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entry, A::Error> {
        let mut slots = Slots::default();
        while let Some(key) = map.next_key::<Key>()? {
            let known = match key {
                Key::Known(known) => known,
                Key::Other(name) => {
                    let value: Value = map.next_value()?;
                    if slots.extra.insert(name.clone(), value).is_some() {
                        return Err(self.fail(name, "appears twice"));
                    }
                    continue;
                }
            };
            let name = name_of(known);
            macro_rules! put {
                ($slot:ident) => {{
                    if slots.$slot.is_some() {
                        return Err(self.fail(name, "appears twice"));
                    }
                    let value = map
                        .next_value()
                        .map_err(|error: A::Error| self.fail(name, type_reason(&error)))?;
                    slots.$slot = Some(value);
                }};
            }
            match known {
                Known::AddedTaints => put!(added_taints),
                Known::Classification => put!(classification),
                Known::ContentHash => put!(content_hash),
                Known::EntryId => put!(entry_id),
                Known::Environment => put!(environment),
                Known::InputHash => put!(input_hash),
                Known::Labels => put!(labels),
                Known::Metadata => put!(metadata),
                Known::Operation => put!(operation),
                Known::OtelContext => put!(otel_context),
                Known::ParentIds => put!(parent_ids),
                Known::PolicyContext => put!(policy_context),
                Known::RemovedTaints => put!(removed_taints),
                Known::Runtime => put!(runtime),
                Known::SchemaVersion => put!(schema_version),
                Known::Taints => put!(taints),
                Known::TimestampMs => put!(timestamp_ms),
                Known::TrustScore => put!(trust_score),
            }
        }
        self.build(slots).map_err(|fault| {
            self.fault.replace(Some(fault));
            de::Error::custom("schema violation")
        })
    }
}

impl EntrySeed<'_> {
    fn fail<E: de::Error>(&self, field: impl Into<String>, reason: impl Into<String>) -> E {
        self.fault.replace(Some(EntryFault::Schema {
            field: field.into(),
            reason: reason.into(),
        }));
        E::custom("schema violation")
    }

    fn build(&self, slots: Slots) -> Result<Entry, EntryFault> {
        let schema_version = required(slots.schema_version, "schema_version")?;
        if !schema_version.starts_with("0.3.") {
            return Err(schema(
                "schema_version",
                format!("must be 0.3.x, found `{}`", shorten(&schema_version)),
            ));
        }
        let runtime = read_runtime(required(slots.runtime, "runtime")?)?;
        let entry_id = read_entry_id(&required(slots.entry_id, "entry_id")?)?;
        let operation = required(slots.operation, "operation")?;
        if operation.is_empty() {
            return Err(schema("operation", "must not be empty"));
        }
        let trust = required(slots.trust_score, "trust_score")?;
        let trust_score = trust
            .as_u64()
            .and_then(|t| i64::try_from(t).ok())
            .and_then(|t| TrustScore::try_from_i64(t).ok())
            .ok_or_else(|| {
                schema(
                    "trust_score",
                    format!(
                        "must be an integer in 0..=100, found {}",
                        shorten(&trust.to_string())
                    ),
                )
            })?;
        let timestamp = required(slots.timestamp_ms, "timestamp_ms")?;
        let timestamp_ms = timestamp
            .as_u64()
            .filter(|n| *n <= kest_canon::MAX_SAFE_INTEGER)
            .ok_or_else(|| {
                schema(
                    "timestamp_ms",
                    format!(
                        "must be a non-negative integer, found {}",
                        shorten(&timestamp.to_string())
                    ),
                )
            })?;
        let labels = required(slots.labels, "labels")?;
        match labels.get(LABEL_PRINCIPAL) {
            Some(Value::String(principal)) if !principal.is_empty() => {}
            Some(_) => return Err(schema("labels.principal", "must be a non-empty string")),
            None => return Err(schema("labels.principal", "is missing")),
        }
        Ok(Entry {
            schema_version,
            runtime,
            entry_id,
            operation,
            classification: required(slots.classification, "classification")?,
            trust_score,
            parents: read_parents(&required(slots.parent_ids, "parent_ids")?)?,
            added_taints: required(slots.added_taints, "added_taints")?,
            removed_taints: required(slots.removed_taints, "removed_taints")?,
            taints: required(slots.taints, "taints")?,
            labels,
            policy_context: read_policy_context(required(slots.policy_context, "policy_context")?)?,
            environment: required(slots.environment, "environment")?,
            otel_context: required(slots.otel_context, "otel_context")?,
            metadata: required(slots.metadata, "metadata")?,
            content_hash: read_hash(
                &required(slots.content_hash, "content_hash")?,
                "content_hash",
            )?,
            input_hash: read_hash(&required(slots.input_hash, "input_hash")?, "input_hash")?,
            timestamp_ms,
            extra: slots.extra,
        })
    }
}

/// The description in a serde type error, without serde_json's position suffix.
fn type_reason(error: &impl fmt::Display) -> String {
    let text = error.to_string();
    let text = text
        .rsplit_once(" at line ")
        .map_or(text.as_str(), |(head, _)| head);
    format!("has the wrong type: {}", shorten(text))
}

fn schema(field: &str, reason: impl Into<String>) -> EntryFault {
    EntryFault::Schema {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

fn required<T>(slot: Option<T>, field: &str) -> Result<T, EntryFault> {
    slot.ok_or_else(|| schema(field, "is missing"))
}

/// Attacker-controlled text quoted in a fault: escaped and cut short.
fn shorten(text: &str) -> String {
    kest_canon::escape_untrusted(text, 40)
}

impl Entry {
    /// Rules Kest for Rust keeps beyond the shared schema: sorted, duplicate-free taints.
    pub(crate) fn check_kest_rust_rules(&self) -> Result<(), EntryFault> {
        let sorted = self
            .taints
            .windows(2)
            .all(|pair| matches!(pair, [a, b] if a < b));
        if self.is_kest_rust() && !sorted {
            return Err(schema(
                "taints",
                "must be sorted without duplicates in entries written by kest-rust",
            ));
        }
        Ok(())
    }
}

fn read_entry_id(text: &str) -> Result<Uuid, EntryFault> {
    let id = Uuid::try_parse(text).map_err(|_| {
        schema(
            "entry_id",
            format!("must be a UUID, found `{}`", shorten(text)),
        )
    })?;
    if id.get_version_num() != 7 {
        return Err(schema(
            "entry_id",
            format!("must be a UUID v7, found version {}", id.get_version_num()),
        ));
    }
    if id.get_variant() != uuid::Variant::RFC4122 {
        return Err(schema(
            "entry_id",
            format!(
                "must be a UUID v7 with the RFC 9562 variant bits (10xx), found {:?}",
                id.get_variant()
            ),
        ));
    }
    Ok(id)
}

fn read_parents(ids: &[String]) -> Result<Parents, EntryFault> {
    match ids {
        [] => Err(schema(
            "parent_ids",
            "must not be empty; a root has [\"0\"]",
        )),
        [only] if only == "0" => Ok(Parents::Root),
        _ => {
            let mut hashes = Vec::with_capacity(ids.len());
            let mut seen = std::collections::HashSet::with_capacity(ids.len());
            for id in ids {
                let hash = Sha256Digest::from_hex(id).map_err(|error| {
                    schema(
                        "parent_ids",
                        format!("must hold \"0\" or entry hashes: {error}"),
                    )
                })?;
                if !seen.insert(hash) {
                    return Err(schema("parent_ids", format!("lists {hash} twice")));
                }
                hashes.push(hash);
            }
            Ok(Parents::Hashes(hashes))
        }
    }
}

fn read_hash(text: &str, field: &str) -> Result<Option<Sha256Digest>, EntryFault> {
    if text.is_empty() {
        return Ok(None);
    }
    Sha256Digest::from_hex(text)
        .map(Some)
        .map_err(|error| schema(field, format!("must be \"\" or 64 lowercase hex: {error}")))
}

/// Takes typed members out of a small nested JSON object, naming the field in errors.
struct Fields {
    prefix: &'static str,
    map: Map<String, Value>,
}

impl Fields {
    fn new(prefix: &'static str, value: Value) -> Result<Self, EntryFault> {
        match value {
            Value::Object(map) => Ok(Self { prefix, map }),
            other => Err(schema(
                prefix.trim_end_matches('.'),
                format!("must be an object, found {}", kind(&other)),
            )),
        }
    }

    fn fault(&self, name: &str, reason: impl Into<String>) -> EntryFault {
        schema(&format!("{}{name}", self.prefix), reason)
    }

    fn take(&mut self, name: &str) -> Result<Value, EntryFault> {
        self.map
            .remove(name)
            .ok_or_else(|| self.fault(name, "is missing"))
    }

    fn string(&mut self, name: &str) -> Result<String, EntryFault> {
        match self.take(name)? {
            Value::String(text) => Ok(text),
            other => Err(self.fault(name, format!("must be a string, found {}", kind(&other)))),
        }
    }

    /// A member that must be present and may be null.
    fn nullable_string(&mut self, name: &str) -> Result<Option<String>, EntryFault> {
        match self.take(name)? {
            Value::Null => Ok(None),
            Value::String(text) => Ok(Some(text)),
            other => Err(self.fault(
                name,
                format!("must be a string or null, found {}", kind(&other)),
            )),
        }
    }

    fn strings(&mut self, name: &str) -> Result<Vec<String>, EntryFault> {
        match self.take(name)? {
            Value::Array(items) => items
                .into_iter()
                .map(|item| match item {
                    Value::String(text) => Ok(text),
                    other => Err(self.fault(
                        name,
                        format!("must hold only strings, found {}", kind(&other)),
                    )),
                })
                .collect(),
            other => Err(self.fault(name, format!("must be an array, found {}", kind(&other)))),
        }
    }

    fn rest(self) -> BTreeMap<String, Value> {
        self.map.into_iter().collect()
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn read_runtime(value: Value) -> Result<Runtime, EntryFault> {
    let mut fields = Fields::new("runtime.", value)?;
    Ok(Runtime {
        name: fields.string("name")?,
        version: fields.string("version")?,
        extra: fields.rest(),
    })
}

fn read_policy_context(value: Value) -> Result<PolicyContext, EntryFault> {
    let mut fields = Fields::new("policy_context.", value)?;
    let deviations = match fields.take("deviations")? {
        Value::Array(items) => items
            .into_iter()
            .map(read_deviation)
            .collect::<Result<Vec<_>, _>>()?,
        other => {
            return Err(fields.fault(
                "deviations",
                format!("must be an array, found {}", kind(&other)),
            ));
        }
    };
    Ok(PolicyContext {
        enterprise_policies: fields.strings("enterprise_policies")?,
        platform_policies: fields.strings("platform_policies")?,
        app_policies: fields.strings("app_policies")?,
        function_policies: fields.strings("function_policies")?,
        deviations,
        extra: fields.rest(),
    })
}

fn read_deviation(value: Value) -> Result<Deviation, EntryFault> {
    let mut fields = Fields::new("policy_context.deviations[].", value)?;
    Ok(Deviation {
        policy: fields.string("policy")?,
        tier: fields.string("tier")?,
        reason: fields.nullable_string("reason")?,
        approver: fields.nullable_string("approver")?,
        extra: fields.rest(),
    })
}
