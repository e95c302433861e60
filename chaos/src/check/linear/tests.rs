//! Tests of the linearizability checker: hand-made histories with known verdicts, a
//! brute-force reference on tiny random histories, and large generated register histories.

use super::*;
use crate::check::testkit::{c, op, r, random_register_history, w, wf, wu};

fn verdict_of(history: &[Op], key: &str) -> KeyVerdict {
    let report = check_linear(history, &Budget::default());
    let found = report.keys.into_iter().find(|k| k.key == key);
    found.map(|k| k.verdict).expect("key was checked")
}

fn is_valid(history: &[Op]) -> bool {
    verdict_of(history, "k") == KeyVerdict::Valid
}

#[test]
fn small_histories_get_the_right_verdict() {
    let cases: Vec<(&str, Vec<Op>, bool)> = vec![
        (
            "sequential writes and reads",
            vec![
                r(0, "k", None, 0, 5),
                c(1, "k", "a", 10, 20),
                r(2, "k", Some("a"), 30, 40),
                w(3, "k", "b", 50, 60),
                r(4, "k", Some("b"), 70, 80),
            ],
            true,
        ),
        (
            "read concurrent with a write sees the old value",
            vec![
                c(1, "k", "a", 0, 10),
                w(2, "k", "b", 20, 60),
                r(3, "k", Some("a"), 30, 50),
            ],
            true,
        ),
        (
            "read concurrent with a write sees the new value",
            vec![
                c(1, "k", "a", 0, 10),
                w(2, "k", "b", 20, 60),
                r(3, "k", Some("b"), 30, 50),
            ],
            true,
        ),
        (
            "read of an overwritten value after the overwrite completed",
            vec![
                c(1, "k", "a", 0, 10),
                w(2, "k", "b", 20, 30),
                r(3, "k", Some("a"), 40, 50),
            ],
            false,
        ),
        (
            "read of a value before its write was invoked",
            vec![
                c(1, "k", "a", 0, 10),
                r(2, "k", Some("b"), 20, 30),
                w(3, "k", "b", 40, 50),
            ],
            false,
        ),
        (
            "unknown write that shows up much later",
            vec![
                c(1, "k", "a", 0, 10),
                wu(2, "k", "b", 20),
                r(3, "k", Some("a"), 1_000, 1_010),
                r(4, "k", Some("b"), 90_000, 90_010),
            ],
            true,
        ),
        (
            "unknown write that never shows",
            vec![
                c(1, "k", "a", 0, 10),
                wu(2, "k", "b", 20),
                r(3, "k", Some("a"), 1_000, 1_010),
            ],
            true,
        ),
        (
            "unknown write read before it was invoked",
            vec![
                c(1, "k", "a", 0, 10),
                r(2, "k", Some("b"), 20, 30),
                wu(3, "k", "b", 40),
            ],
            false,
        ),
        (
            "an unknown write of a value another op also wrote may never happen",
            vec![
                c(1, "k", "a", 0, 1),
                r(2, "k", Some("a"), 0, 10),
                w(3, "k", "b", 2, 3),
                wu(4, "k", "a", 5),
                r(5, "k", Some("b"), 6, 7),
                r(6, "k", Some("b"), 11, 12),
            ],
            true,
        ),
        (
            "failed write whose value is read",
            vec![
                c(1, "k", "a", 0, 10),
                wf(2, "k", "b", 20, 30),
                r(3, "k", Some("b"), 40, 50),
            ],
            false,
        ),
        (
            "read of None before the create",
            vec![
                r(1, "k", None, 0, 10),
                c(2, "k", "a", 20, 30),
                r(3, "k", Some("a"), 40, 50),
            ],
            true,
        ),
        (
            "read of None after the create completed",
            vec![c(1, "k", "a", 0, 10), r(2, "k", None, 20, 30)],
            false,
        ),
        (
            "touching intervals count as concurrent",
            vec![
                c(1, "k", "a", 0, 5),
                w(2, "k", "b", 6, 10),
                r(3, "k", Some("a"), 10, 20),
            ],
            true,
        ),
        (
            "a later read sees an older value than an earlier read",
            vec![
                c(1, "k", "a", 0, 10),
                w(2, "k", "b", 20, 100),
                r(3, "k", Some("b"), 30, 40),
                r(4, "k", Some("a"), 50, 60),
            ],
            false,
        ),
    ];
    for (name, history, valid) in cases {
        assert_eq!(is_valid(&history), valid, "{name}");
    }
}

#[test]
fn only_the_broken_key_is_invalid() {
    let history = vec![
        c(1, "good", "a", 0, 10),
        c(2, "bad", "x", 0, 10),
        w(3, "bad", "y", 20, 30),
        r(4, "good", Some("a"), 40, 50),
        r(5, "bad", Some("x"), 40, 50),
    ];
    let report = check_linear(&history, &Budget::default());
    assert_eq!(report.summary.keys_checked, 2);
    assert_eq!((report.summary.valid, report.summary.invalid), (1, 1));
    assert_eq!(verdict_of(&history, "good"), KeyVerdict::Valid);
    let KeyVerdict::Invalid(v) = verdict_of(&history, "bad") else {
        panic!("bad key not invalid");
    };
    // The write of y is held back while the read of x is pending: it is the stuck op.
    assert_eq!(v.stuck_op_id, 3);
    assert_eq!(v.waiting_read_ids, vec![5]);
    assert_eq!(v.prefix_len, 1);
    assert_eq!(v.value_after_prefix.as_deref(), Some("x"));
    assert!(v.window[0].starts_with("op 3 "), "{:?}", v.window);
}

#[test]
fn the_window_names_the_ops_concurrent_with_the_stuck_one() {
    let history = vec![
        c(1, "k", "a", 0, 10),
        w(2, "k", "b", 20, 30),
        r(3, "k", Some("a"), 40, 50),
        w(4, "k", "c", 25, 70),
    ];
    let KeyVerdict::Invalid(v) = verdict_of(&history, "k") else {
        panic!("not invalid");
    };
    assert_eq!(v.stuck_op_id, 2);
    assert_eq!(v.concurrent_op_ids, vec![4]);
    assert_eq!(v.waiting_read_ids, vec![3]);
    assert_eq!(v.prefix_tail_ids, vec![1]);
    assert_eq!(v.window.len(), 3);
}

#[test]
fn a_tiny_budget_gives_unknown_never_valid() {
    let history = random_register_history(7, "k", 4, 50);
    let budget = Budget {
        max_states_per_key: 1,
        ..Budget::default()
    };
    let report = check_linear(&history, &budget);
    assert!(matches!(report.keys[0].verdict, KeyVerdict::Unknown { .. }));
    assert_eq!(report.summary.unknown, 1);
    let no_time = Budget {
        time_limit: Duration::ZERO,
        ..Budget::default()
    };
    let long = random_register_history(8, "k", 8, 20_000);
    let report = check_linear(&long, &no_time);
    assert!(matches!(report.keys[0].verdict, KeyVerdict::Unknown { .. }));
}

#[test]
fn empty_and_malformed_input_does_not_panic() {
    let report = check_linear(&[], &Budget::default());
    assert_eq!(report.summary.keys_checked, 0);
    let history = vec![
        c(1, "k", "a", 50, 10),
        op(2, 2, "k", OpKind::Read, Some("a"), Outcome::Ok, 60, None),
        op(3, 3, "k", OpKind::Write, None, Outcome::Ok, 70, Some(80)),
    ];
    let report = check_linear(&history, &Budget::default());
    assert_eq!(report.summary.malformed_ops, 3);
    assert_eq!(report.keys[0].verdict, KeyVerdict::Valid);
}

#[test]
fn a_random_register_history_is_valid_and_one_altered_read_is_not() {
    let history = random_register_history(42, "k", 8, 2_000);
    let started = Instant::now();
    let report = check_linear(&history, &Budget::default());
    let took = started.elapsed();
    eprintln!(
        "2000 ops, 8 clients: {took:?}, {} states",
        report.keys[0].states
    );
    assert_eq!(
        report.keys[0].verdict,
        KeyVerdict::Valid,
        "{:?}",
        report.summary
    );
    assert!(report.summary.ops_checked > 1_800, "{:?}", report.summary);

    let altered = alter_a_read(history);
    let report = check_linear(&altered, &Budget::default());
    assert!(
        matches!(report.keys[0].verdict, KeyVerdict::Invalid(_)),
        "{:?}",
        report.keys[0].verdict
    );
}

/// Makes a read in the middle return the value of a write invoked after the read completed.
fn alter_a_read(mut history: Vec<Op>) -> Vec<Op> {
    let ok_read = |o: &Op| o.kind == OpKind::Read && o.outcome == Outcome::Ok;
    let at = (history.len() / 2..history.len()).find(|&i| ok_read(&history[i]));
    let at = at.expect("a read in the second half");
    let read_done = history[at].end_ns();
    let later = history
        .iter()
        .find(|o| o.kind == OpKind::Write && o.outcome == Outcome::Ok && o.invoke_ns > read_done);
    let value = later.expect("a later write").value.clone();
    history[at].value = value;
    history
}

#[test]
fn many_random_histories_are_valid() {
    for seed in 0..20 {
        let history = random_register_history(seed, "k", 1 + seed % 10, 300);
        assert!(is_valid(&history), "seed {seed}");
    }
}

/// Linearizable by exhaustive search over real-time-respecting orders (tiny histories only):
/// the reference the checker's reductions and pruning must agree with.
fn brute_force_valid(history: &[Op]) -> bool {
    let ops: Vec<&Op> = history
        .iter()
        .filter(|o| {
            o.outcome != Outcome::Fail && (o.kind != OpKind::Read || o.outcome == Outcome::Ok)
        })
        .collect();
    fn place(ops: &[&Op], placed: &mut Vec<bool>, value: Option<&str>) -> bool {
        if placed.iter().all(|p| *p) {
            return true;
        }
        for i in 0..ops.len() {
            let ready = !placed[i]
                && (0..ops.len())
                    .all(|j| placed[j] || j == i || ops[j].end_ns() >= ops[i].invoke_ns);
            if !ready {
                continue;
            }
            let o = ops[i];
            placed[i] = true;
            let ok = match o.kind {
                OpKind::Read => o.value.as_deref() == value && place(ops, placed, value),
                _ => {
                    place(ops, placed, o.value.as_deref())
                        || (o.outcome == Outcome::Unknown && place(ops, placed, value))
                }
            };
            placed[i] = false;
            if ok {
                return true;
            }
        }
        false
    }
    place(&ops, &mut vec![false; ops.len()], None)
}

fn random_tiny_history(rng: &mut rand_chacha::ChaCha8Rng) -> Vec<Op> {
    use rand::Rng;
    let values = [None, Some("a"), Some("b"), Some("c")];
    let mut free_at_ns = [0u64; 3];
    let n = rng.random_range(2..8);
    let mut history = Vec::new();
    for id in 0..n {
        let client = rng.random_range(0..3usize);
        let invoke_ns = free_at_ns[client] + rng.random_range(0..10);
        let done_ns = invoke_ns + rng.random_range(0..15);
        free_at_ns[client] = done_ns + 1;
        let outcome = [
            Outcome::Ok,
            Outcome::Ok,
            Outcome::Ok,
            Outcome::Unknown,
            Outcome::Fail,
        ][rng.random_range(0..5)];
        let (kind, value) = if rng.random_bool(0.5) {
            (OpKind::Read, values[rng.random_range(0..4)])
        } else {
            (OpKind::Write, values[rng.random_range(1..4)])
        };
        history.push(op(
            id,
            client as u64,
            "k",
            kind,
            value,
            outcome,
            invoke_ns,
            Some(done_ns),
        ));
    }
    history
}

#[test]
fn the_checker_agrees_with_brute_force_on_tiny_random_histories() {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let (mut valid, mut invalid) = (0, 0);
    for case in 0..20_000 {
        let history = random_tiny_history(&mut rng);
        let expected = brute_force_valid(&history);
        assert_eq!(is_valid(&history), expected, "case {case}: {history:#?}");
        if expected {
            valid += 1
        } else {
            invalid += 1
        }
    }
    assert!(
        valid > 500 && invalid > 500,
        "{valid} valid, {invalid} invalid"
    );
}
