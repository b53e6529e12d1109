//! The SPIFFE provider against a Workload API server that serves SVIDs minted in the test.
//!
//! No SPIRE agent can run here, so `kest_testkit::workload_api` stands in for one: it
//! speaks the FetchX509SVID RPC of the published `workload.proto` over a Unix socket and
//! checks the security header. Everything on the client side is the real `spiffe` crate.
#![cfg(feature = "spiffe")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use std::time::Duration;

use kest_crypto::{CryptoError, KeyQuery, KeyResolver};
use kest_identity::{IdentityError, IdentityProvider, SpiffeIdentity, TrustBundleResolver};
use kest_passport::{EntryBuilder, Passport, Verifier};
use kest_testkit::workload_api::{TestCa, WorkloadApiServer};
use kest_trust::WeakestLink;

const ID: &str = "spiffe://kest.test/payments";

async fn wait_for_kid_change(identity: &SpiffeIdentity, old: &str) -> String {
    for _ in 0..100 {
        let kid = identity.describe().await.unwrap().kid;
        if kid != old {
            return kid;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the rotated SVID never arrived");
}

#[tokio::test]
async fn signs_as_the_svid_and_follows_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("kest.test");
    let first = ca.mint("/payments", -60, 3600);
    let server = WorkloadApiServer::start(dir.path(), ca.response(&first)).await;
    let identity = SpiffeIdentity::connect(&server.endpoint(), Duration::from_secs(10))
        .await
        .unwrap();

    let info = identity.describe().await.unwrap();
    assert_eq!(info.provider, "spiffe");
    assert_eq!(info.workload_id, ID);
    assert_eq!(info.alg, kest_crypto::Algorithm::ES256);
    // The kid is the SVID key's thumbprint, and the header carries the chain.
    let key = kest_crypto::SigningKey::from_pkcs8_der(&first.key).unwrap();
    assert_eq!(info.kid, key.verifying_key().thumbprint());
    assert_eq!(info.jwk, key.verifying_key().to_jwk());
    assert_eq!(info.x5c.as_ref().unwrap().len(), 1);

    let mut passport = Passport::new();
    kest_identity::append(
        &mut passport,
        EntryBuilder::new("charge"),
        &identity,
        &WeakestLink,
    )
    .await
    .unwrap();
    let tip = passport.tip().unwrap();
    assert_eq!(tip.header().kid.as_deref(), Some(info.kid.as_str()));
    assert!(tip.jws().split('.').next().is_some());

    // Rotation: the agent pushes a new SVID; the next entry uses it without a restart.
    let second = ca.mint("/payments", -60, 3600);
    server.rotate(ca.response(&second));
    let new_kid = wait_for_kid_change(&identity, &info.kid).await;
    let second_key = kest_crypto::SigningKey::from_pkcs8_der(&second.key).unwrap();
    assert_eq!(new_kid, second_key.verifying_key().thumbprint());
    kest_identity::append(
        &mut passport,
        EntryBuilder::new("refund"),
        &identity,
        &WeakestLink,
    )
    .await
    .unwrap();
    assert_eq!(
        passport.tip().unwrap().header().kid.as_deref(),
        Some(new_kid.as_str())
    );

    // Both entries verify with nothing but the trust bundle: from the live source, and
    // from the CA certificate alone (an offline auditor).
    let live = identity.trust_bundle_resolver();
    let report = Verifier::new(&live)
        .verify_json(&passport.to_json())
        .unwrap();
    assert_eq!(report.len(), 2);
    let offline = TrustBundleResolver::new()
        .with_bundle("kest.test", vec![ca.der().to_vec()])
        .unwrap();
    assert_eq!(
        Verifier::new(&offline)
            .verify_json(&passport.to_json())
            .unwrap()
            .len(),
        2
    );

    // Another trust domain's CA vouches for nothing here.
    let stranger = TestCa::new("kest.test");
    let wrong = TrustBundleResolver::new()
        .with_bundle("kest.test", vec![stranger.der().to_vec()])
        .unwrap();
    let error = Verifier::new(&wrong)
        .verify_json(&passport.to_json())
        .unwrap_err();
    assert!(error.to_string().contains("not trusted"), "{error}");
}

/// The resolver checks the chain, the SPIFFE id, the kid and the time of signing.
#[tokio::test]
async fn trust_bundle_resolver_refuses_what_it_should() {
    let ca = TestCa::new("kest.test");
    let resolver = TrustBundleResolver::new()
        .with_bundle("kest.test", vec![ca.der().to_vec()])
        .unwrap();
    let svid = ca.mint("/payments", -60, 3600);
    let x5c = vec![base64_std(&svid.leaf)];
    let key = kest_crypto::SigningKey::from_pkcs8_der(&svid.key).unwrap();
    let kid = key.verifying_key().thumbprint();
    let now_ms = u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    let query = |principal: &'static str, kid: Option<&str>, at: Option<u64>| {
        let mut query = KeyQuery::new(principal, None, kest_crypto::Algorithm::ES256);
        query.kid = kid.map(|k| Box::leak(k.to_owned().into_boxed_str()) as &str);
        query.x5c = Some(Box::leak(Box::new(x5c.clone())).as_slice());
        query.signed_at_ms = at;
        query
    };
    // The good case.
    assert_eq!(
        &resolver
            .resolve(&query(ID, Some(&kid), Some(now_ms)))
            .unwrap(),
        key.verifying_key()
    );
    // The chain certifies payments, not billing.
    let other = resolver
        .resolve(&query(
            "spiffe://kest.test/billing",
            Some(&kid),
            Some(now_ms),
        ))
        .unwrap_err();
    assert!(
        matches!(other, CryptoError::UntrustedChain { .. }),
        "{other}"
    );
    // A kid that is not the certified key.
    let wrong_kid = resolver
        .resolve(&query(ID, Some("not-the-thumbprint"), Some(now_ms)))
        .unwrap_err();
    assert!(
        matches!(wrong_kid, CryptoError::UnknownKeyId { .. }),
        "{wrong_kid}"
    );
    // Signed (by its own account) two hours from now, after the certificate expires.
    let late = resolver
        .resolve(&query(ID, Some(&kid), Some(now_ms + 7_200_000)))
        .unwrap_err();
    assert!(matches!(late, CryptoError::UntrustedChain { .. }), "{late}");
    // Signed before the certificate was issued.
    let early = resolver
        .resolve(&query(ID, Some(&kid), Some(now_ms - 3_600_000)))
        .unwrap_err();
    assert!(
        matches!(early, CryptoError::UntrustedChain { .. }),
        "{early}"
    );
    // No chain in the header, no key.
    let mut bare = KeyQuery::new(ID, Some(&kid), kest_crypto::Algorithm::ES256);
    bare.signed_at_ms = Some(now_ms);
    assert!(matches!(
        resolver.resolve(&bare).unwrap_err(),
        CryptoError::UnknownPrincipal { .. }
    ));
    // A trust domain without a bundle.
    let foreign_ca = TestCa::new("elsewhere.test");
    let foreign = foreign_ca.mint("/payments", -60, 3600);
    let mut q = KeyQuery::new(
        "spiffe://elsewhere.test/payments",
        None,
        kest_crypto::Algorithm::ES256,
    );
    let chain = vec![base64_std(&foreign.leaf)];
    q.x5c = Some(&chain);
    let error = resolver.resolve(&q).unwrap_err();
    assert!(error.to_string().contains("no trust bundle"), "{error}");
    // A CA of kest.test that mints an id in another trust domain is not believed for it.
    let resolver_both = resolver
        .clone()
        .with_bundle("elsewhere.test", vec![foreign_ca.der().to_vec()])
        .unwrap();
    let cross = ca.mint_for("spiffe://elsewhere.test/payments", -60, 3600);
    let chain = vec![base64_std(&cross.leaf)];
    q.x5c = Some(&chain);
    assert!(matches!(
        resolver_both.resolve(&q).unwrap_err(),
        CryptoError::UntrustedChain { .. }
    ));
}

/// An expired SVID signs nothing; a socket that does not answer is an error at
/// construction, not a fallback.
#[tokio::test]
async fn fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("kest.test");
    let good = ca.mint("/payments", -60, 3600);
    let server = WorkloadApiServer::start(dir.path(), ca.response(&good)).await;
    let identity = SpiffeIdentity::connect(&server.endpoint(), Duration::from_secs(10))
        .await
        .unwrap();
    let old = identity.describe().await.unwrap().kid;
    let expired = ca.mint("/payments", -7200, -3600);
    server.rotate(ca.response(&expired));
    let mut outcome = None;
    for _ in 0..100 {
        match identity.describe().await {
            Ok(info) if info.kid == old => tokio::time::sleep(Duration::from_millis(50)).await,
            other => {
                outcome = Some(other);
                break;
            }
        }
    }
    let error = outcome
        .expect("the expired SVID never arrived")
        .unwrap_err();
    assert!(matches!(error, IdentityError::Service { .. }), "{error}");
    let mut passport = Passport::new();
    assert!(
        kest_identity::append(
            &mut passport,
            EntryBuilder::new("x"),
            &identity,
            &WeakestLink
        )
        .await
        .is_err()
    );
    assert!(passport.is_empty());

    let missing = dir.path().join("nobody.sock");
    let started = std::time::Instant::now();
    let error = SpiffeIdentity::connect(
        &format!("unix://{}", missing.display()),
        Duration::from_millis(500),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            error,
            IdentityError::Service {
                service: "SPIFFE Workload API",
                ..
            }
        ),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let malformed = SpiffeIdentity::connect("not a uri", Duration::from_millis(500))
        .await
        .unwrap_err();
    assert!(
        matches!(malformed, IdentityError::Service { .. }),
        "{malformed}"
    );
}

fn base64_std(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
