//! Tests of the lost-write, stale-read, phantom and revision checks, one table per definition.

use super::*;
use crate::check::testkit::{c, r, w, wf, with_revision, wu};

fn node(node: u64, keys: &[(&str, Option<&str>)]) -> NodeState {
    let keys = keys.iter().map(|(k, v)| {
        let value = FinalValue {
            value: v.map(str::to_string),
            revision: None,
        };
        (k.to_string(), value)
    });
    NodeState {
        node,
        keys: keys.collect(),
    }
}

fn lost_ids(report: &LostReport) -> Vec<u64> {
    report
        .lost_writes
        .examples
        .iter()
        .map(|l| l.op_id)
        .collect()
}

/// Name, history, the final value of key `k`, the ids of the writes lost.
type LostCase = (&'static str, Vec<Op>, Option<&'static str>, Vec<u64>);

#[test]
fn lost_writes_follow_the_definition() {
    let base = || vec![c(1, "k", "a", 0, 10), w(2, "k", "b", 20, 30)];
    let cases: Vec<LostCase> = vec![
        ("the last write is final", base(), Some("b"), vec![]),
        (
            "acknowledged create, key absent",
            vec![c(1, "k", "a", 0, 10)],
            None,
            vec![1],
        ),
        (
            "every acknowledged write lost when absent",
            base(),
            None,
            vec![1, 2],
        ),
        (
            "a write invoked after the final one completed",
            base(),
            Some("a"),
            vec![2],
        ),
        (
            "a write concurrent with the final one may precede it",
            vec![
                c(1, "k", "a", 0, 10),
                w(2, "k", "b", 20, 30),
                w(3, "k", "c", 25, 40),
            ],
            Some("b"),
            vec![],
        ),
        (
            "a write acknowledged before the final one was invoked",
            vec![
                c(1, "k", "a", 0, 10),
                w(2, "k", "b", 20, 30),
                w(3, "k", "c", 40, 50),
            ],
            Some("c"),
            vec![],
        ),
        (
            "an unknown write is final, so nothing after it is lost",
            vec![
                c(1, "k", "a", 0, 10),
                wu(2, "k", "u", 20),
                w(3, "k", "b", 90, 95),
            ],
            Some("u"),
            vec![],
        ),
        (
            "a failed write is never lost",
            vec![c(1, "k", "a", 0, 10), wf(2, "k", "b", 20, 30)],
            Some("a"),
            vec![],
        ),
    ];
    for (name, history, final_value, expected) in cases {
        let report = check_lost(&history, &[node(1, &[("k", final_value)])]);
        assert_eq!(lost_ids(&report), expected, "{name}");
        assert_eq!(report.lost_writes.count, expected.len() as u64, "{name}");
    }
}

#[test]
fn unknown_writes_are_recovered_read_later_or_never_seen() {
    let history = vec![
        c(1, "k", "a", 0, 10),
        wu(2, "k", "seen", 20),
        r(3, "k", Some("seen"), 30, 40),
        wu(4, "k", "lost", 50),
        wu(5, "k", "final", 60),
    ];
    let report = check_lost(&history, &[node(1, &[("k", Some("final"))])]);
    let expected = UnknownWrites {
        recovered: 1,
        read_later: 1,
        never_seen: 1,
    };
    assert_eq!(report.unknown_writes, expected);
    assert_eq!(report.lost_writes.count, 0);
}

#[test]
fn divergent_phantom_and_unread_keys_are_reported() {
    let history = vec![
        c(1, "k", "a", 0, 10),
        w(2, "k", "b", 20, 30),
        c(3, "unread", "x", 0, 5),
    ];
    let finals = [
        node(1, &[("k", Some("b")), ("ghost", Some("boo"))]),
        node(2, &[("k", Some("a"))]),
    ];
    let report = check_lost(&history, &finals);
    assert_eq!(report.keys_checked, 3);
    assert_eq!(report.divergent_keys.count, 1);
    assert_eq!(report.divergent_keys.examples[0].values.len(), 2);
    assert_eq!(lost_ids(&report), vec![2], "lost on node 2 only");
    assert_eq!(report.lost_writes.examples[0].nodes, vec![2]);
    assert_eq!(report.phantom_finals.count, 1);
    assert_eq!(report.phantom_finals.examples[0].key, "ghost");
    assert_eq!(report.keys_not_read.examples, vec!["unread".to_string()]);
}

#[test]
fn stale_reads_follow_the_definition() {
    let cases: Vec<(&str, Vec<Op>, u64)> = vec![
        (
            "read of an overwritten value after the overwrite completed",
            vec![
                c(1, "k", "a", 0, 10),
                w(2, "k", "b", 20, 30),
                r(3, "k", Some("a"), 2_000_030, 2_000_040),
            ],
            2,
        ),
        (
            "read concurrent with the overwrite",
            vec![
                c(1, "k", "a", 0, 10),
                w(2, "k", "b", 20, 30),
                r(3, "k", Some("a"), 25, 40),
            ],
            0,
        ),
        (
            "overwrite concurrent with the write of the value read",
            vec![
                c(1, "k", "a", 0, 30),
                w(2, "k", "b", 20, 30),
                r(3, "k", Some("a"), 50, 60),
            ],
            0,
        ),
        (
            "absent after the create completed",
            vec![c(1, "k", "a", 0, 10), r(2, "k", None, 1_000_010, 1_000_020)],
            1,
        ),
        (
            "absent before the create",
            vec![r(1, "k", None, 0, 5), c(2, "k", "a", 3, 10)],
            0,
        ),
        (
            "an unknown write of the value read may land late",
            vec![
                wu(1, "k", "a", 0),
                w(2, "k", "b", 20, 30),
                r(3, "k", Some("a"), 50, 60),
            ],
            0,
        ),
    ];
    for (name, history, staleness_ms) in cases {
        let report = check_lost(&history, &[]);
        let stale = report.stale_reads;
        assert_eq!(stale.count, u64::from(staleness_ms > 0), "{name}");
        assert_eq!(
            stale.worst_staleness_ms.round() as u64,
            staleness_ms,
            "{name}"
        );
    }
}

#[test]
fn phantom_reads_are_reported_with_failed_writes_named() {
    let history = vec![
        c(1, "k", "a", 0, 10),
        wf(2, "k", "failed", 20, 30),
        r(3, "k", Some("failed"), 40, 50),
        r(4, "k", Some("nobody"), 40, 50),
    ];
    let report = check_lost(&history, &[node(1, &[("k", Some("a"))])]);
    let found: Vec<_> = report
        .phantom_reads
        .examples
        .iter()
        .map(|p| (p.op_id, p.written_by_failed_op))
        .collect();
    assert_eq!(found, vec![(Some(3), true), (Some(4), false)]);
    assert_eq!(report.stale_reads.count, 0);
}

#[test]
fn revisions_going_backwards_are_reported() {
    let history = vec![
        with_revision(c(1, "k", "a", 0, 10), 5),
        with_revision(w(2, "k", "b", 20, 30), 9),
        with_revision(r(3, "k", Some("b"), 40, 50), 9),
        with_revision(r(4, "k", Some("a"), 45, 55), 5),
        with_revision(r(5, "k", Some("a"), 60, 70), 5),
    ];
    let report = check_lost(&history, &[]);
    let found = &report.revision_regressions;
    assert_eq!(found.count, 2, "{found:?}");
    assert_eq!(
        (found.examples[0].op_id, found.examples[0].earlier_revision),
        (4, 9)
    );
    assert_eq!(found.examples[1].op_id, 5);
}

#[test]
fn empty_and_malformed_input_does_not_panic() {
    assert_eq!(check_lost(&[], &[]), LostReport::default());
    let mut missing = c(2, "k", "b", 20, 30);
    missing.complete_ns = None;
    let history = vec![
        c(1, "k", "a", 50, 10),
        missing,
        r(3, "k", Some("a"), 60, 70),
    ];
    let report = check_lost(&history, &[node(1, &[("k", Some("a"))])]);
    assert_eq!(report.malformed_ops, 2);
    assert_eq!(report.stale_reads.count, 0);
}
