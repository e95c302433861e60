//! One chaos run: a scenario and a seed, from an empty run directory to a report.
//!
//! 1. Derive every option from the seed ([`schedule`]) and print them.
//! 2. Make the [`Net`] (namespaces, or the loopback fallback) and start the [`Cluster`];
//!    the history's [`Recorder`] starts at the cluster's epoch, so fault records, leader
//!    samples and ops share one monotonic clock.
//! 3. Inside the client namespace: wait for a leader, start the leader [`monitor`], the
//!    watchers, the register setup, then the register, set and import workloads.
//! 4. Phases: *before* (no fault), *during* (each planned fault injected and healed on the
//!    schedule), *after* (everything healed, quiet). Node processes that exit on their own
//!    are recorded and restarted while no fault is in effect (at most
//!    [`MAX_RESTARTS_PER_NODE`] times each).
//! 5. Stop the workloads, wait for a leader and for the live nodes to converge (both within
//!    the recovery deadline), let the watchers catch up, read every key through every live
//!    member, and run the Check RPC on each.
//! 6. Run the checkers ([`analysis`]), write `history.jsonl`, `final.json`, `watch.json`,
//!    `report.json` and `report.md` ([`crate::report`]). The node logs and data stay in
//!    `<run dir>/cluster` when the verdict is not PASS (or with `keep`).
//!
//! Every wait is bounded: RPCs by their deadlines, phases by the scenario, injections and
//! heals by [`FAULT_STEP_TIMEOUT`], the workload join by [`JOIN_TIMEOUT`]. After
//! [`interrupt`] (the binary calls it on SIGINT/SIGTERM) the phase loop ends the run with an
//! error within half a second, and the nodes are killed and the namespaces removed as usual.

pub mod analysis;
pub mod monitor;
pub mod schedule;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use licstore_proto::v1 as pb;
use licstore_proto::v1::cluster_client::ClusterClient;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::check::Budget;
use crate::cluster::{licstored_path, Cluster, ClusterOptions, Convergence};
use crate::history::Op;
use crate::nemesis::{FaultRecord, Nemesis};
use crate::net::{Net, NetOptions};
use crate::recorder::Recorder;
use crate::report::{ExitEvent, RunReport};
use crate::scenario::{Expect, Scenario, ServerSpec, WorkloadMix};
use crate::workload::import::{run_import, ImportConfig};
use crate::workload::register::{RegisterConfig, RegisterWorkload};
use crate::workload::set::{run_set, SetConfig};
use crate::workload::watch::{WatchConfig, WatchStream, Watchers};
use crate::workload::{final_read, FinalRead, FinalReadConfig, NodeAddr, Stop};
use analysis::NodeCheck;
use monitor::{LeaderSample, Monitor};
use schedule::Derived;

/// Longest one injection or one heal may take (membership changes wait for catch-up).
pub const FAULT_STEP_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest wait for the workloads to end after their stop.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Most restarts of a node that exits on its own.
pub const MAX_RESTARTS_PER_NODE: u32 = 20;
/// How long the watchers may take to catch up with the last write after the workload.
const WATCH_CATCH_UP: Duration = Duration::from_secs(10);
/// Deadline of one Check RPC (it walks the whole replica).
const CHECK_TIMEOUT: Duration = Duration::from_secs(60);
/// Problems listed per node.
const MAX_PROBLEMS: usize = 10;
/// Tokio worker threads of the run (inside the client namespace).
const WORKERS: usize = 4;
/// Client ids and holder numbers of the workloads, disjoint ranges.
const SET_FIRST_CLIENT: u64 = 100;
const SET_HOLDER_BASE: u64 = 100_000;
const IMPORT_FIRST_CLIENT: u64 = 10_000;
const IMPORT_HOLDER_BASE: u64 = 1_000_000;

/// How the faulty build is made, for error messages.
pub const FAULTY_BUILD_HINT: &str = "build it with `cargo build --release -p licstore-server \
     --features fault-injection`, copy $CARGO_TARGET_DIR/release/licstored to \
     $CARGO_TARGET_DIR/release/licstored-faulty, then rebuild licstored without the feature \
     (or set LICSTORED_FAULTY to its path)";

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Asks the running run (and a suite) to stop; async-signal-safe.
pub fn interrupt() {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Whether [`interrupt`] was called.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// What to run and where.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub scenario: Scenario,
    pub seed: u64,
    /// The run directory is `<out_dir>/<scenario>-<seed>`.
    pub out_dir: PathBuf,
    /// Keep node logs and data even after a PASS.
    pub keep: bool,
    /// Use network namespaces when possible (else the loopback fallback).
    pub namespaces: bool,
    /// Overrides the scenario's server binary.
    pub binary: Option<PathBuf>,
    /// The command that replays this run.
    pub replay: String,
}

impl RunOptions {
    /// Defaults: namespaces on, nothing kept, the scenario's binary.
    pub fn new(scenario: Scenario, seed: u64, out_dir: impl Into<PathBuf>) -> RunOptions {
        let replay = replay_command(&scenario.name, seed, &[]);
        RunOptions {
            scenario,
            seed,
            out_dir: out_dir.into(),
            keep: false,
            namespaces: true,
            binary: None,
            replay,
        }
    }
}

/// `licchaos run --scenario <scenario> --seed <seed> <extra...>`.
pub fn replay_command(scenario: &str, seed: u64, extra: &[String]) -> String {
    let mut cmd = format!("licchaos run --scenario {scenario} --seed {seed}");
    for e in extra {
        cmd.push(' ');
        cmd.push_str(e);
    }
    cmd
}

/// The server binary a scenario names.
pub fn server_binary(spec: &ServerSpec) -> anyhow::Result<PathBuf> {
    match spec.binary.as_str() {
        "normal" => licstored_path().context(
            "licstored not found: build it with `cargo build --release -p licstore-server` \
             (same CARGO_TARGET_DIR) or set LICSTORED",
        ),
        "faulty" => faulty_path().with_context(|| {
            format!("licstored-faulty (the fault-injection build) not found: {FAULTY_BUILD_HINT}")
        }),
        path => {
            let p = PathBuf::from(path);
            anyhow::ensure!(p.is_file(), "server binary {path} not found");
            Ok(p)
        }
    }
}

/// `$LICSTORED_FAULTY`, else `licstored-faulty` next to the normal binary.
pub fn faulty_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("LICSTORED_FAULTY").map(PathBuf::from) {
        return p.is_file().then_some(p);
    }
    let normal = licstored_path()?;
    Some(normal.with_file_name("licstored-faulty")).filter(|p| p.is_file())
}

/// Runs one scenario with one seed; see the module doc. An error means the run could not be
/// carried out (no binary, no leader at start, workload setup failed); its directory is kept.
pub fn run(opts: &RunOptions) -> anyhow::Result<RunReport> {
    let s = &opts.scenario;
    s.validate()?;
    let derived = schedule::derive(s, opts.seed);
    let binary = match &opts.binary {
        Some(b) => b.clone(),
        None => server_binary(&s.server)?,
    };
    for line in schedule::describe(s, &derived, &binary.display().to_string(), &opts.replay) {
        eprintln!("{line}");
    }
    let mut setup = Setup::start(opts, &derived, &binary)?;
    let started = SystemTime::now();
    let wall = Instant::now();
    let raw = setup.drive(s, &derived);
    let history = setup.rec.history();
    setup
        .rec
        .write_jsonl(&setup.run_dir.join("history.jsonl"))
        .context("history.jsonl")?;
    let raw = raw.map_err(|e| {
        let why = format!("{e:#}");
        let dir = setup.run_dir.display();
        e.context(format!(
            "run aborted; history and node logs kept in {dir} ({why})"
        ))
    })?;
    save_artifacts(&setup.run_dir, &raw)?;
    let ctx = ReportContext {
        opts,
        derived,
        binary: binary.display().to_string(),
        net_mode: setup.net_mode.clone(),
        started,
        wall_ms: wall.elapsed().as_millis() as u64,
        run_dir: setup.run_dir.clone(),
    };
    let mut report = build_report(ctx, &history, raw);
    let keep = opts.keep || report.verdict != crate::check::Verdict::Pass;
    report.cluster_dir = setup.finish(keep);
    let (_, md) = crate::report::write_run(&report)?;
    eprintln!(
        "licchaos: {} seed {}: {} (expected {}); report {}",
        s.name,
        opts.seed,
        report.verdict.label(),
        s.expect.label(),
        md.display()
    );
    Ok(report)
}

/// The run's directory, processes and network. Fields drop in order: the nodes are killed
/// before their namespaces go.
struct Setup {
    cluster: Cluster,
    net: Net,
    rec: Recorder,
    run_dir: PathBuf,
    cluster_dir: PathBuf,
    net_mode: String,
}

impl Setup {
    /// Makes the run directory and the net, starts the nodes, and the recorder on the
    /// cluster's clock.
    fn start(opts: &RunOptions, derived: &Derived, binary: &Path) -> anyhow::Result<Setup> {
        let s = &opts.scenario;
        let run_dir = prepare_run_dir(&opts.out_dir, &s.name, opts.seed)?;
        let net = Net::new(NetOptions {
            slots: s.slots(),
            namespaces: opts.namespaces,
            peer_proxies: true,
            seed: derived.net_seed,
        })
        .context("network")?;
        let net_mode = match &net.fallback_reason {
            None => format!("network namespaces ({})", net.prefix()),
            Some(why) => format!("loopback fallback ({why})"),
        };
        eprintln!("  net: {net_mode}\n  run dir: {}", run_dir.display());
        let cluster_dir = run_dir.join("cluster");
        std::fs::create_dir_all(&cluster_dir)?;
        let cluster = Cluster::start(cluster_options(s, binary, &cluster_dir), &net)
            .context("start the cluster")?;
        let rec = Recorder::starting_at(cluster.epoch());
        anyhow::ensure!(
            rec.start() == cluster.epoch(),
            "recorder and cluster clocks differ"
        );
        Ok(Setup {
            cluster,
            net,
            rec,
            run_dir,
            cluster_dir,
            net_mode,
        })
    }

    /// Runs the phases inside the client namespace.
    fn drive(&mut self, s: &Scenario, derived: &Derived) -> anyhow::Result<Raw> {
        let client = self.net.client_ns();
        let (cluster, net, rec) = (&mut self.cluster, &mut self.net, &self.rec);
        client.run(|| drive_blocking(cluster, net, s, derived, rec))
    }

    /// Kills the nodes, removes the net, and keeps or removes the node directories; the
    /// kept directory.
    fn finish(self, keep: bool) -> Option<PathBuf> {
        let dir = self.cluster_dir.clone();
        drop(self);
        if keep {
            return Some(dir);
        }
        let _ = std::fs::remove_dir_all(&dir);
        None
    }
}

/// `final.json`, `watch.json` and `leader.json`.
fn save_artifacts(run_dir: &Path, raw: &Raw) -> anyhow::Result<()> {
    write_json(&run_dir.join("final.json"), &raw.final_read)?;
    write_json(&run_dir.join("watch.json"), &raw.streams)?;
    write_json(&run_dir.join("leader.json"), &raw.samples)
}

fn cluster_options(s: &Scenario, binary: &Path, dir: &Path) -> ClusterOptions {
    let mut c = ClusterOptions::new(binary, s.cluster.voters, dir);
    c.heartbeat_ms = s.cluster.heartbeat_ms;
    c.election_min_ms = s.cluster.election_min_ms;
    c.election_max_ms = s.cluster.election_max_ms;
    c.extra_args.clone_from(&s.cluster.extra_args);
    c.log_filter.clone_from(&s.cluster.log_filter);
    c.env.clone_from(&s.server.env);
    c.wrappers = s.wrappers();
    c.disks = s.disks();
    c.epoch = Instant::now();
    c.tls = s.cluster.tls;
    c
}

/// `<out>/<name>-<seed>`, emptied; refuses a directory with something mounted inside.
fn prepare_run_dir(out: &Path, name: &str, seed: u64) -> anyhow::Result<PathBuf> {
    let dir = out.join(format!("{name}-{seed}"));
    if dir.exists() {
        let abs = dir.canonicalize()?;
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let busy = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .any(|m| Path::new(m).starts_with(&abs));
        anyhow::ensure!(
            !busy,
            "{} has a file system mounted inside (an earlier run still going?)",
            abs.display()
        );
        std::fs::remove_dir_all(&dir).with_context(|| dir.display().to_string())?;
    }
    std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
    Ok(dir)
}

fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string(value)?;
    std::fs::write(path, text).with_context(|| path.display().to_string())
}

/// What the run collected besides the history.
struct Raw {
    phases: Vec<(String, u64, u64)>,
    faults: Vec<FaultRecord>,
    nemesis_errors: Vec<String>,
    exits: Vec<ExitEvent>,
    samples: Vec<LeaderSample>,
    leader_after: Result<u64, String>,
    convergence: Convergence,
    streams: Vec<WatchStream>,
    final_read: FinalRead,
    /// Keys asked for in the final read.
    final_keys: usize,
    final_nodes: Vec<u64>,
    node_checks: Vec<NodeCheck>,
}

/// Runs [`Drive::drive`] on a multi-thread runtime built on the calling thread, which is
/// inside the client namespace (its workers inherit it).
fn drive_blocking(
    cluster: &mut Cluster,
    net: &mut Net,
    s: &Scenario,
    derived: &Derived,
    rec: &Recorder,
) -> anyhow::Result<Raw> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()?;
    let drive = Drive {
        nemesis_rng: ChaCha8Rng::seed_from_u64(derived.nemesis_seed),
        cluster,
        net,
        s,
        derived,
        rec: rec.clone(),
        faults: Vec::new(),
        nemesis_errors: Vec::new(),
        exits: Vec::new(),
        restarts: BTreeMap::new(),
        down: BTreeSet::new(),
    };
    let out = rt.block_on(drive.drive());
    rt.shutdown_timeout(Duration::from_secs(2));
    out
}

/// The state of a run while it goes on.
struct Drive<'a> {
    cluster: &'a mut Cluster,
    net: &'a mut Net,
    s: &'a Scenario,
    derived: &'a Derived,
    rec: Recorder,
    nemesis_rng: ChaCha8Rng,
    faults: Vec<FaultRecord>,
    nemesis_errors: Vec<String>,
    exits: Vec<ExitEvent>,
    restarts: BTreeMap<u64, u32>,
    /// Nodes that exited on their own and wait for a restart.
    down: BTreeSet<u64>,
}

/// The running workload tasks.
struct Workloads {
    handle: crate::workload::StopHandle,
    tasks: tokio::task::JoinSet<Result<(), String>>,
}

impl Drive<'_> {
    fn say(&self, msg: impl std::fmt::Display) {
        eprintln!("[{:>7.2}s] {msg}", self.rec.now_ns() as f64 / 1e9);
    }

    fn recovery_deadline(&self) -> Duration {
        Duration::from_millis(self.s.check.recovery_deadline_ms)
    }

    /// Longest the run can last, for the stops of the background tasks.
    fn max_run(&self) -> Duration {
        let p = &self.s.phases;
        Duration::from_millis(p.total_ms() + 600_000)
    }

    async fn drive(mut self) -> anyhow::Result<Raw> {
        let leader = self
            .cluster
            .wait_leader(self.recovery_deadline())
            .await
            .context("no leader at start")?;
        self.say(format!("leader {leader}"));
        self.cluster
            .grant_client(self.recovery_deadline())
            .await
            .context("register the run's client")?;
        let nodes = self.workload_nodes()?;
        let monitor = Monitor::start(
            &self.slot_addrs()?,
            self.s.cluster.voters,
            monitor::silence_limit_ms(self.s.cluster.heartbeat_ms),
            &self.rec,
            self.max_run(),
        )?;
        let (watch_handle, watch_stop) = Stop::with_handle(Instant::now() + self.max_run());
        let watchers = match self.s.workload.watchers {
            true => Some(Watchers::start(
                &nodes,
                &WatchConfig::default(),
                &self.rec,
                &watch_stop,
            )?),
            false => None,
        };
        let work = self.start_workloads(&nodes).await?;
        let before_start_ns = self.rec.now_ns();
        self.quiet_until(Instant::now() + ms(self.s.phases.before_ms))
            .await;
        let during_start_ns = self.rec.now_ns();
        self.fault_phase().await;
        let after_start_ns = self.rec.now_ns();
        self.say("fault phase over; quiet");
        self.quiet_until(Instant::now() + ms(self.s.phases.after_ms))
            .await;
        self.stop_workloads(work).await;
        anyhow::ensure!(!interrupted(), "interrupted");
        let end_ns = self.rec.now_ns();
        self.restart_down("after the workload");
        let phases = vec![
            ("before".to_string(), before_start_ns, during_start_ns),
            ("during".to_string(), during_start_ns, after_start_ns),
            ("after".to_string(), after_start_ns, end_ns),
        ];
        self.finish(phases, monitor, watchers, watch_handle).await
    }

    /// Everything after the workload: recovery, watchers, final read, checks.
    async fn finish(
        self,
        phases: Vec<(String, u64, u64)>,
        monitor: Monitor,
        watchers: Option<Watchers>,
        watch_handle: crate::workload::StopHandle,
    ) -> anyhow::Result<Raw> {
        let deadline = self.recovery_deadline();
        let leader_after = self.wait_majority_leader(deadline).await;
        let convergence = self.cluster.wait_converged(deadline).await;
        self.say(format!(
            "leader after heal {leader_after:?}; converged {} in {} ms",
            convergence.converged, convergence.waited_ms
        ));
        let streams = finish_watchers(watchers, watch_handle, &self.rec.history()).await;
        let samples = monitor.finish().await;
        let final_nodes = self.final_nodes().await;
        let keys = history_keys(&self.rec.history());
        let cfg = FinalReadConfig {
            timeout_ms: self.s.check.final_read_timeout_ms,
            ..FinalReadConfig::default()
        };
        let addrs = self.addrs(&final_nodes)?;
        let final_read = final_read(&addrs, &keys, &cfg).await?;
        self.say(format!(
            "final read: {} keys through nodes {final_nodes:?}, {} unread",
            keys.len(),
            final_read.unread.len()
        ));
        let mut node_checks = Vec::new();
        for a in &addrs {
            node_checks.push(check_node(a).await);
        }
        Ok(Raw {
            final_keys: keys.len(),
            phases,
            faults: self.faults,
            nemesis_errors: self.nemesis_errors,
            exits: self.exits,
            samples,
            leader_after,
            convergence,
            streams,
            final_read,
            final_nodes,
            node_checks,
        })
    }

    /// Waits for a leader a majority of the initial voters name and that calls itself
    /// leader (the monitor's rule); a node that does not follow is the convergence check's
    /// business.
    async fn wait_majority_leader(&self, timeout: Duration) -> Result<u64, String> {
        let majority = (self.s.cluster.voters / 2 + 1) as usize;
        let silence_limit_ms = monitor::silence_limit_ms(self.s.cluster.heartbeat_ms);
        let deadline = Instant::now() + timeout;
        loop {
            let views: Vec<Option<monitor::NodeView>> = self
                .cluster
                .statuses()
                .await
                .into_values()
                .map(|s| s.map(|s| monitor::view_of(&s, silence_limit_ms)))
                .collect();
            if let Some(l) = monitor::agreed_leader(&views, majority) {
                return Ok(l);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no leader named by {majority} nodes within {timeout:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The initial voters, which the clients and watchers use.
    fn workload_nodes(&self) -> anyhow::Result<Vec<NodeAddr>> {
        self.addrs(&(1..=self.s.cluster.voters).collect::<Vec<_>>())
    }

    fn addrs(&self, ids: &[u64]) -> anyhow::Result<Vec<NodeAddr>> {
        Ok(self.cluster.node_addrs(ids)?)
    }

    /// Every net slot, spare ones included, for the monitor.
    fn slot_addrs(&self) -> anyhow::Result<Vec<NodeAddr>> {
        self.net
            .slots()
            .into_iter()
            .map(|id| {
                Ok(NodeAddr {
                    id,
                    addr: self.net.node(id)?.addr.clone(),
                    tls: self.cluster.client_tls(),
                })
            })
            .collect()
    }

    /// Register setup, then the register, set and import workloads as tasks.
    async fn start_workloads(&self, nodes: &[NodeAddr]) -> anyhow::Result<Workloads> {
        let w = &self.s.workload;
        let cfg = RegisterConfig {
            keys: w.register_keys,
            clients: w.register_clients,
            seed: self.derived.register_seed,
            read_fraction: w.read_fraction,
            placement: w.placement,
            request_timeout_ms: w.request_timeout_ms,
            error_pause_ms: w.error_pause_ms,
            setup_timeout_ms: self.s.check.recovery_deadline_ms,
            ..RegisterConfig::default()
        };
        let register = RegisterWorkload::setup(cfg, nodes, &self.rec)
            .await
            .context("register setup")?;
        self.say(format!(
            "register setup done: {} keys",
            register.keys().len()
        ));
        let (handle, stop) = Stop::with_handle(Instant::now() + self.max_run());
        let mut tasks = tokio::task::JoinSet::new();
        let (rec, until) = (self.rec.clone(), stop.clone());
        tasks.spawn(async move {
            register.run(&rec, &until).await;
            Ok(())
        });
        if w.set_clients > 0 && w.set_batch > 0 {
            let args = (w.clone(), self.derived.set_seed, nodes.to_vec());
            let (rec, until) = (self.rec.clone(), stop.clone());
            tasks.spawn(async move { set_loop(args, rec, until).await.map_err(|e| e.to_string()) });
        }
        if w.import_records > 0 {
            let args = (w.clone(), self.derived.import_seed, nodes.to_vec());
            let (rec, until) = (self.rec.clone(), stop.clone());
            tasks.spawn(async move {
                import_loop(args, rec, until)
                    .await
                    .map_err(|e| e.to_string())
            });
        }
        Ok(Workloads { handle, tasks })
    }

    async fn stop_workloads(&self, mut work: Workloads) {
        work.handle.stop();
        let joined = tokio::time::timeout(JOIN_TIMEOUT, async {
            while let Some(done) = work.tasks.join_next().await {
                match done {
                    Ok(Err(e)) => self.say(format!("workload error: {e}")),
                    Err(e) => self.say(format!("workload task ended badly: {e}")),
                    Ok(Ok(())) => {}
                }
            }
        })
        .await;
        if joined.is_err() {
            self.say("workloads did not end in time; their open ops stay unknown");
            work.tasks.abort_all();
        }
    }

    /// Injects and heals every planned fault, then waits for the end of the phase.
    async fn fault_phase(&mut self) {
        let start = Instant::now();
        let end = start + ms(self.s.phases.during_ms);
        let Some(nemesis) = self.s.nemesis() else {
            self.quiet_until(end).await;
            return;
        };
        for slot in self.derived.schedule.clone() {
            self.quiet_until(start + ms(slot.inject_at_ms)).await;
            if Instant::now() >= end || interrupted() {
                break;
            }
            self.inject(&nemesis).await;
            self.quiet_until(start + ms(slot.heal_at_ms)).await;
            self.heal_last().await;
        }
        self.quiet_until(end).await;
    }

    async fn inject(&mut self, nemesis: &Nemesis) {
        let step = nemesis.inject(self.cluster, self.net, &mut self.nemesis_rng);
        match tokio::time::timeout(FAULT_STEP_TIMEOUT, step).await {
            Ok(Ok(rec)) => {
                let what = rec
                    .skipped
                    .as_ref()
                    .map_or(rec.detail.clone(), |why| format!("skipped: {why}"));
                self.say(format!("inject {}: {what}", rec.kind));
                self.faults.push(rec);
            }
            Ok(Err(e)) => {
                self.say(format!("inject failed: {e:#}"));
                self.nemesis_errors.push(format!("inject: {e:#}"));
            }
            Err(_) => {
                let why = format!("inject timed out after {FAULT_STEP_TIMEOUT:?}");
                self.say(&why);
                self.nemesis_errors.push(why);
                self.heal_everything().await;
            }
        }
    }

    /// Heals the last fault if it is still in effect.
    async fn heal_last(&mut self) {
        self.reap();
        let Some(rec) = self.faults.last_mut().filter(|r| r.active()) else {
            return;
        };
        let step = Nemesis::heal(rec, self.cluster, self.net);
        let timed_out = tokio::time::timeout(FAULT_STEP_TIMEOUT, step)
            .await
            .is_err();
        if timed_out {
            rec.stop_ns = Some(self.cluster.now_ns());
            rec.heal_detail = Some(format!(
                "heal failed: timed out after {FAULT_STEP_TIMEOUT:?}"
            ));
        }
        let detail = rec.heal_detail.clone().unwrap_or_default();
        let kind = rec.kind.clone();
        if timed_out {
            self.heal_everything().await;
        }
        self.say(format!("heal {kind}: {detail}"));
        self.restart_down("after a heal");
    }

    /// Best effort after a step that did not finish: the net healed, paused nodes resumed.
    async fn heal_everything(&mut self) {
        if let Err(e) = self.net.heal() {
            self.nemesis_errors.push(format!("net heal: {e}"));
        }
        let paused: Vec<u64> = self
            .cluster
            .nodes()
            .filter(|n| n.paused())
            .map(|n| n.id)
            .collect();
        for id in paused {
            let _ = self.cluster.resume(id);
        }
    }

    /// Waits until `until`, reaping nodes that exit on their own every half second and
    /// restarting them while no fault is in effect.
    async fn quiet_until(&mut self, until: Instant) {
        loop {
            if interrupted() {
                return;
            }
            self.reap();
            let fault_active = self.faults.last().is_some_and(FaultRecord::active);
            if !fault_active {
                self.restart_down("while no fault was in effect");
            }
            let now = Instant::now();
            if now >= until {
                return;
            }
            tokio::time::sleep((until - now).min(Duration::from_millis(500))).await;
        }
    }

    fn reap(&mut self) {
        for exit in self.cluster.reap_exited() {
            let at_ns = self.cluster.now_ns();
            self.say(format!(
                "node {} exited on its own: {}",
                exit.node, exit.status
            ));
            self.down.insert(exit.node);
            self.exits.push(ExitEvent {
                node: exit.node,
                status: exit.status,
                at_ns,
                restarted: false,
            });
        }
    }

    /// Restarts nodes that exited on their own, within their restart budget.
    fn restart_down(&mut self, when: &str) {
        self.reap();
        for id in std::mem::take(&mut self.down) {
            let n = self.restarts.entry(id).or_insert(0);
            if *n >= MAX_RESTARTS_PER_NODE {
                continue;
            }
            *n += 1;
            let running = self.cluster.node(id).is_ok_and(|n| n.running());
            if running {
                // A heal (a restart undo) started it already.
                self.mark_restarted(id);
                continue;
            }
            match self.cluster.restart(id) {
                Ok(()) => {
                    self.say(format!("restarted node {id} {when}"));
                    self.mark_restarted(id);
                }
                Err(e) => self.say(format!("restart of node {id} failed: {e}")),
            }
        }
    }

    fn mark_restarted(&mut self, id: u64) {
        if let Some(e) = self.exits.iter_mut().rev().find(|e| e.node == id) {
            e.restarted = true;
        }
    }

    /// Live nodes that are members (all live nodes when the member list is unavailable).
    async fn final_nodes(&self) -> Vec<u64> {
        let live = self.cluster.live();
        match self.cluster.members().await {
            Ok(m) => {
                let members: BTreeSet<u64> = m.members.iter().map(|m| m.node_id).collect();
                live.into_iter().filter(|id| members.contains(id)).collect()
            }
            Err(_) => live,
        }
    }
}

/// Rounds of the set workload until the stop or `set_max`; see [`WorkloadMix`].
async fn set_loop(
    (w, seed, nodes): (WorkloadMix, u64, Vec<NodeAddr>),
    rec: Recorder,
    stop: Stop,
) -> anyhow::Result<()> {
    let mut issued = 0usize;
    let mut round = 0u64;
    while !stop.stopped() && issued < w.set_max {
        let count = w.set_batch.min(w.set_max - issued);
        let cfg = SetConfig {
            count,
            clients: w.set_clients,
            first_client: SET_FIRST_CLIENT,
            holder_base: SET_HOLDER_BASE + issued as u64,
            seed: seed.wrapping_add(round),
            placement: w.placement,
            request_timeout_ms: w.request_timeout_ms,
            error_pause_ms: w.error_pause_ms,
        };
        run_set(&cfg, &nodes, &rec, &stop).await?;
        issued += count;
        round += 1;
        stop.sleep(ms(w.set_pause_ms)).await;
    }
    Ok(())
}

/// One import stream every `import_every_ms` until the stop or `import_max_streams`.
async fn import_loop(
    (w, seed, nodes): (WorkloadMix, u64, Vec<NodeAddr>),
    rec: Recorder,
    stop: Stop,
) -> anyhow::Result<()> {
    let records = w.import_records;
    for stream in 0..w.import_max_streams {
        if stop.stopped() {
            break;
        }
        let first = (stream * records) as u64;
        let cfg = ImportConfig {
            streams: 1,
            records_per_stream: records,
            clients: 1,
            first_client: IMPORT_FIRST_CLIENT + first,
            holder_base: IMPORT_HOLDER_BASE + first,
            seed: seed.wrapping_add(stream as u64),
            placement: w.placement,
            stream_timeout_ms: w.request_timeout_ms.max(5_000),
        };
        run_import(&cfg, &nodes, &rec, &stop).await?;
        stop.sleep(ms(w.import_every_ms)).await;
    }
    Ok(())
}

/// Lets the watchers catch up with the last write, then stops them.
async fn finish_watchers(
    watchers: Option<Watchers>,
    handle: crate::workload::StopHandle,
    history: &[Op],
) -> Vec<WatchStream> {
    let Some(w) = watchers else {
        handle.stop();
        return Vec::new();
    };
    let top = history.iter().filter_map(|o| o.revision).max().unwrap_or(0);
    w.wait_progress(top, WATCH_CATCH_UP).await;
    handle.stop();
    w.finish().await
}

/// Distinct keys of the history, in order.
fn history_keys(history: &[Op]) -> Vec<String> {
    let keys: BTreeSet<&str> = history.iter().map(|o| o.key.as_str()).collect();
    keys.into_iter().map(str::to_string).collect()
}

/// One node's Check RPC.
async fn check_node(node: &NodeAddr) -> NodeCheck {
    let mut out = NodeCheck {
        node: node.id,
        ..NodeCheck::default()
    };
    match call_check(node).await {
        Ok(r) => {
            out.applied_index = r.applied_index;
            out.records_checked = r.records_checked;
            out.index_entries_checked = r.index_entries_checked;
            out.events_checked = r.events_checked;
            out.problem_count = r.problem_count;
            out.problems = r
                .problems
                .iter()
                .take(MAX_PROBLEMS)
                .map(|p| format!("{} {}: {}", p.table, p.key, p.detail))
                .collect();
        }
        Err(e) => out.error = Some(format!("{e:#}")),
    }
    out
}

async fn call_check(node: &NodeAddr) -> anyhow::Result<pb::CheckResponse> {
    let channel = crate::tls::endpoint(&node.addr, node.tls.as_ref())?
        .connect_timeout(Duration::from_millis(1000))
        .timeout(CHECK_TIMEOUT)
        .connect_lazy();
    let mut client = ClusterClient::new(channel);
    let resp = tokio::time::timeout(CHECK_TIMEOUT, client.check(pb::CheckRequest {}))
        .await
        .context("timed out")??;
    Ok(resp.into_inner())
}

/// What [`build_report`] needs besides the run's data.
struct ReportContext<'a> {
    opts: &'a RunOptions,
    derived: Derived,
    binary: String,
    net_mode: String,
    started: SystemTime,
    wall_ms: u64,
    run_dir: PathBuf,
}

/// The checkers, the figures and the verdict, from what the run recorded.
fn build_report(ctx: ReportContext, history: &[Op], raw: Raw) -> RunReport {
    let s = &ctx.opts.scenario;
    let budget = Budget {
        max_states_per_key: s.check.linear_max_states_per_key,
        time_limit: ms(s.check.linear_time_limit_ms),
    };
    let finals = analysis::node_states(&raw.final_read);
    let streams = analysis::watch_streams(&raw.streams);
    let watch = s.workload.watchers.then_some(streams.as_slice());
    let checks = analysis::run_checkers(history, &finals, watch, &budget);
    let final_summary =
        analysis::final_read_summary(&raw.final_read, &raw.final_nodes, raw.final_keys);
    let facts = analysis::RunFacts {
        final_read: &final_summary,
        convergence: &raw.convergence,
        recovery_deadline_ms: s.check.recovery_deadline_ms,
        leader_after: &raw.leader_after,
        node_checks: &raw.node_checks,
        faults: &raw.faults,
        nemesis_errors: &raw.nemesis_errors,
        has_nemesis: !s.nemesis.is_empty(),
    };
    let (failures, unknowns) = analysis::run_findings(&facts);
    let verdict = analysis::combine(checks.verdict.clone(), failures, unknowns);
    let end_ns = raw.phases.last().map_or(0, |p| p.2);
    let (windows, after_heal) = analysis::fault_and_after_windows(&raw.faults, end_ns);
    let gap_ms =
        |w: &[(String, u64, u64)]| monitor::availability(&raw.samples, w).no_leader_by_phase_ms;
    let fault_no_leader_ms = gap_ms(&windows)
        .into_iter()
        .zip(gap_ms(&after_heal))
        .map(|((_, d), (_, a))| (d, a))
        .collect();
    let as_expected = matches!(
        (s.expect, &verdict),
        (Expect::Pass, crate::check::Verdict::Pass)
            | (Expect::Fail, crate::check::Verdict::Fail { .. })
    );
    RunReport {
        scenario: s.clone(),
        seed: ctx.opts.seed,
        replay: ctx.opts.replay.clone(),
        expect: s.expect,
        as_expected,
        pass_means: crate::report::PASS_MEANS.to_string(),
        commit: commit(),
        binary: ctx.binary,
        net_mode: ctx.net_mode,
        started_unix_s: unix_s(ctx.started),
        wall_ms: ctx.wall_ms,
        phases: analysis::phase_figures(history, &raw.phases),
        ops: analysis::op_counts(history),
        fault_windows: analysis::phase_figures(history, &windows),
        fault_no_leader_ms,
        lost_writes: analysis::lost_write_context(history, &checks.lost, &raw.faults),
        availability: monitor::availability(&raw.samples, &raw.phases),
        recovery: analysis::recovery(history, &raw.faults),
        final_read: analysis::final_read_summary(&raw.final_read, &raw.final_nodes, raw.final_keys),
        derived: ctx.derived,
        verdict,
        faults: raw.faults,
        nemesis_errors: raw.nemesis_errors,
        exits: raw.exits,
        leader_after: raw.leader_after,
        convergence: raw.convergence,
        node_checks: raw.node_checks,
        checks,
        run_dir: ctx.run_dir,
        cluster_dir: None,
        client_nodes: (1..=s.cluster.voters).collect(),
    }
}

/// `git describe --always --dirty` of the source tree licchaos was built from, when it is
/// still there.
fn commit() -> Option<String> {
    let tree = env!("CARGO_MANIFEST_DIR");
    let out = crate::net::run_cmd(
        std::process::Command::new("git").args(["-C", tree, "describe", "--always", "--dirty"]),
        None,
    )
    .ok()?;
    Some(out.trim().to_string()).filter(|s| !s.is_empty())
}

fn unix_s(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}
