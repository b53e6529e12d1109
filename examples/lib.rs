//! Runnable examples for Kest for Rust. Run one with `cargo run --example <name>`:
//!
//! - `quickstart`: build a signed lineage chain, verify it offline, tamper with it and
//!   watch the verifier name the entry that was changed. Its code is [`quickstart`], so
//!   that the test suite runs it too.

use std::io::Write;

use kest_crypto::{KeySigner, SigningKey, StaticKeyResolver};
use kest_passport::{EntryBuilder, Passport, Verifier};
use kest_trust::{OriginMap, WeakestLink};

const AGENT: &str = "spiffe://example.org/agents/support-bot";

/// The quickstart: writes its report to `out`.
///
/// # Errors
/// Any failure to build, sign or verify, which would be a bug.
pub fn quickstart(out: &mut dyn Write) -> Result<(), Box<dyn std::error::Error>> {
    // A workload key. In production it comes from SPIFFE, KMS or an OIDC-federated
    // identity; the auditor holds only the public half.
    let key = SigningKey::generate_ed25519()?;
    let auditor_keys = StaticKeyResolver::new().with_key(AGENT, key.verifying_key().clone());
    let signer = KeySigner::new(key, AGENT);
    let origins = OriginMap::new();

    // Three protected steps of one request.
    let mut passport = Passport::new();
    passport.append(
        EntryBuilder::new("read_ticket")
            .principal(AGENT)
            .origin_score(origins.score("user_input")?)
            .added_taints(["pii"]),
        &signer,
        &WeakestLink,
    )?;
    passport.append(
        EntryBuilder::new("redact_pii")
            .principal(AGENT)
            .removed_taints(["pii"]),
        &signer,
        &WeakestLink,
    )?;
    passport.append(
        EntryBuilder::new("draft_reply")
            .principal(AGENT)
            .origin_score(origins.score("llm")?)
            .added_taints(["llm_generated"]),
        &signer,
        &WeakestLink,
    )?;

    writeln!(
        out,
        "Built a passport of {} signed entries:",
        passport.len()
    )?;
    for (index, entry) in passport.entries().iter().enumerate() {
        let taints: Vec<&str> = entry
            .entry()
            .taints_as_written()
            .iter()
            .map(String::as_str)
            .collect();
        writeln!(
            out,
            "  #{index} {:<12} trust {:>3}  taints {:<17} hash {}",
            entry.entry().operation(),
            entry.entry().trust_score(),
            format!("{taints:?}"),
            &entry.hash().to_hex()[..16]
        )?;
    }

    // What travels between services: a JSON array of JWS strings.
    let wire = passport.to_json();
    let tip = passport.tip_hash().ok_or("empty passport")?;
    let verifier = Verifier::new(&auditor_keys).expect_tip(tip);
    let report = verifier.verify_json(&wire)?;
    writeln!(
        out,
        "\nVerified offline: {} entries, tip {}",
        report.len(),
        &tip.to_hex()[..16]
    )?;
    for finding in report.findings() {
        writeln!(out, "  audit: {finding}")?;
    }

    writeln!(out, "\nNow tamper with it:")?;
    let entries: Vec<String> = serde_json::from_str(&wire)?;
    let [first, second, third] = entries.as_slice() else {
        return Err("expected three entries".into());
    };

    // 1. Launder trust: rewrite the first entry's trust score, keep its signature.
    let laundered = rewrite_payload(first, r#""trust_score":40"#, r#""trust_score":99"#)?;
    show(
        out,
        "raise trust in entry 0",
        &verifier,
        &[laundered, second.clone(), third.clone()],
    )?;

    // 2. Drop the middle entry.
    show(
        out,
        "drop entry 1",
        &verifier,
        &[first.clone(), third.clone()],
    )?;

    // 3. Truncate the tail: every remaining entry is genuine, but the tip is pinned.
    show(
        out,
        "truncate to 2 entries",
        &verifier,
        &[first.clone(), second.clone()],
    )?;

    Ok(())
}

/// Decodes a JWS payload, replaces text in it and re-encodes it, keeping the signature.
fn rewrite_payload(jws: &str, from: &str, to: &str) -> Result<String, Box<dyn std::error::Error>> {
    let mut parts = jws.split('.');
    let (Some(header), Some(payload), Some(signature)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err("not a JWS".into());
    };
    let payload = String::from_utf8(kest_canon::b64url_decode(payload, "payload")?)?;
    let payload = kest_canon::b64url_encode(payload.replace(from, to).as_bytes());
    Ok(format!("{header}.{payload}.{signature}"))
}

fn show(
    out: &mut dyn Write,
    what: &str,
    verifier: &Verifier<'_>,
    entries: &[String],
) -> Result<(), Box<dyn std::error::Error>> {
    match verifier.verify_json(&serde_json::to_string(entries)?) {
        Ok(_) => writeln!(out, "  {what:<24} -> NOT detected (this is a bug)")?,
        Err(error) => writeln!(out, "  {what:<24} -> rejected: {error}")?,
    }
    Ok(())
}
