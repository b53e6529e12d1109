//! Fuzz target: mutated entries, re-signed with a trusted test key, so that fuzzing gets
//! past the signature check into the chain rules and the label audit.
//!
//! The input drives mutations of a small DAG (a root, two branches, a join): trust scores,
//! taints, parents, runtimes, overrides, ids, order. Every entry is then re-signed, with
//! parent hashes re-linked to the re-signed entries. Whatever the verifier accepts must
//! satisfy the rules it claims to check, tested here by an independent model: parents
//! come first, taints only vanish through `removed_taints`, and (strictly audited) trust
//! only rises by a declared override.
#![no_main]

use std::collections::{BTreeSet, HashMap};

use kest_crypto::{KeySigner, SigningKey, StaticKeyResolver};
use kest_passport::{Strictness, Verifier};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use serde_json::{Value, json};

const W: &str = "spiffe://fuzz.test/w";

#[derive(Debug, Arbitrary)]
enum Mutation {
    Trust { entry: u8, value: u8 },
    AddTaint { entry: u8, taint: u8 },
    DropTaint { entry: u8, taint: u8 },
    Added { entry: u8, taint: u8 },
    Removed { entry: u8, taint: u8 },
    Parent { entry: u8, parent: u8 },
    ExtraParent { entry: u8, parent: u8 },
    Root { entry: u8 },
    Override { entry: u8, value: u8 },
    Python { entry: u8 },
    SameId { entry: u8, other: u8 },
    Duplicate { entry: u8 },
    Swap { a: u8, b: u8 },
    Drop { entry: u8 },
}

const TAINTS: [&str; 4] = ["pii", "unverified", "llm", "secret"];

/// The base DAG: payloads with parents as indices.
fn base() -> Vec<(Value, Vec<usize>)> {
    let entry = |n: u32, op: &str, trust: u8, taints: &[&str], added: &[&str], removed: &[&str]| {
        json!({
            "added_taints": added, "classification": "system", "content_hash": "",
            "entry_id": format!("01900000-0000-7000-8000-{n:012x}"),
            "environment": {}, "input_hash": "",
            "labels": {"principal": W}, "metadata": null, "operation": op,
            "otel_context": {},
            "policy_context": {"app_policies": [], "deviations": [], "enterprise_policies": [],
                               "function_policies": [], "platform_policies": []},
            "removed_taints": removed,
            "runtime": {"name": "kest-rust", "version": "0.1.0"},
            "schema_version": "0.3.0", "taints": taints,
            "timestamp_ms": 1_700_000_000_000_u64 + u64::from(n), "trust_score": trust,
        })
    };
    vec![
        (entry(0, "root", 40, &["pii"], &["pii"], &[]), vec![]),
        (entry(1, "left", 40, &["pii", "llm"], &["llm"], &[]), vec![0]),
        (entry(2, "right", 40, &[], &[], &["pii"]), vec![0]),
        (entry(3, "join", 40, &["llm"], &[], &[]), vec![1, 2]),
    ]
}

fn index(list_len: usize, n: u8) -> Option<usize> {
    (list_len > 0).then(|| usize::from(n) % list_len)
}

fn set_strings(value: &mut Value, field: &str, f: impl FnOnce(&mut BTreeSet<String>)) {
    let mut set: BTreeSet<String> = value[field]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    f(&mut set);
    value[field] = json!(set.into_iter().collect::<Vec<_>>());
}

fn apply(entries: &mut Vec<(Value, Vec<usize>)>, mutation: &Mutation) {
    let len = entries.len();
    let pick = |n: u8| index(len, n);
    match *mutation {
        Mutation::Trust { entry, value } => {
            if let Some(i) = pick(entry) {
                entries[i].0["trust_score"] = json!(value % 101);
            }
        }
        Mutation::AddTaint { entry, taint } | Mutation::DropTaint { entry, taint }
        | Mutation::Added { entry, taint } | Mutation::Removed { entry, taint } => {
            let Some(i) = pick(entry) else { return };
            let name = TAINTS[usize::from(taint) % TAINTS.len()].to_owned();
            let (field, add) = match mutation {
                Mutation::AddTaint { .. } => ("taints", true),
                Mutation::DropTaint { .. } => ("taints", false),
                Mutation::Added { .. } => ("added_taints", true),
                _ => ("removed_taints", true),
            };
            set_strings(&mut entries[i].0, field, |set| {
                if add {
                    set.insert(name);
                } else {
                    set.remove(&name);
                }
            });
        }
        Mutation::Parent { entry, parent } => {
            if let (Some(i), Some(p)) = (pick(entry), pick(parent)) {
                entries[i].1 = vec![p];
            }
        }
        Mutation::ExtraParent { entry, parent } => {
            if let (Some(i), Some(p)) = (pick(entry), pick(parent)) {
                entries[i].1.push(p);
            }
        }
        Mutation::Root { entry } => {
            if let Some(i) = pick(entry) {
                entries[i].1.clear();
            }
        }
        Mutation::Override { entry, value } => {
            if let Some(i) = pick(entry) {
                entries[i].0["labels"]["kest.trust_override"] = json!((value % 101).to_string());
            }
        }
        Mutation::Python { entry } => {
            if let Some(i) = pick(entry) {
                entries[i].0["runtime"]["name"] = json!("kest-python");
            }
        }
        Mutation::SameId { entry, other } => {
            if let (Some(i), Some(j)) = (pick(entry), pick(other)) {
                entries[i].0["entry_id"] = entries[j].0["entry_id"].clone();
            }
        }
        Mutation::Duplicate { entry } => {
            if let Some(i) = pick(entry) {
                let copy = entries[i].clone();
                entries.push(copy);
            }
        }
        Mutation::Swap { a, b } => {
            if let (Some(i), Some(j)) = (pick(a), pick(b)) {
                entries.swap(i, j);
                // Parent indices follow their entries.
                for (_, parents) in entries.iter_mut() {
                    for p in parents.iter_mut() {
                        *p = if *p == i { j } else if *p == j { i } else { *p };
                    }
                }
            }
        }
        Mutation::Drop { entry } => {
            if let Some(i) = pick(entry) {
                entries.remove(i);
                for (_, parents) in entries.iter_mut() {
                    parents.retain(|p| *p != i);
                    for p in parents.iter_mut() {
                        if *p > i {
                            *p -= 1;
                        }
                    }
                }
            }
        }
    }
}

/// Signs every entry in order, linking parents to the hashes of the re-signed entries
/// (a parent that is not signed yet gets a made-up hash: an unknown parent).
fn sign_all(entries: &[(Value, Vec<usize>)], signer: &KeySigner) -> Vec<String> {
    let mut hashes: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for (payload, parents) in entries {
        let mut payload = payload.clone();
        payload["parent_ids"] = if parents.is_empty() {
            json!(["0"])
        } else {
            json!(parents
                .iter()
                .map(|p| hashes.get(*p).cloned().unwrap_or_else(|| "ab".repeat(32)))
                .collect::<Vec<_>>())
        };
        let Ok(bytes) = kest_canon::canonicalize(&payload) else { return Vec::new() };
        let Ok(jws) = kest_crypto::sign_compact(signer, &bytes) else { return Vec::new() };
        hashes.push(kest_canon::sha256_hex(jws.as_bytes()));
        out.push(jws);
    }
    out
}

fn taints_of(entry: &kest_passport::Entry) -> BTreeSet<String> {
    entry.taints_as_written().iter().cloned().collect()
}

libfuzzer_sys::fuzz_target!(|mutations: Vec<Mutation>| {
    let key = SigningKey::from_ed25519_seed(&[7; 32]).unwrap();
    let keys = StaticKeyResolver::new().with_key(W, key.verifying_key().clone());
    let signer = KeySigner::new(key, W);
    let mut entries = base();
    for mutation in mutations.iter().take(16) {
        apply(&mut entries, mutation);
    }
    let jws = sign_all(&entries, &signer);
    let text = serde_json::to_string(&jws).unwrap();
    let _ = kest_passport::UnverifiedPassport::decode(&text, &Default::default());
    for strictness in [Strictness::Auto, Strictness::Strict] {
        let Ok(report) = Verifier::new(&keys).strictness(strictness).verify_json(&text) else {
            continue;
        };
        // The model: what the verifier accepted must obey the rules it checks.
        let passport = report.passport();
        let mut seen: HashMap<_, (u8, BTreeSet<String>)> = HashMap::new();
        for (position, signed) in passport.entries().iter().enumerate() {
            let entry = signed.entry();
            let parents = entry.parents().hashes();
            assert_eq!(parents.is_empty(), position == 0, "exactly the first entry is a root");
            let mut inherited = BTreeSet::new();
            let mut bound: Option<u8> = None;
            for parent in parents {
                let (trust, taints) = seen.get(parent).expect("parents come first");
                inherited.extend(taints.iter().cloned());
                bound = Some(bound.map_or(*trust, |b| b.min(*trust)));
            }
            let removed: BTreeSet<String> = entry.removed_taints().iter().cloned().collect();
            let mut required: BTreeSet<String> = inherited.difference(&removed).cloned().collect();
            required.extend(entry.added_taints().iter().filter(|t| !removed.contains(*t)).cloned());
            let own = taints_of(&entry);
            assert!(required.is_subset(&own), "a taint vanished: {required:?} ⊄ {own:?}");
            let claimed = entry.trust_score().get();
            let declared = entry.declared_override().map(|o| o.get()) == Some(claimed);
            let strict = strictness == Strictness::Strict || entry.is_kest_rust();
            let counted = match bound {
                Some(bound) if claimed > bound && !declared => {
                    assert!(!strict, "an undeclared raise passed a strict audit");
                    bound
                }
                _ => claimed,
            };
            seen.insert(signed.hash(), (counted, own));
        }
        if let Some(tip) = passport.tip_hash() {
            let counted = seen[&tip].0;
            assert_eq!(passport.head_entries()[0].trust().get(), counted);
        }
    }
});
