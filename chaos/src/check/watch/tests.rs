//! Tests of the watch properties: a clean set of streams, then one broken property at a time.

use super::*;
use crate::check::testkit::{c, with_revision};

/// Revisions 1..=6; revision 5 carries two keys.
const TRUE_EVENTS: [(u64, &str); 7] = [
    (1, "a"),
    (2, "b"),
    (3, "a"),
    (4, "c"),
    (5, "b"),
    (5, "c"),
    (6, "a"),
];

fn event(watcher: u64, revision: u64, key: &str) -> WatchEvent {
    let kind = "put".to_string();
    WatchEvent {
        watcher,
        node: 1,
        revision,
        key: key.to_string(),
        kind,
        at_ns: revision * 10,
    }
}

fn stream(watcher: u64, start_revision: u64, events: &[(u64, &str)]) -> WatchStream {
    let events = events
        .iter()
        .map(|&(rev, key)| event(watcher, rev, key))
        .collect();
    WatchStream {
        watcher,
        node: 1,
        start_revision,
        events,
        resumed_from: Vec::new(),
    }
}

fn clean() -> Vec<WatchStream> {
    vec![
        stream(1, 0, &TRUE_EVENTS),
        stream(2, 0, &TRUE_EVENTS),
        stream(3, 2, &TRUE_EVENTS[2..]),
    ]
}

/// [ordered, unique, reliable, resumable, agreement]
fn counts(report: &WatchReport) -> [u64; 5] {
    let r = report;
    [
        r.ordered.count,
        r.unique.count,
        r.reliable.count,
        r.resumable.count,
        r.agreement.count,
    ]
}

#[test]
fn a_clean_set_of_streams_passes() {
    let report = check_watch(&clean(), &[]);
    assert_eq!(counts(&report), [0; 5], "{report:?}");
    assert_eq!(
        (report.streams, report.events, report.true_events),
        (3, 19, 7)
    );
    assert_eq!(report.violations(), 0);
}

#[test]
fn each_broken_property_is_detected() {
    type Break = fn(&mut WatchStream);
    let cases: [(&str, Break, [u64; 5]); 6] = [
        (
            "a gap",
            |s| {
                s.events.remove(2);
            },
            [0, 0, 1, 0, 0],
        ),
        (
            "a duplicate",
            |s| s.events.insert(3, s.events[3].clone()),
            [0, 1, 0, 0, 0],
        ),
        (
            "an out-of-order event",
            |s| s.events.swap(2, 3),
            [1, 0, 0, 0, 0],
        ),
        (
            "a resume that skips an event",
            |s| {
                s.resumed_from = vec![2];
                s.events.remove(2);
            },
            [0, 0, 1, 1, 0],
        ),
        (
            "a start revision delivered again",
            |s| s.start_revision = 1,
            [0, 0, 0, 1, 0],
        ),
        (
            "a disagreement between watchers",
            |s| s.events[3].kind = "delete".into(),
            [0, 0, 0, 0, 1],
        ),
    ];
    for (name, break_it, expected) in cases {
        let mut streams = clean();
        break_it(&mut streams[1]);
        let report = check_watch(&streams, &[]);
        assert_eq!(counts(&report), expected, "{name}: {report:?}");
        assert_eq!(report.violations(), expected.iter().sum::<u64>(), "{name}");
    }
}

#[test]
fn writes_of_the_history_join_the_truth() {
    let beyond_every_stream = with_revision(c(1, "a", "x", 0, 10), 9);
    let report = check_watch(&clean(), &[beyond_every_stream]);
    assert_eq!(counts(&report), [0; 5]);
    let unseen = with_revision(c(2, "z", "y", 0, 10), 4);
    let report = check_watch(&clean(), &[unseen]);
    assert_eq!(
        report.reliable.count, 3,
        "every stream covering revision 4 misses it"
    );
    assert_eq!(report.reliable.examples[0].key, "z");
}

#[test]
fn empty_streams_are_fine() {
    let report = check_watch(&[stream(1, 5, &[])], &[]);
    assert_eq!(counts(&report), [0; 5]);
    assert_eq!(check_watch(&[], &[]), WatchReport::default());
}
