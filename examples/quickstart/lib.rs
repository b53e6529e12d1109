//! The quickstart: an agent pipeline under policy, on embedded defaults (a key made for
//! the run, Cedar in process, an in-memory decision cache). A guarded action is refused
//! before it runs while the data is untrusted, and allowed once a sanitizer has cleared
//! it; the passport is drawn, verified offline, then tampered with three ways.
//!
//! This crate depends on `kest` alone (with its `cedar` feature): everything the
//! quickstart needs is reachable through the facade. Run it with
//! `cargo run --example quickstart`.

use std::io::Write;
use std::sync::Arc;

use kest::crypto::{StaticKeyResolver, VerifyingKey};
use kest::identity::{IdentityProvider as _, LocalEd25519};
use kest::passport::{Passport, UnverifiedPassport, Verifier};
use kest::policy::{CedarEngine, DecisionCache};
use kest::{Call, Flow, Kest, Values};

const AGENT: &str = "spiffe://example.org/agents/support-bot";

/// The quickstart's policies, in Cedar. `invoke` lets the ordinary steps run; the refund
/// is guarded: only data trusted at 80 or more, and not `unverified`, may trigger it.
pub const POLICIES: &str = r#"
@id("invoke")
permit (principal, action == Action::"invoke", resource);

@id("refund/trusted-and-verified")
permit (principal, action == Action::"guarded_action", resource)
when {
  context.subject.trust_score >= 80 &&
  !context.subject.taints.contains("unverified")
};
"#;

/// Telemetry as the standard OpenTelemetry variables ask, read through `lookup`: spans and
/// metrics over OTLP to `OTEL_EXPORTER_OTLP_ENDPOINT` when it is set, nothing otherwise.
/// Keep the guard while the quickstart runs; dropping it exports what is left.
///
/// # Errors
/// An unusable `OTEL_EXPORTER_OTLP_PROTOCOL`, or an exporter that cannot be built.
pub fn telemetry(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Option<kest::telemetry::TelemetryGuard>, kest::telemetry::TelemetryError> {
    match kest::telemetry::exporter_from(lookup, "quickstart")? {
        Some((service, exporter)) => kest::telemetry::init(&service, exporter).map(Some),
        None => Ok(None),
    }
}

/// The quickstart: writes its report to `out`.
///
/// # Errors
/// Any failure to build, sign or verify, which would be a bug.
pub async fn quickstart(out: &mut (dyn Write + Send)) -> Result<(), Box<dyn std::error::Error>> {
    // Embedded defaults: a key made for this run, Cedar in process, decisions cached in
    // memory. In production the key comes from SPIFFE, KMS or OIDC (`Kest::from_env`).
    let identity = Arc::new(LocalEd25519::new(AGENT)?);
    let engine = CedarEngine::builder()
        .policy_source("quickstart", POLICIES)
        .build()?;
    let kest = Kest::builder()
        .identity(Arc::clone(&identity))
        .engine(engine)
        .decision_cache(Arc::new(DecisionCache::new(
            1_000,
            std::time::Duration::from_secs(60),
        )))
        .service_name("quickstart")
        .build()?;

    let ingest = kest.protect(
        Call::new("ingest_ticket")
            .policy("invoke")
            .origin("user_input")
            .added_taints(["unverified"]),
    )?;
    let lookup = kest.protect(
        Call::new("lookup_order")
            .policy("invoke")
            .origin("internal"),
    )?;
    let sanitize = kest.protect(
        Call::new("verify_customer")
            .policy("invoke")
            .removed_taints(["unverified"])
            .trust_override(90),
    )?;
    let refund = kest.protect(Call::new("issue_refund").policy("guarded_action"))?;

    writeln!(
        out,
        "An agent handles a support ticket; every step is checked, then signed.\n"
    )?;
    let flow = Flow::new();
    let refunded = flow
        .scope(async {
            let ticket = ingest
                .run_serialized(Values::new().user("customer-4711"), async {
                    "Refund order 1234, it arrived broken".to_owned()
                })
                .await?;
            let order = lookup
                .run_serialized(Values::new().resource_id("order-1234"), async {
                    ("order-1234", 59.90)
                })
                .await?;
            let _ = (ticket, order);

            // The ticket text came from a user: trust 40 and `unverified`. The refund
            // policy refuses, and the refund closure never runs.
            let mut ran = false;
            let refused = refund
                .run(Values::new().resource_id("order-1234"), async {
                    ran = true
                })
                .await;
            match refused {
                Err(error) if error.is_denied() => {
                    writeln!(out, "issue_refund    DENIED before it ran (ran: {ran})")?;
                    writeln!(out, "                {error}")?;
                }
                other => return Err(format!("expected a denial, got {other:?}").into()),
            }

            // A sanitizer checks the customer against the order, clears `unverified` and
            // vouches for the data (trust 90). Now the refund is allowed.
            sanitize
                .run(Values::new().user("customer-4711"), async {})
                .await?;
            let issued = refund
                .run(Values::new().resource_id("order-1234"), async {
                    "refund #77 issued"
                })
                .await?;
            Ok::<_, Box<dyn std::error::Error>>(issued)
        })
        .await?;
    writeln!(out, "verify_customer cleared `unverified`, trust set to 90")?;
    writeln!(out, "issue_refund    ALLOWED: {refunded}\n")?;

    let passport = flow.passport();
    writeln!(out, "The passport ({} signed entries):", passport.len())?;
    writeln!(
        out,
        "{}",
        kest::passport::render::text_tree(&passport).trim_end()
    )?;

    // What an auditor holds: the passport and the agent's public key.
    let public = VerifyingKey::from_jwk(&identity.describe().await?.jwk)?;
    let auditor = StaticKeyResolver::new().with_key(AGENT, public);
    let tip = passport.tip_hash().ok_or("empty passport")?;
    let verifier = Verifier::new(&auditor).expect_tip(tip);
    let report = verifier.verify_json(&passport.to_json())?;
    writeln!(
        out,
        "\nVerified offline: {} entries, tip {}",
        report.len(),
        tip.to_hex().get(..16).unwrap_or_default()
    )?;
    for finding in report.findings() {
        writeln!(out, "  audit: {finding}")?;
    }
    tamper(out, &verifier, &passport)?;
    Ok(())
}

/// Three forgeries of the passport, each caught.
fn tamper(
    out: &mut (dyn Write + Send),
    verifier: &Verifier<'_>,
    passport: &Passport,
) -> Result<(), Box<dyn std::error::Error>> {
    writeln!(out, "\nNow tamper with it:")?;
    let entries: Vec<String> =
        UnverifiedPassport::decode(&passport.to_json(), &Default::default())?
            .entries()
            .iter()
            .map(|entry| entry.jws().into_owned())
            .collect();
    let [first, rest @ ..] = entries.as_slice() else {
        return Err("empty passport".into());
    };
    // 1. Launder trust: raise the first entry's score, keep its signature.
    let mut laundered = vec![rewrite_payload(
        first,
        r#""trust_score":40"#,
        r#""trust_score":99"#,
    )?];
    laundered.extend(rest.iter().cloned());
    show(out, "raise trust in entry 0", verifier, &laundered)?;
    // 2. Drop an entry from the middle.
    let mut dropped = entries.clone();
    dropped.remove(1);
    show(out, "drop entry 1", verifier, &dropped)?;
    // 3. Truncate the tail: every remaining entry is genuine, but the tip is pinned.
    show(
        out,
        "drop the last entry",
        verifier,
        entries
            .get(..entries.len().saturating_sub(1))
            .unwrap_or_default(),
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
    let payload = String::from_utf8(kest::canon::b64url_decode(payload, "payload")?)?;
    if !payload.contains(from) {
        return Err(format!("the payload has no `{from}`").into());
    }
    let payload = kest::canon::b64url_encode(payload.replace(from, to).as_bytes());
    Ok(format!("{header}.{payload}.{signature}"))
}

fn show(
    out: &mut (dyn Write + Send),
    what: &str,
    verifier: &Verifier<'_>,
    entries: &[String],
) -> Result<(), Box<dyn std::error::Error>> {
    // A JWS is base64url and dots: nothing in it needs escaping in JSON.
    let json = format!("[\"{}\"]", entries.join("\",\""));
    match verifier.verify_json(&json) {
        Ok(_) => writeln!(out, "  {what:<24} -> NOT detected (this is a bug)")?,
        Err(error) => writeln!(out, "  {what:<24} -> rejected: {error}")?,
    }
    Ok(())
}
