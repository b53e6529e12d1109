//! Regressions from attacking the verifier: one entry relaxing the audit of another, the
//! trust a lenient audit hands on, wide and dense DAGs, entry ids with the wrong variant,
//! the single-entry tip pin, the verified-entry cache, and unverified passports.
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
use kest_crypto::{KeySigner, SigningKey, StaticKeyResolver};
use kest_passport::{
    EntryBuilder, EntryFault, FindingKind, Head, Limits, Parents, Passport, PassportError, Runtime,
    SignedEntry, UnverifiedEntry, UnverifiedPassport, VerifiedEntries, Verifier,
};
use kest_trust::{TaintSet, TrustScore, WeakestLink};

const W: &str = "spiffe://test/w";

fn s(n: u8) -> TrustScore {
    TrustScore::new(n).unwrap()
}

fn step(op: &str) -> EntryBuilder {
    EntryBuilder::new(op).principal(W)
}

fn python() -> Runtime {
    Runtime {
        name: "kest-python".into(),
        version: "0.3.0".into(),
        extra: Default::default(),
    }
}

fn wire(entries: &[SignedEntry]) -> String {
    let jws: Vec<String> = entries.iter().map(|e| e.jws().into_owned()).collect();
    serde_json::to_string(&jws).unwrap()
}

fn sign(entry: kest_passport::Entry, signer: &KeySigner) -> SignedEntry {
    SignedEntry::sign(entry, signer).unwrap()
}

/// A kest-rust entry raises trust without declaring it; a later entry says it is from
/// `kest-python`. Strictness is the raising entry's own, so the chain still fails, at
/// the entry that raised.
#[test]
fn a_later_foreign_entry_does_not_relax_an_earlier_raise() {
    let (signer, resolver) = fresh_signer(W);
    let root = sign(
        step("root")
            .origin_score(s(40))
            .build_on(&[], &WeakestLink)
            .unwrap(),
        &signer,
    );
    let raise = sign(
        step("raise")
            .build_explicit(Parents::Hashes(vec![root.hash()]), s(95), &TaintSet::new())
            .unwrap(),
        &signer,
    );
    let foreign = sign(
        step("foreign")
            .runtime(python())
            .build_on(&[Head::from(&raise)], &WeakestLink)
            .unwrap(),
        &signer,
    );
    let error = Verifier::new(&resolver)
        .verify_json(&wire(&[root.clone(), raise.clone(), foreign.clone()]))
        .unwrap_err();
    assert_eq!(error.index(), Some(1));
    assert_eq!(
        error.fault(),
        Some(&EntryFault::UndeclaredTrustRaise {
            bound: 40,
            trust: 95
        })
    );
    // The same raise made by the foreign entry itself is a finding, and does not count.
    let foreign_raise = sign(
        step("foreign raise")
            .runtime(python())
            .build_explicit(Parents::Hashes(vec![root.hash()]), s(95), &TaintSet::new())
            .unwrap(),
        &signer,
    );
    let report = Verifier::new(&resolver)
        .verify_json(&wire(&[root, foreign_raise]))
        .unwrap();
    assert!(!report.is_strict());
    assert_eq!(
        report.findings()[0].kind,
        FindingKind::TrustRaised {
            bound: 40,
            trust: 95,
            declared: false
        }
    );
    // What the next entry (and a policy) sees is the bound, not the claim.
    let passport = report.into_passport();
    let heads = passport.head_entries();
    assert_eq!(heads.len(), 1);
    assert_eq!(heads[0].trust(), s(40));
    assert_eq!(heads[0].entry().entry().trust_score(), s(95));
    assert_eq!(passport.min_trust(), Some(s(40)));
    let next = step("next").build_on(&heads, &WeakestLink).unwrap();
    assert_eq!(next.trust_score(), s(40));
}

/// A declared override counts at its value, whatever the runtime.
#[test]
fn a_declared_override_counts() {
    let (signer, resolver) = fresh_signer(W);
    let root = sign(
        step("root")
            .origin_score(s(40))
            .build_on(&[], &WeakestLink)
            .unwrap(),
        &signer,
    );
    let sanitizer = sign(
        step("sanitize")
            .trust_override(s(90))
            .build_on(&[Head::from(&root)], &WeakestLink)
            .unwrap(),
        &signer,
    );
    let passport = Verifier::new(&resolver)
        .verify_json(&wire(&[root, sanitizer]))
        .unwrap()
        .into_passport();
    assert_eq!(passport.head_entries()[0].trust(), s(90));
}

/// 10,000 entries that all build on the root, then one entry joining them: decode and
/// verification stay linear (the old passport kept a copy of every head per entry, 1.6 GB
/// for this one).
#[test]
fn a_wide_fan_out_and_its_join_verify() {
    let (signer, resolver) = fresh_signer(W);
    let root = sign(
        step("root")
            .added_taints(["t"])
            .build_on(&[], &WeakestLink)
            .unwrap(),
        &signer,
    );
    let mut entries = vec![root.clone()];
    for index in 0..9_998 {
        entries.push(sign(
            step(&format!("leaf{index}"))
                .build_on(&[Head::from(&root)], &WeakestLink)
                .unwrap(),
            &signer,
        ));
    }
    let heads: Vec<Head<'_>> = entries[1..].iter().map(Head::from).collect();
    let join = sign(
        step("join").build_on(&heads, &WeakestLink).unwrap(),
        &signer,
    );
    assert_eq!(join.entry().parents().hashes().len(), 9_998);
    entries.push(join);
    let text = wire(&entries);
    let decoded = UnverifiedPassport::decode(&text, &Limits::default()).unwrap();
    assert_eq!(decoded.len(), 10_000);
    assert_eq!(decoded.heads(), vec![decoded.tip_hash().unwrap()]);
    let passport = Verifier::new(&resolver)
        .verify_json(&text)
        .unwrap()
        .into_passport();
    assert_eq!(passport.len(), 10_000);
    assert_eq!(passport.heads(), [passport.tip_hash().unwrap()]);
    // Without the join the leaves dangle: decoding keeps them as heads, the verifier
    // refuses a passport that is not the ancestry of its tip.
    let leaves = wire(&entries[..9_999]);
    assert_eq!(
        UnverifiedPassport::decode(&leaves, &Limits::default())
            .unwrap()
            .heads()
            .len(),
        9_998
    );
    assert_eq!(
        Verifier::new(&resolver)
            .verify_json(&leaves)
            .unwrap_err()
            .fault(),
        Some(&EntryFault::Dangling)
    );
}

/// Many parents, each with many distinct taints, and every entry joining them all: the
/// audit would be quadratic. It stops at a budget that grows with the passport's size.
#[test]
fn a_dense_dag_runs_out_of_audit_budget() {
    let (signer, resolver) = fresh_signer(W);
    let root = sign(step("root").build_on(&[], &WeakestLink).unwrap(), &signer);
    let base: Vec<String> = (0..300).map(|i| format!("taint-{i}")).collect();
    let mut entries = vec![root.clone()];
    // 60 parents, each with the 300 base taints and one of its own.
    for index in 0..60 {
        entries.push(sign(
            step(&format!("p{index}"))
                .added_taints(base.iter().cloned().chain([format!("own-{index}")]))
                .build_on(&[Head::from(&root)], &WeakestLink)
                .unwrap(),
            &signer,
        ));
    }
    let parents: Vec<Head<'_>> = entries[1..].iter().map(Head::from).collect();
    let joined = step("join").build_on(&parents, &WeakestLink).unwrap();
    // 300 joins of all 60 parents, each child's set a little different so no two pairs
    // are alike: 300 × 60 × 301 set lookups for a passport of a few MB.
    let mut children = Vec::new();
    for index in 0..300 {
        let mut taints = joined.taints();
        taints.insert(format!("child-{index}"));
        children.push(sign(
            step(&format!("c{index}"))
                .build_explicit(joined.parents().clone(), s(100), &taints)
                .unwrap(),
            &signer,
        ));
    }
    let last_heads: Vec<Head<'_>> = children.iter().map(Head::from).collect();
    let end = sign(
        step("end").build_on(&last_heads, &WeakestLink).unwrap(),
        &signer,
    );
    entries.extend(children);
    entries.push(end);
    let error = Verifier::new(&resolver)
        .verify_json(&wire(&entries))
        .unwrap_err();
    assert_eq!(error.fault(), Some(&EntryFault::TooComplex), "{error}");
    assert!(error.index().unwrap() > 61, "{error}");
}

/// The same shape with the parents sharing one taint set costs one comparison per
/// child: honest joins of branches that carry the same taints pass.
#[test]
fn a_join_of_branches_with_the_same_taints_is_cheap() {
    let (signer, resolver) = fresh_signer(W);
    let base: Vec<String> = (0..300).map(|i| format!("taint-{i}")).collect();
    let root = sign(
        step("root")
            .added_taints(base)
            .build_on(&[], &WeakestLink)
            .unwrap(),
        &signer,
    );
    let mut entries = vec![root.clone()];
    for index in 0..60 {
        entries.push(sign(
            step(&format!("p{index}"))
                .build_on(&[Head::from(&root)], &WeakestLink)
                .unwrap(),
            &signer,
        ));
    }
    let parents: Vec<Head<'_>> = entries[1..].iter().map(Head::from).collect();
    let join = sign(
        step("join").build_on(&parents, &WeakestLink).unwrap(),
        &signer,
    );
    entries.push(join);
    let report = Verifier::new(&resolver)
        .verify_json(&wire(&entries))
        .unwrap();
    assert_eq!(report.len(), 62);
    assert_eq!(report.passport().current_taints().len(), 300);
}

#[test]
fn entry_ids_must_carry_the_rfc_variant() {
    let (signer, _) = fresh_signer(W);
    // Version 7, but variant bits 110x (Microsoft) instead of 10xx.
    let id = uuid::Uuid::parse_str("01890a5d-ac96-774b-cdad-a1b2c3d4e5f6").unwrap();
    assert_eq!(id.get_version_num(), 7);
    let entry = sign(
        step("op").entry_id(id).build_on(&[], &WeakestLink).unwrap(),
        &signer,
    );
    let fault = UnverifiedEntry::parse(&entry.jws()).unwrap_err();
    assert!(
        matches!(&fault, EntryFault::Schema { field, reason } if field == "entry_id" && reason.contains("variant")),
        "{fault}"
    );
}

/// `verify_entry` keeps the tip pin: one JWS that is not the pinned tip fails.
#[test]
fn a_single_entry_honours_the_pinned_tip() {
    let (signer, resolver) = fresh_signer(W);
    let a = sign(step("a").build_on(&[], &WeakestLink).unwrap(), &signer);
    let b = sign(step("b").build_on(&[], &WeakestLink).unwrap(), &signer);
    let error = Verifier::new(&resolver)
        .expect_tip(b.hash())
        .verify_entry(&a.jws())
        .unwrap_err();
    assert!(
        matches!(error, PassportError::TipMismatch { .. }),
        "{error}"
    );
    Verifier::new(&resolver)
        .expect_tip(a.hash())
        .verify_entry(&a.jws())
        .unwrap();
}

#[test]
fn the_cache_checks_each_signature_once_and_follows_the_resolver() {
    let (signer, resolver) = fresh_signer(W);
    let mut passport = Passport::new();
    for op in ["a", "b", "c", "d", "e", "f"] {
        passport.append(step(op), &signer, &WeakestLink).unwrap();
    }
    let text = passport.to_json();
    let cache = VerifiedEntries::new(100);
    let verifier = Verifier::new(&resolver).cache(&cache);
    verifier.verify_json(&text).unwrap();
    assert_eq!((cache.hits(), cache.misses(), cache.len()), (0, 6, 6));
    verifier.verify_json(&text).unwrap();
    assert_eq!((cache.hits(), cache.misses()), (6, 6));
    // One more entry: only it is checked.
    passport.append(step("g"), &signer, &WeakestLink).unwrap();
    verifier.verify_json(&passport.to_json()).unwrap();
    assert_eq!((cache.hits(), cache.misses()), (12, 7));
    // A resolver that no longer trusts the key gets no help from the cache.
    let other = StaticKeyResolver::new().with_key(
        W,
        SigningKey::generate_ed25519()
            .unwrap()
            .verifying_key()
            .clone(),
    );
    let error = Verifier::new(&other)
        .cache(&cache)
        .verify_json(&text)
        .unwrap_err();
    assert_eq!(error.index(), Some(0));
    // A forged entry whose hash is not in the cache is checked, and fails.
    let mut entries: Vec<String> = serde_json::from_str(&text).unwrap();
    entries[3] = entries[3].replacen(".ey", ".eZ", 1);
    let error = verifier
        .verify_json(&serde_json::to_string(&entries).unwrap())
        .unwrap_err();
    assert_eq!(error.index(), Some(3));
    // The cache stays bounded.
    let small = VerifiedEntries::new(2);
    Verifier::new(&resolver)
        .cache(&small)
        .verify_json(&text)
        .unwrap();
    assert_eq!(small.len(), 2);
}

/// Decoding checks structure and nothing else; a decoded passport is only a `Passport`
/// through the verifier (or a method whose name says it is dangerous).
#[test]
fn decoding_does_not_vouch_for_signatures() {
    let (signer, _) = fresh_signer(W);
    let (_, stranger) = fresh_signer(W);
    let mut passport = Passport::new();
    passport.append(step("a"), &signer, &WeakestLink).unwrap();
    let decoded = UnverifiedPassport::decode(&passport.to_json(), &Limits::default()).unwrap();
    assert_eq!(decoded.tip_hash(), passport.tip_hash());
    assert!(Verifier::new(&stranger).verify(&decoded).is_err());
    let assumed = decoded.dangerous_assume_verified();
    assert_eq!(assumed, passport);
}

/// Error and finding text never carries control characters from the passport.
#[test]
fn what_the_verifier_says_is_escaped() {
    let (signer, resolver) = fresh_signer(W);
    let root = sign(
        step("fetch\n\u{1b}[32mverified: 9 entries")
            .added_taints(["pii\r"])
            .build_on(&[], &WeakestLink)
            .unwrap(),
        &signer,
    );
    let clean = sign(
        step("clean")
            .removed_taints(["pii\r"])
            .build_on(&[Head::from(&root)], &WeakestLink)
            .unwrap(),
        &signer,
    );
    let report = Verifier::new(&resolver)
        .verify_json(&wire(&[root.clone(), clean]))
        .unwrap();
    let shown = report.findings()[0].to_string();
    assert!(!shown.chars().any(char::is_control), "{shown:?}");
    assert!(shown.contains(r"pii\r"), "{shown}");
    let text = kest_passport::render::text_tree(report.passport());
    assert!(!text.contains('\u{1b}'), "{text:?}");
    assert!(text.contains(r"fetch\n\u{1b}[32mverified"), "{text}");
    // A principal nobody trusts, with an escape in it, in the error.
    let (evil, _) = fresh_signer("evil\u{1b}]0;title\u{7}");
    let forged = sign(
        EntryBuilder::new("x")
            .principal("evil\u{1b}]0;title\u{7}")
            .build_on(&[], &WeakestLink)
            .unwrap(),
        &evil,
    );
    let error = Verifier::new(&resolver)
        .verify_json(&wire(&[forged]))
        .unwrap_err()
        .to_string();
    assert!(!error.chars().any(char::is_control), "{error:?}");
}

/// Found by the `audit` fuzz target: an entry that lists a taint in `added_taints` but not
/// in `taints` dropped it silently, and the linear audit missed it for roots.
#[test]
fn an_added_taint_must_be_held() {
    let (signer, resolver) = fresh_signer(W);
    let root = sign(
        step("root")
            .added_taints(["pii"])
            .build_explicit(Parents::Root, s(100), &TaintSet::new())
            .unwrap(),
        &signer,
    );
    let error = Verifier::new(&resolver)
        .verify_json(&wire(std::slice::from_ref(&root)))
        .unwrap_err();
    assert_eq!(
        error.fault(),
        Some(&EntryFault::TaintDropped {
            taint: "pii".into()
        })
    );
    // On a child too; added and removed in one entry is fine.
    let root = sign(step("root").build_on(&[], &WeakestLink).unwrap(), &signer);
    let child = sign(
        step("child")
            .added_taints(["pii"])
            .build_explicit(Parents::Hashes(vec![root.hash()]), s(100), &TaintSet::new())
            .unwrap(),
        &signer,
    );
    let error = Verifier::new(&resolver)
        .verify_json(&wire(&[root.clone(), child]))
        .unwrap_err();
    assert_eq!(error.index(), Some(1));
    let both = sign(
        step("both")
            .added_taints(["pii"])
            .removed_taints(["pii"])
            .build_explicit(Parents::Hashes(vec![root.hash()]), s(100), &TaintSet::new())
            .unwrap(),
        &signer,
    );
    Verifier::new(&resolver)
        .verify_json(&wire(&[root, both]))
        .unwrap();
}

/// `examine` shows a broken passport entry by entry: unreadable entries, a spliced root,
/// a repeat and an unknown parent are each marked where they are, and entries built on
/// a marked entry still link to it.
#[test]
fn examine_marks_each_problem_on_its_entry() {
    let (signer, _) = fresh_signer(W);
    let mut passport = Passport::new();
    for op in ["a", "b", "c"] {
        passport.append(step(op), &signer, &WeakestLink).unwrap();
    }
    let good: Vec<SignedEntry> = passport.entries().iter().map(|e| (**e).clone()).collect();
    let clean = kest_passport::examine(&passport.to_json(), &Limits::default()).unwrap();
    assert_eq!(clean.len(), 3);
    assert!(
        clean
            .iter()
            .all(|row| row.fault.is_none() && row.entry.is_some())
    );
    assert_eq!(clean[2].hash, good[2].hash());

    // Entry 1 replaced by garbage; a second root spliced in; entry 0 repeated.
    let other_root = sign(step("x").build_on(&[], &WeakestLink).unwrap(), &signer);
    let text = serde_json::to_string(&[
        &*good[0].jws(),
        "not.a.jws",
        &good[2].jws(),
        &other_root.jws(),
        &good[0].jws(),
    ])
    .unwrap();
    let rows = kest_passport::examine(&text, &Limits::default()).unwrap();
    assert_eq!(rows.len(), 5);
    assert!(rows[0].fault.is_none());
    assert!(rows[1].entry.is_none());
    assert!(matches!(rows[1].fault, Some(EntryFault::Jws(_))));
    assert_eq!(rows[1].hash, kest_canon::sha256(b"not.a.jws"));
    assert!(
        matches!(rows[2].fault, Some(EntryFault::UnknownParent { parent }) if parent == good[1].hash())
    );
    assert!(matches!(rows[3].fault, Some(EntryFault::SplicedRoot)));
    assert!(matches!(
        rows[4].fault,
        Some(EntryFault::DuplicateEntry { first: 0 })
    ));
    // Not a list of strings: an error, as for decoding.
    assert!(matches!(
        kest_passport::examine("[1]", &Limits::default()),
        Err(PassportError::NotAnArray { .. })
    ));
    // Built on a marked entry still links: c is built on b, and b's own fault is all.
    let text = serde_json::to_string(&[good[1].jws(), good[2].jws()]).unwrap();
    let rows = kest_passport::examine(&text, &Limits::default()).unwrap();
    assert!(matches!(rows[0].fault, Some(EntryFault::FirstNotRoot)));
    assert!(rows[1].fault.is_none());
}
