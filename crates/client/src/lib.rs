//! Rust client for licstore.
//!
//! It holds one gRPC channel per endpoint, starts with the first, and on a transport failure or
//! `UNAVAILABLE` moves to the endpoint the server named as leader (metadata `licstore-leader`)
//! or to the next one, with a bounded number of attempts and a growing pause. Every write
//! carries a request id, so repeating a write whose outcome was lost is safe: the store applies
//! it once and answers the retry with the stored result. A call the node shed
//! (`RESOURCE_EXHAUSTED` with a `retry-after-ms` hint) is tried again on the same endpoint
//! after the hint; one refused for its size carries no hint and is final.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use licstore_proto::v1::cluster_client::ClusterClient;
use licstore_proto::v1::licenses_client::LicensesClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Status};

/// Metadata key in which a node names the current leader's address.
pub const LEADER_METADATA_KEY: &str = "licstore-leader";
/// Metadata key in which a node that shed a call says after how many milliseconds to retry.
pub const RETRY_AFTER_METADATA_KEY: &str = "retry-after-ms";

/// Errors of the client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No endpoint was given.
    #[error("no endpoints given")]
    NoEndpoints,
    /// An endpoint address could not be parsed.
    #[error("bad endpoint {endpoint}: {reason}")]
    BadEndpoint {
        /// The address.
        endpoint: String,
        /// Why it was refused.
        reason: String,
    },
    /// A TLS file could not be read, or the TLS settings do not fit together.
    #[error("tls: {0}")]
    Tls(String),
    /// The server answered with an error that retrying cannot fix, or retries ran out.
    #[error("{0}")]
    Status(#[from] Status),
}

/// Retry policy.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// Pause before the second attempt; doubled after each failure.
    pub initial_backoff: Duration,
    /// Longest pause.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
        }
    }
}

/// A connection to a licstore cluster.
#[derive(Clone)]
pub struct Client {
    endpoints: Vec<String>,
    channels: Vec<Transport>,
    current: usize,
    retry: RetryPolicy,
    timeout: Duration,
}

/// What every call of a [`Client`] travels over: a channel that adds the client's bearer
/// token, if it has one.
pub type Transport = InterceptedService<Channel, Bearer>;

/// Adds `authorization: Bearer <token>` to every call when the client has a token.
#[derive(Clone, Default)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Bearer {
    /// Sends `token` with every call; refuses one that cannot be a header value.
    pub fn new(token: &str) -> Result<Bearer, ClientError> {
        let value = format!("Bearer {}", token.trim())
            .parse::<MetadataValue<Ascii>>()
            .map_err(|_| ClientError::Tls("the bearer token is not visible ASCII".into()))?;
        Ok(Bearer(Some(value)))
    }
}

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a secret: say only whether there is one.
        f.write_str(if self.0.is_some() {
            "Bearer(..)"
        } else {
            "Bearer(none)"
        })
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(value) = &self.0 {
            req.metadata_mut().insert("authorization", value.clone());
        }
        Ok(req)
    }
}

/// TLS settings of a client: the CA that servers' certificates must chain to, and the
/// client's own certificate and key, or a bearer token, for servers that require one.
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    /// PEM of the CA certificates to trust.
    pub ca_pem: Vec<u8>,
    /// PEM of the client certificate chain and of its private key.
    pub identity_pem: Option<(Vec<u8>, Vec<u8>)>,
    /// Sent with every call: a signed bearer token standing for the caller.
    pub bearer: Bearer,
}

impl TlsOptions {
    /// Reads the files. A certificate needs its key and the other way round; with neither a CA
    /// nor a certificate there is no TLS (`None`).
    pub fn from_files(
        ca: Option<&Path>,
        cert: Option<&Path>,
        key: Option<&Path>,
    ) -> Result<Option<Self>, ClientError> {
        let read = |what: &str, path: &Path| {
            std::fs::read(path)
                .map_err(|e| ClientError::Tls(format!("{what} {}: {e}", path.display())))
        };
        let identity_pem = match (cert, key) {
            (Some(c), Some(k)) => Some((read("certificate", c)?, read("key", k)?)),
            (None, None) => None,
            _ => return Err(ClientError::Tls("a certificate needs its key".into())),
        };
        let ca_pem = match ca {
            Some(path) => read("CA", path)?,
            None if identity_pem.is_some() => {
                return Err(ClientError::Tls("a client certificate needs a CA".into()))
            }
            None => return Ok(None),
        };
        Ok(Some(TlsOptions {
            ca_pem,
            identity_pem,
            bearer: Bearer::default(),
        }))
    }

    /// The same settings, sending the bearer token in the file `path` with every call.
    pub fn with_token_file(mut self, path: &Path) -> Result<Self, ClientError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ClientError::Tls(format!("token {}: {e}", path.display())))?;
        self.bearer = Bearer::new(&text)?;
        Ok(self)
    }

    /// tonic's client TLS settings for these files.
    pub fn client_config(&self) -> ClientTlsConfig {
        let config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&self.ca_pem));
        match &self.identity_pem {
            Some((cert, key)) => config.identity(Identity::from_pem(cert, key)),
            None => config,
        }
    }
}

/// `host:port` as a URL with the scheme TLS or plain text calls for.
fn normalise(endpoint: &str, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{}", host_port(endpoint))
}

/// An endpoint without its scheme.
fn host_port(endpoint: &str) -> &str {
    endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
        .unwrap_or(endpoint)
}

impl Client {
    /// Creates a client for the given endpoints (`host:port`). Connections are made lazily.
    pub fn new(endpoints: &[String]) -> Result<Self, ClientError> {
        Self::with_timeout(endpoints, Duration::from_secs(10))
    }

    /// Like [`Client::new`] with a per-request timeout.
    pub fn with_timeout(endpoints: &[String], timeout: Duration) -> Result<Self, ClientError> {
        Self::with_tls(endpoints, timeout, None)
    }

    /// Like [`Client::with_timeout`], over TLS when `tls` is given.
    pub fn with_tls(
        endpoints: &[String],
        timeout: Duration,
        tls: Option<&TlsOptions>,
    ) -> Result<Self, ClientError> {
        if endpoints.is_empty() {
            return Err(ClientError::NoEndpoints);
        }
        let mut channels = Vec::with_capacity(endpoints.len());
        let mut names = Vec::with_capacity(endpoints.len());
        for e in endpoints {
            let url = normalise(e, tls.is_some());
            let bad = |err: tonic::transport::Error| ClientError::BadEndpoint {
                endpoint: e.clone(),
                reason: err.to_string(),
            };
            let mut endpoint = Endpoint::from_shared(url.clone())
                .map_err(bad)?
                .connect_timeout(Duration::from_secs(2))
                .timeout(timeout)
                .tcp_nodelay(true);
            if let Some(tls) = tls {
                endpoint = endpoint.tls_config(tls.client_config()).map_err(bad)?;
            }
            let bearer = tls.map(|t| t.bearer.clone()).unwrap_or_default();
            channels.push(InterceptedService::new(endpoint.connect_lazy(), bearer));
            names.push(url);
        }
        Ok(Client {
            endpoints: names,
            channels,
            current: 0,
            retry: RetryPolicy::default(),
            timeout,
        })
    }

    /// Replaces the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The endpoint calls currently go to.
    pub fn current_endpoint(&self) -> &str {
        &self.endpoints[self.current]
    }

    /// A license-service stub on the current endpoint (no retries).
    pub fn licenses(&self) -> LicensesClient<Transport> {
        LicensesClient::new(self.channels[self.current].clone()).max_decoding_message_size(64 << 20)
    }

    /// A cluster-service stub on the current endpoint (no retries).
    pub fn cluster(&self) -> ClusterClient<Transport> {
        ClusterClient::new(self.channels[self.current].clone())
    }

    /// A cluster-service stub on endpoint `i` of the list given at creation.
    pub fn cluster_at(&self, i: usize) -> Option<ClusterClient<Transport>> {
        self.channels.get(i).map(|c| ClusterClient::new(c.clone()))
    }

    /// The channel to endpoint `i` (modulo the endpoint count), for calls that manage their
    /// own retries, such as long-lived streams.
    pub fn channel_at(&self, i: usize) -> Transport {
        self.channels[i % self.channels.len()].clone()
    }

    /// Number of endpoints.
    pub fn endpoint_count(&self) -> usize {
        self.channels.len()
    }

    /// Runs `call` on the current endpoint, moving to another one and retrying when the error
    /// is one that another node (or a later attempt) may not have.
    pub async fn retrying<T, F, Fut>(&mut self, mut call: F) -> Result<T, ClientError>
    where
        F: FnMut(Transport) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let mut backoff = self.retry.initial_backoff;
        let mut attempt = 1;
        loop {
            let result = call(self.channels[self.current].clone()).await;
            let status = match result {
                Ok(resp) => return Ok(resp.into_inner()),
                Err(status) => status,
            };
            if attempt >= self.retry.max_attempts || !retryable(&status) {
                return Err(status.into());
            }
            // A shed call waits at least as long as the node asked, on the same node, with the
            // pause growing and spread so that shed clients do not all return at once.
            if let Some(hint) = retry_hint(&status) {
                let wait = shed_wait(hint, backoff, rand::random::<f64>());
                tracing::debug!(endpoint = %self.current_endpoint(), attempt, ?wait, "shed");
                tokio::time::sleep(wait).await;
                backoff = (backoff * 2).min(self.retry.max_backoff);
                attempt += 1;
                continue;
            }
            let hinted = self.follow_leader_hint(&status);
            tracing::debug!(endpoint = %self.current_endpoint(), code = ?status.code(),
                attempt, hinted, "retrying");
            if !hinted {
                self.current = (self.current + 1) % self.channels.len();
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.retry.max_backoff);
            attempt += 1;
        }
    }

    /// Switches to the leader named in the error's metadata when it is one of our endpoints.
    fn follow_leader_hint(&mut self, status: &Status) -> bool {
        let Some(leader) = status
            .metadata()
            .get(LEADER_METADATA_KEY)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let wanted = host_port(leader);
        match self.endpoints.iter().position(|e| host_port(e) == wanted) {
            Some(i) if i != self.current => {
                self.current = i;
                true
            }
            _ => false,
        }
    }

    /// The per-request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// Whether another attempt may succeed. `UNKNOWN` and `DEADLINE_EXCEEDED` are retried because
/// writes carry request ids; `RESOURCE_EXHAUSTED` only with a retry hint; every other code is
/// final.
pub fn retryable(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::Unknown | Code::DeadlineExceeded | Code::Aborted
    ) || retry_hint(status).is_some()
}

/// The pause after a shed call: the node's `hint` or the current `backoff`, whichever is
/// longer, plus up to half of it again (`spread` in 0..1).
pub fn shed_wait(hint: Duration, backoff: Duration, spread: f64) -> Duration {
    let base = hint.max(backoff);
    base + base.mul_f64(spread.clamp(0.0, 1.0) / 2.0)
}

/// How long a node that shed the call asked to wait before trying again, at most 10 s.
pub fn retry_hint(status: &Status) -> Option<Duration> {
    if status.code() != Code::ResourceExhausted {
        return None;
    }
    let ms: u64 = status
        .metadata()
        .get(RETRY_AFTER_METADATA_KEY)?
        .to_str()
        .ok()?
        .parse()
        .ok()?;
    Some(Duration::from_millis(ms.min(10_000)))
}

/// Checks an address peers and clients dial: `host:port`, where host is an IP address or a DNS
/// name.
pub fn check_host_port(addr: &str) -> Result<(), String> {
    if addr.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(());
    }
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("{addr:?} is not host:port"))?;
    let name_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if !name_ok || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(format!("{addr:?} is not host:port"));
    }
    Ok(())
}

/// Parses a member list `id=host:port,...` (`--init`): positive ids, each once.
pub fn parse_members(spec: &str) -> Result<std::collections::BTreeMap<u64, String>, String> {
    let mut out = std::collections::BTreeMap::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part
            .split_once('=')
            .ok_or_else(|| format!("--init: {part:?} is not id=host:port"))?;
        let id: u64 = id
            .trim()
            .parse()
            .ok()
            .filter(|id| *id > 0)
            .ok_or_else(|| format!("--init: {id:?} is not a positive node id"))?;
        let addr = addr.trim();
        check_host_port(addr).map_err(|why| format!("--init: bad address: {why}"))?;
        if out.insert(id, addr.to_string()).is_some() {
            return Err(format!("--init: node id {id} given twice"));
        }
    }
    Ok(out)
}

/// A fresh request id for a write.
pub fn new_request_id() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    format!("{:016x}{:016x}", rng.random::<u64>(), rng.random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_codes() {
        let mut shed = Status::resource_exhausted("rate limit; retry in 30 ms");
        shed.metadata_mut()
            .insert(RETRY_AFTER_METADATA_KEY, "30".parse().expect("ascii"));
        assert!(retryable(&shed));
        assert_eq!(retry_hint(&shed), Some(Duration::from_millis(30)));
        let ms = Duration::from_millis;
        // (hint, backoff, spread, wait)
        for (hint, backoff, spread, wait) in [
            (ms(30), ms(50), 0.0, ms(50)),
            (ms(300), ms(50), 0.0, ms(300)),
            (ms(300), ms(50), 1.0, ms(450)),
            (ms(100), ms(400), 0.5, ms(500)),
        ] {
            assert_eq!(
                shed_wait(hint, backoff, spread),
                wait,
                "{hint:?} {backoff:?}"
            );
        }
        let too_big = Status::resource_exhausted("request over limits.max_request_bytes");
        assert!(!retryable(&too_big), "no hint: final");
        let table = [
            (Code::Unavailable, true),
            (Code::Unknown, true),
            (Code::DeadlineExceeded, true),
            (Code::Aborted, true),
            (Code::InvalidArgument, false),
            (Code::FailedPrecondition, false),
            (Code::NotFound, false),
            (Code::AlreadyExists, false),
            (Code::PermissionDenied, false),
        ];
        for (code, want) in table {
            assert_eq!(retryable(&Status::new(code, "x")), want, "{code:?}");
        }
    }

    #[test]
    fn endpoints_are_normalised_and_required() {
        assert!(matches!(Client::new(&[]), Err(ClientError::NoEndpoints)));
        assert_eq!(normalise("127.0.0.1:1", false), "http://127.0.0.1:1");
        assert_eq!(normalise("http://h:1", false), "http://h:1");
        assert_eq!(normalise("127.0.0.1:1", true), "https://127.0.0.1:1");
        assert_eq!(normalise("http://h:1", true), "https://h:1");
    }

    #[tokio::test]
    async fn leader_hint_selects_that_endpoint() {
        let eps = vec!["127.0.0.1:1".to_string(), "127.0.0.1:2".to_string()];
        let mut c = Client::new(&eps).expect("client");
        let mut status = Status::unavailable("not leader");
        status
            .metadata_mut()
            .insert(LEADER_METADATA_KEY, "127.0.0.1:2".parse().expect("ascii"));
        assert!(c.follow_leader_hint(&status));
        assert_eq!(c.current_endpoint(), "http://127.0.0.1:2");
        assert!(!c.follow_leader_hint(&Status::unavailable("no hint")));
    }

    #[test]
    fn request_ids_differ() {
        assert_ne!(new_request_id(), new_request_id());
        assert_eq!(new_request_id().len(), 32);
    }
}
