//! The workloads against a real 3-node cluster of `licstored` processes on loopback.
//!
//! The cluster is the library's [`Cluster`] in the loopback mode of its [`Net`] (no network
//! namespaces, so the clients run on the test's own tokio runtime): each node listens on a free
//! port on 127.0.0.1 behind its ingress proxy, which is the address clients use. The binary
//! is found by [`licstored_path`] (build it with `cargo build --release -p licstore-server`).
//! Node data and logs are under one temporary folder (`run/n<id>/`); processes are killed by
//! their own PID when the cluster drops. Every wait is bounded. The nodes and clients speak
//! mutual TLS with access control on, the cluster's default.
//!
//! - `clean_run_*`: register (4 clients, 5 keys, ~3 s), set (50), import (2 x 50) and a watch
//!   on every node, without faults: no unknown outcome, reads see only written values, the
//!   watchers see every write's revision, the final read finds every create.
//! - `leader_kill_*`: the register workload keeps going while the leader is SIGKILLed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use licstore_chaos::cluster::{licstored_path, Cluster, ClusterOptions};
use licstore_chaos::history::{Op, OpKind, Outcome};
use licstore_chaos::net::{Net, NetOptions};
use licstore_chaos::recorder::Recorder;
use licstore_chaos::workload::final_read::{final_read, FinalRead, FinalReadConfig};
use licstore_chaos::workload::import::{run_import, ImportConfig};
use licstore_chaos::workload::register::{RegisterConfig, RegisterWorkload};
use licstore_chaos::workload::set::{run_set, SetConfig};
use licstore_chaos::workload::watch::{WatchConfig, WatchStream, Watchers};
use licstore_chaos::workload::{phase_stats, NodeAddr, Placement, Stop};

/// Upper bound of any wait here.
const WAIT: Duration = Duration::from_secs(30);

/// Starts 3 voters on a loopback net; node 1 initialises the cluster. Bind the parts in this
/// order (`let (_root, _net, cluster) = ...`) so the cluster is dropped first.
fn start() -> (tempfile::TempDir, Net, Cluster) {
    let root = tempfile::tempdir().expect("tempdir");
    let net = Net::new(NetOptions {
        slots: 3,
        namespaces: false,
        ..NetOptions::default()
    })
    .expect("loopback net");
    let binary = licstored_path().expect(
        "licstored not found: build it with `cargo build --release -p licstore-server` \
         (same CARGO_TARGET_DIR) or set LICSTORED",
    );
    let opts = ClusterOptions::new(binary, 3, root.path().join("run"));
    let cluster = Cluster::start(opts, &net).expect("start 3 nodes");
    (root, net, cluster)
}

/// The client addresses of nodes `ids`, for the workloads.
fn addrs(cluster: &Cluster, ids: &[u64]) -> Vec<NodeAddr> {
    cluster.node_addrs(ids).expect("node addresses")
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
    let (_root, _net, cluster) = start();
    cluster.wait_leader(WAIT).await.expect("leader");
    cluster.grant_client(WAIT).await.expect("grant");
    let nodes = addrs(&cluster, &cluster.running());
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
    let (_root, _net, mut cluster) = start();
    let leader = cluster.wait_leader(WAIT).await.expect("leader");
    cluster.grant_client(WAIT).await.expect("grant");
    let nodes = addrs(&cluster, &cluster.running());
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
        cluster.kill(leader).expect("kill the leader");
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
    let survivors = addrs(&cluster, &cluster.running());
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
