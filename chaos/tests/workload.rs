//! The workloads against a real 3-node cluster of `licstored` processes on loopback.
//!
//! The binary is the release `licstored` next to this test's directory
//! (`$CARGO_TARGET_DIR/release/licstored`; build it with
//! `cargo build --release -p licstore-server`). Each node gets free ports on 127.0.0.1 and a
//! data directory under one temporary folder; processes are killed by their own PID when the
//! cluster drops. Every wait is bounded.
//!
//! - `clean_run_*`: register (4 clients, 5 keys, ~3 s), set (50), import (2 x 50) and a watch
//!   on every node, without faults: no unknown outcome, reads see only written values, the
//!   watchers see every write's revision, the final read finds every create.
//! - `leader_kill_*`: the register workload keeps going while the leader is SIGKILLed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use licstore_chaos::history::{Op, OpKind, Outcome};
use licstore_chaos::recorder::Recorder;
use licstore_chaos::workload::final_read::{final_read, FinalRead, FinalReadConfig};
use licstore_chaos::workload::import::{run_import, ImportConfig};
use licstore_chaos::workload::register::{RegisterConfig, RegisterWorkload};
use licstore_chaos::workload::set::{run_set, SetConfig};
use licstore_chaos::workload::watch::{WatchConfig, WatchStream, Watchers};
use licstore_chaos::workload::{phase_stats, NodeAddr, Placement, Stop};
use licstore_proto::v1 as pb;
use licstore_proto::v1::cluster_client::ClusterClient;

/// Upper bound of any wait here.
const WAIT: Duration = Duration::from_secs(30);

struct TestCluster {
    _root: tempfile::TempDir,
    nodes: Vec<(NodeAddr, Option<Child>)>,
}

fn licstored() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let release = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let bin = release.join("licstored");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --release -p licstore-server` first",
        bin.display()
    );
    bin
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

impl TestCluster {
    /// Starts `n` voters; node 1 initialises the cluster.
    fn start(n: u64) -> Self {
        let root = tempfile::tempdir().expect("tempdir");
        let addrs: Vec<NodeAddr> = (1..=n)
            .map(|id| NodeAddr {
                id,
                addr: format!("127.0.0.1:{}", free_port()),
            })
            .collect();
        let init: Vec<String> = addrs
            .iter()
            .map(|a| format!("{}={}", a.id, a.addr))
            .collect();
        let bin = licstored();
        let nodes = addrs
            .into_iter()
            .map(|a| {
                let dir = root.path().join(format!("n{}", a.id));
                let mut cmd = Command::new(&bin);
                cmd.args(["--id", &a.id.to_string(), "--addr", &a.addr])
                    .arg("--data-dir")
                    .arg(&dir)
                    .args(["--heartbeat-ms", "100"])
                    .args(["--election-min-ms", "600", "--election-max-ms", "1200"])
                    .env("RUST_LOG", "error")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::inherit());
                if a.id == 1 {
                    cmd.arg("--init").arg(init.join(","));
                }
                let child = cmd.spawn().expect("start licstored");
                (a, Some(child))
            })
            .collect();
        TestCluster { _root: root, nodes }
    }

    /// Addresses of the running nodes.
    fn running(&self) -> Vec<NodeAddr> {
        let up = self.nodes.iter().filter(|(_, c)| c.is_some());
        up.map(|(a, _)| a.clone()).collect()
    }

    /// SIGKILL through the child handle (its own PID).
    fn kill(&mut self, id: u64) {
        let node = self.nodes.iter_mut().find(|(a, _)| a.id == id);
        if let Some(mut child) = node.and_then(|(_, c)| c.take()) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The leader every running node agrees on.
    async fn wait_leader(&self) -> u64 {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Some(id) = self.agreed_leader().await {
                return id;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no leader agreed within {WAIT:?}");
    }

    async fn agreed_leader(&self) -> Option<u64> {
        let mut leader = None;
        for a in self.running() {
            let s = status(&a.addr).await?;
            if !s.has_leader || leader.is_some_and(|l| l != s.leader_id) {
                return None;
            }
            leader = Some(s.leader_id);
        }
        leader.filter(|l| self.running().iter().any(|a| a.id == *l))
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.nodes {
            if let Some(mut c) = child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

async fn status(addr: &str) -> Option<pb::NodeStatus> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).ok()?;
    let channel = endpoint
        .connect_timeout(Duration::from_millis(300))
        .timeout(Duration::from_secs(1))
        .connect_lazy();
    let resp = ClusterClient::new(channel)
        .status(pb::StatusRequest {})
        .await;
    resp.ok()?.into_inner().node
}

/// Values written to each key by creates and writes that did not fail.
fn written(ops: &[Op]) -> BTreeMap<&str, BTreeSet<&str>> {
    let mut out: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for op in ops.iter().filter(|o| o.may_write()) {
        if let Some(v) = op.value.as_deref() {
            out.entry(op.key.as_str()).or_default().insert(v);
        }
    }
    out
}

/// Every ok read saw a value some create or write wrote, or nothing before any create of its
/// key completed.
fn assert_reads_see_written_values(ops: &[Op]) {
    let written = written(ops);
    for r in ops
        .iter()
        .filter(|o| o.kind == OpKind::Read && o.outcome == Outcome::Ok)
    {
        match r.value.as_deref() {
            Some(v) => assert!(
                written.get(r.key.as_str()).is_some_and(|w| w.contains(v)),
                "read {} saw {v:?}, never written",
                r.id
            ),
            None => assert!(
                !ops.iter().any(|c| c.kind == OpKind::Create
                    && c.key == r.key
                    && c.outcome == Outcome::Ok
                    && c.end_ns() < r.invoke_ns),
                "read {} saw nothing after a create of {} completed",
                r.id,
                r.key
            ),
        }
    }
}

/// Completion never precedes invoke, and unknown ops have no completion.
fn assert_times_ordered(ops: &[Op]) {
    for op in ops {
        match op.outcome {
            Outcome::Unknown => assert_eq!(op.complete_ns, None, "op {}", op.id),
            _ => assert!(
                op.complete_ns.is_some_and(|c| c >= op.invoke_ns),
                "op {} completes before its invoke",
                op.id
            ),
        }
    }
}

/// Every ok create's key is present on every node, with a value written to it.
fn assert_final_read_has_creates(ops: &[Op], fr: &FinalRead, nodes: &[NodeAddr]) {
    assert!(fr.unread.is_empty(), "unread: {:?}", fr.unread);
    let written = written(ops);
    let creates = ops
        .iter()
        .filter(|o| o.kind == OpKind::Create && o.outcome == Outcome::Ok);
    for c in creates {
        for n in nodes {
            let got = fr.values.get(&n.id).and_then(|v| v.get(&c.key));
            let Some(Some((value, _))) = got else {
                panic!("node {}: created {} missing: {got:?}", n.id, c.key);
            };
            assert!(written[c.key.as_str()].contains(value.as_str()), "{value}");
        }
    }
}

/// Every watcher saw an event of each ok write's key at its revision.
fn assert_watchers_saw_writes(ops: &[Op], streams: &[WatchStream]) {
    for s in streams {
        let seen: BTreeSet<(u64, &str)> = s
            .events
            .iter()
            .map(|e| (e.revision, e.key.as_str()))
            .collect();
        let writes = ops
            .iter()
            .filter(|o| o.kind != OpKind::Read && o.outcome == Outcome::Ok);
        for w in writes {
            let revision = w.revision.expect("an ok write has a revision");
            assert!(
                seen.contains(&(revision, w.key.as_str())),
                "watcher {} (node {}) missed {} at {revision}",
                s.watcher,
                s.node,
                w.key
            );
        }
    }
}

fn all_keys(groups: [&[String]; 3]) -> Vec<String> {
    groups.iter().flat_map(|g| g.iter().cloned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clean_run_records_every_kind_and_no_unknown() {
    let started = Instant::now();
    let cluster = TestCluster::start(3);
    cluster.wait_leader().await;
    let nodes = cluster.running();
    let rec = Recorder::new();
    let (watch_stop, watch_until) = Stop::with_handle(Instant::now() + 2 * WAIT);
    let watchers =
        Watchers::start(&nodes, &WatchConfig::default(), &rec, &watch_until).expect("watchers");
    let cfg = RegisterConfig {
        keys: 5,
        clients: 4,
        seed: 7,
        placement: Placement::Pinned,
        ..RegisterConfig::default()
    };
    let register = RegisterWorkload::setup(cfg, &nodes, &rec)
        .await
        .expect("setup");
    let (run_until, other_until) = (Stop::after(Duration::from_secs(3)), Stop::after(WAIT));
    let set_cfg = SetConfig::default();
    let import_cfg = ImportConfig::default();
    let (report, set, import) = tokio::join!(
        register.run(&rec, &run_until),
        run_set(&set_cfg, &nodes, &rec, &other_until),
        run_import(&import_cfg, &nodes, &rec, &other_until),
    );
    let (set, import) = (set.expect("set"), import.expect("import"));
    assert_eq!((set.keys.len(), import.keys.len()), (50, 100));
    let ops = rec.history();
    for kind in [OpKind::Create, OpKind::Write, OpKind::Read] {
        let ok = ops
            .iter()
            .any(|o| o.kind == kind && o.outcome == Outcome::Ok);
        assert!(ok, "no ok {kind:?}");
    }
    let unknown: Vec<&Op> = ops
        .iter()
        .filter(|o| o.outcome == Outcome::Unknown)
        .collect();
    assert!(unknown.is_empty(), "unknown without faults: {unknown:?}");
    assert_eq!(set.ok, 50);
    assert_eq!(import.summaries, 2);
    assert_times_ordered(&ops);
    assert_reads_see_written_values(&ops);

    let keys = all_keys([&report.keys, &set.keys, &import.keys]);
    let fr = final_read(&nodes, &keys, &FinalReadConfig::default())
        .await
        .expect("read");
    assert_final_read_has_creates(&ops, &fr, &nodes);

    let top = ops
        .iter()
        .filter_map(|o| o.revision)
        .max()
        .expect("revisions");
    assert!(
        watchers.wait_progress(top, WAIT).await,
        "watchers behind {top}"
    );
    watch_stop.stop();
    let streams = watchers.finish().await;
    assert_eq!(streams.len(), 3);
    assert_watchers_saw_writes(&ops, &streams);

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("history.jsonl");
    rec.write_jsonl(&path).expect("write history");
    let back = std::fs::File::open(&path)
        .map(std::io::BufReader::new)
        .expect("open");
    assert_eq!(
        licstore_chaos::history::read_jsonl(back).expect("read"),
        ops
    );
    let took = started.elapsed();
    eprintln!("clean run: {} ops, {took:?}", ops.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_kill_keeps_the_register_workload_going() {
    let started = Instant::now();
    let mut cluster = TestCluster::start(3);
    let leader = cluster.wait_leader().await;
    let nodes = cluster.running();
    let rec = Recorder::new();
    let cfg = RegisterConfig {
        keys: 5,
        clients: 4,
        seed: 11,
        placement: Placement::Any,
        ..RegisterConfig::default()
    };
    let register = RegisterWorkload::setup(cfg, &nodes, &rec)
        .await
        .expect("setup");
    let run_until = Stop::after(Duration::from_secs(6));
    let kill = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let at_ns = rec.now_ns();
        cluster.kill(leader);
        at_ns
    };
    let (report, kill_ns) = tokio::join!(register.run(&rec, &run_until), kill);
    let ops = rec.history();
    assert_times_ordered(&ops);
    assert_reads_see_written_values(&ops);
    let after: Vec<&Op> = ops.iter().filter(|o| o.invoke_ns > kill_ns).collect();
    assert!(!after.is_empty(), "no op after the kill");
    assert!(
        after.iter().any(|o| o.outcome == Outcome::Ok),
        "no ok op after the kill"
    );
    let survivors = cluster.running();
    let fr = final_read(&survivors, &report.keys, &FinalReadConfig::default())
        .await
        .expect("final read");
    assert_final_read_has_creates(&ops, &fr, &survivors);
    let end_ns = rec.now_ns();
    let phases = [("before", 0, kill_ns), ("after", kill_ns, end_ns)];
    let stats = phase_stats(&ops, &phases);
    assert!(stats.iter().all(|s| s.ok > 0), "{stats:?}");
    eprintln!("leader kill: {stats:?}, {:?}", started.elapsed());
}
