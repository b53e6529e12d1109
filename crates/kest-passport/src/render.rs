//! Drawing a passport: its DAG as an indented text tree, a Mermaid flowchart or a
//! Graphviz digraph. `kest tree` prints these; examples and tests use them too.
//!
//! Every text taken from an entry (operation, principal, taints) is escaped and shortened
//! with [`kest_canon::Untrusted`] first: a passport drawn before it is verified must not
//! be able to write to the terminal.

use std::collections::HashMap;
use std::fmt::Write as _;

use kest_canon::Untrusted;

use crate::{Entry, EntryHash, Passport, UnverifiedPassport};

/// A passport that can be drawn, verified or not.
pub trait Lineage {
    /// Each entry's hash and payload, oldest first.
    fn lineage(&self) -> Vec<(EntryHash, &Entry)>;
}

impl Lineage for Passport {
    fn lineage(&self) -> Vec<(EntryHash, &Entry)> {
        self.entries()
            .into_iter()
            .map(|signed| (signed.hash(), signed.entry()))
            .collect()
    }
}

impl Lineage for UnverifiedPassport {
    fn lineage(&self) -> Vec<(EntryHash, &Entry)> {
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

fn edges(entries: &[(EntryHash, &Entry)]) -> Vec<(usize, usize)> {
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
