//! The limits the parsers promise, tested at their edges: the JWS size limit, the `x5c`
//! chain length, the width of DER signature integers, and the public key a PKCS#8 v2
//! file carries beside its seed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use kest_crypto::{
    Algorithm, CompactJws, CryptoError, JwsHeader, KeySigner, MAX_JWS_BYTES, SigningKey,
    sign_compact,
};

/// A JWS of exactly `total` bytes, signed by `signer` over a payload of `x`s.
fn jws_of_length(signer: &KeySigner, total: usize) -> String {
    let empty = sign_compact(signer, b"").unwrap();
    // Each 3 payload bytes add 4 characters; unpadded base64 of n bytes has
    // ceil(4n/3) characters, which reaches every length except 1 modulo 4.
    let room = total - empty.len();
    assert_ne!(room % 4, 1, "no payload encodes to {room} characters");
    let payload = vec![b'x'; room * 3 / 4];
    let jws = sign_compact(signer, &payload).unwrap();
    assert_eq!(jws.len(), total);
    jws
}

#[test]
fn the_size_limit_admits_its_own_length_and_nothing_longer() {
    let key = SigningKey::from_ed25519_seed(&[1; 32]).unwrap();
    let public = key.verifying_key().clone();
    let signer = KeySigner::new(key, "w");
    // A real signed JWS of exactly the limit parses and verifies.
    let fits = jws_of_length(&signer, MAX_JWS_BYTES);
    CompactJws::parse(&fits)
        .unwrap()
        .verify_with(&public)
        .unwrap();
    for over in [MAX_JWS_BYTES + 1, MAX_JWS_BYTES + 2, MAX_JWS_BYTES + 1024] {
        let text = "a".repeat(over);
        match CompactJws::parse(&text).unwrap_err() {
            CryptoError::Header { reason } => {
                assert!(reason.contains(&format!("{over} bytes")), "{reason}");
                assert!(reason.contains(&MAX_JWS_BYTES.to_string()), "{reason}");
            }
            other => panic!("{over} bytes: {other:?}"),
        }
    }
    // Exactly at the limit the size check passes and the next check speaks.
    let text = "a".repeat(MAX_JWS_BYTES);
    assert_eq!(
        CompactJws::parse(&text).unwrap_err(),
        CryptoError::Segments { found: 1 }
    );
}

#[test]
fn an_x5c_chain_holds_one_to_eight_certificates() {
    let header = |count: usize| {
        let chain: Vec<String> = (0..count).map(|i| format!("MII{i}")).collect();
        serde_json::json!({"alg": "ES256", "kid": "w", "x5c": chain}).to_string()
    };
    for count in [1, 2, 8] {
        let parsed = JwsHeader::from_json(header(count).as_bytes()).unwrap();
        assert_eq!(parsed.alg, Algorithm::ES256);
        assert_eq!(parsed.x5c.unwrap().len(), count);
    }
    for count in [0, 9, 64] {
        match JwsHeader::from_json(header(count).as_bytes()).unwrap_err() {
            CryptoError::Header { reason } => {
                assert!(reason.contains("1 to 8 certificates"), "{count}: {reason}");
            }
            other => panic!("{count}: {other:?}"),
        }
    }
    // Absent is fine; not a list of strings is not.
    let plain = JwsHeader::from_json(br#"{"alg":"EdDSA","kid":"w","typ":"JWS"}"#).unwrap();
    assert_eq!(plain.x5c, None);
    assert_eq!(plain.kid.as_deref(), Some("w"));
    assert_eq!(plain.typ.as_deref(), Some("JWS"));
    assert!(JwsHeader::from_json(br#"{"alg":"ES256","x5c":"MII"}"#).is_err());
}

/// DER `SEQUENCE { INTEGER r, INTEGER s }` from the integers' content bytes as given.
fn der(r: &[u8], s: &[u8]) -> Vec<u8> {
    let mut body = vec![0x02, r.len() as u8];
    body.extend_from_slice(r);
    body.extend([0x02, s.len() as u8]);
    body.extend_from_slice(s);
    let mut out = vec![0x30, body.len() as u8];
    out.extend(body);
    out
}

#[test]
fn der_integers_are_right_aligned_and_never_wider_than_32_bytes() {
    // Short values are padded on the left, each in its own half.
    let fixed = kest_crypto::es256_signature_from_der(&der(&[0x01], &[0x02, 0x03])).unwrap();
    let mut expected = [0_u8; 64];
    expected[31] = 0x01;
    expected[62] = 0x02;
    expected[63] = 0x03;
    assert_eq!(fixed, expected);
    // A full 32-byte value (high bit set, so DER prefixes a zero byte) fills its half.
    let mut r = vec![0x00, 0x80];
    r.extend([0x11; 31]);
    let fixed = kest_crypto::es256_signature_from_der(&der(&r, &[0x05])).unwrap();
    assert_eq!(fixed[0], 0x80);
    assert_eq!(&fixed[1..32], &[0x11; 31]);
    assert_eq!(fixed[63], 0x05);
    // 33 significant bytes in r, or in s, is not a P-256 signature.
    let wide = vec![0x01; 33];
    for encoded in [der(&wide, &[0x01]), der(&[0x01], &wide)] {
        assert_eq!(
            kest_crypto::es256_signature_from_der(&encoded).unwrap_err(),
            CryptoError::SignatureLength {
                alg: Algorithm::ES256,
                expected: 64,
                found: encoded.len(),
            }
        );
    }
}

#[test]
fn a_pkcs8_v2_file_must_carry_the_public_key_of_its_seed() {
    let rng = ring::rand::SystemRandom::new();
    let document = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let v2 = document.as_ref().to_vec();
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8(&v2).unwrap();
    let public = ring::signature::KeyPair::public_key(&pair)
        .as_ref()
        .to_vec();
    // The embedded public key is the document's last 32 bytes.
    assert_eq!(&v2[v2.len() - 32..], public.as_slice());
    let key = SigningKey::from_pkcs8_der(&v2).unwrap();
    assert_eq!(key.verifying_key().as_bytes(), public.as_slice());

    let mut mismatched = v2.clone();
    let last = mismatched.len() - 1;
    mismatched[last] ^= 0x01;
    match SigningKey::from_pkcs8_der(&mismatched).unwrap_err() {
        CryptoError::InvalidKey { format, reason } => {
            assert_eq!(format, "PKCS#8");
            assert!(reason.contains("does not match the seed"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

/// A parsed JWS exposes each part exactly as it was signed.
#[test]
fn a_parsed_jws_exposes_each_part() {
    let key = SigningKey::from_ed25519_seed(&[2; 32]).unwrap();
    let public = key.verifying_key().clone();
    let signer = KeySigner::new(key, "spiffe://x/w");
    let payload = br#"{"n":1}"#;
    let jws = sign_compact(&signer, payload).unwrap();
    let parsed = CompactJws::parse(&jws).unwrap();
    assert_eq!(parsed.as_str(), jws);
    let (input, signature_b64) = jws.rsplit_once('.').unwrap();
    assert_eq!(parsed.signing_input(), input);
    assert_eq!(
        parsed.signing_input(),
        kest_crypto::signing_input(&kest_crypto::Signer::header_b64(&signer), payload)
    );
    assert_eq!(parsed.signature().len(), 64);
    assert_eq!(kest_canon::b64url_encode(parsed.signature()), signature_b64);
    assert_eq!(parsed.header().alg, Algorithm::EdDSA);
    assert_eq!(parsed.header().kid.as_deref(), Some("spiffe://x/w"));
    assert_eq!(parsed.header().typ.as_deref(), Some("JWS"));
    assert_eq!(parsed.payload(), payload);
    parsed.verify_with(&public).unwrap();
    assert_eq!(parsed.into_payload(), payload.to_vec());
}

/// A signer that implements only what the trait requires gets the standard header from
/// its algorithm and `kid`; `KeySigner` precomputes the same one.
#[test]
fn signers_write_the_header_of_their_algorithm_and_kid() {
    struct Minimal(KeySigner);
    impl kest_crypto::Signer for Minimal {
        fn algorithm(&self) -> Algorithm {
            self.0.algorithm()
        }
        fn key_id(&self) -> &str {
            "spiffe://x/minimal"
        }
        fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>, CryptoError> {
            self.0.sign(signing_input)
        }
    }
    use kest_crypto::Signer as _;
    let key = SigningKey::from_ed25519_seed(&[4; 32]).unwrap();
    let public = key.verifying_key().clone();
    let signer = KeySigner::new(key, "spiffe://x/key-signer");
    assert_eq!(signer.key_id(), "spiffe://x/key-signer");
    assert_eq!(signer.algorithm(), Algorithm::EdDSA);
    for (kid, header_b64) in [
        ("spiffe://x/key-signer", signer.header_b64()),
        (
            "spiffe://x/minimal",
            Minimal(KeySigner::new(
                SigningKey::from_ed25519_seed(&[4; 32]).unwrap(),
                "ignored",
            ))
            .header_b64(),
        ),
    ] {
        let expected = kest_crypto::encode_header(Algorithm::EdDSA, kid);
        assert_eq!(
            kest_canon::b64url_decode_unpadded(&header_b64, "header").unwrap(),
            expected.as_bytes()
        );
    }
    let minimal = Minimal(signer);
    let jws = sign_compact(&minimal, b"{}").unwrap();
    let parsed = CompactJws::parse(&jws).unwrap();
    assert_eq!(parsed.header().kid.as_deref(), Some("spiffe://x/minimal"));
    parsed.verify_with(&public).unwrap();
}

/// A P-256 JWK with one coordinate of the wrong width is refused for that reason, whichever
/// coordinate it is; a key's `Debug` names its algorithm and thumbprint, never more.
#[test]
fn p256_jwk_coordinates_are_each_32_bytes() {
    let key = SigningKey::generate_p256().unwrap();
    let good = key.verifying_key().to_jwk();
    assert_eq!(
        kest_crypto::VerifyingKey::from_jwk(&good).unwrap(),
        *key.verifying_key()
    );
    let short = kest_canon::b64url_encode(&[7; 31]);
    for (x, y, found) in [
        (Some(short.clone()), good.y.clone(), "31 and 32"),
        (good.x.clone(), Some(short.clone()), "32 and 31"),
        (Some(short.clone()), Some(short), "31 and 31"),
    ] {
        let mut jwk = good.clone();
        jwk.x = x;
        jwk.y = y;
        match kest_crypto::VerifyingKey::from_jwk(&jwk).unwrap_err() {
            CryptoError::InvalidJwk { reason } => {
                assert!(
                    reason.contains(&format!("32 bytes, found {found}")),
                    "{reason}"
                );
            }
            other => panic!("{found}: {other:?}"),
        }
    }
    let shown = format!("{:?}", key.verifying_key());
    assert!(shown.starts_with("VerifyingKey"), "{shown}");
    assert!(shown.contains("ES256"), "{shown}");
    assert!(shown.contains(&key.verifying_key().thumbprint()), "{shown}");
}
