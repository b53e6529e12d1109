//! Integration tests of entries, passports and the verifier, as one test binary: each module
//! was a test target of its own, and one binary links the dependencies once instead of once per
//! file.

mod common;
mod passport;
mod python_interop;
mod robustness;
mod schema_faults;
mod verifier;
mod zero_trust;
