//! Integration tests of identity providers, as one test binary: each module was a test target
//! of its own, and one binary links the dependencies once instead of once per file.

mod aws_live;
mod common;
mod detect;
mod oidc;
mod oidc_live;
mod providers;
mod spiffe;
