//! Integration tests of the `kest` command line, as one test binary: each module was a test
//! target of its own, and one binary links the dependencies once instead of once per file.

mod attack_corpus;
mod cli;
mod docs_drift;
mod html_view;
mod input_robustness;
mod live_python;
mod mcp;
mod mixed_live;
mod policy;
mod whoami;
mod zero_trust;
