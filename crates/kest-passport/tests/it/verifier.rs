//! The verifier's label audit, structure rules and mixed-algorithm chains.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use crate::common;

use common::fresh_signer;
use kest_crypto::{CryptoError, KeySigner, SigningKey, StaticKeyResolver, sign_compact};
use kest_passport::{
    Entry, EntryBuilder, EntryFault, FindingKind, Head, Parents, Passport, PassportError,
    SignedEntry, Strictness, UnverifiedPassport, Verifier,
};
use kest_trust::{TaintSet, TrustScore, WeakestLink};
use serde_json::{Value, json};

const W: &str = "spiffe://test/w";

fn s(n: u8) -> TrustScore {
    TrustScore::new(n).unwrap()
}

fn step(op: &str) -> EntryBuilder {
    EntryBuilder::new(op).principal(W)
}

/// A root with taint `pii` at trust 40, for the label tests to build on.
fn tainted_root(signer: &KeySigner) -> SignedEntry {
    let entry = step("root")
        .origin_score(s(40))
        .added_taints(["pii"])
        .build_on(&[], &WeakestLink)
        .unwrap();
    SignedEntry::sign(entry, signer).unwrap()
}

fn passport_of(entries: Vec<SignedEntry>) -> String {
    let jws: Vec<String> = entries.iter().map(|e| e.jws().into_owned()).collect();
    serde_json::to_string(&jws).unwrap()
}

#[test]
fn a_silently_dropped_taint_is_rejected() {
    let (signer, resolver) = fresh_signer(W);
    let root = tainted_root(&signer);
    let laundered = step("launder")
        .build_explicit(Parents::Hashes(vec![root.hash()]), s(40), &TaintSet::new())
        .unwrap();
    let laundered = SignedEntry::sign(laundered, &signer).unwrap();
    let error = Verifier::new(&resolver)
        .verify_json(&passport_of(vec![root, laundered]))
        .unwrap_err();
    assert_eq!(error.index(), Some(1));
    assert_eq!(
        error.fault(),
        Some(&EntryFault::TaintDropped {
            taint: "pii".into()
        })
    );
}

#[test]
fn extra_taints_are_allowed() {
    let (signer, resolver) = fresh_signer(W);
    let root = tainted_root(&signer);
    let cautious: TaintSet = ["pii", "extra"].into_iter().collect();
    let child = step("cautious")
        .build_explicit(Parents::Hashes(vec![root.hash()]), s(40), &cautious)
        .unwrap();
    let child = SignedEntry::sign(child, &signer).unwrap();
    Verifier::new(&resolver)
        .verify_json(&passport_of(vec![root, child]))
        .unwrap();
}

#[test]
fn trust_raises_must_be_declared() {
    let (signer, resolver) = fresh_signer(W);
    let root = tainted_root(&signer);
    let taints = root.entry().taints();
    let raised = step("raise")
        .build_explicit(Parents::Hashes(vec![root.hash()]), s(90), &taints)
        .unwrap();
    let raised = SignedEntry::sign(raised, &signer).unwrap();
    let text = passport_of(vec![root.clone(), raised]);
    // Kest-only chains are strict by default.
    let error = Verifier::new(&resolver).verify_json(&text).unwrap_err();
    assert_eq!(
        error.fault(),
        Some(&EntryFault::UndeclaredTrustRaise {
            bound: 40,
            trust: 90
        })
    );
    // Lenient: reported, with who did it.
    let report = Verifier::new(&resolver)
        .strictness(Strictness::Lenient)
        .verify_json(&text)
        .unwrap();
    let finding = &report.findings()[0];
    assert_eq!(
        finding.kind,
        FindingKind::TrustRaised {
            bound: 40,
            trust: 90,
            declared: false
        }
    );
    assert_eq!(
        (
            finding.index,
            finding.principal.as_str(),
            finding.operation.as_str()
        ),
        (1, W, "raise")
    );

    // Declared through the builder's override: accepted in strict mode, still reported.
    let declared = step("sanitize")
        .trust_override(s(90))
        .build_on(&[Head::from(&root)], &WeakestLink)
        .unwrap();
    let declared = SignedEntry::sign(declared, &signer).unwrap();
    let report = Verifier::new(&resolver)
        .verify_json(&passport_of(vec![root, declared]))
        .unwrap();
    assert!(report.is_strict());
    assert_eq!(
        report.findings()[0].kind,
        FindingKind::TrustRaised {
            bound: 40,
            trust: 90,
            declared: true
        }
    );
}

#[test]
fn a_declared_value_that_differs_is_not_a_declaration() {
    let (signer, resolver) = fresh_signer(W);
    let root = tainted_root(&signer);
    let taints = root.entry().taints();
    let entry = step("liar")
        .label("kest.trust_override", "60")
        .build_explicit(Parents::Hashes(vec![root.hash()]), s(95), &taints)
        .unwrap();
    let entry = SignedEntry::sign(entry, &signer).unwrap();
    let error = Verifier::new(&resolver)
        .verify_json(&passport_of(vec![root, entry]))
        .unwrap_err();
    assert!(matches!(
        error.fault(),
        Some(EntryFault::UndeclaredTrustRaise { .. })
    ));
}

#[test]
fn a_dangling_branch_is_rejected() {
    let (signer, resolver) = fresh_signer(W);
    let root =
        SignedEntry::sign(step("root").build_on(&[], &WeakestLink).unwrap(), &signer).unwrap();
    let a = SignedEntry::sign(
        step("a")
            .build_on(&[Head::from(&root)], &WeakestLink)
            .unwrap(),
        &signer,
    )
    .unwrap();
    let b = SignedEntry::sign(
        step("b")
            .build_on(&[Head::from(&root)], &WeakestLink)
            .unwrap(),
        &signer,
    )
    .unwrap();
    let error = Verifier::new(&resolver)
        .verify_json(&passport_of(vec![root, a, b]))
        .unwrap_err();
    assert_eq!(
        (error.index(), error.fault()),
        (Some(1), Some(&EntryFault::Dangling))
    );
}

#[test]
fn unknown_members_are_kept_and_signed() {
    let (signer, resolver) = fresh_signer(W);
    let base = step("future").build_on(&[], &WeakestLink).unwrap();
    let mut payload: Value = serde_json::from_slice(&base.canonical_bytes().unwrap()).unwrap();
    payload["zz_future_member"] = json!({"b": 1, "a": [true]});
    payload["labels"]["ünicode"] = json!("ok");
    payload["runtime"]["build"] = json!("abc");
    let entry = Entry::from_value(payload).unwrap();
    assert!(entry.extra().contains_key("zz_future_member"));
    let signed = SignedEntry::sign(entry, &signer).unwrap();
    let report = Verifier::new(&resolver)
        .verify_json(&passport_of(vec![signed.clone()]))
        .unwrap();
    let read = report.passport().tip().unwrap();
    assert_eq!(
        read.entry().extra()["zz_future_member"],
        json!({"a": [true], "b": 1})
    );
    assert_eq!(read.entry().runtime().extra["build"], "abc");
    assert_eq!(*read.jws(), signed.jws());
}

/// Signs arbitrary payload bytes as if they were an entry.
fn sign_raw(signer: &KeySigner, payload: &[u8]) -> String {
    sign_compact(signer, payload).unwrap()
}

#[test]
fn payloads_must_be_canonical_json_objects_with_the_schema() {
    let (signer, resolver) = fresh_signer(W);
    let good = step("x").build_on(&[], &WeakestLink).unwrap();
    let canonical = String::from_utf8(good.canonical_bytes().unwrap()).unwrap();
    let spaced = canonical.replacen(':', ": ", 1);
    let mut missing: Value = serde_json::from_str(&canonical).unwrap();
    missing.as_object_mut().unwrap().remove("taints");
    let mut v4: Value = serde_json::from_str(&canonical).unwrap();
    v4["entry_id"] = json!("9b2c0c1e-3b9e-4f6a-8a59-1b2c3d4e5f60");
    let mut bad_trust: Value = serde_json::from_str(&canonical).unwrap();
    bad_trust["trust_score"] = json!(101);
    let mut no_principal: Value = serde_json::from_str(&canonical).unwrap();
    no_principal["labels"] = json!({});
    let mut unsorted: Value = serde_json::from_str(&canonical).unwrap();
    unsorted["taints"] = json!(["z", "a"]);
    let mut big_int: Value = serde_json::from_str(&canonical).unwrap();
    big_int["metadata"] = json!(9_007_199_254_740_993_u64);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"not json".to_vec(), "not a JSON object"),
        (b"[1,2]".to_vec(), "not a JSON object"),
        (spaced.into_bytes(), "canonical form"),
        (
            kest_canon::jcs_bytes(&missing).unwrap(),
            "`taints` is missing",
        ),
        (kest_canon::jcs_bytes(&v4).unwrap(), "UUID v7"),
        (kest_canon::jcs_bytes(&bad_trust).unwrap(), "0..=100"),
        (
            kest_canon::jcs_bytes(&no_principal).unwrap(),
            "labels.principal",
        ),
        (kest_canon::jcs_bytes(&unsorted).unwrap(), "sorted"),
        (serde_json::to_vec(&big_int).unwrap(), "interoperable range"),
    ];
    for (payload, expected) in cases {
        let jws = sign_raw(&signer, &payload);
        let error = Verifier::new(&resolver)
            .verify_json(&format!("[\"{jws}\"]"))
            .unwrap_err();
        assert!(
            error.to_string().contains(expected),
            "{}: {error}",
            String::from_utf8_lossy(&payload)
        );
        assert_eq!(error.index(), Some(0));
    }
}

#[test]
fn wrong_key_unknown_principal_and_alg_confusion() {
    let (signer, _) = fresh_signer(W);
    let stranger = SigningKey::generate_ed25519().unwrap();
    let wrong = StaticKeyResolver::new().with_key(W, stranger.verifying_key().clone());
    let mut passport = Passport::new();
    passport.append(step("a"), &signer, &WeakestLink).unwrap();
    let text = passport.to_json();
    let error = Verifier::new(&wrong).verify_json(&text).unwrap_err();
    assert_eq!(
        error.fault(),
        Some(&EntryFault::Signature(CryptoError::BadSignature))
    );
    let nobody = StaticKeyResolver::new();
    let error = Verifier::new(&nobody).verify_json(&text).unwrap_err();
    assert!(matches!(
        error.fault(),
        Some(EntryFault::Key(CryptoError::UnknownPrincipal { .. }))
    ));
    let ec = SigningKey::generate_p256().unwrap();
    let confused = StaticKeyResolver::new().with_key(W, ec.verifying_key().clone());
    let error = Verifier::new(&confused).verify_json(&text).unwrap_err();
    assert!(matches!(
        error.fault(),
        Some(EntryFault::Signature(CryptoError::AlgorithmMismatch { .. }))
    ));
}

/// One chain, two algorithms: an Ed25519 workload and an ES256 one (as SPIFFE or KMS keys).
#[test]
fn mixed_eddsa_and_es256_chain_verifies() {
    let ed = SigningKey::generate_ed25519().unwrap();
    let ec = SigningKey::generate_p256().unwrap();
    let resolver = StaticKeyResolver::new()
        .with_key("spiffe://t/ed", ed.verifying_key().clone())
        .with_key("arn:aws:kms:t/ec", ec.verifying_key().clone());
    let ed = KeySigner::new(ed, "spiffe://t/ed");
    let ec = KeySigner::new(ec, "arn:aws:kms:t/ec");
    let mut passport = Passport::new();
    passport
        .append(
            EntryBuilder::new("a").principal("spiffe://t/ed"),
            &ed,
            &WeakestLink,
        )
        .unwrap();
    passport
        .append(
            EntryBuilder::new("b").principal("arn:aws:kms:t/ec"),
            &ec,
            &WeakestLink,
        )
        .unwrap();
    passport
        .append(
            EntryBuilder::new("c").principal("spiffe://t/ed"),
            &ed,
            &WeakestLink,
        )
        .unwrap();
    let report = Verifier::new(&resolver)
        .verify_json(&passport.to_json())
        .unwrap();
    let algs: Vec<_> = report
        .passport()
        .entries()
        .iter()
        .map(|e| e.header().alg)
        .collect();
    assert_eq!(
        algs,
        [
            kest_crypto::Algorithm::EdDSA,
            kest_crypto::Algorithm::ES256,
            kest_crypto::Algorithm::EdDSA
        ]
    );
    // A principal may not sign with another principal's key.
    let swapped = EntryBuilder::new("d").principal("spiffe://t/ed");
    passport.append(swapped, &ec, &WeakestLink).unwrap();
    let error = Verifier::new(&resolver)
        .verify_json(&passport.to_json())
        .unwrap_err();
    assert_eq!(error.index(), Some(3));
}

#[test]
fn empty_passport_and_pinned_tips() {
    let resolver = StaticKeyResolver::new();
    let report = Verifier::new(&resolver).verify_json("[]").unwrap();
    assert!(report.is_empty());
    let tip = kest_canon::sha256(b"x");
    let error = Verifier::new(&resolver)
        .expect_tip(tip)
        .verify_json("[]")
        .unwrap_err();
    assert!(matches!(error, PassportError::TipMismatch { .. }));
    assert!(error.to_string().contains("empty passport"), "{error}");
}

#[test]
fn verify_a_decoded_passport_and_a_single_entry() {
    let (signer, resolver) = fresh_signer(W);
    let mut passport = Passport::new();
    for op in ["a", "b", "c", "d", "e"] {
        passport.append(step(op), &signer, &WeakestLink).unwrap();
    }
    let decoded = UnverifiedPassport::decode(&passport.to_json(), &Default::default()).unwrap();
    let report = Verifier::new(&resolver)
        .expect_tip(passport.tip_hash().unwrap())
        .verify(&decoded)
        .unwrap();
    assert_eq!(report.passport(), &passport);
    let single = Verifier::new(&resolver)
        .verify_entry(&passport.tip().unwrap().jws())
        .unwrap();
    assert_eq!(single.entry().operation(), "e");
    let nobody = StaticKeyResolver::new();
    assert!(Verifier::new(&nobody).verify(&decoded).is_err());
    assert!(
        Verifier::new(&nobody)
            .verify_entry(&passport.tip().unwrap().jws())
            .is_err()
    );
}

/// `ingest` by `w` adds `taints` at trust 40; `scrub` removes them and declares 90.
fn ingest_then_scrub(w: &str, signer: &KeySigner, taints: &[&str]) -> Passport {
    let step = |op: &str| EntryBuilder::new(op).principal(w);
    let mut passport = Passport::new();
    passport
        .append(
            step("ingest")
                .origin_score(TrustScore::new(40).unwrap())
                .added_taints(taints.iter().copied()),
            signer,
            &WeakestLink,
        )
        .unwrap();
    passport
        .append(
            step("scrub")
                .removed_taints(taints.iter().copied())
                .trust_override(TrustScore::new(90).unwrap()),
            signer,
            &WeakestLink,
        )
        .unwrap();
    passport
}

/// What a report hands back: the passport, its size and tip, and findings whose text says
/// which entry, what happened and by how much.
#[test]
fn the_report_describes_the_passport_it_verified() {
    let w = "spiffe://test/report";
    let (signer, resolver) = fresh_signer(w);
    let verifier = Verifier::new(&resolver);
    let empty = verifier.verify_json("[]").unwrap();
    assert!(empty.is_empty());
    assert_eq!((empty.len(), empty.tip()), (0, None));
    assert!(empty.into_passport().is_empty());

    let passport = ingest_then_scrub(w, &signer, &["pii"]);
    let report = verifier.verify_json(&passport.to_json()).unwrap();
    assert!(!report.is_empty());
    assert_eq!(report.len(), 2);
    assert_eq!(report.tip(), passport.tip_hash());
    assert!(report.is_strict());
    let second = passport.entries()[1].entry_id().to_string();
    let texts: Vec<String> = report.findings().iter().map(ToString::to_string).collect();
    assert_eq!(
        texts,
        [
            format!("entry 1 (`{second}`, scrub by {w}): removed taints pii"),
            format!(
                "entry 1 (`{second}`, scrub by {w}): trust raised from 40 to 90 by a declared override"
            ),
        ]
    );
    let taken = report.into_passport();
    assert_eq!(taken.to_json(), passport.to_json());
    assert_eq!(taken.tip_hash(), passport.tip_hash());
}

/// Findings as `kest verify --json` and the Python binding print them, and as text when
/// several taints are cleared at once; the verifier's `Debug` shows its settings, never
/// the keys it trusts.
#[test]
fn findings_as_json_and_text_and_the_verifier_as_debug() {
    let w = "spiffe://test/findings";
    let (signer, resolver) = fresh_signer(w);
    let passport = ingest_then_scrub(w, &signer, &["pii", "secret"]);
    let report = Verifier::new(&resolver)
        .verify_json(&passport.to_json())
        .unwrap();
    let id = passport.entries()[1].entry_id().to_string();
    assert_eq!(
        report.findings()[0].to_string(),
        format!("entry 1 (`{id}`, scrub by {w}): removed taints pii, secret")
    );
    let json: Vec<Value> = report.findings().iter().map(|f| f.to_json()).collect();
    assert_eq!(
        json,
        [
            json!({"index": 1, "entry_id": id, "principal": w, "operation": "scrub",
                   "kind": "taints_removed", "details": {"taints": ["pii", "secret"]}}),
            json!({"index": 1, "entry_id": id, "principal": w, "operation": "scrub",
                   "kind": "trust_raised", "details": {"bound": 40, "trust": 90, "declared": true}}),
        ]
    );

    let cache = kest_passport::VerifiedEntries::default();
    let verifier = Verifier::new(&resolver)
        .strictness(Strictness::Lenient)
        .cache(&cache);
    let debug = format!("{verifier:?}");
    assert!(debug.starts_with("Verifier {"), "{debug}");
    assert!(debug.contains("strictness: Lenient"), "{debug}");
    assert!(debug.contains("cache: true"), "{debug}");
    assert!(debug.contains("limits"), "{debug}");
    assert!(!debug.contains(w), "no keys or principals: {debug}");
}

/// A finding names the taints an entry really cleared: not one it lists in
/// `removed_taints` that no parent carried, even when another branch carries it.
#[test]
fn only_taints_the_parents_carried_are_reported_cleared() {
    let (signer, resolver) = fresh_signer(W);
    let sign = |builder: EntryBuilder, parents: &[&SignedEntry]| {
        let heads: Vec<Head<'_>> = parents.iter().map(|p| Head::from(*p)).collect();
        SignedEntry::sign(builder.build_on(&heads, &WeakestLink).unwrap(), &signer).unwrap()
    };
    let root = sign(step("ingest").added_taints(["pii"]), &[]);
    // One branch picks up `ghost`; the other never saw it, yet lists it as removed.
    let haunted = sign(step("haunted").added_taints(["ghost"]), &[&root]);
    let scrub = sign(step("scrub").removed_taints(["ghost", "pii"]), &[&root]);
    let join = sign(step("join"), &[&haunted, &scrub]);
    let report = Verifier::new(&resolver)
        .verify_json(&passport_of(vec![root, haunted, scrub, join]))
        .unwrap();
    let cleared: Vec<(usize, &FindingKind)> = report
        .findings()
        .iter()
        .map(|f| (f.index, &f.kind))
        .collect();
    assert_eq!(
        cleared,
        [(
            2,
            &FindingKind::TaintsRemoved {
                taints: vec!["pii".to_owned()]
            }
        )]
    );
}

/// A forged first entry costs one key lookup, not one per entry: once an entry fails,
/// the entries after it are not checked (short passports are checked in order).
#[test]
fn checking_stops_at_the_first_failure() {
    struct Counting(StaticKeyResolver, std::sync::atomic::AtomicUsize);
    impl kest_crypto::KeyResolver for Counting {
        fn resolve(
            &self,
            query: &kest_crypto::KeyQuery<'_>,
        ) -> Result<kest_crypto::VerifyingKey, CryptoError> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.0.resolve(query)
        }
    }
    let (signer, resolver) = fresh_signer(W);
    let (forger, _) = fresh_signer(W);
    let mut forged = Passport::new();
    forged.append(step("a"), &forger, &WeakestLink).unwrap();
    forged.append(step("b"), &signer, &WeakestLink).unwrap();
    forged.append(step("c"), &signer, &WeakestLink).unwrap();
    let counting = Counting(resolver, std::sync::atomic::AtomicUsize::new(0));
    let error = Verifier::new(&counting)
        .verify_json(&forged.to_json())
        .unwrap_err();
    assert!(
        matches!(&error, PassportError::Entry { index: 0, .. }),
        "{error}"
    );
    assert_eq!(counting.1.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// Entries are equal when their JWS is; an unsigned entry names its key and algorithm.
#[test]
fn signed_entries_compare_by_their_jws() {
    let w = "spiffe://test/eq";
    let (signer, _) = fresh_signer(w);
    let entry = EntryBuilder::new("op")
        .principal(w)
        .build_on(&[], &WeakestLink)
        .unwrap();
    let unsigned =
        kest_passport::UnsignedEntry::new(entry.clone(), kest_crypto::Algorithm::EdDSA, "key-7")
            .unwrap();
    assert_eq!(unsigned.key_id(), "key-7");
    assert_eq!(unsigned.algorithm(), kest_crypto::Algorithm::EdDSA);
    assert_eq!(unsigned.clone().into_entry(), entry);
    let a = SignedEntry::sign(entry.clone(), &signer).unwrap();
    let b = SignedEntry::sign(entry.clone(), &signer).unwrap();
    // Ed25519 is deterministic: the same entry and key give the same JWS.
    assert_eq!(a, b);
    let other = EntryBuilder::new("op2")
        .principal(w)
        .build_on(&[], &WeakestLink)
        .unwrap();
    let c = SignedEntry::sign(other, &signer).unwrap();
    assert_ne!(a, c);
    let (stranger, _) = fresh_signer(w);
    assert_ne!(a, SignedEntry::sign(entry, &stranger).unwrap());
}

/// A payload that fails the schema is reported with whatever `entry_id` it names, escaped
/// and shortened (it is attacker-controlled text), or none when it names none.
#[test]
fn a_rejected_payload_is_named_by_its_entry_id() {
    let w = "spiffe://test/named";
    let (signer, resolver) = fresh_signer(w);
    let id = "01890a5d-ac96-774b-8cce-b302099a8057";
    let cases = [
        (json!(id), Some(id.to_owned())),
        (json!("\u{1b}[31mred"), Some("\\u{1b}[31mred".to_owned())),
        (json!("x".repeat(500)), None),
        (json!(42), None),
    ];
    for (entry_id, expected) in cases {
        // A schema fault (no operation) under a good signature.
        let payload = json!({"entry_id": entry_id, "labels": {"principal": w}});
        let jws = sign_compact(&signer, payload.to_string().as_bytes()).unwrap();
        let error = Verifier::new(&resolver)
            .verify_json(&json!([jws]).to_string())
            .unwrap_err();
        match &error {
            PassportError::Entry {
                index: 0,
                entry_id: found,
                fault: EntryFault::Schema { .. },
            } => match &expected {
                Some(text) => assert_eq!(found.as_deref(), Some(text.as_str()), "{error}"),
                None if entry_id.is_string() => {
                    let found = found.as_deref().unwrap();
                    assert!(found.len() < 100, "shortened: {found}");
                }
                None => assert_eq!(found, &None, "{error}"),
            },
            other => panic!("{other:?}"),
        }
    }
}
