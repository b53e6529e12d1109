//! `kest inspect`: one line (or object) per entry.

use kest_canon::Untrusted;
use kest_passport::{UnverifiedEntry, UnverifiedPassport};
use serde_json::{Value, json};

use crate::error::CliError;
use crate::{input, output};

/// Runs `kest inspect`. Signatures are not checked; use `kest verify` for that.
///
/// # Errors
/// [`CliError::Input`] when the input is not a readable passport.
pub fn run(file: Option<&str>, json: bool) -> Result<(), CliError> {
    let text = input::read(file)?;
    let (passport, _) = input::load_unverified(input::classify(&text)?)?;
    if json {
        let entries: Vec<Value> = passport
            .entries()
            .iter()
            .enumerate()
            .map(|(i, e)| entry_json(i, e))
            .collect();
        return output::line(&Value::Array(entries).to_string());
    }
    output::line(&table(&passport))
}

/// The JSON form of one entry, as `kest inspect --json` prints it.
#[must_use]
pub fn entry_json(index: usize, signed: &UnverifiedEntry) -> Value {
    let entry = signed.entry();
    json!({
        "index": index,
        "entry_id": entry.entry_id().to_string(),
        "operation": entry.operation(),
        "principal": entry.principal(),
        "trust": entry.trust_score().get(),
        "taints": entry.taints().iter().collect::<Vec<_>>(),
        "parents": entry.parents().hashes().iter().map(|h| h.to_hex()).collect::<Vec<_>>(),
        "hash": signed.hash().to_hex(),
        "alg": signed.header().alg.as_str(),
        "classification": entry.classification(),
        "runtime": entry.runtime().name,
        "timestamp_ms": entry.timestamp_ms(),
    })
}

fn table(passport: &UnverifiedPassport) -> String {
    let mut rows = vec![[
        "#".to_owned(),
        "entry_id".to_owned(),
        "operation".to_owned(),
        "principal".to_owned(),
        "trust".to_owned(),
        "taints".to_owned(),
        "parents".to_owned(),
        "hash".to_owned(),
    ]];
    for (index, signed) in passport.entries().iter().enumerate() {
        let entry = signed.entry();
        let parents = if entry.parents().is_root() {
            "root".to_owned()
        } else {
            entry
                .parents()
                .hashes()
                .iter()
                .map(|h| short(&h.to_hex()))
                .collect::<Vec<_>>()
                .join(",")
        };
        // Entry text is shown escaped and shortened: the passport is not verified here.
        let shown = |text: &str| Untrusted::new(text).max_chars(60).to_string();
        let taints = entry
            .taints()
            .iter()
            .map(shown)
            .collect::<Vec<_>>()
            .join(",");
        rows.push([
            index.to_string(),
            entry.entry_id().to_string(),
            shown(entry.operation()),
            shown(entry.principal().unwrap_or_default()),
            entry.trust_score().to_string(),
            if taints.is_empty() {
                "-".to_owned()
            } else {
                taints
            },
            parents,
            signed.hash().to_hex(),
        ]);
    }
    let widths: Vec<usize> = (0..8)
        .map(|col| {
            rows.iter()
                .map(|row| row.get(col).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|row| {
            row.iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first 12 hex characters of a hash, enough to tell entries apart on screen.
#[must_use]
pub fn short(hex: &str) -> String {
    hex.chars().take(12).collect()
}
