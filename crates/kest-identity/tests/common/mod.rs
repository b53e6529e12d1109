//! Helpers shared by the identity tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use kest_canon::b64url_encode;
use kest_crypto::SigningKey;
use serde_json::Value;

/// A compact JWT with `claims`, signed ES256 by `key` under `kid` (or with `alg` forced,
/// for tokens that must be refused).
pub(crate) fn jwt(key: &SigningKey, kid: &str, claims: &Value) -> String {
    jwt_with_alg(key, "ES256", kid, claims)
}

pub(crate) fn jwt_with_alg(key: &SigningKey, alg: &str, kid: &str, claims: &Value) -> String {
    let header = serde_json::json!({"alg": alg, "kid": kid, "typ": "JWT"});
    let input = format!(
        "{}.{}",
        b64url_encode(header.to_string().as_bytes()),
        b64url_encode(claims.to_string().as_bytes())
    );
    let signature = key.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", b64url_encode(&signature))
}

pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Warnings and errors logged while `f` runs, as text.
pub(crate) fn logged<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let subscriber = Capture {
        events: Arc::clone(&events),
    };
    let value = tracing::subscriber::with_default(subscriber, f);
    let events = events.lock().unwrap().clone();
    (value, events)
}

struct Capture {
    events: Arc<Mutex<Vec<String>>>,
}

struct Text(String);

impl tracing::field::Visit for Text {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={value:?}", field.name()));
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut text = Text(format!("{}", event.metadata().level()));
        event.record(&mut text);
        self.events.lock().unwrap().push(text.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}
