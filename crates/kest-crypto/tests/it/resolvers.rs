//! Key resolvers answer only for the principals and keys they were given.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use kest_crypto::{
    Algorithm, CryptoError, Jwks, JwksKeyResolver, KeyQuery, KeyResolver, ResolverChain,
    SigningKey, StaticKeyResolver,
};

fn query<'a>(principal: &'a str, kid: Option<&'a str>) -> KeyQuery<'a> {
    KeyQuery::new(principal, kid, Algorithm::EdDSA)
}

#[test]
fn static_resolver_rotation_by_thumbprint() {
    let old = SigningKey::generate_ed25519().unwrap();
    let new = SigningKey::generate_ed25519().unwrap();
    let resolver = StaticKeyResolver::new()
        .with_key("w", old.verifying_key().clone())
        .with_key("w", new.verifying_key().clone());
    // Two keys and no naming kid: ambiguous, never a guess.
    assert!(matches!(
        resolver.resolve(&query("w", Some("w"))),
        Err(CryptoError::AmbiguousKey { count: 2, .. })
    ));
    let thumb = new.verifying_key().thumbprint();
    assert_eq!(
        &resolver.resolve(&query("w", Some(&thumb))).unwrap(),
        new.verifying_key()
    );
    let stranger = SigningKey::generate_ed25519()
        .unwrap()
        .verifying_key()
        .thumbprint();
    assert!(matches!(
        resolver.resolve(&query("w", Some(&stranger))),
        Err(CryptoError::UnknownKeyId { .. })
    ));
    assert!(matches!(
        resolver.resolve(&query("x", None)),
        Err(CryptoError::UnknownPrincipal { .. })
    ));
}

#[test]
fn static_resolver_prefers_the_header_algorithm() {
    let ed = SigningKey::generate_ed25519().unwrap();
    let ec = SigningKey::generate_p256().unwrap();
    let resolver = StaticKeyResolver::new()
        .with_key("w", ed.verifying_key().clone())
        .with_key("w", ec.verifying_key().clone());
    let es = KeyQuery {
        alg: Algorithm::ES256,
        ..query("w", None)
    };
    assert_eq!(&resolver.resolve(&es).unwrap(), ec.verifying_key());
    assert_eq!(
        &resolver.resolve(&query("w", None)).unwrap(),
        ed.verifying_key()
    );
}

#[test]
fn jwks_resolver_binds_keys_to_principals_by_kid() {
    let a = SigningKey::generate_ed25519().unwrap();
    let b = SigningKey::generate_ed25519().unwrap();
    let mut ja = a.verifying_key().to_jwk();
    ja.kid = Some("spiffe://t/a".into());
    let mut jb = b.verifying_key().to_jwk();
    jb.kid = Some("spiffe://t/b".into());
    let rsa = kest_crypto::Jwk {
        kty: "RSA".into(),
        ..Default::default()
    };
    let jwks = Jwks {
        keys: vec![ja, jb, rsa],
    };
    let text = serde_json::to_string(&jwks).unwrap();
    let resolver = JwksKeyResolver::from_json(&text).unwrap();
    assert_eq!(
        &resolver
            .resolve(&query("spiffe://t/a", Some("spiffe://t/a")))
            .unwrap(),
        a.verifying_key()
    );
    assert_eq!(
        &resolver.resolve(&query("spiffe://t/b", None)).unwrap(),
        b.verifying_key()
    );
    // B's key must not sign for A, even when the header names B's key.
    let b_thumb = b.verifying_key().thumbprint();
    assert!(
        resolver
            .resolve(&query("spiffe://t/a", Some(&b_thumb)))
            .is_err()
    );
    assert!(resolver.resolve(&query("spiffe://t/c", None)).is_err());
    assert!(JwksKeyResolver::from_json(r#"{"keys":[]}"#).is_err());
    assert!(JwksKeyResolver::from_json("{").is_err());
}

#[test]
fn jwks_resolver_bound_to_one_principal() {
    let k1 = SigningKey::generate_p256().unwrap();
    let k2 = SigningKey::generate_p256().unwrap();
    let jwks = Jwks {
        keys: vec![k1.verifying_key().to_jwk(), k2.verifying_key().to_jwk()],
    };
    let resolver = JwksKeyResolver::from_jwks(&jwks)
        .unwrap()
        .bound_to("arn:aws:iam::1:role/r");
    let t2 = k2.verifying_key().thumbprint();
    let q = KeyQuery::new("arn:aws:iam::1:role/r", Some(&t2), Algorithm::ES256);
    assert_eq!(&resolver.resolve(&q).unwrap(), k2.verifying_key());
    let other = KeyQuery {
        principal: "arn:aws:iam::1:role/other",
        ..q
    };
    assert!(matches!(
        resolver.resolve(&other),
        Err(CryptoError::UnknownPrincipal { .. })
    ));
}

#[test]
fn chain_does_not_widen_a_known_principal() {
    let a = SigningKey::generate_ed25519().unwrap();
    let b = SigningKey::generate_ed25519().unwrap();
    let first = StaticKeyResolver::new().with_key("w", a.verifying_key().clone());
    let second = StaticKeyResolver::new()
        .with_key("w", b.verifying_key().clone())
        .with_key("v", b.verifying_key().clone());
    let chain = ResolverChain::new().then(first).then(second);
    assert_eq!(
        &chain.resolve(&query("v", None)).unwrap(),
        b.verifying_key()
    );
    let b_thumb = b.verifying_key().thumbprint();
    assert!(matches!(
        chain.resolve(&query("w", Some(&b_thumb))),
        Err(CryptoError::UnknownKeyId { .. })
    ));
    assert!(matches!(
        chain.resolve(&query("z", None)),
        Err(CryptoError::UnknownPrincipal { .. })
    ));
}
