//! `kest audit` over 1,000 passports of 10 entries, against verifying the same files one
//! by one in-process with one resolver (what `kest verify` does per file, without the
//! process start). Target: the audit within 1.5× of the one-by-one time.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark's setup fails loudly"
)]

use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use kest_cli::commands::audit::{AuditArgs, AuditFormat, run};
use kest_crypto::{KeySigner, SigningKey};
use kest_passport::{EntryBuilder, Passport, Verifier};
use kest_trust::WeakestLink;

const W: &str = "spiffe://kest.bench/audit";

fn corpus(dir: &Path) -> String {
    let key = SigningKey::from_ed25519_seed(&[5; 32]).unwrap();
    let public = serde_json::to_string(&key.verifying_key().to_jwk()).unwrap();
    let signer = KeySigner::new(key, W);
    std::fs::create_dir_all(dir.join("passports")).unwrap();
    for file in 0..1000 {
        let mut passport = Passport::new();
        for step in 0..10 {
            passport
                .append(
                    EntryBuilder::new(format!("step{step}"))
                        .principal(W)
                        .label("file", file.to_string()),
                    &signer,
                    &WeakestLink,
                )
                .unwrap();
        }
        std::fs::write(
            dir.join(format!("passports/{file:04}.json")),
            passport.to_json(),
        )
        .unwrap();
    }
    let jwk = dir.join("key.jwk");
    std::fs::write(&jwk, public).unwrap();
    format!("{W}={}", jwk.display())
}

fn audit(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let key = corpus(dir.path());
    let passports = dir.path().join("passports");
    let out = dir.path().join("report.json");
    let mut group = c.benchmark_group("audit");
    group.sample_size(10);
    group.bench_function("1000_passports_of_10", |b| {
        let args = AuditArgs {
            paths: vec![passports.display().to_string()],
            keys: vec![key.clone()],
            format: AuditFormat::Json,
            out: Some(out.display().to_string()),
            ..AuditArgs::default()
        };
        b.iter(|| run(&args).unwrap());
    });
    group.bench_function("verify_one_by_one_1000_of_10", |b| {
        let resolver =
            kest_cli::commands::verify::resolver(std::slice::from_ref(&key), &[]).unwrap();
        let mut files: Vec<_> = std::fs::read_dir(&passports)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        files.sort();
        b.iter(|| {
            for file in &files {
                let text = std::fs::read_to_string(file).unwrap();
                Verifier::new(&resolver).verify_json(&text).unwrap();
            }
        });
    });
    group.finish();
}

criterion_group!(benches, audit);
criterion_main!(benches);
