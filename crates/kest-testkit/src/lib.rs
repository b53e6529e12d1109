//! Test support shared by the Kest crates. Not published.
//!
//! ```
//! let key: serde_json::Value = kest_testkit::load_json("python/key.json");
//! assert_eq!(key["principal"], "spiffe://kest.test/interop-workload");
//! ```
//!
//! The vectors live in `vectors/` at the workspace root. They are byte-for-byte copies of
//! the project's shared vectors (see `vectors/README.md`), committed so that a fresh clone
//! can run every test.
#![allow(
    clippy::panic,
    clippy::expect_used,
    reason = "test support: failing loudly is the point"
)]

use std::path::PathBuf;

use serde::de::DeserializeOwned;

/// The `vectors/` directory at the workspace root.
#[must_use]
pub fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../vectors")
}

/// The workspace root.
#[must_use]
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Reads a vector file as text. Panics with the path when it is missing.
#[must_use]
pub fn read_vector(relative: &str) -> String {
    let path = vectors_dir().join(relative);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read vector {}: {error}", path.display()))
}

/// Loads and deserializes a JSON vector file.
#[must_use]
pub fn load_json<T: DeserializeOwned>(relative: &str) -> T {
    let text = read_vector(relative);
    serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("cannot parse vector {relative}: {error}"))
}

/// Whether live tests were asked for (`KEST_LIVE=1`).
///
/// Live tests call this first. When it is false they return early and say so on stderr;
/// when it is true, every service they need must be reachable, and a missing one fails
/// the test instead of skipping it.
#[must_use]
pub fn live() -> bool {
    let on = std::env::var("KEST_LIVE").is_ok_and(|value| value == "1");
    if !on {
        #[allow(
            clippy::print_stderr,
            reason = "tells the developer why a live test did nothing"
        )]
        {
            eprintln!("live test not run: set KEST_LIVE=1 (cargo xtask ci does)");
        }
    }
    on
}

/// An environment variable a live test needs. Panics, failing the test, when it is unset.
#[must_use]
pub fn live_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("KEST_LIVE=1 but {name} is not set: run the live tier through `cargo xtask ci`")
    })
}

#[cfg(feature = "workload-api")]
pub mod workload_api;

#[cfg(feature = "oidc-provider")]
pub mod oidc_provider;

#[cfg(feature = "logs")]
pub mod logs;

#[cfg(feature = "otlp")]
pub mod otlp;
