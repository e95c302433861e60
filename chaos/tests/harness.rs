//! The process and fault layer against real `licstored` processes: network namespaces (or the
//! loopback fallback), nft partitions, kill/restart, SIGSTOP/SIGCONT, the link proxy, and
//! namespace clean-up. Every wait is bounded; no assertion is on speed.
//!
//! Needs the daemon built first (`cargo build --release -p licstore-server`; a workspace
//! `cargo test` builds it); `chaos/setup.sh` installs nft and the other tools. Without root
//! or nft the cluster tests run in the loopback fallback.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use licstore_chaos::cluster::{licstored_path, Cluster, ClusterOptions, Exit};
use licstore_chaos::net::{list_netns, Net, NetOptions};
use licstore_chaos::proxy::{Dir, Mode, Proxy, ProxyOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Generous bound for elections and convergence on a loaded 2-core machine.
const WAIT: Duration = Duration::from_secs(40);

fn binary() -> PathBuf {
    licstored_path().expect(
        "licstored not found: build it with `cargo build --release -p licstore-server` \
         (same CARGO_TARGET_DIR) or set LICSTORED",
    )
}

fn start(net: &Net, tag: &str) -> (tempfile::TempDir, Cluster) {
    start_with(net, tag, &[])
}

fn start_with(net: &Net, tag: &str, args: &[&str]) -> (tempfile::TempDir, Cluster) {
    start_edited(net, tag, args, |_| {})
}

/// Three voters started with `args`, after `edit` had its say on the options.
fn start_edited(
    net: &Net,
    tag: &str,
    args: &[&str],
    edit: impl FnOnce(&mut ClusterOptions),
) -> (tempfile::TempDir, Cluster) {
    let root = tempfile::Builder::new()
        .prefix(&format!("lcx-{tag}-"))
        .tempdir()
        .expect("tempdir");
    let mut opts = ClusterOptions::new(binary(), 3, root.path().join("run"));
    opts.extra_args = args.iter().map(|a| a.to_string()).collect();
    edit(&mut opts);
    let cluster = Cluster::start(opts, net).expect("start 3 nodes");
    (root, cluster)
}

fn describe(net: &Net) -> String {
    match &net.fallback_reason {
        None => format!("namespace mode ({})", net.prefix()),
        Some(why) => format!("loopback fallback: {why}"),
    }
}

fn log_tail(cluster: &Cluster) -> String {
    let mut out = String::new();
    for n in cluster.nodes() {
        let text = std::fs::read_to_string(&n.log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        out.push_str(&format!("--- node {} ({}):\n", n.id, n.log.display()));
        for l in tail.into_iter().rev() {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

/// Isolate the leader with nft (proxies in the fallback): the other two elect a new
/// leader; after the heal all three agree and converge.
#[test]
fn isolating_the_leader_elects_another_and_heals() {
    isolate_leader_then_heal(true);
}

/// The same through the loopback fallback's ingress proxies, which name the node behind
/// each connection from /proc.
#[test]
fn isolating_the_leader_in_the_loopback_fallback() {
    isolate_leader_then_heal(false);
}

fn isolate_leader_then_heal(namespaces: bool) {
    let mut net = Net::new(NetOptions {
        slots: 3,
        namespaces,
        ..NetOptions::default()
    })
    .expect("net");
    eprintln!("net: {}", describe(&net));
    if !namespaces {
        assert!(!net.namespaces);
    }
    let (_root, mut cluster) = start(&net, "iso");
    let client = net.client_ns();
    client.block_on(async {
        let leader = cluster.wait_leader(WAIT).await.unwrap_or_else(|e| {
            panic!("{e}\n{}", log_tail(&cluster));
        });
        for (id, s) in cluster.statuses().await {
            let s = s.unwrap_or_else(|| panic!("node {id} answers Status"));
            assert_eq!(s.node_id, id);
            assert_eq!(s.leader_id, leader, "node {id}");
        }

        net.isolate(leader).expect("isolate the leader");
        if net.namespaces {
            // Peer links run through the proxies (the dnat rules work).
            let proxied: u64 = net
                .slots()
                .into_iter()
                .flat_map(|a| net.slots().into_iter().map(move |b| (a, b)))
                .filter_map(|(a, b)| net.peer_proxy(a, b))
                .map(|p| p.stats().bytes_up)
                .sum();
            assert!(proxied > 0, "no bytes through the peer proxies");
        }
        let others: Vec<u64> = cluster.ids().into_iter().filter(|i| *i != leader).collect();
        let new_leader = cluster
            .wait_leader_among(&others, WAIT)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", log_tail(&cluster)));
        assert_ne!(new_leader, leader, "a new leader among {others:?}");
        if net.namespaces {
            let rules = net.ruleset(leader).expect("ruleset");
            assert!(
                dropped_packets(&rules) > 0,
                "the leader's rules dropped: {rules}"
            );
        }

        net.heal().expect("heal");
        let after = cluster
            .wait_leader(WAIT)
            .await
            .unwrap_or_else(|e| panic!("after heal: {e}\n{}", log_tail(&cluster)));
        assert!(cluster.ids().contains(&after));
        let conv = cluster.wait_converged(WAIT).await;
        assert!(conv.converged, "{conv:?}");
        assert_eq!(conv.nodes.len(), 3, "{conv:?}");
    });
    assert!(cluster.reap_exited().is_empty(), "{}", log_tail(&cluster));
    // Namespaces go with the net; the cluster's processes first.
    drop(cluster);
}

/// Pre-Vote: a follower cut off for several election timeouts cannot raise its term without a
/// quorum, so when the partition heals the leader keeps its term and its place. Without
/// Pre-Vote the returning node's higher term deposes a working leader: `LCX_PRE_VOTE=false`
/// runs the test with `--pre-vote false`, and it fails.
#[test]
fn a_returning_follower_does_not_depose_the_leader() {
    let mut net = Net::new(NetOptions {
        slots: 3,
        ..NetOptions::default()
    })
    .expect("net");
    let args: Vec<&str> = match std::env::var("LCX_PRE_VOTE") {
        Ok(v) => vec!["--pre-vote", if v == "false" { "false" } else { "true" }],
        Err(_) => vec![],
    };
    let (_root, mut cluster) = start_with(&net, "prevote", &args);
    net.client_ns().block_on(async {
        let leader = cluster.wait_leader(WAIT).await.expect("leader");
        let term_of = |s: &Option<licstore_proto::v1::NodeStatus>| s.as_ref().map(|s| s.term);
        let before = term_of(&cluster.status(leader).await).expect("leader status");
        let follower = cluster.ids().into_iter().find(|i| *i != leader).unwrap();
        net.isolate(follower).expect("isolate");
        // Several election timeouts (1.2 s at most in these clusters) without a leader.
        tokio::time::sleep(Duration::from_secs(5)).await;
        // It names its old leader still (no election without a quorum), unconfirmed.
        let alone = cluster.status(follower).await.expect("isolated status");
        assert!(!alone.has_leader, "{alone:?}");
        let others: Vec<u64> = cluster
            .ids()
            .into_iter()
            .filter(|i| *i != follower)
            .collect();
        let still = cluster
            .wait_leader_among(&others, WAIT)
            .await
            .expect("majority");
        assert_eq!(still, leader);
        net.heal().expect("heal");
        tokio::time::sleep(Duration::from_secs(3)).await;
        let after = cluster.wait_leader(WAIT).await.expect("leader after heal");
        assert_eq!(after, leader, "the leader changed\n{}", log_tail(&cluster));
        for (id, s) in cluster.statuses().await {
            assert_eq!(term_of(&s), Some(before), "node {id}: {s:?}");
        }
        assert!(probes(&cluster, 3).await > 0, "{}", log_tail(&cluster));
        let conv = cluster.wait_converged(WAIT).await;
        assert!(conv.converged, "{conv:?}");
    });
    assert!(cluster.reap_exited().is_empty(), "{}", log_tail(&cluster));
}

/// Packets counted by `counter ... drop` rules of an nft listing.
fn dropped_packets(rules: &str) -> u64 {
    rules
        .lines()
        .filter(|l| l.contains("drop"))
        .filter_map(|l| l.split("counter packets ").nth(1))
        .filter_map(|rest| rest.split(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Kill -9 a follower and restart it from its data; SIGSTOP the leader past its election
/// timeout: another leader appears; SIGCONT: all converge. Signals go to licstored's own pid.
#[test]
fn kill_restart_and_pause_the_leader() {
    let net = Net::new(NetOptions {
        slots: 3,
        ..NetOptions::default()
    })
    .expect("net");
    eprintln!("net: {}", describe(&net));
    let (_root, mut cluster) = start(&net, "kill");
    let bin = binary().canonicalize().expect("binary path");
    for n in cluster.nodes() {
        let pid = n.pid().expect("running");
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("exe");
        assert_eq!(exe, bin, "pid {pid} is licstored itself, not a wrapper");
    }
    let client = net.client_ns();
    client.block_on(async {
        let leader = cluster
            .wait_leader(WAIT)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", log_tail(&cluster)));
        let follower = cluster
            .ids()
            .into_iter()
            .find(|i| *i != leader)
            .expect("a follower");
        cluster.kill(follower).expect("kill -9");
        assert!(!cluster.node(follower).unwrap().running());
        assert!(
            cluster.status(follower).await.is_none(),
            "a killed node is silent"
        );
        cluster.restart(follower).expect("restart");
        assert_eq!(cluster.node(follower).unwrap().starts, 2);
        cluster
            .wait_leader(WAIT)
            .await
            .unwrap_or_else(|e| panic!("after restart: {e}\n{}", log_tail(&cluster)));
        let conv = cluster.wait_converged(WAIT).await;
        assert!(conv.converged, "after restart: {conv:?}");

        let leader = cluster.wait_leader(WAIT).await.expect("leader");
        let pid = cluster.node(leader).unwrap().pid().unwrap();
        cluster.pause(leader).expect("SIGSTOP");
        assert!(wait_state(pid, |s| s == 'T'), "pid {pid} stopped");
        let others: Vec<u64> = cluster.ids().into_iter().filter(|i| *i != leader).collect();
        let new_leader = cluster
            .wait_leader_among(&others, WAIT)
            .await
            .unwrap_or_else(|e| panic!("while paused: {e}\n{}", log_tail(&cluster)));
        assert_ne!(new_leader, leader);
        cluster.resume(leader).expect("SIGCONT");
        assert!(wait_state(pid, |s| s != 'T'), "pid {pid} runs again");
        cluster
            .wait_leader(WAIT)
            .await
            .unwrap_or_else(|e| panic!("after resume: {e}\n{}", log_tail(&cluster)));
        let conv = cluster.wait_converged(WAIT).await;
        assert!(conv.converged, "after resume: {conv:?}");
        assert_eq!(conv.nodes.len(), 3);
    });
    assert!(cluster.reap_exited().is_empty(), "{}", log_tail(&cluster));
}

/// Whether the process state reaches one `want` accepts within 5 s (a signal takes effect
/// when the process is next scheduled).
fn wait_state(pid: u32, want: impl Fn(char) -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if want(proc_state(pid)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

fn proc_state(pid: u32) -> char {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // pid (comm) S ...: the state follows the last ')'.
    text.rsplit(')')
        .next()
        .and_then(|rest| rest.trim_start().chars().next())
        .expect("state")
}

/// A run killed before it could clean up leaves its namespaces and its nodes behind; the
/// next net sweeps both: the `licstored` inside a namespace whose creator is gone is killed
/// and the namespace deleted.
#[test]
fn orphaned_namespaces_and_their_nodes_are_swept() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root for namespaces");
        return;
    }
    // No process has this pid: it is above the kernel's largest (4194304).
    let name = format!("lcx-4194305-{}", std::process::id());
    let ok = std::process::Command::new("ip")
        .args(["netns", "add", &name])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipped: cannot create a network namespace");
        return;
    }
    // Loopback up, so the node can bind 127.0.0.1 and stays up until swept.
    let lo_up = std::process::Command::new("ip")
        .args(["-n", &name, "link", "set", "lo", "up"])
        .status()
        .is_ok_and(|s| s.success());
    let data = tempfile::tempdir().expect("tempdir");
    let node = std::process::Command::new("ip")
        .args(["netns", "exec", &name])
        .arg(binary())
        .args([
            "--insecure",
            "--id",
            "1",
            "--addr",
            "127.0.0.1:7001",
            "--data-dir",
        ])
        .arg(data.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("licstored in the namespace");
    // Kills the node and deletes the namespace if an assertion fails first.
    struct Leftovers(std::process::Child, String);
    impl Drop for Leftovers {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", &self.1])
                .status();
        }
    }
    let mut left = Leftovers(node, name.clone());
    assert!(lo_up, "lo up in {name}");
    // Wait until it is licstored itself (ip execs it) before sweeping.
    let exe = format!("/proc/{}/exe", left.0.id());
    let deadline = Instant::now() + Duration::from_secs(10);
    let is_node =
        || std::fs::read_link(&exe).is_ok_and(|p| p.to_string_lossy().contains("licstored"));
    while !is_node() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(is_node(), "licstored did not start in {name}");
    // Another test's net may sweep it first: what counts is the outcome.
    licstore_chaos::net::sweep_orphans();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut status = left.0.try_wait().expect("wait");
    while status.is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        status = left.0.try_wait().expect("wait");
    }
    assert!(status.is_some(), "the orphaned licstored was left running");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.unwrap().signal(), Some(libc::SIGKILL), "{status:?}");
    assert!(list_netns(&name).is_empty(), "{name} left");
}

/// After the net is dropped no namespace with its prefix is left (`ip netns list`).
#[test]
fn dropping_the_net_removes_its_namespaces() {
    let net = Net::new(NetOptions {
        slots: 2,
        peer_proxies: false,
        ..NetOptions::default()
    })
    .expect("net");
    let prefix = format!("{}-", net.prefix());
    if !net.namespaces {
        eprintln!("skipped: {}", describe(&net));
        return;
    }
    assert_eq!(list_netns(&prefix).len(), 4, "hub, client, n1, n2");
    drop(net);
    let out = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains(&prefix), "{prefix} left: {text}");

    // Also after a panic while the net is alive.
    let prefix2 = std::panic::catch_unwind(|| {
        let net = Net::new(NetOptions {
            slots: 1,
            peer_proxies: false,
            ..NetOptions::default()
        })
        .expect("net");
        let p = format!("{}-", net.prefix());
        assert!(!list_netns(&p).is_empty());
        std::panic::panic_any(format!("intentional panic to test the clean-up of {p}"));
    })
    .expect_err("panicked")
    .downcast::<String>()
    .expect("message")
    .rsplit(' ')
    .next()
    .expect("prefix")
    .to_string();
    assert!(
        list_netns(&prefix2).is_empty(),
        "{prefix2} left after panic"
    );
}

/// The proxy on loopback with an echo server: pass, delay (at least the configured minimum,
/// no upper bound), blackhole (nothing within a window), heal (held bytes arrive), close.
#[test]
fn proxy_passes_delays_blackholes_and_heals() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let echo: SocketAddr = rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    });
    let proxy = Proxy::start(
        rt.handle(),
        ProxyOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            upstream: echo,
            bind_src: None,
            classifier: None,
            seed: 7,
        },
    )
    .expect("proxy");
    let at = proxy.listen_addr();
    rt.block_on(async {
        let mut s = tokio::net::TcpStream::connect(at).await.expect("connect");
        let bound = Duration::from_secs(10);

        // Pass.
        let rtt = round_trip(&mut s, b"ping", bound).await.expect("echo");
        eprintln!("pass: {rtt:?}");

        // Delay 75±50 ms each way: a round trip takes at least 2 × 25 ms.
        let delay = Mode::Delay {
            base: Duration::from_millis(75),
            jitter: Duration::from_millis(50),
        };
        proxy.set(Dir::Both, delay);
        for _ in 0..5 {
            let rtt = round_trip(&mut s, b"slow", bound).await.expect("echo");
            assert!(rtt >= Duration::from_millis(50), "{rtt:?}");
        }
        // Order is kept across chunks with different delays.
        let mut sent = Vec::new();
        for i in 0..20u8 {
            let chunk = [i; 100];
            s.write_all(&chunk).await.unwrap();
            sent.extend_from_slice(&chunk);
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        let mut got = vec![0u8; sent.len()];
        tokio::time::timeout(bound, s.read_exact(&mut got))
            .await
            .expect("in time")
            .expect("read");
        assert_eq!(got, sent, "byte order kept");

        // Blackhole: nothing comes back within the window; heal: the held bytes arrive.
        proxy.set(Dir::Both, Mode::Blackhole);
        s.write_all(b"held").await.unwrap();
        let mut buf = [0u8; 4];
        let window = tokio::time::timeout(Duration::from_millis(700), s.read(&mut buf)).await;
        assert!(window.is_err(), "no bytes through a blackhole: {window:?}");
        // A new connection is accepted but reaches nothing either.
        let mut s2 = tokio::net::TcpStream::connect(at).await.expect("connect");
        assert!(round_trip(&mut s2, b"new!", Duration::from_millis(500))
            .await
            .is_none());
        proxy.heal();
        tokio::time::timeout(bound, s.read_exact(&mut buf))
            .await
            .expect("held bytes after heal")
            .expect("read");
        assert_eq!(&buf, b"held");
        let mut buf2 = [0u8; 4];
        tokio::time::timeout(bound, s2.read_exact(&mut buf2))
            .await
            .expect("held bytes of the second connection")
            .expect("read");
        assert_eq!(&buf2, b"new!");
        round_trip(&mut s, b"again", bound)
            .await
            .expect("pass again");

        // Close: the connections end; a new one works.
        proxy.close_all();
        let mut rest = Vec::new();
        let end = tokio::time::timeout(bound, s.read_to_end(&mut rest)).await;
        assert!(end.is_ok(), "closed connection ends");
        let mut s3 = tokio::net::TcpStream::connect(at).await.expect("connect");
        round_trip(&mut s3, b"new", bound)
            .await
            .expect("new connection");
        let stats = proxy.stats();
        assert!(stats.accepted >= 3, "{stats:?}");
        assert!(stats.bytes_up > 0 && stats.bytes_down > 0, "{stats:?}");
    });
    drop(proxy);
    rt.shutdown_timeout(Duration::from_secs(1));
}

/// Sends `msg` and reads it back; the time it took, or `None` when not back within `bound`.
async fn round_trip(
    s: &mut tokio::net::TcpStream,
    msg: &[u8],
    bound: Duration,
) -> Option<Duration> {
    let t = Instant::now();
    s.write_all(msg).await.ok()?;
    let mut buf = vec![0u8; msg.len()];
    tokio::time::timeout(bound, s.read_exact(&mut buf))
        .await
        .ok()?
        .ok()?;
    assert_eq!(buf, msg);
    Some(t.elapsed())
}

/// The per-node wrappers reach licstored itself (libeatmydata, libfiu, libfaketime in its
/// memory map), libfiu's EIO on fdatasync hits its log writes and the node exits (fail-stop)
/// and recovers when restarted,
/// the faketime spec can change at run time, a capped disk fills and empties.
#[test]
fn wrappers_and_a_capped_disk_reach_licstored() {
    use licstore_chaos::cluster::{DiskCap, Wrappers};

    let missing: Vec<&str> = [
        "/usr/lib/fiu/fiu_posix_preload.so",
        "/usr/bin/fiu-ctrl",
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/x86_64-linux-gnu/libeatmydata.so",
        "/usr/sbin/mkfs.ext4",
    ]
    .into_iter()
    .filter(|p| !std::path::Path::new(p).exists())
    .collect();
    // SAFETY: geteuid has no preconditions.
    let root_user = unsafe { libc::geteuid() } == 0;
    if !missing.is_empty() || !root_user {
        eprintln!("skipped: missing {missing:?} (run chaos/setup.sh), root: {root_user}");
        return;
    }
    let net = Net::new(NetOptions {
        slots: 3,
        ..NetOptions::default()
    })
    .expect("net");
    eprintln!("net: {}", describe(&net));
    let root = tempfile::Builder::new()
        .prefix("lcx-wrap-")
        .tempdir()
        .expect("tempdir");
    let mut opts = ClusterOptions::new(binary(), 3, root.path().join("run"));
    opts.wrappers.insert(
        1,
        Wrappers {
            eatmydata: true,
            ..Wrappers::default()
        },
    );
    opts.wrappers.insert(
        2,
        Wrappers {
            fiu: true,
            ..Wrappers::default()
        },
    );
    opts.wrappers.insert(
        3,
        Wrappers {
            faketime: Some("+0".into()),
            ..Wrappers::default()
        },
    );
    opts.disks.insert(1, DiskCap::Tmpfs { bytes: 96 << 20 });
    opts.disks.insert(3, DiskCap::Ext4 { bytes: 96 << 20 });
    let mut cluster = Cluster::start(opts, &net).expect("start");
    for (id, lib) in [
        (1, "libeatmydata"),
        (2, "fiu_posix_preload"),
        (3, "libfaketime"),
    ] {
        let pid = cluster.node(id).unwrap().pid().unwrap();
        // Mapped once the dynamic loader has run in the new process.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut maps = String::new();
        while !maps.contains(lib) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("maps");
        }
        assert!(maps.contains(lib), "node {id} (pid {pid}) maps {lib}");
    }
    let client = net.client_ns();
    client.block_on(async {
        cluster
            .wait_leader(WAIT)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", log_tail(&cluster)));
        cluster.set_clock(3, "+90s").expect("skew node 3");
        assert!(
            cluster.set_clock(1, "+1s").is_err(),
            "node 1 has no libfaketime"
        );

        // EIO on node 2's fdatasync: the next replicated write fails there.
        cluster.io_errors(2, true, 1.0, false).expect("EIO on");
        let deadline = Instant::now() + WAIT;
        let log2 = cluster.node(2).unwrap().log.clone();
        let mut seen = false;
        while !seen && Instant::now() < deadline {
            probes(&cluster, 3).await;
            let text = std::fs::read_to_string(&log2).unwrap_or_default();
            seen = text.contains("Input/output error");
        }
        assert!(seen, "node 2 saw EIO\n{}", log_tail(&cluster));
        // Fail-stop: the node whose Raft core stopped exits on its own, to be restarted.
        let exits = exits_within(&mut cluster, WAIT, false).await;
        let nodes: Vec<u64> = exits.iter().map(|e| e.node).collect();
        assert_eq!(nodes, [2], "{exits:?}\n{}", log_tail(&cluster));
        let text = std::fs::read_to_string(&log2).unwrap_or_default();
        assert!(
            text.contains("raft stopped on its own"),
            "{}",
            log_tail(&cluster)
        );
        cluster.io_errors(2, false, 0.0, false).expect("EIO off");
        cluster.restart(2).expect("restart");

        let filled = cluster.fill_disk(1).expect("fill");
        assert!(filled > 0 && filled < 96 << 20, "{filled}");
        cluster.free_disk(1).expect("free");
        assert!(cluster.fill_disk(2).is_err(), "node 2 has no capped disk");

        cluster.set_clock(3, "+0").expect("clock back");
        cluster.wait_leader(WAIT).await.expect("leader");
        let conv = cluster.wait_converged(WAIT).await;
        assert!(conv.converged, "{conv:?}\n{}", log_tail(&cluster));
    });
    assert!(cluster.reap_exited().is_empty(), "{}", log_tail(&cluster));
}

/// A node whose capped disk fills exits on its own within the stall limit, whichever way
/// its storage fails (a write error stops its Raft core; a write that hangs in RocksDB trips
/// the storage watchdog), and catches up once the disk has room and it is restarted. Before the
/// watchdog, a hung write left the node up and answering at a frozen applied index for ever.
#[test]
fn a_full_disk_stops_the_node_and_it_recovers() {
    // A small memtable budget, so the node needs the disk within seconds of it filling; a
    // short stall limit, so a hung write ends the node well inside the test's patience.
    let args = [
        "--memtable-budget-bytes",
        "4194304",
        "--stall-limit-ms",
        "3000",
    ];
    let Some((net, _root, mut cluster)) = ext4_node3_cluster("full", &args, &[]) else {
        return;
    };
    net.client_ns().block_on(async {
        cluster.wait_leader(WAIT).await.expect("leader");
        let filled = cluster.fill_disk(3).expect("fill");
        assert!(filled > 0, "{filled}");
        let exits = exits_within(&mut cluster, Duration::from_secs(90), true).await;
        let nodes: Vec<u64> = exits.iter().map(|e| e.node).collect();
        assert_eq!(nodes, [3], "{exits:?}\n{}", log_tail(&cluster));
        let text = std::fs::read_to_string(&cluster.node(3).unwrap().log).unwrap_or_default();
        let why = ["raft stopped on its own", "storage stopped answering"];
        let Some(said) = why.iter().find(|w| text.contains(*w)) else {
            panic!("node 3 exited without saying why\n{}", log_tail(&cluster));
        };
        eprintln!("node 3 exited: {said}");
        cluster.free_disk(3).expect("free");
        restart_and_converge(&mut cluster, 3).await;
    });
    assert!(cluster.reap_exited().is_empty(), "{}", log_tail(&cluster));
}

/// A disk that stops answering (frozen with fsfreeze: every write blocks) trips the storage
/// watchdog: the node says why and exits once the stuck call returns, instead of staying up
/// as a member that heartbeats but can neither append nor apply. Restarted on a thawed disk,
/// it catches up.
#[test]
fn a_frozen_disk_trips_the_storage_watchdog() {
    let args = ["--stall-limit-ms", "3000"];
    let tools = ["/usr/sbin/fsfreeze"];
    let Some((net, _root, mut cluster)) = ext4_node3_cluster("frozen", &args, &tools) else {
        return;
    };
    net.client_ns().block_on(async {
        cluster.wait_leader(WAIT).await.expect("leader");
        assert!(cluster.freeze_disk(1, true).is_err(), "node 1 has no disk");
        cluster.freeze_disk(3, true).expect("freeze");
        let log3 = cluster.node(3).unwrap().log.clone();
        let said = "storage stopped answering";
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut text = String::new();
        while !text.contains(said) && Instant::now() < deadline {
            probes(&cluster, 5).await;
            text = std::fs::read_to_string(&log3).unwrap_or_default();
        }
        cluster.freeze_disk(3, false).expect("thaw");
        assert!(text.contains(said), "{}", log_tail(&cluster));
        assert!(text.contains("storage call is slow"), "no early warning");
        let exits = exits_within(&mut cluster, WAIT, false).await;
        let nodes: Vec<u64> = exits.iter().map(|e| e.node).collect();
        assert_eq!(nodes, [3], "{exits:?}\n{}", log_tail(&cluster));
        assert!(exits[0].status.contains("exit status: 1"), "{exits:?}");
        restart_and_converge(&mut cluster, 3).await;
    });
    assert!(cluster.reap_exited().is_empty(), "{}", log_tail(&cluster));
}

/// Three voters, node 3 on a 96 MiB ext4 disk, started with `args`; `None` (after saying
/// why) when not root or when mkfs.ext4 or one of `tools` is missing.
fn ext4_node3_cluster(
    tag: &str,
    args: &[&str],
    tools: &[&str],
) -> Option<(Net, tempfile::TempDir, Cluster)> {
    use licstore_chaos::cluster::DiskCap;

    // SAFETY: geteuid has no preconditions.
    let root_user = unsafe { libc::geteuid() } == 0;
    let mut needed = vec!["/usr/sbin/mkfs.ext4"];
    needed.extend_from_slice(tools);
    if !root_user || !needed.iter().all(|t| std::path::Path::new(t).exists()) {
        eprintln!("skipped: needs root and {needed:?} (run chaos/setup.sh)");
        return None;
    }
    let net = Net::new(NetOptions {
        slots: 3,
        ..NetOptions::default()
    })
    .expect("net");
    let (root, cluster) = start_edited(&net, tag, args, |opts| {
        opts.disks.insert(3, DiskCap::Ext4 { bytes: 96 << 20 });
    });
    Some((net, root, cluster))
}

/// Nodes that exit within `within`, waiting for the first; with `probe`, writes go through
/// the leader meanwhile.
async fn exits_within(cluster: &mut Cluster, within: Duration, probe: bool) -> Vec<Exit> {
    let deadline = Instant::now() + within;
    let mut exits = cluster.reap_exited();
    while exits.is_empty() && Instant::now() < deadline {
        if probe {
            probes(cluster, 5).await;
        } else {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        exits = cluster.reap_exited();
    }
    exits
}

/// Restarts node `id`; the cluster must then take writes and converge.
async fn restart_and_converge(cluster: &mut Cluster, id: u64) {
    cluster.restart(id).expect("restart");
    cluster
        .wait_leader(WAIT)
        .await
        .expect("leader after restart");
    assert!(probes(cluster, 5).await > 0, "{}", log_tail(cluster));
    let conv = cluster.wait_converged(WAIT).await;
    assert!(conv.converged, "{conv:?}\n{}", log_tail(cluster));
}

/// Every nemesis once, injected and healed on 3 voters (5 slots) with the wrappers and a
/// capped disk, probes written throughout; the cluster converges after each. Slow (minutes):
/// `cargo test --release -p licstore-chaos --test harness -- --ignored --nocapture`
/// (`LCX_FALLBACK=1`: loopback fallback; `LCX_ONLY=<name>`: one nemesis; `LCX_KEEP=1`:
/// keep the run directory).
#[test]
#[ignore]
fn every_nemesis_injects_and_heals() {
    use licstore_chaos::cluster::{DiskCap, Wrappers};
    use licstore_chaos::nemesis::Nemesis;
    use rand::SeedableRng;

    let mut net = Net::new(NetOptions {
        slots: 5,
        namespaces: std::env::var_os("LCX_FALLBACK").is_none(),
        ..NetOptions::default()
    })
    .expect("net");
    eprintln!("net: {}", describe(&net));
    let root = tempfile::Builder::new()
        .prefix("lcx-all-")
        .tempdir()
        .expect("tempdir");
    let mut opts = ClusterOptions::new(binary(), 3, root.path().join("run"));
    opts.keep_run_dir = std::env::var_os("LCX_KEEP").is_some();
    for id in 1..=5 {
        opts.wrappers.insert(
            id,
            Wrappers {
                faketime: (id >= 3).then(|| "+0".to_string()),
                fiu: id == 2,
                ..Wrappers::default()
            },
        );
    }
    opts.disks.insert(1, DiskCap::Ext4 { bytes: 96 << 20 });
    opts.disks.insert(2, DiskCap::Tmpfs { bytes: 96 << 20 });
    let mut cluster = Cluster::start(opts, &net).expect("start");
    if std::env::var_os("LCX_KEEP").is_some() {
        eprintln!("keeping {}", root.keep().display());
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
    let only = std::env::var("LCX_ONLY").ok();
    let client = net.client_ns();
    client.block_on(async {
        cluster.wait_leader(WAIT).await.expect("leader");
        for nemesis in Nemesis::all() {
            if only.as_deref().is_some_and(|o| o != nemesis.name()) {
                continue;
            }
            let before = probes(&cluster, 5).await;
            let mut rec = nemesis
                .inject(&mut cluster, &mut net, &mut rng)
                .await
                .unwrap_or_else(|e| panic!("{e:#}\n{}", log_tail(&cluster)));
            let during = probes(&cluster, 10).await;
            Nemesis::heal(&mut rec, &mut cluster, &mut net)
                .await
                .unwrap_or_else(|e| panic!("heal {}: {e:#}\n{}", rec.kind, log_tail(&cluster)));
            let exited = cluster.reap_exited();
            for e in &exited {
                cluster.restart(e.node).expect("restart exited");
            }
            let leader = cluster.wait_leader(WAIT).await;
            let after = probes(&cluster, 5).await;
            let conv = cluster.wait_converged(WAIT).await;
            eprintln!(
                "{}: {} targets {:?} skipped {:?} probes ok {before}/{during}/{after} \
                 exited {exited:?} leader {leader:?} converged {} in {} ms",
                rec.kind, rec.detail, rec.targets, rec.skipped, conv.converged, conv.waited_ms
            );
            assert!(
                conv.converged,
                "{}: {conv:?}\n{}",
                rec.kind,
                log_tail(&cluster)
            );
            assert!(rec.stop_ns.unwrap() >= rec.start_ns);
        }
    });
}

/// `n` probe writes through the current leader; how many succeeded.
async fn probes(cluster: &Cluster, n: u32) -> u32 {
    use licstore_proto::v1 as pb;
    let mut ok = 0;
    for i in 0..n {
        let Some(leader) = cluster.leader().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let ch = cluster.channel(leader, Duration::from_secs(2)).unwrap();
        let mut c = licstore_proto::v1::cluster_client::ClusterClient::new(ch);
        let req = pb::ProbeRequest {
            payload: vec![i as u8; 1000],
        };
        if c.probe(req).await.is_ok() {
            ok += 1;
        }
    }
    ok
}
