//! licbench, the licstore load generator, as a library: the binary (`main.rs`) parses the
//! command line and calls [`run`].
//!
//! Map:
//!
//! * [`args`]: the command line (`run`, `load`, `echo-server`, `report`, `seal-keys`).
//! * [`dataset`]: records and keys, regenerated from a seed with `licctl gen`'s generator, so
//!   every system is loaded with, and asked for, the same licenses.
//! * [`keys`]: uniform and zipfian key choice.
//! * [`target`]: one operation of each workload against a system under test: licstore (or the
//!   echo server, which speaks the same API) through [`licstore_proto`], and etcd through its
//!   KV API (feature `etcd`).
//! * [`runner`]: clients in a closed loop or at a fixed arrival rate, latency into HDR
//!   histograms measured from the intended send time.
//! * [`results`]: one run's figures, printed and appended to a JSON-lines file.
//! * [`cpu`]: the server processes' CPU time per item, when they run on this machine.
//! * [`echo`]: the no-storage gRPC server, the transport ceiling.
//! * [`report`]: the Markdown report and SVG plots from the JSON-lines files.
//! * [`seal_keys`]: bench seal keys for every issuing office, for the sealed series.
//!
//! Invariant: nothing here listens on a port but the echo server, and every connection goes to
//! `--endpoints`.

pub mod args;
pub mod cpu;
pub mod dataset;
pub mod echo;
pub mod keys;
pub mod report;
pub mod results;
pub mod runner;
pub mod seal_keys;
pub mod target;

pub use args::Cli;

/// Runs one licbench command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        args::Command::Run(a) => runner::run_workload(&a).await,
        args::Command::Load(a) => runner::load(&a).await,
        args::Command::EchoServer(a) => echo::serve(&a).await,
        args::Command::Report(a) => report::write(&a),
        args::Command::SealKeys(a) => seal_keys::write(&a),
    }
}
