//! `kest inspect`: one line (or object) per entry, with problems marked where they are.

use kest_canon::Untrusted;
use kest_passport::{ExaminedEntry, UnverifiedEntry, examine};
use serde_json::{Value, json};

use crate::error::CliError;
use crate::input::{self, Input};
use crate::output;

/// Runs `kest inspect`. Signatures are not checked; use `kest verify` for that.
///
/// A passport whose entries do not read or do not link (tampered with, truncated,
/// spliced) is still shown: each entry that reads is listed, and each problem is marked
/// on the entry it belongs to, so an auditor sees where it is. The command then exits 1
/// naming the first problem.
///
/// # Errors
/// [`CliError::Input`] when the input is no passport at all; [`CliError::Failed`] after
/// showing a passport with problems.
pub fn run(file: Option<&str>, json: bool) -> Result<(), CliError> {
    let text = input::read(file)?;
    let rows = match input::classify(&text)? {
        Input::Passport(text) => examine(&text, &input::limits()).map_err(CliError::input)?,
        other => {
            let (passport, _) = input::load_unverified(other)?;
            passport
                .entries()
                .iter()
                .enumerate()
                .map(|(index, entry)| ExaminedEntry::readable(index, entry.clone()))
                .collect()
        }
    };
    if json {
        let entries: Vec<Value> = rows.iter().map(row_json).collect();
        output::line(&Value::Array(entries).to_string())?;
    } else {
        output::line(&table(&rows))?;
    }
    match rows
        .iter()
        .find_map(|row| Some((row.index, row.fault.as_ref()?)))
    {
        None => Ok(()),
        Some((index, fault)) => Err(CliError::Failed(format!(
            "entry {index}: {fault} (marked above; signatures were not checked)"
        ))),
    }
}

fn row_json(row: &ExaminedEntry) -> Value {
    let mut value = match &row.entry {
        Some(entry) => entry_json(row.index, entry),
        None => json!({"index": row.index, "hash": row.hash.to_hex()}),
    };
    if let Some(object) = value.as_object_mut() {
        object.insert(
            "fault".into(),
            row.fault
                .as_ref()
                .map_or(Value::Null, |fault| Value::from(fault.to_string())),
        );
    }
    value
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

fn table(examined: &[ExaminedEntry]) -> String {
    let marked = examined.iter().any(|row| row.fault.is_some());
    let mut rows = vec![vec![
        "#".to_owned(),
        "entry_id".to_owned(),
        "operation".to_owned(),
        "principal".to_owned(),
        "trust".to_owned(),
        "taints".to_owned(),
        "parents".to_owned(),
        "hash".to_owned(),
    ]];
    if marked {
        rows.iter_mut().for_each(|row| row.push("fault".to_owned()));
    }
    for row in examined {
        let index = row.index;
        let fault = row.fault.as_ref().map_or_else(
            || "-".to_owned(),
            |fault| format!("!! {}", Untrusted::new(&fault.to_string()).max_chars(120)),
        );
        let Some(signed) = &row.entry else {
            let mut cells = vec![index.to_string()];
            cells.extend(std::iter::repeat_n("?".to_owned(), 6));
            cells.push(row.hash.to_hex());
            cells.push(fault);
            rows.push(cells);
            continue;
        };
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
        let mut cells = vec![
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
        ];
        if marked {
            cells.push(fault);
        }
        rows.push(cells);
    }
    let widths: Vec<usize> = (0..rows.first().map_or(0, Vec::len))
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
