//! `kest audit`: find every passport in files, directories and span exports, verify each
//! with the given keys, and summarise per principal and per operation.

mod sources;

#[doc(hidden)]
pub use self::sources::fuzz_read;

use std::collections::{BTreeMap, BTreeSet};

use clap::ValueEnum;
use kest_canon::Untrusted;
use kest_crypto::KeyResolver;
use kest_passport::render::{Denial, Lineage, html_escape, html_page, html_section};
use kest_passport::{
    FindingKind, PassportError, Strictness, UnverifiedEntry, VerificationReport, VerifiedEntries,
    Verifier,
};
use kest_propagation::{InboundPassport, PropagationError};
use serde_json::{Value, json};

use self::sources::{Candidate, DeniedCall, Found};
use crate::error::CliError;
use crate::input::{self, Input};
use crate::output;

/// Output formats of `kest audit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum AuditFormat {
    /// One line per passport, then the summary tables.
    #[default]
    Text,
    /// One JSON object: `passports` and `summary`.
    Json,
    /// One self-contained HTML page: the summary, then each passport drawn.
    Html,
}

/// The options of `kest audit`.
#[derive(Debug, Clone, Default)]
pub struct AuditArgs {
    /// Files and directories to search.
    pub paths: Vec<String>,
    /// Trusted keys, `PRINCIPAL=JWKFILE`.
    pub keys: Vec<String>,
    /// Trusted JWK Set files.
    pub jwks: Vec<String>,
    /// Output format.
    pub format: AuditFormat,
    /// Where to write the report; stdout when absent.
    pub out: Option<String>,
    /// Strictness of the label audit.
    pub strictness: Strictness,
}

/// The verdict on one passport.
struct Checked {
    found: Found,
    outcome: Outcome,
}

enum Outcome {
    Verified(VerificationReport),
    Failed(Failure),
    Unavailable(String),
}

struct Failure {
    index: Option<usize>,
    entry_id: Option<String>,
    cause: String,
    /// The passport text, when there is one to draw.
    text: Option<String>,
}

fn failure(error: &PassportError, text: Option<String>) -> Failure {
    let (index, entry_id) = match error {
        PassportError::Entry {
            index, entry_id, ..
        } => (Some(*index), entry_id.clone()),
        _ => (None, None),
    };
    Failure {
        index,
        entry_id,
        cause: error
            .fault()
            .map_or_else(|| error.to_string(), ToString::to_string),
        text,
    }
}

fn plain_failure(cause: String) -> Failure {
    Failure {
        index: None,
        entry_id: None,
        cause,
        text: None,
    }
}

/// Verifies one candidate, sharing the resolver and the verified-entry cache.
fn check(
    candidate: &Candidate,
    resolver: &dyn KeyResolver,
    cache: &VerifiedEntries,
    strictness: Strictness,
) -> Outcome {
    let limits = input::limits();
    let verifier = Verifier::new(resolver)
        .strictness(strictness)
        .limits(limits)
        .cache(cache);
    match candidate {
        Candidate::Json { text, tip } => {
            let verifier = match tip {
                Some(tip) => verifier.expect_tip(*tip),
                None => verifier,
            };
            match verifier.verify_json(text) {
                Ok(report) => Outcome::Verified(report),
                Err(error) => Outcome::Failed(failure(&error, Some(text.clone()))),
            }
        }
        Candidate::Input(Input::Baggage(baggage)) => {
            let inbound = InboundPassport::from_baggage(baggage);
            let verifier = match inbound.tip() {
                Some(tip) => verifier.expect_tip(tip),
                None => verifier,
            };
            match inbound.choose_verified(None, &verifier, &limits) {
                Ok(Some(report)) => Outcome::Verified(report),
                Ok(None) => Outcome::Failed(plain_failure("the header carries no passport".into())),
                Err(PropagationError::Passport { source, .. }) => {
                    Outcome::Failed(failure(&source, None))
                }
                Err(error) => Outcome::Failed(plain_failure(error.to_string())),
            }
        }
        Candidate::Input(Input::Jws(jws)) => {
            let text = serde_json::to_string(&[jws]).unwrap_or_default();
            match verifier.verify_json(&text) {
                Ok(report) => Outcome::Verified(report),
                Err(error) => Outcome::Failed(failure(&error, Some(text))),
            }
        }
        Candidate::Input(Input::Passport(text)) => match verifier.verify_json(text) {
            Ok(report) => Outcome::Verified(report),
            Err(error) => Outcome::Failed(failure(&error, Some(text.clone()))),
        },
        Candidate::Unavailable(reason) => Outcome::Unavailable(reason.clone()),
    }
}

/// Counts for one principal or one operation.
#[derive(Default)]
struct Tally {
    entries: usize,
    denials: usize,
    trust_raises: usize,
    removed_taints: usize,
    failures: usize,
}

impl Tally {
    fn json(&self) -> Value {
        json!({
            "entries": self.entries,
            "denials": self.denials,
            "trust_raises": self.trust_raises,
            "removed_taints": self.removed_taints,
            "failures": self.failures,
        })
    }
}

#[derive(Default)]
struct Summary {
    verified: usize,
    failed: usize,
    unavailable: usize,
    entries: usize,
    denials: usize,
    by_principal: BTreeMap<String, Tally>,
    by_operation: BTreeMap<String, Tally>,
    causes: BTreeMap<String, usize>,
}

impl Summary {
    fn both(&mut self, principal: &str, operation: &str, add: impl Fn(&mut Tally)) {
        add(self.by_principal.entry(principal.to_owned()).or_default());
        add(self.by_operation.entry(operation.to_owned()).or_default());
    }

    fn build(checked: &[Checked], loose: &[DeniedCall]) -> Self {
        let mut summary = Self::default();
        // Entries are counted once however many passports (a trace's, a file's) hold them.
        let mut seen = BTreeSet::new();
        for item in checked {
            for denial in &item.found.denials {
                summary.denials += 1;
                summary.both(&denial.principal, &denial.operation, |t| t.denials += 1);
            }
            match &item.outcome {
                Outcome::Verified(report) => {
                    summary.verified += 1;
                    for signed in report.passport().entries() {
                        if seen.insert(signed.hash()) {
                            summary.entries += 1;
                            let entry = signed.entry();
                            summary.both(
                                entry.principal().unwrap_or_default(),
                                entry.operation(),
                                |t| t.entries += 1,
                            );
                        }
                    }
                    for finding in report.findings() {
                        match &finding.kind {
                            FindingKind::TrustRaised { declared: true, .. } => {
                                summary.both(&finding.principal, &finding.operation, |t| {
                                    t.trust_raises += 1;
                                })
                            }
                            FindingKind::TrustRaised { .. } => {}
                            FindingKind::TaintsRemoved { taints } => {
                                let count = taints.len();
                                summary.both(&finding.principal, &finding.operation, |t| {
                                    t.removed_taints += count;
                                });
                            }
                        }
                    }
                }
                Outcome::Failed(failure) => {
                    summary.failed += 1;
                    *summary.causes.entry(failure.cause.clone()).or_default() += 1;
                    let (principal, operation) = failing_entry(failure);
                    summary.both(&principal, &operation, |t| t.failures += 1);
                }
                Outcome::Unavailable(_) => summary.unavailable += 1,
            }
        }
        for denial in loose {
            summary.denials += 1;
            summary.both(&denial.principal, &denial.operation, |t| t.denials += 1);
        }
        summary
    }

    fn json(&self) -> Value {
        let tallies = |map: &BTreeMap<String, Tally>| {
            map.iter()
                .map(|(key, tally)| (key.clone(), tally.json()))
                .collect::<serde_json::Map<_, _>>()
        };
        json!({
            "passports": self.verified + self.failed + self.unavailable,
            "verified": self.verified,
            "failed": self.failed,
            "unavailable": self.unavailable,
            "entries": self.entries,
            "denials": self.denials,
            "by_principal": tallies(&self.by_principal),
            "by_operation": tallies(&self.by_operation),
            "causes": self.causes,
        })
    }
}

/// The principal and operation of the entry a failure names, read without checking its
/// signature (for the tallies only); `?` when it cannot be read.
fn failing_entry(failure: &Failure) -> (String, String) {
    let unknown = || ("?".to_owned(), "?".to_owned());
    let (Some(index), Some(text)) = (failure.index, &failure.text) else {
        return unknown();
    };
    let entry = kest_passport::parse_entry_list(text, &input::limits())
        .ok()
        .and_then(|list| list.into_iter().nth(index))
        .and_then(|jws| UnverifiedEntry::parse(&jws).ok());
    entry.map_or_else(unknown, |entry| {
        let entry = entry.entry();
        (
            entry.principal().unwrap_or("?").to_owned(),
            entry.operation().to_owned(),
        )
    })
}

/// Runs `kest audit`.
///
/// # Errors
/// [`CliError::Failed`] when any passport fails to verify (exit 1); [`CliError::Input`]
/// or [`CliError::Io`] when the audit cannot run (exit 2): no keys, a missing path, a
/// named file of no known form, no passport found.
pub fn run(args: &AuditArgs) -> Result<(), CliError> {
    if args.paths.is_empty() {
        return Err(CliError::input("no paths to audit"));
    }
    let resolver = super::verify::resolver(&args.keys, &args.jwks)?;
    let discovery = sources::discover(&args.paths)?;
    if discovery.found.is_empty() {
        return Err(CliError::input(format!(
            "no passport found in {}",
            args.paths.join(", ")
        )));
    }
    let cache = VerifiedEntries::new(kest_passport::DEFAULT_VERIFIED_ENTRIES);
    let checked: Vec<Checked> = discovery
        .found
        .into_iter()
        .map(|found| {
            let outcome = check(&found.candidate, &resolver, &cache, args.strictness);
            Checked { found, outcome }
        })
        .collect();
    let summary = Summary::build(&checked, &discovery.loose_denials);
    let report = match args.format {
        AuditFormat::Text => {
            text_report(&checked, &summary, &discovery.ignored, &discovery.skipped)
        }
        AuditFormat::Json => json_report(&checked, &summary, &discovery.skipped).to_string(),
        AuditFormat::Html => html_report(&checked, &summary),
    };
    output::write_public(args.out.as_deref(), report.trim_end())?;
    if summary.failed > 0 {
        return Err(CliError::Failed(format!(
            "{} of {} passports failed to verify",
            summary.failed,
            checked.len()
        )));
    }
    Ok(())
}

fn json_report(checked: &[Checked], summary: &Summary, skipped: &[String]) -> Value {
    let passports: Vec<Value> = checked
        .iter()
        .map(|item| match &item.outcome {
            Outcome::Verified(report) => json!({
                "source": item.found.source,
                "verified": true,
                "entries": report.len(),
                "tip": report.tip().map(|tip| tip.to_hex()),
                "findings": report.findings().iter().map(kest_passport::Finding::to_json).collect::<Vec<_>>(),
                "error": null,
            }),
            Outcome::Failed(failure) => json!({
                "source": item.found.source,
                "verified": false,
                "entries": null,
                "tip": null,
                "error": {"index": failure.index, "entry_id": failure.entry_id, "cause": failure.cause},
            }),
            Outcome::Unavailable(reason) => json!({
                "source": item.found.source,
                "verified": null,
                "entries": null,
                "tip": null,
                "error": null,
                "unavailable": reason,
            }),
        })
        .collect();
    json!({ "passports": passports, "summary": summary.json(), "skipped": skipped })
}

fn shown(text: &str) -> String {
    Untrusted::new(text).max_chars(80).to_string()
}

fn text_report(
    checked: &[Checked],
    summary: &Summary,
    ignored: &[String],
    skipped: &[String],
) -> String {
    let mut out = Vec::new();
    for item in checked {
        let source = shown(&item.found.source);
        out.push(match &item.outcome {
            Outcome::Verified(report) => format!(
                "verified     {source}: {} entries, tip {}",
                report.len(),
                report
                    .tip()
                    .map_or_else(|| "none".to_owned(), |tip| tip.to_hex())
            ),
            Outcome::Failed(failure) => {
                let at = match (failure.index, &failure.entry_id) {
                    (Some(index), Some(id)) => format!("entry {index} (`{}`): ", shown(id)),
                    (Some(index), None) => format!("entry {index}: "),
                    _ => String::new(),
                };
                format!("FAILED       {source}: {at}{}", shown(&failure.cause))
            }
            Outcome::Unavailable(reason) => format!("unavailable  {source}: {reason}"),
        });
    }
    for file in ignored {
        out.push(format!(
            "ignored      {}: no passport or spans",
            shown(file)
        ));
    }
    for note in skipped {
        out.push(format!(
            "skipped      {}",
            Untrusted::new(note).max_chars(200)
        ));
    }
    out.push(String::new());
    out.push(format!(
        "{} passports: {} verified, {} failed, {} not in the export; {} entries; {} denials",
        summary.verified + summary.failed + summary.unavailable,
        summary.verified,
        summary.failed,
        summary.unavailable,
        summary.entries,
        summary.denials
    ));
    for (title, map) in [
        ("by principal", &summary.by_principal),
        ("by operation", &summary.by_operation),
    ] {
        out.push(format!(
            "\n{title:<40} {:>8} {:>8} {:>12} {:>14} {:>9}",
            "entries", "denials", "trust raises", "removed taints", "failures"
        ));
        for (key, t) in map {
            out.push(format!(
                "{:<40} {:>8} {:>8} {:>12} {:>14} {:>9}",
                shown(key),
                t.entries,
                t.denials,
                t.trust_raises,
                t.removed_taints,
                t.failures
            ));
        }
    }
    if !summary.causes.is_empty() {
        out.push("\nfailure causes".to_owned());
        for (cause, count) in &summary.causes {
            out.push(format!("{count:>6}  {}", shown(cause)));
        }
    }
    out.join("\n")
}

/// A passport whose every entry reads, each with the chain fault `examine` found, if any.
struct Examined(Vec<(UnverifiedEntry, Option<kest_passport::EntryFault>)>);

impl Lineage for Examined {
    fn lineage(
        &self,
    ) -> Vec<(
        kest_passport::EntryHash,
        std::borrow::Cow<'_, kest_passport::Entry>,
    )> {
        self.0
            .iter()
            .map(|(entry, _)| (entry.hash(), entry.entry()))
            .collect()
    }
}

fn html_report(checked: &[Checked], summary: &Summary) -> String {
    let mut intro = format!(
        "<p>{} passports: <span class=\"kest-ok\">{} verified</span>, \
         <span class=\"kest-bad\">{} failed</span>, {} not in the export; {} entries; {} denials.</p>",
        summary.verified + summary.failed + summary.unavailable,
        summary.verified,
        summary.failed,
        summary.unavailable,
        summary.entries,
        summary.denials
    );
    intro.push_str("<table class=\"kest-summary\"><tr><th>source</th><th>verdict</th><th>entries</th><th>detail</th></tr>");
    for item in checked {
        let (verdict, entries, detail) = match &item.outcome {
            Outcome::Verified(report) => (
                "<span class=\"kest-ok\">verified</span>",
                report.len().to_string(),
                report.tip().map(|tip| tip.to_hex()).unwrap_or_default(),
            ),
            Outcome::Failed(failure) => (
                "<span class=\"kest-bad\">FAILED</span>",
                String::new(),
                match failure.index {
                    Some(index) => format!("entry {index}: {}", failure.cause),
                    None => failure.cause.clone(),
                },
            ),
            Outcome::Unavailable(reason) => ("not in the export", String::new(), reason.clone()),
        };
        intro.push_str(&format!(
            "<tr><td>{}</td><td>{verdict}</td><td>{entries}</td><td>{}</td></tr>",
            html_escape(&item.found.source),
            html_escape(&detail)
        ));
    }
    intro.push_str("</table>");
    for (title, map) in [
        ("principal", &summary.by_principal),
        ("operation", &summary.by_operation),
    ] {
        intro.push_str(&format!(
            "<table class=\"kest-summary\"><tr><th>{title}</th><th>entries</th><th>denials</th>\
             <th>trust raises</th><th>removed taints</th><th>failures</th></tr>"
        ));
        for (key, t) in map {
            intro.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                html_escape(key),
                t.entries,
                t.denials,
                t.trust_raises,
                t.removed_taints,
                t.failures
            ));
        }
        intro.push_str("</table>");
    }
    let sections: Vec<String> = checked
        .iter()
        .filter_map(|item| {
            let denials: Vec<Denial> = item
                .found
                .denials
                .iter()
                .map(|d| Denial {
                    operation: d.operation.clone(),
                    principal: d.principal.clone(),
                    policy: d.policy.clone(),
                    reason: format!("{} ({})", d.reason, d.decision),
                    after: None,
                })
                .collect();
            match &item.outcome {
                Outcome::Verified(report) => Some(html_section(
                    report.passport(),
                    &format!("{} (verified)", item.found.source),
                    &denials,
                    &[],
                )),
                Outcome::Failed(failure) => {
                    // Drawn when every entry reads, with each problem `examine` finds marked
                    // on its entry, and the verifier's own cause on the entry it names.
                    let rows =
                        kest_passport::examine(failure.text.as_deref()?, &input::limits()).ok()?;
                    let examined = Examined(
                        rows.into_iter()
                            .map(|row| row.entry.map(|entry| (entry, row.fault)))
                            .collect::<Option<Vec<_>>>()?,
                    );
                    let mut faults: Vec<(usize, String)> = examined
                        .0
                        .iter()
                        .enumerate()
                        .filter_map(|(index, (_, fault))| {
                            fault.as_ref().map(|fault| (index, fault.to_string()))
                        })
                        .collect();
                    if let Some(index) = failure.index {
                        faults.retain(|(at, _)| *at != index);
                        faults.push((index, failure.cause.clone()));
                    }
                    Some(html_section(
                        &examined,
                        &format!("{} (FAILED: {})", item.found.source, failure.cause),
                        &denials,
                        &faults,
                    ))
                }
                Outcome::Unavailable(_) => None,
            }
        })
        .collect();
    html_page("Kest audit", &intro, &sections)
}
