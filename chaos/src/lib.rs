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

pub mod check;
pub mod history;
pub mod recorder;
pub mod workload;
