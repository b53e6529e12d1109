//! Drawing a passport: its DAG as an indented text tree, a Mermaid flowchart or a
//! Graphviz digraph. `kest tree` prints these; examples and tests use them too.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::{EntryHash, Passport, SignedEntry};

/// The first 12 hex digits of a hash.
fn short(hex: &str) -> &str {
    hex.get(..12).unwrap_or(hex)
}

fn summary(index: usize, signed: &SignedEntry) -> String {
    let entry = signed.entry();
    let taints = entry.taints().iter().collect::<Vec<_>>().join(", ");
    let taints = if taints.is_empty() {
        String::new()
    } else {
        format!("; {taints}")
    };
    format!(
        "#{index} {} [trust {}{taints}] {} by {}",
        entry.operation(),
        entry.trust_score(),
        short(&signed.hash().to_hex()),
        entry.principal().unwrap_or_default()
    )
}

/// An indented tree: each entry under its first parent, further parents of a join named.
#[must_use]
pub fn text_tree(passport: &Passport) -> String {
    let entries = passport.entries();
    let index_of: HashMap<EntryHash, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.hash(), i))
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); entries.len()];
    let mut roots = Vec::new();
    for (index, signed) in entries.iter().enumerate() {
        match signed
            .entry()
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
        let Some(signed) = entries.get(index) else {
            continue;
        };
        let branch = if top {
            ""
        } else if last {
            "└─ "
        } else {
            "├─ "
        };
        let joins: Vec<String> = signed
            .entry()
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
        let _ = writeln!(out, "{prefix}{branch}{}{join_note}", summary(index, signed));
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

fn edges(passport: &Passport) -> Vec<(usize, usize)> {
    let entries = passport.entries();
    let index_of: HashMap<EntryHash, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.hash(), i))
        .collect();
    let mut edges = Vec::new();
    for (index, signed) in entries.iter().enumerate() {
        for parent in signed.entry().parents().hashes() {
            if let Some(from) = index_of.get(parent) {
                edges.push((*from, index));
            }
        }
    }
    edges
}

fn label(index: usize, signed: &SignedEntry, newline: &str) -> String {
    let entry = signed.entry();
    let taints = entry.taints().iter().collect::<Vec<_>>().join(", ");
    let mut text = format!(
        "#{index} {}{newline}trust {}",
        entry.operation(),
        entry.trust_score()
    );
    if !taints.is_empty() {
        text.push_str(&format!("{newline}{taints}"));
    }
    text.push_str(&format!(
        "{newline}{}",
        entry.principal().unwrap_or_default()
    ));
    text
}

/// A Mermaid flowchart (`graph TD`).
#[must_use]
pub fn mermaid(passport: &Passport) -> String {
    let mut out = String::from("graph TD\n");
    for (index, signed) in passport.entries().iter().enumerate() {
        let text = label(index, signed, "<br/>").replace('"', "#quot;");
        let _ = writeln!(out, "  e{index}[\"{text}\"]");
    }
    for (from, to) in edges(passport) {
        let _ = writeln!(out, "  e{from} --> e{to}");
    }
    out
}

/// A Graphviz digraph.
#[must_use]
pub fn dot(passport: &Passport) -> String {
    let mut out = String::from("digraph kest {\n  rankdir=TB;\n  node [shape=box];\n");
    for (index, signed) in passport.entries().iter().enumerate() {
        let text = label(index, signed, "\n")
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        let _ = writeln!(out, "  e{index} [label=\"{text}\"];");
    }
    for (from, to) in edges(passport) {
        let _ = writeln!(out, "  e{from} -> e{to};");
    }
    out.push_str("}\n");
    out
}
