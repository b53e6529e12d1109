//! What an [`Ingress`] is configured to do is what it does: the mode it reports, the
//! cache it fills, the strictness it audits with, and what its `Debug` shows.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use std::sync::Arc;

use kest_passport::{Limits, Strictness, VerifiedEntries};
use kest_propagation::env::ENV_INSECURE_UNVERIFIED_LINEAGE;
use kest_propagation::{Baggage, InboundPassport, Ingress, PropagationError, keys};
use serde_json::Value;

use crate::baggage::python_keys;

/// The Python package's ten-hop chain, inline: its trust rises from 21 to 95 at hop 5
/// without a declared override, as every Python chain does.
fn python_chain_10() -> InboundPassport {
    let vector: Value = kest_testkit::load_json("python/chain_10.json");
    let mut baggage = Baggage::new();
    baggage
        .set(keys::PASSPORT, vector["serialized"].as_str().unwrap())
        .unwrap();
    InboundPassport::from_baggage(&baggage)
}

#[test]
fn verifying_and_unverified_modes_report_themselves() {
    let verifying = Ingress::verify(python_keys());
    assert!(verifying.is_verified());
    assert!(verifying.keys().is_some());
    assert!(verifying.verified_entries().is_some());

    let faith = Ingress::insecure_unverified(Some("true")).unwrap();
    assert!(!faith.is_verified());
    assert!(faith.keys().is_none());
    assert!(faith.verified_entries().is_none());
}

#[test]
fn the_environment_must_say_true_to_skip_verification() {
    // This suite never sets the variable; a run that did would not test the refusal.
    assert!(std::env::var_os(ENV_INSECURE_UNVERIFIED_LINEAGE).is_none());
    assert!(matches!(
        Ingress::insecure_unverified_from_env(),
        Err(PropagationError::InsecureIngress)
    ));
}

#[tokio::test]
async fn the_cache_given_is_the_cache_filled() {
    let cache = Arc::new(VerifiedEntries::default());
    let ingress = Ingress::verify(python_keys()).cache(Arc::clone(&cache));
    assert!(Arc::ptr_eq(ingress.verified_entries().unwrap(), &cache));
    assert!(cache.is_empty());
    let admitted = ingress
        .admit(&python_chain_10(), None, &Limits::default())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(admitted.len(), 10);
    assert_eq!(cache.len(), 10, "every verified entry is remembered");

    // Not verifying, there is no cache to set.
    let faith = Ingress::insecure_unverified(Some("true"))
        .unwrap()
        .cache(Arc::clone(&cache));
    assert!(faith.verified_entries().is_none());
}

#[tokio::test]
async fn the_strictness_set_is_the_one_audited_with() {
    let inbound = python_chain_10();
    // By default, entries from another runtime are audited leniently: admitted.
    let auto = Ingress::verify(python_keys());
    assert_eq!(
        auto.admit(&inbound, None, &Limits::default())
            .await
            .unwrap()
            .unwrap()
            .len(),
        10
    );
    // Strict: the undeclared raise is a failure, and the passport is refused.
    let strict = Ingress::verify(python_keys()).strictness(Strictness::Strict);
    let error = strict
        .admit(&inbound, None, &Limits::default())
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("trust"),
        "the refusal names the raise: {error}"
    );
    // Setting a strictness without verification changes nothing: still unverified.
    let faith = Ingress::insecure_unverified(Some("true"))
        .unwrap()
        .strictness(Strictness::Strict);
    assert!(!faith.is_verified());
    assert_eq!(
        faith
            .admit(&inbound, None, &Limits::default())
            .await
            .unwrap()
            .unwrap()
            .len(),
        10
    );
}

#[test]
fn debug_shows_the_mode_and_not_the_keys() {
    let verifying = format!(
        "{:?}",
        Ingress::verify(python_keys()).strictness(Strictness::Lenient)
    );
    assert!(verifying.starts_with("Ingress"), "{verifying}");
    assert!(verifying.contains("verify: true"), "{verifying}");
    assert!(verifying.contains("Lenient"), "{verifying}");
    assert!(
        !verifying.contains("interop-workload"),
        "no keys: {verifying}"
    );
    let faith = format!("{:?}", Ingress::insecure_unverified(Some("true")).unwrap());
    assert!(faith.starts_with("Ingress { verify: false"), "{faith}");
    assert!(faith.contains("user_input"), "the boundary shows: {faith}");
}
