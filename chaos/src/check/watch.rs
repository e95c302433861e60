//! Watch stream properties, after etcd's robustness suite.
//!
//! A [`WatchStream`] is what one watcher received, in order, from a watch opened *after*
//! `start_revision` (exclusive: the first event wanted is the first one above it) and
//! resumed after each revision of `resumed_from`, on reconnection. Every stream is taken to
//! watch the same keys. An event is identified by `(revision, key)`: one revision may carry
//! events on several keys, never two on one key.
//!
//! The **truth** is the union of every stream's events, plus, when a history is given, one
//! event per Ok `Create`/`Write` with a known revision. Properties, each violation counted:
//!
//! - **ordered**: within a stream, an event's revision is never below the previous event's.
//!   Several events at one revision are fine if their keys differ.
//! - **unique**: no `(revision, key)` twice in a stream.
//! - **reliable**: a stream whose last event has revision `b` holds every true event with a
//!   revision in `(start_revision, b]`; each true event missing is a violation.
//! - **resumable**: for the start and for each resume point `R`, the first event of the
//!   stream above `R` has the first true revision above `R`; also the stream's first event
//!   is above `start_revision`.
//! - **agreement**: every event with the same `(revision, key)` has the same kind, across
//!   all streams (what is missing from a stream is a reliability violation, not this).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ops::Bound;

use serde::{Deserialize, Serialize};

use super::Findings;
use crate::history::{Op, OpKind, Outcome};

/// One event a watcher received.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchEvent {
    pub watcher: u64,
    /// The node whose stream delivered it.
    pub node: u64,
    pub revision: u64,
    pub key: String,
    /// As the store names it (e.g. put, delete).
    pub kind: String,
    /// When it arrived, on the run's clock.
    pub at_ns: u64,
}

/// Everything one watcher received, in arrival order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchStream {
    pub watcher: u64,
    /// The node the watch was first opened on.
    pub node: u64,
    /// The watch asked for events after this revision.
    pub start_revision: u64,
    pub events: Vec<WatchEvent>,
    /// Revisions after which the watch was resumed, in order.
    pub resumed_from: Vec<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct WatchReport {
    pub streams: u64,
    pub events: u64,
    pub true_events: u64,
    pub ordered: Findings<WatchViolation>,
    pub unique: Findings<WatchViolation>,
    pub reliable: Findings<WatchViolation>,
    pub resumable: Findings<WatchViolation>,
    pub agreement: Findings<WatchViolation>,
}

impl WatchReport {
    /// Violations of every property together.
    pub fn violations(&self) -> u64 {
        let all = [
            &self.ordered,
            &self.unique,
            &self.reliable,
            &self.resumable,
            &self.agreement,
        ];
        all.iter().map(|f| f.count).sum()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WatchViolation {
    pub watcher: u64,
    pub revision: u64,
    pub key: String,
    pub detail: String,
}

/// True events: keys at each revision.
type Truth<'a> = BTreeMap<u64, BTreeSet<&'a str>>;

/// Checks `streams`; the Ok writes of `history` with a revision join the truth (pass `&[]`
/// to judge the streams against each other only).
pub fn check_watch(streams: &[WatchStream], history: &[Op]) -> WatchReport {
    let truth = truth(streams, history);
    let mut report = WatchReport {
        streams: streams.len() as u64,
        events: streams.iter().map(|s| s.events.len() as u64).sum(),
        true_events: truth.values().map(|keys| keys.len() as u64).sum(),
        ..WatchReport::default()
    };
    for stream in streams {
        check_order_and_uniqueness(stream, &mut report);
        check_reliable(stream, &truth, &mut report.reliable);
        check_resumable(stream, &truth, &mut report.resumable);
    }
    check_agreement(streams, &mut report.agreement);
    report
}

fn truth<'a>(streams: &'a [WatchStream], history: &'a [Op]) -> Truth<'a> {
    let mut truth = Truth::new();
    for e in streams.iter().flat_map(|s| &s.events) {
        truth.entry(e.revision).or_default().insert(e.key.as_str());
    }
    let ok_write = |op: &&Op| op.kind != OpKind::Read && op.outcome == Outcome::Ok;
    for op in history.iter().filter(ok_write) {
        if let Some(revision) = op.revision {
            truth.entry(revision).or_default().insert(op.key.as_str());
        }
    }
    truth
}

fn violation(watcher: u64, revision: u64, key: &str, detail: String) -> WatchViolation {
    WatchViolation {
        watcher,
        revision,
        key: key.to_string(),
        detail,
    }
}

fn check_order_and_uniqueness(stream: &WatchStream, report: &mut WatchReport) {
    let mut seen: HashSet<(u64, &str)> = HashSet::new();
    let mut previous: Option<&WatchEvent> = None;
    for (at, e) in stream.events.iter().enumerate() {
        if !seen.insert((e.revision, e.key.as_str())) {
            let detail = format!("event {at} repeats an earlier event");
            report
                .unique
                .push(violation(stream.watcher, e.revision, &e.key, detail));
        } else if let Some(p) = previous.filter(|p| e.revision < p.revision) {
            let detail = format!("event {at} comes after revision {}", p.revision);
            report
                .ordered
                .push(violation(stream.watcher, e.revision, &e.key, detail));
        }
        previous = Some(e);
    }
}

fn check_reliable(stream: &WatchStream, truth: &Truth, out: &mut Findings<WatchViolation>) {
    let Some(last) = stream.events.iter().map(|e| e.revision).max() else {
        return;
    };
    if last <= stream.start_revision {
        return;
    }
    let got: HashSet<(u64, &str)> = stream
        .events
        .iter()
        .map(|e| (e.revision, e.key.as_str()))
        .collect();
    let range = (
        Bound::Excluded(stream.start_revision),
        Bound::Included(last),
    );
    for (&revision, keys) in truth.range(range) {
        for key in keys.iter().filter(|k| !got.contains(&(revision, **k))) {
            let detail = format!("missing, while the stream reached revision {last}");
            out.push(violation(stream.watcher, revision, key, detail));
        }
    }
}

fn check_resumable(stream: &WatchStream, truth: &Truth, out: &mut Findings<WatchViolation>) {
    if let Some(first) = stream
        .events
        .first()
        .filter(|e| e.revision <= stream.start_revision)
    {
        let detail = format!(
            "first event is not after the start revision {}",
            stream.start_revision
        );
        out.push(violation(
            stream.watcher,
            first.revision,
            &first.key,
            detail,
        ));
    }
    let points = std::iter::once(stream.start_revision).chain(stream.resumed_from.iter().copied());
    for from in points {
        let Some(got) = stream.events.iter().find(|e| e.revision > from) else {
            continue;
        };
        let wanted = truth
            .range((Bound::Excluded(from), Bound::Unbounded))
            .next();
        let Some((&wanted, _)) = wanted else { continue };
        if got.revision != wanted {
            let detail = format!("after revision {from} the first event should be at {wanted}");
            out.push(violation(stream.watcher, got.revision, &got.key, detail));
        }
    }
}

fn check_agreement(streams: &[WatchStream], out: &mut Findings<WatchViolation>) {
    // (revision, key) -> kind -> watchers that saw that kind.
    let mut kinds: BTreeMap<(u64, &str), BTreeMap<&str, BTreeSet<u64>>> = BTreeMap::new();
    for s in streams {
        for e in &s.events {
            let by_kind = kinds.entry((e.revision, e.key.as_str())).or_default();
            by_kind
                .entry(e.kind.as_str())
                .or_default()
                .insert(s.watcher);
        }
    }
    for ((revision, key), by_kind) in kinds.into_iter().filter(|(_, k)| k.len() > 1) {
        let watcher = by_kind
            .values()
            .flatten()
            .next()
            .copied()
            .unwrap_or_default();
        let detail = format!("watchers disagree on the kind: {by_kind:?}");
        out.push(violation(watcher, revision, key, detail));
    }
}

#[cfg(test)]
mod tests;
