//! A gateway and three services, each protected by Kest, passing one request along:
//! `gateway → hop1 → hop2 → hop3`.
//!
//! Every service runs the lineage layer (outermost) and the identity layer, validating
//! the caller's bearer token against the local issuer's JWKS, then a protected call, then
//! forwards the request with the reqwest propagator. The last hop answers with the
//! passport, which by then has one entry per hop, each signed by its own service.

use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kest::{Call, Kest, Protected, Values};
use kest_crypto::{SigningKey, StaticKeyResolver, VerifyingKey};
use kest_identity::{JwtValidator, StaticIdentity};
use kest_passport::{Passport, Verifier};
use kest_policy::CedarEngine;
use kest_propagation::{
    ClaimStore, IdentityLayer, LineageLayer, MemoryClaimStore, PropagateLineage,
};
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

/// Each hop's policy: the request must act for a user.
const POLICY: &str = r#"
@id("hop/needs-a-user")
permit (principal, action == Action::"hop", resource)
when { context.subject has user && context.subject.user != "" };
"#;

/// How to run the services.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// A Redis server for claim checks (`redis://…`); memory shared by the services
    /// otherwise.
    pub redis: Option<String>,
    /// Passports above this many bytes go by claim check (default 4096).
    pub inline_threshold: Option<usize>,
}

/// The running services.
pub struct Deployment {
    gateway: String,
    issuer: SigningKey,
    keys: Vec<(String, VerifyingKey)>,
    tasks: Vec<JoinHandle<()>>,
    http: reqwest::Client,
}

struct Hop {
    process: Protected,
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
            Some(url) => Arc::new(kest_propagation::RedisClaimStore::connect(url).await?),
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

        // Bind every listener first, so each service knows the next one's address.
        let mut listeners = Vec::new();
        for _ in HOPS {
            listeners.push(tokio::net::TcpListener::bind("127.0.0.1:0").await?);
        }
        let urls: Vec<String> = listeners
            .iter()
            .map(|l| l.local_addr().map(|a| format!("http://{a}/")))
            .collect::<Result<_, _>>()?;

        let mut keys = Vec::new();
        let mut tasks = Vec::new();
        for (index, listener) in listeners.into_iter().enumerate() {
            let name = HOPS.get(index).copied().unwrap_or("hop");
            let workload = format!("spiffe://example.org/{name}");
            let key = SigningKey::generate_ed25519()?;
            keys.push((workload.clone(), key.verifying_key().clone()));
            let mut builder = Kest::builder()
                .identity(Arc::new(StaticIdentity::new(workload, key)))
                .engine(Arc::new(
                    CedarEngine::builder()
                        .policy_source("hop", POLICY)
                        .build()?,
                ))
                .claim_store(store.clone())
                .service_name(name);
            if let Some(threshold) = options.inline_threshold {
                builder = builder.inline_threshold(threshold);
            }
            let kest = builder.build()?;
            let hop = Arc::new(Hop {
                process: kest.protect(Call::new(name).policy("hop"))?,
                next: urls.get(index + 1).cloned(),
                client: reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
                    .with(PropagateLineage::new(kest.codec().clone()))
                    .build(),
            });
            let validator =
                JwtValidator::with_jwks(ISSUER, AUDIENCE, &jwks, Duration::from_secs(5))?;
            let app = axum::Router::new()
                .route("/", axum::routing::post(handle))
                .with_state(hop)
                .layer(IdentityLayer::new(validator))
                .layer(LineageLayer::new(kest.codec().clone()));
            tasks.push(tokio::spawn(async move {
                // A service that stops shows up as failed calls at the gateway.
                let _ = axum::serve(listener, app).await;
            }));
        }
        Ok(Self {
            gateway: urls.first().cloned().ok_or("no gateway")?,
            issuer,
            keys,
            tasks,
            http: reqwest::Client::new(),
        })
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
            "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600,
            "sub": user, "client_id": agent, "scope": task,
        });
        let input = format!(
            "{}.{}",
            kest_canon::b64url_encode(header.to_string().as_bytes()),
            kest_canon::b64url_encode(claims.to_string().as_bytes())
        );
        let signature = self.issuer.sign(input.as_bytes())?;
        Ok(format!("{input}.{}", kest_canon::b64url_encode(&signature)))
    }

    /// Sends one request through all four services with `token`; returns the status and
    /// the body (the final passport when it succeeded).
    ///
    /// # Errors
    /// When the gateway cannot be reached.
    pub async fn call(&self, token: &str) -> Result<(u16, String), BoxError> {
        let response = self
            .http
            .post(&self.gateway)
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await?;
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
    /// by its own service, and carries `user` through.
    ///
    /// # Errors
    /// Saying what is wrong.
    pub fn check(&self, passport_json: &str, user: &str) -> Result<Passport, BoxError> {
        let resolver = self.resolver();
        let report = Verifier::new(&resolver).verify_json(passport_json)?;
        let passport = Passport::decode(passport_json, &kest_passport::Limits::default())?;
        if report.len() != HOPS.len() {
            return Err(format!("{} entries, expected {}", report.len(), HOPS.len()).into());
        }
        for (entry, hop) in passport.entries().iter().zip(HOPS) {
            let entry = entry.entry();
            if entry.operation() != hop
                || entry.principal() != Some(&format!("spiffe://example.org/{hop}"))
            {
                return Err(format!("entry {} is not {hop}'s", entry.operation()).into());
            }
            if entry.label("user") != Some(user) {
                return Err(format!("{hop}'s entry lost the user").into());
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

/// One service's handler: the protected step, then the next hop.
async fn handle(State(hop): State<Arc<Hop>>) -> Response {
    if let Err(error) = hop.process.run(Values::new(), async {}).await {
        let status = if error.stopped_before_running() {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        return (status, error.to_string()).into_response();
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
            clippy::cast_precision_loss
        )]
        let index = ((last as f64) * quantile).round() as usize;
        latencies.get(index).copied().unwrap_or_default()
    };
    let requests = u64::try_from(latencies.len()).unwrap_or(u64::MAX);
    #[allow(clippy::cast_precision_loss)]
    let per_second = requests as f64 / elapsed.as_secs_f64();
    Ok(LoadReport {
        requests,
        per_second,
        p50: at(0.50),
        p99: at(0.99),
        broken,
    })
}
