//! Integration tests of baggage, the codec, flows and the middleware, as one test binary: each
//! module was a test target of its own, and one binary links the dependencies once instead of
//! once per file.

mod authority;
mod baggage;
mod flow_and_codec;
mod ingress;
mod ingress_config;
mod middleware;
mod middleware_live;
