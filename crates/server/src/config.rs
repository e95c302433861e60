//! The `licstored` configuration: a TOML file, overridden by environment variables and flags.
//!
//! Precedence, lowest first: built-in defaults, the file given with `--config`, `LICSTORE_*`
//! environment variables, command-line flags. Unknown keys in the file are an error that names
//! them. `deploy/licstored.toml` documents every key; a test keeps it complete.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use licstore_store::principals::check_principal_name;

use crate::access::{AccessPolicy, TOKEN_NAME_PREFIX};
use crate::limits::{LimitSettings, Quota};
use crate::run::{Settings, TlsPaths};
use crate::ServerError;

/// The whole configuration file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// This node.
    pub node: NodeConfig,
    /// Cluster bootstrap.
    pub cluster: ClusterConfig,
    /// Raft timings and log compaction.
    pub raft: RaftConfig,
    /// RocksDB.
    pub storage: StorageConfig,
    /// Change feed and expiry.
    pub feed: FeedConfig,
    /// Logging.
    pub log: LogConfig,
    /// TLS.
    pub tls: TlsConfig,
    /// Names granted rights by configuration.
    pub access: AccessConfig,
    /// Seal keys held by this node.
    pub seal: SealConfig,
    /// The audit trail.
    pub audit: AuditConfig,
    /// Limits against abuse.
    pub limits: LimitsConfig,
}

/// `[limits]`: bounds that keep one caller from starving the others (`limits.rs`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest request message a public service accepts, in bytes.
    pub max_request_bytes: u64,
    /// Calls in flight on the node at once before new ones are shed; 0: no bound.
    pub max_in_flight: u32,
    /// Calls per second each caller may sustain; 0: no rate limit.
    pub rate_per_s: u32,
    /// Calls each caller may make at once after a quiet spell; 0: `rate_per_s`.
    pub burst: u32,
    /// Calls each caller may have in flight on the node at once; 0: no bound of its own.
    pub principal_max_in_flight: u32,
    /// Quotas of named callers (certificate names), overriding the three above.
    pub principals: BTreeMap<String, PrincipalLimitsConfig>,
}

/// `[limits.principals.NAME]`: what is not given is taken from `[limits]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrincipalLimitsConfig {
    /// Calls per second; 0: no rate limit.
    pub rate_per_s: Option<u32>,
    /// Calls at once after a quiet spell; 0: `rate_per_s`.
    pub burst: Option<u32>,
    /// Calls in flight at once; 0: no bound of its own.
    pub max_in_flight: Option<u32>,
}

/// Bounds of `limits.max_request_bytes`: up to the size Raft messages may have.
pub const MAX_REQUEST_BYTES: std::ops::RangeInclusive<u64> =
    1024..=(crate::run::MAX_MESSAGE_BYTES as u64);

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_request_bytes: 4 << 20,
            max_in_flight: 4096,
            rate_per_s: 0,
            burst: 0,
            principal_max_in_flight: 1024,
            principals: BTreeMap::new(),
        }
    }
}

impl LimitsConfig {
    /// The settings, or the key at fault and why.
    fn to_settings(&self) -> Result<LimitSettings, (String, String)> {
        let range = MAX_REQUEST_BYTES;
        let max_request_bytes = Some(self.max_request_bytes)
            .filter(|b| range.contains(b))
            .and_then(|b| usize::try_from(b).ok())
            .ok_or_else(|| {
                let why = format!(
                    "{}: must be within {}..={}",
                    self.max_request_bytes,
                    range.start(),
                    range.end()
                );
                ("limits.max_request_bytes".to_owned(), why)
            })?;
        let quota = |rate_per_s: u32, burst: u32, max_in_flight: u32| Quota {
            rate_per_s,
            burst: if burst == 0 { rate_per_s.max(1) } else { burst },
            max_in_flight,
        };
        let default_quota = quota(self.rate_per_s, self.burst, self.principal_max_in_flight);
        let mut principals = BTreeMap::new();
        for (name, p) in &self.principals {
            let key = || format!("limits.principals.{name}");
            match check_principal_name(name) {
                Ok(checked) if checked == *name => {}
                Ok(_) => return Err((key(), "has spaces around it".to_owned())),
                Err(why) => return Err((key(), why.to_string())),
            }
            let rate = p.rate_per_s.unwrap_or(self.rate_per_s);
            let burst = p.burst.unwrap_or(if p.rate_per_s.is_some() {
                0
            } else {
                self.burst
            });
            let in_flight = p.max_in_flight.unwrap_or(self.principal_max_in_flight);
            principals.insert(name.clone(), quota(rate, burst, in_flight));
        }
        Ok(LimitSettings {
            max_request_bytes,
            max_in_flight: self.max_in_flight,
            default_quota,
            principals,
        })
    }
}

/// `[audit]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Milliseconds between shipments of this node's audit journal into the replicated trail:
    /// the longest a record waits on this node alone while a leader is reachable.
    pub ship_interval_ms: u64,
    /// Milliseconds records may wait on this node unshipped (no leader reachable) before it
    /// refuses the calls that would make more; 0: never refuse.
    pub max_unshipped_ms: u64,
    /// Record calls at all. `false` is accepted only with `tls.insecure`, to measure what
    /// auditing costs; a node with TLS always records.
    pub enabled: bool,
    /// Seconds after which the leader trims records from the trail on its own; 0: never.
    /// At least `trim_min_age_secs`.
    pub retention_secs: u64,
    /// Seconds a record must have been kept before any trim, asked for or automatic, may
    /// remove it.
    pub trim_min_age_secs: u64,
}

/// Default `audit.trim_min_age_secs`: 183 days, the six months network logs are kept at
/// least under the Cybersecurity Law (article 21).
pub const AUDIT_TRIM_MIN_AGE_SECS: u64 = 183 * 24 * 3600;

/// Least `audit.max_unshipped_ms` other than 0: a few shipments must be able to fail first.
pub const AUDIT_MAX_UNSHIPPED_MIN_MS: u64 = 1_000;

/// Bounds of `audit.ship_interval_ms`.
pub const AUDIT_SHIP_INTERVAL_MS: std::ops::RangeInclusive<u64> = 10..=60_000;

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            ship_interval_ms: 200,
            max_unshipped_ms: 30_000,
            enabled: true,
            retention_secs: 0,
            trim_min_age_secs: AUDIT_TRIM_MIN_AGE_SECS,
        }
    }
}

/// `[seal]`: secret key files of the authorities this node seals for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SealConfig {
    /// Key files in the `licstore-seal` key-file format.
    pub key_files: Vec<PathBuf>,
}

/// `[access]`: certificate names granted rights before any principal is registered.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessConfig {
    /// Names (common name, else first SAN) of certificates that are admins whatever the store
    /// holds; they register the first principals.
    pub admin_names: Vec<String>,
    /// Names of the nodes' certificates: only they may send Raft messages. Required with TLS.
    pub node_names: Vec<String>,
    /// Ed25519 public keys (PEM) whose signed bearer tokens name callers; empty: no tokens.
    /// With keys, a client certificate becomes optional for callers that send a token.
    pub token_key_files: Vec<PathBuf>,
    /// The `aud` a token must carry; empty means `licstore`.
    pub token_audience: String,
}

/// The audience a bearer token must name when `access.token_audience` is empty.
pub const DEFAULT_TOKEN_AUDIENCE: &str = "licstore";

/// `[tls]`: PEM files, or `insecure` for plain text.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// This node's certificate chain, served on its port and presented to peers.
    pub cert_file: PathBuf,
    /// The certificate's private key.
    pub key_file: PathBuf,
    /// CA that client certificates must chain to; empty: clients need no certificate.
    pub client_ca_file: PathBuf,
    /// CA that peers' certificates must chain to; required with a certificate.
    pub peer_ca_file: PathBuf,
    /// Serve clients and dial peers in plain text, with no certificate; only for tests and
    /// local experiments. Without a certificate the node refuses to start unless this is set.
    pub insecure: bool,
}

/// `[node]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// Positive node id, unique in the cluster.
    pub id: u64,
    /// `host:port` published to peers and clients; also the address to listen on unless
    /// `listen_addr` is given.
    pub addr: String,
    /// `ip:port` to listen on; empty: `addr`, which must then be `ip:port`.
    pub listen_addr: String,
    /// Take the id from the host name: one more than its number after the last `-`, so the
    /// pod `licstore-0` of a StatefulSet is node 1.
    pub id_from_hostname: bool,
    /// `ip:port` of the plain-HTTP Prometheus endpoint (`GET /metrics`); empty: none.
    pub metrics_addr: String,
    /// Data directory (RocksDB and snapshots).
    pub data_dir: PathBuf,
}

/// `[cluster]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Members a new cluster starts with, node id → `ip:port`; read only by a node whose data
    /// directory is new.
    pub initial_members: BTreeMap<String, String>,
}

/// `[raft]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaftConfig {
    /// Heartbeat interval.
    pub heartbeat_ms: u64,
    /// Lower bound of the election timeout.
    pub election_min_ms: u64,
    /// Upper bound of the election timeout.
    pub election_max_ms: u64,
    /// Log entries between snapshots.
    pub snapshot_logs: u64,
    /// Log entries kept behind a snapshot for followers that lag a little.
    pub logs_to_keep: u64,
    /// Ask the voters first (Pre-Vote) and raise the term only with a quorum's consent, so a
    /// node cut off from the others does not depose a working leader when it returns.
    pub pre_vote: bool,
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            heartbeat_ms: 150,
            election_min_ms: 1000,
            election_max_ms: 2000,
            snapshot_logs: 100_000,
            logs_to_keep: 5_000,
            pre_vote: true,
        }
    }
}

/// Default of `storage.stall_limit_ms`: far beyond any healthy write (fsyncs take
/// milliseconds, write stalls under load seconds), short enough that a hung leader is replaced
/// well inside a client's patience.
const DEFAULT_STALL_LIMIT_MS: u64 = 20_000;
/// The smallest non-zero `storage.stall_limit_ms`: below it a busy disk would stop the node.
const STALL_LIMIT_MIN_MS: u64 = 1_000;

/// The smallest memtable budget accepted: below it RocksDB would flush on nearly every write.
const MEMTABLE_BUDGET_MIN_BYTES: usize = 1 << 20;

/// `[storage]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// RocksDB block cache shared by all column families.
    pub block_cache_bytes: u64,
    /// Memtables of all column families together; past it RocksDB flushes.
    pub memtable_budget_bytes: u64,
    /// A log or state-machine write that runs this long means the disk stopped answering:
    /// the node exits so its supervisor restarts it. Zero never stops it.
    pub stall_limit_ms: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            block_cache_bytes: licstore_store::db::DEFAULT_BLOCK_CACHE_BYTES as u64,
            memtable_budget_bytes: licstore_store::db::DEFAULT_MEMTABLE_BUDGET_BYTES as u64,
            stall_limit_ms: DEFAULT_STALL_LIMIT_MS,
        }
    }
}

/// `[feed]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeedConfig {
    /// Seconds of change-feed history kept before the leader compacts it; 0 keeps everything.
    pub event_retention_secs: u64,
    /// Milliseconds between the leader's sweeps for lapsed licenses.
    pub expiry_sweep_ms: u64,
}

impl Default for FeedConfig {
    fn default() -> Self {
        FeedConfig {
            event_retention_secs: 3 * 24 * 3600,
            expiry_sweep_ms: 60_000,
        }
    }
}

/// `[log]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// JSON lines instead of human-readable text.
    pub json: bool,
    /// A `RUST_LOG`-style filter; empty uses `RUST_LOG`, else the built-in default.
    pub filter: String,
}

impl Config {
    fn audit_ship_interval(&self) -> Result<Duration, ServerError> {
        let ms = self.audit.ship_interval_ms;
        if !AUDIT_SHIP_INTERVAL_MS.contains(&ms) {
            let (lo, hi) = (AUDIT_SHIP_INTERVAL_MS.start(), AUDIT_SHIP_INTERVAL_MS.end());
            let why = format!("{ms}: must be within {lo}..={hi}");
            return Err(ServerError::Config(format!(
                "audit.ship_interval_ms: {why}"
            )));
        }
        Ok(Duration::from_millis(ms))
    }

    fn audit_max_unshipped(&self) -> Result<Duration, ServerError> {
        let ms = self.audit.max_unshipped_ms;
        if ms != 0 && ms < AUDIT_MAX_UNSHIPPED_MIN_MS {
            return Err(ServerError::Config(format!(
                "audit.max_unshipped_ms: {ms}: must be 0 (never refuse) or at least \
                 {AUDIT_MAX_UNSHIPPED_MIN_MS}"
            )));
        }
        Ok(Duration::from_millis(ms))
    }

    /// `audit.retention_secs`, zero for none; never shorter than the trims' least age.
    fn audit_retention(&self) -> Result<Duration, ServerError> {
        let (keep, least) = (self.audit.retention_secs, self.audit.trim_min_age_secs);
        if keep != 0 && keep < least {
            return Err(ServerError::Config(format!(
                "audit.retention_secs: {keep}: must be 0 (keep every record) or at least \
                 audit.trim_min_age_secs ({least})"
            )));
        }
        Ok(Duration::from_secs(keep))
    }

    /// Reads a configuration file; an unknown key or a wrong type is an error naming it.
    pub fn load(path: &Path) -> Result<Config, ServerError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ServerError::Config(format!("{}: {e}", path.display())))?;
        Config::parse(&text).map_err(|e| ServerError::Config(format!("{}: {e}", path.display())))
    }

    /// Parses configuration text.
    pub fn parse(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())
    }

    /// The effective configuration as TOML, for `--print-config`.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot print: {e}\n"))
    }

    /// Checks the configuration and turns it into start-up settings.
    pub fn to_settings(&self) -> Result<Settings, ServerError> {
        let bad = |key: &str, why: String| ServerError::Config(format!("{key}: {why}"));
        let id = self.node_id().map_err(|why| bad("node.id", why))?;
        check_host_port(&self.node.addr).map_err(|why| bad("node.addr", why))?;
        let listen = match self.node.listen_addr.as_str() {
            "" => self.node.addr.as_str(),
            given => given,
        };
        let listen_addr: SocketAddr = listen.parse().map_err(|_| {
            let key = match self.node.listen_addr.as_str() {
                "" => "node.listen_addr (required when node.addr is a host name)",
                _ => "node.listen_addr",
            };
            bad(key, format!("{listen:?} is not ip:port"))
        })?;
        let metrics_addr = match self.node.metrics_addr.as_str() {
            "" => None,
            given => Some(
                given
                    .parse::<SocketAddr>()
                    .map_err(|_| bad("node.metrics_addr", format!("{given:?} is not ip:port")))?,
            ),
        };
        if self.node.data_dir.as_os_str().is_empty() {
            return Err(bad("node.data_dir", "required".into()));
        }
        let mut init_members = BTreeMap::new();
        for (id, member_addr) in &self.cluster.initial_members {
            let key = format!("cluster.initial_members.{id}");
            let id: u64 = id
                .parse()
                .ok()
                .filter(|id| *id > 0)
                .ok_or_else(|| bad(&key, "the key must be a positive node id".into()))?;
            check_host_port(member_addr).map_err(|why| bad(&key, why))?;
            init_members.insert(id, member_addr.clone());
        }
        let tls = self.tls.to_paths().map_err(|(key, why)| bad(key, why))?;
        if !self.audit.enabled && tls.is_some() {
            let why = "false is allowed only with tls.insecure: a node with TLS records every \
                       use of a license"
                .into();
            return Err(bad("audit.enabled", why));
        }
        let access = self
            .access
            .to_policy(tls.is_some())
            .map_err(|(key, why)| bad(key, why))?;
        let r = &self.raft;
        if r.election_min_ms >= r.election_max_ms || r.heartbeat_ms >= r.election_min_ms {
            let why = "need heartbeat_ms < election_min_ms < election_max_ms".into();
            return Err(bad("raft", why));
        }
        let block_cache_bytes = usize::try_from(self.storage.block_cache_bytes)
            .map_err(|_| bad("storage.block_cache_bytes", "too large".into()))?;
        let memtable_budget_bytes = usize::try_from(self.storage.memtable_budget_bytes)
            .ok()
            .filter(|b| *b >= MEMTABLE_BUDGET_MIN_BYTES)
            .ok_or_else(|| {
                let why = format!("must be from {MEMTABLE_BUDGET_MIN_BYTES} bytes (1 MiB) up");
                bad("storage.memtable_budget_bytes", why)
            })?;
        let limits = self
            .limits
            .to_settings()
            .map_err(|(key, why)| bad(&key, why))?;
        let stall_limit_ms = self.storage.stall_limit_ms;
        if stall_limit_ms != 0 && stall_limit_ms < STALL_LIMIT_MIN_MS {
            let why = format!("must be 0 (never stop) or at least {STALL_LIMIT_MIN_MS}");
            return Err(bad("storage.stall_limit_ms", why));
        }
        Ok(Settings {
            id,
            addr: self.node.addr.clone(),
            listen_addr,
            metrics_addr,
            data_dir: self.node.data_dir.clone(),
            init_members,
            heartbeat_ms: r.heartbeat_ms,
            election_min_ms: r.election_min_ms,
            election_max_ms: r.election_max_ms,
            snapshot_logs: r.snapshot_logs,
            logs_to_keep: r.logs_to_keep,
            pre_vote: r.pre_vote,
            expiry_sweep: Duration::from_millis(self.feed.expiry_sweep_ms.max(100)),
            audit_ship_interval: self.audit_ship_interval()?,
            audit_max_unshipped: self.audit_max_unshipped()?,
            audit_enabled: self.audit.enabled,
            audit_retention: self.audit_retention()?,
            audit_trim_min_age: Duration::from_secs(self.audit.trim_min_age_secs),
            event_retention: Duration::from_secs(self.feed.event_retention_secs),
            block_cache_bytes,
            memtable_budget_bytes,
            storage_stall_limit: Duration::from_millis(stall_limit_ms),
            tls,
            access,
            seal_key_files: self.seal.key_files.clone(),
            limits,
        })
    }
}

impl TlsConfig {
    /// The files to load, or `None` for plain text; refuses settings that do not fit together,
    /// and plain text not asked for with `insecure`.
    fn to_paths(&self) -> Result<Option<TlsPaths>, (&'static str, String)> {
        let set = |p: &PathBuf| !p.as_os_str().is_empty();
        match (set(&self.cert_file), set(&self.key_file)) {
            (false, false) => {
                if set(&self.client_ca_file) || set(&self.peer_ca_file) {
                    return Err(("tls.cert_file", "required with a CA file".into()));
                }
                if !self.insecure {
                    let why = "required: give the node a certificate, or pass --insecure \
                               (tls.insecure) to serve plain text";
                    return Err(("tls.cert_file", why.into()));
                }
                return Ok(None);
            }
            (true, false) => return Err(("tls.key_file", "required with tls.cert_file".into())),
            (false, true) => return Err(("tls.cert_file", "required with tls.key_file".into())),
            (true, true) if self.insecure => {
                let why = "conflicts with tls.cert_file: plain text or TLS, not both".into();
                return Err(("tls.insecure", why));
            }
            (true, true) => {}
        }
        if !set(&self.peer_ca_file) {
            let why = "required with tls.cert_file: peers are dialed over TLS".into();
            return Err(("tls.peer_ca_file", why));
        }
        if !set(&self.client_ca_file) {
            let why = "required with tls.cert_file: callers are known by their client \
                       certificates"
                .into();
            return Err(("tls.client_ca_file", why));
        }
        Ok(Some(TlsPaths {
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
            client_ca_file: self.client_ca_file.clone(),
            peer_ca_file: self.peer_ca_file.clone(),
        }))
    }
}

impl AccessConfig {
    /// The names as a policy; access control is on with TLS.
    fn to_policy(&self, tls: bool) -> Result<AccessPolicy, (&'static str, String)> {
        let names = |key: &'static str, list: &[String]| {
            let mut set = BTreeSet::new();
            for (i, name) in list.iter().enumerate() {
                let name = check_principal_name(name)
                    .map_err(|r| (key, format!("[{i}]: {}", r.message)))?;
                set.insert(name);
            }
            Ok::<_, (&'static str, String)>(set)
        };
        let admin_names = names("access.admin_names", &self.admin_names)?;
        let node_names = names("access.node_names", &self.node_names)?;
        if tls && node_names.is_empty() {
            let why = "required with TLS: the names of the nodes' certificates, which alone may \
                       send Raft messages"
                .into();
            return Err(("access.node_names", why));
        }
        if let Some(n) = node_names.iter().find(|n| n.starts_with(TOKEN_NAME_PREFIX)) {
            let why = format!("{n:?}: nodes are known by certificates, not bearer tokens");
            return Err(("access.node_names", why));
        }
        if !tls && !self.token_key_files.is_empty() {
            let why = "only with TLS: a bearer token sent in plain text can be read and replayed \
                       by anyone on the network"
                .into();
            return Err(("access.token_key_files", why));
        }
        let token_audience = match self.token_audience.trim() {
            "" => DEFAULT_TOKEN_AUDIENCE.to_owned(),
            a => a.to_owned(),
        };
        Ok(AccessPolicy {
            enabled: tls,
            admin_names,
            node_names,
            token_key_files: self.token_key_files.clone(),
            token_audience,
        })
    }
}

impl Config {
    /// `node.id`, or the id the host name gives when `node.id_from_hostname` is set.
    fn node_id(&self) -> Result<u64, String> {
        match (self.node.id, self.node.id_from_hostname) {
            (0, false) => Err("required, a positive integer".into()),
            (id, false) => Ok(id),
            (0, true) => {
                let name = current_hostname().ok_or("id_from_hostname: no host name")?;
                id_from_hostname(&name)
            }
            (_, true) => Err("give node.id or node.id_from_hostname, not both".into()),
        }
    }
}

/// This machine's host name: `HOSTNAME` if set (as in a Kubernetes pod), else the kernel's.
fn current_hostname() -> Option<String> {
    let name = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())?;
    Some(name.trim().to_string()).filter(|n| !n.is_empty())
}

/// One more than the number after the last `-` of a host name: `licstore-0` is node 1.
pub fn id_from_hostname(name: &str) -> Result<u64, String> {
    let short = name.split('.').next().unwrap_or(name);
    let ordinal = short
        .rsplit_once('-')
        .and_then(|(_, n)| n.parse::<u64>().ok())
        .ok_or_else(|| format!("id_from_hostname: {name:?} does not end in -<number>"))?;
    ordinal
        .checked_add(1)
        .ok_or_else(|| format!("id_from_hostname: {name:?} is out of range"))
}

pub use licstore_client::check_host_port;

/// Parses `id=host:port,...` (the `--init` flag) into `[cluster] initial_members`.
pub fn parse_members(spec: &str) -> Result<BTreeMap<String, String>, String> {
    let members = licstore_client::parse_members(spec)?;
    Ok(members
        .into_iter()
        .map(|(id, addr)| (id.to_string(), addr))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../deploy/licstored.toml");

    fn keys(table: &toml::Table, prefix: &str, out: &mut Vec<String>) {
        for (k, v) in table {
            let path = format!("{prefix}{k}");
            match v {
                toml::Value::Table(t) => keys(t, &format!("{path}."), out),
                _ => out.push(path),
            }
        }
    }

    #[test]
    fn the_documented_file_parses_and_names_every_key() {
        let example = Config::parse(EXAMPLE).expect("deploy/licstored.toml parses");
        example.to_settings().expect("and is a valid configuration");
        let mut documented = Vec::new();
        keys(&toml::from_str(EXAMPLE).expect("toml"), "", &mut documented);
        let mut all = Vec::new();
        keys(
            &toml::from_str(&example.to_toml()).expect("toml"),
            "",
            &mut all,
        );
        documented.sort();
        all.sort();
        assert_eq!(
            documented, all,
            "every key appears in deploy/licstored.toml"
        );
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_named() {
        let cases = [
            ("[raft]\nheartbeat_msec = 5\n", "heartbeat_msec"),
            ("[nodes]\nid = 1\n", "nodes"),
            ("[node]\nid = \"one\"\n", "id"),
            ("colour = 1\n", "colour"),
        ];
        for (text, key) in cases {
            let err = Config::parse(text).expect_err(text);
            assert!(err.contains(key), "{text:?}: {err}");
        }
    }

    #[test]
    fn settings_name_the_key_at_fault() {
        let base = Config::parse(EXAMPLE).expect("example");
        type Spoil = fn(&mut Config);
        let cases: [(&str, Spoil); 27] = [
            ("node.id", |c| c.node.id = 0),
            ("node.id", |c| c.node.id_from_hostname = true),
            ("node.addr", |c| c.node.addr = "localhost".into()),
            ("node.addr", |c| c.node.addr = "no space:1".into()),
            ("node.listen_addr (required", |c| {
                c.node.addr = "licstore-0.peers:7001".into()
            }),
            ("node.listen_addr", |c| c.node.listen_addr = "*:1".into()),
            ("node.metrics_addr", |c| c.node.metrics_addr = "9201".into()),
            ("node.data_dir", |c| c.node.data_dir = PathBuf::new()),
            ("cluster.initial_members.x", |c| {
                c.cluster
                    .initial_members
                    .insert("x".into(), "127.0.0.1:1".into());
            }),
            ("raft", |c| c.raft.heartbeat_ms = 5000),
            ("tls.key_file", |c| c.tls.key_file = PathBuf::new()),
            ("tls.peer_ca_file", |c| c.tls.peer_ca_file = PathBuf::new()),
            ("tls.cert_file: required with a CA", |c| {
                c.tls.cert_file = PathBuf::new();
                c.tls.key_file = PathBuf::new();
            }),
            ("tls.cert_file: required: give", |c| {
                c.tls = TlsConfig::default()
            }),
            ("tls.insecure: conflicts", |c| c.tls.insecure = true),
            ("tls.client_ca_file", |c| {
                c.tls.client_ca_file = PathBuf::new()
            }),
            ("access.node_names: required", |c| {
                c.access.node_names.clear()
            }),
            ("access.admin_names", |c| {
                c.access.admin_names.push(" ".into())
            }),
            ("access.node_names: \"token:n1\"", |c| {
                c.access.node_names.push("token:n1".into())
            }),
            ("storage.memtable_budget_bytes", |c| {
                c.storage.memtable_budget_bytes = 4096
            }),
            ("storage.stall_limit_ms", |c| c.storage.stall_limit_ms = 999),
            ("limits.max_request_bytes", |c| {
                c.limits.max_request_bytes = 10
            }),
            ("audit.max_unshipped_ms", |c| c.audit.max_unshipped_ms = 999),
            ("audit.retention_secs: 3600", |c| {
                c.audit.retention_secs = 3600
            }),
            ("audit.enabled: false is allowed only", |c| {
                c.audit.enabled = false
            }),
            ("limits.max_request_bytes", |c| {
                c.limits.max_request_bytes = 1 << 40
            }),
            ("limits.principals. bad", |c| {
                let p = PrincipalLimitsConfig::default();
                c.limits.principals.insert(" bad".into(), p);
            }),
        ];
        for (key, spoil) in cases {
            let mut c = base.clone();
            spoil(&mut c);
            let err = c.to_settings().expect_err(key).to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
        let mut plain = base.clone();
        plain.tls = TlsConfig {
            insecure: true,
            ..TlsConfig::default()
        };
        let mut with_tokens = plain.clone();
        with_tokens.access.token_key_files = vec!["ops.pub".into()];
        let err = with_tokens.to_settings().expect_err("tokens in plain text");
        assert!(err.to_string().contains("access.token_key_files"), "{err}");
        let settings = plain.to_settings().expect("plain text asked for");
        assert_eq!(settings.tls, None);
        assert!(settings.audit_enabled, "auditing is on unless switched off");
        plain.audit.enabled = false;
        let unaudited = plain.to_settings().expect("no audit in plain text");
        assert!(!unaudited.audit_enabled);
        assert!(
            !settings.access.enabled,
            "access control is off in plain text"
        );
        let settings = base.to_settings().expect("the example");
        assert!(settings.tls.is_some() && settings.access.enabled);
        assert!(settings.access.node_names.contains("licstore-node"));
    }

    #[test]
    fn named_quotas_take_what_they_do_not_give_from_limits() {
        let text = "[limits]\nrate_per_s = 100\nburst = 300\nprincipal_max_in_flight = 8\n\
                    [limits.principals.a]\nrate_per_s = 5\n\
                    [limits.principals.b]\nmax_in_flight = 0\n\
                    [limits.principals.c]\nburst = 7\n";
        let limits = Config::parse(text).expect("parses").limits;
        let settings = limits.to_settings().expect("valid");
        let quota = |rate_per_s, burst, max_in_flight| Quota {
            rate_per_s,
            burst,
            max_in_flight,
        };
        let cases = [
            // A rate of its own brings a burst of its own, unless it gives one.
            ("a", quota(5, 5, 8)),
            ("b", quota(100, 300, 0)),
            ("c", quota(100, 7, 8)),
            ("anyone", quota(100, 300, 8)),
        ];
        for (name, expected) in cases {
            let got = settings
                .principals
                .get(name)
                .copied()
                .unwrap_or(settings.default_quota);
            assert_eq!(got, expected, "{name}");
        }
        let off = Config::default().limits.to_settings().expect("defaults");
        assert_eq!(
            off.default_quota,
            quota(0, 1, 1024),
            "no rate limit by default"
        );
        assert_eq!((off.max_request_bytes, off.max_in_flight), (4 << 20, 4096));
    }

    #[test]
    fn member_specs() {
        let ok = parse_members("1=127.0.0.1:7001, 2=127.0.0.1:7002").expect("valid");
        assert_eq!(ok.len(), 2);
        assert_eq!(ok["2"], "127.0.0.1:7002");
        let named = parse_members("1=licstore-0.licstore-peer.ns.svc:7001").expect("dns");
        assert_eq!(named["1"], "licstore-0.licstore-peer.ns.svc:7001");
        for bad in [
            "1",
            "x=127.0.0.1:1",
            "1=nowhere",
            "1=bad_name:1",
            "1=host:0",
            "1=127.0.0.1:1,1=127.0.0.1:2",
        ] {
            assert!(parse_members(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ids_from_host_names() {
        let cases = [
            ("licstore-0", Ok(1)),
            ("licstore-2.licstore-peer.prod.svc", Ok(3)),
            ("db-node-11", Ok(12)),
            ("licstore", Err(())),
            ("licstore-x", Err(())),
            ("licstore-18446744073709551615", Err(())),
        ];
        for (name, want) in cases {
            assert_eq!(id_from_hostname(name).map_err(|_| ()), want, "{name}");
        }
    }
}
