//! The `licstored` configuration: a TOML file, overridden by environment variables and flags.
//!
//! Precedence, lowest first: built-in defaults, the file given with `--config`, `LICSTORE_*`
//! environment variables, command-line flags. Unknown keys in the file are an error that names
//! them. `deploy/licstored.toml` documents every key; a test keeps it complete.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::run::Settings;
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
}

/// `[node]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// Positive node id, unique in the cluster.
    pub id: u64,
    /// `ip:port` to listen on and publish to peers.
    pub addr: String,
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
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            heartbeat_ms: 150,
            election_min_ms: 1000,
            election_max_ms: 2000,
            snapshot_logs: 20_000,
            logs_to_keep: 5_000,
        }
    }
}

/// `[storage]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// RocksDB block cache shared by all column families.
    pub block_cache_bytes: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            block_cache_bytes: licstore_store::db::DEFAULT_BLOCK_CACHE_BYTES as u64,
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
        if self.node.id == 0 {
            return Err(bad("node.id", "required, a positive integer".into()));
        }
        let addr: SocketAddr = self
            .node
            .addr
            .parse()
            .map_err(|_| bad("node.addr", format!("{:?} is not ip:port", self.node.addr)))?;
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
            member_addr
                .parse::<SocketAddr>()
                .map_err(|_| bad(&key, format!("{member_addr:?} is not ip:port")))?;
            init_members.insert(id, member_addr.clone());
        }
        let r = &self.raft;
        if r.election_min_ms >= r.election_max_ms || r.heartbeat_ms >= r.election_min_ms {
            let why = "need heartbeat_ms < election_min_ms < election_max_ms".into();
            return Err(bad("raft", why));
        }
        let block_cache_bytes = usize::try_from(self.storage.block_cache_bytes)
            .map_err(|_| bad("storage.block_cache_bytes", "too large".into()))?;
        Ok(Settings {
            id: self.node.id,
            addr,
            data_dir: self.node.data_dir.clone(),
            init_members,
            heartbeat_ms: r.heartbeat_ms,
            election_min_ms: r.election_min_ms,
            election_max_ms: r.election_max_ms,
            snapshot_logs: r.snapshot_logs,
            logs_to_keep: r.logs_to_keep,
            expiry_sweep: Duration::from_millis(self.feed.expiry_sweep_ms.max(100)),
            event_retention: Duration::from_secs(self.feed.event_retention_secs),
            block_cache_bytes,
        })
    }
}

/// Parses `id=ip:port,...` (the `--init` flag) into `[cluster] initial_members`.
pub fn parse_members(spec: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for part in spec.split(',').filter(|p| !p.trim().is_empty()) {
        let (id, addr) = part
            .split_once('=')
            .ok_or_else(|| format!("--init: {part:?} is not id=ip:port"))?;
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| format!("--init: bad node id {id:?}"))?;
        let addr = addr.trim();
        addr.parse::<SocketAddr>()
            .map_err(|_| format!("--init: bad address {addr:?}"))?;
        if out.insert(id.to_string(), addr.to_string()).is_some() {
            return Err(format!("--init: node id {id} given twice"));
        }
    }
    Ok(out)
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
        let cases: [(&str, Spoil); 5] = [
            ("node.id", |c| c.node.id = 0),
            ("node.addr", |c| c.node.addr = "localhost".into()),
            ("node.data_dir", |c| c.node.data_dir = PathBuf::new()),
            ("cluster.initial_members.x", |c| {
                c.cluster
                    .initial_members
                    .insert("x".into(), "127.0.0.1:1".into());
            }),
            ("raft", |c| c.raft.heartbeat_ms = 5000),
        ];
        for (key, spoil) in cases {
            let mut c = base.clone();
            spoil(&mut c);
            let err = c.to_settings().expect_err(key).to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
    }

    #[test]
    fn member_specs() {
        let ok = parse_members("1=127.0.0.1:7001, 2=127.0.0.1:7002").expect("valid");
        assert_eq!(ok.len(), 2);
        assert_eq!(ok["2"], "127.0.0.1:7002");
        for bad in [
            "1",
            "x=127.0.0.1:1",
            "1=nowhere",
            "1=127.0.0.1:1,1=127.0.0.1:2",
        ] {
            assert!(parse_members(bad).is_err(), "{bad}");
        }
    }
}
