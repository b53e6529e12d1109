//! Shared helpers for the passport tests.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use kest_crypto::{KeySigner, SigningKey, StaticKeyResolver};
use serde_json::Value;

pub const PRINCIPAL: &str = "spiffe://kest.test/interop-workload";

pub fn key_vectors() -> Value {
    kest_testkit::load_json("python/key.json")
}

pub fn python_key() -> SigningKey {
    SigningKey::from_ed25519_seed_hex(key_vectors()["seed_hex"].as_str().unwrap()).unwrap()
}

pub fn attacker_key() -> SigningKey {
    SigningKey::from_ed25519_seed_hex(key_vectors()["attacker_seed_hex"].as_str().unwrap()).unwrap()
}

pub fn python_signer() -> KeySigner {
    KeySigner::new(python_key(), PRINCIPAL)
}

/// Trusts the Python vectors' key for their principal, and nothing else.
pub fn python_resolver() -> StaticKeyResolver {
    StaticKeyResolver::new().with_key(PRINCIPAL, python_key().verifying_key().clone())
}

pub fn fresh_signer(principal: &str) -> (KeySigner, StaticKeyResolver) {
    let key = SigningKey::generate_ed25519().unwrap();
    let resolver = StaticKeyResolver::new().with_key(principal, key.verifying_key().clone());
    (KeySigner::new(key, principal), resolver)
}
