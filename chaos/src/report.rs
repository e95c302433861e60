//! Reports: `report.json` (everything a run measured, serde) and `report.md` (for a person)
//! per run, and `summary.md` / `summary.json` over the scenarios of a suite.
//!
//! Rendering is pure ([`render_run`], [`render_summary`]); [`write_run`] and
//! [`write_summary`] only write the rendered text. A PASS states that no violation was
//! observed in this run, never that there is none: every report says so.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Serialize;

use crate::check::Verdict;
use crate::cluster::Convergence;
use crate::nemesis::FaultRecord;
use crate::runner::analysis::{
    Checks, LostWriteContext, NodeCheck, OpCounts, PhaseFigures, Recovery,
};
use crate::runner::monitor::Availability;
use crate::runner::schedule::Derived;
use crate::scenario::{Expect, Scenario};

/// What PASS means, printed in every report.
pub const PASS_MEANS: &str = "PASS means no violation was observed in this run, not that \
     there is none: a run samples some interleavings of some faults; other seeds, longer runs \
     and other faults may find what this one did not.";

/// A node process that ended on its own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExitEvent {
    pub node: u64,
    pub status: String,
    pub at_ns: u64,
    /// Whether the runner started it again.
    pub restarted: bool,
}

/// The final read, in short.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FinalReadSummary {
    pub nodes: Vec<u64>,
    pub keys: u64,
    pub unread: u64,
    /// Per node read from, keys it did not answer.
    pub unread_by_node: std::collections::BTreeMap<u64, u64>,
    /// (node, key, last error) of the first unread keys.
    pub unread_examples: Vec<(u64, String, String)>,
}

/// Everything one run measured.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub scenario: Scenario,
    pub seed: u64,
    pub derived: Derived,
    /// The command that runs this again.
    pub replay: String,
    pub verdict: Verdict,
    pub expect: Expect,
    pub as_expected: bool,
    pub pass_means: String,
    pub commit: Option<String>,
    pub binary: String,
    pub net_mode: String,
    pub started_unix_s: u64,
    pub wall_ms: u64,
    /// before / during / after.
    pub phases: Vec<PhaseFigures>,
    pub ops: Vec<OpCounts>,
    pub faults: Vec<FaultRecord>,
    /// Ops invoked while each applied fault was in effect.
    pub fault_windows: Vec<PhaseFigures>,
    /// Per applied fault: ms without a leader while it lasted, and in the 5 s after its
    /// heal (a healed node that deposes a working leader shows here).
    pub fault_no_leader_ms: Vec<(f64, f64)>,
    pub nemesis_errors: Vec<String>,
    pub exits: Vec<ExitEvent>,
    pub availability: Availability,
    pub recovery: Recovery,
    pub leader_after: Result<u64, String>,
    pub convergence: Convergence,
    pub node_checks: Vec<NodeCheck>,
    pub final_read: FinalReadSummary,
    pub checks: Checks,
    pub lost_writes: Vec<LostWriteContext>,
    pub run_dir: PathBuf,
    /// Node logs and data, kept on failure or with `--keep`.
    pub cluster_dir: Option<PathBuf>,
    /// The nodes the clients and watchers address (the initial voters).
    pub client_nodes: Vec<u64>,
}

impl RunReport {
    /// Ops of every kind together.
    pub fn all_ops(&self) -> OpCounts {
        self.ops
            .iter()
            .find(|o| o.kind == "all")
            .cloned()
            .unwrap_or_default()
    }

    fn phase_rate(&self, name: &str) -> f64 {
        self.phases
            .iter()
            .find(|p| p.stats.name == name)
            .map_or(0.0, |p| p.stats.ok_per_s)
    }
}

/// Writes `report.json` and `report.md` into the run directory; their paths.
pub fn write_run(report: &RunReport) -> anyhow::Result<(PathBuf, PathBuf)> {
    let json = report.run_dir.join("report.json");
    let md = report.run_dir.join("report.md");
    let text = serde_json::to_string_pretty(report).context("report to JSON")?;
    std::fs::write(&json, text).with_context(|| json.display().to_string())?;
    std::fs::write(&md, render_run(report)).with_context(|| md.display().to_string())?;
    Ok((json, md))
}

/// `report.md`.
pub fn render_run(r: &RunReport) -> String {
    let mut out = String::new();
    header(&mut out, r);
    run_section(&mut out, r);
    timeline_section(&mut out, r);
    ops_section(&mut out, r);
    availability_section(&mut out, r);
    durability_section(&mut out, r);
    linear_section(&mut out, r);
    watch_section(&mut out, r);
    convergence_section(&mut out, r);
    files_section(&mut out, r);
    out
}

fn header(out: &mut String, r: &RunReport) {
    let got = r.verdict.label();
    let mark = if r.as_expected {
        "as expected"
    } else {
        "NOT as expected"
    };
    let _ = writeln!(
        out,
        "# licchaos: {} seed {}: {got} (expected {}, {mark})\n",
        r.scenario.name,
        r.seed,
        r.expect.label()
    );
    let _ = writeln!(out, "{}\n", r.scenario.description);
    let _ = writeln!(out, "Replay: `{}`\n", r.replay);
    let _ = writeln!(out, "_{PASS_MEANS}_\n");
    let reasons = match &r.verdict {
        Verdict::Pass => Vec::new(),
        Verdict::Fail { reasons } | Verdict::Unknown { reasons } => reasons.clone(),
    };
    if !reasons.is_empty() {
        let _ = writeln!(out, "Reasons:\n");
        for reason in reasons {
            let _ = writeln!(out, "- {reason}");
        }
        out.push('\n');
    }
}

fn run_section(out: &mut String, r: &RunReport) {
    let s = &r.scenario;
    let w = &s.workload;
    let _ = writeln!(out, "## Run\n");
    let rows = [
        (
            "commit",
            r.commit.clone().unwrap_or_else(|| "unknown".into()),
        ),
        ("binary", format!("{} env {:?}", r.binary, s.server.env)),
        ("network", r.net_mode.clone()),
        (
            "transport",
            match s.cluster.tls {
                true => "mutual TLS, access control on (the run's own CA)".into(),
                false => "plain text (--insecure)".to_string(),
            },
        ),
        (
            "nodes",
            format!(
                "{} voters + {} spare slots; heartbeat {} ms, election {}..{} ms",
                s.cluster.voters,
                s.cluster.spare_slots,
                s.cluster.heartbeat_ms,
                s.cluster.election_min_ms,
                s.cluster.election_max_ms
            ),
        ),
        (
            "phases",
            format!(
                "before {} ms, during {} ms, after {} ms; wall time {:.1} s",
                s.phases.before_ms,
                s.phases.during_ms,
                s.phases.after_ms,
                r.wall_ms as f64 / 1e3
            ),
        ),
        (
            "clients",
            format!(
                "register {} x {} keys, set {}, import {} per {} ms, watchers {}",
                w.register_clients,
                w.register_keys,
                w.set_clients,
                w.import_records,
                w.import_every_ms,
                w.watchers
            ),
        ),
        (
            "seeds",
            format!(
                "register {} set {} import {} net {} nemesis {}",
                r.derived.register_seed,
                r.derived.set_seed,
                r.derived.import_seed,
                r.derived.net_seed,
                r.derived.nemesis_seed
            ),
        ),
    ];
    let _ = writeln!(out, "| | |\n|---|---|");
    for (k, v) in rows {
        let _ = writeln!(out, "| {k} | {} |", cell(&v));
    }
    out.push('\n');
}

fn timeline_section(out: &mut String, r: &RunReport) {
    let _ = writeln!(out, "## Fault timeline\n");
    if r.faults.is_empty() && r.nemesis_errors.is_empty() {
        let _ = writeln!(out, "No fault was injected.\n");
    }
    if !r.faults.is_empty() {
        let _ = writeln!(
            out,
            "| # | fault | targets | what | start s | injected s | healed s | ok/fail/unknown \
             during | no leader ms during / 5 s after | heal |\n\
             |---|---|---|---|---|---|---|---|---|---|"
        );
    }
    let mut windows = r.fault_windows.iter().zip(&r.fault_no_leader_ms);
    for (i, f) in r.faults.iter().enumerate() {
        let (during, gaps) = match f.skipped {
            Some(_) => ("skipped".to_string(), "-".to_string()),
            None => windows.next().map_or_else(Default::default, |(w, (d, a))| {
                let ops = format!("{}/{}/{}", w.stats.ok, w.stats.fail, w.stats.unknown);
                (ops, format!("{d:.0} / {a:.0}"))
            }),
        };
        let what = match &f.skipped {
            Some(why) => format!("skipped: {why}"),
            None => f.detail.clone(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {:?} | {} | {:.2} | {:.2} | {} | {during} | {gaps} | {} |",
            i + 1,
            f.kind,
            f.targets,
            cell(&what),
            secs(f.start_ns),
            secs(f.injected_ns),
            f.stop_ns.map_or("-".into(), |s| format!("{:.2}", secs(s))),
            cell(f.heal_detail.as_deref().unwrap_or("-"))
        );
    }
    for e in &r.nemesis_errors {
        let _ = writeln!(out, "- nemesis error: {}", cell(e));
    }
    for e in &r.exits {
        let _ = writeln!(
            out,
            "- node {} exited on its own at {:.2} s ({}); restarted: {}",
            e.node,
            secs(e.at_ns),
            e.status,
            e.restarted
        );
    }
    out.push('\n');
}

fn ops_section(out: &mut String, r: &RunReport) {
    let _ = writeln!(out, "## Operations\n");
    let _ = writeln!(
        out,
        "| kind | attempted | ok | failed | unknown |\n|---|---|---|---|---|"
    );
    for o in &r.ops {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            o.kind, o.attempted, o.ok, o.fail, o.unknown
        );
    }
    let _ = writeln!(
        out,
        "\n| phase | window s | attempted | ok | failed | unknown | ok-rate | ok/s | p50 ms | \
         p99 ms | p99.9 ms |\n|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for p in &r.phases {
        let s = &p.stats;
        let _ = writeln!(
            out,
            "| {} | {:.1}-{:.1} | {} | {} | {} | {} | {:.1}% | {:.1} | {:.1} | {:.1} | {:.1} |",
            s.name,
            secs(s.start_ns),
            secs(s.end_ns),
            p.attempted,
            s.ok,
            s.fail,
            s.unknown,
            p.ok_rate * 100.0,
            s.ok_per_s,
            p.latency.p50_ms,
            p.latency.p99_ms,
            p.latency.p999_ms
        );
    }
    out.push('\n');
}

fn availability_section(out: &mut String, r: &RunReport) {
    let a = &r.availability;
    let rec = &r.recovery;
    let _ = writeln!(out, "## Availability\n");
    let by_phase: Vec<String> = a
        .no_leader_by_phase_ms
        .iter()
        .map(|(n, ms)| format!("{n} {ms:.0} ms"))
        .collect();
    let _ = writeln!(
        out,
        "- time without a leader agreed by a majority: {:.0} ms (longest window {:.0} ms; \
         {}), from {} polls",
        a.no_leader_ms,
        a.longest_no_leader_ms,
        by_phase.join(", "),
        a.samples
    );
    let _ = writeln!(
        out,
        "- elections (term changes): {} (term {} -> {})",
        a.elections, a.first_term, a.last_term
    );
    if let Some(heal_ns) = rec.last_heal_ns {
        let _ = writeln!(
            out,
            "- recovery after the last heal ({:.2} s): first ok write {}, first ok \
             linearizable read {}",
            secs(heal_ns),
            opt_ms(rec.first_ok_write_ms),
            opt_ms(rec.first_ok_read_ms)
        );
    } else {
        let _ = writeln!(out, "- recovery: no fault was healed in this run");
    }
    let leader = match &r.leader_after {
        Ok(l) => format!("node {l}"),
        Err(e) => format!("none ({e})"),
    };
    let _ = writeln!(out, "- leader after healing: {leader}");
    if r.final_read.nodes != r.client_nodes {
        let _ = writeln!(
            out,
            "- note: the clients address the initial voters {:?} for the whole run; the live \
             members at the end are {:?}, so requests to nodes that left fail (connection \
             refused) and the ok/s after membership changes understates the cluster",
            r.client_nodes, r.final_read.nodes
        );
    }
    out.push('\n');
}

fn durability_section(out: &mut String, r: &RunReport) {
    let l = &r.checks.lost;
    let acked = r
        .ops
        .iter()
        .filter(|o| o.kind == "create" || o.kind == "write")
        .map(|o| o.ok)
        .sum::<u64>();
    let _ = writeln!(out, "## Durability and reads\n");
    let _ = writeln!(
        out,
        "- acknowledged writes: {acked}; **acknowledged but lost: {}** of them",
        l.lost_writes.count
    );
    for c in r.lost_writes.iter().take(20) {
        let _ = writeln!(
            out,
            "  - op {} on {} invoked at {:.3} s{}",
            c.op_id,
            c.key,
            secs(c.invoke_ns),
            c.fault
                .as_ref()
                .map_or(String::new(), |f| format!(" ({f})"))
        );
    }
    let u = &l.unknown_writes;
    let _ = writeln!(
        out,
        "- unknown writes: {} recovered (final value), {} read later, {} never seen",
        u.recovered, u.read_later, u.never_seen
    );
    let _ = writeln!(
        out,
        "- stale reads: {} (worst {:.3} ms behind; ops {:?})",
        l.stale_reads.count,
        l.stale_reads.worst_staleness_ms,
        l.stale_reads.op_ids.iter().take(10).collect::<Vec<_>>()
    );
    let _ = writeln!(
        out,
        "- reads of values never written: {}; final values never written: {}; keys \
         diverging between nodes: {}; revisions going backwards: {}; keys not read after \
         healing: {}\n",
        l.phantom_reads.count,
        l.phantom_finals.count,
        l.divergent_keys.count,
        l.revision_regressions.count,
        l.keys_not_read.count
    );
}

fn linear_section(out: &mut String, r: &RunReport) {
    let s = &r.checks.linear.summary;
    let _ = writeln!(out, "## Linearizability (per key)\n");
    let _ = writeln!(
        out,
        "- keys checked {}: valid {}, **invalid {}**, unknown {}; ops checked {}, dropped {}, \
         malformed {}; {} ms",
        s.keys_checked,
        s.valid,
        s.invalid,
        s.unknown,
        s.ops_checked,
        s.ops_dropped,
        s.malformed_ops,
        s.elapsed_ms
    );
    let invalid = r
        .checks
        .linear
        .keys
        .iter()
        .filter_map(|k| match &k.verdict {
            crate::check::KeyVerdict::Invalid(v) => Some((k, v)),
            _ => None,
        });
    for (k, v) in invalid.take(3) {
        let _ = writeln!(
            out,
            "- key {} ({} ops): stuck at op {}, longest linearizable prefix {} ops, value \
             then {:?}; window:",
            k.key, k.ops, v.stuck_op_id, v.prefix_len, v.value_after_prefix
        );
        for line in v.window.iter().take(12) {
            let _ = writeln!(out, "  - `{line}`");
        }
    }
    out.push('\n');
}

fn watch_section(out: &mut String, r: &RunReport) {
    let _ = writeln!(out, "## Watch streams\n");
    let Some(w) = &r.checks.watch else {
        let _ = writeln!(out, "No watchers in this run.\n");
        return;
    };
    let _ = writeln!(
        out,
        "- streams {}, events delivered {}, true events {}; violations: ordered {}, unique \
         {}, reliable (missing) {}, resumable {}, agreement {}\n",
        w.streams,
        w.events,
        w.true_events,
        w.ordered.count,
        w.unique.count,
        w.reliable.count,
        w.resumable.count,
        w.agreement.count
    );
}

fn convergence_section(out: &mut String, r: &RunReport) {
    let c = &r.convergence;
    let _ = writeln!(out, "## Convergence and index checks\n");
    let _ = writeln!(
        out,
        "- converged: {} (waited {} ms)",
        c.converged, c.waited_ms
    );
    let _ = writeln!(
        out,
        "\n| node | applied | digest | records | Check problems | checked records / \
         index entries / events |\n|---|---|---|---|---|---|"
    );
    for (id, d) in &c.nodes {
        let check = r.node_checks.iter().find(|n| n.node == *id);
        let problems = check.map_or("-".into(), |n| match &n.error {
            Some(e) => format!("no answer: {e}"),
            None => n.problem_count.to_string(),
        });
        let checked = check.map_or("-".into(), |n| {
            format!(
                "{} / {} / {}",
                n.records_checked, n.index_entries_checked, n.events_checked
            )
        });
        let (applied, digest, records) = match d {
            Some(d) => (
                d.applied_index.to_string(),
                d.digest.get(..16).unwrap_or(&d.digest).to_string(),
                d.records.to_string(),
            ),
            None => ("-".into(), "silent".into(), "-".into()),
        };
        let _ = writeln!(
            out,
            "| {id} | {applied} | {digest} | {records} | {} | {checked} |",
            cell(&problems)
        );
    }
    let f = &r.final_read;
    let _ = writeln!(
        out,
        "\n- final read of {} keys through nodes {:?}; not read, per node: {:?}\n",
        f.keys, f.nodes, f.unread_by_node
    );
}

fn files_section(out: &mut String, r: &RunReport) {
    let _ = writeln!(out, "## Files\n");
    let _ = writeln!(
        out,
        "- run directory: `{}` (history.jsonl, final.json, watch.json, report.json)",
        r.run_dir.display()
    );
    match &r.cluster_dir {
        Some(d) => {
            let _ = writeln!(out, "- node logs and data kept in `{}`", d.display());
        }
        None => {
            let _ = writeln!(
                out,
                "- node logs and data removed (PASS; `--keep` keeps them)"
            );
        }
    }
    let _ = writeln!(
        out,
        "- re-run the checkers: `licchaos check {0}/history.jsonl --final {0}/final.json \
         --watch {0}/watch.json`",
        r.run_dir.display()
    );
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

fn opt_ms(v: Option<f64>) -> String {
    v.map_or("none in the run".into(), |ms| format!("{ms:.0} ms"))
}

/// One row of the suite summary.
#[derive(Clone, Debug, Serialize)]
pub struct SummaryRow {
    pub scenario: String,
    pub seed: u64,
    pub expect: Expect,
    /// PASS, FAIL, UNKNOWN, or ERROR when the run could not be carried out.
    pub got: String,
    pub as_expected: bool,
    pub ops: OpCounts,
    pub lost_writes: u64,
    pub lost_write_ids: Vec<u64>,
    pub stale_reads: u64,
    pub keys_valid: u64,
    pub keys_invalid: u64,
    pub keys_unknown: u64,
    pub watch_violations: u64,
    pub no_leader_ms: f64,
    pub recovery_write_ms: Option<f64>,
    pub ok_per_s: [f64; 3],
    pub reasons: Vec<String>,
    pub replay: String,
    pub report: Option<PathBuf>,
    pub wall_ms: u64,
}

impl SummaryRow {
    /// The row of a finished run.
    pub fn of(r: &RunReport) -> SummaryRow {
        let l = &r.checks.linear.summary;
        let reasons = match &r.verdict {
            Verdict::Pass => Vec::new(),
            Verdict::Fail { reasons } | Verdict::Unknown { reasons } => reasons.clone(),
        };
        SummaryRow {
            scenario: r.scenario.name.clone(),
            seed: r.seed,
            expect: r.expect,
            got: r.verdict.label().into(),
            as_expected: r.as_expected,
            ops: r.all_ops(),
            lost_writes: r.checks.lost.lost_writes.count,
            lost_write_ids: r.lost_writes.iter().map(|c| c.op_id).take(10).collect(),
            stale_reads: r.checks.lost.stale_reads.count,
            keys_valid: l.valid,
            keys_invalid: l.invalid,
            keys_unknown: l.unknown,
            watch_violations: r.checks.watch.as_ref().map_or(0, |w| w.violations()),
            no_leader_ms: r.availability.no_leader_ms,
            recovery_write_ms: r.recovery.first_ok_write_ms,
            ok_per_s: [
                r.phase_rate("before"),
                r.phase_rate("during"),
                r.phase_rate("after"),
            ],
            reasons,
            replay: r.replay.clone(),
            report: Some(r.run_dir.join("report.md")),
            wall_ms: r.wall_ms,
        }
    }

    /// The row of a run that could not be carried out.
    pub fn error(scenario: &Scenario, seed: u64, replay: String, error: String) -> SummaryRow {
        SummaryRow {
            scenario: scenario.name.clone(),
            seed,
            expect: scenario.expect,
            got: "ERROR".into(),
            as_expected: false,
            ops: OpCounts::default(),
            lost_writes: 0,
            lost_write_ids: Vec::new(),
            stale_reads: 0,
            keys_valid: 0,
            keys_invalid: 0,
            keys_unknown: 0,
            watch_violations: 0,
            no_leader_ms: 0.0,
            recovery_write_ms: None,
            ok_per_s: [0.0; 3],
            reasons: vec![error],
            replay,
            report: None,
            wall_ms: 0,
        }
    }
}

/// `summary.md`: the table, then each scenario's reasons, fault timeline pointer and replay.
pub fn render_summary(rows: &[SummaryRow], timelines: &[(String, Vec<String>)]) -> String {
    let mut out = String::new();
    let good = rows.iter().filter(|r| r.as_expected).count();
    let _ = writeln!(
        out,
        "# licchaos suite: {good} of {} scenarios as expected\n",
        rows.len()
    );
    let _ = writeln!(out, "_{PASS_MEANS}_\n");
    let _ = writeln!(
        out,
        "| scenario | seed | expected | got | ops attempted/ok/failed/unknown | lost writes \
         (ids) | stale reads | linearizable keys valid/invalid/unknown | watch violations | \
         no leader ms | recovery ms | ok/s before/during/after |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for r in rows {
        let mark = if r.as_expected { "" } else { " ✗" };
        let _ = writeln!(
            out,
            "| {} | {} | {} | **{}**{mark} | {}/{}/{}/{} | {} {:?} | {} | {}/{}/{} | {} | {:.0} \
             | {} | {:.1}/{:.1}/{:.1} |",
            r.scenario,
            r.seed,
            r.expect.label(),
            r.got,
            r.ops.attempted,
            r.ops.ok,
            r.ops.fail,
            r.ops.unknown,
            r.lost_writes,
            r.lost_write_ids,
            r.stale_reads,
            r.keys_valid,
            r.keys_invalid,
            r.keys_unknown,
            r.watch_violations,
            r.no_leader_ms,
            r.recovery_write_ms
                .map_or("-".into(), |ms| format!("{ms:.0}")),
            r.ok_per_s[0],
            r.ok_per_s[1],
            r.ok_per_s[2]
        );
    }
    out.push('\n');
    for r in rows {
        let _ = writeln!(out, "## {} (seed {}): {}\n", r.scenario, r.seed, r.got);
        let _ = writeln!(out, "Replay: `{}`\n", r.replay);
        if let Some(p) = &r.report {
            let _ = writeln!(out, "Report: `{}`\n", p.display());
        }
        for reason in &r.reasons {
            let _ = writeln!(out, "- {}", cell(reason));
        }
        if !r.reasons.is_empty() {
            out.push('\n');
        }
        let faults = timelines.iter().find(|(name, _)| *name == r.scenario);
        if let Some((_, lines)) = faults.filter(|(_, l)| !l.is_empty()) {
            let _ = writeln!(out, "Fault timeline:\n");
            for l in lines {
                let _ = writeln!(out, "- {}", cell(l));
            }
        }
        out.push('\n');
    }
    out
}

/// One line per fault of a run, for the summary.
pub fn timeline_lines(r: &RunReport) -> Vec<String> {
    r.faults
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let what = f
                .skipped
                .as_ref()
                .map_or(f.detail.clone(), |why| format!("skipped: {why}"));
            let healed = f.stop_ns.map_or("-".into(), |s| format!("{:.2}", secs(s)));
            format!(
                "#{} {:.2}-{healed} s {} {:?}: {what}",
                i + 1,
                secs(f.start_ns),
                f.kind,
                f.targets
            )
        })
        .collect()
}

/// Writes `summary.md` and `summary.json` into `dir`; the markdown path.
pub fn write_summary(
    dir: &Path,
    rows: &[SummaryRow],
    timelines: &[(String, Vec<String>)],
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
    let md = dir.join("summary.md");
    std::fs::write(&md, render_summary(rows, timelines)).context("summary.md")?;
    let json = serde_json::to_string_pretty(rows).context("summary to JSON")?;
    std::fs::write(dir.join("summary.json"), json).context("summary.json")?;
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_marks_unexpected_results_and_says_what_pass_means() {
        let s = Scenario::find("kill-leader").expect("scenario");
        let row = SummaryRow::error(
            &s,
            7,
            "licchaos run --scenario kill-leader --seed 7".into(),
            "boom".into(),
        );
        let text = render_summary(&[row], &[]);
        assert!(text.contains("0 of 1 scenarios as expected"), "{text}");
        assert!(text.contains("**ERROR** ✗"), "{text}");
        assert!(text.contains("--seed 7"), "{text}");
        assert!(text.contains("not that there is none"), "{text}");
    }
}
