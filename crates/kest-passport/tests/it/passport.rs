//! The passport as a data structure: append, fork, join, wire form and its limits.
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
use kest_passport::{
    EntryBuilder, EntryFault, Head, Limits, Passport, PassportError, SignedEntry,
    UnverifiedPassport, Verifier,
};
use kest_trust::{TrustScore, WeakestLink};

const W: &str = "spiffe://test/w";

fn step(op: &str) -> EntryBuilder {
    EntryBuilder::new(op).principal(W)
}

#[test]
fn sequential_appends_chain_onto_the_tip() {
    let (signer, _) = fresh_signer(W);
    let mut passport = Passport::new();
    assert!(passport.is_empty());
    assert_eq!(passport.to_json(), "[]");
    let first = passport
        .append(step("a"), &signer, &WeakestLink)
        .unwrap()
        .hash();
    let second = passport
        .append(step("b"), &signer, &WeakestLink)
        .unwrap()
        .hash();
    let tip = passport.tip().unwrap();
    assert_eq!(tip.entry().parents().hashes(), [first]);
    assert_eq!(passport.tip_hash(), Some(second));
    assert_eq!(passport.heads(), [second]);
    assert_eq!(passport.len(), 2);
}

#[test]
fn cached_aggregates_follow_the_rules() {
    let (signer, _) = fresh_signer(W);
    let s = |n| TrustScore::new(n).unwrap();
    let mut passport = Passport::new();
    passport
        .append(
            step("in").origin_score(s(40)).added_taints(["pii", "raw"]),
            &signer,
            &WeakestLink,
        )
        .unwrap();
    passport
        .append(
            step("clean").removed_taints(["pii"]).trust_override(s(90)),
            &signer,
            &WeakestLink,
        )
        .unwrap();
    passport
        .append(step("after").origin_score(s(50)), &signer, &WeakestLink)
        .unwrap();
    // The override is remembered downstream (90 * 50 / 100), the removed taint stays gone.
    assert_eq!(passport.tip().unwrap().entry().trust_score(), s(45));
    assert_eq!(
        passport.current_taints().iter().collect::<Vec<_>>(),
        ["raw"]
    );
    assert_eq!(passport.min_trust(), Some(s(40)));
    assert_eq!(
        passport.entries()[1].entry().label("kest.trust_override"),
        Some("90")
    );
}

#[test]
fn forks_are_independent_and_join_with_every_tip_as_parent() {
    let (signer, resolver) = fresh_signer(W);
    let s = |n| TrustScore::new(n).unwrap();
    let mut trunk = Passport::new();
    trunk.append(step("root"), &signer, &WeakestLink).unwrap();
    let mut left = trunk.clone();
    let mut right = trunk.clone();
    left.append(
        step("left").added_taints(["l"]).origin_score(s(60)),
        &signer,
        &WeakestLink,
    )
    .unwrap();
    right
        .append(step("right").added_taints(["r"]), &signer, &WeakestLink)
        .unwrap();
    right.append(step("right2"), &signer, &WeakestLink).unwrap();
    assert_eq!((trunk.len(), left.len(), right.len()), (1, 2, 3));

    let mut joined = Passport::join(&[&left, &right]).unwrap();
    assert_eq!(joined.len(), 4);
    assert_eq!(
        joined.heads(),
        [left.tip_hash().unwrap(), right.tip_hash().unwrap()]
    );
    joined.append(step("merge"), &signer, &WeakestLink).unwrap();
    let merge = joined.tip().unwrap().entry();
    assert_eq!(
        merge.parents().hashes(),
        [left.tip_hash().unwrap(), right.tip_hash().unwrap()]
    );
    assert_eq!(merge.trust_score(), s(60));
    assert_eq!(merge.taints().iter().collect::<Vec<_>>(), ["l", "r"]);

    let report = Verifier::new(&resolver)
        .verify_json(&joined.to_json())
        .unwrap();
    assert_eq!(report.len(), 5);
    // A join of passports that came over the wire (no shared memory) works the same way.
    let over_the_wire = |passport: &Passport| {
        Verifier::new(&resolver)
            .verify_json(&passport.to_json())
            .unwrap()
            .into_passport()
    };
    let left_wire = over_the_wire(&left);
    let right_wire = over_the_wire(&right);
    assert_eq!(
        Passport::join(&[&left_wire, &right_wire]).unwrap().heads(),
        Passport::join(&[&left, &right]).unwrap().heads()
    );
}

#[test]
fn join_refuses_branches_with_different_roots() {
    let (signer, _) = fresh_signer(W);
    let mut a = Passport::new();
    a.append(step("a"), &signer, &WeakestLink).unwrap();
    let mut b = Passport::new();
    b.append(step("b"), &signer, &WeakestLink).unwrap();
    let error = Passport::join(&[&a, &b]).unwrap_err();
    assert_eq!(error.fault(), Some(&EntryFault::SplicedRoot));
}

#[test]
fn push_checks_the_entry_fits() {
    let (signer, _) = fresh_signer(W);
    let mut passport = Passport::new();
    let root =
        SignedEntry::sign(step("root").build_on(&[], &WeakestLink).unwrap(), &signer).unwrap();
    let child = SignedEntry::sign(
        step("child")
            .build_on(&[Head::from(&root)], &WeakestLink)
            .unwrap(),
        &signer,
    )
    .unwrap();
    let error = passport.push(child.clone()).unwrap_err();
    assert_eq!(error.fault(), Some(&EntryFault::FirstNotRoot));
    passport.push(root.clone()).unwrap();
    let error = passport.push(root.clone()).unwrap_err();
    assert_eq!(error.fault(), Some(&EntryFault::SplicedRoot));
    passport.push(child.clone()).unwrap();
    assert!(matches!(
        passport.push(child.clone()).unwrap_err().fault(),
        Some(EntryFault::DuplicateEntry { first: 1 })
    ));
    let orphan_parent =
        SignedEntry::sign(step("other").build_on(&[], &WeakestLink).unwrap(), &signer).unwrap();
    let orphan = SignedEntry::sign(
        step("orphan")
            .build_on(&[Head::from(&orphan_parent)], &WeakestLink)
            .unwrap(),
        &signer,
    )
    .unwrap();
    assert!(matches!(
        passport.push(orphan).unwrap_err().fault(),
        Some(EntryFault::UnknownParent { .. })
    ));
    assert_eq!(passport.len(), 2);
}

#[test]
fn a_failed_build_leaves_the_passport_unchanged() {
    let (signer, _) = fresh_signer(W);
    let mut passport = Passport::new();
    passport.append(step("a"), &signer, &WeakestLink).unwrap();
    let error = passport
        .append(EntryBuilder::new("no principal"), &signer, &WeakestLink)
        .unwrap_err();
    assert!(error.to_string().contains("principal"), "{error}");
    let error = passport
        .append(step(""), &signer, &WeakestLink)
        .unwrap_err();
    assert!(matches!(error, PassportError::Build { .. }));
    let error = passport
        .append(
            step("big").metadata(serde_json::json!(u64::MAX)),
            &signer,
            &WeakestLink,
        )
        .unwrap_err();
    assert!(error.to_string().contains("interoperable range"), "{error}");
    assert_eq!(passport.len(), 1);
}

#[test]
fn wire_limits_bound_hostile_input() {
    let (signer, _) = fresh_signer(W);
    let mut passport = Passport::new();
    for op in ["a", "b", "c"] {
        passport.append(step(op), &signer, &WeakestLink).unwrap();
    }
    let text = passport.to_json();
    let small = Limits {
        max_bytes: 100,
        ..Limits::default()
    };
    assert!(matches!(
        UnverifiedPassport::decode(&text, &small),
        Err(PassportError::TooLarge { .. })
    ));
    let few = Limits {
        max_entries: 2,
        ..Limits::default()
    };
    assert_eq!(
        UnverifiedPassport::decode(&text, &few).unwrap_err(),
        PassportError::TooManyEntries { limit: 2 }
    );
    // A million empty strings is refused at the entry limit, without parsing them all.
    let flood = format!("[{}\"\"]", "\"\",".repeat(1_000_000));
    assert!(matches!(
        UnverifiedPassport::decode(&flood, &Limits::default()),
        Err(PassportError::TooManyEntries { .. })
    ));
    for bad in ["{}", "[1]", "[\"a\",]", "", "[\"x\"] trailing", "null"] {
        assert!(
            UnverifiedPassport::decode(bad, &Limits::default()).is_err(),
            "{bad}"
        );
    }
    // Whitespace as the Python package writes it is fine.
    let spaced = text.replace(',', ", ");
    assert_eq!(
        UnverifiedPassport::decode(&spaced, &Limits::default())
            .unwrap()
            .to_json(),
        text
    );
}

#[test]
fn a_long_passport_drops_without_overflowing_the_stack() {
    let (signer, _) = fresh_signer(W);
    let mut passport = Passport::new();
    let root =
        SignedEntry::sign(step("root").build_on(&[], &WeakestLink).unwrap(), &signer).unwrap();
    passport.push(root).unwrap();
    // Reuse one signed child shape cheaply: entries differ only by parent, so sign each.
    for index in 0..20_000 {
        passport
            .append(step(&format!("op{index}")), &signer, &WeakestLink)
            .unwrap();
    }
    let fork = passport.clone();
    drop(passport);
    assert_eq!(fork.len(), 20_001);
    drop(fork);
}

/// A passport holds each entry pushed into it as its JWS and the fields chaining reads;
/// the payload is parsed again when asked for, and reads back exactly as it was signed.
/// Passports from the verifier keep the parsed form it read.
#[test]
fn held_entries_keep_their_jws_and_parse_the_payload_on_demand() {
    use std::borrow::Cow;

    let (signer, resolver) = fresh_signer(W);
    let built = step("held")
        .added_taints(["pii"])
        .label("note", "kept")
        .build_on(&[], &WeakestLink)
        .unwrap();
    let fresh = SignedEntry::sign(built.clone(), &signer).unwrap();
    assert!(
        matches!(fresh.entry(), Cow::Borrowed(_)),
        "fresh: parsed form kept"
    );
    let header = fresh.header().into_owned();
    let mut passport = Passport::new();
    passport.push(fresh.clone()).unwrap();
    let held = passport.tip().unwrap();
    assert!(
        matches!(held.entry(), Cow::Owned(_)),
        "held: parsed on demand"
    );
    assert_eq!(*held.entry(), built);
    assert_eq!(held.header().into_owned(), header);
    assert_eq!(held, &fresh);
    assert_eq!(held.entry_id(), built.entry_id());
    assert_eq!(held.trust_score(), built.trust_score());
    assert_eq!(*held.taints(), built.taints());
    assert_eq!(passport.current_taints(), built.taints());
    // The signature still checks from the held form, against the trusted key only.
    held.verify_signature(&resolver).unwrap();
    let (_, stranger) = fresh_signer(W);
    assert!(held.verify_signature(&stranger).is_err());

    // A verified passport, and one taken on faith, read the same.
    passport
        .append(step("next"), &signer, &WeakestLink)
        .unwrap();
    let text = passport.to_json();
    let report = Verifier::new(&resolver).verify_json(&text).unwrap();
    let read = UnverifiedPassport::decode(&text, &Limits::default())
        .unwrap()
        .dangerous_assume_verified();
    for held in [report.passport(), &read] {
        // Appending to it holds the new entry compactly.
        let mut extended = held.clone();
        extended
            .append(step("after"), &signer, &WeakestLink)
            .unwrap();
        assert!(matches!(extended.tip().unwrap().entry(), Cow::Owned(_)));
        let entries = held.entries();
        assert_eq!(entries.len(), 2);
        assert!(matches!(entries[0].entry(), Cow::Borrowed(_)));
        assert_eq!(*entries[0].entry(), built);
        assert_eq!(entries[1].entry().parents().hashes(), [fresh.hash()]);
        assert_eq!(held.to_json(), text);
    }
}

/// `Debug` of an entry names it (hash, id, operation, signer) and prints nothing else: not
/// the payload's free-form values, not the signature.
#[test]
fn entries_debug_as_their_identity() {
    let (signer, _) = fresh_signer(W);
    let entry = step("show")
        .label("secretish", "do-not-print")
        .build_on(&[], &WeakestLink)
        .unwrap();
    let signed = SignedEntry::sign(entry, &signer).unwrap();
    let mut passport = Passport::new();
    passport.push(signed.clone()).unwrap();
    let read = kest_passport::UnverifiedEntry::parse(&signed.jws()).unwrap();
    for shown in [
        format!("{signed:?}"),
        format!("{:?}", passport.tip().unwrap()),
        format!("{read:?}"),
    ] {
        assert!(
            shown.contains(&signed.hash().to_hex())
                || shown.contains(&format!("{:?}", signed.hash())),
            "{shown}"
        );
        assert!(shown.contains(&signed.entry_id().to_string()), "{shown}");
        assert!(!shown.contains("do-not-print"), "{shown}");
        assert!(
            !shown.contains(signed.jws().rsplit('.').next().unwrap()),
            "{shown}"
        );
    }
    let shown = format!("{signed:?}");
    assert!(shown.starts_with("SignedEntry"), "{shown}");
    assert!(shown.contains("show") && shown.contains(W), "{shown}");
    assert!(format!("{read:?}").starts_with("UnverifiedEntry"));
}

/// Entries read from outside compare by their JWS too.
#[test]
fn unverified_entries_compare_by_their_jws() {
    let (signer, _) = fresh_signer(W);
    let sign = |op: &str| {
        SignedEntry::sign(step(op).build_on(&[], &WeakestLink).unwrap(), &signer).unwrap()
    };
    let (a, b) = (sign("a"), sign("b"));
    let read = |entry: &SignedEntry| kest_passport::UnverifiedEntry::parse(&entry.jws()).unwrap();
    assert_eq!(read(&a), read(&a));
    assert_ne!(read(&a), read(&b));
    assert!(read(&a) != read(&b));
    assert!(!(read(&a) != read(&a)));
}
