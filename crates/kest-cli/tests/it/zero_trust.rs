//! The command-line side of verified lineage: the tip pin for one JWS, principals with `=`,
//! baggage with nothing to verify, `append` refusing what it cannot verify, and untrusted
//! text escaped before it reaches the terminal.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn kest(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kest"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        pipe.write_all(text.as_bytes()).unwrap();
    }
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn ok(output: &Output) -> String {
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn failed(output: &Output, code: i32) -> String {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// Writes a private key to `file` (for signing) and the public key `kest keygen` prints
/// beside it as `NAME.pub.jwk` (for verifying).
fn keygen(dir: &Path, file: &str) {
    let public = ok(&kest(dir, &["keygen", "--out", file], None));
    std::fs::write(dir.join(file.replace(".jwk", ".pub.jwk")), public).unwrap();
}

fn append(dir: &Path, key: &str, principal: &str, operation: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "append",
        "--key",
        key,
        "--principal",
        principal,
        "--operation",
        operation,
    ];
    args.extend_from_slice(extra);
    kest(dir, &args, None)
}

#[test]
fn a_single_jws_must_be_the_pinned_tip() {
    let dir = tempfile::tempdir().unwrap();
    keygen(dir.path(), "k.jwk");
    let w = "spiffe://kest.test/w";
    let one = ok(&append(dir.path(), "k.jwk", w, "a", &[]));
    let two = ok(&append(dir.path(), "k.jwk", w, "b", &[]));
    let jws_a: Vec<String> = serde_json::from_str(&one).unwrap();
    let jws_b: Vec<String> = serde_json::from_str(&two).unwrap();
    std::fs::write(dir.path().join("a.jws"), &jws_a[0]).unwrap();
    let tip_b = kest_canon::sha256_hex(jws_b[0].as_bytes());
    let tip_a = kest_canon::sha256_hex(jws_a[0].as_bytes());
    let key = format!("{w}=k.pub.jwk");
    let error = failed(
        &kest(
            dir.path(),
            &["verify", "a.jws", "--key", &key, "--expect-tip", &tip_b],
            None,
        ),
        1,
    );
    assert!(error.contains("truncated or extended"), "{error}");
    let shown = ok(&kest(
        dir.path(),
        &["verify", "a.jws", "--key", &key, "--expect-tip", &tip_a],
        None,
    ));
    assert!(shown.starts_with("verified: entry"), "{shown}");
}

#[test]
fn a_principal_may_contain_an_equals_sign() {
    let dir = tempfile::tempdir().unwrap();
    keygen(dir.path(), "k.jwk");
    let w = "spiffe://kest.test/team=billing/w";
    let passport = ok(&append(dir.path(), "k.jwk", w, "a", &["--out", "p.json"]));
    assert!(passport.is_empty());
    let shown = ok(&kest(
        dir.path(),
        &["verify", "p.json", "--key", &format!("{w}=k.pub.jwk")],
        None,
    ));
    assert!(shown.starts_with("verified: 1 entry,"), "{shown}");
}

#[test]
fn baggage_without_a_passport_is_not_a_verified_passport() {
    let dir = tempfile::tempdir().unwrap();
    keygen(dir.path(), "k.jwk");
    let key = "spiffe://kest.test/w=k.pub.jwk";
    let error = failed(
        &kest(
            dir.path(),
            &["verify", "--key", key],
            Some("kest.user=alice,tenant=acme"),
        ),
        2,
    );
    assert!(error.contains("carries no passport"), "{error}");
    let error = failed(
        &kest(dir.path(), &["inspect"], Some("baggage: kest.user=alice")),
        2,
    );
    assert!(error.contains("carries no passport"), "{error}");
    // An announced empty chain is one.
    let shown = ok(&kest(
        dir.path(),
        &["verify", "--key", key],
        Some("kest.chain_tip=0"),
    ));
    assert!(shown.starts_with("verified: 0 entries"), "{shown}");
    // A malformed tip is named.
    let error = failed(
        &kest(
            dir.path(),
            &["verify", "--key", key],
            Some("kest.chain_tip=nope"),
        ),
        1,
    );
    assert!(error.contains("is not an entry hash"), "{error}");
}

#[test]
fn append_verifies_what_it_extends() {
    let dir = tempfile::tempdir().unwrap();
    keygen(dir.path(), "upstream.jwk");
    keygen(dir.path(), "me.jwk");
    let upstream = "spiffe://kest.test/upstream";
    let me = "spiffe://kest.test/me";
    ok(&append(
        dir.path(),
        "upstream.jwk",
        upstream,
        "fetch",
        &["--out", "p.json"],
    ));
    // Its own entries the signer vouches for itself.
    ok(&append(
        dir.path(),
        "upstream.jwk",
        upstream,
        "again",
        &["--passport", "p.json", "--out", "p2.json"],
    ));
    // Another signer's: refused without keys for them.
    let error = failed(
        &append(dir.path(), "me.jwk", me, "next", &["--passport", "p.json"]),
        1,
    );
    assert!(error.contains("does not verify"), "{error}");
    assert!(error.contains("--unverified"), "{error}");
    // With the upstream key trusted (`--key P=FILE`, or a JWK Set), it goes on.
    let trusted = format!("{upstream}=upstream.pub.jwk");
    let extended = ok(&append(
        dir.path(),
        "me.jwk",
        me,
        "next",
        &["--passport", "p.json", "--key", &trusted],
    ));
    assert_eq!(
        serde_json::from_str::<Vec<String>>(&extended)
            .unwrap()
            .len(),
        2
    );
    // A forged upstream file is refused even with the key trusted.
    let text = std::fs::read_to_string(dir.path().join("p.json")).unwrap();
    let mut entries: Vec<String> = serde_json::from_str(&text).unwrap();
    entries[0] = entries[0].replacen(".ey", ".eZ", 1);
    std::fs::write(
        dir.path().join("forged.json"),
        serde_json::to_string(&entries).unwrap(),
    )
    .unwrap();
    let error = failed(
        &append(
            dir.path(),
            "me.jwk",
            me,
            "next",
            &["--passport", "forged.json", "--key", &trusted],
        ),
        1,
    );
    assert!(error.contains("entry 0"), "{error}");
    // `--unverified` says to take it as it is.
    ok(&append(
        dir.path(),
        "me.jwk",
        me,
        "next",
        &["--passport", "p.json", "--unverified"],
    ));
    // Two signing keys is a usage error.
    failed(
        &append(dir.path(), "me.jwk", me, "x", &["--key", "upstream.jwk"]),
        2,
    );
}

/// A principal and operation written to forge a line in the terminal come out escaped in
/// `inspect`, `tree` and `verify`.
#[test]
fn untrusted_text_is_escaped_on_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    keygen(dir.path(), "k.jwk");
    let principal = "spiffe://x/w\n\u{1b}[32mverified: 9 entries";
    let operation = "op\r\u{1b}]0;pwned\u{7}";
    let passport = ok(&append(dir.path(), "k.jwk", principal, operation, &[]));
    std::fs::write(dir.path().join("p.json"), &passport).unwrap();
    for args in [
        vec!["inspect", "p.json"],
        vec!["tree", "p.json"],
        vec!["tree", "p.json", "--format", "mermaid"],
        vec!["tree", "p.json", "--format", "dot"],
    ] {
        let shown = ok(&kest(dir.path(), &args, None));
        assert!(
            !shown.chars().any(|c| c.is_control() && c != '\n'),
            "{args:?}: {shown:?}"
        );
        assert!(!shown.contains("\nverified"), "{args:?}: {shown}");
        assert!(shown.contains(r"\u{1b}"), "{args:?}: {shown}");
    }
    // Verified against a key for another principal: the error quotes it, escaped.
    let error = failed(
        &kest(
            dir.path(),
            &["verify", "p.json", "--key", "spiffe://x/other=k.pub.jwk"],
            None,
        ),
        1,
    );
    assert!(!error.trim_end().chars().any(char::is_control), "{error:?}");
    // A huge claim id is cut short.
    let header = format!("kest.claim_check={}", "x".repeat(6000));
    let error = failed(
        &kest(
            dir.path(),
            &["verify", "--key", "spiffe://x/other=k.pub.jwk"],
            Some(&header),
        ),
        1,
    );
    assert!(error.len() < 400, "{} bytes: {error}", error.len());
}

/// Finding 7e of the authority report: a principal trusted with an Ed25519 key (`--key`)
/// and a P-256 key (`--jwks`), as while a workload moves from a local key to KMS: each
/// entry verifies with the key of its own algorithm, in either order of the options.
#[test]
fn a_principal_may_hold_keys_of_both_algorithms_in_different_sources() {
    use kest_crypto::{Jwks, KeySigner, SigningKey};
    use kest_passport::{EntryBuilder, Passport};
    const W: &str = "spiffe://kest.test/migrating";
    let dir = tempfile::tempdir().unwrap();
    let ed = SigningKey::from_ed25519_seed(&[5; 32]).unwrap();
    let ec = SigningKey::generate_p256().unwrap();
    let ed_public = ed.verifying_key().to_jwk();
    let mut ec_public = ec.verifying_key().to_jwk();
    ec_public.kid = Some(W.into());
    std::fs::write(
        dir.path().join("ed.jwk"),
        serde_json::to_string(&ed_public).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("kms.jwks"),
        serde_json::to_string(&Jwks {
            keys: vec![ec_public],
        })
        .unwrap(),
    )
    .unwrap();
    let mut passport = Passport::new();
    for (operation, key) in [("before", ed), ("after", ec)] {
        passport
            .append(
                EntryBuilder::new(operation).principal(W),
                &KeySigner::new(key, W),
                &kest_trust::WeakestLink,
            )
            .unwrap();
    }
    std::fs::write(dir.path().join("p.json"), passport.to_json()).unwrap();
    let key = format!("{W}=ed.jwk");
    for args in [
        [
            "verify",
            "p.json",
            "--key",
            key.as_str(),
            "--jwks",
            "kms.jwks",
        ],
        [
            "verify",
            "p.json",
            "--jwks",
            "kms.jwks",
            "--key",
            key.as_str(),
        ],
    ] {
        let out = ok(&kest(dir.path(), &args, None));
        assert!(out.contains("2 entries"), "{out}");
    }
    // Either key alone verifies only its own entries.
    let only_ed = failed(
        &kest(dir.path(), &["verify", "p.json", "--key", &key], None),
        1,
    );
    assert!(only_ed.contains("entry 1"), "{only_ed}");
}
