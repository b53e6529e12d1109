//! Integration tests of the hook, verified ingress, the macros and remote engines, as one test
//! binary: each module was a test target of its own, and one binary links the dependencies once
//! instead of once per file.

mod hook;
mod ingress;
mod macros;
mod remote_engine;
