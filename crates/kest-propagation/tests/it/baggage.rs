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
pub(crate) fn python_keys() -> StaticKeyResolver {
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
/// Every header the Python package's `KestHttpxInterceptor` writes, 1 to 60 entries: the
/// inline tier is raw JSON with unencoded commas, read to its closing bracket; every
/// passport verifies with all its entries.
#[test]
fn python_interceptor_headers() {
    let vectors: Value = kest_testkit::load_json("python/baggage.json");
    let mut raw = 0;
    for case in vectors["cases"].as_array().unwrap() {
        let n = case["n_entries"].as_u64().unwrap() as usize;
        let header = case["kest_httpx_interceptor_header"].as_str().unwrap();
        let limits = BaggageLimits {
            max_bytes: 64 * 1024,
            ..Default::default()
        };
        let baggage = Baggage::parse(header, &limits).unwrap_or_else(|e| panic!("n={n}: {e}"));
        match case["with_cache"]["key"].as_str().unwrap() {
            keys::PASSPORT_Z | keys::PASSPORT => {
                assert_eq!(
                    baggage.has_raw_json_passport(),
                    case["with_cache"]["key"] == keys::PASSPORT && n > 0,
                    "n={n}"
                );
                raw += usize::from(baggage.has_raw_json_passport());
                let passport = verified(&InboundPassport::from_baggage(&baggage))
                    .unwrap_or_else(|e| panic!("n={n}: {e}"));
                assert_eq!(passport.unwrap().len(), n, "n={n}");
            }
            keys::CLAIM_CHECK => assert!(baggage.get(keys::CLAIM_CHECK).is_some()),
            key => panic!("n={n} {key}"),
        }
    }
    assert!(
        raw >= 2,
        "the vectors hold raw inline headers of several entries"
    );
}

/// What the Python decorator leaves once its chain outgrows the inline tier: the stale
/// raw `kest.passport` of an earlier hop beside the compressed passport and its tip. The
/// member that ends at the tip is chosen; with no tip the one that extends the other.
#[test]
fn a_stale_raw_member_beside_the_compressed_one_is_not_chosen() {
    let vectors: Value = kest_testkit::load_json("python/baggage.json");
    let cases = vectors["cases"].as_array().unwrap();
    let inline = cases
        .iter()
        .filter(|c| c["with_cache"]["key"] == keys::PASSPORT)
        .max_by_key(|c| c["n_entries"].as_u64())
        .unwrap();
    let compressed = cases
        .iter()
        .find(|c| c["with_cache"]["key"] == keys::PASSPORT_Z)
        .unwrap();
    let full = compressed["n_entries"].as_u64().unwrap() as usize;
    let stale = inline["with_cache"]["value"].as_str().unwrap();
    let z = compressed["with_cache"]["value"].as_str().unwrap();
    let tip = compressed["with_cache"]["chain_tip"].as_str().unwrap();
    let limits = BaggageLimits {
        max_bytes: 64 * 1024,
        ..Default::default()
    };
    for header in [
        format!("kest.passport={stale},kest.chain_tip={tip},kest.passport_z={z}"),
        format!("kest.passport_z={z},kest.passport={stale}"),
    ] {
        let baggage = Baggage::parse(&header, &limits).unwrap();
        assert!(baggage.has_raw_json_passport());
        let passport = verified(&InboundPassport::from_baggage(&baggage))
            .unwrap()
            .unwrap();
        assert_eq!(passport.len(), full);
        assert_eq!(passport.tip_hash().unwrap().to_hex(), tip);
    }
}

/// Raw JSON is read only when it closes and holds nothing but the passport, within the
/// header's limits; anything else is refused with the member named.
#[test]
fn hostile_raw_json_members_are_refused() {
    let limits = BaggageLimits::default();
    for (header, why) in [
        ("kest.passport=[\"a\",\"b\"", "never closed"),
        ("kest.passport=[\"a]\",\"b\"", "never closed"),
        ("kest.passport=[\"a\"] trailing,kest.user=u", "text after"),
        ("kest.user=u,kest.passport=[\"[[[", "never closed"),
    ] {
        match Baggage::parse(header, &limits) {
            Err(PropagationError::MalformedMember { reason, .. }) => {
                assert!(reason.contains(why), "{header}: {reason}");
            }
            other => panic!("{header}: {other:?}"),
        }
    }
    // A bracket inside a string does not close it; an escaped quote does not end the string.
    let baggage = Baggage::parse(r#"kest.passport=["a]\"b,c"],kest.user=u"#, &limits).unwrap();
    assert_eq!(baggage.get(keys::PASSPORT), Some(r#"["a]\"b,c"]"#));
    assert_eq!(baggage.get(keys::USER), Some("u"));
    // Huge raw JSON is bounded by the header limit before it is scanned.
    let huge = format!("kest.passport=[{}]", "\"x\",".repeat(10_000));
    assert!(matches!(
        Baggage::parse(&huge, &limits),
        Err(PropagationError::BaggageTooLarge { .. })
    ));
    // Only `["` opens raw JSON: other brackets are W3C values, commas split them.
    assert!(Baggage::parse("kest.passport=[1,2]", &limits).is_err());
    // Read, it must still be a passport: a list of JWS that verifies.
    let baggage = Baggage::parse(r#"kest.passport=["x", "y"]"#, &limits).unwrap();
    assert!(baggage.has_raw_json_passport());
    assert!(verified(&InboundPassport::from_baggage(&baggage)).is_err());
    // What Kest writes stays W3C baggage: percent-encoded, no raw JSON.
    let mut ours = Baggage::new();
    ours.set(keys::PASSPORT, r#"["a.b.c","d.e.f"]"#).unwrap();
    let header = ours.to_header();
    assert!(!header.contains('"') && !header.contains("[\""), "{header}");
    assert!(
        !Baggage::parse(&header, &limits)
            .unwrap()
            .has_raw_json_passport()
    );
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
