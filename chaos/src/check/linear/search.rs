//! The Wing–Gong–Lowe search over one key's prepared ops (see the parent module for the model
//! and the reductions applied before it).
//!
//! Ops sit in a doubly linked list of call and return events in time order. The search walks
//! the list from its head: at a call it tries to linearize the op (apply it to the register,
//! and skip the configuration if already memoised), lifting the op's two events out of the
//! list and starting again from the head; at a return it has found an op that had to be
//! linearized by then and was not, so it backtracks the last linearized op and tries the
//! events after it. The list empty means every op was linearized.

use std::collections::HashSet;
use std::time::Instant;

use super::{Budget, Effect, KeyVerdict, ModelOp, Prepared, Violation};
use crate::history::{OpKind, Outcome};

/// The deadline is read once per this many search steps.
const CLOCK_EVERY_STEPS: u64 = 4096;
/// Concurrent ops shown in a violation.
const WINDOW_OPS: usize = 32;
/// Ops of the longest prefix shown in a violation.
const PREFIX_TAIL_OPS: usize = 16;
/// End of the event list.
const NIL: u32 = u32::MAX;

/// A memoised configuration: linearized ops (all below `prefix`, plus `extra`) and value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct CacheKey {
    prefix: u32,
    extra: Box<[u32]>,
    value: u32,
}

#[derive(Clone, Copy, Debug)]
struct Frame {
    /// Call entry of the linearized op.
    entry: u32,
    value_before: u32,
    /// Which alternative of the op's effect was taken (1: the no-op of a `MaybeSet`).
    alt: u8,
}

/// The deepest point reached, for the report.
#[derive(Debug, Default)]
struct Best {
    depth: usize,
    tail: Vec<u32>,
    value: u32,
    stuck: Option<Stuck>,
}

#[derive(Clone, Debug, Default)]
struct Stuck {
    op: u32,
    concurrent: Vec<u32>,
    waiting_reads: Vec<u32>,
}

/// Wing–Gong–Lowe search over one key. Entry `2i` is op `i`'s call, `2i + 1` its return.
pub(super) struct Search<'p, 'a> {
    p: &'p Prepared<'a>,
    head: u32,
    next: Vec<u32>,
    prev: Vec<u32>,
    linearized: Vec<u64>,
    count: usize,
    prefix: usize,
    /// Not-yet-linearized reads per value.
    pending_reads: Vec<u32>,
    /// Every read op per value.
    reads_of: Vec<Vec<u32>>,
    /// Whether at most one op writes the value (always for `None`).
    unique: Vec<bool>,
    cache: HashSet<CacheKey>,
    stack: Vec<Frame>,
    best: Best,
    max_states: u64,
    deadline: Option<Instant>,
}

impl<'p, 'a> Search<'p, 'a> {
    pub(super) fn new(p: &'p Prepared<'a>, budget: &Budget, deadline: Option<Instant>) -> Self {
        let n = p.ops.len();
        let mut s = Search {
            p,
            head: (2 * n) as u32,
            next: vec![NIL; 2 * n + 1],
            prev: vec![NIL; 2 * n + 1],
            linearized: vec![0; n.div_ceil(64)],
            count: 0,
            prefix: 0,
            pending_reads: vec![0; p.values.len()],
            reads_of: vec![Vec::new(); p.values.len()],
            unique: vec![true; p.values.len()],
            cache: HashSet::new(),
            stack: Vec::new(),
            best: Best::default(),
            max_states: budget.max_states_per_key,
            deadline,
        };
        s.link_events();
        s.count_values();
        s
    }

    /// Events by time; at one instant calls come first, so touching intervals overlap.
    fn link_events(&mut self) {
        let mut events: Vec<(u64, u32)> = Vec::with_capacity(2 * self.p.ops.len());
        for (i, m) in self.p.ops.iter().enumerate() {
            events.push((m.invoke_ns, 2 * i as u32));
            events.push((m.end_ns, 2 * i as u32 + 1));
        }
        events.sort_by_key(|&(t, e)| (t, e & 1, e));
        let mut last = self.head;
        for (_, e) in events {
            self.next[last as usize] = e;
            self.prev[e as usize] = last;
            last = e;
        }
    }

    fn count_values(&mut self) {
        let mut writers = vec![0u32; self.p.values.len()];
        for (i, m) in self.p.ops.iter().enumerate() {
            match m.effect {
                Effect::Read(v) => {
                    self.pending_reads[v as usize] += 1;
                    self.reads_of[v as usize].push(i as u32);
                }
                Effect::Set(v) | Effect::MaybeSet(v) => writers[v as usize] += 1,
            }
        }
        // No op writes `None` (valueless writes are dropped), so it never comes back.
        for (v, &w) in writers.iter().enumerate() {
            self.unique[v] = w <= 1;
        }
    }

    /// The verdict and the number of memoised states.
    pub(super) fn run(mut self) -> (KeyVerdict, u64) {
        let verdict = self.search();
        (verdict, self.cache.len() as u64)
    }

    fn search(&mut self) -> KeyVerdict {
        let mut entry = self.next[self.head as usize];
        let mut alt_from = 0u8;
        let mut value = 0u32;
        let mut steps = 0u64;
        while self.next[self.head as usize] != NIL {
            steps += 1;
            if steps.is_multiple_of(CLOCK_EVERY_STEPS) && self.past_deadline() {
                let states = self.cache.len();
                return unknown(format!("time limit reached after {states} states"));
            }
            if entry == NIL {
                return unknown("internal: ran off the event list".to_string());
            }
            if !is_call(entry) {
                self.note_stuck(entry, value);
                let Some(frame) = self.stack.pop() else {
                    return self.invalid();
                };
                self.undo(frame.entry / 2);
                value = frame.value_before;
                entry = frame.entry;
                alt_from = frame.alt + 1;
                continue;
            }
            match self.try_linearize(entry / 2, value, alt_from) {
                Some((alt, after)) => {
                    self.stack.push(Frame {
                        entry,
                        value_before: value,
                        alt,
                    });
                    value = after;
                    self.note_depth(value);
                    if self.cache.len() as u64 >= self.max_states && self.not_done() {
                        let states = self.max_states;
                        return unknown(format!("state budget of {states} states exhausted"));
                    }
                    entry = self.next[self.head as usize];
                }
                None => entry = self.next[entry as usize],
            }
            alt_from = 0;
        }
        KeyVerdict::Valid
    }

    fn past_deadline(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    fn not_done(&self) -> bool {
        self.next[self.head as usize] != NIL
    }

    /// Tries op `i`'s alternatives from `alt_from`; on success it is linearized and lifted.
    fn try_linearize(&mut self, i: u32, value: u32, alt_from: u8) -> Option<(u8, u32)> {
        let effect = self.p.ops[i as usize].effect;
        let alternatives: u8 = if matches!(effect, Effect::MaybeSet(_)) {
            2
        } else {
            1
        };
        for alt in alt_from..alternatives {
            let Some(after) = self.step(effect, alt, value) else {
                continue;
            };
            self.mark(i, effect, true);
            if self.cache.insert(self.cache_key(after)) {
                self.lift(i);
                return Some((alt, after));
            }
            self.mark(i, effect, false);
        }
        None
    }

    /// The register after `effect` (alternative `alt`), or `None` if not allowed here.
    fn step(&self, effect: Effect, alt: u8, value: u32) -> Option<u32> {
        match (effect, alt) {
            (Effect::Read(v), _) => (v == value).then_some(value),
            (Effect::MaybeSet(_), 1) => Some(value),
            (Effect::Set(v) | Effect::MaybeSet(v), _) => {
                (!self.strands_reads(value, v)).then_some(v)
            }
        }
    }

    /// Replacing `value` by `v` would leave reads of `value` that can never be linearized.
    fn strands_reads(&self, value: u32, v: u32) -> bool {
        let at = value as usize;
        value != v && self.pending_reads[at] > 0 && self.unique[at]
    }

    fn mark(&mut self, i: u32, effect: Effect, on: bool) {
        let (word, bit) = (i as usize / 64, 1u64 << (i % 64));
        if on {
            self.linearized[word] |= bit;
            self.count += 1;
            while self.prefix < self.p.ops.len() && self.is_linearized(self.prefix) {
                self.prefix += 1;
            }
        } else {
            self.linearized[word] &= !bit;
            self.count -= 1;
            self.prefix = self.prefix.min(i as usize);
        }
        if let Effect::Read(v) = effect {
            let pending = &mut self.pending_reads[v as usize];
            *pending = if on { *pending - 1 } else { *pending + 1 };
        }
    }

    fn is_linearized(&self, i: usize) -> bool {
        self.linearized[i / 64] & (1u64 << (i % 64)) != 0
    }

    fn cache_key(&self, value: u32) -> CacheKey {
        let wanted = self.count - self.prefix;
        let mut extra = Vec::with_capacity(wanted);
        let mut word = self.prefix / 64;
        while extra.len() < wanted && word < self.linearized.len() {
            let mut bits = self.linearized[word];
            while bits != 0 {
                let i = word * 64 + bits.trailing_zeros() as usize;
                if i > self.prefix {
                    extra.push(i as u32);
                }
                bits &= bits - 1;
            }
            word += 1;
        }
        CacheKey {
            prefix: self.prefix as u32,
            extra: extra.into(),
            value,
        }
    }

    fn undo(&mut self, i: u32) {
        self.unlift(i);
        self.mark(i, self.p.ops[i as usize].effect, false);
    }

    fn unlink(&mut self, e: u32) {
        let (p, n) = (self.prev[e as usize], self.next[e as usize]);
        self.next[p as usize] = n;
        if n != NIL {
            self.prev[n as usize] = p;
        }
    }

    fn relink(&mut self, e: u32) {
        let (p, n) = (self.prev[e as usize], self.next[e as usize]);
        self.next[p as usize] = e;
        if n != NIL {
            self.prev[n as usize] = e;
        }
    }

    fn lift(&mut self, i: u32) {
        self.unlink(2 * i);
        self.unlink(2 * i + 1);
    }

    fn unlift(&mut self, i: u32) {
        self.relink(2 * i + 1);
        self.relink(2 * i);
    }

    fn note_depth(&mut self, value: u32) {
        if self.stack.len() <= self.best.depth {
            return;
        }
        let from = self.stack.len().saturating_sub(PREFIX_TAIL_OPS);
        self.best.depth = self.stack.len();
        self.best.tail = self.stack[from..].iter().map(|f| f.entry / 2).collect();
        self.best.value = value;
        self.best.stuck = None;
    }

    /// At the deepest point, the first return reached names the stuck op.
    fn note_stuck(&mut self, ret: u32, value: u32) {
        if self.stack.len() != self.best.depth || self.best.stuck.is_some() {
            return;
        }
        let op = ret / 2;
        let mut concurrent = Vec::new();
        let mut e = self.next[self.head as usize];
        while e != ret && e != NIL && concurrent.len() < WINDOW_OPS {
            if is_call(e) && e / 2 != ret / 2 {
                concurrent.push(e / 2);
            }
            e = self.next[e as usize];
        }
        let waiting_reads = match self.p.ops[op as usize].effect {
            Effect::Set(v) if self.strands_reads(value, v) => self.pending_reads_of(value),
            _ => Vec::new(),
        };
        self.best.stuck = Some(Stuck {
            op,
            concurrent,
            waiting_reads,
        });
    }

    fn pending_reads_of(&self, value: u32) -> Vec<u32> {
        let reads = self.reads_of[value as usize].iter().copied();
        let pending = reads.filter(|&i| !self.is_linearized(i as usize));
        pending.take(WINDOW_OPS).collect()
    }

    fn invalid(&self) -> KeyVerdict {
        let ops = &self.p.ops;
        let id = |i: &u32| ops[*i as usize].op.id;
        let stuck = self.best.stuck.clone().unwrap_or_default();
        let others = stuck.concurrent.iter().chain(&stuck.waiting_reads);
        let window = std::iter::once(&stuck.op).chain(others);
        KeyVerdict::Invalid(Box::new(Violation {
            stuck_op_id: id(&stuck.op),
            concurrent_op_ids: stuck.concurrent.iter().map(id).collect(),
            waiting_read_ids: stuck.waiting_reads.iter().map(id).collect(),
            prefix_len: self.best.depth as u64,
            prefix_tail_ids: self.best.tail.iter().map(id).collect(),
            value_after_prefix: self.p.values[self.best.value as usize].clone(),
            window: window.map(|&i| describe(&ops[i as usize])).collect(),
        }))
    }
}

/// Entry `2i` is op `i`'s call, `2i + 1` its return.
fn is_call(entry: u32) -> bool {
    entry & 1 == 0
}

fn unknown(reason: String) -> KeyVerdict {
    KeyVerdict::Unknown { reason }
}

fn describe(m: &ModelOp) -> String {
    let op = m.op;
    let kind = match op.kind {
        OpKind::Create => "create",
        OpKind::Write => "write",
        OpKind::Read => "read",
    };
    let value = op.value.as_deref().unwrap_or("<absent>");
    let end = if op.outcome == Outcome::Unknown {
        "unknown".to_string()
    } else {
        m.end_ns.to_string()
    };
    format!(
        "op {} client {} {kind} {value} [{} ns, {end}] {:?}",
        op.id, op.client, m.invoke_ns, op.outcome
    )
}
