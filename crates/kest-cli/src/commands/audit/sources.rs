//! Finding passports in files: passport JSON, `baggage` header values, single JWS, and
//! the span exports Kest writes (JSON lines, SQLite) or any OTLP JSON file.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read as _};
use std::path::{Path, PathBuf};

use kest_canon::{Sha256Digest, Untrusted};
use serde_json::{Map, Value};

use crate::error::CliError;
use crate::input::{self, Input, MAX_INPUT_BYTES};

/// Files larger than this are not read whole; span exports are read line by line.
const MAX_LINE_BYTES: usize = MAX_INPUT_BYTES;
/// Directory entries visited at most, so a symlink loop or a huge tree cannot run away.
const MAX_FILES: usize = 100_000;

/// Something to verify.
#[derive(Debug)]
pub(crate) enum Candidate {
    /// Passport JSON, with the tip a span announced for it.
    Json {
        /// The text.
        text: String,
        /// `kest.chain_tip` of the span it came from.
        tip: Option<Sha256Digest>,
    },
    /// A `baggage` header value, or one JWS (as a passport of one).
    Input(Input),
    /// A passport that exists but is not in the export (too long to attach to spans).
    Unavailable(String),
}

/// A call refused before it ran, from a span.
#[derive(Debug, Clone)]
pub(crate) struct DeniedCall {
    pub(crate) principal: String,
    pub(crate) operation: String,
    pub(crate) policy: String,
    pub(crate) reason: String,
    pub(crate) decision: String,
}

/// A passport found, where, and the denials recorded beside it in the same trace.
#[derive(Debug)]
pub(crate) struct Found {
    pub(crate) source: String,
    pub(crate) candidate: Candidate,
    pub(crate) denials: Vec<DeniedCall>,
}

/// Everything found under `paths`.
#[derive(Debug, Default)]
pub(crate) struct Discovery {
    pub(crate) found: Vec<Found>,
    /// Denials in traces that carried no passport.
    pub(crate) loose_denials: Vec<DeniedCall>,
    /// Files in directories that hold none of the known forms.
    pub(crate) ignored: Vec<String>,
    /// What was not read, and why: pipes and devices in directories, a named pipe nobody
    /// wrote to.
    pub(crate) skipped: Vec<String>,
}

/// How long `kest audit` waits for a named pipe or device to deliver its input.
const SPECIAL_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Walks `paths` (files and directories, recursively) and reads every file, each opened
/// once.
///
/// Inside a directory, only regular files are read: pipes, devices and sockets are skipped
/// with a note and never opened, so nothing can make the audit wait on them. A pipe named
/// on the command line (`kest audit <(…)`) is read once, whole, if its writer delivers
/// within 5 s; one nobody writes to is skipped with a note.
///
/// # Errors
/// [`CliError::Input`] for a path that does not exist, a named file of no known form, or
/// an export that cannot be read.
pub(crate) fn discover(paths: &[String]) -> Result<Discovery, CliError> {
    let mut discovery = Discovery::default();
    for path in paths {
        let root = PathBuf::from(path);
        // Shown raw here: reports escape what they print, and so does the error line.
        let shown = path.clone();
        let meta = std::fs::metadata(&root).map_err(|error| CliError::io(&shown, error))?;
        let known = if meta.is_dir() {
            let mut files = Vec::new();
            walk(&root, &mut files, &mut discovery.skipped)?;
            files.sort();
            for file in files {
                if !read_file(&file, &mut discovery)? {
                    discovery.ignored.push(file.display().to_string());
                }
            }
            true
        } else if meta.is_file() {
            read_file(&root, &mut discovery)?
        } else {
            match read_special(&root, &shown)? {
                Some(bytes) => {
                    let text = String::from_utf8(bytes)
                        .map_err(|_| CliError::input(format!("{shown}: input is not UTF-8")))?;
                    read_source(&shown, BufReader::new(text.as_bytes()), &mut discovery)?
                }
                None => {
                    discovery.skipped.push(format!(
                        "{shown}: nothing was written to it within {} s",
                        SPECIAL_WAIT.as_secs()
                    ));
                    true
                }
            }
        };
        if !known {
            return Err(CliError::input(format!(
                "{shown}: neither a passport, baggage header values, a JWS, nor a span export"
            )));
        }
    }
    Ok(discovery)
}

/// The whole of a pipe or device named on the command line, read once (within the input
/// limit) on a thread of its own; `None` when it delivers nothing within
/// [`SPECIAL_WAIT`] (a FIFO nobody writes to blocks even its opening).
fn read_special(path: &Path, shown: &str) -> Result<Option<Vec<u8>>, CliError> {
    let (sender, receiver) = std::sync::mpsc::channel();
    let owned = path.to_path_buf();
    std::thread::spawn(move || {
        let limit = u64::try_from(MAX_INPUT_BYTES).unwrap_or(u64::MAX) + 1;
        let mut bytes = Vec::new();
        let read = std::fs::File::open(owned)
            .and_then(|file| file.take(limit).read_to_end(&mut bytes))
            .map(|_| bytes);
        // The receiver may have stopped waiting; then nobody needs the bytes.
        let _ = sender.send(read);
    });
    match receiver.recv_timeout(SPECIAL_WAIT) {
        Ok(Ok(bytes)) if bytes.len() > MAX_INPUT_BYTES => Err(CliError::input(format!(
            "{shown}: input is larger than {MAX_INPUT_BYTES} bytes"
        ))),
        Ok(Ok(bytes)) => Ok(Some(bytes)),
        Ok(Err(error)) => Err(CliError::io(shown, error)),
        Err(_) => Ok(None),
    }
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>, skipped: &mut Vec<String>) -> Result<(), CliError> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let shown = || dir.display().to_string();
        let entries = std::fs::read_dir(&dir).map_err(|error| CliError::io(&shown(), error))?;
        for entry in entries {
            let entry = entry.map_err(|error| CliError::io(&shown(), error))?;
            let kind = entry
                .file_type()
                .map_err(|error| CliError::io(&entry.path().display().to_string(), error))?;
            // Symlinks are not followed: a loop would never end.
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                files.push(entry.path());
            } else if !kind.is_symlink() && skipped.len() < MAX_FILES {
                // A pipe, device or socket: opening it could wait forever.
                skipped.push(format!("{}: not a regular file", entry.path().display()));
            }
            if files.len() > MAX_FILES {
                return Err(CliError::input(format!(
                    "{}: more than {MAX_FILES} files",
                    shown()
                )));
            }
        }
    }
    Ok(())
}

/// Reads one regular file into `discovery`, opening it once; `false` when it holds none
/// of the known forms.
fn read_file(path: &Path, discovery: &mut Discovery) -> Result<bool, CliError> {
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|error| CliError::io(&name, error))?;
    let mut reader = BufReader::new(file);
    let head = reader
        .fill_buf()
        .map_err(|error| CliError::io(&name, error))?;
    if head.starts_with(b"SQLite format 3\0") {
        let spans = sqlite_spans(path)?;
        return Ok(add_spans(&name, spans, discovery));
    }
    read_source(&name, reader, discovery)
}

/// The rest of `reader` after `first`, as one text within the input limit.
fn whole(first: &str, reader: &mut impl BufRead, name: &str) -> Result<String, CliError> {
    let limit = u64::try_from(MAX_INPUT_BYTES.saturating_sub(first.len())).unwrap_or(0) + 1;
    let mut rest = Vec::new();
    reader
        .take(limit)
        .read_to_end(&mut rest)
        .map_err(|error| CliError::io(name, error))?;
    if first.len() + rest.len() > MAX_INPUT_BYTES {
        return Err(CliError::input(format!(
            "{name}: input is larger than {MAX_INPUT_BYTES} bytes"
        )));
    }
    let rest = String::from_utf8(rest)
        .map_err(|_| CliError::input(format!("{name}: input is not UTF-8")))?;
    Ok(format!("{first}{rest}"))
}

/// Reads passports, header values, JWS or spans from `lines` into `discovery`; `false`
/// when it holds none of the known forms.
fn read_source(
    name: &str,
    mut lines: impl BufRead,
    discovery: &mut Discovery,
) -> Result<bool, CliError> {
    let name = name.to_owned();
    let mut first = String::new();
    read_line(&mut lines, &mut first, &name)?;
    let start = first.trim_start();
    if start.starts_with('[') {
        // A passport: read it whole, within the input limit.
        let text = whole(&first, &mut lines, &name)?;
        discovery.found.push(Found {
            source: name,
            candidate: Candidate::Json {
                text: text.trim().to_owned(),
                tip: None,
            },
            denials: Vec::new(),
        });
        return Ok(true);
    }
    if start.starts_with('{') {
        let spans = if serde_json::from_str::<Value>(first.trim()).is_ok() {
            let mut spans = spans_of_line(&first);
            let mut line = String::new();
            while read_line(&mut lines, &mut line, &name)? {
                spans.extend(spans_of_line(&line));
                line.clear();
            }
            spans
        } else {
            // One JSON document over several lines: an OTLP file, pretty-printed.
            let text = whole(&first, &mut lines, &name)?;
            serde_json::from_str::<Value>(&text)
                .map(|value| otlp_spans(&value))
                .unwrap_or_default()
        };
        return Ok(add_spans(&name, spans, discovery));
    }
    // Header values or JWS, one per line.
    let mut any = false;
    let mut line = first;
    let mut number = 1_usize;
    loop {
        if !line.trim().is_empty() {
            match input::classify(&line) {
                Ok(Input::Passport(text)) => discovery.found.push(Found {
                    source: format!("{name}:{number}"),
                    candidate: Candidate::Json { text, tip: None },
                    denials: Vec::new(),
                }),
                Ok(other) => discovery.found.push(Found {
                    source: format!("{name}:{number}"),
                    candidate: Candidate::Input(other),
                    denials: Vec::new(),
                }),
                Err(_) if !any => return Ok(false),
                Err(error) => {
                    return Err(CliError::input(format!("{name}:{number}: {error}")));
                }
            }
            any = true;
        }
        line.clear();
        if !read_line(&mut lines, &mut line, &name)? {
            break;
        }
        number += 1;
    }
    Ok(any)
}

/// Reads one line, refusing lines over the input limit. `false` at the end.
fn read_line(reader: &mut impl BufRead, line: &mut String, name: &str) -> Result<bool, CliError> {
    let limit = u64::try_from(MAX_LINE_BYTES).unwrap_or(u64::MAX) + 1;
    let read = reader
        .take(limit)
        .read_line(line)
        .map_err(|error| CliError::io(name, error))?;
    if line.len() > MAX_LINE_BYTES {
        return Err(CliError::input(format!(
            "{name}: a line longer than {MAX_LINE_BYTES} bytes"
        )));
    }
    Ok(read > 0)
}

/// A span reduced to what the audit reads.
#[derive(Debug)]
struct Span {
    trace_id: String,
    end: u64,
    attributes: Map<String, Value>,
}

fn spans_of_line(line: &str) -> Vec<Span> {
    let Ok(value) = serde_json::from_str::<Value>(line.trim()) else {
        return Vec::new();
    };
    if value.get("resourceSpans").is_some() {
        return otlp_spans(&value);
    }
    kest_span(&value).into_iter().collect()
}

/// A span as Kest's JSON-lines exporter writes it.
fn kest_span(value: &Value) -> Option<Span> {
    Some(Span {
        trace_id: value.get("trace_id")?.as_str()?.to_owned(),
        end: value
            .get("end_unix_nanos")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        attributes: value.get("attributes")?.as_object()?.clone(),
    })
}

/// The spans of an OTLP JSON document (`ExportTraceServiceRequest` or a file of them).
fn otlp_spans(value: &Value) -> Vec<Span> {
    let mut spans = Vec::new();
    let list = |value: &Value, key: &str| {
        value
            .get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    for resource in list(value, "resourceSpans") {
        for scope in list(&resource, "scopeSpans") {
            for span in list(&scope, "spans") {
                let mut attributes = Map::new();
                for attribute in list(&span, "attributes") {
                    let (Some(key), Some(value)) = (
                        attribute.get("key").and_then(Value::as_str),
                        attribute.get("value").and_then(otlp_value),
                    ) else {
                        continue;
                    };
                    attributes.insert(key.to_owned(), value);
                }
                let end = span
                    .get("endTimeUnixNano")
                    .and_then(|v| {
                        v.as_u64()
                            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                    })
                    .unwrap_or(0);
                if let Some(trace_id) = span.get("traceId").and_then(Value::as_str) {
                    spans.push(Span {
                        trace_id: trace_id.to_owned(),
                        end,
                        attributes,
                    });
                }
            }
        }
    }
    spans
}

fn otlp_value(value: &Value) -> Option<Value> {
    if let Some(text) = value.get("stringValue") {
        return Some(text.clone());
    }
    if let Some(int) = value.get("intValue") {
        // OTLP JSON writes 64-bit integers as strings.
        return int
            .as_i64()
            .or_else(|| int.as_str().and_then(|s| s.parse().ok()))
            .map(Value::from);
    }
    value
        .get("boolValue")
        .or_else(|| value.get("doubleValue"))
        .cloned()
}

#[cfg(feature = "sqlite")]
fn sqlite_spans(path: &Path) -> Result<Vec<Span>, CliError> {
    let name = path.display().to_string();
    let fail = |error: rusqlite::Error| CliError::input(format!("{name}: {error}"));
    let connection =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(fail)?;
    let mut statement = connection
        .prepare("SELECT trace_id, end_unix_nanos, attributes FROM spans")
        .map_err(fail)?;
    let rows = statement
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, String>(2)?,
            ))
        })
        .map_err(fail)?;
    let mut spans = Vec::new();
    for row in rows {
        let (trace_id, end, attributes) = row.map_err(fail)?;
        let attributes = serde_json::from_str::<Value>(&attributes)
            .ok()
            .and_then(|value| value.as_object().cloned())
            .unwrap_or_default();
        spans.push(Span {
            trace_id,
            end: u64::try_from(end).unwrap_or(0),
            attributes,
        });
    }
    Ok(spans)
}

#[cfg(not(feature = "sqlite"))]
fn sqlite_spans(path: &Path) -> Result<Vec<Span>, CliError> {
    Err(CliError::input(format!(
        "{}: reading SQLite span exports needs kest-cli's `sqlite` feature",
        path.display()
    )))
}

/// A digest of each prefix of the passport `text` (of its first entry, its first two, …),
/// each folding in the one before, so that two passports share a digest exactly when one
/// is the first entries of the other, entry for entry as written. `None` when `text` is
/// not a passport.
fn prefix_digests(text: &str) -> Option<Vec<Sha256Digest>> {
    let list = kest_passport::parse_entry_list(text, &input::limits()).ok()?;
    let mut running = kest_canon::sha256(b"kest audit prefix");
    Some(
        list.iter()
            .map(|jws| {
                let entry = kest_canon::sha256(jws.as_bytes());
                let mut both = Vec::with_capacity(64);
                both.extend_from_slice(running.as_bytes());
                both.extend_from_slice(entry.as_bytes());
                running = kest_canon::sha256(&both);
                running
            })
            .collect(),
    )
}

fn text_attribute<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    span.attributes.get(key).and_then(Value::as_str)
}

/// Reads the passports and denials out of one file's spans.
///
/// Every distinct passport is audited. What a span says about itself (`kest.chain_tip`,
/// `kest.passport_len`) decides nothing here: a forged span can claim anything. A passport
/// is left out only when its entries, as written, are exactly the first entries of a
/// passport already kept (the same flow, recorded at an earlier call), which verifying
/// the longer one checks too. Denials go with the passport of their trace, or stand alone.
fn add_spans(name: &str, spans: Vec<Span>, discovery: &mut Discovery) -> bool {
    let kest: Vec<Span> = spans
        .into_iter()
        .filter(|span| span.attributes.contains_key("kest.decision"))
        .collect();
    if kest.is_empty() {
        return false;
    }
    let length = |span: &Span| {
        span.attributes
            .get("kest.passport_len")
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let mut denials: BTreeMap<String, Vec<DeniedCall>> = BTreeMap::new();
    let mut attached: Vec<(&Span, Option<Vec<Sha256Digest>>)> = Vec::new();
    let mut detached = 0_usize;
    let mut longest_detached = 0_u64;
    for span in &kest {
        if text_attribute(span, "kest.decision") != Some("allow") {
            denials
                .entry(span.trace_id.clone())
                .or_default()
                .push(DeniedCall {
                    principal: text_attribute(span, "kest.workload_id")
                        .unwrap_or_default()
                        .to_owned(),
                    operation: text_attribute(span, "kest.operation")
                        .unwrap_or_default()
                        .to_owned(),
                    policy: text_attribute(span, "kest.policy")
                        .unwrap_or_default()
                        .to_owned(),
                    reason: text_attribute(span, "kest.reason")
                        .unwrap_or_default()
                        .to_owned(),
                    decision: text_attribute(span, "kest.decision")
                        .unwrap_or_default()
                        .to_owned(),
                });
        } else if let Some(text) = text_attribute(span, "kest.passport") {
            attached.push((span, prefix_digests(text)));
        } else {
            detached += 1;
            longest_detached = longest_detached.max(length(span));
        }
    }
    // Longest (by the entries the text holds) first, so that a passport is kept before
    // the prefixes of it; text that does not parse is always kept, and fails.
    attached.sort_by_key(|(span, digests)| {
        std::cmp::Reverse((digests.as_ref().map_or(usize::MAX, Vec::len), span.end))
    });
    let mut kept_prefixes = std::collections::HashSet::new();
    for (span, digests) in attached {
        if let Some(digests) = &digests {
            if digests
                .last()
                .is_some_and(|whole| kept_prefixes.contains(whole))
            {
                continue;
            }
            kept_prefixes.extend(digests.iter().copied());
        }
        let text = text_attribute(span, "kest.passport").unwrap_or_default();
        let tip = text_attribute(span, "kest.chain_tip");
        discovery.found.push(Found {
            source: format!(
                "{name} trace {}",
                Untrusted::new(&span.trace_id).max_chars(40)
            ),
            candidate: Candidate::Json {
                text: text.to_owned(),
                tip: tip.and_then(|tip| Sha256Digest::from_hex(tip).ok()),
            },
            denials: denials.remove(&span.trace_id).unwrap_or_default(),
        });
    }
    if detached > 0 {
        discovery.found.push(Found {
            source: name.to_owned(),
            candidate: Candidate::Unavailable(format!(
                "{detached} calls carry passports of more than 16 entries (up to {longest_detached}), \
                 which spans do not hold"
            )),
            denials: Vec::new(),
        });
    }
    discovery
        .loose_denials
        .extend(denials.into_values().flatten());
    true
}

/// Reads `text` as `kest audit` reads a file of it, and returns each passport text found
/// (span exports, passports, header values and JWS are told apart as for files). For the
/// fuzz targets; not part of the API.
#[doc(hidden)]
pub fn fuzz_read(text: &str) -> Result<Vec<String>, String> {
    let mut discovery = Discovery::default();
    read_source("fuzz", BufReader::new(text.as_bytes()), &mut discovery)
        .map_err(|error| error.to_string())?;
    Ok(discovery
        .found
        .into_iter()
        .filter_map(|found| match found.candidate {
            Candidate::Json { text, .. } => Some(text),
            Candidate::Input(_) | Candidate::Unavailable(_) => None,
        })
        .collect())
}
