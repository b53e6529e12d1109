//! Fuzz target: where `kest mcp proxy` sends a line from the client. Whatever a lenient
//! reader (serde_json, last member wins) would take for `tools/call`, `resources/read` or
//! `prompts/get`, alone or inside a batch, must go through the hook or be refused, never
//! be forwarded as read; and what the proxy guards, the lenient reader reads as the same
//! method.
#![no_main]

use kest_mcp::{FuzzRoute, Kind, fuzz_route};
use serde_json::Value;

/// The guarded kind a lenient reader sees in one message, if any.
fn lenient_kind(message: &Value) -> Option<Kind> {
    message.get("method").and_then(Value::as_str).and_then(Kind::of_method)
}

libfuzzer_sys::fuzz_target!(|line: &str| {
    let route = fuzz_route(line);
    let Ok(lenient) = serde_json::from_str::<Value>(line) else {
        // What the proxy cannot read, it never forwards.
        assert_eq!(route, FuzzRoute::Refused, "{line:?}");
        return;
    };
    let hides_guarded = match &lenient {
        Value::Array(items) => items.iter().any(|item| lenient_kind(item).is_some()),
        other => lenient_kind(other).is_some(),
    };
    if hides_guarded {
        assert_ne!(route, FuzzRoute::Forwarded, "a guarded call would pass unguarded: {line:?}");
    }
    if let FuzzRoute::Guarded(kind) = route {
        assert_eq!(lenient_kind(&lenient), Some(kind), "{line:?}");
    }
});
