//! The licchaos smoke suite, short enough for every `cargo test` (about 15 s a run, one
//! cluster at a time):
//!
//! - `kill_leader_passes` and `isolate_leader_passes`: 10-second runs of the built-in
//!   scenarios (three faults each, every one long enough for a failover) must PASS.
//! - `negative_drop_fails`: `licstored-faulty` with `LICSTORE_FAULT_DROP_AMEND_EVERY=7`
//!   acknowledges Amends it throws away; the run must FAIL with lost writes or a
//!   linearizability violation. This is the proof that the checkers can fail. It needs the
//!   faulty build next to `licstored` (see `runner::FAULTY_BUILD_HINT`) and fails, saying how
//!   to build it, when it is missing.
//! - `every_scenario_file_loads_and_is_built_in` and `the_same_seed_derives_the_same_schedule`:
//!   no cluster.
//!
//! Runs write into a temporary directory, kept (and printed) when an assertion fails.

use std::sync::Mutex;

use licstore_chaos::check::Verdict;
use licstore_chaos::report::RunReport;
use licstore_chaos::runner::{self, schedule, RunOptions};
use licstore_chaos::scenario::{Scenario, BUILT_IN};

/// One cluster at a time: two at once on two cores would slow both into timeouts.
static ONE_CLUSTER: Mutex<()> = Mutex::new(());

/// Total length of each smoke run's phases.
const SMOKE_TOTAL_MS: u64 = 10_000;
const SMOKE_SEED: u64 = 20_240_601;

/// Runs a built-in scenario for [`SMOKE_TOTAL_MS`]; the report and the temporary directory.
fn smoke(name: &str) -> (RunReport, tempfile::TempDir) {
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let scenario = Scenario::find(name)
        .expect("built-in scenario")
        .with_total_duration(SMOKE_TOTAL_MS);
    let out = tempfile::Builder::new()
        .prefix("lcx-suite-")
        .tempdir()
        .expect("tempdir");
    let opts = RunOptions::new(scenario, SMOKE_SEED, out.path());
    let started = std::time::Instant::now();
    let report = match runner::run(&opts) {
        Ok(r) => r,
        Err(e) => {
            let kept = out.keep();
            panic!(
                "{name}: the run could not be carried out: {e:#} (kept {})",
                kept.display()
            )
        }
    };
    eprintln!(
        "{name}: {} in {:.1} s",
        report.verdict.label(),
        started.elapsed().as_secs_f64()
    );
    (report, out)
}

fn reasons(r: &RunReport) -> String {
    match &r.verdict {
        Verdict::Pass => "none".into(),
        Verdict::Fail { reasons } | Verdict::Unknown { reasons } => reasons.join("; "),
    }
}

fn assert_pass(name: &str) {
    let (report, out) = smoke(name);
    if report.verdict != Verdict::Pass {
        let kept = out.keep();
        panic!(
            "{name}: {} ({}); replay: {}; run kept in {}",
            report.verdict.label(),
            reasons(&report),
            report.replay,
            kept.display()
        );
    }
    let applied = report.faults.iter().filter(|f| f.skipped.is_none()).count();
    assert!(applied > 0, "{name}: no fault applied: {:?}", report.faults);
    let during = &report.phases[1];
    assert!(during.attempted > 0, "{name}: no op during the faults");
    assert!(report.convergence.converged);
}

#[test]
fn kill_leader_passes() {
    assert_pass("kill-leader");
}

#[test]
fn isolate_leader_passes() {
    assert_pass("isolate-leader");
}

#[test]
fn negative_drop_fails() {
    if runner::faulty_path().is_none() {
        panic!(
            "licstored-faulty is missing, so the negative control cannot run: {}",
            runner::FAULTY_BUILD_HINT
        );
    }
    let (report, out) = smoke("negative-drop");
    let lost = report.checks.lost.lost_writes.count;
    let invalid = report.checks.linear.summary.invalid;
    let failed = matches!(report.verdict, Verdict::Fail { .. });
    if !failed || (lost == 0 && invalid == 0) {
        let kept = out.keep();
        panic!(
            "negative-drop: the checkers missed dropped Amends: {} ({}), lost {lost}, \
             invalid keys {invalid}; run kept in {}",
            report.verdict.label(),
            reasons(&report),
            kept.display()
        );
    }
    // A failing run keeps its node logs.
    let cluster = report.cluster_dir.as_ref().expect("cluster dir kept");
    assert!(
        cluster.join("n1/licstored.log").is_file(),
        "{}",
        cluster.display()
    );
    assert!(report.as_expected, "negative-drop expects FAIL");
    eprintln!(
        "negative-drop: lost {lost}, invalid keys {invalid}: {}",
        reasons(&report)
    );
}

#[test]
fn every_scenario_file_loads_and_is_built_in() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("chaos/scenarios")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for f in &files {
        let s = Scenario::from_file(&dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e:#}"));
        assert_eq!(
            format!("{}.toml", s.name),
            *f,
            "file named after its scenario"
        );
    }
    let mut built_in: Vec<String> = BUILT_IN.iter().map(|(f, _)| f.to_string()).collect();
    built_in.sort();
    assert_eq!(built_in, files, "every scenario file is compiled in");
}

#[test]
fn the_same_seed_derives_the_same_schedule() {
    for s in Scenario::built_in().expect("scenarios") {
        let a = schedule::derive(&s, 99);
        assert_eq!(a, schedule::derive(&s, 99), "{}", s.name);
        assert_eq!(a.schedule.is_empty(), s.nemesis.is_empty(), "{}", s.name);
        if !s.nemesis.is_empty() {
            assert_ne!(a.schedule, schedule::derive(&s, 100).schedule, "{}", s.name);
        }
    }
}
