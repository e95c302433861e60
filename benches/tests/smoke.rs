//! Smoke test of the bench harness on real processes: a 3-node licstore cluster and the echo
//! server on loopback, a tiny dataset, every workload for half a second, then the report.
//! It asserts that every run did work without errors and that the report names every
//! workload; it asserts nothing about speed.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use licstore_bench::results::{read_all, RunResult};

/// Measured seconds of each run that is not stopped by a call count.
const TIMED_RUN_SECS: f64 = 0.5;

/// Kills the processes it holds by PID when dropped.
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A free port below the kernel's ephemeral range (32768 and up), so no outgoing connection
/// can take it between this pick and the server's bind; each call tries the next one.
fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id() % 10_000;
    for _ in 0..10_000 {
        let offset = start.wrapping_add(NEXT.fetch_add(1, Ordering::SeqCst)) % 10_000;
        let port = 21_000 + offset as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 21000..31000");
}

fn bin(name: &str) -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_licbench")).with_file_name(name)
}

fn start_cluster(dir: &Path, procs: &mut Procs) -> String {
    let addrs: Vec<String> = (0..3)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let init: Vec<String> = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| format!("{}={a}", i + 1))
        .collect();
    for (i, addr) in addrs.iter().enumerate() {
        let mut cmd = Command::new(bin("licstored"));
        cmd.args(["--id", &(i + 1).to_string(), "--addr", addr])
            .arg("--data-dir")
            .arg(dir.join(format!("n{}", i + 1)))
            .args(["--heartbeat-ms", "100", "--election-min-ms", "600"])
            .args(["--election-max-ms", "1200", "--insecure"])
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if i == 0 {
            cmd.args(["--init", &init.join(",")]);
        }
        procs.0.push(cmd.spawn().expect("start licstored"));
    }
    let endpoints = addrs.join(",");
    let waited = Command::new(bin("licctl"))
        .args([
            "--endpoints",
            &endpoints,
            "wait-leader",
            "--timeout-s",
            "60",
        ])
        .stdout(Stdio::null())
        .status()
        .expect("run licctl");
    assert!(waited.success(), "no leader elected");
    endpoints
}

fn licbench(args: &[&str]) {
    let out = Command::new(bin("licbench"))
        .args(args)
        .output()
        .expect("run licbench");
    assert!(
        out.status.success(),
        "licbench {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_workload_runs_and_the_report_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut procs = Procs(Vec::new());
    let endpoints = start_cluster(dir.path(), &mut procs);
    let echo = format!("127.0.0.1:{}", free_port());
    let echo_proc = Command::new(bin("licbench"))
        .args(["echo-server", "--listen", &echo, "--threads", "1"])
        .stderr(Stdio::null())
        .spawn()
        .expect("start the echo server");
    procs.0.push(echo_proc);
    let results = dir.path().join("results.jsonl");
    let results_arg = results.to_str().expect("utf-8 path");
    let common = [
        "--records",
        "300",
        "--conns",
        "2",
        "--json-out",
        results_arg,
    ];
    let load = [
        "load",
        "--endpoints",
        &endpoints,
        "--streams",
        "2",
        "--batch",
        "100",
    ];
    licbench(&[&load[..], &common[..]].concat());
    let timed = [
        "--duration-secs",
        &TIMED_RUN_SECS.to_string(),
        "--warmup-secs",
        "0",
        "--clients",
        "4",
    ];
    let table: [&[&str]; 10] = [
        &["--workload", "verify"],
        &[
            "--workload",
            "verify",
            "--consistency",
            "serializable",
            "--key-dist",
            "zipf",
        ],
        &["--workload", "verify", "--consistency", "bounded-staleness"],
        &["--workload", "verify", "--rate", "200"],
        &["--workload", "verify-batch", "--batch", "20"],
        &["--workload", "issue", "--run-id", "1"],
        &["--workload", "status", "--status-keys", "20"],
        &[
            "--workload",
            "city-day",
            "--status-keys",
            "20",
            "--run-id",
            "2",
        ],
        &[
            "--workload",
            "import",
            "--batch",
            "50",
            "--total",
            "3",
            "--run-id",
            "3",
        ],
        &[
            "--workload",
            "verify",
            "--system",
            "echo",
            "--endpoints",
            &echo,
        ],
    ];
    // Every server process, the echo server's included: each run reports their CPU time.
    let pids: Vec<String> = procs.0.iter().map(|c| c.id().to_string()).collect();
    let pids = pids.join(",");
    for extra in table {
        let base = ["run", "--endpoints", &endpoints, "--server-pids", &pids];
        licbench(&[&base[..], &common[..], &timed[..], extra].concat());
    }
    let runs = read_all(std::slice::from_ref(&results)).expect("read results");
    assert_eq!(runs.len(), 1 + table.len(), "one result line per run");
    for r in &runs {
        assert!(r.ok > 0 && r.failed() == 0, "{}", r.summary());
        assert!(r.p99_ms > 0.0 && r.p99_ms >= r.p50_ms, "{}", r.summary());
    }
    // The load has no CPU figure. A closed-loop run that lasts its whole duration keeps the
    // servers busy for whole clock ticks; a slow open-loop one, or the import that stops after
    // three calls (a few milliseconds), may not.
    let mut busy = 0;
    for r in &runs[1..] {
        let cpu = r.server_cpu_us_per_item;
        assert!(cpu.is_some_and(|us| us >= 0.0), "{}", r.summary());
        if r.rate == 0.0 && r.elapsed_secs >= TIMED_RUN_SECS * 0.8 {
            assert!(cpu.is_some_and(|us| us > 0.0), "{}", r.summary());
            busy += 1;
        }
    }
    assert!(
        busy >= 6,
        "only {busy} closed-loop runs lasted their duration"
    );
    assert_report(dir.path(), &results, &runs);
}

fn assert_report(dir: &Path, results: &Path, runs: &[RunResult]) {
    let out = dir.join("report");
    let (results, out_arg) = (results.to_str().unwrap(), out.to_str().unwrap());
    licbench(&["report", "--results", results, "--out", out_arg]);
    let md = std::fs::read_to_string(out.join("README.md")).expect("report README.md");
    for r in runs {
        let name = serde_json::to_value(r.workload).unwrap();
        let name = name.as_str().unwrap();
        assert!(md.contains(name), "report does not mention {name}");
    }
    assert!(out.join("results.json").exists());
}
