//! The quickstart: sign a three-step lineage chain, verify it offline, then tamper with it
//! three ways and watch the verifier catch each one.
//!
//! It runs on embedded defaults: an in-memory Ed25519 key, no network, no services. The
//! code is `kest_examples::quickstart`.
//!
//! ```text
//! cargo run --example quickstart
//! ```

fn main() -> Result<(), Box<dyn std::error::Error>> {
    kest_examples::quickstart(&mut std::io::stdout().lock())
}
