//! Throughput by phase: the runner marks phases of a run (e.g. before, during and after a
//! fault) as `(name, start_ns, end_ns)` on the history's clock; [`phase_stats`] counts, per
//! phase, the ops by outcome and the ok-ops per second.
//!
//! An op belongs to the phase whose half-open interval `[start_ns, end_ns)` holds its
//! `invoke_ns` (unknown ops have no completion time, so invoke time is the one time every op
//! has). Phases may overlap; an op is counted in each phase that holds it. `ok_per_s` is the
//! ok count over the phase's length in seconds (0 for an empty interval).

use serde::{Deserialize, Serialize};

use crate::history::{Op, Outcome};

/// Counts of one phase.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PhaseStats {
    pub name: String,
    pub start_ns: u64,
    pub end_ns: u64,
    pub ok: u64,
    pub fail: u64,
    pub unknown: u64,
    /// Ok ops per second of the phase.
    pub ok_per_s: f64,
}

/// Stats of every phase, in the order given.
pub fn phase_stats<S: AsRef<str>>(ops: &[Op], phases: &[(S, u64, u64)]) -> Vec<PhaseStats> {
    phases
        .iter()
        .map(|(name, start_ns, end_ns)| one_phase(ops, name.as_ref(), *start_ns, *end_ns))
        .collect()
}

fn one_phase(ops: &[Op], name: &str, start_ns: u64, end_ns: u64) -> PhaseStats {
    let mut stats = PhaseStats {
        name: name.to_string(),
        start_ns,
        end_ns,
        ..PhaseStats::default()
    };
    for op in ops
        .iter()
        .filter(|op| (start_ns..end_ns).contains(&op.invoke_ns))
    {
        match op.outcome {
            Outcome::Ok => stats.ok += 1,
            Outcome::Fail => stats.fail += 1,
            Outcome::Unknown => stats.unknown += 1,
        }
    }
    let secs = end_ns.saturating_sub(start_ns) as f64 / 1e9;
    stats.ok_per_s = if secs > 0.0 {
        stats.ok as f64 / secs
    } else {
        0.0
    };
    stats
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::OpKind;

    fn op(invoke_ns: u64, outcome: Outcome) -> Op {
        Op {
            id: invoke_ns,
            client: 0,
            key: "k".into(),
            kind: OpKind::Write,
            value: None,
            revision: None,
            node: None,
            invoke_ns,
            complete_ns: (outcome != Outcome::Unknown).then_some(invoke_ns + 1),
            outcome,
            error: None,
        }
    }

    #[test]
    fn ops_count_in_the_phase_holding_their_invoke() {
        let s = 1_000_000_000;
        let ops = [
            op(0, Outcome::Ok),
            op(s / 2, Outcome::Ok),
            op(s, Outcome::Unknown),
            op(s + 1, Outcome::Fail),
            op(3 * s, Outcome::Ok),
        ];
        let phases = [("before", 0, s), ("during", s, 2 * s), ("empty", 5, 5)];
        let got = phase_stats(&ops, &phases);
        assert_eq!((got[0].ok, got[0].fail, got[0].unknown), (2, 0, 0));
        assert_eq!(got[0].ok_per_s, 2.0);
        assert_eq!((got[1].ok, got[1].fail, got[1].unknown), (0, 1, 1));
        assert_eq!(got[1].ok_per_s, 0.0);
        assert_eq!(got[2].ok_per_s, 0.0);
        assert_eq!(got[2].name, "empty");
    }
}
