//! The attack corpus: every input written while attacking the verifier, with the verdict
//! and cause `kest` must give. The table is `tests/corpus/attacks.json`; each case names
//! the finding it covers, the files and standard input it gives `kest`, the arguments, and
//! the expected exit code and cause.
//!
//! The table is data, generated once by this file from fixed seeds and ids
//! (`KEST_REGENERATE_ATTACKS=1 cargo test -p kest-cli --test it attack_corpus`) and then
//! committed: changing the code never changes what is expected of it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::too_many_lines,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Corpus {
    description: String,
    cases: Vec<Case>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Case {
    /// A short name.
    name: String,
    /// The finding of issue 8 it covers.
    finding: String,
    /// Files written into the working directory first.
    #[serde(default)]
    files: BTreeMap<String, String>,
    /// Standard input.
    #[serde(default)]
    stdin: Option<String>,
    /// The arguments after `kest`.
    args: Vec<String>,
    /// 0: accepted; 1: refused by the check; 2: refused as unusable input.
    exit: i32,
    /// Text the verdict must contain (stdout when accepted, stderr otherwise).
    cause: String,
}

fn corpus_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/attacks.json")
}

#[test]
fn every_attack_gets_its_verdict_and_cause() {
    if std::env::var("KEST_REGENERATE_ATTACKS").is_ok_and(|v| v == "1") {
        let corpus = generate::corpus();
        std::fs::create_dir_all(corpus_path().parent().unwrap()).unwrap();
        std::fs::write(
            corpus_path(),
            serde_json::to_string_pretty(&corpus).unwrap() + "\n",
        )
        .unwrap();
    }
    let corpus: Corpus =
        serde_json::from_str(&std::fs::read_to_string(corpus_path()).unwrap()).unwrap();
    assert!(corpus.cases.len() >= 20, "{}", corpus.cases.len());
    let mut wrong = Vec::new();
    for case in &corpus.cases {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in &case.files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_kest"))
            .args(&case.args)
            .current_dir(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut pipe = child.stdin.take().unwrap();
        if let Some(text) = &case.stdin {
            pipe.write_all(text.as_bytes()).unwrap();
        }
        drop(pipe);
        let output = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let verdict = if case.exit == 0 { &stdout } else { &stderr };
        let code = output.status.code().unwrap_or(-1);
        // Whatever the verdict, nothing printed carries a control character but newlines.
        let clean = !stdout
            .chars()
            .chain(stderr.chars())
            .any(|c| c.is_control() && c != '\n');
        if code != case.exit || !verdict.contains(&case.cause) || !clean {
            wrong.push(format!(
                "{} ({}): exit {code}, expected {} with `{}`\n  stdout: {stdout}\n  stderr: {stderr}",
                case.name, case.finding, case.exit, case.cause
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Builds the corpus. Ed25519 signatures are deterministic and every id and timestamp is
/// fixed, so regenerating gives the same Ed25519 cases; ES256 signatures are randomized.
mod generate {
    use std::collections::BTreeMap;

    use kest_crypto::{KeySigner, SigningKey};
    use kest_passport::{EntryBuilder, Head, Parents, Runtime, SignedEntry};
    use kest_propagation::{Baggage, compress_passport, keys};
    use kest_trust::{TaintSet, TrustScore, WeakestLink};

    use super::{Case, Corpus};

    const W: &str = "spiffe://attack.test/w";

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_ed25519_seed(&[seed; 32]).unwrap()
    }

    fn signer(seed: u8, principal: &str) -> KeySigner {
        KeySigner::new(key(seed), principal)
    }

    fn public_jwk(seed: u8) -> String {
        serde_json::to_string(&key(seed).verifying_key().to_jwk()).unwrap()
    }

    /// Entry ids and timestamps from a counter, so the corpus is reproducible.
    fn step(n: u128, operation: &str) -> EntryBuilder {
        let id = uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 | n);
        EntryBuilder::new(operation)
            .principal(W)
            .entry_id(id)
            .timestamp_ms(1_700_000_000_000 + u64::try_from(n).unwrap())
            .trace_id("0af7651916cd43dd8448eb211c80319c")
    }

    fn sign(builder: EntryBuilder, parents: &[&SignedEntry], by: &KeySigner) -> SignedEntry {
        let heads: Vec<Head<'_>> = parents.iter().map(|p| Head::from(*p)).collect();
        SignedEntry::sign(builder.build_on(&heads, &WeakestLink).unwrap(), by).unwrap()
    }

    fn explicit(
        builder: EntryBuilder,
        parents: Parents,
        trust: u8,
        taints: &[&str],
        by: &KeySigner,
    ) -> SignedEntry {
        let taints: TaintSet = taints.iter().copied().collect();
        let entry = builder
            .build_explicit(parents, TrustScore::new(trust).unwrap(), &taints)
            .unwrap();
        SignedEntry::sign(entry, by).unwrap()
    }

    fn list(entries: &[&SignedEntry]) -> String {
        let jws: Vec<String> = entries.iter().map(|e| e.jws().into_owned()).collect();
        serde_json::to_string(&jws).unwrap()
    }

    fn chain(by: &KeySigner, len: u128) -> Vec<SignedEntry> {
        let mut out: Vec<SignedEntry> = Vec::new();
        for n in 0..len {
            let parents: Vec<&SignedEntry> = out.last().into_iter().collect();
            let entry = sign(step(n, &format!("op{n}")), &parents, by);
            out.push(entry);
        }
        out
    }

    fn trusted() -> BTreeMap<String, String> {
        BTreeMap::from([("w.jwk".to_owned(), public_jwk(1))])
    }

    fn verify(extra: &[&str]) -> Vec<String> {
        let mut args = vec![
            "verify".to_owned(),
            "--key".to_owned(),
            format!("{W}=w.jwk"),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    }

    fn case(
        name: &str,
        finding: &str,
        files: BTreeMap<String, String>,
        stdin: Option<String>,
        args: Vec<String>,
        exit: i32,
        cause: &str,
    ) -> Case {
        Case {
            name: name.into(),
            finding: finding.into(),
            files,
            stdin,
            args,
            exit,
            cause: cause.into(),
        }
    }

    /// The eight small-order points; the identity's "signature" R = identity, S = 0.
    const IDENTITY: &str = "0100000000000000000000000000000000000000000000000000000000000000";
    const ORDER_8: &str = "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a";

    fn okp(hex_key: &str, kid: Option<&str>) -> String {
        let mut jwk = serde_json::json!({
            "kty": "OKP", "crv": "Ed25519",
            "x": kest_canon::b64url_encode(&hex::decode(hex_key).unwrap()),
        });
        if let Some(kid) = kid {
            jwk["kid"] = kid.into();
        }
        jwk.to_string()
    }

    /// `(r, n − s)` of a fixed-size ES256 signature.
    fn flip_s(signature: &[u8]) -> Vec<u8> {
        let n = hex::decode("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551")
            .unwrap();
        let mut out = signature[..32].to_vec();
        let mut flipped = [0_u8; 32];
        let mut borrow = 0_i16;
        for i in (0..32).rev() {
            let mut digit = i16::from(n[i]) - i16::from(signature[32 + i]) - borrow;
            borrow = 0;
            if digit < 0 {
                digit += 256;
                borrow = 1;
            }
            flipped[i] = u8::try_from(digit).unwrap();
        }
        out.extend_from_slice(&flipped);
        out
    }

    fn with_signature(jws: &str, signature: &[u8]) -> String {
        let (input, _) = jws.rsplit_once('.').unwrap();
        format!("{input}.{}", kest_canon::b64url_encode(signature))
    }

    fn with_header(jws: &str, header: &str) -> String {
        let (_, rest) = jws.split_once('.').unwrap();
        format!("{}.{rest}", kest_canon::b64url_encode(header.as_bytes()))
    }

    pub(super) fn corpus() -> Corpus {
        let w = signer(1, W);
        let stranger = signer(2, W);
        let mut cases = Vec::new();
        let three = chain(&w, 3);
        let three_refs: Vec<&SignedEntry> = three.iter().collect();

        // -- the tip pin on one JWS
        let tip_of_other = three[2].hash().to_hex();
        cases.push(case(
            "single JWS that is not the pinned tip",
            "--expect-tip dropped for single-JWS input",
            trusted(),
            Some(three[0].jws().into_owned()),
            verify(&["--expect-tip", &tip_of_other]),
            1,
            "truncated or extended",
        ));
        cases.push(case(
            "single JWS that is the pinned tip",
            "--expect-tip dropped for single-JWS input",
            trusted(),
            Some(three[0].jws().into_owned()),
            verify(&["--expect-tip", &three[0].hash().to_hex()]),
            0,
            "verified: entry",
        ));

        // -- degenerate public keys
        let mut forged_by_identity = three[0].jws().rsplit_once('.').unwrap().0.to_owned();
        let mut constant = hex::decode(IDENTITY).unwrap();
        constant.extend_from_slice(&[0; 32]);
        forged_by_identity = format!(
            "{forged_by_identity}.{}",
            kest_canon::b64url_encode(&constant)
        );
        for (name, file, args_key) in [
            (
                "small-order key (identity) as a trusted JWK",
                okp(IDENTITY, None),
                "--key",
            ),
            (
                "small-order key (order 8) in a JWK Set",
                format!("{{\"keys\":[{}]}}", okp(ORDER_8, Some(W))),
                "--jwks",
            ),
        ] {
            let arg = if args_key == "--key" {
                format!("{W}=bad.jwk")
            } else {
                "bad.jwk".to_owned()
            };
            cases.push(case(
                name,
                "small-order and non-canonical Ed25519 keys accepted (universal forgery)",
                BTreeMap::from([("bad.jwk".to_owned(), file)]),
                Some(list_str(&[&forged_by_identity])),
                vec!["verify".into(), args_key.into(), arg],
                2,
                "small order",
            ));
        }
        let mut unreduced = vec![0xf0_u8];
        unreduced.extend_from_slice(&[0xff; 30]);
        unreduced.push(0x7f);
        cases.push(case(
            "non-canonical Ed25519 key (y = p + 3)",
            "small-order and non-canonical Ed25519 keys accepted (universal forgery)",
            BTreeMap::from([("bad.jwk".to_owned(), okp(&hex::encode(&unreduced), None))]),
            Some(list(&three_refs)),
            vec!["verify".into(), "--key".into(), format!("{W}=bad.jwk")],
            2,
            "not canonically encoded",
        ));

        // -- ES256 malleability
        let p256 = SigningKey::from_jwk_json(
            r#"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","d":"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}"#,
        )
        .unwrap();
        let p256_public = serde_json::to_string(&p256.verifying_key().to_jwk()).unwrap();
        let es = sign(step(100, "es256"), &[], &KeySigner::new(p256, W));
        let low = kest_canon::b64url_decode(es.jws().rsplit_once('.').unwrap().1, "sig").unwrap();
        let high = with_signature(&es.jws(), &flip_s(&low));
        cases.push(case(
            "ES256 entry re-spelled with the high-S signature",
            "ES256 signatures are malleable",
            BTreeMap::from([("w.jwk".to_owned(), p256_public.clone())]),
            Some(list_str(&[&high])),
            verify(&[]),
            1,
            "high S value",
        ));
        cases.push(case(
            "ES256 entry as signed (low S)",
            "ES256 signatures are malleable",
            BTreeMap::from([("w.jwk".to_owned(), p256_public)]),
            Some(list(&[&es])),
            verify(&[]),
            0,
            "verified: 1 entry",
        ));

        // -- one entry relaxing the audit of the chain
        let root = sign(
            step(200, "input").origin_score(TrustScore::new(40).unwrap()),
            &[],
            &w,
        );
        let raise = explicit(
            step(201, "raise"),
            Parents::Hashes(vec![root.hash()]),
            95,
            &[],
            &w,
        );
        let python = sign(
            step(202, "python").runtime(Runtime {
                name: "kest-python".into(),
                version: "0.3.0".into(),
                extra: BTreeMap::new(),
            }),
            &[&raise],
            &w,
        );
        cases.push(case(
            "undeclared raise by kest-rust, then an entry labelled kest-python",
            "strictness decided for the whole chain from each entry's runtime",
            trusted(),
            Some(list(&[&root, &raise, &python])),
            verify(&[]),
            1,
            "trust rose from 40 to 95 without a declared `kest.trust_override`",
        ));

        // -- a forged member masking a valid one
        let honest = list(&three_refs);
        let forged_chain = chain(&stranger, 4);
        let forged = list(&forged_chain.iter().collect::<Vec<_>>());
        let tip = three[2].hash().to_hex();
        for (name, inline, compressed, with_tip) in [
            (
                "forged inline beside valid compressed, tip",
                &forged,
                &honest,
                true,
            ),
            (
                "valid inline beside forged compressed, tip",
                &honest,
                &forged,
                true,
            ),
            (
                "forged longer inline beside valid compressed, no tip",
                &forged,
                &honest,
                false,
            ),
        ] {
            let mut baggage = Baggage::new();
            baggage.set(keys::PASSPORT, inline.clone()).unwrap();
            baggage
                .set(keys::PASSPORT_Z, compress_passport(compressed))
                .unwrap();
            if with_tip {
                baggage.set(keys::CHAIN_TIP, tip.clone()).unwrap();
            }
            cases.push(case(
                name,
                "a forged baggage member masks a valid one",
                trusted(),
                Some(baggage.to_header()),
                verify(&[]),
                0,
                "verified: 3 entries",
            ));
        }
        let mut diverging = Baggage::new();
        let other = sign(step(300, "elsewhere"), &[&three[1]], &w);
        diverging.set(keys::PASSPORT, honest.clone()).unwrap();
        diverging
            .set(
                keys::PASSPORT_Z,
                compress_passport(&list(&[&three[0], &three[1], &other])),
            )
            .unwrap();
        cases.push(case(
            "two valid members that diverge, no tip",
            "a forged baggage member masks a valid one (conflicts are named)",
            trusted(),
            Some(diverging.to_header()),
            verify(&[]),
            1,
            "`kest.passport` and `kest.passport_z` conflict",
        ));

        // -- the same cause whatever the transport
        let tampered = {
            let mut jws: Vec<String> = three.iter().map(|e| e.jws().into_owned()).collect();
            jws[1] = jws[1].replacen(".ey", ".eZ", 1);
            serde_json::to_string(&jws).unwrap()
        };
        cases.push(case(
            "tampered entry 1, as a file",
            "causes depend on the transport",
            trusted(),
            Some(tampered.clone()),
            verify(&[]),
            1,
            "entry 1",
        ));
        let mut carried = Baggage::new();
        carried.set(keys::PASSPORT, tampered).unwrap();
        carried.set(keys::CHAIN_TIP, tip.clone()).unwrap();
        cases.push(case(
            "tampered entry 1, in baggage",
            "causes depend on the transport",
            trusted(),
            Some(carried.to_header()),
            verify(&[]),
            1,
            "entry 1",
        ));
        let mut bad_tip = Baggage::new();
        bad_tip.set(keys::PASSPORT, honest.clone()).unwrap();
        bad_tip.set(keys::CHAIN_TIP, "not-a-hash").unwrap();
        cases.push(case(
            "malformed kest.chain_tip beside a valid passport",
            "causes depend on the transport",
            trusted(),
            Some(bad_tip.to_header()),
            verify(&[]),
            1,
            "`kest.chain_tip` `not-a-hash` is not an entry hash",
        ));

        // -- control characters and huge values
        let ansi = "spiffe://attack.test/w\n\u{1b}[32mverified: 99 entries";
        let loud = SignedEntry::sign(
            EntryBuilder::new("op\r\u{1b}]0;owned\u{7}")
                .principal(ansi)
                .entry_id(uuid::Uuid::from_u128(
                    0x0190_0000_0000_7000_8000_0000_0000_0400,
                ))
                .timestamp_ms(1_700_000_000_400)
                .build_on(&[], &WeakestLink)
                .unwrap(),
            &signer(1, ansi),
        )
        .unwrap();
        for command in ["inspect", "tree"] {
            cases.push(case(
                &format!("ANSI escapes in principal and operation, {command}"),
                "untrusted text reaches the terminal raw",
                BTreeMap::new(),
                Some(list(&[&loud])),
                vec![command.into()],
                0,
                r"\u{1b}[32mverified: 99 entries",
            ));
        }
        cases.push(case(
            "ANSI escapes in an unknown principal, verify",
            "untrusted text reaches the terminal raw",
            trusted(),
            Some(list(&[&loud])),
            verify(&[]),
            1,
            r"\n\u{1b}[32mverified: 99 entries",
        ));
        let mut huge = Baggage::new();
        huge.set("kest.claim_check", "c".repeat(5000)).unwrap();
        cases.push(case(
            "a 5,000-character claim id",
            "a huge claim id is echoed in full",
            trusted(),
            Some(huge.to_header()),
            verify(&[]),
            1,
            "ccc…",
        ));

        // -- the smaller findings
        let array_header = with_header(
            &three[0].jws(),
            r#"["EdDSA","spiffe://attack.test/w","JWS"]"#,
        );
        cases.push(case(
            "a JWS header that is a JSON array",
            "a JWS header that is a JSON array is accepted",
            trusted(),
            Some(list_str(&[&array_header])),
            verify(&[]),
            1,
            "not a JSON object",
        ));
        // 20,000 levels keep the file small; the unit test in kest-crypto goes to 200,000.
        let deep = format!(
            r#"{{"alg":"EdDSA","kid":"{W}","typ":"JWS","x-ignored":{}0{}}}"#,
            "[".repeat(20_000),
            "]".repeat(20_000)
        );
        cases.push(case(
            "a 20,000-deep array in an ignored header member",
            "deep nesting inside an ignored header member is accepted",
            trusted(),
            Some(list_str(&[&with_header(&three[0].jws(), &deep)])),
            verify(&[]),
            1,
            "nesting deeper than 128",
        ));
        let rotated = sign(step(500, "after rotation"), &[], &signer(3, W));
        cases.push(case(
            "a principal with two keys (rotation), signed with the second",
            "a principal with two keys is refused",
            BTreeMap::from([
                ("old.jwk".to_owned(), public_jwk(1)),
                ("new.jwk".to_owned(), public_jwk(3)),
            ]),
            Some(list(&[&rotated])),
            vec![
                "verify".into(),
                "--key".into(),
                format!("{W}=old.jwk"),
                "--key".into(),
                format!("{W}=new.jwk"),
            ],
            0,
            "verified: 1 entry",
        ));
        let equals = "spiffe://attack.test/team=billing";
        let with_equals = SignedEntry::sign(
            EntryBuilder::new("op")
                .principal(equals)
                .entry_id(uuid::Uuid::from_u128(
                    0x0190_0000_0000_7000_8000_0000_0000_0600,
                ))
                .timestamp_ms(1_700_000_000_600)
                .build_on(&[], &WeakestLink)
                .unwrap(),
            &signer(1, equals),
        )
        .unwrap();
        cases.push(case(
            "--key for a principal containing `=`",
            "--key cuts at the first `=`",
            trusted(),
            Some(list(&[&with_equals])),
            vec!["verify".into(), "--key".into(), format!("{equals}=w.jwk")],
            0,
            "verified: 1 entry",
        ));
        for (name, member, value) in [
            ("use enc", "use", serde_json::json!("enc")),
            ("alg ECDH-ES", "alg", serde_json::json!("ECDH-ES")),
            ("key_ops encrypt", "key_ops", serde_json::json!(["encrypt"])),
        ] {
            let mut jwk: serde_json::Value = serde_json::from_str(&public_jwk(1)).unwrap();
            jwk["kid"] = W.into();
            jwk[member] = value;
            cases.push(case(
                &format!("JWK Set key marked {name}"),
                "JWKS keys marked for encryption are accepted as signing keys",
                BTreeMap::from([(
                    "set.jwks".to_owned(),
                    serde_json::json!({ "keys": [jwk] }).to_string(),
                )]),
                Some(list(&three_refs)),
                vec!["verify".into(), "--jwks".into(), "set.jwks".into()],
                2,
                "not a signing key",
            ));
        }
        let wrong_variant = SignedEntry::sign(
            EntryBuilder::new("op")
                .principal(W)
                .entry_id(uuid::Uuid::parse_str("01890a5d-ac96-774b-cdad-a1b2c3d4e5f6").unwrap())
                .timestamp_ms(1_700_000_000_700)
                .build_on(&[], &WeakestLink)
                .unwrap(),
            &w,
        )
        .unwrap();
        cases.push(case(
            "entry_id with the wrong UUID variant bits",
            "an entry_id that is not a valid UUIDv7 is accepted",
            trusted(),
            Some(list(&[&wrong_variant])),
            verify(&[]),
            1,
            "variant bits",
        ));
        cases.push(case(
            "baggage with no passport member and no tip",
            "baggage with no passport prints `verified: 0 entries`",
            trusted(),
            Some("kest.user=alice,kest.task=refund".into()),
            verify(&[]),
            2,
            "carries no passport",
        ));
        let resigned = sign(step(0, "op0"), &[], &stranger);
        cases.push(case(
            "an entry re-signed by an unknown key",
            "forged or re-signed entries",
            trusted(),
            Some(list(&[&resigned])),
            verify(&[]),
            1,
            "signature does not verify",
        ));
        Corpus {
            description: "Attacks on the Kest verifier (issue 8): input, verdict (exit code) and cause. Generated by crates/kest-cli/tests/it/attack_corpus.rs; see its header.".into(),
            cases,
        }
    }

    fn list_str(jws: &[&str]) -> String {
        serde_json::to_string(jws).unwrap()
    }
}
