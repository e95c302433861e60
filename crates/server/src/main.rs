//! `licstored`: a licstore node.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use licstore_server::{serve, Settings};
use tracing_subscriber::EnvFilter;

/// A node of a licstore cluster.
#[derive(Parser, Debug)]
#[command(name = "licstored", version, about)]
struct Args {
    /// Node id, a positive integer unique in the cluster.
    #[arg(long, env = "LICSTORE_ID")]
    id: u64,
    /// Address to listen on and publish to peers, `ip:port`.
    #[arg(long, env = "LICSTORE_ADDR")]
    addr: SocketAddr,
    /// Data directory (RocksDB and snapshots).
    #[arg(long, env = "LICSTORE_DATA_DIR")]
    data_dir: PathBuf,
    /// Initialise a new cluster with these members, `id=ip:port,...`; ignored once initialised.
    #[arg(long, env = "LICSTORE_INIT")]
    init: Option<String>,
    /// Raft heartbeat interval in milliseconds.
    #[arg(long, default_value_t = 150)]
    heartbeat_ms: u64,
    /// Minimum election timeout in milliseconds.
    #[arg(long, default_value_t = 1000)]
    election_min_ms: u64,
    /// Maximum election timeout in milliseconds.
    #[arg(long, default_value_t = 2000)]
    election_max_ms: u64,
    /// Log entries between snapshots.
    #[arg(long, default_value_t = 20_000)]
    snapshot_logs: u64,
    /// Log entries kept behind a snapshot for lagging followers.
    #[arg(long, default_value_t = 5_000)]
    logs_to_keep: u64,
    /// Milliseconds between the leader's sweeps for licenses whose validity has ended.
    #[arg(long, default_value_t = 60_000)]
    expiry_sweep_ms: u64,
    /// Seconds of change-feed history kept before the leader compacts it; 0 keeps everything.
    #[arg(long, default_value_t = 3 * 24 * 3600)]
    event_retention_secs: u64,
    /// Log as JSON lines instead of human-readable text.
    #[arg(long)]
    log_json: bool,
}

fn parse_members(spec: &str) -> Result<BTreeMap<u64, String>, String> {
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
        if out.insert(id, addr.to_string()).is_some() {
            return Err(format!("--init: node id {id} given twice"));
        }
    }
    Ok(out)
}

fn init_tracing(json: bool) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,openraft=warn,h2=warn,tower=warn"));
    // Colours only on a terminal: log files stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    init_tracing(args.log_json);
    let init_members = match args.init.as_deref().map(parse_members).transpose() {
        Ok(m) => m.unwrap_or_default(),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let settings = Settings {
        id: args.id,
        addr: args.addr,
        data_dir: args.data_dir,
        init_members,
        heartbeat_ms: args.heartbeat_ms,
        election_min_ms: args.election_min_ms,
        election_max_ms: args.election_max_ms,
        snapshot_logs: args.snapshot_logs,
        logs_to_keep: args.logs_to_keep,
        expiry_sweep: std::time::Duration::from_millis(args.expiry_sweep_ms.max(100)),
        event_retention: std::time::Duration::from_secs(args.event_retention_secs),
    };
    match serve(settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "licstored failed");
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_members;

    #[test]
    fn member_specs() {
        let ok = parse_members("1=127.0.0.1:7001, 2=127.0.0.1:7002").expect("valid");
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[&2], "127.0.0.1:7002");
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
