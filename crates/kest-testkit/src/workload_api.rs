//! A SPIFFE Workload API server for tests.
//!
//! No SPIRE agent can be run on the machines the tests run on, so this serves the one RPC
//! an X.509 source uses, `SpiffeWorkloadAPI/FetchX509SVID`, over a Unix socket, with the
//! message layout of the published `workload.proto` and the `workload.spiffe.io` security
//! header check. The SVIDs are minted in the test by [`TestCa`] (rcgen), and
//! [`WorkloadApiServer::rotate`] pushes a new one down every open stream, as an agent does
//! when it rotates an SVID.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::missing_panics_doc,
    reason = "test support: a failure here is the calling test failing"
)]

use std::convert::Infallible;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use tokio::sync::watch;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::WatchStream;
use tonic::body::Body;
use tonic::codegen::{Service, http};

/// `X509SVIDRequest` (empty).
#[derive(Clone, PartialEq, prost::Message)]
pub struct X509SvidRequest {}

/// `X509SVIDResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct X509SvidResponse {
    /// The SVIDs of this workload.
    #[prost(message, repeated, tag = "1")]
    pub svids: Vec<X509Svid>,
    /// Revocation lists (DER).
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub crl: Vec<Vec<u8>>,
    /// Bundles of federated trust domains.
    #[prost(map = "string, bytes", tag = "3")]
    pub federated_bundles: std::collections::HashMap<String, Vec<u8>>,
}

/// `X509SVID`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct X509Svid {
    /// The SPIFFE id.
    #[prost(string, tag = "1")]
    pub spiffe_id: String,
    /// The certificate chain, leaf first, DER concatenated.
    #[prost(bytes = "vec", tag = "2")]
    pub x509_svid: Vec<u8>,
    /// The private key, PKCS#8 DER.
    #[prost(bytes = "vec", tag = "3")]
    pub x509_svid_key: Vec<u8>,
    /// The trust bundle of the SVID's trust domain, DER concatenated.
    #[prost(bytes = "vec", tag = "4")]
    pub bundle: Vec<u8>,
    /// An operator hint.
    #[prost(string, tag = "5")]
    pub hint: String,
}

/// A certificate authority for one trust domain.
pub struct TestCa {
    trust_domain: String,
    key: KeyPair,
    params: CertificateParams,
    der: Vec<u8>,
}

/// An SVID minted by a [`TestCa`].
#[derive(Clone)]
pub struct MintedSvid {
    /// The SPIFFE id.
    pub spiffe_id: String,
    /// The leaf certificate, DER.
    pub leaf: Vec<u8>,
    /// The private key, PKCS#8 DER.
    pub key: Vec<u8>,
}

impl TestCa {
    /// A new self-signed CA for `trust_domain`.
    pub fn new(trust_domain: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("{trust_domain} test CA"));
        params.subject_alt_names = vec![SanType::URI(
            format!("spiffe://{trust_domain}").try_into().unwrap(),
        )];
        params.not_before = time::OffsetDateTime::now_utc() - Duration::from_secs(3600);
        params.not_after = time::OffsetDateTime::now_utc() + Duration::from_secs(24 * 3600);
        let der = params.self_signed(&key).unwrap().der().to_vec();
        Self {
            trust_domain: trust_domain.to_owned(),
            key,
            params,
            der,
        }
    }

    /// The CA certificate, DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// An SVID for `path` (`spiffe://<trust domain><path>`) valid from `not_before` to
    /// `not_after` seconds relative to now.
    pub fn mint(&self, path: &str, not_before: i64, not_after: i64) -> MintedSvid {
        let spiffe_id = format!("spiffe://{}{path}", self.trust_domain);
        self.mint_for(&spiffe_id, not_before, not_after)
    }

    /// An SVID for an arbitrary SPIFFE id (which may lie outside the trust domain).
    pub fn mint_for(&self, spiffe_id: &str, not_before: i64, not_after: i64) -> MintedSvid {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = vec![SanType::URI(spiffe_id.to_owned().try_into().unwrap())];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ClientAuth,
            ExtendedKeyUsagePurpose::ServerAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now + time::Duration::seconds(not_before);
        params.not_after = now + time::Duration::seconds(not_after);
        let issuer = Issuer::from_params(&self.params, &self.key);
        let leaf = params.signed_by(&key, &issuer).unwrap().der().to_vec();
        MintedSvid {
            spiffe_id: spiffe_id.to_owned(),
            leaf,
            key: key.serialize_der(),
        }
    }

    /// The Workload API response carrying `svid` and this CA as the bundle.
    pub fn response(&self, svid: &MintedSvid) -> X509SvidResponse {
        X509SvidResponse {
            svids: vec![X509Svid {
                spiffe_id: svid.spiffe_id.clone(),
                x509_svid: svid.leaf.clone(),
                x509_svid_key: svid.key.clone(),
                bundle: self.der.clone(),
                hint: String::new(),
            }],
            crl: Vec::new(),
            federated_bundles: std::collections::HashMap::new(),
        }
    }
}

/// A running Workload API server on a Unix socket.
pub struct WorkloadApiServer {
    socket: PathBuf,
    updates: watch::Sender<X509SvidResponse>,
    task: tokio::task::JoinHandle<()>,
}

impl WorkloadApiServer {
    /// Serves `initial` on a new socket in `dir`. Must be called inside a Tokio runtime.
    pub async fn start(dir: &Path, initial: X509SvidResponse) -> Self {
        let socket = dir.join("agent.sock");
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        let (updates, receiver) = watch::channel(initial);
        let service = Fetch { receiver };
        let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
        let task = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .serve_with_incoming(service, incoming)
                .await
                .unwrap();
        });
        Self {
            socket,
            updates,
            task,
        }
    }

    /// The endpoint, as `SPIFFE_ENDPOINT_SOCKET` names it.
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Pushes a new response to every open stream (an SVID rotation).
    pub fn rotate(&self, response: X509SvidResponse) {
        self.updates.send_replace(response);
    }
}

impl Drop for WorkloadApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct Fetch {
    receiver: watch::Receiver<X509SvidResponse>,
}

type ResponseStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<X509SvidResponse, tonic::Status>> + Send>>;

impl tonic::server::ServerStreamingService<X509SvidRequest> for Fetch {
    type Response = X509SvidResponse;
    type ResponseStream = ResponseStream;
    type Future = Pin<
        Box<dyn Future<Output = Result<tonic::Response<ResponseStream>, tonic::Status>> + Send>,
    >;

    fn call(&mut self, request: tonic::Request<X509SvidRequest>) -> Self::Future {
        let receiver = self.receiver.clone();
        Box::pin(async move {
            // The Workload API refuses calls without the security header (SSRF defence).
            if request
                .metadata()
                .get("workload.spiffe.io")
                .and_then(|v| v.to_str().ok())
                != Some("true")
            {
                return Err(tonic::Status::invalid_argument(
                    "security header missing from request",
                ));
            }
            let stream: ResponseStream = Box::pin(WatchStream::new(receiver).map(Ok));
            Ok(tonic::Response::new(stream))
        })
    }
}

impl Service<http::Request<Body>> for Fetch {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            if request.uri().path() == "/SpiffeWorkloadAPI/FetchX509SVID" {
                let codec = tonic_prost::ProstCodec::<X509SvidResponse, X509SvidRequest>::default();
                Ok(tonic::server::Grpc::new(codec)
                    .server_streaming(this, request)
                    .await)
            } else {
                Ok(tonic::Status::unimplemented(format!(
                    "{} is not served here",
                    request.uri().path()
                ))
                .into_http())
            }
        })
    }
}
