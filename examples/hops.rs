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
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kest::crypto::{KeySigner, PrivateJwk, SigningKey, StaticKeyResolver, VerifyingKey};
use kest::identity::{IdentityProvider, JwtValidator, StaticIdentity};
use kest::passport::{Passport, Verifier};
use kest::policy::CedarEngine;
use kest::propagation::{
    ClaimStore, IdentityLayer, Ingress, LineageLayer, MemoryClaimStore, PropagateLineage,
};
use kest::{Call, Kest, KestBuilder, Protected, Values};
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

/// The services' policies, one Cedar policy each (a Cedar agent takes them one by one).
/// Every step must act for a user; the guarded action also needs trusted, verified data.
pub const POLICIES: [(&str, &str); 2] = [
    (
        "hop-needs-a-user",
        r#"permit (principal, action == Action::"hop", resource)
when { context.subject has user && context.subject.user != "" };"#,
    ),
    (
        "guarded-trusted-and-verified",
        r#"permit (principal, action == Action::"guarded", resource)
when {
  context.subject.trust_score >= 80 &&
  !context.subject.taints.contains("unverified")
};"#,
    ),
];

/// The policies as a Cedar agent loads them at start (`cedar-agent --policies FILE`):
/// a JSON array of `{"id", "content"}`.
#[must_use]
pub fn agent_policies_json() -> String {
    let policies: Vec<_> = POLICIES
        .iter()
        .map(|(id, content)| json!({"id": id, "content": content}))
        .collect();
    serde_json::Value::Array(policies).to_string()
}

/// The workload id of a service.
#[must_use]
pub fn workload(hop: &str) -> String {
    format!("spiffe://example.org/{hop}")
}

/// A token from the local issuer `issuer` for `user`, acting through `agent` on `task`,
/// valid for `lifetime`.
///
/// # Errors
/// When signing fails.
pub fn mint_token(
    issuer: &SigningKey,
    lifetime: Duration,
    user: &str,
    agent: &str,
    task: &str,
) -> Result<String, BoxError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let header = json!({"alg": "EdDSA", "kid": "issuer-key-1", "typ": "JWT"});
    let claims = json!({
        "iss": ISSUER, "aud": AUDIENCE, "iat": now,
        "exp": now + lifetime.as_secs(),
        "sub": user, "client_id": agent, "scope": task,
    });
    let input = format!(
        "{}.{}",
        kest::canon::b64url_encode(header.to_string().as_bytes()),
        kest::canon::b64url_encode(claims.to_string().as_bytes())
    );
    let signature = issuer.sign(input.as_bytes())?;
    Ok(format!(
        "{input}.{}",
        kest::canon::b64url_encode(&signature)
    ))
}

/// The local token issuer's key kept in `dir` (made there on first use): what every
/// process of a deployment split over processes shares.
///
/// # Errors
/// When the key file cannot be read or written.
pub fn stored_issuer(dir: &Path) -> Result<SigningKey, BoxError> {
    stored_key(Some(dir), "issuer")
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
    /// How long a claim-checked passport stays redeemable (default 300 s).
    pub claim_ttl: Option<Duration>,
    /// Verify inbound passports (the default). Off, each hop takes lineage on faith, as
    /// `KEST_INSECURE_UNVERIFIED_LINEAGE=true` would: only for measuring what
    /// verification costs.
    pub verify_ingress: bool,
    /// How long tokens from [`Deployment::token`] stay valid.
    pub token_lifetime: Duration,
    /// Fixed ports for the four services, gateway first; free ports otherwise.
    pub ports: Option<[u16; 4]>,
    /// Run only this service (0 is the gateway) in this process; its peers are expected
    /// at `ports`, in processes of their own.
    pub only: Option<usize>,
    /// Keep each service's private key, and the local token issuer's, in this directory
    /// (created on first use), so that a restarted service signs with the same key.
    pub key_dir: Option<PathBuf>,
    /// Ask the Cedar agent at this URL instead of the in-process Cedar engine (feature
    /// `chaos`); it must hold [`POLICIES`].
    pub cedar_agent: Option<String>,
    /// Accept bearer tokens from this OIDC provider (found by discovery, for
    /// [`AUDIENCE`]) instead of the local issuer.
    pub oidc_issuer: Option<String>,
    /// hop2 signs through this AWS KMS key (feature `chaos`; the AWS configuration comes
    /// from the environment, `AWS_ENDPOINT_URL` included).
    pub kms_key_id: Option<String>,
    /// The principal hop2 signs as with [`Options::kms_key_id`] (the STS caller's ARN):
    /// its peers trust hop2's published keys for that principal only.
    pub kms_principal: Option<String>,
    /// Log each run of a protected step to `<dir>/<service>.runs`: `R <run>` when the
    /// step runs, then `E <run> <entry id> <principal>` once its entry is signed, or
    /// `E <run> - -` when it could not be (the hook signs after the step, with its
    /// output). A run is `<pid>-<n>`; a process killed between the two lines leaves the
    /// `R` line alone.
    pub run_log: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            redis: None,
            inline_threshold: None,
            claim_ttl: None,
            verify_ingress: true,
            token_lifetime: Duration::from_secs(600),
            ports: None,
            only: None,
            key_dir: None,
            cedar_agent: None,
            oidc_issuer: None,
            kms_key_id: None,
            kms_principal: None,
            run_log: None,
        }
    }
}

/// The running services.
pub struct Deployment {
    urls: Vec<String>,
    issuer: SigningKey,
    keys: Vec<(String, VerifyingKey)>,
    /// Each service's private key (none for a key held by KMS), kept only to play an
    /// attacker who stole one.
    private: Vec<Option<PrivateJwk>>,
    runs: Vec<Arc<AtomicU64>>,
    tasks: Vec<JoinHandle<()>>,
    http: reqwest::Client,
    token_lifetime: Duration,
}

struct Hop {
    process: Protected,
    runs: Arc<AtomicU64>,
    next: Option<String>,
    /// How long this hop waits for the next: less than its caller waits for it, so
    /// that a stalled hop further on comes back as this hop's error, not a timeout.
    forward_timeout: Duration,
    client: reqwest_middleware::ClientWithMiddleware,
    run_log: Option<std::sync::Mutex<std::fs::File>>,
}

/// How long a client waits for the gateway; each hop waits 2 s less for the next.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(16);

/// `name`'s signing key: kept in `dir` when there is one (made there on first use),
/// fresh otherwise.
fn stored_key(dir: Option<&Path>, name: &str) -> Result<SigningKey, BoxError> {
    let Some(dir) = dir else {
        return Ok(SigningKey::generate_ed25519()?);
    };
    let path = dir.join(format!("{name}.jwk"));
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(SigningKey::from_jwk_json(&text)?),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir)?;
            let key = SigningKey::generate_ed25519()?;
            let jwk = key.to_private_jwk();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            std::io::Write::write_all(&mut options.open(&path)?, jwk.to_json().as_bytes())?;
            Ok(key)
        }
        Err(error) => Err(format!("{}: {error}", path.display()).into()),
    }
}

/// The principal service `index` signs as: its workload id, or for hop2 signing through
/// KMS the principal given with the key.
fn peer_principal(options: &Options, index: usize) -> Result<String, BoxError> {
    if index == 2 && options.kms_key_id.is_some() {
        return options
            .kms_principal
            .clone()
            .ok_or_else(|| "--kms-key-id needs --kms-principal (hop2's STS caller ARN)".into());
    }
    Ok(workload(HOPS.get(index).copied().unwrap_or("hop")))
}

/// The identity service `index` signs with, its public key and its private key when
/// it holds one.
async fn hop_identity(
    options: &Options,
    index: usize,
) -> Result<
    (
        Arc<dyn IdentityProvider>,
        String,
        VerifyingKey,
        Option<PrivateJwk>,
    ),
    BoxError,
> {
    let name = HOPS.get(index).copied().unwrap_or("hop");
    if let (2, Some(key_id)) = (index, &options.kms_key_id) {
        #[cfg(feature = "chaos")]
        {
            let config = kest::identity::load_aws_config().await;
            let kms = kest::identity::AwsKms::new(&config, key_id.clone()).await?;
            let info = kms.describe().await?;
            let public = VerifyingKey::from_jwk(&info.jwk)?;
            return Ok((Arc::new(kms), info.workload_id, public, None));
        }
        #[cfg(not(feature = "chaos"))]
        {
            let _ = key_id;
            return Err("--kms-key-id needs the example's `chaos` feature".into());
        }
    }
    let key = stored_key(options.key_dir.as_deref(), name)?;
    let public = key.verifying_key().clone();
    let private = key.to_private_jwk();
    Ok((
        Arc::new(StaticIdentity::new(workload(name), key)),
        workload(name),
        public,
        Some(private),
    ))
}

fn with_engine(builder: KestBuilder, options: &Options) -> Result<KestBuilder, BoxError> {
    match &options.cedar_agent {
        #[cfg(feature = "chaos")]
        Some(url) => Ok(builder.engine(kest::policy::CedarAgentEngine::new(url)?)),
        #[cfg(not(feature = "chaos"))]
        Some(_) => Err("--cedar-agent needs the example's `chaos` feature".into()),
        None => {
            let engine = POLICIES
                .iter()
                .fold(CedarEngine::builder(), |engine, (id, text)| {
                    engine.policy_source(*id, *text)
                })
                .build()?;
            Ok(builder.engine(engine))
        }
    }
}

impl Deployment {
    /// Starts the four services on 127.0.0.1, or only [`Options::only`].
    ///
    /// # Errors
    /// When a service cannot bind, or Redis, the Cedar agent's configuration, the OIDC
    /// provider or KMS cannot be reached.
    pub async fn start(options: Options) -> Result<Self, BoxError> {
        let store: Arc<dyn ClaimStore> = match &options.redis {
            #[cfg(feature = "redis")]
            Some(url) => Arc::new(kest::propagation::RedisClaimStore::connect(url).await?),
            #[cfg(not(feature = "redis"))]
            Some(_) => return Err("--redis needs the example's `redis` feature".into()),
            None => Arc::new(MemoryClaimStore::default()),
        };
        let issuer = stored_key(options.key_dir.as_deref(), "issuer")?;
        let mut jwk = serde_json::to_value(issuer.verifying_key().to_jwk())?;
        if let Some(members) = jwk.as_object_mut() {
            members.insert("kid".into(), json!("issuer-key-1"));
        }
        let jwks = json!({ "keys": [jwk] }).to_string();

        // Bind every listener first, so each service knows its peers' addresses.
        let mut listeners = Vec::new();
        let mut urls = Vec::new();
        for index in 0..HOPS.len() {
            let port = options
                .ports
                .and_then(|ports| ports.get(index).copied())
                .unwrap_or(0);
            if options.only.is_some_and(|only| only != index) {
                urls.push(format!("http://127.0.0.1:{port}/"));
                continue;
            }
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
            urls.push(format!("http://{}/", listener.local_addr()?));
            listeners.push((index, listener));
        }

        let mut keys = Vec::new();
        let mut private = Vec::new();
        let mut runs = Vec::new();
        let mut tasks = Vec::new();
        for (index, listener) in listeners {
            let name = HOPS.get(index).copied().unwrap_or("hop");
            let (identity, principal, public, secret) = hop_identity(&options, index).await?;
            keys.push((principal, public));
            private.push(secret);
            let mut builder = with_engine(Kest::builder(), &options)?
                .identity(identity)
                .claim_store(store.clone())
                .service_name(name);
            // The gateway takes requests from outside: one without lineage starts a chain
            // at `user_input`. The hops behind it refuse a request without lineage, so
            // that nobody skips the gateway and the sanitizer by calling them directly.
            builder = if index == 0 {
                builder.edge("user_input")
            } else {
                builder.internal()
            };
            if options.verify_ingress {
                // Each hop trusts its peers, and only them, as they publish themselves:
                // each peer's set speaks for that peer alone.
                for (peer, url) in urls.iter().enumerate() {
                    if peer != index {
                        builder = builder.trust_peer(
                            &peer_principal(&options, peer)?,
                            format!("{url}.well-known/jwks.json"),
                        )?;
                    }
                }
            } else {
                builder = builder.ingress(Ingress::insecure_unverified(Some("true"))?);
            }
            if let Some(threshold) = options.inline_threshold {
                builder = builder.inline_threshold(threshold);
            }
            if let Some(ttl) = options.claim_ttl {
                builder = builder.claim_ttl(ttl);
            }
            let kest = builder.build()?;
            let counter = Arc::new(AtomicU64::new(0));
            runs.push(Arc::clone(&counter));
            let run_log = match &options.run_log {
                Some(dir) => {
                    std::fs::create_dir_all(dir)?;
                    let file = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(dir.join(format!("{name}.runs")))?;
                    Some(std::sync::Mutex::new(file))
                }
                None => None,
            };
            let hop = Arc::new(Hop {
                process: kest.protect(step(index))?,
                runs: counter,
                next: urls.get(index + 1).cloned(),
                forward_timeout: CLIENT_TIMEOUT.saturating_sub(Duration::from_secs(
                    2 * u64::try_from(index + 1).unwrap_or(u64::MAX),
                )),
                client: reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
                    .with(PropagateLineage::new(kest.codec().clone()))
                    .build(),
                run_log,
            });
            let validator = match &options.oidc_issuer {
                Some(issuer) => {
                    JwtValidator::discover(issuer.clone(), AUDIENCE, Duration::from_secs(5)).await?
                }
                None => JwtValidator::with_jwks(ISSUER, AUDIENCE, &jwks, Duration::from_secs(5))?,
            };
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
            http: reqwest::Client::builder().timeout(CLIENT_TIMEOUT).build()?,
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
        let jwk = self
            .private
            .get(index)
            .ok_or("no such service")?
            .as_ref()
            .ok_or("this service's key is held by KMS")?;
        let name = HOPS.get(index).copied().unwrap_or("hop");
        Ok(KeySigner::new(SigningKey::from_jwk(jwk)?, workload(name)))
    }

    /// A token from the local issuer for `user`, acting through `agent` on `task`.
    ///
    /// # Errors
    /// When signing fails.
    pub fn token(&self, user: &str, agent: &str, task: &str) -> Result<String, BoxError> {
        mint_token(&self.issuer, self.token_lifetime, user, agent, task)
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
        for (((entry, hop), (trust, unverified)), (principal, _)) in passport
            .entries()
            .iter()
            .zip(HOPS)
            .zip(expected)
            .zip(&self.keys)
        {
            let entry = entry.entry();
            if entry.operation() != hop || entry.principal() != Some(principal.as_str()) {
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
    // Which run this was, once the step has run.
    let ran = Arc::new(AtomicU64::new(u64::MAX));
    let (running, logged) = (Arc::clone(&ran), Arc::clone(&hop));
    let outcome = hop
        .process
        .run(Values::new(), async move {
            let run = logged.runs.fetch_add(1, Ordering::SeqCst);
            running.store(run, Ordering::SeqCst);
            logged.log(|| format!("R {}-{run}\n", std::process::id()));
        })
        .await;
    let run = ran.load(Ordering::SeqCst);
    if run != u64::MAX {
        // The entry is signed after the step has run: log what became of this run.
        hop.log(|| {
            let entry = kest::current_passport()
                .filter(|_| outcome.is_ok())
                .and_then(|passport| {
                    passport.entries().last().map(|tip| {
                        format!(
                            "{} {}",
                            tip.entry_id(),
                            tip.entry().principal().unwrap_or("-")
                        )
                    })
                })
                .unwrap_or_else(|| "- -".to_owned());
            format!("E {}-{run} {entry}\n", std::process::id())
        });
    }
    if let Err(error) = outcome {
        let status = match &error {
            // This service cannot sign now: it is unavailable, not refusing.
            kest::KestError::SignerUnavailable { .. } | kest::KestError::Identity(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            error if error.stopped_before_running() => StatusCode::FORBIDDEN,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        return (status, format!("{error}\n")).into_response();
    }
    let Some(next) = &hop.next else {
        let passport = kest::current_passport().unwrap_or_default();
        return (StatusCode::OK, passport.to_json()).into_response();
    };
    let token = kest::current_jwt().unwrap_or_default();
    let failed = |error: &dyn std::fmt::Display| {
        (
            StatusCode::BAD_GATEWAY,
            format!("forwarding to {next}: {error}\n"),
        )
            .into_response()
    };
    match hop
        .client
        .post(next)
        .header("authorization", format!("Bearer {token}"))
        .timeout(hop.forward_timeout)
        .send()
        .await
    {
        Ok(response) => {
            let status =
                StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            match response.text().await {
                Ok(body) => (status, body).into_response(),
                Err(error) => failed(&error),
            }
        }
        Err(error) => failed(&error),
    }
}

impl Hop {
    /// Appends the line `line` makes to the run log, when there is one (it is not made
    /// otherwise: load runs have no log). A line that cannot be written shows up in the
    /// analysis as a run without an entry, or an entry without a run.
    fn log(&self, line: impl FnOnce() -> String) {
        if let Some(Ok(mut file)) = self.run_log.as_ref().map(|log| log.lock()) {
            let _ = std::io::Write::write_all(&mut *file, line().as_bytes());
        }
    }
}

/// Latencies in microseconds, 1 µs to 10 minutes, to three significant digits.
fn latency_histogram() -> Result<hdrhistogram::Histogram<u64>, BoxError> {
    Ok(hdrhistogram::Histogram::new_with_bounds(1, 600_000_000, 3)?)
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
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
/// final passport. With `rate` (requests a second, shared by the clients), each client
/// sends at a fixed pace instead of as fast as answers come, so that the load, and what
/// it leaves in the claim store, stays the same when the machine gets busier or quieter.
///
/// # Errors
/// When a token cannot be made.
pub async fn load(
    deployment: Arc<Deployment>,
    clients: usize,
    duration: Duration,
    rate: Option<f64>,
) -> Result<LoadReport, BoxError> {
    let pace = rate
        .filter(|rate| *rate > 0.0)
        .map(|rate| Duration::from_secs_f64(clients.max(1) as f64 / rate));
    let started = Instant::now();
    let mut workers = Vec::new();
    for client in 0..clients {
        let deployment = Arc::clone(&deployment);
        let user = format!("user-{client}");
        let token = deployment.token(&user, "load-agent", "load")?;
        workers.push(tokio::spawn(async move {
            // A histogram of fixed size, not a list of samples: a load run of hours
            // (the soak) must not grow the process it measures.
            let mut latencies = latency_histogram()?;
            let mut broken = 0_u64;
            let mut ticks = pace.map(|pace| {
                let mut ticks = tokio::time::interval(pace);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                ticks
            });
            while started.elapsed() < duration {
                if let Some(ticks) = &mut ticks {
                    ticks.tick().await;
                }
                let sent = Instant::now();
                match deployment.call(&token).await {
                    Ok((200, body)) if deployment.check(&body, &user).is_ok() => {}
                    _ => broken += 1,
                }
                latencies.saturating_record(micros(sent.elapsed()));
            }
            Ok::<_, BoxError>((latencies, broken))
        }));
    }
    let mut latencies = latency_histogram()?;
    let mut broken = 0;
    for worker in workers {
        let (samples, failures) = worker.await??;
        latencies.add(&samples)?;
        broken += failures;
    }
    let elapsed = started.elapsed();
    let at = |q: f64| Duration::from_micros(latencies.value_at_quantile(q));
    let requests = latencies.len();
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
