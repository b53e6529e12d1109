//! The baggage codec and the passport tiers, against what the Python package produces.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use kest_crypto::{SigningKey, StaticKeyResolver};
use kest_passport::{Limits, Passport, Verifier};
use kest_propagation::{
    Baggage, BaggageLimits, InboundPassport, PropagationError, compress_passport,
    decompress_passport, keys,
};
use proptest::prelude::*;
use serde_json::Value;

/// Trusts the key the Python vectors were signed with, for their principal.
fn python_keys() -> StaticKeyResolver {
    let key: Value = kest_testkit::load_json("python/key.json");
    let signing = SigningKey::from_ed25519_seed_hex(key["seed_hex"].as_str().unwrap()).unwrap();
    StaticKeyResolver::new().with_key(
        key["principal"].as_str().unwrap(),
        signing.verifying_key().clone(),
    )
}

/// The passport `inbound` carries, verified with the Python vectors' key.
fn verified(inbound: &InboundPassport) -> Result<Option<Passport>, PropagationError> {
    let keys = python_keys();
    inbound
        .choose_verified(None, &Verifier::new(&keys), &Limits::default())
        .map(|report| report.map(kest_passport::VerificationReport::into_passport))
}

/// Every value in `baggage.json` decodes: inline and compressed passports to the right
/// number of entries ending at the announced tip; claim checks to a request for the store.
#[test]
fn every_python_baggage_value_decodes() {
    let vectors: Value = kest_testkit::load_json("python/baggage.json");
    let mut seen = std::collections::BTreeMap::new();
    for case in vectors["cases"].as_array().unwrap() {
        let n = case["n_entries"].as_u64().unwrap() as usize;
        let packed = &case["with_cache"];
        let key = packed["key"].as_str().unwrap();
        *seen.entry(key.to_owned()).or_insert(0) += 1;
        let mut baggage = Baggage::new();
        baggage.set(key, packed["value"].as_str().unwrap()).unwrap();
        baggage
            .set(keys::CHAIN_TIP, packed["chain_tip"].as_str().unwrap())
            .unwrap();
        // Through our own header form, percent-encoded, and back.
        let header = baggage.to_header();
        let parsed = Baggage::parse(
            &header,
            &BaggageLimits {
                max_bytes: 64 * 1024,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(parsed, baggage, "n={n}");
        let inbound = InboundPassport::from_baggage(&parsed);
        match key {
            keys::PASSPORT | keys::PASSPORT_Z => {
                let passport = verified(&inbound).unwrap().unwrap();
                assert_eq!(passport.len(), n);
                assert_eq!(passport.tip_hash().unwrap().to_hex(), packed["chain_tip"]);
                if key == keys::PASSPORT {
                    assert_eq!(
                        passport.to_json(),
                        packed["value"].as_str().unwrap().replace(", ", ",")
                    );
                }
            }
            keys::CLAIM_CHECK => {
                let id = packed["value"].as_str().unwrap();
                assert_eq!(packed["cache_key"], format!("kest.claim.{id}"));
                let error = verified(&inbound).unwrap_err();
                assert_eq!(error, PropagationError::NoClaimStore { id: id.to_owned() });
            }
            other => panic!("unexpected key {other}"),
        }
    }
    assert_eq!(seen.values().sum::<i32>(), 60);
    assert_eq!(seen.len(), 3, "all three tiers appear: {seen:?}");
}

/// Python's interceptor writes values without percent-encoding. Its compressed passports
/// survive that (base64url has no comma); its inline passports of two or more entries do
/// not, because the JSON's commas split the header, which is why we always encode.
#[test]
fn python_interceptor_headers() {
    let vectors: Value = kest_testkit::load_json("python/baggage.json");
    for case in vectors["cases"].as_array().unwrap() {
        let n = case["n_entries"].as_u64().unwrap() as usize;
        let header = case["kest_httpx_interceptor_header"].as_str().unwrap();
        let limits = BaggageLimits {
            max_bytes: 64 * 1024,
            ..Default::default()
        };
        let key = case["with_cache"]["key"].as_str().unwrap();
        match (key, Baggage::parse(header, &limits)) {
            (keys::PASSPORT_Z, Ok(baggage)) => {
                let passport = verified(&InboundPassport::from_baggage(&baggage)).unwrap();
                assert_eq!(passport.unwrap().len(), n);
            }
            (keys::PASSPORT, Ok(baggage)) => {
                // One entry has no comma and reads fine; more do not.
                let chosen = verified(&InboundPassport::from_baggage(&baggage));
                assert_eq!(chosen.is_ok(), n == 1, "n={n}: {chosen:?}");
            }
            (keys::PASSPORT, Err(_)) => assert!(n > 1),
            (keys::CLAIM_CHECK, Ok(baggage)) => assert!(baggage.get(keys::CLAIM_CHECK).is_some()),
            (key, result) => panic!("n={n} {key}: {result:?}"),
        }
    }
}

#[test]
fn compressed_passports_match_python_bytes_for_bytes_after_inflation() {
    let vectors: Value = kest_testkit::load_json("python/baggage.json");
    for case in vectors["cases"].as_array().unwrap() {
        if case["with_cache"]["key"] != keys::PASSPORT_Z {
            continue;
        }
        let value = case["with_cache"]["value"].as_str().unwrap();
        assert!(value.ends_with('=') || value.len() % 4 == 0, "Python pads");
        let json = decompress_passport(value, 1 << 20).unwrap();
        assert_eq!(json.len() as u64, case["serialized_len"].as_u64().unwrap());
        assert_eq!(
            kest_canon::sha256_hex(json.as_bytes()),
            case["serialized_sha256"]
        );
        // Our own compression at the same level reads back identically, padded too.
        let ours = compress_passport(&json);
        assert_eq!(ours.len() % 4, 0);
        assert_eq!(decompress_passport(&ours, 1 << 20).unwrap(), json);
        assert_eq!(
            decompress_passport(ours.trim_end_matches('='), 1 << 20).unwrap(),
            json
        );
    }
}

#[test]
fn limits_and_malformed_members() {
    let many: Vec<String> = (0..65).map(|i| format!("k{i}=v")).collect();
    assert_eq!(
        Baggage::parse(&many.join(","), &BaggageLimits::default()).unwrap_err(),
        PropagationError::TooManyMembers { limit: 64 }
    );
    assert!(Baggage::parse(&many[..64].join(","), &BaggageLimits::default()).is_ok());
    let long = format!("k={}", "v".repeat(8200));
    assert!(matches!(
        Baggage::parse(&long, &BaggageLimits::default()),
        Err(PropagationError::BaggageTooLarge { .. })
    ));
    for bad in ["novalue", "=v", "k y=v", "k=v;p q=1", "k=%FF%FE"] {
        assert!(
            matches!(
                Baggage::parse(bad, &BaggageLimits::default()),
                Err(PropagationError::MalformedMember { .. })
            ),
            "{bad}"
        );
    }
    assert!(
        Baggage::parse("", &BaggageLimits::default())
            .unwrap()
            .is_empty()
    );
    assert!(Baggage::new().set("bad key", "v").is_err());
}

#[test]
fn a_zip_bomb_is_refused() {
    let bomb = compress_passport(&" ".repeat(20 * 1024 * 1024));
    assert!(bomb.len() * 50 < 20 * 1024 * 1024, "{}", bomb.len());
    let error = decompress_passport(&bomb, 16 * 1024 * 1024).unwrap_err();
    assert!(error.to_string().contains("limit"), "{error}");
    assert!(decompress_passport("not base64!", 1024).is_err());
    assert!(decompress_passport("AAAA", 1024).is_err());
}

#[test]
fn chain_tip_rules() {
    let tip_only = InboundPassport {
        chain_tip: Some("ab".repeat(32)),
        ..Default::default()
    };
    assert!(matches!(
        verified(&tip_only),
        Err(PropagationError::TipWithoutPassport { .. })
    ));
    let garbage = InboundPassport {
        chain_tip: Some("ab".repeat(32)),
        inline: Some("[\"garbage\"]".into()),
        ..Default::default()
    };
    assert!(matches!(
        verified(&garbage),
        Err(PropagationError::Passport { .. })
    ));
    let python_root_marker = InboundPassport {
        chain_tip: Some("0".into()),
        ..Default::default()
    };
    assert_eq!(verified(&python_root_marker).unwrap(), None);
    assert_eq!(verified(&InboundPassport::default()).unwrap(), None);
    // A chain tip that is not a hash is said to be so, beside a passport or not.
    let malformed = InboundPassport {
        chain_tip: Some("not-a-tip\u{1b}[2J".into()),
        ..garbage
    };
    assert_eq!(
        verified(&malformed).unwrap_err(),
        PropagationError::MalformedTip {
            value: r"not-a-tip\u{1b}[2J".into()
        }
    );
}

/// A stale or garbage member never masks a good one: the member that ends at the tip wins.
#[test]
fn the_member_ending_at_the_tip_wins() {
    let vectors: Value = kest_testkit::load_json("python/baggage.json");
    let cases = vectors["cases"].as_array().unwrap();
    let small = &cases[1]["with_cache"];
    let larger = &cases[5]["with_cache"];
    assert_eq!(small["key"], keys::PASSPORT);
    assert_eq!(larger["key"], keys::PASSPORT_Z);
    let inbound = InboundPassport {
        chain_tip: Some(larger["chain_tip"].as_str().unwrap().to_owned()),
        inline: Some(small["value"].as_str().unwrap().to_owned()),
        compressed: Some(larger["value"].as_str().unwrap().to_owned()),
        claim_check: None,
    };
    let chosen = verified(&inbound).unwrap().unwrap();
    assert_eq!(chosen.len(), 6);
    let garbage_first = InboundPassport {
        inline: Some("[garbage".into()),
        ..inbound
    };
    assert_eq!(verified(&garbage_first).unwrap().unwrap().len(), 6);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parser_never_panics(header in ".{0,300}") {
        let _ = Baggage::parse(&header, &BaggageLimits::default());
        let inbound = InboundPassport { inline: Some(header.clone()), compressed: Some(header.clone()), chain_tip: Some(header.clone()), claim_check: None };
        let _ = verified(&inbound);
        let _ = inbound.choose_unverified(None, &Limits::default());
    }

    #[test]
    fn any_value_round_trips(values in prop::collection::vec(any::<String>(), 1..8)) {
        let mut baggage = Baggage::new();
        for (index, value) in values.iter().enumerate() {
            baggage.set(format!("k{index}"), value.clone()).unwrap();
        }
        let parsed = Baggage::parse(&baggage.to_header(), &BaggageLimits { max_bytes: 1 << 20, max_members: 64 }).unwrap();
        // Whitespace at the ends of a value is not significant in W3C baggage.
        for (index, value) in values.iter().enumerate() {
            prop_assert_eq!(parsed.get(&format!("k{index}")), Some(value.as_str()));
        }
    }
}
