//! The entry payload (schema 0.3.0) and its canonical form.

use std::collections::BTreeMap;

use kest_canon::Sha256Digest;
use kest_trust::{TaintSet, TrustScore};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::EntryFault;

/// The payload schema version Kest writes and reads.
pub const SCHEMA_VERSION: &str = "0.3.0";
/// The `runtime.name` Kest for Rust writes.
pub const RUNTIME_NAME: &str = "kest-rust";
/// The `runtime.version` Kest for Rust writes: this crate's version.
pub const RUNTIME_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Label holding the workload id of the signer.
pub const LABEL_PRINCIPAL: &str = "principal";
/// Label holding the OpenTelemetry trace id (hex).
pub const LABEL_TRACE_ID: &str = "trace_id";
/// Label Kest writes on every entry whose trust was set by an override.
pub const LABEL_TRUST_OVERRIDE: &str = "kest.trust_override";
/// Label holding the JSON text of `{"user","agent","task"}`.
pub const LABEL_IDENTITY: &str = "kest.identity";
/// Label holding the JSON text of the resource attributes.
pub const LABEL_RESOURCE_ATTR: &str = "kest.resource_attr";

/// The parents of an entry: none (a root, `["0"]` on the wire) or the hashes of the
/// entries it builds on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Parents {
    /// A root: the first entry of a passport.
    Root,
    /// One parent for a linear chain; several for a join.
    Hashes(Vec<Sha256Digest>),
}

impl Parents {
    /// The parent hashes; empty for a root.
    #[must_use]
    pub fn hashes(&self) -> &[Sha256Digest] {
        match self {
            Self::Root => &[],
            Self::Hashes(hashes) => hashes,
        }
    }

    /// Whether this is a root.
    #[must_use]
    pub const fn is_root(&self) -> bool {
        matches!(self, Self::Root)
    }
}

/// `runtime`: which implementation wrote the entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Runtime {
    /// `kest-rust`, `kest-python`, ...
    pub name: String,
    /// The implementation's version.
    pub version: String,
    /// Members this version does not know, kept as read.
    pub extra: BTreeMap<String, Value>,
}

impl Default for Runtime {
    fn default() -> Self {
        Self {
            name: RUNTIME_NAME.to_owned(),
            version: RUNTIME_VERSION.to_owned(),
            extra: BTreeMap::new(),
        }
    }
}

/// An operator-approved exception: a policy skipped for one scope, with who approved it.
#[derive(Debug, Clone, PartialEq)]
pub struct Deviation {
    /// The skipped policy.
    pub policy: String,
    /// Its tier: `enterprise`, `platform`, `application` or `function`.
    pub tier: String,
    /// Why it was approved.
    pub reason: Option<String>,
    /// Who approved it.
    pub approver: Option<String>,
    /// Members this version does not know, kept as read.
    pub extra: BTreeMap<String, Value>,
}

/// `policy_context`: which policies ran, per tier, and which deviations applied.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicyContext {
    /// Enterprise-tier policies evaluated.
    pub enterprise_policies: Vec<String>,
    /// Platform-tier policies evaluated.
    pub platform_policies: Vec<String>,
    /// Application-tier policies evaluated.
    pub app_policies: Vec<String>,
    /// Function-level policies evaluated.
    pub function_policies: Vec<String>,
    /// Deviations applied.
    pub deviations: Vec<Deviation>,
    /// Members this version does not know, kept as read.
    pub extra: BTreeMap<String, Value>,
}

/// One lineage entry: the payload that is canonicalized and signed.
///
/// Every member of the [entry schema](https://github.com/kest-dev/kest-rust/blob/main/docs/src/wire-format.md#entry-payload) is here. Entries read from the wire keep members this version
/// does not know in [`Entry::extra`] and sign over them unchanged, and keep array order as
/// written (the Python package writes `taints` in hash order).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub(crate) schema_version: String,
    pub(crate) runtime: Runtime,
    pub(crate) entry_id: Uuid,
    pub(crate) operation: String,
    pub(crate) classification: String,
    pub(crate) trust_score: TrustScore,
    pub(crate) parents: Parents,
    pub(crate) added_taints: Vec<String>,
    pub(crate) removed_taints: Vec<String>,
    pub(crate) taints: Vec<String>,
    pub(crate) labels: BTreeMap<String, Value>,
    pub(crate) policy_context: PolicyContext,
    pub(crate) environment: Map<String, Value>,
    pub(crate) otel_context: Map<String, Value>,
    pub(crate) metadata: Value,
    pub(crate) content_hash: Option<Sha256Digest>,
    pub(crate) input_hash: Option<Sha256Digest>,
    pub(crate) timestamp_ms: u64,
    pub(crate) extra: BTreeMap<String, Value>,
}

// ---- accessors ----

impl Entry {
    /// `schema_version`.
    #[must_use]
    pub fn schema_version(&self) -> &str {
        &self.schema_version
    }
    /// `runtime`.
    #[must_use]
    pub const fn runtime(&self) -> &Runtime {
        &self.runtime
    }
    /// Whether Kest for Rust wrote this entry.
    #[must_use]
    pub fn is_kest_rust(&self) -> bool {
        self.runtime.name == RUNTIME_NAME
    }
    /// `entry_id`, a UUID v7.
    #[must_use]
    pub const fn entry_id(&self) -> Uuid {
        self.entry_id
    }
    /// `operation`.
    #[must_use]
    pub fn operation(&self) -> &str {
        &self.operation
    }
    /// `classification`.
    #[must_use]
    pub fn classification(&self) -> &str {
        &self.classification
    }
    /// `trust_score`.
    #[must_use]
    pub const fn trust_score(&self) -> TrustScore {
        self.trust_score
    }
    /// `parent_ids`.
    #[must_use]
    pub const fn parents(&self) -> &Parents {
        &self.parents
    }
    /// `added_taints`, as written.
    #[must_use]
    pub fn added_taints(&self) -> &[String] {
        &self.added_taints
    }
    /// `removed_taints`, as written.
    #[must_use]
    pub fn removed_taints(&self) -> &[String] {
        &self.removed_taints
    }
    /// `taints`, as written (Kest writes them sorted; the Python package does not).
    #[must_use]
    pub fn taints_as_written(&self) -> &[String] {
        &self.taints
    }
    /// `taints` as a set.
    #[must_use]
    pub fn taints(&self) -> TaintSet {
        self.taints.iter().cloned().collect()
    }
    /// `labels`.
    #[must_use]
    pub const fn labels(&self) -> &BTreeMap<String, Value> {
        &self.labels
    }
    /// A label's value if it is a string.
    #[must_use]
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).and_then(Value::as_str)
    }
    /// `labels.principal`: the workload id of the signer.
    #[must_use]
    pub fn principal(&self) -> Option<&str> {
        self.label(LABEL_PRINCIPAL)
    }
    /// The trust override this entry declares (`labels["kest.trust_override"]`), if any.
    #[must_use]
    pub fn declared_override(&self) -> Option<TrustScore> {
        match self.labels.get(LABEL_TRUST_OVERRIDE)? {
            Value::String(text) => text.parse::<u8>().ok(),
            Value::Number(number) => number.as_u64().and_then(|n| u8::try_from(n).ok()),
            _ => None,
        }
        .and_then(|n| TrustScore::new(n).ok())
    }
    /// `policy_context`.
    #[must_use]
    pub const fn policy_context(&self) -> &PolicyContext {
        &self.policy_context
    }
    /// `environment`.
    #[must_use]
    pub const fn environment(&self) -> &Map<String, Value> {
        &self.environment
    }
    /// `otel_context`.
    #[must_use]
    pub const fn otel_context(&self) -> &Map<String, Value> {
        &self.otel_context
    }
    /// `metadata`.
    #[must_use]
    pub const fn metadata(&self) -> &Value {
        &self.metadata
    }
    /// `content_hash`: SHA-256 of the operation's output, when it serialized.
    #[must_use]
    pub const fn content_hash(&self) -> Option<Sha256Digest> {
        self.content_hash
    }
    /// `input_hash`: SHA-256 of the operation's inputs, when they serialized.
    #[must_use]
    pub const fn input_hash(&self) -> Option<Sha256Digest> {
        self.input_hash
    }
    /// `timestamp_ms`: informational; order comes from the hashes.
    #[must_use]
    pub const fn timestamp_ms(&self) -> u64 {
        self.timestamp_ms
    }
    /// Payload members this version does not know, kept as read.
    #[must_use]
    pub const fn extra(&self) -> &BTreeMap<String, Value> {
        &self.extra
    }
}

impl Entry {
    /// What a held entry's payload reads as should its JWS, which parsed when the entry
    /// was made or read, ever fail to parse again: nothing but its id, no parents, trust
    /// 0 and the taint `kest.unreadable`, so that nothing takes it for trusted.
    pub(crate) fn unreadable(entry_id: Uuid) -> Self {
        Self {
            schema_version: SCHEMA_VERSION.to_owned(),
            runtime: Runtime::default(),
            entry_id,
            operation: String::new(),
            classification: String::new(),
            trust_score: TrustScore::MIN,
            parents: Parents::Root,
            added_taints: Vec::new(),
            removed_taints: Vec::new(),
            taints: vec!["kest.unreadable".to_owned()],
            labels: BTreeMap::new(),
            policy_context: PolicyContext::default(),
            environment: Map::new(),
            otel_context: Map::new(),
            metadata: Value::Null,
            content_hash: None,
            input_hash: None,
            timestamp_ms: 0,
            extra: BTreeMap::new(),
        }
    }
}

// ---- canonical form ----

impl Entry {
    /// The RFC 8785 canonical bytes: what is signed.
    ///
    /// Takes the fast path (plain `serde_json`, whose output the fast-path rules prove
    /// canonical) when every label key is ASCII, every free-form value qualifies, and no
    /// unknown members are present; otherwise `serde_jcs`.
    ///
    /// # Errors
    /// [`EntryFault::Schema`] when a free-form value holds an integer outside ±(2^53−1).
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, EntryFault> {
        let result = if self.fast_path_applies() {
            kest_canon::compact_bytes(self)
        } else {
            self.check_number_domain()?;
            kest_canon::jcs_bytes(self)
        };
        result.map_err(|error| EntryFault::Schema {
            field: "payload".into(),
            reason: error.to_string(),
        })
    }

    /// Checks that every free-form number is within ±(2^53−1), so the entry canonicalizes.
    pub(crate) fn validate_numbers(&self) -> Result<(), EntryFault> {
        if self.fast_path_applies() {
            Ok(())
        } else {
            self.check_number_domain()
        }
    }

    fn fast_path_applies(&self) -> bool {
        let free_form_ok = |map: &Map<String, Value>| {
            kest_canon::keys_are_canonical(map.keys().map(String::as_str))
                && map.values().all(kest_canon::is_canonical_as_is)
        };
        self.extra.is_empty()
            && self.runtime.extra.is_empty()
            && self.policy_context.extra.is_empty()
            && self
                .policy_context
                .deviations
                .iter()
                .all(|d| d.extra.is_empty())
            && self.labels.keys().all(|key| key.is_ascii())
            && self.labels.values().all(kest_canon::is_canonical_as_is)
            && free_form_ok(&self.environment)
            && free_form_ok(&self.otel_context)
            && kest_canon::is_canonical_as_is(&self.metadata)
    }

    fn check_number_domain(&self) -> Result<(), EntryFault> {
        let canon = kest_canon::Canonicalizer::new();
        let free_form = [
            ("labels", self.labels.values().collect::<Vec<_>>()),
            ("environment", self.environment.values().collect()),
            ("otel_context", self.otel_context.values().collect()),
            ("metadata", vec![&self.metadata]),
            ("extra", self.extra.values().collect()),
        ];
        for (field, values) in free_form {
            for value in values {
                canon.validate(value).map_err(|error| EntryFault::Schema {
                    field: field.into(),
                    reason: error.to_string(),
                })?;
            }
        }
        Ok(())
    }
}

/// Writes the members in sorted key order, so that `serde_json` alone produces canonical
/// bytes on the fast path. Unknown members are interleaved by `serde_jcs`, which sorts.
impl Serialize for Entry {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(18 + self.extra.len()))?;
        map.serialize_entry("added_taints", &self.added_taints)?;
        map.serialize_entry("classification", &self.classification)?;
        map.serialize_entry("content_hash", &HashText(self.content_hash))?;
        let mut id_buffer = Uuid::encode_buffer();
        let entry_id: &str = self.entry_id.hyphenated().encode_lower(&mut id_buffer);
        map.serialize_entry("entry_id", entry_id)?;
        map.serialize_entry("environment", &self.environment)?;
        map.serialize_entry("input_hash", &HashText(self.input_hash))?;
        map.serialize_entry("labels", &self.labels)?;
        map.serialize_entry("metadata", &self.metadata)?;
        map.serialize_entry("operation", &self.operation)?;
        map.serialize_entry("otel_context", &self.otel_context)?;
        map.serialize_entry("parent_ids", &ParentsText(&self.parents))?;
        map.serialize_entry("policy_context", &self.policy_context)?;
        map.serialize_entry("removed_taints", &self.removed_taints)?;
        map.serialize_entry("runtime", &self.runtime)?;
        map.serialize_entry("schema_version", &self.schema_version)?;
        map.serialize_entry("taints", &self.taints)?;
        map.serialize_entry("timestamp_ms", &self.timestamp_ms)?;
        map.serialize_entry("trust_score", &self.trust_score)?;
        for (key, value) in &self.extra {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

struct HashText(Option<Sha256Digest>);

impl Serialize for HashText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Some(hash) => serializer.serialize_str(&hash.to_hex()),
            None => serializer.serialize_str(""),
        }
    }
}

struct ParentsText<'a>(&'a Parents);

impl Serialize for ParentsText<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Parents::Root => ["0"].serialize(serializer),
            Parents::Hashes(hashes) => {
                serializer.collect_seq(hashes.iter().map(|hash| HashText(Some(*hash))))
            }
        }
    }
}

impl Serialize for Runtime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2 + self.extra.len()))?;
        map.serialize_entry("name", &self.name)?;
        map.serialize_entry("version", &self.version)?;
        for (key, value) in &self.extra {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl Serialize for PolicyContext {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(5 + self.extra.len()))?;
        map.serialize_entry("app_policies", &self.app_policies)?;
        map.serialize_entry("deviations", &self.deviations)?;
        map.serialize_entry("enterprise_policies", &self.enterprise_policies)?;
        map.serialize_entry("function_policies", &self.function_policies)?;
        map.serialize_entry("platform_policies", &self.platform_policies)?;
        for (key, value) in &self.extra {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl Serialize for Deviation {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(4 + self.extra.len()))?;
        map.serialize_entry("approver", &self.approver)?;
        map.serialize_entry("policy", &self.policy)?;
        map.serialize_entry("reason", &self.reason)?;
        map.serialize_entry("tier", &self.tier)?;
        for (key, value) in &self.extra {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}
