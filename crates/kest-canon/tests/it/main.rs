//! Integration tests of RFC 8785 canonicalization, as one test binary: each module was a test
//! target of its own, and one binary links the dependencies once instead of once per file.

mod fast_path;
mod python_jcs;
mod rfc8785_vectors;
