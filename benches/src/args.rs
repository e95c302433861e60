//! The licbench command line, in the spirit of etcd's `benchmark` tool: connections and
//! clients, a total or a duration, open or closed loop, consistency and key distribution.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Load generator for licstore, etcd and the gRPC echo server.
#[derive(Debug, Parser)]
#[command(name = "licbench", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// licbench's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs one workload and prints (and optionally records) its figures.
    Run(RunArgs),
    /// Loads the dataset (`--records` records from `--seed`) through the bulk path.
    Load(LoadArgs),
    /// Serves the licstore API without storage: the transport ceiling.
    EchoServer(EchoArgs),
    /// Writes the Markdown report and SVG plots from recorded runs.
    Report(ReportArgs),
    /// Writes a bench seal key for every issuing office of the dataset (`OUT/<code>.key`).
    SealKeys(SealKeysArgs),
}

/// `licbench seal-keys`.
#[derive(Debug, Args)]
pub struct SealKeysArgs {
    /// Signature suite: ed25519 or sm2-sm3.
    #[arg(long, default_value = "ed25519")]
    pub suite: String,
    /// Directory for the key files (created; existing key files are not overwritten).
    #[arg(long)]
    pub out: PathBuf,
}

/// The system under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum System {
    /// A licstore cluster.
    Licstore,
    /// An etcd cluster through its KV API (needs the `etcd` feature).
    Etcd,
    /// `licbench echo-server`: the licstore API answered without storage.
    Echo,
}

/// A workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// Point verification by holder and license type.
    Verify,
    /// `--batch` verifications per call.
    VerifyBatch,
    /// Durable writes of new licenses.
    Issue,
    /// Suspensions and lifted suspensions of existing licenses.
    Status,
    /// Bulk load of new licenses, `--batch` per call.
    Import,
    /// 95% verify, 4% status change, 1% issue.
    CityDay,
    /// The dataset's bulk load (`licbench load`), as recorded; not a `run` workload.
    #[value(skip)]
    Load,
}

/// Read consistency.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Consistency {
    /// Reflects every write acknowledged before the read (leader lease or ReadIndex).
    #[value(alias = "l")]
    Linearizable,
    /// Reflects every write acknowledged `--max-staleness-ms` before the read.
    #[value(alias = "b")]
    BoundedStaleness,
    /// The local replica as it is.
    #[value(alias = "s")]
    Serializable,
}

/// How keys are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyDist {
    /// Every key equally likely.
    Uniform,
    /// Zipf with exponent `--zipf-s`: a few holders are asked for most of the time.
    Zipf,
}

/// Where the system is and how to reach it.
#[derive(Clone, Debug, Args)]
pub struct TargetArgs {
    /// The system under test.
    #[arg(long, value_enum, default_value = "licstore")]
    pub system: System,
    /// Comma-separated `host:port` of the members.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:7001")]
    pub endpoints: Vec<String>,
    /// gRPC connections (HTTP/2), spread over the endpoints.
    #[arg(long, default_value_t = 16)]
    pub conns: usize,
    /// CA certificate for TLS (licstore and echo).
    #[arg(long)]
    pub cacert: Option<PathBuf>,
    /// Client certificate for TLS.
    #[arg(long)]
    pub cert: Option<PathBuf>,
    /// Client key for TLS.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Per-call timeout in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
    /// Where writes (issue, status changes, imports) go. Reads always use every connection.
    #[arg(long, value_enum, default_value = "leader")]
    pub write_to: WriteTo,
}

/// How writes pick their connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum WriteTo {
    /// The connections to the member that leads when the run starts, as clients that route to
    /// the leader do; a follower still forwards if leadership moves. Falls back to `any` when
    /// the leader is not among the endpoints or the system cannot name it.
    Leader,
    /// Every connection, so followers forward two writes in three to the leader.
    Any,
}

/// The dataset: the same seed gives the same records on every system.
#[derive(Clone, Debug, Args)]
pub struct DataArgs {
    /// Records in the loaded dataset (the keys `verify` and `status` choose from).
    #[arg(long, default_value_t = 100_000)]
    pub records: u64,
    /// Seed of the dataset.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// `licbench run`.
#[derive(Clone, Debug, Args)]
pub struct RunArgs {
    /// The system under test.
    #[command(flatten)]
    pub target: TargetArgs,
    /// The dataset the system was loaded with.
    #[command(flatten)]
    pub data: DataArgs,
    /// The workload.
    #[arg(long, value_enum)]
    pub workload: Workload,
    /// Concurrent clients (each with one call outstanding in a closed loop).
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Stop after this many calls (all clients together); when given, the duration and the
    /// warm-up are not used.
    #[arg(long)]
    pub total: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration_secs: f64,
    /// Fixed arrival rate in calls per second over all clients (open loop); 0 means closed
    /// loop. Latency is measured from each call's intended start, so a stall shows up in it.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Read consistency of `verify` calls.
    #[arg(long, value_enum, default_value = "linearizable")]
    pub consistency: Consistency,
    /// The bound of `--consistency bounded-staleness`.
    #[arg(long, default_value_t = 1000)]
    pub max_staleness_ms: u32,
    /// How keys are chosen.
    #[arg(long, value_enum, default_value = "uniform")]
    pub key_dist: KeyDist,
    /// Zipf exponent.
    #[arg(long, default_value_t = 0.99)]
    pub zipf_s: f64,
    /// Items per call of `verify-batch` and `import`.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Licenses prepared for `status` (each client owns a share).
    #[arg(long, default_value_t = 2_000)]
    pub status_keys: usize,
    /// Seconds of unrecorded load before measuring.
    #[arg(long, default_value_t = 1.0)]
    pub warmup_secs: f64,
    /// Append the figures as one JSON line to this file.
    #[arg(long)]
    pub json_out: Option<PathBuf>,
    /// Free text recorded with the figures (e.g. the cluster's settings).
    #[arg(long, default_value = "")]
    pub label: String,
    /// Salt for the new records of `issue` and `import`, so repeated runs issue new holders.
    #[arg(long, default_value_t = 0)]
    pub run_id: u64,
    /// PIDs of the server processes, when they run on this machine: the figures then include
    /// their CPU time per item in the measured window (from `/proc/<pid>/stat`).
    #[arg(long, value_delimiter = ',')]
    pub server_pids: Vec<u32>,
}

/// `licbench load`.
#[derive(Clone, Debug, Args)]
pub struct LoadArgs {
    /// The system to load.
    #[command(flatten)]
    pub target: TargetArgs,
    /// The dataset.
    #[command(flatten)]
    pub data: DataArgs,
    /// Concurrent import calls.
    #[arg(long, default_value_t = 8)]
    pub streams: usize,
    /// Records per call.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Append the figures as one JSON line to this file.
    #[arg(long)]
    pub json_out: Option<PathBuf>,
    /// Free text recorded with the figures.
    #[arg(long, default_value = "")]
    pub label: String,
}

/// `licbench echo-server`.
#[derive(Clone, Debug, Args)]
pub struct EchoArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7301")]
    pub listen: String,
    /// Tokio worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// `licbench report`.
#[derive(Clone, Debug, Args)]
pub struct ReportArgs {
    /// JSON-lines files written by `run --json-out` and `load --json-out`.
    #[arg(long, required = true, num_args = 1..)]
    pub results: Vec<PathBuf>,
    /// Directory to write `README.md` and the SVG plots into.
    #[arg(long, default_value = "benches/report")]
    pub out: PathBuf,
    /// A Markdown file describing the machine and the settings, put at the top.
    #[arg(long)]
    pub preamble: Option<PathBuf>,
    /// A Markdown file appended as the history section.
    #[arg(long)]
    pub history: Option<PathBuf>,
}
