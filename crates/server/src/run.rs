//! Start-up and shutdown: open storage, build the Raft node, serve gRPC until a signal.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use licstore_model::TemplateRegistry;
use licstore_proto::v1::access_server::AccessServer;
use licstore_proto::v1::audit_server::AuditServer;
use licstore_proto::v1::cluster_server::ClusterServer;
use licstore_proto::v1::licenses_server::LicensesServer;
use licstore_proto::v1::policies_server::PoliciesServer;
use licstore_proto::v1::raft::raft_server::RaftServer;
use licstore_proto::v1::seals_server::SealsServer;
use licstore_store::{NodeId, Raft, Reader};
use openraft::type_config::async_runtime::WatchReceiver;
use openraft::{Config, SnapshotPolicy};

use crate::api::{ClusterApi, LicenseApi};
use crate::network::{Network, Peers};
use crate::node::Node;
use crate::raft_service::RaftService;
use crate::ServerError;

/// Largest gRPC message accepted, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Everything a node needs to start.
#[derive(Clone, Debug)]
pub struct Settings {
    /// This node's id (positive).
    pub id: NodeId,
    /// Address published to peers and clients (`host:port`).
    pub addr: String,
    /// Address to listen on.
    pub listen_addr: SocketAddr,
    /// Where to serve Prometheus metrics, if anywhere.
    pub metrics_addr: Option<SocketAddr>,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Members to initialise a new cluster with; empty to wait to be added.
    pub init_members: BTreeMap<NodeId, String>,
    /// Raft heartbeat interval.
    pub heartbeat_ms: u64,
    /// Lower bound of the election timeout.
    pub election_min_ms: u64,
    /// Upper bound of the election timeout.
    pub election_max_ms: u64,
    /// Log entries between snapshots.
    pub snapshot_logs: u64,
    /// Entries kept in the log behind a snapshot, for followers that lag a little.
    pub logs_to_keep: u64,
    /// Whether elections start with a Pre-Vote round.
    pub pre_vote: bool,
    /// How often the leader looks for licenses whose validity has ended.
    pub expiry_sweep: Duration,
    /// How often this node ships its audit journal into the replicated trail.
    pub audit_ship_interval: Duration,
    /// How long audit records may wait unshipped before audited calls are refused; zero
    /// never.
    pub audit_max_unshipped: Duration,
    /// Whether calls are recorded; off only in plain text (see `[audit] enabled`).
    pub audit_enabled: bool,
    /// `audit.retention_secs`; zero: the trail is trimmed only when asked.
    pub audit_retention: Duration,
    /// `audit.trim_min_age_secs`: no trim removes a younger record.
    pub audit_trim_min_age: Duration,
    /// How long change-feed events are kept before the leader compacts them; zero keeps them
    /// for ever.
    pub event_retention: Duration,
    /// RocksDB block cache, in bytes.
    pub block_cache_bytes: usize,
    /// Memtables of all column families together, in bytes.
    pub memtable_budget_bytes: usize,
    /// How long a log or state-machine write may run before the node exits; zero never.
    pub storage_stall_limit: Duration,
    /// TLS files; `None` serves and dials in plain text.
    pub tls: Option<TlsPaths>,
    /// Who may call what; off without TLS.
    pub access: crate::access::AccessPolicy,
    /// Secret key files of the authorities this node seals for.
    pub seal_key_files: Vec<PathBuf>,
    /// Request size, rate and in-flight limits.
    pub limits: crate::limits::LimitSettings,
}

/// The PEM files of a TLS set-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsPaths {
    /// This node's certificate chain.
    pub cert_file: PathBuf,
    /// Its private key.
    pub key_file: PathBuf,
    /// CA every client certificate (peers' included) must chain to.
    pub client_ca_file: PathBuf,
    /// CA of peers' certificates.
    pub peer_ca_file: PathBuf,
}

/// The loaded TLS material: what the server serves and what peer channels present.
struct Tls {
    server: tonic::transport::ServerTlsConfig,
    peers: tonic::transport::ClientTlsConfig,
}

impl TlsPaths {
    /// Reads and checks every file: certificates and keys parse, the key belongs to the
    /// certificate, the CAs hold certificates. Errors name the setting and the file. With
    /// `tokens`, a client may connect without a certificate (and must then send a token).
    fn load(&self, tokens: bool) -> Result<Tls, ServerError> {
        use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};
        let cert_pem = read_pem("tls.cert_file", &self.cert_file)?;
        let key_pem = read_pem("tls.key_file", &self.key_file)?;
        check_identity(&self.cert_file, &cert_pem, &self.key_file, &key_pem)?;
        let identity = Identity::from_pem(&cert_pem, &key_pem);
        let ca = &self.client_ca_file;
        let ca_pem = read_pem("tls.client_ca_file", ca)?;
        check_ca("tls.client_ca_file", ca, &ca_pem)?;
        // A client CA makes the handshake require a certificate from it.
        let server = ServerTlsConfig::new()
            .identity(identity.clone())
            .client_ca_root(Certificate::from_pem(ca_pem))
            .client_auth_optional(tokens);
        let peer_ca_pem = read_pem("tls.peer_ca_file", &self.peer_ca_file)?;
        check_ca("tls.peer_ca_file", &self.peer_ca_file, &peer_ca_pem)?;
        let peers = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(peer_ca_pem))
            .identity(identity);
        Ok(Tls { server, peers })
    }
}

/// The keys of `access.token_key_files`, each named by its file name without the extension
/// (what a token's `kid` may name).
fn load_token_keys(
    files: &[std::path::PathBuf],
) -> Result<Vec<licstore_seal::token::TokenKey>, ServerError> {
    let key = "access.token_key_files";
    files
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).map_err(|e| tls_error(key, path, e))?;
            let public = licstore_seal::token::public_key_from_pem(&text)
                .map_err(|e| tls_error(key, path, e))?;
            let id = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            Ok(licstore_seal::token::TokenKey { id, key: public })
        })
        .collect()
}

fn tls_error(key: &str, path: &std::path::Path, why: impl std::fmt::Display) -> ServerError {
    ServerError::Config(format!("{key} {}: {why}", path.display()))
}

fn read_pem(key: &str, path: &std::path::Path) -> Result<Vec<u8>, ServerError> {
    std::fs::read(path).map_err(|e| tls_error(key, path, e))
}

/// The certificates in a PEM file; at least one.
fn pem_certs(
    key: &str,
    path: &std::path::Path,
    pem: &[u8],
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, ServerError> {
    use rustls::pki_types::pem::PemObject;
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error(key, path, e))?;
    if certs.is_empty() {
        return Err(tls_error(key, path, "no PEM certificate in the file"));
    }
    Ok(certs)
}

/// The certificate chain and key parse and belong together.
fn check_identity(
    cert_path: &std::path::Path,
    cert_pem: &[u8],
    key_path: &std::path::Path,
    key_pem: &[u8],
) -> Result<(), ServerError> {
    use rustls::pki_types::pem::PemObject;
    let certs = pem_certs("tls.cert_file", cert_path, cert_pem)?;
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| tls_error("tls.key_file", key_path, e))?;
    let signing_key = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| tls_error("tls.key_file", key_path, e))?;
    rustls::sign::CertifiedKey::new(certs, signing_key)
        .keys_match()
        .map_err(|e| {
            tls_error(
                "tls.key_file",
                key_path,
                format!("does not fit the cert: {e}"),
            )
        })
}

/// A CA file holds certificates a trust store accepts.
fn check_ca(key: &str, path: &std::path::Path, pem: &[u8]) -> Result<(), ServerError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in pem_certs(key, path, pem)? {
        roots.add(cert).map_err(|e| tls_error(key, path, e))?;
    }
    Ok(())
}

fn raft_config(s: &Settings) -> Result<Arc<Config>, ServerError> {
    let config = Config {
        cluster_name: "licstore".to_string(),
        heartbeat_interval: s.heartbeat_ms,
        election_timeout_min: s.election_min_ms,
        election_timeout_max: s.election_max_ms,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(s.snapshot_logs),
        max_in_snapshot_log_to_keep: s.logs_to_keep,
        install_snapshot_timeout: 60_000,
        enable_pre_vote: Some(s.pre_vote),
        ..Default::default()
    };
    Ok(Arc::new(
        config
            .validate()
            .map_err(|e| ServerError::Config(e.to_string()))?,
    ))
}

/// Opens the data directory and starts Raft; returns the shared node and the database's
/// monitoring figures.
pub async fn start(
    s: &Settings,
    peer_tls: Option<tonic::transport::ClientTlsConfig>,
) -> Result<Started, ServerError> {
    if s.id == 0 {
        return Err(ServerError::Config("node id must be positive".into()));
    }
    let options = licstore_store::StoreOptions {
        block_cache_bytes: s.block_cache_bytes,
        memtable_budget_bytes: s.memtable_budget_bytes,
    };
    let storage = licstore_store::open_with(&s.data_dir, &options)?;
    // From here on a hung storage call ends the process, start-up's replay included.
    crate::stall::spawn(
        storage.watchdog.clone(),
        storage.stats.clone(),
        s.storage_stall_limit,
    )?;
    let snapshot_dir = storage.state_machine.snapshot_dir().to_path_buf();
    let applied = storage.state_machine.subscribe_applied();
    let peers = Peers::new(peer_tls);
    let raft = Raft::new(
        s.id,
        raft_config(s)?,
        Network::new(peers.clone()),
        storage.log_store,
        storage.state_machine,
    )
    .await
    .map_err(|e| ServerError::Raft(e.to_string()))?;
    let sealer = crate::sealing::Sealer::load(&s.seal_key_files)?;
    if !s.seal_key_files.is_empty() {
        tracing::info!(node_id = s.id, keys = ?sealer.key_ids(), "loaded seal keys");
    }
    let reader = Reader::new(storage.db.clone());
    let audit = crate::audit::AuditLog::start(&reader, s.id, s.audit_max_unshipped)?;
    let audit = match s.audit_enabled {
        true => audit,
        false => audit.disabled(),
    };
    let node = Arc::new(Node {
        audit,
        limits: crate::limits::Limits::new(s.limits.clone()),
        id: s.id,
        addr: s.addr.clone(),
        proposer: crate::proposer::Proposer::start(raft.clone()),
        raft,
        reader: Reader::new(storage.db),
        templates: Arc::new(TemplateRegistry::builtin()),
        sealer: Arc::new(sealer),
        peers,
        snapshot_dir,
        applied,
        watches: Default::default(),
        walks: tokio::sync::Semaphore::new(1),
        pins: Default::default(),
        rounds: Default::default(),
        served_rounds: Default::default(),
        lease_off_until: Default::default(),
        leader_contact: Default::default(),
    });
    Ok(Started {
        node,
        stats: storage.stats,
    })
}

/// A node built by [`start`], with what monitoring needs of its storage.
pub struct Started {
    /// The node.
    pub node: Arc<Node>,
    /// Its database's figures.
    pub stats: licstore_store::DbStats,
}

async fn maybe_initialize(
    node: &Node,
    members: &BTreeMap<NodeId, String>,
) -> Result<(), ServerError> {
    if members.is_empty()
        || node
            .raft
            .is_initialized()
            .await
            .map_err(|e| ServerError::Raft(e.to_string()))?
    {
        return Ok(());
    }
    let nodes: BTreeMap<NodeId, licstore_store::Node> = members
        .iter()
        .map(|(id, addr)| (*id, licstore_store::Node { addr: addr.clone() }))
        .collect();
    match node.raft.initialize(nodes).await {
        Ok(()) => {
            consensus_info!(node, members = ?members, "initialised a new cluster")
        }
        Err(e) => tracing::warn!(
            node_id = node.id,
            error = %e,
            "initialise refused; joining the existing cluster"
        ),
    }
    Ok(())
}

async fn bind(key: &str, addr: SocketAddr) -> Result<tokio::net::TcpListener, ServerError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| ServerError::Config(format!("{key} {addr}: {e}")))
}

/// How long in-flight requests get to finish after Raft has stopped.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(3);

/// Runs a node until SIGTERM or Ctrl-C.
///
/// Shutdown order: 1. Raft stops, so this node neither votes nor campaigns with its listener
/// gone; 2. the listener closes and in-flight requests get [`DRAIN_DEADLINE`] to finish (writes
/// among them fail with `UNAVAILABLE` and are safe to retry with their request ids); 3. exit.
pub async fn serve(s: Settings) -> Result<(), ServerError> {
    // TLS files are checked and both ports bound first, so a bad file or a busy port stops
    // the node before it opens (or creates) any data.
    let token_keys = load_token_keys(&s.access.token_key_files)?;
    let tls = s
        .tls
        .as_ref()
        .map(|paths| paths.load(!token_keys.is_empty()))
        .transpose()?;
    let listener = bind("node.listen_addr", s.listen_addr).await?;
    let metrics_listener = match s.metrics_addr {
        Some(addr) => Some(bind("node.metrics_addr", addr).await?),
        None => None,
    };
    // The recorder goes in before the data is opened, so what start-up does (such as
    // reinstalling a snapshot) is counted.
    let recorder = match metrics_listener {
        Some(listener) => Some((listener, crate::metrics::install()?)),
        None => None,
    };
    let Started { node, stats } = start(&s, tls.as_ref().map(|t| t.peers.clone())).await?;
    if let Some((metrics_listener, handle)) = recorder {
        tokio::spawn(crate::http::serve(metrics_listener, handle, node.clone()));
        tracing::info!(addr = ?s.metrics_addr, "metrics and probes: /metrics, /livez, /readyz");
    }
    crate::metrics::spawn_sampler(node.clone(), stats);
    #[cfg(feature = "fault-injection")]
    if let Some(every) = licstore_store::fault::drop_amend_every() {
        tracing::error!(
            every,
            "FAULT INJECTION: amends at log indexes divisible by this are acknowledged and \
             thrown away; this build loses data on purpose"
        );
    }
    if s.tls.is_none() {
        tracing::warn!(
            "INSECURE: --insecure given, gRPC and Raft traffic are plain text: anyone on the \
             network can read and change licenses, and access control is off"
        );
    }
    if !s.audit_enabled {
        tracing::warn!(
            "UNAUDITED: audit.enabled is false (--no-audit): this node records no verification, \
             read or write in the audit trail; for measuring what auditing costs only"
        );
    }
    let data_dir = s.data_dir.display();
    tracing::info!(
        id = s.id,
        addr = %s.addr,
        listen = %s.listen_addr,
        tls = s.tls.is_some(),
        data_dir = %data_dir,
        "licstored listening"
    );
    // Nagle's algorithm off on every accepted connection: the builder's `tcp_nodelay` only
    // reaches listeners tonic binds itself, and small Raft messages and answers would
    // otherwise wait for delayed acknowledgements (tens of milliseconds each).
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = &tls {
        builder = builder
            .tls_config(tls.server.clone())
            .map_err(|e| ServerError::Config(format!("tls: {e}")))?;
    }
    let access = crate::access::AccessLayer::new(node.clone(), s.access.clone(), token_keys);
    let max_request = s.limits.max_request_bytes;
    let server = builder
        .http2_keepalive_interval(Some(Duration::from_secs(10)))
        .layer(crate::metrics::GrpcMetricsLayer)
        .layer(access)
        .add_service(
            LicensesServer::new(LicenseApi::new(node.clone()))
                .max_decoding_message_size(max_request)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            ClusterServer::new(ClusterApi::new(node.clone()))
                .max_decoding_message_size(max_request),
        )
        .add_service(
            SealsServer::new(crate::sealing::SealsApi::new(node.clone()))
                .max_decoding_message_size(max_request),
        )
        .add_service(
            PoliciesServer::new(crate::policies::PoliciesApi::new(node.clone()))
                .max_decoding_message_size(max_request),
        )
        .add_service(
            AccessServer::new(crate::access_api::AccessApi::new(node.clone()))
                .max_decoding_message_size(max_request),
        )
        .add_service(
            AuditServer::new(crate::audit_api::AuditApi::new(
                node.clone(),
                s.audit_trim_min_age,
            ))
            .max_decoding_message_size(max_request),
        )
        .add_service(crate::health::service(node.clone()).await)
        .add_service(reflection()?.build_v1().map_err(reflection_error)?)
        .add_service(reflection()?.build_v1alpha().map_err(reflection_error)?)
        .add_service(
            RaftServer::new(RaftService::new(node.clone()))
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .serve_with_incoming_shutdown(incoming, async {
            let _ = stop_rx.await;
        });
    let mut server = tokio::spawn(server);
    crate::background::spawn_expiry_sweeper(node.clone(), s.expiry_sweep);
    crate::audit::spawn_shipper(node.clone(), s.audit_ship_interval);
    crate::background::spawn_retention(node.clone(), s.event_retention);
    crate::audit_api::spawn_retention(node.clone(), s.audit_retention);
    crate::background::spawn_revocation_sweeper(node.clone());
    let init_node = node.clone();
    let members = s.init_members.clone();
    tokio::spawn(async move {
        if let Err(e) = maybe_initialize(&init_node, &members).await {
            tracing::error!(error = %e, "initialise failed");
        }
    });
    tokio::select! {
        ended = &mut server => {
            node.raft.shutdown().await.map_err(|e| ServerError::Raft(e.to_string()))?;
            return ended.map_err(|e| ServerError::Internal(e.to_string()))?.map_err(Into::into);
        }
        fatal = raft_stopped(&node) => {
            // Fail-stop: a node whose Raft core stopped (a log or state-machine write failed)
            // can neither vote nor apply; serving reads from its frozen state would mislead,
            // so it exits and its supervisor restarts it from what is on disk.
            tracing::error!(error = %fatal, "raft stopped on its own; exiting");
            let _ = stop_tx.send(());
            let _ = tokio::time::timeout(DRAIN_DEADLINE, server).await;
            // Not a return: dropping the runtime would wait for ever on a blocking task stuck
            // in the storage call that failed.
            crate::stall::fail_stop(&format!("raft stopped on its own: {fatal}"));
        }
        _ = shutdown_signal() => {}
    }
    consensus_info!(node, "stopping raft");
    node.raft
        .shutdown()
        .await
        .map_err(|e| ServerError::Raft(e.to_string()))?;
    let _ = stop_tx.send(());
    match tokio::time::timeout(DRAIN_DEADLINE, server).await {
        Ok(joined) => joined.map_err(|e| ServerError::Internal(e.to_string()))??,
        Err(_) => tracing::warn!(deadline = ?DRAIN_DEADLINE, "requests still open at the deadline"),
    }
    tracing::info!("stopped");
    Ok(())
}

/// Resolves with the reason once the Raft core has stopped without being asked to (openraft
/// stops it for good after a storage error).
async fn raft_stopped(node: &Node) -> String {
    let mut metrics = node.raft.metrics();
    loop {
        if let Err(fatal) = &metrics.borrow_watched().running_state {
            return fatal.to_string();
        }
        if metrics.changed().await.is_err() {
            return "raft metrics channel closed".to_string();
        }
    }
}

/// gRPC server reflection over the public, internal and health services, so `grpcurl` needs
/// no proto files. Both protocol versions are served: clients differ in which they ask for.
fn reflection() -> Result<tonic_reflection::server::Builder<'static>, ServerError> {
    Ok(tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(licstore_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET))
}

fn reflection_error(e: tonic_reflection::server::Error) -> ServerError {
    ServerError::Internal(format!("reflection: {e}"))
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt received"),
    }
}
