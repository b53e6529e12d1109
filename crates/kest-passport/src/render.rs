//! Drawing a passport: its DAG as an indented text tree, a Mermaid flowchart or a
//! Graphviz digraph. `kest tree` prints these; examples and tests use them too.
//!
//! Every text taken from an entry (operation, principal, taints) is escaped and shortened
//! with [`kest_canon::Untrusted`] first: a passport drawn before it is verified must not
//! be able to write to the terminal.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;

use kest_canon::Untrusted;

use crate::{Entry, EntryHash, Passport, UnverifiedPassport};

/// A passport that can be drawn, verified or not.
pub trait Lineage {
    /// Each entry's hash and payload, oldest first. Payloads of entries held in a
    /// passport are parsed for the call (see [`crate::SignedEntry::entry`]).
    fn lineage(&self) -> Vec<(EntryHash, Cow<'_, Entry>)>;
}

impl Lineage for Passport {
    fn lineage(&self) -> Vec<(EntryHash, Cow<'_, Entry>)> {
        self.entries()
            .into_iter()
            .map(|signed| (signed.hash(), signed.entry()))
            .collect()
    }
}

impl Lineage for UnverifiedPassport {
    fn lineage(&self) -> Vec<(EntryHash, Cow<'_, Entry>)> {
        self.entries()
            .iter()
            .map(|entry| (entry.hash(), entry.entry()))
            .collect()
    }
}

/// Entry text for display: escaped and cut at 60 characters.
fn shown(text: &str) -> String {
    Untrusted::new(text).max_chars(60).to_string()
}

fn taint_list(entry: &Entry) -> String {
    entry
        .taints()
        .iter()
        .map(shown)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The first 12 hex digits of a hash.
fn short(hex: &str) -> &str {
    hex.get(..12).unwrap_or(hex)
}

fn summary(index: usize, hash: EntryHash, entry: &Entry) -> String {
    let taints = taint_list(entry);
    let taints = if taints.is_empty() {
        String::new()
    } else {
        format!("; {taints}")
    };
    format!(
        "#{index} {} [trust {}{taints}] {} by {}",
        shown(entry.operation()),
        entry.trust_score(),
        short(&hash.to_hex()),
        shown(entry.principal().unwrap_or_default())
    )
}

/// An indented tree: each entry under its first parent, further parents of a join named.
#[must_use]
pub fn text_tree(passport: &impl Lineage) -> String {
    let entries = passport.lineage();
    let index_of: HashMap<EntryHash, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, (hash, _))| (*hash, i))
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); entries.len()];
    let mut roots = Vec::new();
    for (index, (_, entry)) in entries.iter().enumerate() {
        match entry
            .parents()
            .hashes()
            .first()
            .and_then(|p| index_of.get(p))
        {
            Some(parent) => {
                if let Some(list) = children.get_mut(*parent) {
                    list.push(index);
                }
            }
            None => roots.push(index),
        }
    }
    let mut out = String::new();
    // An explicit stack: a long chain is a deep tree, too deep for recursion.
    let mut stack: Vec<(usize, String, bool, bool)> = roots
        .iter()
        .rev()
        .map(|r| (*r, String::new(), true, true))
        .collect();
    while let Some((index, prefix, last, top)) = stack.pop() {
        let Some((hash, entry)) = entries.get(index) else {
            continue;
        };
        let branch = if top {
            ""
        } else if last {
            "└─ "
        } else {
            "├─ "
        };
        let joins: Vec<String> = entry
            .parents()
            .hashes()
            .iter()
            .skip(1)
            .filter_map(|p| index_of.get(p).map(|i| format!("#{i}")))
            .collect();
        let join_note = if joins.is_empty() {
            String::new()
        } else {
            format!(" (joins {})", joins.join(", "))
        };
        let _ = writeln!(
            out,
            "{prefix}{branch}{}{join_note}",
            summary(index, *hash, entry)
        );
        let child_prefix = if top {
            prefix.clone()
        } else if last {
            format!("{prefix}   ")
        } else {
            format!("{prefix}│  ")
        };
        let kids = children.get(index).cloned().unwrap_or_default();
        for (position, child) in kids.iter().enumerate().rev() {
            stack.push((
                *child,
                child_prefix.clone(),
                position + 1 == kids.len(),
                false,
            ));
        }
    }
    if out.is_empty() {
        out.push_str("(empty passport)");
    }
    out
}

fn edges(entries: &[(EntryHash, Cow<'_, Entry>)]) -> Vec<(usize, usize)> {
    let index_of: HashMap<EntryHash, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, (hash, _))| (*hash, i))
        .collect();
    let mut edges = Vec::new();
    for (index, (_, entry)) in entries.iter().enumerate() {
        for parent in entry.parents().hashes() {
            if let Some(from) = index_of.get(parent) {
                edges.push((*from, index));
            }
        }
    }
    edges
}

/// The lines of a node's label, each shown safely, joined by `newline` after `escape`
/// made each one safe for the output language.
fn label(index: usize, entry: &Entry, newline: &str, escape: fn(&str) -> String) -> String {
    let mut lines = vec![
        format!("#{index} {}", shown(entry.operation())),
        format!("trust {}", entry.trust_score()),
    ];
    let taints = taint_list(entry);
    if !taints.is_empty() {
        lines.push(taints);
    }
    lines.push(shown(entry.principal().unwrap_or_default()));
    lines
        .iter()
        .map(|line| escape(line))
        .collect::<Vec<_>>()
        .join(newline)
}

fn mermaid_text(text: &str) -> String {
    text.replace('&', "#amp;")
        .replace('"', "#quot;")
        .replace('<', "#lt;")
        .replace('>', "#gt;")
}

fn dot_text(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

/// A Mermaid flowchart (`graph TD`).
#[must_use]
pub fn mermaid(passport: &impl Lineage) -> String {
    let entries = passport.lineage();
    let mut out = String::from("graph TD\n");
    for (index, (_, entry)) in entries.iter().enumerate() {
        let text = label(index, entry, "<br/>", mermaid_text);
        let _ = writeln!(out, "  e{index}[\"{text}\"]");
    }
    for (from, to) in edges(&entries) {
        let _ = writeln!(out, "  e{from} --> e{to}");
    }
    out
}

/// A Graphviz digraph.
#[must_use]
pub fn dot(passport: &impl Lineage) -> String {
    let entries = passport.lineage();
    let mut out = String::from("digraph kest {\n  rankdir=TB;\n  node [shape=box];\n");
    for (index, (_, entry)) in entries.iter().enumerate() {
        let text = label(index, entry, "\\n", dot_text);
        let _ = writeln!(out, "  e{index} [label=\"{text}\"];");
    }
    for (from, to) in edges(&entries) {
        let _ = writeln!(out, "  e{from} -> e{to};");
    }
    out.push_str("}\n");
    out
}

/// A call refused before it ran, to mark in the HTML view. A passport never holds one
/// (no signature, no execution); `kest audit` finds them in span exports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// The operation refused.
    pub operation: String,
    /// The workload that asked.
    pub principal: String,
    /// The policy that refused it.
    pub policy: String,
    /// Why.
    pub reason: String,
    /// The entry the caller's passport ended at, when it is in the passport drawn.
    pub after: Option<EntryHash>,
}

/// Escapes text for HTML element content and attribute values.
#[must_use]
pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(ch),
        }
    }
    out
}

/// One passport drawn as a section of the HTML view: its DAG, a details panel that shows
/// an entry's labels, parents, hash and policy context when it is clicked, trust raises
/// marked, and `denials` and `faults` (entry index, cause) marked too. Every node is an
/// element with `data-entry-index` and `data-entry-id`. Combine sections with
/// [`html_page`].
#[must_use]
pub fn html_section(
    passport: &impl Lineage,
    title: &str,
    denials: &[Denial],
    faults: &[(usize, String)],
) -> String {
    let entries = passport.lineage();
    let index_of: HashMap<EntryHash, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, (hash, _))| (*hash, i))
        .collect();
    let nodes: Vec<serde_json::Value> = entries
        .iter()
        .enumerate()
        .map(|(index, (hash, entry))| {
            let links: Vec<Option<usize>> = entry
                .parents()
                .hashes()
                .iter()
                .map(|parent| index_of.get(parent).copied())
                .collect();
            let parent_indices: Vec<usize> = links.iter().flatten().copied().collect();
            let trust = entry.trust_score().get();
            let bound = parent_indices
                .iter()
                .filter_map(|p| entries.get(*p).map(|(_, e)| e.trust_score().get()))
                .min();
            let raised = bound.is_some_and(|bound| trust > bound);
            serde_json::json!({
                "index": index,
                "entry_id": entry.entry_id().to_string(),
                "operation": entry.operation(),
                "principal": entry.principal().unwrap_or_default(),
                "trust": trust,
                "bound": bound,
                "raised": raised,
                "declared": entry.declared_override().map(|t| t.get()) == Some(trust),
                "taints": entry.taints().iter().collect::<Vec<_>>(),
                "parents": entry.parents().hashes().iter().map(|h| h.to_hex()).collect::<Vec<_>>(),
                "parent_indices": parent_indices,
                "parent_links": links,
                "hash": hash.to_hex(),
                "fault": faults.iter().find(|(i, _)| *i == index).map(|(_, cause)| cause),
                "payload": serde_json::to_value(entry).unwrap_or_default(),
            })
        })
        .collect();
    let denials: Vec<serde_json::Value> = denials
        .iter()
        .map(|denial| {
            serde_json::json!({
                "operation": denial.operation,
                "principal": denial.principal,
                "policy": denial.policy,
                "reason": denial.reason,
                "after": denial.after.and_then(|hash| index_of.get(&hash)),
            })
        })
        .collect();
    let data = serde_json::json!({ "entries": nodes, "denials": denials });
    // `<` never appears in JSON outside strings, so escaping every one keeps the text
    // valid JSON and stops a value from closing the script element.
    let data = data.to_string().replace('<', "\\u003c");
    let raised = entries
        .iter()
        .enumerate()
        .filter(|(_, (_, entry))| {
            entry.parents().hashes().iter().any(|parent| {
                index_of
                    .get(parent)
                    .and_then(|p| entries.get(*p))
                    .is_some_and(|(_, p)| entry.trust_score() > p.trust_score())
            })
        })
        .count();
    format!(
        "<section class=\"kest-lineage\">\n<div class=\"kest-canvas-wrap\">\n<h2>{title}</h2>\n\
         <p class=\"kest-legend\"><span>{count} entries</span><span>{raised} trust raises</span>\
         <span>{denied} denials</span></p>\n<div class=\"kest-canvas\"></div>\n</div>\n\
         <aside class=\"kest-details\"></aside>\n\
         <script type=\"application/json\" class=\"kest-data\">{data}</script>\n</section>\n",
        title = html_escape(title),
        count = entries.len(),
        denied = denials.len(),
    )
}

/// A self-contained HTML page (inline CSS and JavaScript, nothing fetched) holding
/// `sections` from [`html_section`]. `intro` is HTML placed under the heading; the caller
/// escapes any text in it with [`html_escape`].
#[must_use]
pub fn html_page(title: &str, intro: &str, sections: &[String]) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n\
         <title>{title}</title>\n<style>\n{css}</style>\n</head>\n<body>\n\
         <header class=\"kest-top\"><h1>{title}</h1>{intro}</header>\n{sections}\
         <script>\n{js}</script>\n</body>\n</html>\n",
        title = html_escape(title),
        css = include_str!("../assets/lineage.css"),
        js = include_str!("../assets/lineage.js"),
        sections = sections.concat(),
    )
}

/// The passport as one self-contained HTML page: `kest tree --format html`.
#[must_use]
pub fn html(passport: &impl Lineage) -> String {
    let count = passport.lineage().len();
    html_page(
        "Kest lineage",
        &format!(
            "<p>{count} entries. Click an entry for its labels, parents, hash and policy context.</p>"
        ),
        &[html_section(passport, "Passport", &[], &[])],
    )
}
