//! The multi-hop example: a gateway and three services on 127.0.0.1, each protected by
//! Kest and trusting only what it has verified, with bearer tokens from a local issuer and
//! the passport travelling in `baggage`. Run it with `cargo run --example multi_hop`; its
//! code is in [`hops`]. (The quickstart is its own package, `examples/quickstart`, so that
//! it builds only what it uses.)

#[cfg(feature = "multi-hop")]
pub mod hops;

#[cfg(feature = "mcp")]
pub mod mcp;

#[cfg(feature = "chaos")]
pub mod drive;
