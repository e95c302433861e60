//! One run's figures: what `licbench run` prints and appends to `--json-out`, and what the
//! report reads back.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::args::{Consistency, KeyDist, System, Workload};

/// Figures of one run (or one load).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunResult {
    /// The system under test.
    pub system: System,
    /// Free text from `--label`.
    pub label: String,
    /// The workload (`import` for a load).
    pub workload: Workload,
    /// Concurrent clients (streams for a load).
    pub clients: usize,
    /// gRPC connections.
    pub conns: usize,
    /// Read consistency.
    pub consistency: Consistency,
    /// Key choice.
    pub key_dist: KeyDist,
    /// Records loaded before the run.
    pub records: u64,
    /// Offered rate in calls per second; 0 for a closed loop.
    pub rate: f64,
    /// Items per call (verifications per batch, records per import call).
    pub items_per_call: usize,
    /// Calls that succeeded in the measured window.
    pub ok: u64,
    /// Failed calls by reason.
    pub errors: BTreeMap<String, u64>,
    /// Length of the measured window.
    pub elapsed_secs: f64,
    /// Successful calls per second.
    pub calls_per_sec: f64,
    /// Successful items per second.
    pub items_per_sec: f64,
    /// Latency percentiles of successful calls, in milliseconds.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Slowest call.
    pub max_ms: f64,
    /// Mean latency.
    pub mean_ms: f64,
    /// CPU time of the server processes per successful item in the measured window, in
    /// microseconds (`--server-pids`); `None` when not measured.
    #[serde(default)]
    pub server_cpu_us_per_item: Option<f64>,
}

/// A latency histogram in microseconds, from 1 µs to 10 minutes at 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// Percentile of a microsecond histogram, in milliseconds.
pub fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

impl RunResult {
    /// A result with every figure zero, for struct-update syntax.
    pub fn empty() -> RunResult {
        RunResult {
            system: System::Licstore,
            label: String::new(),
            workload: Workload::Verify,
            clients: 0,
            conns: 0,
            consistency: Consistency::Linearizable,
            key_dist: KeyDist::Uniform,
            records: 0,
            rate: 0.0,
            items_per_call: 1,
            ok: 0,
            errors: BTreeMap::new(),
            elapsed_secs: 0.0,
            calls_per_sec: 0.0,
            items_per_sec: 0.0,
            p50_ms: 0.0,
            p90_ms: 0.0,
            p99_ms: 0.0,
            p999_ms: 0.0,
            max_ms: 0.0,
            mean_ms: 0.0,
            server_cpu_us_per_item: None,
        }
    }

    /// Fills the latency fields from a histogram of microseconds.
    pub fn set_latency(&mut self, h: &Histogram<u64>) {
        self.p50_ms = ms(h, 0.50);
        self.p90_ms = ms(h, 0.90);
        self.p99_ms = ms(h, 0.99);
        self.p999_ms = ms(h, 0.999);
        self.max_ms = h.max() as f64 / 1000.0;
        self.mean_ms = h.mean() / 1000.0;
    }

    /// Total failed calls.
    pub fn failed(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The etcd-style summary printed after a run.
    pub fn summary(&self) -> String {
        let errors = match self.errors.is_empty() {
            true => "none".to_string(),
            false => format!("{:?}", self.errors),
        };
        format!(
            "{system:?} {workload:?} clients={clients} conns={conns} consistency={cons:?} \
             keys={dist:?} records={records}\n  \
             ok={ok} errors={errors} over {secs:.2}s\n  \
             throughput: {cps:.1} calls/s, {ips:.1} items/s\n  \
             latency ms: p50 {p50:.3}  p90 {p90:.3}  p99 {p99:.3}  p99.9 {p999:.3}  \
             max {max:.3}  mean {mean:.3}",
            system = self.system,
            workload = self.workload,
            clients = self.clients,
            conns = self.conns,
            cons = self.consistency,
            dist = self.key_dist,
            records = self.records,
            ok = self.ok,
            secs = self.elapsed_secs,
            cps = self.calls_per_sec,
            ips = self.items_per_sec,
            p50 = self.p50_ms,
            p90 = self.p90_ms,
            p99 = self.p99_ms,
            p999 = self.p999_ms,
            max = self.max_ms,
            mean = self.mean_ms,
        ) + &self.cpu_line()
    }

    fn cpu_line(&self) -> String {
        match self.server_cpu_us_per_item {
            Some(us) => format!("\n  server cpu: {us:.1} µs per item"),
            None => String::new(),
        }
    }

    /// Appends the figures as one JSON line.
    pub fn append_to(&self, path: &Path) -> anyhow::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        writeln!(f, "{}", serde_json::to_string(self)?)?;
        Ok(())
    }
}

/// Every run recorded in the JSON-lines files, in file order.
pub fn read_all(paths: &[std::path::PathBuf]) -> anyhow::Result<Vec<RunResult>> {
    let mut out = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let r = serde_json::from_str(line)
                .map_err(|e| anyhow::anyhow!("{} line {}: {e}", path.display(), i + 1))?;
            out.push(r);
        }
    }
    Ok(out)
}
