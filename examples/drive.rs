//! A load driver for fault runs (`cargo xtask chaos`): clients call the gateway of a
//! multi-hop deployment running in other processes, verify every answer offline with the
//! keys the services published before the run, and record each request's outcome with
//! the time it was sent, so that what a fault did, and when service came back, can be
//! read afterwards.
//!
//! Every client call has a timeout ([`CLIENT_TIMEOUT`]); each hop waits less for the
//! next, so a stalled component comes back as an error from the hop in front of it,
//! and a client that had to give up (`timeout`) means something hung.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kest::crypto::{Jwks, SigningKey, StaticKeyResolver, VerifyingKey};
use kest::passport::Verifier;
use serde_json::json;

use crate::hops::{AUDIENCE, BoxError, CLIENT_TIMEOUT, HOPS, mint_token};

/// Where the clients' bearer tokens come from.
pub enum Tokens {
    /// Minted with the local issuer's key, valid for the given time.
    Local(Box<SigningKey>, Duration),
    /// Fetched from this OIDC provider (`oidc-provider-mock`) by the authorization code
    /// flow, again every [`TOKEN_REFRESH`].
    Oidc(String),
}

/// How often a client fetches a fresh token from the OIDC provider (its tokens live
/// 6 s in `cargo xtask services`).
pub const TOKEN_REFRESH: Duration = Duration::from_secs(2);

/// What to drive.
pub struct DriveOptions {
    /// The gateway's URL.
    pub gateway: String,
    /// Each service's JWK Set URL, gateway first: fetched once, before the first
    /// request; the answers are verified against these keys only.
    pub jwks_urls: Vec<String>,
    /// Bearer tokens.
    pub tokens: Tokens,
    /// Concurrent clients.
    pub clients: usize,
    /// How long to drive.
    pub duration: Duration,
    /// One JSON line per request: `t` (Unix ms when sent), `ms` (latency), `outcome`,
    /// `status` (0 without an answer) and `error` (the answer's or the failure's first
    /// line).
    pub events: PathBuf,
    /// One line per entry of every verified answer: its id and principal.
    pub seen: PathBuf,
}

/// What became of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// 200 with a passport that verified: four entries, in order, signed by the
    /// published keys, for the right user.
    Ok,
    /// 200 with a passport that did not verify: a broken or lost chain.
    Broken,
    /// 401 or 403: the request was refused.
    Refused,
    /// Any other status: a service failed, and said why.
    Failed,
    /// No answer: the gateway could not be reached.
    Unreachable,
    /// The client gave up waiting ([`CLIENT_TIMEOUT`]).
    Timeout,
    /// No token could be had, so nothing was sent.
    NoToken,
}

impl Outcome {
    /// The name used in events and reports.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Broken => "broken",
            Self::Refused => "refused",
            Self::Failed => "failed",
            Self::Unreachable => "unreachable",
            Self::Timeout => "timeout",
            Self::NoToken => "no_token",
        }
    }
}

struct Event {
    sent_ms: u64,
    latency_ms: u64,
    outcome: Outcome,
    status: u16,
    error: String,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

/// The first line of `text`, at most 160 characters, control characters escaped.
fn first_line(text: &str) -> String {
    kest::canon::escape_untrusted(text.lines().next().unwrap_or_default(), 160)
}

/// Each service's key, by the principal it publishes it for (the key's `kid`).
async fn published_keys(
    http: &reqwest::Client,
    urls: &[String],
) -> Result<(StaticKeyResolver, Vec<String>), BoxError> {
    let mut resolver = StaticKeyResolver::new();
    let mut principals = Vec::new();
    for url in urls {
        let text = http
            .get(url)
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        let jwks = Jwks::from_json(&text)?;
        let [jwk] = jwks.keys.as_slice() else {
            return Err(format!("{url}: expected one key, found {}", jwks.keys.len()).into());
        };
        let principal = jwk
            .kid
            .clone()
            .ok_or_else(|| format!("{url}: the key names no principal (kid)"))?;
        resolver = resolver.with_key(&principal, VerifyingKey::from_jwk(jwk)?);
        principals.push(principal);
    }
    Ok((resolver, principals))
}

/// Checks a final passport offline: it verifies, holds one entry per service in order,
/// each signed by that service's principal, for `user`. Returns its entries' ids and
/// principals.
fn check(
    resolver: &StaticKeyResolver,
    principals: &[String],
    body: &str,
    user: &str,
) -> Result<Vec<String>, String> {
    let passport = Verifier::new(resolver)
        .verify_json(body)
        .map_err(|error| first_line(&error.to_string()))?
        .into_passport();
    if passport.len() != HOPS.len() {
        return Err(format!(
            "{} entries, expected {}",
            passport.len(),
            HOPS.len()
        ));
    }
    let mut ids = Vec::new();
    for ((signed, hop), principal) in passport.entries().iter().zip(HOPS).zip(principals) {
        let entry = signed.entry();
        if entry.operation() != hop || entry.principal() != Some(principal.as_str()) {
            return Err(format!("entry {} is not {hop}'s", entry.operation()));
        }
        if entry.label("user") != Some(user) {
            return Err(format!("{hop}'s entry lost the user"));
        }
        ids.push(format!("{} {principal}", signed.entry_id()));
    }
    Ok(ids)
}

/// Logs `user` in at `oidc-provider-mock` (the authorization code flow: it asks no
/// password, the subject is posted with the authorization request) and returns the ID
/// token it issues for [`AUDIENCE`]. Every request is bounded by 2 s.
async fn login(issuer: &str, user: &str) -> Result<String, BoxError> {
    // The user names are `user-<n>` and the code is URL-safe: nothing needs escaping.
    const REDIRECT: &str = "http://127.0.0.1/callback";
    const FORM: &str = "application/x-www-form-urlencoded";
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(2))
        .build()?;
    let authorized = http
        .post(format!(
            "{issuer}/oauth2/authorize?client_id={AUDIENCE}&redirect_uri={REDIRECT}&response_type=code&scope=openid"
        ))
        .header("content-type", FORM)
        .body(format!("sub={user}"))
        .send()
        .await?;
    let code = authorized
        .headers()
        .get("location")
        .and_then(|location| location.to_str().ok())
        .and_then(|location| url_param(location, "code"))
        .ok_or("the provider's redirect carries no code")?;
    let answer: serde_json::Value = http
        .post(format!("{issuer}/oauth2/token"))
        .header("content-type", FORM)
        .body(format!(
            "grant_type=authorization_code&code={code}&redirect_uri={REDIRECT}&client_id={AUDIENCE}&client_secret=secret"
        ))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(answer
        .get("id_token")
        .and_then(serde_json::Value::as_str)
        .ok_or("the token answer holds no id_token")?
        .to_owned())
}

/// The value of query parameter `name` in `url`.
fn url_param(url: &str, name: &str) -> Option<String> {
    let (_, query) = url.split_once('?')?;
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| value.to_owned())
    })
}

/// A client's current token, fetched again when stale; the stale one is kept (and
/// sent) while no fresh one can be had.
struct Token {
    value: Option<String>,
    fetched: Option<Instant>,
}

impl Token {
    async fn current(&mut self, tokens: &Tokens, user: &str) -> Option<String> {
        let stale = self.fetched.is_none_or(|at| at.elapsed() >= TOKEN_REFRESH);
        if stale {
            let fresh = match tokens {
                Tokens::Local(issuer, lifetime) => {
                    mint_token(issuer, *lifetime, user, "chaos-agent", "chaos").ok()
                }
                Tokens::Oidc(issuer) => login(issuer, user).await.ok(),
            };
            if fresh.is_some() {
                self.value = fresh;
                self.fetched = Some(Instant::now());
            }
        }
        self.value.clone()
    }
}

/// Drives the gateway and writes the events and the seen entries; returns the summary
/// (JSON): the count of each outcome, latencies, and the distinct errors.
///
/// # Errors
/// When the published keys cannot be fetched, or the files cannot be written.
pub async fn drive(options: DriveOptions) -> Result<serde_json::Value, BoxError> {
    let http = reqwest::Client::builder().timeout(CLIENT_TIMEOUT).build()?;
    let (resolver, principals) = published_keys(&http, &options.jwks_urls).await?;
    let shared = Arc::new((resolver, principals, options.tokens, options.gateway, http));
    let started = Instant::now();
    let mut workers = Vec::new();
    for client in 0..options.clients {
        let shared = Arc::clone(&shared);
        let duration = options.duration;
        workers.push(tokio::spawn(async move {
            let (resolver, principals, tokens, gateway, http) = &*shared;
            let user = format!("user-{client}");
            let mut token = Token {
                value: None,
                fetched: None,
            };
            let mut events = Vec::new();
            let mut seen = Vec::new();
            while started.elapsed() < duration {
                let sent_ms = unix_ms();
                let sent = Instant::now();
                let Some(bearer) = token.current(tokens, &user).await else {
                    events.push(Event {
                        sent_ms,
                        latency_ms: 0,
                        outcome: Outcome::NoToken,
                        status: 0,
                        error: "no token from the issuer".into(),
                    });
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                let answer = http
                    .post(gateway.as_str())
                    .header("authorization", format!("Bearer {bearer}"))
                    .send()
                    .await;
                let (outcome, status, error) = match answer {
                    Err(error) if error.is_timeout() => {
                        (Outcome::Timeout, 0, first_line(&error.to_string()))
                    }
                    Err(error) => (Outcome::Unreachable, 0, first_line(&error.to_string())),
                    Ok(response) => {
                        let status = response.status().as_u16();
                        match response.text().await {
                            Err(error) if error.is_timeout() => {
                                (Outcome::Timeout, status, first_line(&error.to_string()))
                            }
                            Err(error) => {
                                (Outcome::Unreachable, status, first_line(&error.to_string()))
                            }
                            Ok(body) if status == 200 => {
                                match check(resolver, principals, &body, &user) {
                                    Ok(mut ids) => {
                                        seen.append(&mut ids);
                                        (Outcome::Ok, status, String::new())
                                    }
                                    Err(error) => (Outcome::Broken, status, error),
                                }
                            }
                            Ok(body) if status == 401 || status == 403 => {
                                (Outcome::Refused, status, first_line(&body))
                            }
                            Ok(body) => (Outcome::Failed, status, first_line(&body)),
                        }
                    }
                };
                let latency_ms = u64::try_from(sent.elapsed().as_millis()).unwrap_or(u64::MAX);
                if outcome != Outcome::Ok {
                    // Do not spin against a service that refuses at once.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                events.push(Event {
                    sent_ms,
                    latency_ms,
                    outcome,
                    status,
                    error,
                });
            }
            (events, seen)
        }));
    }
    let mut events = Vec::new();
    let mut seen = Vec::new();
    for worker in workers {
        let (mut more, mut ids) = worker.await?;
        events.append(&mut more);
        seen.append(&mut ids);
    }
    events.sort_by_key(|event| event.sent_ms);
    write_files(&options.events, &options.seen, &events, &seen)?;
    Ok(summary(&events))
}

fn write_files(
    events_path: &PathBuf,
    seen_path: &PathBuf,
    events: &[Event],
    seen: &[String],
) -> Result<(), BoxError> {
    let mut text = String::new();
    for event in events {
        text.push_str(
            &json!({
                "t": event.sent_ms,
                "ms": event.latency_ms,
                "outcome": event.outcome.name(),
                "status": event.status,
                "error": event.error,
            })
            .to_string(),
        );
        text.push('\n');
    }
    std::fs::write(events_path, text)?;
    let mut lines = seen.join("\n");
    lines.push('\n');
    std::fs::write(seen_path, lines)?;
    Ok(())
}

/// `text` with every run of 16 or more hex digits and dashes (claim keys, entry ids,
/// hashes) shortened to `…`, so that the same error counts once.
fn without_ids(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 16 {
            out.push('…');
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_hexdigit() || c == '-' {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// The `q` quantile (0 to 1) of `sorted`, or 0 when it is empty.
fn quantile(sorted: &[u64], q: f64) -> u64 {
    let last = sorted.len().saturating_sub(1);
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "an index into a sorted list of samples, well within range"
    )]
    let index = ((last as f64) * q.clamp(0.0, 1.0)).round() as usize;
    sorted.get(index).copied().unwrap_or_default()
}

fn summary(events: &[Event]) -> serde_json::Value {
    let mut outcomes: BTreeMap<&str, u64> = BTreeMap::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut latencies: Vec<u64> = Vec::new();
    for event in events {
        *outcomes.entry(event.outcome.name()).or_default() += 1;
        if event.outcome != Outcome::NoToken {
            latencies.push(event.latency_ms);
        }
        if !event.error.is_empty() {
            let key = format!(
                "{} {}: {}",
                event.outcome.name(),
                event.status,
                without_ids(&event.error)
            );
            *errors.entry(key).or_default() += 1;
        }
    }
    latencies.sort_unstable();
    let at = |q: f64| quantile(&latencies, q);
    let mut errors: Vec<(String, u64)> = errors.into_iter().collect();
    errors.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    errors.truncate(12);
    json!({
        "sent": events.iter().filter(|event| event.outcome != Outcome::NoToken).count(),
        "outcomes": outcomes,
        "p50_ms": at(0.5),
        "p99_ms": at(0.99),
        "max_ms": latencies.last().copied().unwrap_or_default(),
        "errors": errors.into_iter().map(|(text, count)| json!({"count": count, "error": text})).collect::<Vec<_>>(),
    })
}
