//! The in-process providers: local, static, mock, lazy; key rotation between describe and
//! sign; key files.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use kest_crypto::{Algorithm, SigningKey, StaticKeyResolver};
use kest_identity::{
    IdentityError, IdentityInfo, IdentityProvider, LazyIdentity, LocalEd25519, MockIdentity,
    StaticIdentity,
};
use kest_passport::{EntryBuilder, Passport, Verifier};
use kest_trust::WeakestLink;

const SEED_HEX: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";

/// Signs one entry as `identity` and verifies it with the key it reports.
async fn sign_and_verify(identity: &dyn IdentityProvider) -> IdentityInfo {
    let info = identity.describe().await.unwrap();
    let mut passport = Passport::new();
    kest_identity::append(
        &mut passport,
        EntryBuilder::new("op"),
        identity,
        &WeakestLink,
    )
    .await
    .unwrap();
    let resolver = StaticKeyResolver::new().with_key(
        &info.workload_id,
        kest_crypto::VerifyingKey::from_jwk(&info.jwk).unwrap(),
    );
    let report = Verifier::new(&resolver)
        .verify_json(&passport.to_json())
        .unwrap();
    assert_eq!(report.len(), 1);
    let tip = passport.tip().unwrap();
    assert_eq!(tip.entry().principal(), Some(info.workload_id.as_str()));
    assert_eq!(tip.header().kid.as_deref(), Some(info.kid.as_str()));
    assert_eq!(tip.header().alg, info.alg);
    info
}

#[test]
fn local_keys_are_fresh_and_warn_once() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (identity, events) =
        kest_testkit::logs::logged(|| LocalEd25519::new("local:test").unwrap());
    let warnings: Vec<_> = events.iter().filter(|e| e.starts_with("WARN")).collect();
    assert_eq!(warnings.len(), 1, "{events:?}");
    assert!(warnings[0].contains("this process only"), "{warnings:?}");
    // Describing and signing log nothing more.
    let (info, again) = kest_testkit::logs::logged(|| runtime.block_on(sign_and_verify(&identity)));
    assert!(again.is_empty(), "{again:?}");
    assert_eq!(info.provider, "local");
    assert_eq!(info.alg, Algorithm::EdDSA);
    let other = LocalEd25519::new("local:test").unwrap();
    assert_ne!(runtime.block_on(other.describe()).unwrap().jwk, info.jwk);
}

#[tokio::test]
async fn mock_identities_are_deterministic() {
    let a = MockIdentity::new("spiffe://kest.test/a").unwrap();
    let b = MockIdentity::new("spiffe://kest.test/a").unwrap();
    let c = MockIdentity::new("spiffe://kest.test/c").unwrap();
    assert_eq!(
        a.describe().await.unwrap().jwk,
        b.describe().await.unwrap().jwk
    );
    assert_ne!(
        a.describe().await.unwrap().jwk,
        c.describe().await.unwrap().jwk
    );
    let info = sign_and_verify(&a).await;
    assert_eq!(info.provider, "mock");
    assert_eq!(info.kid, "spiffe://kest.test/a");
}

#[tokio::test]
async fn static_identity_loads_every_key_form() {
    let dir = tempfile::tempdir().unwrap();
    let ed = SigningKey::from_ed25519_seed_hex(SEED_HEX).unwrap();
    let ec = SigningKey::generate_p256().unwrap();
    let ec_jwk = ec.to_private_jwk().to_json().to_string();
    let ed_pem = std::fs::read_to_string(format!(
        "{}/../kest-crypto/tests/fixtures/ed25519.pem",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let ed_pem_key = SigningKey::from_pkcs8_pem(&ed_pem).unwrap();
    let jwk_file = dir.path().join("key.jwk");
    std::fs::write(&jwk_file, &*ec_jwk).unwrap();
    let pem_file = dir.path().join("key.pem");
    std::fs::write(&pem_file, &ed_pem).unwrap();

    let cases: Vec<(&str, String, &SigningKey)> = vec![
        ("KEST_SIGNING_KEY_SEED", SEED_HEX.into(), &ed),
        ("KEST_SIGNING_KEY_JWK", ec_jwk.clone(), &ec),
        ("KEST_SIGNING_KEY_PEM", ed_pem.clone(), &ed_pem_key),
        ("KEST_SIGNING_KEY_FILE", jwk_file.display().to_string(), &ec),
        (
            "KEST_SIGNING_KEY_FILE",
            pem_file.display().to_string(),
            &ed_pem_key,
        ),
    ];
    for (name, value, key) in cases {
        let identity = StaticIdentity::from_vars(|var| match var {
            "KEST_WORKLOAD_ID" => Some("spiffe://kest.test/static".into()),
            _ if var == name => Some(value.clone()),
            _ => None,
        })
        .unwrap()
        .unwrap();
        let info = sign_and_verify(&identity).await;
        assert_eq!(info.provider, "static");
        assert_eq!(info.workload_id, "spiffe://kest.test/static");
        assert_eq!(info.jwk, key.verifying_key().to_jwk(), "{name}");
    }
    assert!(StaticIdentity::from_vars(|_| None).unwrap().is_none());
}

#[test]
fn static_identity_errors_say_what_is_wrong() {
    let only_id =
        StaticIdentity::from_vars(|var| (var == "KEST_WORKLOAD_ID").then(|| "w".to_owned()))
            .unwrap_err();
    assert!(
        matches!(&only_id, IdentityError::Missing { what } if what.contains("KEST_SIGNING_KEY_FILE")),
        "{only_id}"
    );
    let only_key = StaticIdentity::from_vars(|var| {
        (var == "KEST_SIGNING_KEY_SEED").then(|| SEED_HEX.to_owned())
    })
    .unwrap_err();
    assert!(
        matches!(&only_key, IdentityError::Missing { what } if what.contains("KEST_WORKLOAD_ID")),
        "{only_key}"
    );
    let vars = |name: &'static str, value: &'static str| {
        move |var: &str| match var {
            "KEST_WORKLOAD_ID" => Some("w".to_owned()),
            _ if var == name => Some(value.to_owned()),
            _ => None,
        }
    };
    let bad_seed = StaticIdentity::from_vars(vars("KEST_SIGNING_KEY_SEED", "abcd")).unwrap_err();
    assert!(
        matches!(&bad_seed, IdentityError::Key { source_name, .. } if source_name == "KEST_SIGNING_KEY_SEED")
    );
    let missing = StaticIdentity::from_vars(vars("KEST_SIGNING_KEY_FILE", "/nonexistent/kest.jwk"))
        .unwrap_err();
    assert!(matches!(&missing, IdentityError::Io { path, .. } if path == "/nonexistent/kest.jwk"));
    let garbage = StaticIdentity::from_vars(vars(
        "KEST_SIGNING_KEY_PEM",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    ))
    .unwrap_err();
    assert!(matches!(&garbage, IdentityError::Key { .. }), "{garbage}");
}

#[tokio::test]
async fn key_files_are_private_and_not_overwritten() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kest-key.jwk");
    let key = SigningKey::from_ed25519_seed_hex(SEED_HEX).unwrap();
    kest_identity::write_private_jwk(&path, &key, false).unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let again =
        kest_identity::write_private_jwk(&path, &SigningKey::generate_ed25519().unwrap(), false)
            .unwrap_err();
    assert!(matches!(again, IdentityError::Io { .. }), "{again}");
    let loaded = StaticIdentity::from_key_file("w", &path).unwrap();
    assert_eq!(
        loaded.describe().await.unwrap().jwk,
        key.verifying_key().to_jwk()
    );
    let fresh = SigningKey::generate_ed25519().unwrap();
    kest_identity::write_private_jwk(&path, &fresh, true).unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let reloaded = StaticIdentity::from_key_file("w", &path).unwrap();
    assert_eq!(
        reloaded.describe().await.unwrap().jwk,
        fresh.verifying_key().to_jwk()
    );
}

#[tokio::test]
async fn lazy_identity_resolves_once_and_keeps_the_real_signature() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let lazy = LazyIdentity::new(move || {
        let attempt = counter.fetch_add(1, Ordering::SeqCst);
        async move {
            if attempt == 0 {
                Err(IdentityError::Missing {
                    what: "the identity service is still starting".into(),
                })
            } else {
                Ok(Arc::new(MockIdentity::new("spiffe://kest.test/lazy")?)
                    as Arc<dyn IdentityProvider>)
            }
        }
    });
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "nothing is resolved before first use"
    );
    // The first resolution fails: no entry, and the failure is not cached.
    let mut passport = Passport::new();
    let error = kest_identity::append(&mut passport, EntryBuilder::new("op"), &lazy, &WeakestLink)
        .await
        .unwrap_err();
    assert!(matches!(error, IdentityError::Missing { .. }));
    assert!(passport.is_empty());
    // Then it resolves, and the signature is the inner provider's own.
    let info = sign_and_verify(&lazy).await;
    assert_eq!(info.provider, "lazy(mock)");
    let inner = MockIdentity::new("spiffe://kest.test/lazy").unwrap();
    let mut direct = Passport::new();
    kest_identity::append(&mut direct, EntryBuilder::new("op"), &inner, &WeakestLink)
        .await
        .unwrap();
    let mut via_lazy = Passport::new();
    kest_identity::append(&mut via_lazy, EntryBuilder::new("op"), &lazy, &WeakestLink)
        .await
        .unwrap();
    // Ed25519 is deterministic: the same entry bytes give the same signature. (The
    // timestamps differ, so compare signatures over the lazy entry's own signing input.)
    let tip = via_lazy.tip().unwrap();
    let expected = kest_canon::b64url_encode(
        &SigningKey::from_ed25519_seed(kest_canon::sha256(b"spiffe://kest.test/lazy").as_bytes())
            .unwrap()
            .sign(tip.signing_input().as_bytes())
            .unwrap(),
    );
    assert!(tip.jws().ends_with(&expected));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "resolved once after the failure, then kept"
    );
}

/// A provider whose key rotates once, between the first describe and sign.
#[derive(Debug)]
struct Rotating {
    keys: [SigningKey; 2],
    current: AtomicUsize,
    rotations_left: AtomicUsize,
}

#[async_trait]
impl IdentityProvider for Rotating {
    fn name(&self) -> &str {
        "rotating"
    }
    async fn describe(&self) -> Result<IdentityInfo, IdentityError> {
        let key = &self.keys[self.current.load(Ordering::SeqCst) % 2];
        Ok(IdentityInfo {
            provider: "rotating".into(),
            workload_id: "w".into(),
            alg: key.algorithm(),
            kid: key.verifying_key().thumbprint(),
            jwk: key.verifying_key().to_jwk(),
            issuer: None,
            x5c: None,
        })
    }
    async fn sign(&self, kid: &str, input: &[u8]) -> Result<Vec<u8>, IdentityError> {
        if self.rotations_left.load(Ordering::SeqCst) > 0 {
            self.rotations_left.fetch_sub(1, Ordering::SeqCst);
            self.current.fetch_add(1, Ordering::SeqCst);
        }
        let key = &self.keys[self.current.load(Ordering::SeqCst) % 2];
        let current = key.verifying_key().thumbprint();
        if kid != current {
            return Err(IdentityError::KeyChanged {
                expected: kid.into(),
                current,
            });
        }
        key.sign(input).map_err(IdentityError::Signing)
    }
}

#[tokio::test]
async fn a_rotation_between_describe_and_sign_is_retried_once() {
    let keys = [
        SigningKey::generate_p256().unwrap(),
        SigningKey::generate_p256().unwrap(),
    ];
    let second = keys[1].verifying_key().clone();
    let provider = Rotating {
        keys,
        current: AtomicUsize::new(0),
        rotations_left: AtomicUsize::new(1),
    };
    let mut passport = Passport::new();
    kest_identity::append(
        &mut passport,
        EntryBuilder::new("op"),
        &provider,
        &WeakestLink,
    )
    .await
    .unwrap();
    let tip = passport.tip().unwrap();
    assert_eq!(
        tip.header().kid.as_deref(),
        Some(second.thumbprint().as_str())
    );
    let resolver = StaticKeyResolver::new().with_key("w", second);
    Verifier::new(&resolver)
        .verify_json(&passport.to_json())
        .unwrap();

    // A key that changes on every attempt is an error, not an endless loop.
    let provider = Rotating {
        keys: [
            SigningKey::generate_p256().unwrap(),
            SigningKey::generate_p256().unwrap(),
        ],
        current: AtomicUsize::new(0),
        rotations_left: AtomicUsize::new(10),
    };
    let error = kest_identity::append(
        &mut Passport::new(),
        EntryBuilder::new("op"),
        &provider,
        &WeakestLink,
    )
    .await
    .unwrap_err();
    assert!(matches!(error, IdentityError::KeyChanged { .. }), "{error}");
}

/// Signing under a kid that is not the provider's is refused.
#[tokio::test]
async fn signing_under_another_kid_is_refused() {
    let identity = MockIdentity::new("w").unwrap();
    let error = identity.sign("someone-else", b"x").await.unwrap_err();
    assert!(matches!(error, IdentityError::KeyChanged { .. }));
}
