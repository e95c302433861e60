//! `licctl check perf`: a fixed load of writes for a fixed time, then PASS or FAIL against
//! stated thresholds, in the manner of `etcdctl check perf`.
//!
//! The writes are `Cluster.Probe` entries of 1 KiB: each takes the whole write path (the
//! leader's log, replication, fsync on a quorum, apply) and changes no record, so the check
//! leaves no data behind. The load is open loop: request `i` is due at `start + i / rate`, and
//! its latency counts from then, so a stalled cluster shows as latency rather than as a
//! politely slower client.

use std::sync::Arc;
use std::time::{Duration, Instant};

use licstore_proto::v1 as pb;
use licstore_proto::v1::cluster_client::ClusterClient;
use serde::Serialize;

use crate::args::{LoadArg, PerfArgs};
use crate::exit::{reported, FAILURE, UNAVAILABLE};
use crate::output::OutputFormat;
use crate::Ctx;

/// Bytes of payload per write, about the size of a license record.
pub const PAYLOAD_BYTES: usize = 1024;
/// Throughput must reach this share of the target rate.
pub const MIN_THROUGHPUT_SHARE: f64 = 0.9;
/// The slowest request may take this long, in seconds.
pub const MAX_SLOWEST_S: f64 = 0.5;
/// The 99th percentile may be this long, in seconds.
pub const MAX_P99_S: f64 = 0.1;
/// The latency standard deviation may be this large, in seconds.
pub const MAX_STDDEV_S: f64 = 0.1;

/// One load profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Load {
    /// `s`, `m`, `l` or `xl`.
    pub name: &'static str,
    /// Writes per second offered.
    pub rate_per_s: u32,
    /// Requests in flight at most.
    pub clients: u32,
}

/// The load of a `--load` value.
pub fn load(arg: LoadArg) -> Load {
    let (name, rate_per_s, clients) = match arg {
        LoadArg::S => ("s", 150, 16),
        LoadArg::M => ("m", 500, 64),
        LoadArg::L => ("l", 1500, 128),
        LoadArg::Xl => ("xl", 4000, 256),
    };
    Load {
        name,
        rate_per_s,
        clients,
    }
}

/// What the run measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Stats {
    /// Wall time of the run, in seconds.
    pub elapsed_s: f64,
    /// Writes acknowledged.
    pub ok: u64,
    /// Writes that failed.
    pub failed: u64,
    /// Latency of acknowledged writes from their due time: median, 99th percentile, slowest
    /// and standard deviation, in seconds.
    pub p50_s: f64,
    pub p99_s: f64,
    pub slowest_s: f64,
    pub stddev_s: f64,
}

impl Stats {
    /// Summarises the latencies (seconds) of acknowledged writes.
    pub fn from_latencies(mut latencies_s: Vec<f64>, failed: u64, elapsed_s: f64) -> Stats {
        latencies_s.sort_by(f64::total_cmp);
        let n = latencies_s.len();
        let at = |q: f64| match n {
            0 => 0.0,
            _ => latencies_s[((n as f64 * q).ceil() as usize).clamp(1, n) - 1],
        };
        // Folds from +0.0: an empty `sum` of floats is -0.0, which prints as "-0.000".
        let mean = latencies_s.iter().fold(0.0, |a, b| a + b) / n.max(1) as f64;
        let squares = latencies_s.iter().map(|l| (l - mean).powi(2));
        let variance = squares.fold(0.0, |a, b| a + b) / n.max(1) as f64;
        Stats {
            elapsed_s,
            ok: n as u64,
            failed,
            p50_s: at(0.5),
            p99_s: at(0.99),
            slowest_s: latencies_s.last().copied().unwrap_or(0.0),
            stddev_s: variance.sqrt(),
        }
    }

    /// Acknowledged writes per second.
    pub fn throughput_per_s(&self) -> f64 {
        if self.elapsed_s > 0.0 {
            self.ok as f64 / self.elapsed_s
        } else {
            0.0
        }
    }
}

/// One verdict line.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verdict {
    pub pass: bool,
    pub text: String,
}

/// The verdict lines for a run; the check passes when all do.
pub fn judge(load: &Load, s: &Stats) -> Vec<Verdict> {
    let floor = f64::from(load.rate_per_s) * MIN_THROUGHPUT_SHARE;
    let throughput = s.throughput_per_s();
    // Latency lines judge acknowledged writes; with none, there is nothing that passed.
    let measured = s.ok > 0;
    let line = |pass: bool, text: String| Verdict {
        pass: pass && (measured || text.contains("failed")),
        text,
    };
    vec![
        line(
            throughput >= floor,
            format!("Throughput is {throughput:.0} writes/s (at least {floor:.0})"),
        ),
        line(
            s.slowest_s <= MAX_SLOWEST_S,
            format!(
                "Slowest request took {:.3} s (at most {MAX_SLOWEST_S} s)",
                s.slowest_s
            ),
        ),
        line(
            s.p99_s <= MAX_P99_S,
            format!(
                "99th percentile is {:.3} s (at most {MAX_P99_S} s)",
                s.p99_s
            ),
        ),
        line(
            s.stddev_s <= MAX_STDDEV_S,
            format!("Stddev is {:.3} s (at most {MAX_STDDEV_S} s)", s.stddev_s),
        ),
        line(
            s.failed == 0,
            format!("{} requests failed (none may)", s.failed),
        ),
    ]
}

/// What `licctl check perf` reports.
#[derive(Clone, Debug, Serialize)]
pub struct PerfReport {
    pub load: Load,
    pub target: String,
    pub stats: Stats,
    pub verdicts: Vec<Verdict>,
    pub pass: bool,
}

/// `licctl check perf`.
pub async fn run(ctx: &Ctx, args: PerfArgs) -> anyhow::Result<()> {
    let load = load(args.load);
    let target = crate::waits::leader_address(ctx)
        .await
        .or_else(|| ctx.endpoints.first().cloned())
        .ok_or_else(|| crate::exit::usage("no endpoints"))?;
    let duration = Duration::from_secs(args.duration_s.max(1));
    if ctx.output == OutputFormat::Table {
        println!(
            "check perf: load {}: {} writes/s of {PAYLOAD_BYTES} bytes, at most {} in flight, \
             for {} s, to {target}",
            load.name,
            load.rate_per_s,
            load.clients,
            duration.as_secs()
        );
    }
    let client = ctx.client_for(std::slice::from_ref(&target), Duration::from_secs(10))?;
    let stats = drive(client.channel_at(0), &load, duration).await;
    let verdicts = judge(&load, &stats);
    let pass = verdicts.iter().all(|v| v.pass);
    let report = PerfReport {
        load,
        target,
        stats,
        verdicts,
        pass,
    };
    print(ctx.output, &report)?;
    if report.stats.ok == 0 && report.stats.failed > 0 {
        return Err(reported(
            UNAVAILABLE,
            "check perf: no write was acknowledged",
        ));
    }
    if pass {
        Ok(())
    } else {
        Err(reported(FAILURE, "check perf: FAIL"))
    }
}

fn print(format: OutputFormat, report: &PerfReport) -> anyhow::Result<()> {
    if format == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    let s = &report.stats;
    println!(
        "{} acknowledged, {} failed in {:.1} s; p50 {:.4} s, p99 {:.4} s, slowest {:.4} s",
        s.ok, s.failed, s.elapsed_s, s.p50_s, s.p99_s, s.slowest_s
    );
    for v in &report.verdicts {
        println!("{}: {}", if v.pass { "PASS" } else { "FAIL" }, v.text);
    }
    println!("{}", if report.pass { "PASS" } else { "FAIL" });
    Ok(())
}

/// Offers the load for `duration` and gathers what came back.
async fn drive(channel: licstore_client::Transport, load: &Load, duration: Duration) -> Stats {
    let total = u64::from(load.rate_per_s) * duration.as_secs();
    let gap = Duration::from_secs_f64(1.0 / f64::from(load.rate_per_s));
    let slots = Arc::new(tokio::sync::Semaphore::new(load.clients as usize));
    let payload = vec![0x5a_u8; PAYLOAD_BYTES];
    let mut calls = tokio::task::JoinSet::new();
    let start = Instant::now();
    for i in 0..total {
        let due = start + gap.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let mut cluster = ClusterClient::new(channel.clone());
        let request = pb::ProbeRequest {
            payload: payload.clone(),
        };
        calls.spawn(async move {
            let result = cluster.probe(request).await;
            drop(slot);
            result.is_ok().then(|| due.elapsed().as_secs_f64())
        });
    }
    let mut latencies_s = Vec::with_capacity(total as usize);
    let mut failed = 0;
    while let Some(joined) = calls.join_next().await {
        match joined {
            Ok(Some(latency)) => latencies_s.push(latency),
            _ => failed += 1,
        }
    }
    Stats::from_latencies(latencies_s, failed, start.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(ok: u64, failed: u64, elapsed_s: f64, p99_s: f64, slowest_s: f64) -> Stats {
        Stats {
            elapsed_s,
            ok,
            failed,
            p50_s: p99_s / 2.0,
            p99_s,
            slowest_s,
            stddev_s: p99_s / 4.0,
        }
    }

    #[test]
    fn verdicts_follow_the_thresholds() {
        let s = load(LoadArg::S);
        // (stats, which verdict lines pass)
        let cases = [
            (
                stats(9000, 0, 60.0, 0.01, 0.05),
                [true, true, true, true, true],
            ),
            (
                stats(8000, 0, 60.0, 0.01, 0.05),
                [false, true, true, true, true],
            ),
            (
                stats(9000, 0, 60.0, 0.01, 0.6),
                [true, false, true, true, true],
            ),
            (
                stats(9000, 0, 60.0, 0.2, 0.3),
                [true, true, false, true, true],
            ),
            (
                stats(9000, 1, 60.0, 0.01, 0.05),
                [true, true, true, true, false],
            ),
            (
                stats(0, 0, 0.0, 0.0, 0.0),
                [false, false, false, false, true],
            ),
            (
                stats(0, 300, 2.0, 0.0, 0.0),
                [false, false, false, false, false],
            ),
        ];
        for (st, want) in cases {
            let got: Vec<bool> = judge(&s, &st).iter().map(|v| v.pass).collect();
            assert_eq!(got, want, "{st:?}");
        }
    }

    #[test]
    fn latency_summaries() {
        let s = Stats::from_latencies((1..=100).map(|i| i as f64 / 1000.0).collect(), 2, 2.0);
        assert_eq!(s.ok, 100);
        assert_eq!(s.failed, 2);
        assert_eq!(s.p50_s, 0.05);
        assert_eq!(s.p99_s, 0.099);
        assert_eq!(s.slowest_s, 0.1);
        assert!((s.stddev_s - 0.028866).abs() < 1e-5, "{}", s.stddev_s);
        assert_eq!(s.throughput_per_s(), 50.0);
        let empty = Stats::from_latencies(Vec::new(), 0, 1.0);
        assert_eq!((empty.ok, empty.p99_s, empty.slowest_s), (0, 0.0, 0.0));
        assert!(empty.stddev_s.is_sign_positive(), "no negative zero");
    }
}
