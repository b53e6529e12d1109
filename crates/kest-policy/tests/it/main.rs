//! Integration tests of the policy engines and tiers, as one test binary: each module was a
//! test target of its own, and one binary links the dependencies once instead of once per file.

mod agreement;
mod cache;
#[cfg(all(
    feature = "cedar",
    feature = "rego",
    feature = "opa",
    feature = "cedar-agent",
    feature = "avp"
))]
mod conformance;
mod context;
mod input_subsets;
#[cfg(all(feature = "cedar", feature = "cedar-agent"))]
mod live_cedar_agent;
mod models;
#[cfg(all(
    feature = "cedar",
    feature = "rego",
    feature = "opa",
    feature = "cedar-agent",
    feature = "avp"
))]
mod support;
mod tiers;
