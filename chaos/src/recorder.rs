//! The recorder: hands out operation ids, timestamps invokes and completions on the run's one
//! monotonic clock, and yields the history when the run is over.
//!
//! Definitions:
//! - *run start*: the [`Instant`] the recorder was made with; every `_ns` time of the history
//!   is nanoseconds since it (see [`crate::history`]).
//! - *op id*: 0, 1, 2, … in invoke order. Id and invoke time are taken under one lock, so a
//!   larger id never has an earlier invoke time.
//! - An operation is stored at invoke with outcome [`Outcome::Unknown`] and no completion, and
//!   completed at most once (a second completion is ignored). An operation that is never
//!   completed (its task was dropped at the end of the run) therefore stays unknown, which is
//!   what it is.
//!
//! The recorder is a cheap handle (`Arc` inside): clone it into every client task.
//!
//! Error classification ([`classify`], table [`WRITE_ERROR_OUTCOMES`]): a failed read changed
//! nothing, so it is always [`Outcome::Fail`]. A write error is [`Outcome::Fail`] only for the
//! codes the server returns either before it proposes anything (validation in `api.rs`,
//! `raft_service.rs`'s re-validation of a forwarded command) or as the state machine's applied
//! decision (a `Rejection` from `apply.rs`, mapped by `convert::rejection_status`), i.e. when
//! nothing changed. Every other code (timeouts, transport failures, UNAVAILABLE for "not
//! committed in time" or "leader changed", INTERNAL, and codes not listed) is
//! [`Outcome::Unknown`]: the write may still take effect.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tonic::{Code, Status};

use crate::history::{self, Op, OpKind, Outcome};

/// Outcome of a failed write by gRPC code. Codes not listed are [`Outcome::Unknown`].
pub const WRITE_ERROR_OUTCOMES: &[(Code, Outcome)] = &[
    // Validation before proposing, or the applied decision of the state machine.
    (Code::InvalidArgument, Outcome::Fail),
    // Apply: superseded or no longer current identifier, holder already holds the type.
    (Code::FailedPrecondition, Outcome::Fail),
    // Apply: no license with that identifier.
    (Code::NotFound, Outcome::Fail),
    // Apply: identifier or serial already stored.
    (Code::AlreadyExists, Outcome::Fail),
    // Refused before the request is processed at all.
    (Code::PermissionDenied, Outcome::Fail),
    // The client gave up waiting: the write may be in the log.
    (Code::DeadlineExceeded, Outcome::Unknown),
    // Not committed in time, leader changed, connection refused or broken.
    (Code::Unavailable, Outcome::Unknown),
    (Code::Cancelled, Outcome::Unknown),
    // Transport and protocol failures (tonic maps h2 errors to these).
    (Code::Unknown, Outcome::Unknown),
    (Code::Internal, Outcome::Unknown),
];

/// The outcome of an operation of `kind` that ended with `status`.
pub fn classify(kind: OpKind, status: &Status) -> Outcome {
    if kind == OpKind::Read {
        return Outcome::Fail;
    }
    WRITE_ERROR_OUTCOMES
        .iter()
        .find(|(code, _)| *code == status.code())
        .map_or(Outcome::Unknown, |(_, outcome)| *outcome)
}

/// `Code: message`, as recorded in [`Op::error`].
pub fn describe(status: &Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

/// What an operation is about to do, given at invoke.
#[derive(Clone, Debug)]
pub struct Invocation {
    pub client: u64,
    pub key: String,
    pub kind: OpKind,
    /// The value written (writes); `None` for reads.
    pub value: Option<String>,
    pub node: Option<u64>,
}

/// Records a run's operations; clone freely.
#[derive(Clone, Debug)]
pub struct Recorder {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    start: Instant,
    /// Indexed by op id.
    ops: Mutex<Vec<Op>>,
}

impl Recorder {
    /// A recorder whose run starts now.
    pub fn new() -> Self {
        Self::starting_at(Instant::now())
    }

    /// A recorder whose run started at `start` (the runner's clock).
    pub fn starting_at(start: Instant) -> Self {
        let inner = Inner {
            start,
            ops: Mutex::new(Vec::new()),
        };
        Recorder {
            inner: Arc::new(inner),
        }
    }

    /// The run's start.
    pub fn start(&self) -> Instant {
        self.inner.start
    }

    /// Nanoseconds since the run's start.
    pub fn now_ns(&self) -> u64 {
        self.ns_at(Instant::now())
    }

    /// Nanoseconds from the run's start to `t` (0 for an earlier `t`).
    pub fn ns_at(&self, t: Instant) -> u64 {
        let nanos = t.saturating_duration_since(self.inner.start).as_nanos();
        u64::try_from(nanos).unwrap_or(u64::MAX)
    }

    fn ops(&self) -> MutexGuard<'_, Vec<Op>> {
        // A panicking client task cannot leave an op half-written: every update is one
        // assignment, so the data behind a poisoned lock is still whole.
        self.inner.ops.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records an invoke; returns the op id.
    pub fn invoke(&self, inv: Invocation) -> u64 {
        let mut ops = self.ops();
        let id = ops.len() as u64;
        ops.push(Op {
            id,
            client: inv.client,
            key: inv.key,
            kind: inv.kind,
            value: inv.value,
            revision: None,
            node: inv.node,
            invoke_ns: self.now_ns(),
            complete_ns: None,
            outcome: Outcome::Unknown,
            error: None,
        });
        id
    }

    /// Completes op `id` with `f` unless it was completed before. False when it was, or when
    /// no such op exists.
    fn complete(&self, id: u64, f: impl FnOnce(&mut Op, u64)) -> bool {
        let mut ops = self.ops();
        let Some(op) = usize::try_from(id).ok().and_then(|i| ops.get_mut(i)) else {
            return false;
        };
        if op.complete_ns.is_some() || op.error.is_some() {
            return false;
        }
        let now_ns = self.now_ns().max(op.invoke_ns);
        f(op, now_ns);
        true
    }

    /// A write took effect at `revision`.
    pub fn ok_write(&self, id: u64, revision: Option<u64>) -> bool {
        self.complete(id, |op, now_ns| {
            op.outcome = Outcome::Ok;
            op.revision = revision;
            op.complete_ns = Some(now_ns);
        })
    }

    /// A read saw `value` (`None`: absent) in a record of `revision`.
    pub fn ok_read(&self, id: u64, value: Option<String>, revision: Option<u64>) -> bool {
        self.complete(id, |op, now_ns| {
            op.outcome = Outcome::Ok;
            op.value = value;
            op.revision = revision;
            op.complete_ns = Some(now_ns);
        })
    }

    /// The operation definitely did not take effect.
    pub fn fail(&self, id: u64, error: String) -> bool {
        self.complete(id, |op, now_ns| {
            op.outcome = Outcome::Fail;
            op.error = Some(error);
            op.complete_ns = Some(now_ns);
            if op.kind == OpKind::Read {
                op.value = None;
            }
        })
    }

    /// The operation may or may not take effect; no completion time is recorded.
    pub fn unknown(&self, id: u64, error: String) -> bool {
        self.complete(id, |op, _| {
            op.outcome = Outcome::Unknown;
            op.error = Some(error);
        })
    }

    /// Completes op `id` with the outcome [`classify`] gives `status`.
    pub fn error(&self, id: u64, status: &Status) -> Outcome {
        let kind = self.ops().get(id as usize).map(|op| op.kind);
        let outcome = classify(kind.unwrap_or(OpKind::Write), status);
        match outcome {
            Outcome::Fail => self.fail(id, describe(status)),
            _ => self.unknown(id, describe(status)),
        };
        outcome
    }

    /// Every operation so far, sorted by id.
    pub fn history(&self) -> Vec<Op> {
        self.ops().clone()
    }

    /// Writes [`Recorder::history`] to `path` as JSON lines.
    pub fn write_jsonl(&self, path: &std::path::Path) -> std::io::Result<()> {
        let file = std::fs::File::create(path)?;
        history::write_jsonl(&self.history(), std::io::BufWriter::new(file))
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(rec: &Recorder, client: u64) -> u64 {
        rec.invoke(Invocation {
            client,
            key: "k".into(),
            kind: OpKind::Write,
            value: Some(format!("c{client}")),
            node: Some(1),
        })
    }

    #[test]
    fn write_codes_split_into_fail_and_unknown_and_reads_always_fail() {
        let cases = [
            (Code::InvalidArgument, Outcome::Fail),
            (Code::FailedPrecondition, Outcome::Fail),
            (Code::NotFound, Outcome::Fail),
            (Code::AlreadyExists, Outcome::Fail),
            (Code::PermissionDenied, Outcome::Fail),
            (Code::DeadlineExceeded, Outcome::Unknown),
            (Code::Unavailable, Outcome::Unknown),
            (Code::Cancelled, Outcome::Unknown),
            (Code::Unknown, Outcome::Unknown),
            (Code::Internal, Outcome::Unknown),
            (Code::ResourceExhausted, Outcome::Unknown),
            (Code::Aborted, Outcome::Unknown),
        ];
        for (code, want) in cases {
            let status = Status::new(code, "x");
            assert_eq!(classify(OpKind::Write, &status), want, "{code:?}");
            assert_eq!(classify(OpKind::Create, &status), want, "{code:?}");
            assert_eq!(classify(OpKind::Read, &status), Outcome::Fail, "{code:?}");
        }
    }

    #[test]
    fn ids_follow_invoke_order_and_completion_is_once() {
        let rec = Recorder::new();
        let a = write(&rec, 1);
        let b = write(&rec, 2);
        assert_eq!((a, b), (0, 1));
        assert!(rec.ok_write(a, Some(5)));
        assert!(!rec.fail(a, "late".into()), "second completion ignored");
        assert_eq!(rec.error(b, &Status::unavailable("gone")), Outcome::Unknown);
        let h = rec.history();
        assert_eq!(h[0].outcome, Outcome::Ok);
        assert_eq!(h[0].revision, Some(5));
        assert!(h[0].complete_ns.is_some_and(|c| c >= h[0].invoke_ns));
        assert_eq!(h[1].outcome, Outcome::Unknown);
        assert_eq!(h[1].complete_ns, None);
        assert!(h[1]
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with("Unavailable")));
        assert!(h[0].invoke_ns <= h[1].invoke_ns);
    }

    #[test]
    fn a_failed_read_keeps_no_value_and_an_uncompleted_op_stays_unknown() {
        let rec = Recorder::new();
        let r = rec.invoke(Invocation {
            client: 1,
            key: "k".into(),
            kind: OpKind::Read,
            value: None,
            node: None,
        });
        let w = write(&rec, 2);
        assert_eq!(rec.error(r, &Status::unavailable("x")), Outcome::Fail);
        let h = rec.history();
        assert_eq!(h[0].outcome, Outcome::Fail);
        assert_eq!(h[0].value, None);
        assert_eq!(h[w as usize].outcome, Outcome::Unknown);
    }

    #[test]
    fn history_is_written_as_json_lines() {
        let rec = Recorder::new();
        let a = write(&rec, 1);
        rec.ok_write(a, Some(3));
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("history.jsonl");
        rec.write_jsonl(&path).expect("write");
        let file = std::io::BufReader::new(std::fs::File::open(&path).expect("open"));
        assert_eq!(history::read_jsonl(file).expect("read"), rec.history());
    }
}
