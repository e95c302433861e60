//! A history: every client operation of a run, with its invoke and completion times and its
//! outcome, as the workloads saw it.
//!
//! An operation is recorded twice over its life: at invoke (before the request is sent) and at
//! completion. Its outcome is three-valued, as in Jepsen:
//! - [`Outcome::Ok`]: the server answered and the operation took effect;
//! - [`Outcome::Fail`]: it definitely did not take effect (the server refused it before
//!   proposing, e.g. INVALID_ARGUMENT, or a read failed: a failed read changes nothing);
//! - [`Outcome::Unknown`]: a timeout, a broken connection or UNAVAILABLE after the request
//!   left: a write may take effect at any later time, so the checkers treat it as completing
//!   at infinity.
//!
//! Times are nanoseconds on one monotonic clock of the `licchaos` process, from the start of
//! the run. Histories are written one JSON object per line (`history.jsonl`), the form the
//! report and a replay of the checkers read back.

use serde::{Deserialize, Serialize};

/// What an operation did, on a register-like key (a license identifier).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// Creates the key with `value` (Issue).
    Create,
    /// Sets the key's value to `value` (Amend or ChangeStatus).
    Write,
    /// Reads the key at linearizable consistency; `value` is what was read, `None` for absent.
    Read,
}

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Took effect; for a read, `value` is what it saw.
    Ok,
    /// Definitely did not take effect.
    Fail,
    /// May or may not have taken effect, at any time after its invoke.
    Unknown,
}

/// One client operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// Unique within the history, in invoke order.
    pub id: u64,
    /// The client (logical process) that issued it; each client runs one operation at a time.
    pub client: u64,
    /// The key operated on (a license identifier or a workload's register name).
    pub key: String,
    pub kind: OpKind,
    /// Written value for writes; value read for reads (`None`: the key was absent, or the
    /// read did not complete).
    pub value: Option<String>,
    /// The store's revision of the write, or of the record a read returned, when known.
    pub revision: Option<u64>,
    /// The node the request was sent to, when the workload pinned one.
    pub node: Option<u64>,
    /// Nanoseconds since the run started, taken before the request was sent.
    pub invoke_ns: u64,
    /// Nanoseconds since the run started, taken when the answer arrived; `None` when the
    /// outcome is [`Outcome::Unknown`].
    pub complete_ns: Option<u64>,
    pub outcome: Outcome,
    /// The gRPC code and message of a failed or unknown operation.
    pub error: Option<String>,
}

impl Op {
    /// Whether the operation may have changed the key's value.
    pub fn may_write(&self) -> bool {
        self.kind != OpKind::Read && self.outcome != Outcome::Fail
    }

    /// Completion time for the checkers: infinity for an unknown outcome.
    pub fn end_ns(&self) -> u64 {
        match (self.outcome, self.complete_ns) {
            (Outcome::Unknown, _) | (_, None) => u64::MAX,
            (_, Some(t)) => t,
        }
    }
}

/// Writes `ops` as JSON lines.
pub fn write_jsonl(ops: &[Op], mut out: impl std::io::Write) -> std::io::Result<()> {
    for op in ops {
        serde_json::to_writer(&mut out, op)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// Reads JSON lines written by [`write_jsonl`]; blank lines are skipped.
pub fn read_jsonl(input: impl std::io::BufRead) -> std::io::Result<Vec<Op>> {
    let mut ops = Vec::new();
    for (n, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let op = serde_json::from_str(&line).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("line {}: {e}", n + 1),
            )
        })?;
        ops.push(op);
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(kind: OpKind, outcome: Outcome, complete_ns: Option<u64>) -> Op {
        Op {
            id: 1,
            client: 2,
            key: "k".into(),
            kind,
            value: Some("v".into()),
            revision: Some(7),
            node: None,
            invoke_ns: 10,
            complete_ns,
            outcome,
            error: None,
        }
    }

    #[test]
    fn jsonl_round_trip_keeps_every_field() {
        let ops = vec![
            op(OpKind::Create, Outcome::Ok, Some(20)),
            op(OpKind::Write, Outcome::Unknown, None),
            op(OpKind::Read, Outcome::Fail, Some(30)),
        ];
        let mut buf = Vec::new();
        write_jsonl(&ops, &mut buf).unwrap();
        let back = read_jsonl(std::io::Cursor::new(buf)).unwrap();
        assert_eq!(back, ops);
    }

    #[test]
    fn unknown_writes_end_at_infinity_and_failed_ones_write_nothing() {
        let cases = [
            (OpKind::Write, Outcome::Unknown, Some(20), u64::MAX, true),
            (OpKind::Write, Outcome::Ok, Some(20), 20, true),
            (OpKind::Write, Outcome::Fail, Some(20), 20, false),
            (OpKind::Read, Outcome::Ok, Some(20), 20, false),
            (OpKind::Create, Outcome::Ok, None, u64::MAX, true),
        ];
        for (kind, outcome, done, end, writes) in cases {
            let o = op(kind, outcome, done);
            assert_eq!(o.end_ns(), end, "{kind:?} {outcome:?}");
            assert_eq!(o.may_write(), writes, "{kind:?} {outcome:?}");
        }
    }

    #[test]
    fn a_bad_line_is_named_by_number() {
        let err = read_jsonl(std::io::Cursor::new("\n{\"id\":1}\n")).unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }
}
