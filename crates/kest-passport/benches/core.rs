//! The wire-core benchmarks of the [performance targets](https://github.com/kest-dev/kest-rust/blob/main/docs/src/performance.md), run by `cargo xtask bench`.
//!
//! - canonicalize one entry (fast path and `serde_jcs`);
//! - sign one entry (canonicalize + sign + hash), beside a raw Ed25519 sign of the same
//!   signing input with `ring`, so the ratio comes from one run;
//! - verify passports of 10, 100 and 1,000 entries from their wire form;
//! - inbound verification with the verified-entry cache: 10 and 50 entries never seen,
//!   and 50 entries of which the first 49 were seen before (the next hop's view);
//! - decode and verify a wide DAG (one root, a fan-out, a join) of 1,000 and 10,000
//!   entries: linear in the input;
//! - append one entry at depth 0, 50 and 1,000.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "benchmarks report failures by panicking, and their setup needs no docs"
)]

use std::hint::black_box;

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use kest_crypto::{KeySigner, SigningKey, StaticKeyResolver};
use kest_passport::{
    Entry, EntryBuilder, Head, Limits, Passport, PolicyContext, SignedEntry, UnverifiedEntry,
    UnverifiedPassport, VerifiedEntries, Verifier,
};
use kest_trust::WeakestLink;

const PRINCIPAL: &str = "spiffe://bench.example/agents/summarizer";
const SEED: [u8; 32] = [0x42; 32];

/// An entry shaped like the ones the hook writes: identity, trace and resource labels,
/// four tiers of policies, a taint.
fn builder(operation: &str) -> EntryBuilder {
    EntryBuilder::new(operation)
        .principal(PRINCIPAL)
        .trace_id("4bf92f3577b34da6a3ce929d0e0e4736")
        .label(
            "kest.identity",
            r#"{"agent":"agent-007","task":"task:summarize","user":"alice"}"#,
        )
        .label(
            "kest.resource_attr",
            r#"{"classification":"internal","owner":"team-a"}"#,
        )
        .classification("internal")
        .added_taints(["unverified"])
        .policy_context(PolicyContext {
            enterprise_policies: vec!["enterprise/baseline".into()],
            platform_policies: vec!["platform/egress".into()],
            app_policies: vec!["app/summarizer".into()],
            function_policies: vec!["summarize".into()],
            ..PolicyContext::default()
        })
        .content_hash(kest_canon::sha256(b"output"))
        .input_hash(kest_canon::sha256(b"input"))
}

fn sample_entry() -> Entry {
    builder("summarize").build_on(&[], &WeakestLink).unwrap()
}

fn signer() -> KeySigner {
    KeySigner::new(SigningKey::from_ed25519_seed(&SEED).unwrap(), PRINCIPAL)
}

fn chain(len: usize) -> Passport {
    let signer = signer();
    let mut passport = Passport::new();
    for index in 0..len {
        passport
            .append(builder(&format!("step-{index}")), &signer, &WeakestLink)
            .unwrap();
    }
    passport
}

fn canonicalize(c: &mut Criterion) {
    let entry = sample_entry();
    let mut group = c.benchmark_group("canonicalize_entry");
    group.bench_function("fast_path", |b| {
        b.iter(|| black_box(&entry).canonical_bytes().unwrap())
    });
    group.bench_function("serde_jcs", |b| {
        b.iter(|| kest_canon::jcs_bytes(black_box(&entry)).unwrap())
    });
    group.finish();
}

fn sign(c: &mut Criterion) {
    let entry = sample_entry();
    let signer = signer();
    let payload = entry.canonical_bytes().unwrap();
    let signing_input =
        kest_crypto::signing_input(&kest_crypto::Signer::header_b64(&signer), &payload);
    let ring_key = ring::signature::Ed25519KeyPair::from_seed_unchecked(&SEED).unwrap();
    let mut group = c.benchmark_group("sign");
    group.bench_function("raw_ring_ed25519", |b| {
        b.iter(|| ring_key.sign(black_box(signing_input.as_bytes())));
    });
    group.bench_function("entry", |b| {
        b.iter_batched(
            || entry.clone(),
            |entry| SignedEntry::sign(entry, &signer).unwrap(),
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn parse(c: &mut Criterion) {
    let signed = SignedEntry::sign(sample_entry(), &signer()).unwrap();
    let jws = signed.jws().into_owned();
    let key = SigningKey::from_ed25519_seed(&SEED)
        .unwrap()
        .verifying_key()
        .clone();
    let mut group = c.benchmark_group("entry");
    group.bench_function("parse_without_signature", |b| {
        b.iter(|| UnverifiedEntry::parse(black_box(&jws)).unwrap());
    });
    group.bench_function("raw_ring_verify", |b| {
        b.iter(|| {
            key.verify(
                black_box(signed.signing_input().as_bytes()),
                &kest_canon::b64url_decode(jws.rsplit('.').next().unwrap(), "sig").unwrap(),
            )
            .unwrap();
        });
    });
    group.finish();
}

fn verify(c: &mut Criterion) {
    let resolver = StaticKeyResolver::new().with_key(
        PRINCIPAL,
        SigningKey::from_ed25519_seed(&SEED)
            .unwrap()
            .verifying_key()
            .clone(),
    );
    let mut group = c.benchmark_group("verify");
    group.sample_size(20);
    for len in [10, 100, 1000] {
        let passport = chain(len);
        let text = passport.to_json();
        let tip = passport.tip_hash().unwrap();
        group.bench_with_input(BenchmarkId::from_parameter(len), &text, |b, text| {
            b.iter(|| {
                Verifier::new(&resolver)
                    .expect_tip(tip)
                    .verify_json(black_box(text))
                    .unwrap()
            });
        });
    }
    group.finish();
}

fn resolver() -> StaticKeyResolver {
    StaticKeyResolver::new().with_key(
        PRINCIPAL,
        SigningKey::from_ed25519_seed(&SEED)
            .unwrap()
            .verifying_key()
            .clone(),
    )
}

fn ingress(c: &mut Criterion) {
    let resolver = resolver();
    let mut group = c.benchmark_group("ingress");
    group.sample_size(30);
    for len in [10, 50] {
        let text = chain(len).to_json();
        // Every iteration meets entries this process has never seen: a fresh cache.
        group.bench_with_input(BenchmarkId::new("new", len), &text, |b, text| {
            b.iter_batched(
                || VerifiedEntries::new(4096),
                |cache| {
                    Verifier::new(&resolver)
                        .cache(&cache)
                        .verify_json(black_box(text))
                        .unwrap()
                },
                BatchSize::SmallInput,
            );
        });
    }
    // The next hop: the first 49 entries were verified when they passed before.
    let full = chain(50);
    let prefix = {
        let entries: Vec<String> = full
            .entries()
            .iter()
            .map(|e| e.jws().into_owned())
            .collect();
        serde_json::to_string(&entries[..49]).unwrap()
    };
    let text = full.to_json();
    group.bench_function("seen_49_of_50", |b| {
        b.iter_batched(
            || {
                let cache = VerifiedEntries::new(4096);
                Verifier::new(&resolver)
                    .cache(&cache)
                    .verify_json(&prefix)
                    .unwrap();
                cache
            },
            |cache| {
                Verifier::new(&resolver)
                    .cache(&cache)
                    .verify_json(black_box(&text))
                    .unwrap()
            },
            BatchSize::SmallInput,
        );
    });
    // Every entry seen before: what a retried request costs.
    let warm = VerifiedEntries::new(4096);
    Verifier::new(&resolver)
        .cache(&warm)
        .verify_json(&text)
        .unwrap();
    group.bench_function("seen_50_of_50", |b| {
        b.iter(|| {
            Verifier::new(&resolver)
                .cache(&warm)
                .verify_json(black_box(&text))
                .unwrap()
        });
    });
    group.finish();
}

/// One root, `width - 2` entries on it, and one entry joining them all.
fn fan_out(width: usize) -> String {
    let signer = signer();
    let root = SignedEntry::sign(sample_entry(), &signer).unwrap();
    let mut entries = vec![root.clone()];
    for index in 0..width - 2 {
        let leaf = builder(&format!("leaf-{index}"))
            .build_on(&[Head::from(&root)], &WeakestLink)
            .unwrap();
        entries.push(SignedEntry::sign(leaf, &signer).unwrap());
    }
    let heads: Vec<Head<'_>> = entries[1..].iter().map(Head::from).collect();
    let join = builder("join").build_on(&heads, &WeakestLink).unwrap();
    entries.push(SignedEntry::sign(join, &signer).unwrap());
    let jws: Vec<String> = entries.iter().map(|e| e.jws().into_owned()).collect();
    serde_json::to_string(&jws).unwrap()
}

fn wide(c: &mut Criterion) {
    let resolver = resolver();
    // These entries are 1.7 KB each: 10,000 of them are over the default 16 MiB.
    let limits = Limits {
        max_bytes: 64 * 1024 * 1024,
        ..Limits::default()
    };
    let mut group = c.benchmark_group("wide_dag");
    group.sample_size(10);
    for width in [1_000, 10_000] {
        let text = fan_out(width);
        group.bench_with_input(BenchmarkId::new("decode", width), &text, |b, text| {
            b.iter(|| UnverifiedPassport::decode(black_box(text), &limits).unwrap());
        });
        group.bench_with_input(BenchmarkId::new("verify", width), &text, |b, text| {
            b.iter(|| {
                Verifier::new(&resolver)
                    .limits(limits)
                    .verify_json(black_box(text))
                    .unwrap()
            });
        });
    }
    group.finish();
}

fn append(c: &mut Criterion) {
    let signer = signer();
    let mut group = c.benchmark_group("append");
    for depth in [0, 50, 1000] {
        let passport = chain(depth);
        group.bench_with_input(
            BenchmarkId::from_parameter(depth),
            &passport,
            |b, passport| {
                b.iter_batched(
                    || passport.clone(),
                    |mut passport| {
                        passport
                            .append(builder("next"), &signer, &WeakestLink)
                            .unwrap();
                        passport
                    },
                    BatchSize::SmallInput,
                );
            },
        );
    }
    group.finish();
}

/// What holding entries packed costs when they are read back: one held entry's JWS, and a
/// 50-entry passport written to its wire form (every entry's text written back).
fn held(c: &mut Criterion) {
    let passport = chain(50);
    let tip = passport.tip().unwrap();
    let mut group = c.benchmark_group("held");
    group.bench_function("jws", |b| b.iter(|| tip.jws().len()));
    group.bench_function("to_json_50", |b| b.iter(|| passport.to_json().len()));
    group.finish();
}

criterion_group!(
    benches,
    canonicalize,
    sign,
    parse,
    verify,
    ingress,
    wide,
    append,
    held
);
criterion_main!(benches);
