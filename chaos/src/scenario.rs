//! Scenarios: what one chaos run does, read from TOML (`chaos/scenarios/*.toml`, also compiled
//! into the binary and found by name).
//!
//! A scenario names the cluster (3 or 5 voters, spare slots for membership faults), the
//! faults (one [`Nemesis`] or a list, which becomes a mix picked from at each injection), when
//! faults happen ([`FaultTiming`]), how long each phase lasts ([`Phases`]: before any fault,
//! during the faults, quiet after the last heal), the client workload ([`WorkloadMix`]), the
//! per-node wrappers and capped disks a nemesis needs ([`NodeSetup`]), the server binary and
//! its environment ([`ServerSpec`]), the recovery deadline and the checker's budget
//! ([`CheckSpec`]), and whether the run is expected to pass or fail ([`Expect`]: the negative
//! control `negative-drop` must fail).
//!
//! Every field but `name` has a default, so a file states only what differs. Unknown fields
//! are refused, so a typo is an error instead of a silently ignored setting.
//!
//! Durations are milliseconds (`_ms`). [`Scenario::with_total_duration`] rescales the phases
//! (and, for short runs, the fault timing) to a total length, for `--duration-s` and
//! `--quick`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Deserializer, Serialize};

use crate::cluster::{DiskCap, Wrappers};
use crate::nemesis::Nemesis;
use crate::workload::Placement;

/// The scenario files compiled in, as (file name, text).
pub const BUILT_IN: &[(&str, &str)] = &[
    ("control.toml", include_str!("../scenarios/control.toml")),
    (
        "kill-random.toml",
        include_str!("../scenarios/kill-random.toml"),
    ),
    (
        "kill-leader.toml",
        include_str!("../scenarios/kill-leader.toml"),
    ),
    (
        "pause-leader.toml",
        include_str!("../scenarios/pause-leader.toml"),
    ),
    (
        "isolate-leader.toml",
        include_str!("../scenarios/isolate-leader.toml"),
    ),
    (
        "majority-minority.toml",
        include_str!("../scenarios/majority-minority.toml"),
    ),
    ("bridge.toml", include_str!("../scenarios/bridge.toml")),
    ("one-way.toml", include_str!("../scenarios/one-way.toml")),
    (
        "link-delay-loss.toml",
        include_str!("../scenarios/link-delay-loss.toml"),
    ),
    (
        "transfer-storm.toml",
        include_str!("../scenarios/transfer-storm.toml"),
    ),
    (
        "membership.toml",
        include_str!("../scenarios/membership.toml"),
    ),
    (
        "disk-full.toml",
        include_str!("../scenarios/disk-full.toml"),
    ),
    (
        "disk-stall.toml",
        include_str!("../scenarios/disk-stall.toml"),
    ),
    (
        "io-errors.toml",
        include_str!("../scenarios/io-errors.toml"),
    ),
    (
        "clock-skew.toml",
        include_str!("../scenarios/clock-skew.toml"),
    ),
    ("mix.toml", include_str!("../scenarios/mix.toml")),
    (
        "negative-drop.toml",
        include_str!("../scenarios/negative-drop.toml"),
    ),
];

/// Shortest fault phase [`Scenario::with_total_duration`] leaves.
pub const MIN_DURING_MS: u64 = 2_000;
/// Shortest time a rescaled fault lasts: longer than a failover with the default timing
/// (about 2.1 s: an election timeout of 0.6-1.2 s after openraft's leader lease), so a
/// killed, paused or isolated leader is replaced while the fault lasts.
pub const MIN_HEAL_AFTER_MS: u64 = 2_500;

/// What the run's verdict should be.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    /// No violation may be observed.
    #[default]
    Pass,
    /// A negative control: the checkers must find a violation.
    Fail,
}

impl Expect {
    /// `PASS` or `FAIL`, as verdict labels are printed.
    pub fn label(self) -> &'static str {
        match self {
            Expect::Pass => "PASS",
            Expect::Fail => "FAIL",
        }
    }
}

/// One chaos run's set-up; see the module doc.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub expect: Expect,
    #[serde(default)]
    pub cluster: ClusterSpec,
    /// The faults: empty for none, one, or several (a mix: one is picked per injection).
    #[serde(default, deserialize_with = "one_or_many")]
    pub nemesis: Vec<Nemesis>,
    #[serde(default)]
    pub faults: FaultTiming,
    #[serde(default)]
    pub phases: Phases,
    #[serde(default)]
    pub workload: WorkloadMix,
    /// Wrappers and capped disks per node.
    #[serde(default)]
    pub node_setup: Vec<NodeSetup>,
    #[serde(default)]
    pub server: ServerSpec,
    #[serde(default)]
    pub check: CheckSpec,
}

/// The cluster's shape and Raft timing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSpec {
    /// Voters at start (3 or 5).
    pub voters: u64,
    /// Net slots beyond the voters, for nodes added by membership faults.
    pub spare_slots: u64,
    pub heartbeat_ms: u64,
    pub election_min_ms: u64,
    pub election_max_ms: u64,
    /// `RUST_LOG` of the nodes.
    pub log_filter: String,
    /// More flags for every node.
    pub extra_args: Vec<String>,
    /// Mutual TLS with access control between nodes and clients, as in production; `false`
    /// runs the nodes with `--insecure`.
    pub tls: bool,
}

impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec {
            voters: 3,
            spare_slots: 0,
            heartbeat_ms: 100,
            election_min_ms: 600,
            election_max_ms: 1200,
            log_filter: "warn".into(),
            extra_args: Vec::new(),
            tls: true,
        }
    }
}

/// When faults are injected and healed, relative to the start of the fault phase. The
/// runner derives the actual times from the run's seed (see `runner::schedule`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultTiming {
    /// First injection after the fault phase starts.
    pub first_after_ms: u64,
    /// Time between injections (start to start).
    pub interval_ms: u64,
    /// Each interval is `interval_ms ± interval_jitter_ms` (uniform).
    pub interval_jitter_ms: u64,
    /// A fault is healed between these two times after its injection (uniform).
    pub heal_after_min_ms: u64,
    pub heal_after_max_ms: u64,
    /// Least time between a heal and the next injection.
    pub min_gap_ms: u64,
}

impl Default for FaultTiming {
    fn default() -> Self {
        FaultTiming {
            first_after_ms: 1_000,
            interval_ms: 8_000,
            interval_jitter_ms: 2_000,
            heal_after_min_ms: 3_000,
            heal_after_max_ms: 6_000,
            min_gap_ms: 1_000,
        }
    }
}

/// Phase lengths: before (no fault), during (faults on the schedule), after (all healed,
/// quiet).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Phases {
    pub before_ms: u64,
    pub during_ms: u64,
    pub after_ms: u64,
}

impl Default for Phases {
    fn default() -> Self {
        Phases {
            before_ms: 10_000,
            during_ms: 40_000,
            after_ms: 10_000,
        }
    }
}

impl Phases {
    /// All three together.
    pub fn total_ms(&self) -> u64 {
        self.before_ms + self.during_ms + self.after_ms
    }
}

/// The client workloads run together for the whole run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkloadMix {
    /// Register (compare-and-set through Amend, linearizable reads).
    pub register_clients: usize,
    pub register_keys: usize,
    pub read_fraction: f64,
    /// Set: rounds of `set_batch` new licenses over `set_clients` clients, `set_pause_ms`
    /// apart, until the run ends; 0 clients turns it off.
    pub set_clients: usize,
    pub set_batch: usize,
    pub set_pause_ms: u64,
    /// Most set licenses in one run.
    pub set_max: usize,
    /// Import: one stream of `import_records` every `import_every_ms`, at most
    /// `import_max_streams`; 0 records turns it off.
    pub import_records: usize,
    pub import_every_ms: u64,
    pub import_max_streams: usize,
    /// One watch stream per node.
    pub watchers: bool,
    pub placement: Placement,
    pub request_timeout_ms: u64,
    pub error_pause_ms: u64,
}

impl Default for WorkloadMix {
    fn default() -> Self {
        WorkloadMix {
            register_clients: 4,
            register_keys: 12,
            read_fraction: 0.5,
            set_clients: 2,
            set_batch: 10,
            set_pause_ms: 200,
            set_max: 2_000,
            import_records: 20,
            import_every_ms: 2_000,
            import_max_streams: 100,
            watchers: true,
            placement: Placement::Any,
            request_timeout_ms: 1_000,
            error_pause_ms: 50,
        }
    }
}

/// Wrappers and a capped disk for some nodes (slot ids, spare slots included).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSetup {
    pub nodes: Vec<u64>,
    /// libfaketime with this initial spec (e.g. "+0").
    #[serde(default)]
    pub faketime: Option<String>,
    #[serde(default)]
    pub fake_monotonic: bool,
    #[serde(default)]
    pub fiu: bool,
    #[serde(default)]
    pub eatmydata: bool,
    #[serde(default)]
    pub disk: Option<DiskCap>,
}

/// Which `licstored` runs, and with what environment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSpec {
    /// `normal` (`licstored`), `faulty` (`licstored-faulty`, the fault-injection build) or a
    /// path.
    pub binary: String,
    pub env: BTreeMap<String, String>,
}

impl Default for ServerSpec {
    fn default() -> Self {
        ServerSpec {
            binary: "normal".into(),
            env: BTreeMap::new(),
        }
    }
}

/// Deadlines and budgets after the workload ends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckSpec {
    /// After the workload stops: time for a leader and for every live node to converge.
    pub recovery_deadline_ms: u64,
    /// Deadline of the final read through every node.
    pub final_read_timeout_ms: u64,
    /// Wall time of the linearizability search over every key.
    pub linear_time_limit_ms: u64,
    pub linear_max_states_per_key: u64,
}

impl Default for CheckSpec {
    fn default() -> Self {
        CheckSpec {
            recovery_deadline_ms: 30_000,
            final_read_timeout_ms: 30_000,
            linear_time_limit_ms: 120_000,
            linear_max_states_per_key: 2_000_000,
        }
    }
}

/// A single nemesis table or a list of them.
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Nemesis>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(Nemesis),
        Many(Vec<Nemesis>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(n) => vec![n],
        OneOrMany::Many(v) => v,
    })
}

impl Scenario {
    /// Parses and validates a scenario from TOML text.
    pub fn from_toml(text: &str) -> anyhow::Result<Scenario> {
        let s: Scenario = toml::from_str(text)?;
        s.validate()?;
        Ok(s)
    }

    /// Reads a scenario file.
    pub fn from_file(path: &Path) -> anyhow::Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read scenario {}", path.display()))?;
        Scenario::from_toml(&text).with_context(|| format!("scenario {}", path.display()))
    }

    /// Every compiled-in scenario, in suite order.
    pub fn built_in() -> anyhow::Result<Vec<Scenario>> {
        BUILT_IN
            .iter()
            .map(|(file, text)| Scenario::from_toml(text).with_context(|| file.to_string()))
            .collect()
    }

    /// A compiled-in scenario by name, or a scenario file when `name_or_path` names an
    /// existing file (or ends in `.toml`).
    pub fn find(name_or_path: &str) -> anyhow::Result<Scenario> {
        let path = PathBuf::from(name_or_path);
        if path.is_file() || name_or_path.ends_with(".toml") {
            return Scenario::from_file(&path);
        }
        let all = Scenario::built_in()?;
        let names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
        let names = names.join(", ");
        all.iter()
            .find(|s| s.name == name_or_path)
            .cloned()
            .with_context(|| format!("no scenario {name_or_path:?} (built in: {names})"))
    }

    /// Refuses settings the runner cannot carry out.
    pub fn validate(&self) -> anyhow::Result<()> {
        let c = &self.cluster;
        anyhow::ensure!(!self.name.trim().is_empty(), "the scenario needs a name");
        anyhow::ensure!(
            (1..=7).contains(&c.voters),
            "voters must be 1..=7, not {}",
            c.voters
        );
        anyhow::ensure!(
            c.voters + c.spare_slots <= crate::net::MAX_SLOTS,
            "too many slots"
        );
        anyhow::ensure!(
            c.election_min_ms < c.election_max_ms && c.heartbeat_ms < c.election_min_ms,
            "need heartbeat < election min < election max"
        );
        let f = &self.faults;
        anyhow::ensure!(
            f.heal_after_min_ms <= f.heal_after_max_ms,
            "heal_after_min_ms > heal_after_max_ms"
        );
        anyhow::ensure!(f.interval_ms > 0, "interval_ms must be positive");
        anyhow::ensure!(
            f.interval_jitter_ms < f.interval_ms,
            "interval_jitter_ms must be below interval_ms"
        );
        anyhow::ensure!(
            !self.nemesis.iter().any(|n| matches!(n, Nemesis::Mix(_))),
            "list the faults of a mix directly (nemesis = [...]), not as a nested mix"
        );
        let w = &self.workload;
        anyhow::ensure!(
            w.register_clients > 0 && w.register_keys > 0,
            "the register workload needs clients and keys"
        );
        anyhow::ensure!(
            (0.0..=1.0).contains(&w.read_fraction),
            "read_fraction must be in 0..=1"
        );
        anyhow::ensure!(
            w.import_records <= crate::workload::import::MAX_RECORDS_PER_STREAM,
            "import_records above the server's batch"
        );
        let slots = c.voters + c.spare_slots;
        for setup in &self.node_setup {
            if let Some(bad) = setup.nodes.iter().find(|n| **n == 0 || **n > slots) {
                anyhow::bail!("node_setup names node {bad}, not a slot 1..={slots}");
            }
        }
        Ok(())
    }

    /// The nemesis the runner injects: `None` without faults, the one given, or a mix.
    pub fn nemesis(&self) -> Option<Nemesis> {
        match self.nemesis.as_slice() {
            [] => None,
            [one] => Some(one.clone()),
            many => Some(Nemesis::Mix(many.to_vec())),
        }
    }

    /// Net slots: the voters and the spares.
    pub fn slots(&self) -> u64 {
        self.cluster.voters + self.cluster.spare_slots
    }

    /// Wrappers per node, from [`Scenario::node_setup`] (later entries add to earlier ones).
    pub fn wrappers(&self) -> BTreeMap<u64, Wrappers> {
        let mut out: BTreeMap<u64, Wrappers> = BTreeMap::new();
        for setup in &self.node_setup {
            for id in &setup.nodes {
                let w = out.entry(*id).or_default();
                if setup.faketime.is_some() {
                    w.faketime.clone_from(&setup.faketime);
                }
                w.fake_monotonic |= setup.fake_monotonic;
                w.fiu |= setup.fiu;
                w.eatmydata |= setup.eatmydata;
            }
        }
        out.retain(|_, w| *w != Wrappers::default());
        out
    }

    /// Capped disks per node.
    pub fn disks(&self) -> BTreeMap<u64, DiskCap> {
        let mut out = BTreeMap::new();
        for setup in &self.node_setup {
            if let Some(cap) = setup.disk {
                for id in &setup.nodes {
                    out.insert(*id, cap);
                }
            }
        }
        out
    }

    /// The same scenario lasting `total_ms` in all (see the module doc): before 15 % (at
    /// least 1 s), after 20 % (at least 1.5 s), during the rest (at least 2 s). When the
    /// fault phase gets shorter, the fault timing shrinks with it, keeping every fault at
    /// least [`MIN_HEAL_AFTER_MS`] long.
    pub fn with_total_duration(&self, total_ms: u64) -> Scenario {
        let mut s = self.clone();
        let before_ms = (total_ms * 15 / 100).max(1_000);
        let after_ms = (total_ms / 5).max(1_500);
        let during_ms = total_ms
            .saturating_sub(before_ms + after_ms)
            .max(MIN_DURING_MS);
        s.phases = Phases {
            before_ms,
            during_ms,
            after_ms,
        };
        if during_ms < self.phases.during_ms {
            s.faults = scale_timing(&self.faults, during_ms, self.phases.during_ms);
        }
        s
    }
}

/// `timing` shrunk by `new / old`, with floors that keep faults meaningful.
fn scale_timing(timing: &FaultTiming, new_ms: u64, old_ms: u64) -> FaultTiming {
    let scale = |v: u64| v * new_ms / old_ms.max(1);
    let heal_min = scale(timing.heal_after_min_ms).max(MIN_HEAL_AFTER_MS);
    let heal_max = scale(timing.heal_after_max_ms).max(heal_min);
    let gap = scale(timing.min_gap_ms).max(300);
    let interval = scale(timing.interval_ms).max(heal_max + gap);
    FaultTiming {
        first_after_ms: scale(timing.first_after_ms).min(500),
        interval_ms: interval,
        interval_jitter_ms: scale(timing.interval_jitter_ms).min(interval / 4),
        heal_after_min_ms: heal_min,
        heal_after_max_ms: heal_max,
        min_gap_ms: gap,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_scenario_loads_and_names_are_unique() {
        let all = Scenario::built_in().expect("built-in scenarios");
        assert_eq!(all.len(), BUILT_IN.len());
        let mut names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all.len(), "duplicate names: {names:?}");
        let neg = Scenario::find("negative-drop").expect("negative-drop");
        assert_eq!(neg.expect, Expect::Fail);
        assert_eq!(neg.server.binary, "faulty");
        assert!(neg.nemesis().is_none());
    }

    #[test]
    fn one_nemesis_or_a_list() {
        let one = Scenario::from_toml("name = \"a\"\nnemesis = { kind = \"kill_leader\" }\n")
            .expect("one");
        assert_eq!(one.nemesis(), Some(Nemesis::KillLeader));
        let many = Scenario::from_toml(
            "name = \"b\"\n[[nemesis]]\nkind = \"kill_leader\"\n\
             [[nemesis]]\nkind = \"link_delay\"\nbase_ms = 75\njitter_ms = 50\n",
        )
        .expect("many");
        let Some(Nemesis::Mix(list)) = many.nemesis() else {
            panic!("a list is a mix");
        };
        assert_eq!(list.len(), 2);
        assert!(Scenario::from_toml("name = \"c\"\ntypo = 1\n").is_err());
        assert!(Scenario::from_toml("name = \"d\"\n[cluster]\nvoters = 0\n").is_err());
    }

    #[test]
    fn a_short_run_keeps_faults_longer_than_an_election() {
        let s = Scenario::find("pause-leader").expect("pause-leader");
        let short = s.with_total_duration(10_000);
        assert_eq!(short.phases.total_ms(), 10_000);
        assert!(short.faults.heal_after_min_ms >= MIN_HEAL_AFTER_MS);
        assert!(short.faults.interval_ms >= short.faults.heal_after_max_ms);
        let long = s.with_total_duration(600_000);
        assert_eq!(long.faults, s.faults, "a longer run keeps the timing");
    }

    #[test]
    fn wrappers_and_disks_merge_per_node() {
        let s = Scenario::from_toml(
            "name = \"w\"\n[cluster]\nspare_slots = 1\n\
             [[node_setup]]\nnodes = [1, 2]\nfiu = true\n\
             [[node_setup]]\nnodes = [2, 4]\nfaketime = \"+0\"\n\
             disk = { tmpfs = { bytes = 1000 } }\n",
        )
        .expect("parse");
        let w = s.wrappers();
        assert!(w[&1].fiu && w[&1].faketime.is_none());
        assert!(w[&2].fiu && w[&2].faketime.as_deref() == Some("+0"));
        assert_eq!(s.disks().len(), 2);
        assert!(
            Scenario::from_toml("name = \"x\"\n[[node_setup]]\nnodes = [9]\nfiu = true\n").is_err()
        );
    }
}
