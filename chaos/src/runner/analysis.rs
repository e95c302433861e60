//! Pure functions from what a run recorded to what its report says: the checkers over the
//! history, the figures (ops per kind, per phase, per fault, latency, recovery) and the
//! verdict. No I/O here; `licchaos check` uses the same functions on a saved history.
//!
//! Definitions:
//! - *Attempted* ops are every op of the history; ok/fail/unknown are their outcomes.
//! - *Latency* is completion minus invoke of the Ok ops invoked in a phase; percentiles are
//!   nearest-rank.
//! - *Ok-rate* of a phase: ok ops over attempted ops invoked in it.
//! - *Recovery* after the last heal: from the end of the last heal (of a fault that was
//!   applied) to the completion of the first Ok write (create or amend), and of the first Ok
//!   linearizable read, invoked at or after it.
//! - *Verdict*: the checkers' ([`crate::check::verdict`]) plus the run's own findings
//!   ([`run_findings`]): **fail** when the live nodes did not converge or no leader was
//!   agreed within the recovery deadline after the heal, or a node's Check RPC reports
//!   problems; **unknown** when a heal failed, no fault of a scenario with faults could be
//!   applied, or a node did not answer the Check RPC.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::check::{self, Budget, LinearReport, LostReport, NodeState, Verdict, WatchReport};
use crate::cluster::Convergence;
use crate::history::{Op, OpKind, Outcome};
use crate::nemesis::FaultRecord;
use crate::report::FinalReadSummary;
use crate::workload::{self, phase_stats, FinalRead, PhaseStats};

/// A named window of the run's clock: `(name, start_ns, end_ns)`, as phases are given to
/// [`crate::workload::phase_stats`].
pub type Window = (String, u64, u64);

/// The checkers' reports and their verdict.
#[derive(Clone, Debug, Serialize)]
pub struct Checks {
    pub linear: LinearReport,
    pub lost: LostReport,
    pub watch: Option<WatchReport>,
    pub verdict: Verdict,
}

/// The final read as the lost-write checker takes it.
pub fn node_states(fr: &FinalRead) -> Vec<NodeState> {
    fr.values
        .iter()
        .map(|(node, keys)| NodeState {
            node: *node,
            keys: keys
                .iter()
                .map(|(k, v)| {
                    let value = check::FinalValue {
                        value: v.as_ref().map(|(m, _)| m.clone()),
                        revision: v.as_ref().map(|(_, r)| *r),
                    };
                    (k.clone(), value)
                })
                .collect(),
        })
        .collect()
}

/// The recorded watch streams as the watch checker takes them. A recorded `from_revision`
/// is the first revision wanted, the checker's `start_revision` the last one not wanted.
/// A stream resumed over a compacted gap is split there: the part after the gap is judged
/// as a stream of its own, starting where the server let it resume.
pub fn watch_streams(streams: &[workload::watch::WatchStream]) -> Vec<check::WatchStream> {
    let mut out = Vec::new();
    for s in streams {
        let mut starts: Vec<&workload::watch::WatchResume> = Vec::new();
        let mut resumes: Vec<Vec<u64>> = Vec::new();
        for (i, r) in s.resumes.iter().enumerate() {
            if i == 0 || r.gap_from.is_some() {
                starts.push(r);
                resumes.push(Vec::new());
            } else if let Some(last) = resumes.last_mut() {
                last.push(r.from_revision.saturating_sub(1));
            }
        }
        if starts.is_empty() {
            continue;
        }
        for (part, start) in starts.iter().enumerate() {
            let until_ns = starts.get(part + 1).map_or(u64::MAX, |n| n.at_ns);
            let events = s
                .events
                .iter()
                .filter(|e| e.at_ns >= start.at_ns && e.at_ns < until_ns)
                .map(|e| check::WatchEvent {
                    watcher: s.watcher,
                    node: e.node,
                    revision: e.revision,
                    key: e.key.clone(),
                    kind: e.op.clone(),
                    at_ns: e.at_ns,
                })
                .collect();
            out.push(check::WatchStream {
                watcher: s.watcher,
                node: s.node,
                start_revision: start.from_revision.saturating_sub(1),
                events,
                resumed_from: std::mem::take(&mut resumes[part]),
            });
        }
    }
    out
}

/// Every checker over `history`; `streams` is `None` when the run had no watchers.
pub fn run_checkers(
    history: &[Op],
    finals: &[NodeState],
    streams: Option<&[check::WatchStream]>,
    budget: &Budget,
) -> Checks {
    let linear = check::check_linear(history, budget);
    let lost = check::check_lost(history, finals);
    let watch = streams.map(|s| check::check_watch(s, history));
    let verdict = check::verdict(&linear, &lost, watch.as_ref());
    Checks {
        linear,
        lost,
        watch,
        verdict,
    }
}

/// Counts of one op kind (or `all`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OpCounts {
    pub kind: String,
    pub attempted: u64,
    pub ok: u64,
    pub fail: u64,
    pub unknown: u64,
}

impl OpCounts {
    fn add(&mut self, outcome: Outcome) {
        self.attempted += 1;
        match outcome {
            Outcome::Ok => self.ok += 1,
            Outcome::Fail => self.fail += 1,
            Outcome::Unknown => self.unknown += 1,
        }
    }
}

/// Per kind (create, write, read), then `all`.
pub fn op_counts(history: &[Op]) -> Vec<OpCounts> {
    let kinds = [
        (OpKind::Create, "create"),
        (OpKind::Write, "write"),
        (OpKind::Read, "read"),
    ];
    let mut out: Vec<OpCounts> = kinds
        .iter()
        .map(|(_, name)| OpCounts {
            kind: name.to_string(),
            ..OpCounts::default()
        })
        .collect();
    let mut all = OpCounts {
        kind: "all".into(),
        ..OpCounts::default()
    };
    for op in history {
        if let Some(i) = kinds.iter().position(|(k, _)| *k == op.kind) {
            out[i].add(op.outcome);
        }
        all.add(op.outcome);
    }
    out.push(all);
    out
}

/// Latency of Ok ops.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

/// Latency of the Ok ops among `ops`.
pub fn latency<'a>(ops: impl Iterator<Item = &'a Op>) -> Latency {
    let mut ns: Vec<u64> = ops
        .filter(|o| o.outcome == Outcome::Ok)
        .filter_map(|o| o.complete_ns.map(|c| c.saturating_sub(o.invoke_ns)))
        .collect();
    if ns.is_empty() {
        return Latency::default();
    }
    ns.sort_unstable();
    let rank = |q: f64| {
        let i = ((q * ns.len() as f64).ceil() as usize).clamp(1, ns.len()) - 1;
        ns[i] as f64 / 1e6
    };
    Latency {
        count: ns.len() as u64,
        p50_ms: rank(0.50),
        p99_ms: rank(0.99),
        p999_ms: rank(0.999),
        max_ms: rank(1.0),
    }
}

/// One phase's counts, ok-rate and latency.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PhaseFigures {
    pub stats: PhaseStats,
    pub attempted: u64,
    pub ok_rate: f64,
    pub latency: Latency,
}

/// Figures of each `(name, start_ns, end_ns)` window.
pub fn phase_figures(history: &[Op], phases: &[Window]) -> Vec<PhaseFigures> {
    phase_stats(history, phases)
        .into_iter()
        .map(|stats| {
            let inside = |o: &&Op| (stats.start_ns..stats.end_ns).contains(&o.invoke_ns);
            let attempted = stats.ok + stats.fail + stats.unknown;
            let ok_rate = if attempted > 0 {
                stats.ok as f64 / attempted as f64
            } else {
                0.0
            };
            let latency = latency(history.iter().filter(inside));
            PhaseFigures {
                stats,
                attempted,
                ok_rate,
                latency,
            }
        })
        .collect()
}

/// The windows of the faults that were applied, named `#<n> <kind>`.
pub fn fault_windows(faults: &[FaultRecord], end_ns: u64) -> Vec<Window> {
    faults
        .iter()
        .enumerate()
        .filter(|(_, f)| f.skipped.is_none())
        .map(|(i, f)| {
            let name = format!("#{} {}", i + 1, f.kind);
            (name, f.start_ns, f.stop_ns.unwrap_or(end_ns))
        })
        .collect()
}

/// How far after a heal the windows of [`fault_and_after_windows`] reach.
pub const AFTER_HEAL_WINDOW_NS: u64 = 5_000_000_000;

/// For each applied fault: the window it was in effect, and the window from its heal to
/// [`AFTER_HEAL_WINDOW_NS`] later (or the next fault, or `end_ns`, if sooner).
pub fn fault_and_after_windows(faults: &[FaultRecord], end_ns: u64) -> (Vec<Window>, Vec<Window>) {
    let during = fault_windows(faults, end_ns);
    let after = during
        .iter()
        .enumerate()
        .map(|(i, (name, _, stop))| {
            let next = during.get(i + 1).map_or(end_ns, |n| n.1);
            let until = (stop + AFTER_HEAL_WINDOW_NS).min(next).max(*stop);
            (name.clone(), *stop, until)
        })
        .collect();
    (during, after)
}

/// How soon the clients succeeded again after the last heal.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Recovery {
    pub last_heal_ns: Option<u64>,
    pub first_ok_write_ms: Option<f64>,
    pub first_ok_read_ms: Option<f64>,
}

/// See the module doc.
pub fn recovery(history: &[Op], faults: &[FaultRecord]) -> Recovery {
    let last_heal_ns = faults
        .iter()
        .filter(|f| f.skipped.is_none())
        .filter_map(|f| f.stop_ns)
        .max();
    let Some(heal) = last_heal_ns else {
        return Recovery::default();
    };
    let first = |want_read: bool| {
        history
            .iter()
            .filter(|o| o.outcome == Outcome::Ok && o.invoke_ns >= heal)
            .filter(|o| (o.kind == OpKind::Read) == want_read)
            .filter_map(|o| o.complete_ns)
            .min()
            .map(|c| c.saturating_sub(heal) as f64 / 1e6)
    };
    Recovery {
        last_heal_ns,
        first_ok_write_ms: first(false),
        first_ok_read_ms: first(true),
    }
}

/// A lost write and the fault in effect when it was invoked (or the last one before).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LostWriteContext {
    pub op_id: u64,
    pub key: String,
    pub invoke_ns: u64,
    pub fault: Option<String>,
}

/// Context for each lost write example of `lost`.
pub fn lost_write_context(
    history: &[Op],
    lost: &LostReport,
    faults: &[FaultRecord],
) -> Vec<LostWriteContext> {
    let by_id: BTreeMap<u64, &Op> = history.iter().map(|o| (o.id, o)).collect();
    lost.lost_writes
        .examples
        .iter()
        .filter_map(|l| by_id.get(&l.op_id))
        .map(|op| {
            let fault = faults
                .iter()
                .enumerate()
                .rfind(|(_, f)| f.skipped.is_none() && f.start_ns <= op.invoke_ns)
                .map(|(i, f)| {
                    let during = f.stop_ns.is_none_or(|s| op.invoke_ns < s);
                    let when = if during { "during" } else { "after" };
                    format!("{when} #{} {}", i + 1, f.kind)
                });
            LostWriteContext {
                op_id: op.id,
                key: op.key.clone(),
                invoke_ns: op.invoke_ns,
                fault,
            }
        })
        .collect()
}

/// One node's Check RPC answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NodeCheck {
    pub node: u64,
    /// Why there is no answer.
    pub error: Option<String>,
    pub applied_index: u64,
    pub records_checked: u64,
    pub index_entries_checked: u64,
    pub events_checked: u64,
    pub problem_count: u64,
    /// The first problems, `table key: detail`.
    pub problems: Vec<String>,
}

/// The final read in short: keys asked for, and per node how many were not read.
pub fn final_read_summary(fr: &FinalRead, nodes: &[u64], keys: usize) -> FinalReadSummary {
    let mut unread_by_node: BTreeMap<u64, u64> = nodes.iter().map(|n| (*n, 0)).collect();
    for (node, _, _) in &fr.unread {
        *unread_by_node.entry(*node).or_default() += 1;
    }
    FinalReadSummary {
        nodes: nodes.to_vec(),
        keys: keys as u64,
        unread: fr.unread.len() as u64,
        unread_by_node,
        unread_examples: fr.unread.iter().take(10).cloned().collect(),
    }
}

/// What the run saw besides the history, for [`run_findings`].
pub struct RunFacts<'a> {
    pub final_read: &'a FinalReadSummary,
    pub convergence: &'a Convergence,
    pub recovery_deadline_ms: u64,
    /// The leader agreed after the heal, or why there was none.
    pub leader_after: &'a Result<u64, String>,
    pub node_checks: &'a [NodeCheck],
    pub faults: &'a [FaultRecord],
    pub nemesis_errors: &'a [String],
    /// The scenario has faults to inject.
    pub has_nemesis: bool,
}

/// The run's own failures and unchecked points (see the module doc).
pub fn run_findings(f: &RunFacts) -> (Vec<String>, Vec<String>) {
    let (mut failures, mut unknowns) = (Vec::new(), Vec::new());
    if let Err(why) = f.leader_after {
        failures.push(format!("no leader after healing: {why}"));
    }
    if !f.convergence.converged {
        failures.push(format!(
            "live nodes did not converge within {} ms: {}",
            f.recovery_deadline_ms,
            describe_digests(f.convergence)
        ));
    }
    for c in f.node_checks {
        match &c.error {
            Some(e) => unknowns.push(format!("node {} did not answer Check: {e}", c.node)),
            None if c.problem_count > 0 => failures.push(format!(
                "node {}: Check found {} problems (first: {})",
                c.node,
                c.problem_count,
                c.problems.first().map_or("", String::as_str)
            )),
            None => {}
        }
    }
    for (node, n) in f.final_read.unread_by_node.iter().filter(|(_, n)| **n > 0) {
        let last = f
            .final_read
            .unread_examples
            .iter()
            .find(|(id, _, _)| id == node);
        unknowns.push(format!(
            "node {node}: {n} of {} keys not read in the final read (last error: {})",
            f.final_read.keys,
            last.map_or("-", |(_, _, e)| e.as_str())
        ));
    }
    for rec in f.faults {
        if let Some(h) = rec.heal_detail.as_deref().filter(|h| h.contains("failed")) {
            unknowns.push(format!("heal of {} failed: {h}", rec.kind));
        }
    }
    let applied = f.faults.iter().filter(|r| r.skipped.is_none()).count();
    if f.has_nemesis && applied == 0 {
        unknowns.push(format!(
            "no fault was applied ({} skipped, {} errors)",
            f.faults.len(),
            f.nemesis_errors.len()
        ));
    }
    (failures, unknowns)
}

fn describe_digests(c: &Convergence) -> String {
    let parts: Vec<String> = c
        .nodes
        .iter()
        .map(|(id, d)| match d {
            Some(d) => format!("n{id}@{} {}", d.applied_index, short(&d.digest)),
            None => format!("n{id} silent"),
        })
        .collect();
    parts.join(", ")
}

fn short(s: &str) -> &str {
    s.get(..12).unwrap_or(s)
}

/// The checkers' verdict with the run's findings added.
pub fn combine(base: Verdict, failures: Vec<String>, unknowns: Vec<String>) -> Verdict {
    let also = |u: Vec<String>| u.into_iter().map(|u| format!("also unchecked: {u}"));
    match base {
        Verdict::Fail { mut reasons } => {
            reasons.extend(failures);
            reasons.extend(also(unknowns));
            Verdict::Fail { reasons }
        }
        Verdict::Unknown { reasons } if !failures.is_empty() => {
            let mut all = failures;
            all.extend(also(reasons));
            all.extend(also(unknowns));
            Verdict::Fail { reasons: all }
        }
        Verdict::Unknown { mut reasons } => {
            reasons.extend(unknowns);
            Verdict::Unknown { reasons }
        }
        Verdict::Pass if !failures.is_empty() => {
            let mut all = failures;
            all.extend(also(unknowns));
            Verdict::Fail { reasons: all }
        }
        Verdict::Pass if !unknowns.is_empty() => Verdict::Unknown { reasons: unknowns },
        Verdict::Pass => Verdict::Pass,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::watch::{WatchEvent, WatchResume, WatchStream};

    fn op(id: u64, kind: OpKind, outcome: Outcome, invoke_ms: u64, done_ms: u64) -> Op {
        Op {
            id,
            client: id,
            key: "k".into(),
            kind,
            value: Some(format!("v{id}")),
            revision: None,
            node: None,
            invoke_ns: invoke_ms * 1_000_000,
            complete_ns: (outcome != Outcome::Unknown).then_some(done_ms * 1_000_000),
            outcome,
            error: None,
        }
    }

    fn fault(kind: &str, start_ms: u64, stop_ms: u64) -> FaultRecord {
        FaultRecord {
            kind: kind.into(),
            targets: vec![1],
            detail: String::new(),
            start_ns: start_ms * 1_000_000,
            injected_ns: start_ms * 1_000_000,
            stop_ns: Some(stop_ms * 1_000_000),
            skipped: None,
            heal_detail: Some("done".into()),
            undo: crate::nemesis::Undo::Nothing,
        }
    }

    #[test]
    fn counts_latency_and_recovery() {
        let h = [
            op(0, OpKind::Create, Outcome::Ok, 0, 10),
            op(1, OpKind::Write, Outcome::Unknown, 20, 0),
            op(2, OpKind::Read, Outcome::Fail, 30, 40),
            op(3, OpKind::Write, Outcome::Ok, 120, 150),
            op(4, OpKind::Read, Outcome::Ok, 110, 200),
        ];
        let counts = op_counts(&h);
        let all = counts.last().expect("all");
        assert_eq!((all.attempted, all.ok, all.fail, all.unknown), (5, 3, 1, 1));
        assert_eq!(counts[1].unknown, 1);
        let lat = latency(h.iter());
        assert_eq!((lat.count, lat.p50_ms, lat.max_ms), (3, 30.0, 90.0));
        let r = recovery(&h, &[fault("kill_leader", 50, 100)]);
        assert_eq!(r.first_ok_write_ms, Some(50.0));
        assert_eq!(r.first_ok_read_ms, Some(100.0));
        let phases = [("before".to_string(), 0, 50_000_000)];
        let f = phase_figures(&h, &phases);
        assert_eq!(f[0].attempted, 3);
        assert!((f[0].ok_rate - 1.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn after_heal_windows_stop_at_the_next_fault() {
        let mut skipped = fault("kill_leader", 11_000, 11_000);
        skipped.skipped = Some("no leader".into());
        let faults = [
            fault("a", 1_000, 3_000),
            fault("b", 6_000, 9_000),
            skipped,
            fault("c", 20_000, 21_000),
        ];
        let (during, after) = fault_and_after_windows(&faults, 23_000_000_000);
        assert_eq!(during.len(), 3, "the skipped fault has no window");
        let ms = |w: &Window| (w.1 / 1_000_000, w.2 / 1_000_000);
        assert_eq!(ms(&after[0]), (3_000, 6_000), "cut at the next fault");
        assert_eq!(ms(&after[1]), (9_000, 14_000), "5 s after the heal");
        assert_eq!(ms(&after[2]), (21_000, 23_000), "cut at the end");
        assert_eq!(after[2].0, "#4 c");
    }

    #[test]
    fn verdicts_combine_failures_before_unknowns() {
        let pass = combine(Verdict::Pass, vec![], vec![]);
        assert_eq!(pass, Verdict::Pass);
        let unknown = combine(Verdict::Pass, vec![], vec!["u".into()]);
        assert_eq!(unknown.label(), "UNKNOWN");
        let fail = combine(
            Verdict::Unknown {
                reasons: vec!["x".into()],
            },
            vec!["f".into()],
            vec![],
        );
        let Verdict::Fail { reasons } = fail else {
            panic!("a failure wins");
        };
        assert_eq!(reasons, vec!["f", "also unchecked: x"]);
    }

    #[test]
    fn non_convergence_and_check_problems_fail_the_run() {
        let conv = Convergence {
            nodes: BTreeMap::new(),
            converged: false,
            waited_ms: 5,
        };
        let checks = [NodeCheck {
            node: 2,
            problem_count: 3,
            problems: vec!["ident k: missing".into()],
            ..NodeCheck::default()
        }];
        let fr = FinalReadSummary::default();
        let facts = RunFacts {
            final_read: &fr,
            convergence: &conv,
            recovery_deadline_ms: 1000,
            leader_after: &Ok(1),
            node_checks: &checks,
            faults: &[],
            nemesis_errors: &[],
            has_nemesis: true,
        };
        let (fail, unknown) = run_findings(&facts);
        assert_eq!(fail.len(), 2, "{fail:?}");
        assert_eq!(unknown.len(), 1, "no fault applied: {unknown:?}");
    }

    #[test]
    fn a_gap_splits_a_watch_stream() {
        let ev = |revision: u64, at_ns: u64| WatchEvent {
            watcher: 0,
            node: 1,
            revision,
            seq: 0,
            op: "amend".into(),
            identifier: String::new(),
            previous_identifier: None,
            key: "k".into(),
            version: 1,
            at_ns,
        };
        let resume = |from: u64, at_ns: u64, gap: Option<u64>| WatchResume {
            watcher: 0,
            node: 1,
            from_revision: from,
            at_ns,
            after_error: None,
            gap_from: gap,
        };
        let stream = WatchStream {
            watcher: 0,
            node: 1,
            from_revision: 1,
            progress_revision: 9,
            events: vec![ev(1, 10), ev(2, 20), ev(8, 60)],
            resumes: vec![
                resume(1, 0, None),
                resume(3, 30, None),
                resume(7, 50, Some(3)),
            ],
        };
        let out = watch_streams(&[stream]);
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].start_revision, out[0].events.len()), (0, 2));
        assert_eq!(out[0].resumed_from, vec![2]);
        assert_eq!((out[1].start_revision, out[1].events.len()), (6, 1));
    }
}
