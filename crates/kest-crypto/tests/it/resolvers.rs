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
    Algorithm, CryptoError, Jwk, Jwks, JwksKeyResolver, KeyQuery, KeyResolver, KeySources,
    PrincipalBinding, SigningKey, StaticKeyResolver,
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
        .bound_to("arn:aws:iam::1:role/r")
        .unwrap();
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

fn jwk_for(key: &SigningKey, kid: &str) -> Jwk {
    let mut jwk = key.verifying_key().to_jwk();
    jwk.kid = Some(kid.into());
    jwk
}

const GATEWAY: &str = "spiffe://example.org/gateway";
const HOP1: &str = "spiffe://example.org/hop1";
const HOP3: &str = "spiffe://example.org/hop3";

/// Finding 1: the gateway's published set lists an extra key under hop1's (and hop3's)
/// workload id. Bound to the gateway, the set never speaks for them.
#[test]
fn a_peer_set_never_speaks_for_another_principal() {
    let gateway = SigningKey::generate_ed25519().unwrap();
    let attacker = SigningKey::generate_ed25519().unwrap();
    let set = Jwks {
        keys: vec![
            jwk_for(&gateway, GATEWAY),
            jwk_for(&attacker, HOP1),
            jwk_for(&attacker, HOP3),
        ],
    };
    // Read unbound, as before, the set speaks for hop1: the hole.
    let unbound = JwksKeyResolver::from_jwks(&set).unwrap();
    assert_eq!(
        &unbound.resolve(&query(HOP1, None)).unwrap(),
        attacker.verifying_key()
    );

    let bound = JwksKeyResolver::from_jwks(&set)
        .unwrap()
        .bound(GATEWAY.parse().unwrap())
        .unwrap();
    assert_eq!(bound.outside_binding(), [HOP1, HOP3]);
    for principal in [HOP1, HOP3] {
        assert!(matches!(
            bound.resolve(&query(principal, Some(principal))),
            Err(CryptoError::UnknownPrincipal { .. })
        ));
    }
    // The attacker's key does not even count as a gateway key.
    let thumb = attacker.verifying_key().thumbprint();
    assert!(bound.resolve(&query(GATEWAY, Some(&thumb))).is_err());
    assert_eq!(
        &bound.resolve(&query(GATEWAY, Some(GATEWAY))).unwrap(),
        gateway.verifying_key()
    );
}

#[test]
fn a_prefix_bound_set_speaks_for_the_ids_under_it_by_kid() {
    let a = SigningKey::generate_ed25519().unwrap();
    let b = SigningKey::generate_ed25519().unwrap();
    let c = SigningKey::generate_ed25519().unwrap();
    let set = Jwks {
        keys: vec![
            jwk_for(&a, "spiffe://example.org/team/a"),
            jwk_for(&b, "spiffe://example.org/teamX/b"),
            jwk_for(&c, "key-without-a-principal"),
        ],
    };
    let bound = JwksKeyResolver::from_jwks(&set)
        .unwrap()
        .bound("spiffe://example.org/team/*".parse().unwrap())
        .unwrap();
    assert_eq!(
        bound.outside_binding(),
        ["spiffe://example.org/teamX/b", "key-without-a-principal"]
    );
    assert_eq!(
        &bound
            .resolve(&query("spiffe://example.org/team/a", None))
            .unwrap(),
        a.verifying_key()
    );
    assert!(
        bound
            .resolve(&query("spiffe://example.org/teamX/b", None))
            .is_err()
    );
    // Every key outside: the set is refused outright.
    let error = JwksKeyResolver::from_jwks(&set)
        .unwrap()
        .bound("spiffe://other.org/*".parse().unwrap())
        .unwrap_err();
    assert!(matches!(error, CryptoError::NoKeyInBinding { ref outside, .. } if outside.len() == 3));
}

#[test]
fn bindings_refuse_what_they_cannot_mean() {
    for text in [
        "",
        "spiffe://example.org/*/x",
        "spiffe://example.org/a*",
        "spiffe://*",
        "https://example.org/*",
        "spiffe://example.org/../*",
        "spiffe://example.org/**",
        "line\nbreak",
        "tab\there",
        "a*b",
    ] {
        assert!(
            matches!(
                text.parse::<PrincipalBinding>(),
                Err(CryptoError::InvalidBinding { .. })
            ),
            "{text:?} parsed"
        );
    }
    let long = "x".repeat(4096);
    assert!(long.parse::<PrincipalBinding>().is_err());
    let domain: PrincipalBinding = "spiffe://example.org/*".parse().unwrap();
    assert!(domain.permits("spiffe://example.org/anything/below"));
    assert!(!domain.permits("spiffe://example.org/"));
    assert!(!domain.permits("spiffe://example.org.evil/x"));
}

/// Finding 2: one source cannot lock another out, whatever it says of the principal.
#[test]
fn no_source_shadows_or_locks_out_another() {
    let real = SigningKey::generate_ed25519().unwrap();
    let wrong = SigningKey::generate_ed25519().unwrap();
    let hop1_own = StaticKeyResolver::new().with_key(HOP1, real.verifying_key().clone());
    // A first source that knows hop1 with a wrong key, then one with nine keys.
    let liar = StaticKeyResolver::new().with_key(HOP1, wrong.verifying_key().clone());
    let mut crowded = StaticKeyResolver::new();
    for _ in 0..9 {
        crowded.insert(
            HOP1,
            SigningKey::generate_ed25519()
                .unwrap()
                .verifying_key()
                .clone(),
        );
    }
    assert!(matches!(
        crowded.candidates(&query(HOP1, None)),
        Err(CryptoError::AmbiguousKey { count: 9, .. })
    ));
    let sources = KeySources::new().with(liar).with(crowded).with(hop1_own);
    let candidates = sources.candidates(&query(HOP1, None)).unwrap();
    assert!(candidates.contains(real.verifying_key()));
    assert!(candidates.contains(wrong.verifying_key()));
    // A kid only one source knows is found there.
    let thumb = real.verifying_key().thumbprint();
    assert_eq!(
        sources.candidates(&query(HOP1, Some(&thumb))).unwrap(),
        vec![real.verifying_key().clone()]
    );
    assert!(matches!(
        sources.resolve(&query("z", None)),
        Err(CryptoError::UnknownPrincipal { .. })
    ));
    // When no source has the key, the most telling error is kept.
    let stranger = SigningKey::generate_ed25519()
        .unwrap()
        .verifying_key()
        .thumbprint();
    assert!(matches!(
        sources.resolve(&query(HOP1, Some(&stranger))),
        Err(CryptoError::UnknownKeyId { .. })
    ));
}

/// Finding 7: an Ed25519 key from one source and a P-256 key from another, for one
/// principal migrating to KMS: each answers entries of its own algorithm.
#[test]
fn keys_are_chosen_by_algorithm_across_sources() {
    let ed = SigningKey::generate_ed25519().unwrap();
    let ec = SigningKey::generate_p256().unwrap();
    let sources = KeySources::new()
        .with(StaticKeyResolver::new().with_key("w", ed.verifying_key().clone()))
        .with(
            JwksKeyResolver::from_jwks(&Jwks {
                keys: vec![jwk_for(&ec, "w")],
            })
            .unwrap(),
        );
    let es = KeyQuery::new("w", Some("w"), Algorithm::ES256);
    assert_eq!(&sources.resolve(&es).unwrap(), ec.verifying_key());
    assert_eq!(
        &sources.resolve(&query("w", Some("w"))).unwrap(),
        ed.verifying_key()
    );
    // Only an Ed25519 key known: handed back so that verification names the mismatch.
    let only_ed =
        KeySources::new().with(StaticKeyResolver::new().with_key("w", ed.verifying_key().clone()));
    assert_eq!(&only_ed.resolve(&es).unwrap(), ed.verifying_key());
}

/// Bound to one principal, a set keeps keys named as keys (a plain key id, a thumbprint,
/// none) as that principal's, and drops only those whose `kid` names someone else.
#[test]
fn a_set_bound_to_one_principal_keeps_its_own_key_names() {
    let named = SigningKey::generate_ed25519().unwrap();
    let by_thumbprint = SigningKey::generate_ed25519().unwrap();
    let foreign = SigningKey::generate_ed25519().unwrap();
    let thumb = by_thumbprint.verifying_key().thumbprint();
    let set = Jwks {
        keys: vec![
            jwk_for(&named, "key-2026"),
            jwk_for(&by_thumbprint, &thumb),
            jwk_for(&foreign, "urn:example:other"),
        ],
    };
    let bound = JwksKeyResolver::from_jwks(&set)
        .unwrap()
        .bound(GATEWAY.parse().unwrap())
        .unwrap();
    assert_eq!(bound.outside_binding(), ["urn:example:other"]);
    assert_eq!(
        &bound.resolve(&query(GATEWAY, Some("key-2026"))).unwrap(),
        named.verifying_key()
    );
    assert_eq!(
        &bound.resolve(&query(GATEWAY, Some(&thumb))).unwrap(),
        by_thumbprint.verifying_key()
    );
    assert_eq!(bound.binding().unwrap().to_string(), GATEWAY);
}

#[test]
fn bindings_show_what_they_bind_escaped() {
    let prefix: PrincipalBinding = "spiffe://example.org/team/*".parse().unwrap();
    assert_eq!(prefix.to_string(), "spiffe://example.org/team/*");
    assert_eq!(
        format!("{prefix:?}"),
        "PrincipalBinding(spiffe://example.org/team/*)"
    );
    // A bidi override is no control character, so it may be bound; it is shown escaped.
    let sneaky: PrincipalBinding = "spiffe://example.org/a\u{202e}b".parse().unwrap();
    assert!(!sneaky.to_string().contains('\u{202e}'), "{sneaky}");
    assert!(sneaky.to_string().contains("202e"), "{sneaky}");
    // The length limit is 2048 bytes, inclusive.
    let longest = format!("spiffe://example.org/{}", "x".repeat(2048 - 21));
    assert_eq!(longest.len(), 2048);
    assert!(longest.parse::<PrincipalBinding>().is_ok());
    assert!(format!("{longest}y").parse::<PrincipalBinding>().is_err());
}

/// A source that knows no one, and says whether its keys changed when refreshed.
struct Refreshing(bool);

impl KeyResolver for Refreshing {
    fn resolve(&self, query: &KeyQuery<'_>) -> Result<kest_crypto::VerifyingKey, CryptoError> {
        Err(CryptoError::UnknownPrincipal {
            principal: query.principal.to_owned(),
        })
    }
    fn refresh(&self) -> kest_crypto::Refresh<'_> {
        Box::pin(std::future::ready(self.0))
    }
}

/// A source that answers every query with the error `error` makes.
struct Says(fn(&str) -> CryptoError);

impl KeyResolver for Says {
    fn resolve(&self, query: &KeyQuery<'_>) -> Result<kest_crypto::VerifyingKey, CryptoError> {
        Err((self.0)(query.principal))
    }
}

fn refreshed(sources: &KeySources) -> bool {
    let mut future = sources.refresh();
    match future
        .as_mut()
        .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    {
        std::task::Poll::Ready(changed) => changed,
        std::task::Poll::Pending => panic!("the sources' refresh did not complete"),
    }
}

/// The union reports the most telling error of its sources, whatever their order, and
/// refreshes every source.
#[test]
fn key_sources_report_the_most_telling_error_and_refresh_all() {
    let known = SigningKey::generate_ed25519().unwrap();
    let knows_w = || StaticKeyResolver::new().with_key("w", known.verifying_key().clone());
    let mut crowded = StaticKeyResolver::new();
    for _ in 0..9 {
        crowded.insert(
            "w",
            SigningKey::generate_ed25519()
                .unwrap()
                .verifying_key()
                .clone(),
        );
    }
    let stranger = SigningKey::generate_ed25519()
        .unwrap()
        .verifying_key()
        .thumbprint();
    let nobody = || StaticKeyResolver::new().with_key("v", known.verifying_key().clone());
    // "Unknown principal" says least: a source that knows `w` wins, in either order.
    for sources in [
        KeySources::new().with(nobody()).with(knows_w()),
        KeySources::new().with(knows_w()).with(nobody()),
    ] {
        assert!(matches!(
            sources.candidates(&query("w", Some(&stranger))),
            Err(CryptoError::UnknownKeyId { .. })
        ));
    }
    // Between two telling errors, the first is kept.
    let sources = KeySources::new().with(knows_w()).with(crowded);
    assert!(matches!(
        sources.candidates(&query("w", Some(&stranger))),
        Err(CryptoError::UnknownKeyId { .. })
    ));
    assert!(matches!(
        sources.candidates(&query("w", None)),
        Ok(keys) if keys == vec![known.verifying_key().clone()]
    ));
    // A later telling error never replaces an earlier one.
    let ambiguous = Says(|principal| CryptoError::AmbiguousKey {
        principal: principal.to_owned(),
        count: 9,
    });
    let sources = KeySources::new().with(knows_w()).with(ambiguous);
    assert!(matches!(
        sources.candidates(&query("w", Some(&stranger))),
        Err(CryptoError::UnknownKeyId { .. })
    ));
    // Refreshing asks every source; any change is reported.
    let sources = KeySources::new()
        .with(Refreshing(false))
        .with(Refreshing(true))
        .with(Refreshing(false));
    assert!(refreshed(&sources));
    assert!(!refreshed(&KeySources::new().with(Refreshing(false))));
    assert_eq!((sources.len(), sources.is_empty()), (3, false));
    assert!(KeySources::new().is_empty());
    assert_eq!(KeySources::new().len(), 0);
    assert_eq!(format!("{sources:?}"), "KeySources { sources: 3 }");
}
