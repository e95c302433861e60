//! Checkers: pure functions from a recorded history to a verdict. None of them performs I/O;
//! the linearizability checker reads the clock, to keep to its time budget.
//!
//! - [`linear`]: per-key linearizability of the register history (Wing–Gong–Lowe search).
//! - [`lost`]: lost acknowledged writes against the final state read after healing, stale
//!   and phantom reads, revisions going backwards.
//! - [`watch`]: watch streams ordered, unique, reliable, resumable and in agreement.
//!
//! [`verdict`] combines the reports. **Pass** only if every key is linearizable (none left
//! undecided), no acknowledged write is lost, no read is stale or phantom, no final value is
//! phantom or differs between nodes, no revision goes backwards, and no watch property is
//! violated. **Fail** if any of those is violated. **Unknown** otherwise: some key was
//! undecided within the budget, some written key was not read after healing, some op record
//! was malformed, or there was nothing to check.

pub mod linear;
pub mod lost;
#[cfg(test)]
mod testkit;
pub mod watch;

pub use linear::{
    check_linear, Budget, KeyReport, KeyVerdict, LinearReport, LinearSummary, Violation,
};
pub use lost::{
    check_lost, Divergence, FinalValue, LostReport, LostWrite, NodeState, PhantomValue,
    RevisionRegression, StaleReads, UnknownWrites,
};
pub use watch::{check_watch, WatchEvent, WatchReport, WatchStream, WatchViolation};

use serde::Serialize;

/// Examples kept per finding.
pub(crate) const MAX_EXAMPLES: usize = 100;

/// A count and the first examples (at most 100).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Findings<T> {
    pub count: u64,
    pub examples: Vec<T>,
}

impl<T> Default for Findings<T> {
    fn default() -> Self {
        Self {
            count: 0,
            examples: Vec::new(),
        }
    }
}

impl<T> Findings<T> {
    pub(crate) fn push(&mut self, item: T) {
        self.count += 1;
        if self.examples.len() < MAX_EXAMPLES {
            self.examples.push(item);
        }
    }
}

/// The outcome of a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    /// Violations, then anything left unchecked.
    Fail {
        reasons: Vec<String>,
    },
    Unknown {
        reasons: Vec<String>,
    },
}

impl Verdict {
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail { .. } => "FAIL",
            Verdict::Unknown { .. } => "UNKNOWN",
        }
    }
}

/// Combines the reports of a run; `watch` is `None` when the run had no watchers.
pub fn verdict(linear: &LinearReport, lost: &LostReport, watch: Option<&WatchReport>) -> Verdict {
    let mut failures = Vec::new();
    let mut unknowns = Vec::new();
    linear_reasons(linear, &mut failures, &mut unknowns);
    lost_reasons(lost, &mut failures, &mut unknowns);
    if let Some(watch) = watch {
        watch_reasons(watch, &mut failures);
    }
    if !failures.is_empty() {
        failures.extend(unknowns.into_iter().map(|u| format!("also unchecked: {u}")));
        Verdict::Fail { reasons: failures }
    } else if !unknowns.is_empty() {
        Verdict::Unknown { reasons: unknowns }
    } else {
        Verdict::Pass
    }
}

fn linear_reasons(report: &LinearReport, failures: &mut Vec<String>, unknowns: &mut Vec<String>) {
    let s = &report.summary;
    if s.invalid > 0 {
        let first = report
            .keys
            .iter()
            .find(|k| matches!(k.verdict, KeyVerdict::Invalid(_)));
        let key = first.map_or("", |k| k.key.as_str());
        failures.push(format!(
            "{} of {} keys not linearizable (first: {key})",
            s.invalid, s.keys_checked
        ));
    }
    if s.unknown > 0 {
        unknowns.push(format!(
            "{} keys undecided within the search budget",
            s.unknown
        ));
    }
    if s.malformed_ops > 0 {
        unknowns.push(format!("{} malformed op records", s.malformed_ops));
    }
    if s.keys_checked == 0 {
        unknowns.push("no operations to check".to_string());
    }
}

fn lost_reasons(report: &LostReport, failures: &mut Vec<String>, unknowns: &mut Vec<String>) {
    let counts = [
        (report.lost_writes.count, "acknowledged writes lost"),
        (report.stale_reads.count, "stale reads"),
        (report.phantom_reads.count, "reads of values never written"),
        (report.phantom_finals.count, "final values never written"),
        (
            report.divergent_keys.count,
            "keys with different final values on different nodes",
        ),
        (
            report.revision_regressions.count,
            "reads with a revision going backwards",
        ),
    ];
    for (count, what) in counts.into_iter().filter(|(n, _)| *n > 0) {
        failures.push(format!("{count} {what}"));
    }
    if report.stale_reads.count > 0 {
        let worst_ms = report.stale_reads.worst_staleness_ms;
        failures.push(format!("worst stale read: {worst_ms:.3} ms behind"));
    }
    if report.keys_not_read.count > 0 {
        let n = report.keys_not_read.count;
        unknowns.push(format!("{n} written keys not read after healing"));
    }
}

fn watch_reasons(report: &WatchReport, failures: &mut Vec<String>) {
    let properties = [
        (&report.ordered, "ordered"),
        (&report.unique, "unique"),
        (&report.reliable, "reliable"),
        (&report.resumable, "resumable"),
        (&report.agreement, "agreement"),
    ];
    for (findings, name) in properties.into_iter().filter(|(f, _)| f.count > 0) {
        failures.push(format!("watch: {} violations of '{name}'", findings.count));
    }
}

#[cfg(test)]
mod tests {
    use super::testkit::{c, r, w};
    use super::*;
    use crate::history::Op;

    fn run(history: &[Op], final_value: Option<&str>, budget: &Budget) -> Verdict {
        let value = FinalValue {
            value: final_value.map(str::to_string),
            revision: None,
        };
        let node = NodeState {
            node: 1,
            keys: [("k".to_string(), value)].into(),
        };
        let lost = check_lost(history, &[node]);
        let watch = check_watch(&[], history);
        verdict(&check_linear(history, budget), &lost, Some(&watch))
    }

    #[test]
    fn the_verdict_combines_every_report() {
        let good = vec![
            c(1, "k", "a", 0, 10),
            w(2, "k", "b", 20, 30),
            r(3, "k", Some("b"), 40, 50),
        ];
        let budget = Budget::default();
        assert_eq!(run(&good, Some("b"), &budget), Verdict::Pass);

        let lost = run(&good, Some("a"), &budget);
        assert_eq!(lost.label(), "FAIL", "{lost:?}");

        let stale = vec![
            c(1, "k", "a", 0, 10),
            w(2, "k", "b", 20, 30),
            r(3, "k", Some("a"), 40, 50),
        ];
        let Verdict::Fail { reasons } = run(&stale, Some("b"), &budget) else {
            panic!("stale read passed");
        };
        assert!(
            reasons.iter().any(|r| r.contains("stale reads")),
            "{reasons:?}"
        );
        assert!(
            reasons.iter().any(|r| r.contains("not linearizable")),
            "{reasons:?}"
        );

        let tiny = Budget {
            max_states_per_key: 1,
            ..Budget::default()
        };
        assert_eq!(run(&good, Some("b"), &tiny).label(), "UNKNOWN");
        assert_eq!(run(&[], None, &budget).label(), "UNKNOWN");
    }

    #[test]
    fn reports_serialize_to_json() {
        let history = vec![
            c(1, "k", "a", 0, 10),
            w(2, "k", "b", 20, 30),
            r(3, "k", Some("a"), 40, 50),
        ];
        let linear = check_linear(&history, &Budget::default());
        let json = serde_json::to_value(&linear).expect("linear report");
        assert_eq!(json["keys"][0]["verdict"]["verdict"], "invalid", "{json}");
        assert_eq!(json["keys"][0]["verdict"]["stuck_op_id"], 2, "{json}");
        let lost = check_lost(&history, &[]);
        let json = serde_json::to_value(&lost).expect("lost report");
        assert_eq!(json["stale_reads"]["op_ids"][0], 3, "{json}");
        let verdict = serde_json::to_value(verdict(&linear, &lost, None)).expect("verdict");
        assert_eq!(verdict["verdict"], "fail", "{verdict}");
        let budget = serde_json::to_value(Budget::default()).expect("budget");
        assert_eq!(budget["time_limit_ms"], 120_000, "{budget}");
        let stream = WatchStream {
            watcher: 1,
            node: 2,
            start_revision: 3,
            events: Vec::new(),
            resumed_from: vec![4],
        };
        let text = serde_json::to_string(&stream).expect("stream");
        assert_eq!(
            serde_json::from_str::<WatchStream>(&text).expect("back"),
            stream
        );
    }

    #[test]
    fn a_watch_violation_fails_the_run() {
        let linear = check_linear(&[c(1, "k", "a", 0, 10)], &Budget::default());
        let value = FinalValue {
            value: Some("a".into()),
            revision: None,
        };
        let node = NodeState {
            node: 1,
            keys: [("k".to_string(), value)].into(),
        };
        let lost = check_lost(&[c(1, "k", "a", 0, 10)], &[node]);
        let mut watch = WatchReport::default();
        assert_eq!(verdict(&linear, &lost, Some(&watch)), Verdict::Pass);
        watch.reliable.push(WatchViolation {
            watcher: 1,
            revision: 3,
            key: "k".into(),
            detail: String::new(),
        });
        assert_eq!(verdict(&linear, &lost, Some(&watch)).label(), "FAIL");
    }
}
