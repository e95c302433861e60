//! Start-up and shutdown: open storage, build the Raft node, serve gRPC until a signal.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use licstore_model::TemplateRegistry;
use licstore_proto::v1::cluster_server::ClusterServer;
use licstore_proto::v1::licenses_server::LicensesServer;
use licstore_proto::v1::raft::raft_server::RaftServer;
use licstore_store::{NodeId, Raft, Reader};
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
    /// How often the leader looks for licenses whose validity has ended.
    pub expiry_sweep: Duration,
    /// How long change-feed events are kept before the leader compacts them; zero keeps them
    /// for ever.
    pub event_retention: Duration,
    /// RocksDB block cache, in bytes.
    pub block_cache_bytes: usize,
    /// TLS files; `None` serves and dials in plain text.
    pub tls: Option<TlsPaths>,
}

/// The PEM files of a TLS set-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsPaths {
    /// This node's certificate chain.
    pub cert_file: PathBuf,
    /// Its private key.
    pub key_file: PathBuf,
    /// CA of client certificates, when clients must present one.
    pub client_ca_file: Option<PathBuf>,
    /// CA of peers' certificates.
    pub peer_ca_file: PathBuf,
}

/// The loaded TLS material: what the server serves and what peer channels present.
struct Tls {
    server: tonic::transport::ServerTlsConfig,
    peers: tonic::transport::ClientTlsConfig,
}

impl TlsPaths {
    fn load(&self) -> Result<Tls, ServerError> {
        use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};
        let read = |key: &str, path: &PathBuf| {
            std::fs::read(path)
                .map_err(|e| ServerError::Config(format!("{key} {}: {e}", path.display())))
        };
        let identity = Identity::from_pem(
            read("tls.cert_file", &self.cert_file)?,
            read("tls.key_file", &self.key_file)?,
        );
        let mut server = ServerTlsConfig::new().identity(identity.clone());
        if let Some(ca) = &self.client_ca_file {
            server = server.client_ca_root(Certificate::from_pem(read("tls.client_ca_file", ca)?));
        }
        let peer_ca = Certificate::from_pem(read("tls.peer_ca_file", &self.peer_ca_file)?);
        let peers = ClientTlsConfig::new()
            .ca_certificate(peer_ca)
            .identity(identity);
        Ok(Tls { server, peers })
    }
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
) -> Result<(Arc<Node>, licstore_store::DbStats), ServerError> {
    if s.id == 0 {
        return Err(ServerError::Config("node id must be positive".into()));
    }
    let options = licstore_store::StoreOptions {
        block_cache_bytes: s.block_cache_bytes,
    };
    let storage = licstore_store::open_with(&s.data_dir, &options)?;
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
    let node = Arc::new(Node {
        id: s.id,
        addr: s.addr.clone(),
        raft,
        reader: Reader::new(storage.db),
        templates: Arc::new(TemplateRegistry::builtin()),
        peers,
        snapshot_dir,
        applied,
        watches: Default::default(),
        walks: tokio::sync::Semaphore::new(1),
        pins: Default::default(),
    });
    Ok((node, storage.stats))
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

/// How long in-flight requests get to finish after Raft has stopped.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(3);

/// Runs a node until SIGTERM or Ctrl-C.
///
/// Shutdown order: 1. Raft stops, so this node neither votes nor campaigns with its listener
/// gone; 2. the listener closes and in-flight requests get [`DRAIN_DEADLINE`] to finish (writes
/// among them fail with `UNAVAILABLE` and are safe to retry with their request ids); 3. exit.
pub async fn serve(s: Settings) -> Result<(), ServerError> {
    // TLS files are read first, so a bad file stops the node before it opens any data.
    let tls = s.tls.as_ref().map(TlsPaths::load).transpose()?;
    let (node, stats) = start(&s, tls.as_ref().map(|t| t.peers.clone())).await?;
    if let Some(addr) = s.metrics_addr {
        let handle = crate::metrics::install()?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| ServerError::Config(format!("node.metrics_addr {addr}: {e}")))?;
        tokio::spawn(crate::http::serve(listener, handle, node.clone()));
        tracing::info!(addr = %addr, "metrics and probes: /metrics, /livez, /readyz");
    }
    crate::metrics::spawn_sampler(node.clone(), stats);
    let listener = tokio::net::TcpListener::bind(s.listen_addr).await?;
    let data_dir = s.data_dir.display();
    tracing::info!(
        id = s.id,
        addr = %s.addr,
        listen = %s.listen_addr,
        tls = s.tls.is_some(),
        data_dir = %data_dir,
        "licstored listening"
    );
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = &tls {
        builder = builder
            .tls_config(tls.server.clone())
            .map_err(|e| ServerError::Config(format!("tls: {e}")))?;
    }
    let server = builder
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(Duration::from_secs(10)))
        .layer(crate::metrics::GrpcMetricsLayer)
        .add_service(
            LicensesServer::new(LicenseApi::new(node.clone()))
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(ClusterServer::new(ClusterApi::new(node.clone())))
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
    crate::background::spawn_retention(node.clone(), s.event_retention);
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
