//! licchaos: runs real `licstored` processes under seeded faults, records every client
//! operation with its invoke and completion times, and checks the history afterwards.
//!
//! Modules:
//! - [`history`]: what one client operation looked like (invoke, completion, outcome); the
//!   shared vocabulary of the workloads, which write histories, and the checkers, which read
//!   them.
//! - [`check`]: the checkers, pure functions from a history to a verdict.
//! - [`recorder`]: op ids and times for the workloads, and the error-to-outcome table.
//! - [`workload`]: the client workloads (register, set, import, watch) and the final read.
//! - [`net`]: one network namespace per node joined by a bridge (or loopback ports when
//!   namespaces are not available), nft partitions and packet loss inside them.
//! - [`proxy`]: userspace TCP proxies per link, for delay, blackholes and closed connections.
//! - [`cluster`]: real `licstored` processes, with their signals, wrappers and capped disks.
//! - [`tls`]: the run's CA and certificates; nodes and clients speak mutual TLS by default.
//! - [`nemesis`]: the faults, injected and healed from the run's seeded generator.
//! - [`scenario`]: what a run does (cluster, faults, timing, workload), from TOML files.
//! - [`runner`]: one run of a scenario with a seed, from an empty directory to a report.
//! - [`report`]: `report.json` / `report.md` per run and the summary over a suite.

pub mod check;
pub mod cluster;
pub mod history;
pub mod nemesis;
pub mod net;
pub mod proxy;
pub mod recorder;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod tls;
pub mod workload;
