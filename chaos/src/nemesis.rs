//! The faults of a chaos run: what to do ([`Nemesis`]), and what was done ([`FaultRecord`]).
//!
//! [`Nemesis::inject`] picks its targets with the run's seeded [`ChaCha8Rng`] (never any
//! other randomness), applies the fault and returns a record of what it did to whom, with
//! start and stop times in nanoseconds since the run's epoch ([`Cluster::now_ns`], one
//! monotonic clock shared with the histories) so a report can draw a timeline.
//! [`Nemesis::heal`] undoes it from the record's [`Undo`]. A fault that cannot be applied
//! in this set-up (no capped disk, no libfiu wrapper, packet loss in the loopback fallback,
//! no leader to pick) is returned as a record with `skipped` set, not as an error.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Context;
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::cluster::{Cluster, DiskCap, Node};
use crate::net::{Net, NetError};

/// Longest wait for a leader before a leader-targeted fault is skipped.
const LEADER_WAIT: Duration = Duration::from_secs(10);
/// Longest wait for a leader while healing membership changes.
const HEAL_LEADER_WAIT: Duration = Duration::from_secs(30);
/// Most transfers one storm makes.
const MAX_TRANSFERS: u32 = 50;

/// One kind of fault.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Nemesis {
    /// SIGKILL a random running node; heal restarts it from its data directory.
    KillRandom,
    /// SIGKILL the leader; heal restarts it.
    KillLeader,
    /// SIGSTOP a random running node; heal sends SIGCONT.
    PauseRandom,
    /// SIGSTOP the leader (past its election timeout); heal sends SIGCONT.
    PauseLeader,
    /// Cut the leader from every other node, both ways.
    IsolateLeader,
    /// Cut a random node from every other node.
    IsolateRandom,
    /// A random minority (⌊n/2⌋ nodes) against the majority.
    MajorityMinority,
    /// Two halves that cannot talk, and one node that talks to both.
    Bridge,
    /// The leader's packets to the followers are dropped; theirs to it arrive.
    OneWay,
    /// Delay every byte between two random nodes, both ways, by `base ± jitter` (proxies).
    LinkDelay { base_ms: u64, jitter_ms: u64 },
    /// Drop `percent`% of the packets between two random nodes, both ways (nft).
    LinkLoss { percent: u8 },
    /// Drop `percent`% of all packets a random node sends or receives (nft).
    NodeLoss { percent: u8 },
    /// `transfers` leader transfers to random voters, `interval_ms` apart.
    TransferStorm { transfers: u32, interval_ms: u64 },
    /// Start a node in a spare slot, add it as a learner, promote it; heal removes it.
    MemberAdd,
    /// Remove a random follower voter and kill it; heal wipes it and adds it back.
    MemberRemove,
    /// Add a fresh node, promote it, remove a random follower voter, kill and wipe it.
    MemberReplace,
    /// Fill the capped data disk of a random node; heal removes the ballast.
    DiskFull,
    /// Freeze (fsfreeze) the capped ext4 data disk of a random node, so its writes and syncs
    /// block as on a device that stopped answering; heal thaws it.
    DiskStall,
    /// EIO on fsync/fdatasync (and positioned writes with `writes`) of a random node
    /// started with libfiu, with `probability` per call; heal turns it off and restarts
    /// the node (after a storage error openraft stops the node's Raft core for good).
    IoErrors { probability: f64, writes: bool },
    /// Set the libfaketime spec of a random node started with libfaketime ("+30s",
    /// "-2m", "+0 x1.5"); heal sets "+0".
    ClockSkew { spec: String },
    /// One of these, picked at random at each injection.
    Mix(Vec<Nemesis>),
}

/// What [`Nemesis::heal`] has to undo.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "undo", content = "nodes", rename_all = "snake_case")]
pub enum Undo {
    Nothing,
    Restart(Vec<u64>),
    Resume(Vec<u64>),
    HealNet,
    FreeDisk(u64),
    Thaw(u64),
    IoErrorsOff(u64),
    ClockReset(u64),
    /// Remove these added members and stop their processes.
    RemoveMembers(Vec<u64>),
    /// Wipe these removed members and add them back as voters.
    Readd(Vec<u64>),
}

/// One fault as it happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultRecord {
    /// The nemesis's name, e.g. `kill_leader` (for a mix: the one picked).
    pub kind: String,
    /// Nodes the fault was applied to.
    pub targets: Vec<u64>,
    /// What was done, in words.
    pub detail: String,
    /// When injection began (ns since the run's epoch).
    pub start_ns: u64,
    /// When injection was complete.
    pub injected_ns: u64,
    /// When healing was complete; `None` while the fault lasts.
    pub stop_ns: Option<u64>,
    /// Why nothing was done, when nothing was.
    pub skipped: Option<String>,
    /// What healing did, or why it failed.
    pub heal_detail: Option<String>,
    pub undo: Undo,
}

impl FaultRecord {
    fn new(kind: &str, start_ns: u64) -> FaultRecord {
        FaultRecord {
            kind: kind.to_string(),
            targets: Vec::new(),
            detail: String::new(),
            start_ns,
            injected_ns: start_ns,
            stop_ns: None,
            skipped: None,
            heal_detail: None,
            undo: Undo::Nothing,
        }
    }

    fn skip(mut self, why: impl Into<String>, now_ns: u64) -> FaultRecord {
        self.skipped = Some(why.into());
        self.injected_ns = now_ns;
        self.stop_ns = Some(now_ns);
        self
    }

    /// Whether the fault is still in effect.
    pub fn active(&self) -> bool {
        self.stop_ns.is_none()
    }
}

fn pick(rng: &mut ChaCha8Rng, from: &[u64]) -> Option<u64> {
    (!from.is_empty()).then(|| from[rng.random_range(0..from.len())])
}

/// A random one of `from` whose node satisfies `pred`.
fn pick_where(
    rng: &mut ChaCha8Rng,
    cluster: &Cluster,
    from: &[u64],
    pred: impl Fn(&Node) -> bool,
) -> Option<u64> {
    let fit: Vec<u64> = from
        .iter()
        .copied()
        .filter(|id| cluster.node(*id).is_ok_and(&pred))
        .collect();
    pick(rng, &fit)
}

fn shuffled(rng: &mut ChaCha8Rng, from: &[u64]) -> Vec<u64> {
    let mut v = from.to_vec();
    v.sort_unstable();
    v.shuffle(rng);
    v
}

impl Nemesis {
    /// The name used in records and reports.
    pub fn name(&self) -> &'static str {
        match self {
            Nemesis::KillRandom => "kill_random",
            Nemesis::KillLeader => "kill_leader",
            Nemesis::PauseRandom => "pause_random",
            Nemesis::PauseLeader => "pause_leader",
            Nemesis::IsolateLeader => "isolate_leader",
            Nemesis::IsolateRandom => "isolate_random",
            Nemesis::MajorityMinority => "majority_minority",
            Nemesis::Bridge => "bridge",
            Nemesis::OneWay => "one_way",
            Nemesis::LinkDelay { .. } => "link_delay",
            Nemesis::LinkLoss { .. } => "link_loss",
            Nemesis::NodeLoss { .. } => "node_loss",
            Nemesis::TransferStorm { .. } => "transfer_storm",
            Nemesis::MemberAdd => "member_add",
            Nemesis::MemberRemove => "member_remove",
            Nemesis::MemberReplace => "member_replace",
            Nemesis::DiskFull => "disk_full",
            Nemesis::DiskStall => "disk_stall",
            Nemesis::IoErrors { .. } => "io_errors",
            Nemesis::ClockSkew { .. } => "clock_skew",
            Nemesis::Mix(_) => "mix",
        }
    }

    /// Every fault with default parameters (a [`Nemesis::Mix`] of these is Jepsen's "all").
    pub fn all() -> Vec<Nemesis> {
        vec![
            Nemesis::KillRandom,
            Nemesis::KillLeader,
            Nemesis::PauseRandom,
            Nemesis::PauseLeader,
            Nemesis::IsolateLeader,
            Nemesis::IsolateRandom,
            Nemesis::MajorityMinority,
            Nemesis::Bridge,
            Nemesis::OneWay,
            Nemesis::LinkDelay {
                base_ms: 75,
                jitter_ms: 50,
            },
            Nemesis::LinkLoss { percent: 30 },
            Nemesis::NodeLoss { percent: 10 },
            Nemesis::TransferStorm {
                transfers: 10,
                interval_ms: 300,
            },
            Nemesis::MemberAdd,
            Nemesis::MemberRemove,
            Nemesis::MemberReplace,
            Nemesis::DiskFull,
            Nemesis::DiskStall,
            Nemesis::IoErrors {
                probability: 1.0,
                writes: false,
            },
            Nemesis::ClockSkew {
                spec: "+90s".into(),
            },
        ]
    }

    /// The concrete nemesis for this injection: a mix picks one of its members (nested
    /// mixes are resolved the same way, at most 8 deep).
    fn resolve(&self, rng: &mut ChaCha8Rng) -> Option<&Nemesis> {
        let mut n = self;
        for _ in 0..8 {
            match n {
                Nemesis::Mix(list) if list.is_empty() => return None,
                Nemesis::Mix(list) => n = &list[rng.random_range(0..list.len())],
                other => return Some(other),
            }
        }
        None
    }

    /// Applies the fault. Call from inside the client namespace (it makes cluster RPCs).
    pub async fn inject(
        &self,
        cluster: &mut Cluster,
        net: &mut Net,
        rng: &mut ChaCha8Rng,
    ) -> anyhow::Result<FaultRecord> {
        let start = cluster.now_ns();
        let Some(n) = self.resolve(rng) else {
            return Ok(FaultRecord::new(self.name(), start).skip("empty mix", start));
        };
        let mut rec = FaultRecord::new(n.name(), start);
        let mixed = matches!(self, Nemesis::Mix(_));
        let result = n.apply(&mut rec, cluster, net, rng).await;
        let now = cluster.now_ns();
        rec.injected_ns = now;
        if mixed {
            rec.detail = format!("mix: {}", rec.detail);
        }
        match result {
            Ok(Applied::Done) => Ok(rec),
            Ok(Applied::Skipped(why)) => Ok(rec.skip(why, now)),
            Err(e) => {
                // Leave nothing half-done behind: undo what the record says was done.
                let _ = Nemesis::undo(&rec, cluster, net).await;
                Err(e.context(format!("inject {}", n.name())))
            }
        }
    }

    async fn apply(
        &self,
        rec: &mut FaultRecord,
        cluster: &mut Cluster,
        net: &mut Net,
        rng: &mut ChaCha8Rng,
    ) -> anyhow::Result<Applied> {
        let running = cluster.running();
        let live = cluster.live();
        match self {
            Nemesis::KillRandom | Nemesis::KillLeader => {
                let target = if *self == Nemesis::KillLeader {
                    leader_of(cluster).await
                } else {
                    pick(rng, &running)
                };
                let Some(t) = target else {
                    return Ok(Applied::Skipped(no_target(self)));
                };
                if cluster.node(t)?.paused() {
                    cluster.resume(t)?;
                }
                cluster.kill(t)?;
                rec.targets = vec![t];
                rec.undo = Undo::Restart(vec![t]);
                rec.detail = format!("SIGKILL node {t}");
            }
            Nemesis::PauseRandom | Nemesis::PauseLeader => {
                let target = if *self == Nemesis::PauseLeader {
                    leader_of(cluster).await
                } else {
                    pick(rng, &live)
                };
                let Some(t) = target else {
                    return Ok(Applied::Skipped(no_target(self)));
                };
                cluster.pause(t)?;
                rec.targets = vec![t];
                rec.undo = Undo::Resume(vec![t]);
                rec.detail = format!("SIGSTOP node {t}");
            }
            Nemesis::IsolateLeader | Nemesis::IsolateRandom => {
                let target = if *self == Nemesis::IsolateLeader {
                    leader_of(cluster).await
                } else {
                    pick(rng, &running)
                };
                let Some(t) = target else {
                    return Ok(Applied::Skipped(no_target(self)));
                };
                rec.undo = Undo::HealNet;
                net.isolate(t)?;
                rec.targets = vec![t];
                rec.detail = format!("node {t} cut from every other node");
            }
            Nemesis::MajorityMinority => {
                if running.len() < 2 {
                    return Ok(Applied::Skipped("fewer than 2 running nodes".into()));
                }
                let order = shuffled(rng, &running);
                let (minority, majority) = order.split_at(order.len() / 2);
                rec.undo = Undo::HealNet;
                net.partition(&[minority.to_vec(), majority.to_vec()])?;
                rec.targets = minority.to_vec();
                rec.detail = format!("partition {minority:?} | {majority:?}");
            }
            Nemesis::Bridge => {
                if running.len() < 3 {
                    return Ok(Applied::Skipped("fewer than 3 running nodes".into()));
                }
                let order = shuffled(rng, &running);
                let bridge = order[0];
                let rest = &order[1..];
                let (a, b) = rest.split_at(rest.len() / 2);
                rec.undo = Undo::HealNet;
                net.partition(&[a.to_vec(), b.to_vec()])?;
                rec.targets = vec![bridge];
                rec.detail = format!("partition {a:?} | {b:?}, node {bridge} sees both");
            }
            Nemesis::OneWay => {
                let Some(from) = leader_of(cluster).await else {
                    return Ok(Applied::Skipped(no_target(self)));
                };
                rec.undo = Undo::HealNet;
                let to: Vec<u64> = running.iter().copied().filter(|n| *n != from).collect();
                for t in &to {
                    net.block(from, *t)?;
                }
                rec.targets = vec![from];
                rec.detail = format!("packets from leader {from} to {to:?} dropped");
            }
            Nemesis::LinkDelay { base_ms, jitter_ms } => {
                let Some((a, b)) = pair(rng, &running) else {
                    return Ok(Applied::Skipped("fewer than 2 running nodes".into()));
                };
                let base = Duration::from_millis(*base_ms);
                let jitter = Duration::from_millis(*jitter_ms);
                rec.undo = Undo::HealNet;
                match net
                    .delay_link(a, b, base, jitter)
                    .and_then(|_| net.delay_link(b, a, base, jitter))
                {
                    Err(NetError::Unsupported(why)) => return Ok(Applied::Skipped(why)),
                    other => other?,
                }
                rec.targets = vec![a, b];
                rec.detail = format!("link {a}<->{b} delayed {base_ms}±{jitter_ms} ms");
            }
            Nemesis::LinkLoss { percent } => {
                let Some((a, b)) = pair(rng, &running) else {
                    return Ok(Applied::Skipped("fewer than 2 running nodes".into()));
                };
                rec.undo = Undo::HealNet;
                match net
                    .loss_link(a, b, *percent)
                    .and_then(|_| net.loss_link(b, a, *percent))
                {
                    Err(NetError::Unsupported(why)) => return Ok(Applied::Skipped(why)),
                    other => other?,
                }
                rec.targets = vec![a, b];
                rec.detail = format!("link {a}<->{b} drops {percent}% of packets");
            }
            Nemesis::NodeLoss { percent } => {
                let Some(t) = pick(rng, &running) else {
                    return Ok(Applied::Skipped("no running node".into()));
                };
                rec.undo = Undo::HealNet;
                match net.loss_node(t, *percent) {
                    Err(NetError::Unsupported(why)) => return Ok(Applied::Skipped(why)),
                    other => other?,
                }
                rec.targets = vec![t];
                rec.detail = format!("node {t} drops {percent}% of packets");
            }
            Nemesis::TransferStorm {
                transfers,
                interval_ms,
            } => {
                let mut done = Vec::new();
                let mut failed = 0u32;
                for _ in 0..(*transfers).min(MAX_TRANSFERS) {
                    let voters = voters(cluster).await;
                    let current = cluster.leader().await;
                    let choices: Vec<u64> = voters
                        .into_iter()
                        .filter(|v| Some(*v) != current && cluster.live().contains(v))
                        .collect();
                    if let Some(to) = pick(rng, &choices) {
                        match cluster.transfer_leader(to).await {
                            Ok(_) => done.push(to),
                            Err(_) => failed += 1,
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(*interval_ms)).await;
                }
                if done.is_empty() && failed == 0 {
                    return Ok(Applied::Skipped("no voter to transfer to".into()));
                }
                rec.detail = format!(
                    "{} leader transfers to {done:?} ({failed} refused or failed)",
                    done.len()
                );
                rec.targets = done;
            }
            Nemesis::MemberAdd => {
                let Some(new) = spare(cluster, rng).await else {
                    return Ok(Applied::Skipped("no spare node slot".into()));
                };
                rec.targets = vec![new];
                rec.undo = Undo::RemoveMembers(vec![new]);
                bring_up(cluster, new).await?;
                rec.detail = format!("node {new} added as learner and promoted");
            }
            Nemesis::MemberRemove => {
                let Some(old) = follower_voter(cluster, rng).await else {
                    return Ok(Applied::Skipped("no follower voter to remove".into()));
                };
                cluster.remove_member(old).await?;
                rec.targets = vec![old];
                rec.undo = Undo::Readd(vec![old]);
                cluster.kill(old)?;
                rec.detail = format!("voter {old} removed and stopped");
            }
            Nemesis::MemberReplace => {
                let Some(old) = follower_voter(cluster, rng).await else {
                    return Ok(Applied::Skipped("no follower voter to replace".into()));
                };
                let Some(new) = spare(cluster, rng).await else {
                    return Ok(Applied::Skipped("no spare node slot".into()));
                };
                rec.targets = vec![new, old];
                rec.undo = Undo::RemoveMembers(vec![new]);
                bring_up(cluster, new).await?;
                cluster.remove_member(old).await?;
                rec.undo = Undo::Nothing;
                cluster.kill(old)?;
                cluster.wipe(old)?;
                rec.detail = format!("voter {old} replaced by node {new} (old data wiped)");
            }
            Nemesis::DiskFull => {
                let Some(t) = pick_where(rng, cluster, &live, |n| n.capped().is_some()) else {
                    return Ok(Applied::Skipped("no live node with a capped disk".into()));
                };
                rec.undo = Undo::FreeDisk(t);
                let bytes = cluster.fill_disk(t)?;
                rec.targets = vec![t];
                rec.detail = format!("node {t}'s disk filled ({bytes} bytes of ballast)");
            }
            Nemesis::DiskStall => {
                let ext4 = |n: &Node| matches!(n.capped(), Some(DiskCap::Ext4 { .. }));
                let Some(t) = pick_where(rng, cluster, &live, ext4) else {
                    return Ok(Applied::Skipped(
                        "no live node with a capped ext4 disk".into(),
                    ));
                };
                rec.undo = Undo::Thaw(t);
                cluster.freeze_disk(t, true)?;
                rec.targets = vec![t];
                rec.detail = format!("node {t}'s disk frozen");
            }
            Nemesis::IoErrors {
                probability,
                writes,
            } => {
                let Some(t) = pick_where(rng, cluster, &live, |n| n.wrappers.fiu) else {
                    return Ok(Applied::Skipped("no live node started with libfiu".into()));
                };
                rec.undo = Undo::IoErrorsOff(t);
                cluster.io_errors(t, true, *probability, *writes)?;
                rec.targets = vec![t];
                rec.detail = format!(
                    "node {t}: EIO with probability {probability} on {:?}",
                    Cluster::io_error_points(*writes)
                );
            }
            Nemesis::ClockSkew { spec } => {
                let skewable = |n: &Node| n.wrappers.faketime.is_some();
                let Some(t) = pick_where(rng, cluster, &running, skewable) else {
                    return Ok(Applied::Skipped(
                        "no running node started with libfaketime".into(),
                    ));
                };
                rec.undo = Undo::ClockReset(t);
                cluster.set_clock(t, spec)?;
                rec.targets = vec![t];
                rec.detail = format!("node {t}'s clock set to {spec:?}");
            }
            Nemesis::Mix(_) => return Ok(Applied::Skipped("nested mix".into())),
        }
        Ok(Applied::Done)
    }

    /// Undoes a fault (see [`Undo`]) and stamps its stop time. Healing a record twice, or
    /// a skipped one, does nothing.
    pub async fn heal(
        rec: &mut FaultRecord,
        cluster: &mut Cluster,
        net: &mut Net,
    ) -> anyhow::Result<()> {
        if rec.stop_ns.is_some() {
            return Ok(());
        }
        let result = Nemesis::undo(rec, cluster, net).await;
        rec.stop_ns = Some(cluster.now_ns());
        rec.heal_detail = Some(match &result {
            Ok(()) => format!("{:?} done", rec.undo),
            Err(e) => format!("{:?} failed: {e:#}", rec.undo),
        });
        result
    }

    async fn undo(rec: &FaultRecord, cluster: &mut Cluster, net: &mut Net) -> anyhow::Result<()> {
        match &rec.undo {
            Undo::Nothing => {}
            Undo::Restart(ids) => {
                for id in ids {
                    if !cluster.node(*id)?.running() {
                        cluster.restart(*id)?;
                    }
                }
            }
            Undo::Resume(ids) => {
                for id in ids {
                    if cluster.node(*id)?.paused() {
                        cluster.resume(*id)?;
                    }
                }
            }
            Undo::HealNet => net.heal()?,
            Undo::FreeDisk(id) => cluster.free_disk(*id)?,
            Undo::Thaw(id) => cluster.freeze_disk(*id, false)?,
            Undo::IoErrorsOff(id) => {
                // A node that saw fsync fail has its Raft core stopped for good (openraft
                // treats a storage error as fatal) while the process lives on, and must not
                // trust its page cache anyway: turn the errors off and restart it.
                if cluster.node(*id)?.running() {
                    cluster.io_errors(*id, false, 0.0, true)?;
                    cluster.kill(*id)?;
                }
                cluster.restart(*id)?;
            }
            Undo::ClockReset(id) => cluster.set_clock(*id, "+0")?,
            Undo::RemoveMembers(ids) => {
                for id in ids {
                    let members = cluster.members().await?;
                    if members.members.iter().any(|m| m.node_id == *id) {
                        cluster
                            .remove_member(*id)
                            .await
                            .with_context(|| format!("remove member {id}"))?;
                    }
                    if cluster.node(*id).is_ok_and(|n| n.running()) {
                        cluster.kill(*id)?;
                    }
                    if cluster.node(*id).is_ok() {
                        cluster.wipe(*id)?;
                    }
                }
            }
            Undo::Readd(ids) => {
                for id in ids {
                    if cluster.node(*id)?.running() {
                        cluster.kill(*id)?;
                    }
                    cluster.wipe(*id)?;
                    bring_up(cluster, *id).await?;
                }
            }
        }
        Ok(())
    }
}

enum Applied {
    Done,
    Skipped(String),
}

fn no_target(n: &Nemesis) -> String {
    match n {
        Nemesis::KillLeader | Nemesis::PauseLeader | Nemesis::IsolateLeader | Nemesis::OneWay => {
            "no leader".into()
        }
        _ => "no running node".into(),
    }
}

/// The agreed leader, waiting a little for one; else the leader most live nodes name.
async fn leader_of(cluster: &Cluster) -> Option<u64> {
    if let Ok(l) = cluster.wait_leader(LEADER_WAIT).await {
        return Some(l);
    }
    let mut votes = std::collections::BTreeMap::new();
    for s in cluster.statuses().await.into_values().flatten() {
        if s.has_leader {
            *votes.entry(s.leader_id).or_insert(0u32) += 1;
        }
    }
    let live = cluster.live();
    votes
        .into_iter()
        .filter(|(l, _)| live.contains(l))
        .max_by_key(|(_, n)| *n)
        .map(|(l, _)| l)
}

fn pair(rng: &mut ChaCha8Rng, from: &[u64]) -> Option<(u64, u64)> {
    let order = shuffled(rng, from);
    (order.len() >= 2).then(|| (order[0], order[1]))
}

/// Voter ids per the member list; empty when nobody answers.
async fn voters(cluster: &Cluster) -> Vec<u64> {
    cluster
        .members()
        .await
        .map(|m| {
            m.members
                .iter()
                .filter(|m| m.voter)
                .map(|m| m.node_id)
                .collect()
        })
        .unwrap_or_default()
}

/// A random voter that is not the leader and is running.
async fn follower_voter(cluster: &Cluster, rng: &mut ChaCha8Rng) -> Option<u64> {
    let leader = cluster.wait_leader(LEADER_WAIT).await.ok()?;
    let running = cluster.running();
    let choices: Vec<u64> = voters(cluster)
        .await
        .into_iter()
        .filter(|v| *v != leader && running.contains(v))
        .collect();
    // Keep at least three voters after a removal when there are three or more.
    if choices.len() < 2 {
        return None;
    }
    pick(rng, &choices)
}

/// A node id that can join: a net slot never used, or a stopped node that is no member.
async fn spare(cluster: &Cluster, rng: &mut ChaCha8Rng) -> Option<u64> {
    let members: BTreeSet<u64> = match cluster.members().await {
        Ok(m) => m.members.iter().map(|m| m.node_id).collect(),
        Err(_) => return None,
    };
    let mut choices = cluster.free_slots();
    choices.extend(
        cluster
            .nodes()
            .filter(|n| !n.running() && !members.contains(&n.id))
            .map(|n| n.id),
    );
    pick(rng, &choices)
}

/// Starts node `id` with empty data (a fresh slot or a wiped stopped node), adds it as a
/// learner (waiting for catch-up) and promotes it.
async fn bring_up(cluster: &mut Cluster, id: u64) -> anyhow::Result<()> {
    match cluster.node(id) {
        Ok(n) if n.running() => {}
        Ok(_) => {
            cluster.wipe(id)?;
            cluster.restart(id)?;
        }
        Err(_) => cluster.spawn_new(id)?,
    }
    // The new process knows no leader until it is added: ask the others.
    let others: Vec<u64> = cluster.live().into_iter().filter(|n| *n != id).collect();
    cluster
        .wait_leader_among(&others, HEAL_LEADER_WAIT)
        .await
        .context("leader before adding a member")?;
    let mut last = None;
    for _ in 0..20 {
        match cluster.add_learner(id, true).await {
            Ok(_) => {
                last = None;
                break;
            }
            Err(e) => {
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    if let Some(e) = last {
        return Err(e).with_context(|| format!("add learner {id}"));
    }
    cluster
        .promote(id)
        .await
        .with_context(|| format!("promote {id}"))?;
    Ok(())
}
