//! `licstored`: a licstore node.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use licstore_server::config::{parse_members, Config};
use licstore_server::serve;
use tracing_subscriber::EnvFilter;

/// jemalloc instead of the system allocator: the write path allocates and frees many small
/// buffers per request on every worker thread (see `benches/history.md`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A node of a licstore cluster. Settings come from the --config file, then LICSTORE_*
/// environment variables, then these flags; deploy/licstored.toml documents every key.
#[derive(Parser, Debug)]
#[command(name = "licstored", version, about)]
struct Args {
    /// TOML configuration file.
    #[arg(long, env = "LICSTORE_CONFIG")]
    config: Option<PathBuf>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,
    /// Node id, a positive integer unique in the cluster [node.id].
    #[arg(long, env = "LICSTORE_ID")]
    id: Option<u64>,
    /// Address published to peers, `host:port`; also the listen address unless
    /// --listen-addr is given [node.addr].
    #[arg(long, env = "LICSTORE_ADDR")]
    addr: Option<String>,
    /// Address to listen on, `ip:port`, when it differs from --addr [node.listen_addr].
    #[arg(long, env = "LICSTORE_LISTEN_ADDR")]
    listen_addr: Option<String>,
    /// Node id = 1 + the number ending the host name (`licstore-0` is 1)
    /// [node.id_from_hostname].
    #[arg(long, env = "LICSTORE_ID_FROM_HOSTNAME")]
    id_from_hostname: bool,
    /// Prometheus endpoint, `ip:port`, plain HTTP [node.metrics_addr; none].
    #[arg(long, env = "LICSTORE_METRICS_ADDR")]
    metrics_addr: Option<String>,
    /// Data directory (RocksDB and snapshots) [node.data_dir].
    #[arg(long, env = "LICSTORE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Initialise a new cluster with these members, `id=ip:port,...`; ignored once
    /// initialised [cluster.initial_members].
    #[arg(long, env = "LICSTORE_INIT")]
    init: Option<String>,
    /// Raft heartbeat interval in milliseconds [raft.heartbeat_ms; 150].
    #[arg(long, env = "LICSTORE_HEARTBEAT_MS")]
    heartbeat_ms: Option<u64>,
    /// Minimum election timeout in milliseconds [raft.election_min_ms; 1000].
    #[arg(long, env = "LICSTORE_ELECTION_MIN_MS")]
    election_min_ms: Option<u64>,
    /// Maximum election timeout in milliseconds [raft.election_max_ms; 2000].
    #[arg(long, env = "LICSTORE_ELECTION_MAX_MS")]
    election_max_ms: Option<u64>,
    /// Log entries between snapshots [raft.snapshot_logs; 100000].
    #[arg(long, env = "LICSTORE_SNAPSHOT_LOGS")]
    snapshot_logs: Option<u64>,
    /// Log entries kept behind a snapshot for lagging followers [raft.logs_to_keep; 5000].
    #[arg(long, env = "LICSTORE_LOGS_TO_KEEP")]
    logs_to_keep: Option<u64>,
    /// Start elections with a Pre-Vote round: true or false [raft.pre_vote; true].
    #[arg(long, env = "LICSTORE_PRE_VOTE", action = clap::ArgAction::Set)]
    pre_vote: Option<bool>,
    /// RocksDB block cache in bytes [storage.block_cache_bytes; 134217728].
    #[arg(long, env = "LICSTORE_BLOCK_CACHE_BYTES")]
    block_cache_bytes: Option<u64>,
    /// Memtables of all column families together, in bytes [storage.memtable_budget_bytes;
    /// 268435456].
    #[arg(long, env = "LICSTORE_MEMTABLE_BUDGET_BYTES")]
    memtable_budget_bytes: Option<u64>,
    /// Exit when a log or state-machine write has run this long; 0 never
    /// [storage.stall_limit_ms; 20000].
    #[arg(long, env = "LICSTORE_STALL_LIMIT_MS")]
    stall_limit_ms: Option<u64>,
    /// Milliseconds between the leader's sweeps for lapsed licenses [feed.expiry_sweep_ms;
    /// 60000].
    #[arg(long, env = "LICSTORE_EXPIRY_SWEEP_MS")]
    expiry_sweep_ms: Option<u64>,
    /// Milliseconds between shipments of the audit journal into the replicated trail
    /// [audit.ship_interval_ms; 200].
    #[arg(long, env = "LICSTORE_AUDIT_SHIP_INTERVAL_MS")]
    audit_ship_interval_ms: Option<u64>,
    /// Milliseconds audit records may wait unshipped before audited calls are refused; 0 never
    /// [audit.max_unshipped_ms; 30000].
    #[arg(long, env = "LICSTORE_AUDIT_MAX_UNSHIPPED_MS")]
    audit_max_unshipped_ms: Option<u64>,
    /// Seconds after which the leader trims audit records on its own; 0 never
    /// [audit.retention_secs; 0].
    #[arg(long, env = "LICSTORE_AUDIT_RETENTION_SECS")]
    audit_retention_secs: Option<u64>,
    /// Seconds an audit record is kept at least before a trim may remove it
    /// [audit.trim_min_age_secs; 15811200].
    #[arg(long, env = "LICSTORE_AUDIT_TRIM_MIN_AGE_SECS")]
    audit_trim_min_age_secs: Option<u64>,
    /// Record nothing in the audit trail; only with --insecure, to measure what auditing
    /// costs; logs a warning at start [audit.enabled = false].
    #[arg(long, env = "LICSTORE_NO_AUDIT")]
    no_audit: bool,
    /// Largest request message a public service accepts, in bytes
    /// [limits.max_request_bytes; 4194304].
    #[arg(long, env = "LICSTORE_MAX_REQUEST_BYTES")]
    max_request_bytes: Option<u64>,
    /// Calls in flight on the node before new ones are shed; 0 no bound
    /// [limits.max_in_flight; 4096].
    #[arg(long, env = "LICSTORE_MAX_IN_FLIGHT")]
    max_in_flight: Option<u32>,
    /// Calls per second each caller may sustain; 0 no limit [limits.rate_per_s; 0].
    #[arg(long, env = "LICSTORE_RATE_PER_S")]
    rate_per_s: Option<u32>,
    /// Calls each caller may make at once after a quiet spell; 0 the rate [limits.burst; 0].
    #[arg(long, env = "LICSTORE_BURST")]
    burst: Option<u32>,
    /// Calls each caller may have in flight; 0 no bound of its own
    /// [limits.principal_max_in_flight; 1024].
    #[arg(long, env = "LICSTORE_PRINCIPAL_MAX_IN_FLIGHT")]
    principal_max_in_flight: Option<u32>,
    /// Seconds of change-feed history kept; 0 keeps everything [feed.event_retention_secs;
    /// 259200].
    #[arg(long, env = "LICSTORE_EVENT_RETENTION_SECS")]
    event_retention_secs: Option<u64>,
    /// This node's certificate chain (PEM); with it the node serves and dials peers over TLS
    /// [tls.cert_file].
    #[arg(long, env = "LICSTORE_TLS_CERT_FILE")]
    tls_cert_file: Option<PathBuf>,
    /// The certificate's private key (PEM) [tls.key_file].
    #[arg(long, env = "LICSTORE_TLS_KEY_FILE")]
    tls_key_file: Option<PathBuf>,
    /// CA that client certificates must chain to; clients then need one [tls.client_ca_file].
    #[arg(long, env = "LICSTORE_TLS_CLIENT_CA_FILE")]
    tls_client_ca_file: Option<PathBuf>,
    /// CA that peers' certificates must chain to [tls.peer_ca_file].
    #[arg(long, env = "LICSTORE_TLS_PEER_CA_FILE")]
    tls_peer_ca_file: Option<PathBuf>,
    /// Serve and dial peers in plain text, without certificates: for tests and local
    /// experiments only; logs a warning at start [tls.insecure].
    #[arg(long, env = "LICSTORE_INSECURE")]
    insecure: bool,
    /// Name of a certificate that is an admin whatever the store holds; repeatable
    /// [access.admin_names].
    #[arg(
        long = "admin-name",
        env = "LICSTORE_ADMIN_NAMES",
        value_delimiter = ','
    )]
    admin_names: Vec<String>,
    /// Name of a node's certificate, allowed to send Raft messages; repeatable
    /// [access.node_names].
    #[arg(long = "node-name", env = "LICSTORE_NODE_NAMES", value_delimiter = ',')]
    node_names: Vec<String>,
    /// An Ed25519 public key (PEM) whose signed bearer tokens identify callers; repeatable
    /// [access.token_key_files].
    #[arg(
        long = "token-key-file",
        env = "LICSTORE_TOKEN_KEY_FILES",
        value_delimiter = ','
    )]
    token_key_files: Vec<PathBuf>,
    /// The audience bearer tokens must name [access.token_audience; licstore].
    #[arg(long, env = "LICSTORE_TOKEN_AUDIENCE")]
    token_audience: Option<String>,
    /// A secret seal key file of an authority this node seals for; repeatable
    /// [seal.key_files].
    #[arg(
        long = "seal-key-file",
        env = "LICSTORE_SEAL_KEY_FILES",
        value_delimiter = ','
    )]
    seal_key_files: Vec<PathBuf>,
    /// Log as JSON lines instead of human-readable text [log.json].
    #[arg(long, env = "LICSTORE_LOG_JSON")]
    log_json: bool,
    /// RUST_LOG-style log filter [log.filter].
    #[arg(long, env = "LICSTORE_LOG_FILTER")]
    log_filter: Option<String>,
}

impl Args {
    /// Applies the flags and environment variables given over the file's values.
    fn apply(&self, c: &mut Config) -> Result<(), String> {
        fn set<T: Clone>(slot: &mut T, value: &Option<T>) {
            if let Some(v) = value {
                *slot = v.clone();
            }
        }
        set(&mut c.node.id, &self.id);
        set(&mut c.node.addr, &self.addr);
        set(&mut c.node.listen_addr, &self.listen_addr);
        c.node.id_from_hostname |= self.id_from_hostname;
        set(&mut c.node.metrics_addr, &self.metrics_addr);
        set(&mut c.node.data_dir, &self.data_dir);
        if let Some(spec) = &self.init {
            c.cluster.initial_members = parse_members(spec)?;
        }
        set(&mut c.raft.heartbeat_ms, &self.heartbeat_ms);
        set(&mut c.raft.election_min_ms, &self.election_min_ms);
        set(&mut c.raft.election_max_ms, &self.election_max_ms);
        set(&mut c.raft.snapshot_logs, &self.snapshot_logs);
        set(&mut c.raft.logs_to_keep, &self.logs_to_keep);
        set(&mut c.raft.pre_vote, &self.pre_vote);
        set(&mut c.storage.block_cache_bytes, &self.block_cache_bytes);
        set(
            &mut c.storage.memtable_budget_bytes,
            &self.memtable_budget_bytes,
        );
        set(&mut c.storage.stall_limit_ms, &self.stall_limit_ms);
        set(&mut c.feed.expiry_sweep_ms, &self.expiry_sweep_ms);
        set(&mut c.feed.event_retention_secs, &self.event_retention_secs);
        set(&mut c.audit.ship_interval_ms, &self.audit_ship_interval_ms);
        set(&mut c.audit.max_unshipped_ms, &self.audit_max_unshipped_ms);
        set(&mut c.audit.retention_secs, &self.audit_retention_secs);
        set(
            &mut c.audit.trim_min_age_secs,
            &self.audit_trim_min_age_secs,
        );
        set(&mut c.limits.max_request_bytes, &self.max_request_bytes);
        set(&mut c.limits.max_in_flight, &self.max_in_flight);
        set(&mut c.limits.rate_per_s, &self.rate_per_s);
        set(&mut c.limits.burst, &self.burst);
        set(
            &mut c.limits.principal_max_in_flight,
            &self.principal_max_in_flight,
        );
        set(&mut c.tls.cert_file, &self.tls_cert_file);
        set(&mut c.tls.key_file, &self.tls_key_file);
        set(&mut c.tls.client_ca_file, &self.tls_client_ca_file);
        set(&mut c.tls.peer_ca_file, &self.tls_peer_ca_file);
        c.tls.insecure |= self.insecure;
        c.audit.enabled &= !self.no_audit;
        if !self.admin_names.is_empty() {
            c.access.admin_names = self.admin_names.clone();
        }
        if !self.token_key_files.is_empty() {
            c.access.token_key_files = self.token_key_files.clone();
        }
        set(&mut c.access.token_audience, &self.token_audience);
        if !self.node_names.is_empty() {
            c.access.node_names = self.node_names.clone();
        }
        if !self.seal_key_files.is_empty() {
            c.seal.key_files = self.seal_key_files.clone();
        }
        c.log.json |= self.log_json;
        set(&mut c.log.filter, &self.log_filter);
        Ok(())
    }
}

fn init_tracing(log: &licstore_server::config::LogConfig) {
    let filter = match log.filter.as_str() {
        "" => EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new("info,openraft=warn,h2=warn,tower=warn")),
        spec => EnvFilter::new(spec),
    };
    // Colours only on a terminal: log files stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    if log.json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn config(args: &Args) -> Result<Config, String> {
    let mut config = match &args.config {
        Some(path) => Config::load(path).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    args.apply(&mut config)?;
    Ok(config)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config = match config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if args.print_config {
        print!("{}", config.to_toml());
        return ExitCode::SUCCESS;
    }
    let settings = match config.to_settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(&config.log);
    match serve(settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "licstored failed");
            // JSON logs stay all JSON; the text log line above is followed by a plain summary.
            if !config.log.json {
                eprintln!("error: {e}");
            }
            ExitCode::FAILURE
        }
    }
}
