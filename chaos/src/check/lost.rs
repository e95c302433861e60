//! Lost acknowledged writes, stale and phantom reads, and revisions going backwards.
//!
//! These are cheap checks that name the usual ways a replicated store breaks, in the words a
//! person looks for; the linearizability checker covers them all and more, but cannot say
//! "this acknowledged write is gone". Definitions, per key, with a write meaning a `Create`
//! or `Write` op and an op's end being its completion (infinity for an unknown outcome or a
//! missing completion; an end before the invoke is taken as the invoke, and counted as
//! malformed):
//!
//! - **Final state**: what each node returned for the key when read at linearizable
//!   consistency after healing ([`NodeState`]). Nodes that returned different values make
//!   the key **divergent**. A key with writes that no node read is **not read**.
//! - **Lost write**, for each distinct final value `F` of the key:
//!   - `F` absent: every Ok write is lost (there is no delete; an Ok `Create` included).
//!   - `F = v`: let `f` be the write of `v` (Ok or Unknown; of several, the one with the
//!     latest end). Every Ok write `w` with a value other than `v` and `w.invoke > f.end` is
//!     lost: `w` began after `f` finished, so it follows `f` in every linearization and `v`
//!     cannot be the last value. Ok writes invoked before `f` ended may precede it: fine.
//!   - `F = v` written by no Ok or Unknown op: a **phantom final value**.
//! - **Unknown writes**: *recovered* if their value is a final value of the key, else *read
//!   later* if an Ok read returned it, else *never seen*. None of these is a failure.
//! - **Stale read**: an Ok read `r` returning `v` while some Ok write `w'` (value not `v`)
//!   had completed before `r` was invoked, and every write of `v` had completed before `w'`
//!   was invoked (for `v` absent: the initial state, which ends at time 0). Then `v` was
//!   definitely overwritten before `r` began. Staleness: `r.invoke - w'.end`, with the
//!   earliest such `w'.end`.
//! - **Phantom read**: an Ok read returning a value no Ok or Unknown write wrote (the report
//!   says when a failed write had it).
//! - **Revision regression**: an Ok read whose revision is lower than that of an Ok read or
//!   Ok write of the same key that completed before the read was invoked.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{Findings, MAX_EXAMPLES};
use crate::history::{Op, OpKind, Outcome};

/// What a read of one key returned after healing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalValue {
    /// `None`: the key was absent.
    pub value: Option<String>,
    pub revision: Option<u64>,
}

/// The final state as read from one node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    pub node: u64,
    pub keys: BTreeMap<String, FinalValue>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LostReport {
    pub keys_checked: u64,
    pub keys_not_read: Findings<String>,
    pub lost_writes: Findings<LostWrite>,
    pub divergent_keys: Findings<Divergence>,
    pub phantom_finals: Findings<PhantomValue>,
    pub unknown_writes: UnknownWrites,
    pub stale_reads: StaleReads,
    pub phantom_reads: Findings<PhantomValue>,
    pub revision_regressions: Findings<RevisionRegression>,
    pub malformed_ops: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LostWrite {
    pub op_id: u64,
    pub key: String,
    pub value: Option<String>,
    /// The final value that should have reflected it, and the nodes that returned it.
    pub final_value: Option<String>,
    pub nodes: Vec<u64>,
    /// The write of the final value, when there is one.
    pub final_write_op_id: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Divergence {
    pub key: String,
    /// Each distinct final value with the nodes that returned it.
    pub values: Vec<(Option<String>, Vec<u64>)>,
}

/// A value read (or found in the final state) that no Ok or Unknown write wrote.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PhantomValue {
    pub key: String,
    pub value: String,
    /// The read op, or `None` for a final value.
    pub op_id: Option<u64>,
    pub nodes: Vec<u64>,
    pub written_by_failed_op: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct UnknownWrites {
    pub recovered: u64,
    pub read_later: u64,
    pub never_seen: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StaleReads {
    pub count: u64,
    pub worst_staleness_ms: f64,
    /// The first stale reads' ids.
    pub op_ids: Vec<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RevisionRegression {
    pub key: String,
    pub op_id: u64,
    pub revision: u64,
    /// The op that completed before `op_id` was invoked, with a higher revision.
    pub earlier_op_id: u64,
    pub earlier_revision: u64,
}

/// An op with its checked interval.
#[derive(Clone, Copy, Debug)]
struct Timed<'a> {
    op: &'a Op,
    invoke_ns: u64,
    end_ns: u64,
}

/// One key's ops, split the way the checks read them.
#[derive(Debug, Default)]
struct KeyOps<'a> {
    /// Ok and Unknown writes.
    writes: Vec<Timed<'a>>,
    ok_reads: Vec<Timed<'a>>,
    failed_values: BTreeSet<&'a str>,
}

impl<'a> KeyOps<'a> {
    fn writers_of<'s>(&'s self, value: &'s str) -> impl Iterator<Item = &'s Timed<'a>> + 's {
        let writes = self.writes.iter();
        writes.filter(move |t| t.op.value.as_deref() == Some(value))
    }

    fn ok_writes(&self) -> impl Iterator<Item = &Timed<'a>> {
        self.writes.iter().filter(|t| t.op.outcome == Outcome::Ok)
    }
}

/// Checks `history` against the final state read from each node in `finals`.
pub fn check_lost(history: &[Op], finals: &[NodeState]) -> LostReport {
    let mut report = LostReport::default();
    let by_key = split(history, &mut report.malformed_ops);
    let mut final_keys: BTreeMap<&str, Vec<(u64, &FinalValue)>> = BTreeMap::new();
    for state in finals {
        for (key, value) in &state.keys {
            final_keys
                .entry(key.as_str())
                .or_default()
                .push((state.node, value));
        }
    }
    let empty = KeyOps::default();
    let keys: BTreeSet<&str> = by_key.keys().chain(final_keys.keys()).copied().collect();
    report.keys_checked = keys.len() as u64;
    for key in keys {
        let ops = by_key.get(key).unwrap_or(&empty);
        let seen = final_keys.get(key).map(Vec::as_slice).unwrap_or_default();
        check_key(key, ops, seen, &mut report);
    }
    report
}

fn split<'a>(history: &'a [Op], malformed: &mut u64) -> BTreeMap<&'a str, KeyOps<'a>> {
    let mut by_key: BTreeMap<&str, KeyOps> = BTreeMap::new();
    for op in history {
        let ops = by_key.entry(op.key.as_str()).or_default();
        let (timed, bad) = timed(op);
        *malformed += u64::from(bad);
        match (op.kind, op.outcome) {
            (OpKind::Read, Outcome::Ok) => ops.ok_reads.push(timed),
            (OpKind::Read, _) => {}
            (_, Outcome::Fail) => ops.failed_values.extend(op.value.as_deref()),
            _ => ops.writes.push(timed),
        }
    }
    by_key
}

/// The op's interval, and whether its record is malformed.
fn timed(op: &Op) -> (Timed<'_>, bool) {
    let end_ns = op.end_ns();
    let missing = op.outcome != Outcome::Unknown && op.complete_ns.is_none();
    let backwards = end_ns < op.invoke_ns;
    let end_ns = end_ns.max(op.invoke_ns);
    (
        Timed {
            op,
            invoke_ns: op.invoke_ns,
            end_ns,
        },
        missing || backwards,
    )
}

fn check_key(key: &str, ops: &KeyOps, seen: &[(u64, &FinalValue)], report: &mut LostReport) {
    let finals = group_finals(seen);
    if seen.is_empty() && !ops.writes.is_empty() {
        report.keys_not_read.push(key.to_string());
    }
    if finals.len() > 1 {
        let values = finals
            .iter()
            .map(|(v, n)| (v.map(str::to_string), n.clone()));
        report.divergent_keys.push(Divergence {
            key: key.to_string(),
            values: values.collect(),
        });
    }
    for (value, nodes) in &finals {
        lost_writes(key, ops, *value, nodes, report);
    }
    classify_unknown(ops, &finals, &mut report.unknown_writes);
    stale_and_phantom_reads(key, ops, report);
    revision_regressions(key, ops, &mut report.revision_regressions);
}

/// Distinct final values, each with the nodes that returned it.
fn group_finals<'a>(seen: &[(u64, &'a FinalValue)]) -> BTreeMap<Option<&'a str>, Vec<u64>> {
    let mut finals: BTreeMap<Option<&str>, Vec<u64>> = BTreeMap::new();
    for (node, v) in seen {
        finals.entry(v.value.as_deref()).or_default().push(*node);
    }
    finals
}

fn lost_writes(
    key: &str,
    ops: &KeyOps,
    value: Option<&str>,
    nodes: &[u64],
    report: &mut LostReport,
) {
    let producer = value.and_then(|v| ops.writers_of(v).max_by_key(|t| t.end_ns));
    if let (Some(v), None) = (value, producer) {
        report.phantom_finals.push(PhantomValue {
            key: key.to_string(),
            value: v.to_string(),
            op_id: None,
            nodes: nodes.to_vec(),
            written_by_failed_op: ops.failed_values.contains(v),
        });
        return;
    }
    let after_ns = producer.map_or(0, |f| f.end_ns);
    let lost = ops.ok_writes().filter(|w| match value {
        None => true,
        Some(v) => w.op.value.as_deref() != Some(v) && w.invoke_ns > after_ns,
    });
    for w in lost {
        report.lost_writes.push(LostWrite {
            op_id: w.op.id,
            key: key.to_string(),
            value: w.op.value.clone(),
            final_value: value.map(str::to_string),
            nodes: nodes.to_vec(),
            final_write_op_id: producer.map(|f| f.op.id),
        });
    }
}

fn classify_unknown(
    ops: &KeyOps,
    finals: &BTreeMap<Option<&str>, Vec<u64>>,
    out: &mut UnknownWrites,
) {
    let unknown = ops
        .writes
        .iter()
        .filter(|t| t.op.outcome == Outcome::Unknown);
    for t in unknown {
        let value = t.op.value.as_deref();
        if value.is_some() && finals.contains_key(&value) {
            out.recovered += 1;
        } else if value.is_some() && ops.ok_reads.iter().any(|r| r.op.value.as_deref() == value) {
            out.read_later += 1;
        } else {
            out.never_seen += 1;
        }
    }
}

/// Ok writes by invoke, with the earliest-ending write among each suffix.
struct Overwrites<'a> {
    by_invoke: Vec<Timed<'a>>,
    /// `suffix_min[i]`: the write ending first among `by_invoke[i..]`.
    suffix_min: Vec<Timed<'a>>,
}

impl<'a> Overwrites<'a> {
    fn new(ops: &KeyOps<'a>) -> Self {
        let mut by_invoke: Vec<Timed> = ops.ok_writes().copied().collect();
        by_invoke.sort_by_key(|t| (t.invoke_ns, t.op.id));
        let mut suffix_min = by_invoke.clone();
        for i in (0..suffix_min.len().saturating_sub(1)).rev() {
            if suffix_min[i + 1].end_ns < suffix_min[i].end_ns {
                suffix_min[i] = suffix_min[i + 1];
            }
        }
        Self {
            by_invoke,
            suffix_min,
        }
    }

    /// The Ok write ending first among those invoked after `after_ns` (all, for `None`).
    fn first_after(&self, after_ns: Option<u64>) -> Option<&Timed<'a>> {
        let from = match after_ns {
            None => 0,
            Some(t) => self.by_invoke.partition_point(|w| w.invoke_ns <= t),
        };
        self.suffix_min.get(from)
    }
}

fn stale_and_phantom_reads(key: &str, ops: &KeyOps, report: &mut LostReport) {
    let overwrites = Overwrites::new(ops);
    for r in &ops.ok_reads {
        let value = r.op.value.as_deref();
        let after_ns = match value {
            None => None,
            Some(v) => match ops.writers_of(v).map(|t| t.end_ns).max() {
                Some(end_ns) => Some(end_ns),
                None => {
                    report.phantom_reads.push(PhantomValue {
                        key: key.to_string(),
                        value: v.to_string(),
                        op_id: Some(r.op.id),
                        nodes: r.op.node.into_iter().collect(),
                        written_by_failed_op: ops.failed_values.contains(v),
                    });
                    continue;
                }
            },
        };
        let Some(w) = overwrites.first_after(after_ns) else {
            continue;
        };
        if w.end_ns < r.invoke_ns && w.op.value.as_deref() != value {
            note_stale(&mut report.stale_reads, r.op.id, r.invoke_ns - w.end_ns);
        }
    }
}

fn note_stale(stale: &mut StaleReads, op_id: u64, staleness_ns: u64) {
    stale.count += 1;
    stale.worst_staleness_ms = stale.worst_staleness_ms.max(staleness_ns as f64 / 1e6);
    if stale.op_ids.len() < MAX_EXAMPLES {
        stale.op_ids.push(op_id);
    }
}

fn revision_regressions(key: &str, ops: &KeyOps, out: &mut Findings<RevisionRegression>) {
    let with_rev = |t: &&Timed| t.op.revision.is_some() && t.end_ns != u64::MAX;
    let mut sources: Vec<&Timed> = ops
        .ok_reads
        .iter()
        .chain(ops.ok_writes())
        .filter(with_rev)
        .collect();
    sources.sort_by_key(|t| t.end_ns);
    let mut targets: Vec<&Timed> = ops.ok_reads.iter().filter(with_rev).collect();
    targets.sort_by_key(|t| t.invoke_ns);
    let mut highest: Option<(u64, u64)> = None;
    let mut next = 0;
    for r in targets {
        while next < sources.len() && sources[next].end_ns < r.invoke_ns {
            let s = sources[next];
            let rev = s.op.revision.unwrap_or(0);
            if highest.is_none_or(|(h, _)| rev > h) {
                highest = Some((rev, s.op.id));
            }
            next += 1;
        }
        let revision = r.op.revision.unwrap_or(0);
        if let Some((earlier_revision, earlier_op_id)) = highest.filter(|(h, _)| *h > revision) {
            out.push(RevisionRegression {
                key: key.to_string(),
                op_id: r.op.id,
                revision,
                earlier_op_id,
                earlier_revision,
            });
        }
    }
}

#[cfg(test)]
mod tests;
