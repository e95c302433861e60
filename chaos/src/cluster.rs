//! Real `licstored` processes: start, kill, pause, restart, wipe, and the cluster RPCs a
//! chaos run needs (leader, membership, digests, convergence).
//!
//! Every node runs in its slot of a [`Net`]: in namespace mode the process is spawned
//! directly with a `pre_exec` `setns(2)` into the node's namespace, so the pid held here is
//! licstored's own (signals reach it, not a wrapper such as `ip netns exec`). Each node has
//! a directory under the run directory:
//!
//! ```text
//! <run>/n<id>/data/        the --data-dir (a mount point when the disk is capped)
//! <run>/n<id>/licstored.log  stdout and stderr of every start, appended
//! <run>/n<id>/faketime.rc  libfaketime's clock spec (with the faketime wrapper)
//! <run>/n<id>/fiu-<pid>.in|.out  libfiu's control fifos (with the fiu wrapper)
//! <run>/tls/               the run's CA, node and client certificates (with TLS, the default)
//! ```
//!
//! # TLS
//! With [`ClusterOptions::tls`] (the default) every node serves and dials over mutual TLS
//! with access control on, as in production (see [`crate::tls`]); every RPC here presents
//! the run's client certificate. [`Cluster::grant_client`] registers that client as an
//! issuer of everything once there is a leader, so the workloads may write.
//!
//! # Wrappers (per node, fixed at start; see [`Wrappers`])
//! - **libfaketime**: `LD_PRELOAD=libfaketime.so.1`, `FAKETIME_TIMESTAMP_FILE` pointing at
//!   `faketime.rc` (re-read at most every second, `FAKETIME_CACHE_DURATION=1`), so
//!   [`Cluster::set_clock`] changes the skew at run time ("+30s", "-5m", "+0 x1.5" for a
//!   rate). By default only wall clocks are faked (`FAKETIME_DONT_FAKE_MONOTONIC=1`): Raft
//!   timers run on the monotonic clock. `fake_monotonic` fakes those too.
//! - **libfiu**: `LD_PRELOAD=fiu_run_preload.so fiu_posix_preload.so` with a control fifo;
//!   [`Cluster::fiu`] sends `fiu-ctrl` commands at run time. [`Cluster::io_errors`] enables
//!   EIO on the POSIX sync points `posix/io/sync/fsync` and `posix/io/sync/fdatasync` (and
//!   optionally `posix/io/rw/pwrite`, `posix/io/rw/pwritev`), which only disk files use;
//!   `posix/io/rw/write` is left alone because sockets and the log use it too.
//! - **eatmydata**: `LD_PRELOAD=libeatmydata.so`: fsync and friends return at once without
//!   syncing. A negative control: a durability checker must catch the losses this allows
//!   after a power cut (not after a process kill, which keeps the page cache).
//!
//! # Capped disks (per node, see [`DiskCap`])
//! The data directory is a size-limited tmpfs or a small loop-mounted ext4 image, unmounted
//! and removed on drop. [`Cluster::fill_disk`] writes a ballast file until `ENOSPC`;
//! [`Cluster::free_disk`] removes it.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use licstore_proto::v1 as pb;
use licstore_proto::v1::access_client::AccessClient;
use licstore_proto::v1::cluster_client::ClusterClient;
use serde::{Deserialize, Serialize};
use tonic::transport::Channel;

use crate::net::{netns_path, Net, NodeAddr, PidRegistry};
use crate::tls::{ClientTls, Pki, CLIENT_NAME};
use crate::workload;

/// Errors of the cluster layer.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("no node {0}")]
    NoNode(u64),
    #[error("node {0} is not running")]
    NotRunning(u64),
    #[error("node {0} is running")]
    Running(u64),
    #[error("{0}")]
    Failed(String),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("rpc: {0}")]
    Rpc(#[from] tonic::Status),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

pub type ClusterResult<T> = Result<T, ClusterError>;

/// Connect timeout of the runner's cluster RPCs.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Timeout of one cluster RPC (Status, StateDigest, membership calls).
const RPC_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest wait for a killed process to be reaped.
const REAP_WAIT: Duration = Duration::from_secs(10);
/// Longest a membership or transfer call may take (a blocking add waits for catch-up).
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Preloaded libraries for one node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wrappers {
    /// libfaketime with a run-time adjustable spec; the initial spec (e.g. "+0").
    pub faketime: Option<String>,
    /// Fake monotonic clocks too (default: wall clocks only).
    pub fake_monotonic: bool,
    /// libfiu POSIX preload with a control fifo.
    pub fiu: bool,
    /// libeatmydata: fsync is a no-op (negative control).
    pub eatmydata: bool,
}

/// A size-capped data directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiskCap {
    /// A tmpfs mounted with `size=bytes`.
    Tmpfs { bytes: u64 },
    /// An ext4 image of `bytes` (at least 8 MiB) on a loop device.
    Ext4 { bytes: u64 },
}

/// How the cluster is started.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// The licstored binary.
    pub binary: PathBuf,
    /// Voters at start: ids `1..=voters` (node 1 initialises the cluster).
    pub voters: u64,
    /// Directory for the nodes' data, logs and control files; created if missing.
    pub run_dir: PathBuf,
    /// Keep the run directory on drop (it is removed otherwise).
    pub keep_run_dir: bool,
    pub heartbeat_ms: u64,
    pub election_min_ms: u64,
    pub election_max_ms: u64,
    /// More flags for every node.
    pub extra_args: Vec<String>,
    /// `RUST_LOG` of the nodes.
    pub log_filter: String,
    /// More environment for every node (set after the inherited `LICSTORE_*` settings are
    /// removed), e.g. a fault-injection build's switch.
    pub env: BTreeMap<String, String>,
    pub wrappers: BTreeMap<u64, Wrappers>,
    pub disks: BTreeMap<u64, DiskCap>,
    /// Time zero of the run (fault records and histories count from it).
    pub epoch: Instant,
    /// Mutual TLS with access control (the default), else `--insecure` plain text.
    pub tls: bool,
}

impl ClusterOptions {
    pub fn new(binary: impl Into<PathBuf>, voters: u64, run_dir: impl Into<PathBuf>) -> Self {
        ClusterOptions {
            binary: binary.into(),
            voters,
            run_dir: run_dir.into(),
            keep_run_dir: false,
            heartbeat_ms: 100,
            election_min_ms: 600,
            election_max_ms: 1200,
            extra_args: Vec::new(),
            log_filter: "warn".into(),
            env: BTreeMap::new(),
            wrappers: BTreeMap::new(),
            disks: BTreeMap::new(),
            epoch: Instant::now(),
            tls: true,
        }
    }
}

/// The licstored binary for tests and the runner: `$LICSTORED`, else next to the current
/// executable or in its parent directory (`target/release/deps/..`), else
/// `$CARGO_TARGET_DIR/release/licstored`, else `~/.cache/licstore-target/release/licstored`.
pub fn licstored_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("LICSTORED").map(PathBuf::from) {
        return p.is_file().then_some(p);
    }
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            candidates.push(dir.join("licstored"));
            if let Some(up) = dir.parent() {
                candidates.push(up.join("licstored"));
            }
        }
    }
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(t).join("release/licstored"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join(".cache/licstore-target/release/licstored"));
    }
    candidates.into_iter().find(|p| p.is_file())
}

/// A mounted capped disk.
#[derive(Debug)]
struct Disk {
    mount: PathBuf,
    image: Option<PathBuf>,
    cap: DiskCap,
    frozen: AtomicBool,
}

impl Disk {
    fn mount(cap: DiskCap, mount: &Path, image: &Path) -> ClusterResult<Disk> {
        std::fs::create_dir_all(mount)?;
        match cap {
            DiskCap::Tmpfs { bytes } => {
                run(Command::new("mount")
                    .args([
                        "-t",
                        "tmpfs",
                        "-o",
                        &format!("size={bytes},mode=0700"),
                        "lcx-tmpfs",
                    ])
                    .arg(mount))?;
                Ok(Disk {
                    mount: mount.to_path_buf(),
                    image: None,
                    cap,
                    frozen: AtomicBool::new(false),
                })
            }
            DiskCap::Ext4 { bytes } => {
                let f = File::create(image)?;
                f.set_len(bytes.max(8 << 20))?;
                drop(f);
                run(Command::new("mkfs.ext4")
                    .args(["-q", "-F", "-m", "0"])
                    .arg(image))?;
                run(Command::new("mount")
                    .args(["-o", "loop"])
                    .arg(image)
                    .arg(mount))?;
                Ok(Disk {
                    mount: mount.to_path_buf(),
                    image: Some(image.to_path_buf()),
                    cap,
                    frozen: AtomicBool::new(false),
                })
            }
        }
    }

    fn ballast(&self) -> PathBuf {
        self.mount.join("ballast")
    }

    fn set_frozen(&self, frozen: bool) -> ClusterResult<()> {
        let flag = if frozen { "--freeze" } else { "--unfreeze" };
        run(Command::new("fsfreeze").arg(flag).arg(&self.mount))?;
        self.frozen.store(frozen, Ordering::Relaxed);
        Ok(())
    }

    /// Thaws the disk if a test froze it: a process blocked on it cannot die before.
    fn thaw(&self) {
        if self.frozen.load(Ordering::Relaxed) {
            let _ = self.set_frozen(false);
        }
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        self.thaw();
        if run(Command::new("umount").arg(&self.mount)).is_err() {
            let _ = run(Command::new("umount").arg("-l").arg(&self.mount));
        }
        if let Some(img) = &self.image {
            let _ = std::fs::remove_file(img);
        }
    }
}

/// One node.
#[derive(Debug)]
pub struct Node {
    pub id: u64,
    pub addr: NodeAddr,
    /// `<run>/n<id>`.
    pub dir: PathBuf,
    /// The `--data-dir`.
    pub data: PathBuf,
    pub log: PathBuf,
    pub wrappers: Wrappers,
    child: Option<Child>,
    paused: bool,
    disk: Option<Disk>,
    /// Processes started for this node so far.
    pub starts: u32,
}

impl Node {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }
    pub fn running(&self) -> bool {
        self.child.is_some()
    }
    pub fn paused(&self) -> bool {
        self.paused
    }
    /// Running and not paused: expected to answer RPCs.
    pub fn live(&self) -> bool {
        self.child.is_some() && !self.paused
    }
    pub fn capped(&self) -> Option<DiskCap> {
        self.disk.as_ref().map(|d| d.cap)
    }
}

/// Applied index and digest of one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeDigest {
    pub applied_index: u64,
    pub digest: String,
    pub records: u64,
}

/// Result of [`Cluster::wait_converged`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Convergence {
    /// Each live node's digest (`None`: it did not answer).
    pub nodes: BTreeMap<u64, Option<NodeDigest>>,
    /// Every live node answered with the same applied index and digest.
    pub converged: bool,
    /// Time waited.
    pub waited_ms: u64,
}

/// A node process that ended on its own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    pub node: u64,
    pub status: String,
}

/// The node processes of one run.
pub struct Cluster {
    opts: ClusterOptions,
    nodes: BTreeMap<u64, Node>,
    /// Every slot of the net, for nodes added later.
    slots: BTreeMap<u64, NodeAddr>,
    registry: PidRegistry,
    created_run_dir: bool,
    /// The run's certificates, with TLS on.
    pki: Option<Pki>,
}

impl Cluster {
    /// Starts voters `1..=opts.voters` in their slots of `net`; node 1 gets the `--init`
    /// member list. Returns once the processes are spawned (see [`Cluster::wait_leader`]).
    pub fn start(opts: ClusterOptions, net: &Net) -> ClusterResult<Cluster> {
        if !opts.binary.is_file() {
            return Err(ClusterError::Failed(format!(
                "no licstored at {}",
                opts.binary.display()
            )));
        }
        let created_run_dir = !opts.run_dir.exists();
        std::fs::create_dir_all(&opts.run_dir)?;
        let mut slots = BTreeMap::new();
        for id in net.slots() {
            slots.insert(id, net.node(id).expect("slot").clone());
        }
        let pki = match opts.tls {
            true => Some(Pki::create(&opts.run_dir.join("tls"), &dialed_ips(net))?),
            false => None,
        };
        let mut cluster = Cluster {
            registry: net.pid_registry(),
            opts,
            nodes: BTreeMap::new(),
            slots,
            created_run_dir,
            pki,
        };
        let voters: Vec<u64> = (1..=cluster.opts.voters).collect();
        for id in &voters {
            if !cluster.slots.contains_key(id) {
                return Err(ClusterError::Failed(format!("net has no slot {id}")));
            }
        }
        let init = voters
            .iter()
            .map(|id| format!("{id}={}", cluster.slots[id].addr))
            .collect::<Vec<_>>()
            .join(",");
        for id in voters {
            cluster.add_node(id)?;
            let init_arg = (id == 1).then_some(init.as_str());
            cluster.spawn(id, init_arg)?;
        }
        Ok(cluster)
    }

    /// Nanoseconds since the run's epoch.
    pub fn now_ns(&self) -> u64 {
        self.opts.epoch.elapsed().as_nanos() as u64
    }

    pub fn epoch(&self) -> Instant {
        self.opts.epoch
    }

    pub fn options(&self) -> &ClusterOptions {
        &self.opts
    }

    fn add_node(&mut self, id: u64) -> ClusterResult<()> {
        let addr = self
            .slots
            .get(&id)
            .cloned()
            .ok_or_else(|| ClusterError::Failed(format!("net has no slot {id}")))?;
        let dir = self.opts.run_dir.join(format!("n{id}"));
        std::fs::create_dir_all(&dir)?;
        let mount = dir.join("data");
        let disk = match self.opts.disks.get(&id) {
            Some(cap) => Some(Disk::mount(*cap, &mount, &dir.join("disk.img"))?),
            None => None,
        };
        let data = match &disk {
            Some(_) => mount.join("db"),
            None => mount,
        };
        let wrappers = self.opts.wrappers.get(&id).cloned().unwrap_or_default();
        if let Some(spec) = &wrappers.faketime {
            write_atomic(&dir.join("faketime.rc"), spec)?;
        }
        self.nodes.insert(
            id,
            Node {
                id,
                addr,
                log: dir.join("licstored.log"),
                dir,
                data,
                wrappers,
                child: None,
                paused: false,
                disk,
                starts: 0,
            },
        );
        Ok(())
    }

    fn spawn(&mut self, id: u64, init: Option<&str>) -> ClusterResult<()> {
        let opts = &self.opts;
        let node = self.nodes.get_mut(&id).ok_or(ClusterError::NoNode(id))?;
        if node.child.is_some() {
            return Err(ClusterError::Running(id));
        }
        std::fs::create_dir_all(&node.data)?;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)?;
        writeln!(
            log,
            "=== lcx: start #{} of node {id} at +{} ms",
            node.starts + 1,
            opts.epoch.elapsed().as_millis()
        )?;
        let mut cmd = Command::new(&opts.binary);
        match &self.pki {
            Some(pki) => cmd.args(pki.node_args()),
            None => cmd.arg("--insecure"),
        };
        cmd.arg("--id")
            .arg(id.to_string())
            .arg("--addr")
            .arg(&node.addr.addr)
            .arg("--data-dir")
            .arg(&node.data)
            .arg("--metrics-addr")
            .arg(&node.addr.metrics)
            .arg("--heartbeat-ms")
            .arg(opts.heartbeat_ms.to_string())
            .arg("--election-min-ms")
            .arg(opts.election_min_ms.to_string())
            .arg("--election-max-ms")
            .arg(opts.election_max_ms.to_string());
        if let Some(listen) = &node.addr.listen {
            cmd.arg("--listen-addr").arg(listen);
        }
        if let Some(init) = init {
            cmd.arg("--init").arg(init);
        }
        cmd.args(&opts.extra_args);
        // Only what is asked for here: no settings or preloads inherited from the runner.
        for (k, _) in std::env::vars_os() {
            let k_str = k.to_string_lossy();
            if ["LICSTORE_", "FAKETIME", "FIU_", "LD_PRELOAD"]
                .iter()
                .any(|p| k_str.starts_with(p))
            {
                cmd.env_remove(k);
            }
        }
        cmd.env("RUST_LOG", &opts.log_filter);
        cmd.envs(&opts.env);
        apply_wrappers(&mut cmd, &node.wrappers, &node.dir)?;
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // Kept open until spawn returns: the child joins the namespace through it.
        let ns_file = match &node.addr.netns {
            Some(ns) => Some(File::open(netns_path(ns))?),
            None => None,
        };
        if let Some(f) = &ns_file {
            let fd = f.as_raw_fd();
            // SAFETY: setns is async-signal-safe; it runs in the forked child before exec.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setns(fd, libc::CLONE_NEWNET) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let child = cmd
            .spawn()
            .map_err(|e| ClusterError::Failed(format!("start node {id}: {e}")))?;
        drop(ns_file);
        self.registry.register(child.id(), id);
        node.child = Some(child);
        node.paused = false;
        node.starts += 1;
        Ok(())
    }

    pub fn node(&self, id: u64) -> ClusterResult<&Node> {
        self.nodes.get(&id).ok_or(ClusterError::NoNode(id))
    }

    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.values()
    }

    /// Ids of every node this cluster has started (running or not).
    pub fn ids(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    /// Ids of running, unpaused nodes.
    pub fn live(&self) -> Vec<u64> {
        self.nodes
            .values()
            .filter(|n| n.live())
            .map(|n| n.id)
            .collect()
    }

    /// Ids of running nodes (paused or not).
    pub fn running(&self) -> Vec<u64> {
        self.nodes
            .values()
            .filter(|n| n.running())
            .map(|n| n.id)
            .collect()
    }

    /// Net slots no node of this cluster uses yet (for nodes added by membership changes).
    pub fn free_slots(&self) -> Vec<u64> {
        self.slots
            .keys()
            .filter(|id| !self.nodes.contains_key(id))
            .copied()
            .collect()
    }

    /// The address peers and clients use for node `id`.
    pub fn addr(&self, id: u64) -> ClusterResult<String> {
        Ok(self.node(id)?.addr.addr.clone())
    }

    /// Client endpoints of the nodes this cluster has started.
    pub fn endpoints(&self) -> Vec<String> {
        self.nodes.values().map(|n| n.addr.addr.clone()).collect()
    }

    /// The client TLS settings of the run; `None` in plain text.
    pub fn client_tls(&self) -> Option<ClientTls> {
        self.pki.as_ref().map(Pki::client)
    }

    /// The run's certificates; `None` in plain text.
    pub fn pki(&self) -> Option<&Pki> {
        self.pki.as_ref()
    }

    /// Nodes `ids` as the workloads address them.
    pub fn node_addrs(&self, ids: &[u64]) -> ClusterResult<Vec<workload::NodeAddr>> {
        ids.iter()
            .map(|&id| {
                Ok(workload::NodeAddr {
                    id,
                    addr: self.addr(id)?,
                    tls: self.client_tls(),
                })
            })
            .collect()
    }

    /// A channel to node `id` with the run's client settings; connects on first use.
    pub fn channel(&self, id: u64, timeout: Duration) -> ClusterResult<Channel> {
        channel(&self.addr(id)?, self.client_tls().as_ref(), timeout)
    }

    /// Starts a process for a node that is not a member yet (in a free net slot), with an
    /// empty data directory; add it with [`Cluster::add_learner`].
    pub fn spawn_new(&mut self, id: u64) -> ClusterResult<()> {
        if self.nodes.contains_key(&id) {
            return Err(ClusterError::Running(id));
        }
        self.add_node(id)?;
        self.spawn(id, None)
    }

    /// Starts a stopped node again from its data directory.
    pub fn restart(&mut self, id: u64) -> ClusterResult<()> {
        self.spawn(id, None)
    }

    /// SIGKILL, then reaps the process.
    pub fn kill(&mut self, id: u64) -> ClusterResult<()> {
        self.signal(id, libc::SIGKILL)?;
        let node = self.nodes.get_mut(&id).ok_or(ClusterError::NoNode(id))?;
        if let Some(child) = node.child.take() {
            let pid = child.id();
            reap(child)?;
            self.registry.unregister(pid);
        }
        node.paused = false;
        Ok(())
    }

    /// SIGTERM, waits up to `grace` for the process to exit, then SIGKILL.
    pub fn stop(&mut self, id: u64, grace: Duration) -> ClusterResult<()> {
        if self.node(id)?.paused {
            self.resume(id)?;
        }
        self.signal(id, libc::SIGTERM)?;
        let deadline = Instant::now() + grace;
        let node = self.nodes.get_mut(&id).ok_or(ClusterError::NoNode(id))?;
        while Instant::now() < deadline {
            match node.child.as_mut().map(|c| c.try_wait()) {
                Some(Ok(Some(_))) | None => break,
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        self.kill(id)
    }

    /// SIGSTOP: the process freezes (timers, sockets and all) until [`Cluster::resume`].
    pub fn pause(&mut self, id: u64) -> ClusterResult<()> {
        self.signal(id, libc::SIGSTOP)?;
        self.nodes.get_mut(&id).expect("checked").paused = true;
        Ok(())
    }

    /// SIGCONT.
    pub fn resume(&mut self, id: u64) -> ClusterResult<()> {
        self.signal(id, libc::SIGCONT)?;
        self.nodes.get_mut(&id).expect("checked").paused = false;
        Ok(())
    }

    /// Sends `sig` to the node's own pid.
    pub fn signal(&self, id: u64, sig: libc::c_int) -> ClusterResult<()> {
        let pid = self.node(id)?.pid().ok_or(ClusterError::NotRunning(id))?;
        // SAFETY: kill with a pid this cluster spawned and has not reaped.
        if unsafe { libc::kill(pid as libc::pid_t, sig) } == 0 {
            Ok(())
        } else {
            Err(ClusterError::Io(std::io::Error::last_os_error()))
        }
    }

    /// Removes everything in a stopped node's data directory.
    pub fn wipe(&mut self, id: u64) -> ClusterResult<()> {
        let node = self.node(id)?;
        if node.running() {
            return Err(ClusterError::Running(id));
        }
        if node.data.exists() {
            std::fs::remove_dir_all(&node.data)?;
        }
        std::fs::create_dir_all(&node.data)?;
        Ok(())
    }

    /// Nodes whose process ended on its own since the last call (they are then marked
    /// stopped and can be restarted).
    pub fn reap_exited(&mut self) -> Vec<Exit> {
        let mut out = Vec::new();
        for node in self.nodes.values_mut() {
            let exited = match node.child.as_mut().map(|c| c.try_wait()) {
                Some(Ok(Some(status))) => Some(status.to_string()),
                _ => None,
            };
            if let Some(status) = exited {
                if let Some(c) = node.child.take() {
                    self.registry.unregister(c.id());
                }
                node.paused = false;
                out.push(Exit {
                    node: node.id,
                    status,
                });
            }
        }
        out
    }

    /// Sets the libfaketime spec of a node started with the faketime wrapper ("+30s",
    /// "-2m", "+0 x1.5"); takes effect within about a second.
    pub fn set_clock(&self, id: u64, spec: &str) -> ClusterResult<()> {
        let node = self.node(id)?;
        if node.wrappers.faketime.is_none() {
            return Err(ClusterError::Failed(format!(
                "node {id} was not started with libfaketime"
            )));
        }
        write_atomic(&node.dir.join("faketime.rc"), spec)?;
        Ok(())
    }

    /// Sends one libfiu control command (e.g. `enable name=posix/io/sync/fsync,failinfo=5`)
    /// to a node started with the fiu wrapper.
    pub fn fiu(&self, id: u64, command: &str) -> ClusterResult<()> {
        let node = self.node(id)?;
        if !node.wrappers.fiu {
            return Err(ClusterError::Failed(format!(
                "node {id} was not started with libfiu"
            )));
        }
        let pid = node.pid().ok_or(ClusterError::NotRunning(id))?;
        let prefix = node.dir.join("fiu");
        let out = run(Command::new("timeout")
            .arg("5")
            .arg("fiu-ctrl")
            .arg("-f")
            .arg(&prefix)
            .arg("-c")
            .arg(command)
            .arg(pid.to_string()))?;
        // fiu-ctrl exits 0 and prints this when libfiu refused the command.
        if out.contains("returned error") || out.contains("Error") {
            return Err(ClusterError::Failed(format!(
                "libfiu refused {command:?}: {}",
                out.trim()
            )));
        }
        Ok(())
    }

    /// The failure points [`Cluster::io_errors`] uses.
    pub fn io_error_points(include_writes: bool) -> Vec<&'static str> {
        let mut points = vec!["posix/io/sync/fsync", "posix/io/sync/fdatasync"];
        if include_writes {
            points.extend(["posix/io/rw/pwrite", "posix/io/rw/pwritev"]);
        }
        points
    }

    /// Turns EIO on (with `probability` 0..=1 per call) or off for the disk sync points
    /// (and positioned writes, with `include_writes`) of a node started with libfiu.
    pub fn io_errors(
        &self,
        id: u64,
        on: bool,
        probability: f64,
        include_writes: bool,
    ) -> ClusterResult<()> {
        for point in Cluster::io_error_points(include_writes) {
            if !on {
                // libfiu refuses to disable a point that is not enabled: ignore that.
                let _ = self.fiu(id, &format!("disable name={point}"));
                continue;
            }
            let cmd = if probability >= 1.0 {
                format!("enable name={point},failinfo={}", libc::EIO)
            } else {
                format!(
                    "enable_random name={point},probability={probability},failinfo={}",
                    libc::EIO
                )
            };
            self.fiu(id, &cmd)?;
        }
        Ok(())
    }

    /// Fills a capped data disk with a ballast file until the file system reports no
    /// space; returns the bytes written.
    pub fn fill_disk(&self, id: u64) -> ClusterResult<u64> {
        let node = self.node(id)?;
        let disk = node
            .disk
            .as_ref()
            .ok_or_else(|| ClusterError::Failed(format!("node {id} has no capped disk")))?;
        let cap = match disk.cap {
            DiskCap::Tmpfs { bytes } | DiskCap::Ext4 { bytes } => bytes,
        };
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(disk.ballast())?;
        let mut written = 0u64;
        for chunk in [1usize << 20, 4096, 512] {
            let buf = vec![0xA5u8; chunk];
            let max_rounds = cap / chunk as u64 + 16;
            for _ in 0..max_rounds {
                match f.write(&buf) {
                    Ok(0) => break,
                    Ok(n) => written += n as u64,
                    Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        let _ = f.sync_all();
        Ok(written)
    }

    /// Freezes (or thaws) a node's capped ext4 disk with `fsfreeze`: every write and sync on
    /// it blocks until the thaw, as on a device that stopped answering. Reads from the page
    /// cache go on.
    pub fn freeze_disk(&self, id: u64, frozen: bool) -> ClusterResult<()> {
        let node = self.node(id)?;
        let disk = node
            .disk
            .as_ref()
            .filter(|d| matches!(d.cap, DiskCap::Ext4 { .. }))
            .ok_or_else(|| ClusterError::Failed(format!("node {id} has no capped ext4 disk")))?;
        disk.set_frozen(frozen)
    }

    /// Removes the ballast of [`Cluster::fill_disk`].
    pub fn free_disk(&self, id: u64) -> ClusterResult<()> {
        let node = self.node(id)?;
        if let Some(d) = &node.disk {
            match std::fs::remove_file(d.ballast()) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    // ---- RPCs. Call these from inside the client namespace (see `Net::client_ns`).

    fn client(&self, id: u64, timeout: Duration) -> ClusterResult<ClusterClient<Channel>> {
        Ok(ClusterClient::new(self.channel(id, timeout)?))
    }

    /// With TLS, registers the run's client as a principal that may do all a run does:
    /// admin (membership), issuer of every code and type (the workloads), auditor, and waits
    /// until every running node has applied it (each node decides from its own copy, so a
    /// lagging follower would refuse the first calls). Retries until `timeout`, give or take
    /// one attempt; a no-op in plain text.
    pub async fn grant_client(&self, timeout: Duration) -> ClusterResult<()> {
        if self.pki.is_none() {
            return Ok(());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let put = match self.any_answering().await {
                Ok(id) => self.put_client_principal(id).await,
                Err(e) => Err(e),
            };
            match put {
                Ok(()) => break,
                Err(e) if Instant::now() >= deadline => {
                    return Err(ClusterError::Timeout(format!("grant {CLIENT_NAME}: {e}")));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        for id in self.running() {
            while !self.client_is_issuer_on(id).await {
                if Instant::now() >= deadline {
                    let why = format!("node {id} has not applied the grant of {CLIENT_NAME}");
                    return Err(ClusterError::Timeout(why));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// Whether node `id` takes the run's client for an issuer (false when it does not answer).
    async fn client_is_issuer_on(&self, id: u64) -> bool {
        let Ok(channel) = self.channel(id, RPC_TIMEOUT) else {
            return false;
        };
        let mut client = AccessClient::new(channel);
        let call = client.who_am_i(pb::WhoAmIRequest {});
        match tokio::time::timeout(RPC_TIMEOUT, call).await {
            Ok(Ok(who)) => who.into_inner().roles.iter().any(|r| r == "issuer"),
            _ => false,
        }
    }

    async fn put_client_principal(&self, id: u64) -> ClusterResult<()> {
        // "*": every issuer code, every license type.
        let any = || vec!["*".to_string()];
        let principal = pb::Principal {
            name: CLIENT_NAME.into(),
            roles: ["admin", "issuer", "auditor"].map(String::from).to_vec(),
            issuer_codes: any(),
            type_codes: any(),
            service_items: Vec::new(),
        };
        let mut c = AccessClient::new(self.channel(id, ADMIN_TIMEOUT)?);
        let req = pb::PutPrincipalRequest {
            principal: Some(principal),
        };
        c.put_principal(req).await?;
        Ok(())
    }

    /// One node's status; `None` when it does not answer in time.
    pub async fn status(&self, id: u64) -> Option<pb::NodeStatus> {
        let mut c = self.client(id, RPC_TIMEOUT).ok()?;
        let call = c.status(pb::StatusRequest {});
        tokio::time::timeout(RPC_TIMEOUT, call)
            .await
            .ok()?
            .ok()?
            .into_inner()
            .node
    }

    /// Status of every live node.
    pub async fn statuses(&self) -> BTreeMap<u64, Option<pb::NodeStatus>> {
        let mut out = BTreeMap::new();
        for id in self.live() {
            out.insert(id, self.status(id).await);
        }
        out
    }

    /// The leader every node of `among` names, if they all answer, all name the same one,
    /// and it is one of them.
    pub async fn agreed_leader(&self, among: &[u64]) -> Option<u64> {
        let mut leader = None;
        for id in among {
            let s = self.status(*id).await?;
            if !s.has_leader || leader.is_some_and(|l| l != s.leader_id) {
                return None;
            }
            leader = Some(s.leader_id);
        }
        leader.filter(|l| among.contains(l))
    }

    /// The leader all live nodes agree on, now.
    pub async fn leader(&self) -> Option<u64> {
        self.agreed_leader(&self.live()).await
    }

    /// Waits until the live nodes agree on a leader.
    pub async fn wait_leader(&self, timeout: Duration) -> ClusterResult<u64> {
        let among = self.live();
        self.wait_leader_among(&among, timeout).await
    }

    /// Waits until every node of `among` names the same leader, one of them.
    pub async fn wait_leader_among(&self, among: &[u64], timeout: Duration) -> ClusterResult<u64> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(l) = self.agreed_leader(among).await {
                return Ok(l);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(ClusterError::Timeout(format!(
            "no leader agreed by {among:?} within {timeout:?}"
        )))
    }

    /// A node that answers: the agreed leader if there is one, else any live node.
    async fn any_answering(&self) -> ClusterResult<u64> {
        if let Some(l) = self.leader().await {
            return Ok(l);
        }
        // No agreement (a node is cut off, or not a member yet): the self-declared leader of
        // the highest term, else the first node that answers.
        let statuses = self.statuses().await;
        let answering: Vec<&pb::NodeStatus> = statuses.values().flatten().collect();
        if let Some(s) = answering
            .iter()
            .filter(|s| s.role == "leader")
            .max_by_key(|s| s.term)
        {
            return Ok(s.node_id);
        }
        answering
            .first()
            .map(|s| s.node_id)
            .ok_or_else(|| ClusterError::Failed("no node answers".into()))
    }

    /// The member list as the leader (or any answering node) sees it.
    pub async fn members(&self) -> ClusterResult<pb::MemberListResponse> {
        let id = self.any_answering().await?;
        let mut c = self.client(id, RPC_TIMEOUT)?;
        Ok(c.member_list(pb::MemberListRequest {}).await?.into_inner())
    }

    /// Adds node `id` (a process from [`Cluster::spawn_new`]) as a learner, via the leader.
    pub async fn add_learner(
        &self,
        id: u64,
        blocking: bool,
    ) -> ClusterResult<pb::MemberListResponse> {
        let addr = self.addr(id)?;
        let leader = self.any_answering().await?;
        let mut c = self.client(leader, ADMIN_TIMEOUT)?;
        let req = pb::AddLearnerRequest {
            node_id: id,
            addr,
            blocking,
        };
        Ok(c.add_learner(req).await?.into_inner())
    }

    /// Makes learner `id` a voter.
    pub async fn promote(&self, id: u64) -> ClusterResult<pb::MemberListResponse> {
        let leader = self.any_answering().await?;
        let mut c = self.client(leader, ADMIN_TIMEOUT)?;
        let req = pb::PromoteRequest { node_id: id };
        Ok(c.promote(req).await?.into_inner())
    }

    /// Removes member `id` (its process keeps running until killed).
    pub async fn remove_member(&self, id: u64) -> ClusterResult<pb::MemberListResponse> {
        let leader = self.any_answering().await?;
        let mut c = self.client(leader, ADMIN_TIMEOUT)?;
        let req = pb::RemoveMemberRequest { node_id: id };
        Ok(c.remove_member(req).await?.into_inner())
    }

    /// Asks the leader to hand leadership to voter `to`.
    pub async fn transfer_leader(&self, to: u64) -> ClusterResult<pb::TransferLeaderResponse> {
        let leader = self.any_answering().await?;
        let mut c = self.client(leader, ADMIN_TIMEOUT)?;
        let req = pb::TransferLeaderRequest { node_id: to };
        Ok(c.transfer_leader(req).await?.into_inner())
    }

    /// One node's applied index and state digest; `None` when it does not answer.
    pub async fn digest(&self, id: u64) -> Option<NodeDigest> {
        let mut c = self.client(id, RPC_TIMEOUT).ok()?;
        let call = c.state_digest(pb::StateDigestRequest {});
        let d = tokio::time::timeout(RPC_TIMEOUT, call)
            .await
            .ok()?
            .ok()?
            .into_inner();
        Some(NodeDigest {
            applied_index: d.applied_index,
            digest: d.digest,
            records: d.records,
        })
    }

    /// Digests of every live node.
    pub async fn digests(&self) -> BTreeMap<u64, Option<NodeDigest>> {
        let mut out = BTreeMap::new();
        for id in self.live() {
            out.insert(id, self.digest(id).await);
        }
        out
    }

    /// Polls the live nodes' digests until all answer with the same applied index and
    /// digest, or `timeout` passes; returns the last poll either way.
    pub async fn wait_converged(&self, timeout: Duration) -> Convergence {
        let start = Instant::now();
        let deadline = start + timeout;
        loop {
            let nodes = self.digests().await;
            let answered: Vec<&NodeDigest> = nodes.values().flatten().collect();
            let converged = !nodes.is_empty()
                && answered.len() == nodes.len()
                && answered.windows(2).all(|w| {
                    w[0].applied_index == w[1].applied_index && w[0].digest == w[1].digest
                });
            if converged || Instant::now() >= deadline {
                return Convergence {
                    nodes,
                    converged,
                    waited_ms: start.elapsed().as_millis() as u64,
                };
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // A node blocked on a frozen disk would not die, and reaping it would wait for ever.
        for disk in self.nodes.values().filter_map(|n| n.disk.as_ref()) {
            disk.thaw();
        }
        for node in self.nodes.values_mut() {
            if let Some(child) = node.child.take() {
                let pid = child.id();
                // SAFETY: our own unreaped child; SIGKILL also ends a stopped process.
                unsafe {
                    libc::kill(pid as libc::pid_t, libc::SIGKILL);
                }
                let _ = reap(child);
                self.registry.unregister(pid);
            }
        }
        // Unmount capped disks before removing the run directory.
        for node in self.nodes.values_mut() {
            node.disk.take();
        }
        if self.created_run_dir && !self.opts.keep_run_dir {
            let _ = std::fs::remove_dir_all(&self.opts.run_dir);
        }
    }
}

fn channel(addr: &str, tls: Option<&ClientTls>, timeout: Duration) -> ClusterResult<Channel> {
    Ok(crate::tls::endpoint(addr, tls)
        .map_err(|e| ClusterError::Failed(format!("{addr}: {e}")))?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(timeout)
        .connect_lazy())
}

/// Every address a peer or client may dial a node at, for the node certificate: each slot's
/// advertised and listen address, its client proxy's, and loopback.
fn dialed_ips(net: &Net) -> Vec<std::net::IpAddr> {
    let mut addrs = Vec::new();
    for id in net.slots() {
        if let Ok(slot) = net.node(id) {
            addrs.push(slot.addr.clone());
            addrs.extend(slot.listen.clone());
        }
        addrs.extend(net.client_proxy_addr(id).ok());
    }
    let mut ips: Vec<std::net::IpAddr> = addrs
        .iter()
        .filter_map(|a| a.parse::<std::net::SocketAddr>().ok())
        .map(|a| a.ip())
        .collect();
    ips.push(std::net::Ipv4Addr::LOCALHOST.into());
    ips.push(std::net::Ipv6Addr::LOCALHOST.into());
    ips.sort();
    ips.dedup();
    ips
}

/// Waits (bounded) for a killed child to be reaped.
fn reap(mut child: Child) -> ClusterResult<()> {
    let deadline = Instant::now() + REAP_WAIT;
    while Instant::now() < deadline {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Err(ClusterError::Timeout(format!(
        "pid {} not reaped in {REAP_WAIT:?}",
        child.id()
    )))
}

/// Libraries to preload and their settings.
fn apply_wrappers(cmd: &mut Command, w: &Wrappers, dir: &Path) -> ClusterResult<()> {
    let mut preload = Vec::new();
    if w.faketime.is_some() {
        preload.push(find_lib(&[
            "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
            "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
            "/usr/lib/faketime/libfaketime.so.1",
            "/usr/local/lib/faketime/libfaketime.so.1",
        ])?);
        cmd.env("FAKETIME_TIMESTAMP_FILE", dir.join("faketime.rc"))
            .env("FAKETIME_CACHE_DURATION", "1");
        if !w.fake_monotonic {
            cmd.env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        }
    }
    if w.fiu {
        preload.push(find_lib(&["/usr/lib/fiu/fiu_run_preload.so"])?);
        preload.push(find_lib(&["/usr/lib/fiu/fiu_posix_preload.so"])?);
        cmd.env("FIU_CTRL_FIFO", dir.join("fiu"))
            .env("FIU_ENABLE", "");
    }
    if w.eatmydata {
        preload.push(find_lib(&[
            "/usr/lib/x86_64-linux-gnu/libeatmydata.so",
            "/usr/lib/aarch64-linux-gnu/libeatmydata.so",
            "/usr/lib/libeatmydata.so",
        ])?);
    }
    if !preload.is_empty() {
        let libs: Vec<String> = preload.iter().map(|p| p.display().to_string()).collect();
        cmd.env("LD_PRELOAD", libs.join(" "));
    }
    Ok(())
}

fn find_lib(candidates: &[&str]) -> ClusterResult<PathBuf> {
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            ClusterError::Failed(format!(
                "none of {candidates:?} exists (run chaos/setup.sh)"
            ))
        })
}

fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{text}\n"))?;
    std::fs::rename(&tmp, path)
}

/// Runs a command (bounded by the net layer's command timeout); its stdout.
fn run(cmd: &mut Command) -> ClusterResult<String> {
    crate::net::run_cmd(cmd, None).map_err(|e| ClusterError::Failed(e.to_string()))
}
