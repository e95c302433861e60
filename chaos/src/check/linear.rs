//! Per-key linearizability of a register history.
//!
//! **Model.** Every key is a register whose value is `None` (absent) until written. `Create`
//! and `Write` set the value (a `Create` over a present key would be refused by the store, so
//! it never reaches the model as anything but a failed op); a `Read` returns the value. The
//! history is split by key and each key is checked on its own: linearizability is local
//! (P-compositional), so the history is linearizable iff every key's sub-history is.
//!
//! **What goes in.** Ok reads, and writes that are Ok or Unknown. Failed or unknown reads tell
//! nothing and are dropped; failed writes never happened and are dropped. An Ok op's interval
//! is `[invoke_ns, complete_ns]`; two ops whose intervals touch (one completes at the instant
//! the other is invoked) count as concurrent. Malformed ops are counted and read
//! defensively: an Ok op without a completion time ends after every other event of its key,
//! one that completes before its invoke ends at its invoke, and a write without a value is
//! dropped.
//!
//! **Unknown writes** may take effect at any instant after their invoke, or never. Two exact
//! (verdict-preserving) reductions bound them: let `R` be the latest completion of an Ok read
//! of the write's value. If there is no such read, or `R < invoke_ns`, no read can observe the
//! write, so it is dropped. Otherwise it ends at `max(R, invoke_ns)`: taking effect after
//! every read of its value completed is the same as never taking effect, which stays
//! possible as a no-op alternative unless its value is written by no other op (then the read
//! of the value needs it).
//!
//! **Search.** Wing & Gong's backtracking over the list of call and return events, with
//! Lowe's memoisation: a configuration (set of linearized ops, register value) seen once is
//! never explored again. A safe pruning: a write may not replace a value that some
//! not-yet-linearized read still returns when no other op writes that value (or it is
//! `None`, which no op writes): that read could never be linearized afterwards.
//!
//! **Budget.** A key whose search reaches [`Budget::max_states_per_key`] memoised states, or
//! that is still running at [`Budget::time_limit`] after the check started, is `Unknown`,
//! never `Valid`.
//!
//! **Invalid** carries a window: the op whose return was reached at the deepest point of the
//! search without it being linearizable (the `stuck` op), the unlinearized ops concurrent
//! with it at that point, the reads that held it back (when it is a write the pruning above
//! refused), and the length and last ops of the longest linearizable prefix.

mod search;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::history::{Op, OpKind, Outcome};
use search::Search;

/// How much search the checker may spend.
#[derive(Clone, Debug, Serialize)]
pub struct Budget {
    /// Memoised configurations per key before the key is `Unknown`.
    pub max_states_per_key: u64,
    /// Wall time for the whole check, from its start; keys not done by then are `Unknown`.
    #[serde(rename = "time_limit_ms", serialize_with = "duration_ms")]
    pub time_limit: Duration,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            max_states_per_key: 2_000_000,
            time_limit: Duration::from_secs(120),
        }
    }
}

fn duration_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u128(d.as_millis())
}

/// The whole check.
#[derive(Clone, Debug, Serialize)]
pub struct LinearReport {
    pub summary: LinearSummary,
    /// One entry per key, in key order.
    pub keys: Vec<KeyReport>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct LinearSummary {
    pub keys_checked: u64,
    /// Ops that entered the model (after dropping failed ops and unobservable unknown writes).
    pub ops_checked: u64,
    /// Failed ops, unknown reads and unknown writes that no read observed.
    pub ops_dropped: u64,
    /// Ops with a completion before their invoke, or Ok without a completion time.
    pub malformed_ops: u64,
    pub valid: u64,
    pub invalid: u64,
    pub unknown: u64,
    pub elapsed_ms: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct KeyReport {
    pub key: String,
    pub ops: u64,
    /// Memoised configurations the search visited.
    pub states: u64,
    pub elapsed_us: u64,
    pub verdict: KeyVerdict,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum KeyVerdict {
    Valid,
    Invalid(Box<Violation>),
    Unknown { reason: String },
}

/// Where the search got stuck, for a person to read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The op whose completion came before it could be linearized, at the deepest point.
    pub stuck_op_id: u64,
    /// Not-yet-linearized ops invoked before the stuck op completed, at that point.
    pub concurrent_op_ids: Vec<u64>,
    /// When the stuck op is a write held back because the value it would replace is still
    /// returned by reads not yet linearized (and no other op writes that value): those reads.
    pub waiting_read_ids: Vec<u64>,
    /// Ops in the longest linearizable prefix found.
    pub prefix_len: u64,
    /// Its last ops, in linearization order.
    pub prefix_tail_ids: Vec<u64>,
    /// The register after that prefix (`None`: absent).
    pub value_after_prefix: Option<String>,
    /// The stuck op, then the concurrent ops, then the waiting reads, described.
    pub window: Vec<String>,
}

/// Checks every key of `history` within `budget`.
pub fn check_linear(history: &[Op], budget: &Budget) -> LinearReport {
    let started = Instant::now();
    let deadline = started.checked_add(budget.time_limit);
    let mut by_key: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in history {
        by_key.entry(op.key.as_str()).or_default().push(op);
    }
    let mut summary = LinearSummary::default();
    let keys: Vec<KeyReport> = by_key
        .into_iter()
        .map(|(key, ops)| check_key(key, &ops, budget, deadline, &mut summary))
        .collect();
    summary.keys_checked = keys.len() as u64;
    summary.elapsed_ms = millis(started.elapsed());
    LinearReport { summary, keys }
}

fn check_key(
    key: &str,
    ops: &[&Op],
    budget: &Budget,
    deadline: Option<Instant>,
    summary: &mut LinearSummary,
) -> KeyReport {
    let started = Instant::now();
    let prepared = prepare(ops);
    summary.ops_checked += prepared.ops.len() as u64;
    summary.ops_dropped += prepared.dropped;
    summary.malformed_ops += prepared.malformed;
    let (verdict, states) = if deadline.is_some_and(|d| started >= d) {
        let reason = "time limit reached before the key was checked".to_string();
        (KeyVerdict::Unknown { reason }, 0)
    } else {
        Search::new(&prepared, budget, deadline).run()
    };
    match verdict {
        KeyVerdict::Valid => summary.valid += 1,
        KeyVerdict::Invalid(_) => summary.invalid += 1,
        KeyVerdict::Unknown { .. } => summary.unknown += 1,
    }
    KeyReport {
        key: key.to_string(),
        ops: prepared.ops.len() as u64,
        states,
        elapsed_us: micros(started.elapsed()),
        verdict,
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What an op does to the register; values are interned, 0 is `None`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Effect {
    Set(u32),
    /// An unknown write that may also never have happened.
    MaybeSet(u32),
    Read(u32),
}

#[derive(Clone, Debug)]
struct ModelOp<'a> {
    op: &'a Op,
    invoke_ns: u64,
    end_ns: u64,
    effect: Effect,
}

/// One key's ops, ready to search, sorted by invoke.
#[derive(Debug, Default)]
struct Prepared<'a> {
    ops: Vec<ModelOp<'a>>,
    /// Interned values; index 0 is `None`.
    values: Vec<Option<String>>,
    dropped: u64,
    malformed: u64,
}

fn prepare<'a>(ops: &[&'a Op]) -> Prepared<'a> {
    let mut p = Prepared {
        values: vec![None],
        ..Prepared::default()
    };
    let horizon_ns = horizon(ops);
    let mut ids: HashMap<&str, u32> = HashMap::new();
    let mut read_end_ns: HashMap<u32, u64> = HashMap::new();
    let mut unknown = Vec::new();
    for &op in ops {
        let value = intern(&mut ids, &mut p.values, op.value.as_deref());
        let (invoke_ns, end_ns, malformed) = interval(op, horizon_ns);
        let valueless_write = op.kind != OpKind::Read && value == 0;
        p.malformed += u64::from(malformed || valueless_write);
        let effect = match (op.kind, op.outcome) {
            _ if valueless_write => None,
            (_, Outcome::Fail) | (OpKind::Read, Outcome::Unknown) => None,
            (OpKind::Read, Outcome::Ok) => {
                let latest = read_end_ns.entry(value).or_insert(end_ns);
                *latest = (*latest).max(end_ns);
                Some(Effect::Read(value))
            }
            (_, Outcome::Ok) => Some(Effect::Set(value)),
            (_, Outcome::Unknown) => {
                unknown.push((op, invoke_ns, value));
                continue;
            }
        };
        match effect {
            Some(effect) => p.ops.push(ModelOp {
                op,
                invoke_ns,
                end_ns,
                effect,
            }),
            None => p.dropped += 1,
        }
    }
    for (op, invoke_ns, value) in unknown {
        match read_end_ns.get(&value) {
            Some(&read_ns) if read_ns >= invoke_ns => {
                let effect = Effect::MaybeSet(value);
                p.ops.push(ModelOp {
                    op,
                    invoke_ns,
                    end_ns: read_ns,
                    effect,
                });
            }
            _ => p.dropped += 1,
        }
    }
    settle_unknown_writes(&mut p.ops);
    p.ops.sort_by_key(|m| (m.invoke_ns, m.end_ns, m.op.id));
    p
}

/// An unknown write whose value no other op writes is needed by the reads of that value.
fn settle_unknown_writes(ops: &mut [ModelOp]) {
    let mut writers: HashMap<u32, u32> = HashMap::new();
    for m in ops.iter() {
        if let Effect::Set(v) | Effect::MaybeSet(v) = m.effect {
            *writers.entry(v).or_default() += 1;
        }
    }
    for m in ops.iter_mut() {
        if let Effect::MaybeSet(v) = m.effect {
            if writers.get(&v) == Some(&1) {
                m.effect = Effect::Set(v);
            }
        }
    }
}

/// After every finite time of the key's ops.
fn horizon(ops: &[&Op]) -> u64 {
    let finite = ops
        .iter()
        .flat_map(|op| [Some(op.invoke_ns), op.complete_ns])
        .flatten();
    finite.max().unwrap_or(0).saturating_add(1)
}

/// `(invoke, end, malformed)`; unknown ops end at the horizon (before the reductions).
fn interval(op: &Op, horizon_ns: u64) -> (u64, u64, bool) {
    match (op.outcome, op.complete_ns) {
        (Outcome::Unknown, _) => (op.invoke_ns, horizon_ns, false),
        (_, None) => (op.invoke_ns, horizon_ns, op.outcome == Outcome::Ok),
        (_, Some(done)) if done < op.invoke_ns => (op.invoke_ns, op.invoke_ns, true),
        (_, Some(done)) => (op.invoke_ns, done, false),
    }
}

fn intern<'a>(
    ids: &mut HashMap<&'a str, u32>,
    values: &mut Vec<Option<String>>,
    v: Option<&'a str>,
) -> u32 {
    let Some(v) = v else { return 0 };
    let next = u32::try_from(values.len()).unwrap_or(u32::MAX);
    *ids.entry(v).or_insert_with(|| {
        values.push(Some(v.to_string()));
        next
    })
}

#[cfg(test)]
mod tests;
