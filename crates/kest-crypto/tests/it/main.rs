//! Integration tests of keys, JWS and signature verification, as one test binary: each module
//! was a test target of its own, and one binary links the dependencies once instead of once per
//! file.

mod boundaries;
mod hostile_keys;
mod jws;
mod keys;
mod resolvers;
mod robustness;
mod wycheproof;
