//! Keys and signatures built to lie: degenerate Ed25519 points, P-256 points off the curve,
//! malleable ES256 signatures, keys published for encryption, and rotation.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use kest_crypto::{
    Algorithm, CompactJws, CryptoError, Jwk, JwksKeyResolver, KeyDefect, KeyQuery, KeyResolver,
    KeySigner, SigningKey, StaticKeyResolver, VerifyingKey, sign_compact,
};

/// The eight Ed25519 points of small order, canonically encoded (y little-endian, sign
/// bit of x on top), as libsodium's blocklist lists them.
const SMALL_ORDER: [&str; 8] = [
    // the identity (order 1) and y = -1 (order 2)
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    // y = 0: the two points of order 4
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000080",
    // the four points of order 8
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
];

fn bytes(hex: &str) -> Vec<u8> {
    hex::decode(hex).unwrap()
}

fn okp_jwk(key: &[u8]) -> Jwk {
    Jwk {
        kty: "OKP".into(),
        crv: Some("Ed25519".into()),
        x: Some(kest_canon::b64url_encode(key)),
        ..Jwk::default()
    }
}

/// DER SubjectPublicKeyInfo for a raw Ed25519 key (RFC 8410).
fn ed25519_spki(key: &[u8]) -> Vec<u8> {
    let mut der = bytes("302a300506032b6570032100");
    der.extend_from_slice(key);
    der
}

/// Why the loader must refuse these: with the identity as public key, the constant
/// signature R = identity, S = 0 satisfies the verification equation for every message.
/// `ring` itself accepts it; only refusing the key at load time stops the forgery.
#[test]
fn a_small_order_key_would_verify_a_constant_signature() {
    let identity = bytes(SMALL_ORDER[0]);
    let mut constant = identity.clone();
    constant.extend_from_slice(&[0; 32]);
    for message in [&b"pay alice"[..], b"pay mallory", b""] {
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &identity)
            .verify(message, &constant)
            .unwrap();
    }
    assert_eq!(
        VerifyingKey::from_ed25519_bytes(&identity).unwrap_err(),
        CryptoError::DegenerateKey {
            alg: Algorithm::EdDSA,
            defect: KeyDefect::SmallOrder
        }
    );
}

#[test]
fn small_order_keys_are_refused_from_every_source() {
    for hex in SMALL_ORDER {
        let key = bytes(hex);
        let expected = CryptoError::DegenerateKey {
            alg: Algorithm::EdDSA,
            defect: KeyDefect::SmallOrder,
        };
        assert_eq!(
            VerifyingKey::from_ed25519_bytes(&key).unwrap_err(),
            expected,
            "raw {hex}"
        );
        assert_eq!(
            VerifyingKey::from_jwk(&okp_jwk(&key)).unwrap_err(),
            expected,
            "JWK {hex}"
        );
        assert_eq!(
            StaticKeyResolver::new()
                .insert_jwk("w", &okp_jwk(&key))
                .unwrap_err(),
            expected,
            "static resolver {hex}"
        );
        assert_eq!(
            VerifyingKey::from_spki_der(&ed25519_spki(&key)).unwrap_err(),
            expected,
            "SPKI {hex}"
        );
        // A JWK Set carrying one such key beside a good one is refused whole.
        let good = SigningKey::from_ed25519_seed(&[1; 32]).unwrap();
        let mut good_jwk = good.verifying_key().to_jwk();
        good_jwk.kid = Some("w".into());
        let mut bad = okp_jwk(&key);
        bad.kid = Some("w".into());
        let set = serde_json::json!({ "keys": [good_jwk, bad] }).to_string();
        assert_eq!(
            JwksKeyResolver::from_json(&set).unwrap_err(),
            expected,
            "JWKS {hex}"
        );
    }
}

#[test]
fn non_canonical_encodings_are_refused() {
    // y = 3 is on the curve; p + 3 spells the same y without reducing it.
    let mut unreduced = vec![0xf0];
    unreduced.extend_from_slice(&[0xff; 30]);
    unreduced.push(0x7f);
    // x = 0 with its sign bit set: "minus zero", a second spelling of the identity.
    let mut negative_zero = bytes(SMALL_ORDER[0]);
    negative_zero[31] |= 0x80;
    // y = p + 1: the identity again, unreduced.
    let mut unreduced_identity = vec![0xee];
    unreduced_identity.extend_from_slice(&[0xff; 30]);
    unreduced_identity.push(0x7f);
    for key in [unreduced, negative_zero, unreduced_identity] {
        assert_eq!(
            VerifyingKey::from_ed25519_bytes(&key).unwrap_err(),
            CryptoError::DegenerateKey {
                alg: Algorithm::EdDSA,
                defect: KeyDefect::NonCanonical
            },
            "{}",
            hex::encode(&key)
        );
    }
}

#[test]
fn points_off_the_curve_and_mixed_order_points_are_refused() {
    // y = 2 has no x on the curve.
    let mut off = vec![0; 32];
    off[0] = 2;
    assert_eq!(
        VerifyingKey::from_ed25519_bytes(&off).unwrap_err(),
        CryptoError::DegenerateKey {
            alg: Algorithm::EdDSA,
            defect: KeyDefect::NotOnCurve
        }
    );
    // A real key plus a point of order 2 (negating y flips the order-2 component in).
    let honest = SigningKey::from_ed25519_seed(&[7; 32]).unwrap();
    let mut mixed = honest.verifying_key().as_bytes().to_vec();
    let y = curve25519_y_negated(&mixed);
    mixed[..32].copy_from_slice(&y);
    assert_eq!(
        VerifyingKey::from_ed25519_bytes(&mixed).unwrap_err(),
        CryptoError::DegenerateKey {
            alg: Algorithm::EdDSA,
            defect: KeyDefect::TorsionComponent
        }
    );
    // Keys made from seeds always pass.
    for seed in 0..64_u8 {
        let key = SigningKey::from_ed25519_seed(&[seed; 32]).unwrap();
        VerifyingKey::from_ed25519_bytes(key.verifying_key().as_bytes()).unwrap();
    }
}

/// (x, y) ↦ (−x, −y) adds the point of order 2 (0, −1). In the encoding: y ↦ p − y, and
/// the sign bit of x flips (x ≠ 0).
fn curve25519_y_negated(encoded: &[u8]) -> [u8; 32] {
    let sign = encoded[31] & 0x80;
    let mut y = [0_u8; 32];
    y.copy_from_slice(encoded);
    y[31] &= 0x7f;
    // p − y, little-endian, p = 2^255 − 19.
    let mut p = [0xff_u8; 32];
    p[0] = 0xed;
    p[31] = 0x7f;
    let mut out = [0_u8; 32];
    let mut borrow = 0_i16;
    for i in 0..32 {
        let mut digit = i16::from(p[i]) - i16::from(y[i]) - borrow;
        borrow = 0;
        if digit < 0 {
            digit += 256;
            borrow = 1;
        }
        out[i] = u8::try_from(digit).unwrap();
    }
    out[31] |= sign ^ 0x80;
    out
}

#[test]
fn p256_points_off_the_curve_are_refused() {
    let off = Jwk {
        kty: "EC".into(),
        crv: Some("P-256".into()),
        x: Some(kest_canon::b64url_encode(&[1; 32])),
        y: Some(kest_canon::b64url_encode(&[1; 32])),
        ..Jwk::default()
    };
    let expected = CryptoError::DegenerateKey {
        alg: Algorithm::ES256,
        defect: KeyDefect::NotOnCurve,
    };
    assert_eq!(VerifyingKey::from_jwk(&off).unwrap_err(), expected);
    let mut point = vec![0x04];
    point.extend_from_slice(&[1; 64]);
    assert_eq!(
        VerifyingKey::from_p256_uncompressed(&point).unwrap_err(),
        expected
    );
    // SPKI: id-ecPublicKey on prime256v1, then the bogus point.
    let mut spki = bytes("3059301306072a8648ce3d020106082a8648ce3d030107034200");
    spki.extend_from_slice(&point);
    assert_eq!(VerifyingKey::from_spki_der(&spki).unwrap_err(), expected);
    // A real key loads the same way.
    let real = SigningKey::generate_p256().unwrap();
    VerifyingKey::from_jwk(&real.verifying_key().to_jwk()).unwrap();
}

/// The P-256 group order n, big-endian.
const N: &str = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";

/// `(r, n − s)`: the other signature that verifies for the same message.
fn flip_s(signature: &[u8]) -> Vec<u8> {
    let n = bytes(N);
    let s = &signature[32..];
    let mut out = signature[..32].to_vec();
    let mut flipped = [0_u8; 32];
    let mut borrow = 0_i16;
    for i in (0..32).rev() {
        let mut digit = i16::from(n[i]) - i16::from(s[i]) - borrow;
        borrow = 0;
        if digit < 0 {
            digit += 256;
            borrow = 1;
        }
        flipped[i] = u8::try_from(digit).unwrap();
    }
    out.extend_from_slice(&flipped);
    out
}

fn is_high(signature: &[u8]) -> bool {
    // s > n / 2, comparing big-endian bytes with ⌊n/2⌋.
    let half = bytes("7fffffff800000007fffffffffffffffde737d56d38bcf4279dce5617e3192a8");
    signature[32..] > half[..]
}

/// RFC 7515 A.3 happens to carry a high-S signature: it is refused, and its low-S twin
/// (what a third party could compute without the key) is the one spelling accepted.
#[test]
fn high_s_signatures_are_refused_and_low_s_accepted() {
    let jwk = Jwk::from_json(
        r#"{"kty":"EC","crv":"P-256",
            "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#,
    )
    .unwrap();
    let key = VerifyingKey::from_jwk(&jwk).unwrap();
    let jws = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
    let parsed = CompactJws::parse(jws).unwrap();
    assert!(is_high(parsed.signature()));
    assert_eq!(parsed.verify_with(&key).unwrap_err(), CryptoError::HighS);
    let low = flip_s(parsed.signature());
    assert!(!is_high(&low));
    key.verify(parsed.signing_input().as_bytes(), &low).unwrap();
    // And the other way round: flipping an accepted signature is refused.
    assert_eq!(
        key.verify(parsed.signing_input().as_bytes(), &flip_s(&low))
            .unwrap_err(),
        CryptoError::HighS
    );
}

#[test]
fn our_es256_signatures_are_always_low_s() {
    let key = SigningKey::generate_p256().unwrap();
    let public = key.verifying_key().clone();
    let signer = KeySigner::new(key, "w");
    for index in 0..200 {
        let jws = sign_compact(&signer, format!("{{\"n\":{index}}}").as_bytes()).unwrap();
        let parsed = CompactJws::parse(&jws).unwrap();
        assert!(!is_high(parsed.signature()), "signature {index} is high-S");
        parsed.verify_with(&public).unwrap();
    }
}

/// What KMS returns is DER with either S; the conversion normalizes it.
#[test]
fn der_signatures_come_out_low_s() {
    let key = SigningKey::generate_p256().unwrap();
    let message = b"kms";
    let low = key.sign(message).unwrap();
    let high = flip_s(&low);
    assert!(is_high(&high));
    for fixed in [&low, &high] {
        let der = der_of(fixed);
        let converted = kest_crypto::es256_signature_from_der(&der).unwrap();
        assert_eq!(converted.as_slice(), low.as_slice());
        key.verifying_key().verify(message, &converted).unwrap();
    }
    // r = 0 is not a signature.
    let mut zero_r = low.clone();
    zero_r[..32].fill(0);
    assert_eq!(
        kest_crypto::es256_signature_from_der(&der_of(&zero_r)).unwrap_err(),
        CryptoError::BadSignature
    );
}

/// DER `SEQUENCE { INTEGER r, INTEGER s }` for a fixed signature.
fn der_of(fixed: &[u8]) -> Vec<u8> {
    fn integer(value: &[u8]) -> Vec<u8> {
        let mut trimmed: Vec<u8> = value.iter().copied().skip_while(|b| *b == 0).collect();
        if trimmed.is_empty() || trimmed[0] & 0x80 != 0 {
            trimmed.insert(0, 0);
        }
        let mut out = vec![0x02, u8::try_from(trimmed.len()).unwrap()];
        out.extend(trimmed);
        out
    }
    let mut body = integer(&fixed[..32]);
    body.extend(integer(&fixed[32..]));
    let mut der = vec![0x30, u8::try_from(body.len()).unwrap()];
    der.extend(body);
    der
}

#[test]
fn keys_published_for_another_use_are_not_signing_keys() {
    let key = SigningKey::from_ed25519_seed(&[4; 32]).unwrap();
    let mut base = key.verifying_key().to_jwk();
    base.kid = Some("spiffe://x/w".into());
    let mut enc = base.clone();
    enc.key_use = Some("enc".into());
    let mut ops = base.clone();
    ops.key_ops = Some(vec!["encrypt".into()]);
    let mut alg = base.clone();
    alg.alg = Some("ECDH-ES".into());
    let mut wrong_sig_alg = base.clone();
    wrong_sig_alg.alg = Some("ES256".into());
    for jwk in [&enc, &ops, &alg, &wrong_sig_alg] {
        assert!(
            matches!(
                StaticKeyResolver::new().insert_jwk("spiffe://x/w", jwk),
                Err(CryptoError::NotASigningKey { .. })
            ),
            "{jwk:?}"
        );
        // In a set they are skipped; a set of nothing else has no signing key.
        let set = serde_json::json!({ "keys": [jwk] }).to_string();
        let error = JwksKeyResolver::from_json(&set).unwrap_err();
        assert!(error.to_string().contains("not a signing key"), "{error}");
    }
    // Declared for signing, it is fine.
    let mut sig = base.clone();
    sig.key_use = Some("sig".into());
    sig.key_ops = Some(vec!["verify".into()]);
    sig.alg = Some("EdDSA".into());
    let set = serde_json::json!({ "keys": [enc, sig] }).to_string();
    let resolver = JwksKeyResolver::from_json(&set).unwrap();
    let query = KeyQuery::new("spiffe://x/w", Some("spiffe://x/w"), Algorithm::EdDSA);
    assert_eq!(&resolver.resolve(&query).unwrap(), key.verifying_key());
}

/// A principal mid-rotation holds two keys; headers name the principal, not the key.
/// Either key's signatures verify, a stranger's do not.
#[test]
fn a_rotating_principal_verifies_with_either_key() {
    let old = SigningKey::from_ed25519_seed(&[1; 32]).unwrap();
    let new = SigningKey::from_ed25519_seed(&[2; 32]).unwrap();
    let stranger = SigningKey::from_ed25519_seed(&[3; 32]).unwrap();
    let resolver = StaticKeyResolver::new()
        .with_key("w", old.verifying_key().clone())
        .with_key("w", new.verifying_key().clone());
    let query = KeyQuery::new("w", Some("w"), Algorithm::EdDSA);
    let candidates = resolver.candidates(&query).unwrap();
    assert_eq!(candidates.len(), 2);
    assert!(matches!(
        resolver.resolve(&query),
        Err(CryptoError::AmbiguousKey { count: 2, .. })
    ));
    for (key, trusted) in [(old, true), (new, true), (stranger, false)] {
        let jws = sign_compact(&KeySigner::new(key, "w"), b"{}").unwrap();
        let parsed = CompactJws::parse(&jws).unwrap();
        let verified = candidates.iter().any(|key| parsed.verify_with(key).is_ok());
        assert_eq!(verified, trusted);
    }
    // A kid that names one key by thumbprint picks exactly that one.
    let thumbprint = candidates[1].thumbprint();
    let named = KeyQuery::new("w", Some(&thumbprint), Algorithm::EdDSA);
    assert_eq!(
        resolver.candidates(&named).unwrap(),
        vec![candidates[1].clone()]
    );
    // Nine keys of one algorithm is more than a verifier will try.
    let mut crowded = StaticKeyResolver::new();
    for seed in 10..19_u8 {
        crowded.insert(
            "w",
            SigningKey::from_ed25519_seed(&[seed; 32])
                .unwrap()
                .verifying_key()
                .clone(),
        );
    }
    assert!(matches!(
        crowded.candidates(&query),
        Err(CryptoError::AmbiguousKey { count: 9, .. })
    ));
}

#[test]
fn headers_must_be_shallow_objects() {
    let payload = kest_canon::b64url_encode(b"{}");
    let signature = kest_canon::b64url_encode(&[0; 64]);
    let array = kest_canon::b64url_encode(br#"["EdDSA","w","JWS"]"#);
    let error = CompactJws::parse(&format!("{array}.{payload}.{signature}")).unwrap_err();
    assert!(
        matches!(&error, CryptoError::Header { reason } if reason.contains("not a JSON object")),
        "{error}"
    );
    let deep = format!(
        r#"{{"alg":"EdDSA","ignored":{}1{}}}"#,
        "[".repeat(200_000),
        "]".repeat(200_000)
    );
    let deep = kest_canon::b64url_encode(deep.as_bytes());
    let error = CompactJws::parse(&format!("{deep}.{payload}.{signature}")).unwrap_err();
    assert!(
        matches!(&error, CryptoError::Header { reason } if reason.contains("nesting deeper than 128")),
        "{error}"
    );
    // 128 levels inside an ignored member are still fine.
    let ok = format!(
        r#"{{"alg":"EdDSA","ignored":{}1{}}}"#,
        "[".repeat(127),
        "]".repeat(127)
    );
    let ok = kest_canon::b64url_encode(ok.as_bytes());
    CompactJws::parse(&format!("{ok}.{payload}.{signature}")).unwrap();
}

/// Principals and key ids quoted in errors cannot carry control characters.
#[test]
fn errors_escape_what_they_quote() {
    let resolver = StaticKeyResolver::new();
    let query = KeyQuery::new("w\n\u{1b}[32mverified", None, Algorithm::EdDSA);
    let error = resolver.resolve(&query).unwrap_err().to_string();
    assert!(!error.chars().any(char::is_control), "{error:?}");
    assert!(error.contains(r"w\n\u{1b}[32mverified"), "{error}");
    let long = "x".repeat(10_000);
    let error = resolver
        .resolve(&KeyQuery::new(&long, None, Algorithm::EdDSA))
        .unwrap_err()
        .to_string();
    assert!(error.len() < 200, "{}", error.len());
}
