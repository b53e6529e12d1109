//! Capturing what code logs through `tracing`, as text, for tests that check what is
//! (or is not) logged.
#![allow(
    clippy::unwrap_used,
    reason = "test support: a poisoned lock fails the test that called it"
)]

use std::sync::{Arc, Mutex};

/// Runs `f` with a subscriber that records every event, and returns `f`'s value with the
/// events, one line each: the level, then ` name=value` for each field (values in their
/// `Debug` form, so strings are quoted).
pub fn logged<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
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
