//! A gateway and three services, each protected by Kest, passing one request along:
//! `gateway → hop1 → hop2 → hop3`, and trusting nothing it has not verified.
//!
//! - The **gateway** takes the user's input: its entry has origin `user_input` (trust 40)
//!   and the taint `unverified`.
//! - **hop1** is the sanitizer: it clears `unverified` and declares trust 90.
//! - **hop2** passes the work on.
//! - **hop3** performs the guarded action: its Cedar policy requires trust ≥ 80 and no
//!   `unverified` taint.
//!
//! Every service publishes its public key at `GET /.well-known/jwks.json` and trusts only
//! its peers' keys, fetched from their JWK Set URLs. Each runs the lineage layer (which
//! verifies the inbound passport: every signature, the chain, the label audit), the
//! identity layer (the caller's bearer token, against the local issuer's JWKS), then its
//! protected step, then forwards the request with the reqwest propagator. hop3 answers
//! with the final passport. A forged passport is refused with 403 at whichever hop
//! receives it, and nothing runs there.

use std::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kest::crypto::{KeySigner, PrivateJwk, SigningKey, StaticKeyResolver, VerifyingKey};
use kest::identity::{JwtValidator, StaticIdentity};
use kest::passport::{Passport, Verifier};
use kest::policy::CedarEngine;
use kest::propagation::{
    ClaimStore, IdentityLayer, Ingress, LineageLayer, MemoryClaimStore, PropagateLineage,
};
use kest::{Call, Kest, Protected, Values};
use serde_json::json;
use tokio::task::JoinHandle;

/// Errors of the example.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// The names of the services, in order.
pub const HOPS: [&str; 4] = ["gateway", "hop1", "hop2", "hop3"];
/// The token issuer.
pub const ISSUER: &str = "https://issuer.example.org";
/// The audience the services accept.
pub const AUDIENCE: &str = "kest-demo-services";

/// The services' policies. Every step must act for a user; the guarded action also
/// needs trusted, verified data.
const POLICIES: &str = r#"
@id("hop/needs-a-user")
permit (principal, action == Action::"hop", resource)
when { context.subject has user && context.subject.user != "" };

@id("guarded/trusted-and-verified")
permit (principal, action == Action::"guarded", resource)
when {
  context.subject.trust_score >= 80 &&
  !context.subject.taints.contains("unverified")
};
"#;

/// The workload id of a service.
#[must_use]
pub fn workload(hop: &str) -> String {
    format!("spiffe://example.org/{hop}")
}

/// The protected step of each service.
fn step(index: usize) -> Call {
    let name = HOPS.get(index).copied().unwrap_or("hop");
    let call = Call::new(name).policy("hop");
    match index {
        // The user's input: trust 40, and not verified yet.
        0 => call.origin("user_input").added_taints(["unverified"]),
        // The sanitizer clears the taint and declares the trust it vouches for.
        1 => call.removed_taints(["unverified"]).trust_override(90),
        // The guarded action.
        3 => call.policy("guarded"),
        _ => call,
    }
}

/// How to run the services.
#[derive(Debug, Clone)]
pub struct Options {
    /// A Redis server for claim checks (`redis://…`); memory shared by the services
    /// otherwise.
    pub redis: Option<String>,
    /// Passports above this many bytes go by claim check (default 4096).
    pub inline_threshold: Option<usize>,
    /// Verify inbound passports (the default). Off, each hop takes lineage on faith, as
    /// `KEST_INSECURE_UNVERIFIED_LINEAGE=true` would: only for measuring what
    /// verification costs.
    pub verify_ingress: bool,
    /// How long tokens from [`Deployment::token`] stay valid.
    pub token_lifetime: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            redis: None,
            inline_threshold: None,
            verify_ingress: true,
            token_lifetime: Duration::from_secs(600),
        }
    }
}

/// The running services.
pub struct Deployment {
    urls: Vec<String>,
    issuer: SigningKey,
    keys: Vec<(String, VerifyingKey)>,
    /// Each service's private key, kept only to play an attacker who stole one.
    private: Vec<PrivateJwk>,
    runs: Vec<Arc<AtomicU64>>,
    tasks: Vec<JoinHandle<()>>,
    http: reqwest::Client,
    token_lifetime: Duration,
}

struct Hop {
    process: Protected,
    runs: Arc<AtomicU64>,
    next: Option<String>,
    client: reqwest_middleware::ClientWithMiddleware,
}

impl Deployment {
    /// Starts the four services on 127.0.0.1.
    ///
    /// # Errors
    /// When a service cannot bind, or Redis cannot be reached.
    pub async fn start(options: Options) -> Result<Self, BoxError> {
        let store: Arc<dyn ClaimStore> = match &options.redis {
            #[cfg(feature = "redis")]
            Some(url) => Arc::new(kest::propagation::RedisClaimStore::connect(url).await?),
            #[cfg(not(feature = "redis"))]
            Some(_) => return Err("--redis needs the example's `redis` feature".into()),
            None => Arc::new(MemoryClaimStore::default()),
        };
        let issuer = SigningKey::generate_ed25519()?;
        let mut jwk = serde_json::to_value(issuer.verifying_key().to_jwk())?;
        if let Some(members) = jwk.as_object_mut() {
            members.insert("kid".into(), json!("issuer-key-1"));
        }
        let jwks = json!({ "keys": [jwk] }).to_string();

        // Bind every listener first, so each service knows its peers' addresses.
        let mut listeners = Vec::new();
        for _ in HOPS {
            listeners.push(tokio::net::TcpListener::bind("127.0.0.1:0").await?);
        }
        let urls: Vec<String> = listeners
            .iter()
            .map(|l| l.local_addr().map(|a| format!("http://{a}/")))
            .collect::<Result<_, _>>()?;

        let mut keys = Vec::new();
        let mut private = Vec::new();
        let mut runs = Vec::new();
        let mut tasks = Vec::new();
        for (index, listener) in listeners.into_iter().enumerate() {
            let name = HOPS.get(index).copied().unwrap_or("hop");
            let key = SigningKey::generate_ed25519()?;
            keys.push((workload(name), key.verifying_key().clone()));
            private.push(key.to_private_jwk());
            let mut builder = Kest::builder()
                .identity(StaticIdentity::new(workload(name), key))
                .engine(
                    CedarEngine::builder()
                        .policy_source("multi_hop", POLICIES)
                        .build()?,
                )
                .claim_store(store.clone())
                .service_name(name);
            if options.verify_ingress {
                // Each hop trusts its peers, and only them, as they publish themselves.
                for (peer, url) in urls.iter().enumerate() {
                    if peer != index {
                        builder = builder.trust_jwks_url(format!("{url}.well-known/jwks.json"))?;
                    }
                }
            } else {
                builder = builder.ingress(Ingress::insecure_unverified(Some("true"))?);
            }
            if let Some(threshold) = options.inline_threshold {
                builder = builder.inline_threshold(threshold);
            }
            let kest = builder.build()?;
            let counter = Arc::new(AtomicU64::new(0));
            runs.push(Arc::clone(&counter));
            let hop = Arc::new(Hop {
                process: kest.protect(step(index))?,
                runs: counter,
                next: urls.get(index + 1).cloned(),
                client: reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
                    .with(PropagateLineage::new(kest.codec().clone()))
                    .build(),
            });
            let validator =
                JwtValidator::with_jwks(ISSUER, AUDIENCE, &jwks, Duration::from_secs(5))?;
            // The key endpoint is outermost: it needs neither lineage nor a token.
            let app = axum::Router::new()
                .route("/", axum::routing::post(handle))
                .with_state(hop)
                .layer(IdentityLayer::new(validator))
                .layer(LineageLayer::new(kest.codec().clone()))
                .layer(kest.publish_keys_layer().await?);
            tasks.push(tokio::spawn(async move {
                // A service that stops shows up as failed calls at the gateway.
                let _ = axum::serve(listener, app).await;
            }));
        }
        Ok(Self {
            urls,
            issuer,
            keys,
            private,
            runs,
            tasks,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
            token_lifetime: options.token_lifetime,
        })
    }

    /// Each service's URL, gateway first.
    #[must_use]
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// How many times the protected step of service `index` has run.
    #[must_use]
    pub fn runs(&self, index: usize) -> u64 {
        self.runs
            .get(index)
            .map_or(0, |runs| runs.load(Ordering::SeqCst))
    }

    /// A signer holding service `index`'s own key: what an attacker has after stealing
    /// it. Tests use it to forge entries that carry a valid signature.
    ///
    /// # Errors
    /// When `index` is not a service.
    pub fn stolen_signer(&self, index: usize) -> Result<KeySigner, BoxError> {
        let jwk = self.private.get(index).ok_or("no such service")?;
        let name = HOPS.get(index).copied().unwrap_or("hop");
        Ok(KeySigner::new(SigningKey::from_jwk(jwk)?, workload(name)))
    }

    /// A token from the local issuer for `user`, acting through `agent` on `task`.
    ///
    /// # Errors
    /// When signing fails.
    pub fn token(&self, user: &str, agent: &str, task: &str) -> Result<String, BoxError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let header = json!({"alg": "EdDSA", "kid": "issuer-key-1", "typ": "JWT"});
        let claims = json!({
            "iss": ISSUER, "aud": AUDIENCE, "iat": now,
            "exp": now + self.token_lifetime.as_secs(),
            "sub": user, "client_id": agent, "scope": task,
        });
        let input = format!(
            "{}.{}",
            kest::canon::b64url_encode(header.to_string().as_bytes()),
            kest::canon::b64url_encode(claims.to_string().as_bytes())
        );
        let signature = self.issuer.sign(input.as_bytes())?;
        Ok(format!(
            "{input}.{}",
            kest::canon::b64url_encode(&signature)
        ))
    }

    /// Sends one request through all four services with `token`; returns the status and
    /// the body (the final passport when it succeeded).
    ///
    /// # Errors
    /// When the gateway cannot be reached.
    pub async fn call(&self, token: &str) -> Result<(u16, String), BoxError> {
        self.call_hop(0, token, None).await
    }

    /// Sends a request straight to service `index`, with `baggage` as the header if
    /// given: how an attacker would reach a hop with a forged passport.
    ///
    /// # Errors
    /// When the service cannot be reached.
    pub async fn call_hop(
        &self,
        index: usize,
        token: &str,
        baggage: Option<&str>,
    ) -> Result<(u16, String), BoxError> {
        let url = self.urls.get(index).ok_or("no such service")?;
        let mut request = self
            .http
            .post(url)
            .header("authorization", format!("Bearer {token}"));
        if let Some(baggage) = baggage {
            request = request.header("baggage", baggage);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        Ok((status, response.text().await?))
    }

    /// What an auditor trusts: every service's public key.
    #[must_use]
    pub fn resolver(&self) -> StaticKeyResolver {
        self.keys
            .iter()
            .fold(StaticKeyResolver::new(), |resolver, (workload, key)| {
                resolver.with_key(workload, key.clone())
            })
    }

    /// Checks a final passport: it verifies, has one entry per hop in order, each signed
    /// by its own service, carries `user` through, and tells the zero-trust story: the
    /// gateway's input at trust 40 and `unverified`, the sanitizer's declared 90, the
    /// guarded action on trusted, verified data.
    ///
    /// # Errors
    /// Saying what is wrong.
    pub fn check(&self, passport_json: &str, user: &str) -> Result<Passport, BoxError> {
        let resolver = self.resolver();
        let passport = Verifier::new(&resolver)
            .verify_json(passport_json)?
            .into_passport();
        if passport.len() != HOPS.len() {
            return Err(format!("{} entries, expected {}", passport.len(), HOPS.len()).into());
        }
        let expected = [(40, true), (90, false), (90, false), (90, false)];
        for ((entry, hop), (trust, unverified)) in passport.entries().iter().zip(HOPS).zip(expected)
        {
            let entry = entry.entry();
            if entry.operation() != hop || entry.principal() != Some(workload(hop).as_str()) {
                return Err(format!("entry {} is not {hop}'s", entry.operation()).into());
            }
            if entry.label("user") != Some(user) {
                return Err(format!("{hop}'s entry lost the user").into());
            }
            if entry.trust_score().get() != trust
                || entry.taints().contains("unverified") != unverified
            {
                return Err(format!(
                    "{hop}'s entry has trust {} and taints {:?}",
                    entry.trust_score(),
                    entry.taints()
                )
                .into());
            }
        }
        Ok(passport)
    }

    /// Stops the services.
    pub fn shutdown(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

/// `baggage` carrying `passport` inline, with its chain tip, as a caller would send it.
///
/// # Errors
/// When the passport does not fit a header.
pub fn baggage_of(passport: &Passport) -> Result<String, BoxError> {
    let mut baggage = kest::propagation::Baggage::new();
    baggage.set(kest::propagation::keys::PASSPORT, passport.to_json())?;
    if let Some(tip) = passport.tip_hash() {
        baggage.set(kest::propagation::keys::CHAIN_TIP, tip.to_hex())?;
    }
    Ok(baggage.to_header())
}

/// The passport the gateway sends on, as someone listening between the gateway and hop1
/// would capture it: one entry, validly signed by the gateway, at trust 40 and
/// `unverified`. Sent straight to hop3, it skips the sanitizer.
///
/// # Errors
/// When signing fails.
pub fn gateway_only_baggage(deployment: &Deployment) -> Result<String, BoxError> {
    let signer = deployment.stolen_signer(0)?;
    let mut passport = Passport::new();
    passport.append(
        kest::passport::EntryBuilder::new("gateway")
            .principal(workload("gateway"))
            .origin_score(kest::trust::OriginMap::new().score("user_input")?)
            .added_taints(["unverified"]),
        &signer,
        &kest::trust::WeakestLink,
    )?;
    baggage_of(&passport)
}

/// One service's handler: the protected step, then the next hop.
async fn handle(State(hop): State<Arc<Hop>>) -> Response {
    let runs = Arc::clone(&hop.runs);
    let ran = hop
        .process
        .run(Values::new(), async move {
            runs.fetch_add(1, Ordering::SeqCst);
        })
        .await;
    if let Err(error) = ran {
        let status = if error.stopped_before_running() {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        return (status, format!("{error}\n")).into_response();
    }
    let Some(next) = &hop.next else {
        let passport = kest::current_passport().unwrap_or_default();
        return (StatusCode::OK, passport.to_json()).into_response();
    };
    let token = kest::current_jwt().unwrap_or_default();
    match hop
        .client
        .post(next)
        .header("authorization", format!("Bearer {token}"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
    {
        Ok(response) => {
            let status =
                StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            match response.text().await {
                Ok(body) => (status, body).into_response(),
                Err(error) => (StatusCode::BAD_GATEWAY, error.to_string()).into_response(),
            }
        }
        Err(error) => (StatusCode::BAD_GATEWAY, error.to_string()).into_response(),
    }
}

/// What a load run measured.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Requests completed.
    pub requests: u64,
    /// Requests per second.
    pub per_second: f64,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// Responses whose final passport did not verify, or that failed.
    pub broken: u64,
}

/// Drives the deployment with `clients` concurrent clients for `duration`, checking every
/// final passport.
///
/// # Errors
/// When a token cannot be made.
pub async fn load(
    deployment: Arc<Deployment>,
    clients: usize,
    duration: Duration,
) -> Result<LoadReport, BoxError> {
    let started = Instant::now();
    let mut workers = Vec::new();
    for client in 0..clients {
        let deployment = Arc::clone(&deployment);
        let user = format!("user-{client}");
        let token = deployment.token(&user, "load-agent", "load")?;
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut broken = 0_u64;
            while started.elapsed() < duration {
                let sent = Instant::now();
                match deployment.call(&token).await {
                    Ok((200, body)) if deployment.check(&body, &user).is_ok() => {}
                    _ => broken += 1,
                }
                latencies.push(sent.elapsed());
            }
            (latencies, broken)
        }));
    }
    let mut latencies = Vec::new();
    let mut broken = 0;
    for worker in workers {
        let (mut samples, failures) = worker.await?;
        latencies.append(&mut samples);
        broken += failures;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let at = |quantile: f64| {
        let last = latencies.len().saturating_sub(1);
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss,
            reason = "an index into a sorted list of samples, well within range"
        )]
        let index = ((last as f64) * quantile).round() as usize;
        latencies.get(index).copied().unwrap_or_default()
    };
    let requests = u64::try_from(latencies.len()).unwrap_or(u64::MAX);
    #[allow(
        clippy::cast_precision_loss,
        reason = "a request count shown as a rate"
    )]
    let per_second = requests as f64 / elapsed.as_secs_f64();
    Ok(LoadReport {
        requests,
        per_second,
        p50: at(0.50),
        p99: at(0.99),
        broken,
    })
}
