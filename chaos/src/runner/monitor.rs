//! The leader monitor: polls `Status` on every node slot about every 100 ms for the whole run
//! and keeps one [`LeaderSample`] per poll; [`availability`] turns the samples into the time
//! without a leader and the number of elections.
//!
//! Definitions:
//! - A sample *has a leader* when at least a majority of the initial voters (⌊n/2⌋ + 1) name
//!   the same node as leader and that node answers too, calling itself leader
//!   ([`agreed_leader`]); followers go on naming a killed or frozen leader until they elect
//!   another, so their word alone would hide the gap. A node names a leader only while it has
//!   heard from it within the silence limit ([`silence_limit_ms`]; on the leader: a quorum's
//!   acknowledgement), so an isolated or frozen leader stops counting about then, not when
//!   the others have elected a successor (with Pre-Vote, followers name their old leader until
//!   a new one wins). Nodes that do not answer within the poll timeout name nobody. During
//!   membership changes the majority stays that of the initial voter count.
//! - *Time without a leader*: the sum, over consecutive samples, of the time from a sample
//!   without a leader to the next sample. The longest run of such samples is the *longest
//!   window*.
//! - *Elections*: how many times the highest term any node reports went up between samples
//!   (a term change is an election, won or not).

use std::collections::BTreeMap;
use std::time::Duration;

use licstore_proto::v1 as pb;
use licstore_proto::v1::cluster_client::ClusterClient;
use serde::Serialize;
use tonic::transport::Channel;

use crate::recorder::Recorder;
use crate::workload::NodeAddr;

/// Time between polls.
pub const POLL_INTERVAL_MS: u64 = 100;
/// Deadline of one Status call.
const STATUS_TIMEOUT_MS: u64 = 300;

/// How long a node may go without hearing from its leader and still name it: five heartbeat
/// intervals, at least 500 ms (a loaded machine delays heartbeats by a few hundred ms).
pub fn silence_limit_ms(heartbeat_ms: u64) -> u64 {
    heartbeat_ms.saturating_mul(5).max(500)
}

/// One poll of every node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LeaderSample {
    /// When the poll started, ns on the run's clock.
    pub at_ns: u64,
    /// The leader a majority names, if any.
    pub leader: Option<u64>,
    /// Highest term any answering node reports (0 when none answered).
    pub max_term: u64,
    pub answered: u32,
    /// Each answering node's term.
    pub terms: BTreeMap<u64, u64>,
}

/// What one node said in a poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeView {
    pub node: u64,
    /// The leader it names, if any.
    pub leader: Option<u64>,
    pub term: u64,
    /// It calls itself leader.
    pub leading: bool,
}

/// The leader named by at least `majority` of `views` that answered and calls itself leader
/// (`None` in `views`: no answer).
pub fn agreed_leader(views: &[Option<NodeView>], majority: usize) -> Option<u64> {
    let mut counts = BTreeMap::new();
    for leader in views.iter().flatten().filter_map(|v| v.leader) {
        *counts.entry(leader).or_insert(0usize) += 1;
    }
    let leading = |l: u64| views.iter().flatten().any(|v| v.node == l && v.leading);
    counts
        .into_iter()
        .find(|(l, n)| *n >= majority.max(1) && leading(*l))
        .map(|(l, _)| l)
}

/// Figures from the samples.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Availability {
    pub samples: u64,
    pub no_leader_ms: f64,
    pub longest_no_leader_ms: f64,
    /// Time without a leader inside each `(name, start_ns, end_ns)` window given.
    pub no_leader_by_phase_ms: Vec<(String, f64)>,
    pub elections: u64,
    pub first_term: u64,
    pub last_term: u64,
    /// The samples where the agreed leader or the highest term changed (and the first).
    pub changes: Vec<LeaderSample>,
}

/// See the module doc; `phases` as for [`crate::workload::phase_stats`].
pub fn availability(samples: &[LeaderSample], phases: &[(String, u64, u64)]) -> Availability {
    let mut out = Availability {
        samples: samples.len() as u64,
        ..Availability::default()
    };
    let mut by_phase = vec![0u64; phases.len()];
    let (mut run_ns, mut longest_ns, mut total_ns) = (0u64, 0u64, 0u64);
    for w in samples.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        let span_ns = b.at_ns.saturating_sub(a.at_ns);
        if a.leader.is_none() {
            total_ns += span_ns;
            run_ns += span_ns;
            longest_ns = longest_ns.max(run_ns);
            for (i, (_, start, end)) in phases.iter().enumerate() {
                by_phase[i] += overlap_ns(a.at_ns, b.at_ns, *start, *end);
            }
        } else {
            run_ns = 0;
        }
    }
    let mut top = 0u64;
    for s in samples.iter().filter(|s| s.max_term > 0) {
        if top > 0 && s.max_term > top {
            out.elections += 1;
        }
        if out.first_term == 0 {
            out.first_term = s.max_term;
        }
        top = top.max(s.max_term);
    }
    out.last_term = top;
    out.changes = samples
        .iter()
        .enumerate()
        .filter(|(i, s)| {
            *i == 0 || {
                let p = &samples[i - 1];
                p.leader != s.leader || p.max_term != s.max_term
            }
        })
        .map(|(_, s)| s.clone())
        .collect();
    out.no_leader_ms = ms(total_ns);
    out.longest_no_leader_ms = ms(longest_ns);
    out.no_leader_by_phase_ms = phases
        .iter()
        .zip(by_phase)
        .map(|((name, _, _), ns)| (name.clone(), ms(ns)))
        .collect();
    out
}

fn overlap_ns(a: u64, b: u64, start: u64, end: u64) -> u64 {
    b.min(end).saturating_sub(a.max(start))
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// A running monitor; [`Monitor::finish`] stops it and returns the samples.
pub struct Monitor {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<Vec<LeaderSample>>,
}

impl Monitor {
    /// Polls `nodes` until [`Monitor::finish`] or `max_run`. Call on the runtime inside the
    /// client namespace.
    pub fn start(
        nodes: &[NodeAddr],
        voters: u64,
        silence_limit_ms: u64,
        rec: &Recorder,
        max_run: Duration,
    ) -> anyhow::Result<Monitor> {
        let mut clients = Vec::with_capacity(nodes.len());
        for node in nodes {
            let channel = crate::tls::endpoint(&node.addr, node.tls.as_ref())?
                .connect_timeout(Duration::from_millis(STATUS_TIMEOUT_MS))
                .timeout(Duration::from_millis(STATUS_TIMEOUT_MS))
                .connect_lazy();
            clients.push((node.id, ClusterClient::new(channel)));
        }
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let majority = (voters / 2 + 1) as usize;
        let rules = Rules {
            majority,
            silence_limit_ms,
        };
        let task = tokio::spawn(poll(clients, rules, rec.clone(), stopped, max_run));
        Ok(Monitor { stop, task })
    }

    /// Stops polling; the samples in time order.
    pub async fn finish(self) -> Vec<LeaderSample> {
        self.stop.send_replace(true);
        self.task.await.unwrap_or_default()
    }
}

/// How a poll is judged.
#[derive(Clone, Copy, Debug)]
struct Rules {
    majority: usize,
    silence_limit_ms: u64,
}

async fn poll(
    clients: Vec<(u64, ClusterClient<Channel>)>,
    rules: Rules,
    rec: Recorder,
    stopped: tokio::sync::watch::Receiver<bool>,
    max_run: Duration,
) -> Vec<LeaderSample> {
    let mut samples = Vec::new();
    let max_samples = max_run.as_millis() as u64 / POLL_INTERVAL_MS + 1;
    let mut tick = tokio::time::interval(Duration::from_millis(POLL_INTERVAL_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !*stopped.borrow() && (samples.len() as u64) < max_samples {
        tick.tick().await;
        let at_ns = rec.now_ns();
        let calls = clients
            .iter()
            .map(|(_, c)| view(c.clone(), rules.silence_limit_ms));
        let views: Vec<Option<NodeView>> = futures::future::join_all(calls).await;
        samples.push(LeaderSample {
            at_ns,
            leader: agreed_leader(&views, rules.majority),
            max_term: views.iter().flatten().map(|v| v.term).max().unwrap_or(0),
            answered: views.iter().flatten().count() as u32,
            terms: views.iter().flatten().map(|v| (v.node, v.term)).collect(),
        });
    }
    samples
}

async fn view(mut client: ClusterClient<Channel>, silence_limit_ms: u64) -> Option<NodeView> {
    let timeout = Duration::from_millis(STATUS_TIMEOUT_MS);
    let resp = tokio::time::timeout(timeout, client.status(pb::StatusRequest {}))
        .await
        .ok()?
        .ok()?;
    Some(view_of(&resp.into_inner().node?, silence_limit_ms))
}

/// What a node's status says about the leader: it names one only while it has heard from it
/// within `silence_limit_ms`.
pub fn view_of(s: &pb::NodeStatus, silence_limit_ms: u64) -> NodeView {
    let heard = s.leader_silence_ms.is_some_and(|ms| ms <= silence_limit_ms);
    NodeView {
        node: s.node_id,
        leader: (s.has_leader && heard).then_some(s.leader_id),
        term: s.term,
        leading: s.role == "leader" && heard,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_ms: u64, leader: Option<u64>, term: u64) -> LeaderSample {
        LeaderSample {
            at_ns: at_ms * 1_000_000,
            leader,
            max_term: term,
            answered: 3,
            terms: BTreeMap::new(),
        }
    }

    fn v(node: u64, leader: Option<u64>, term: u64) -> Option<NodeView> {
        Some(NodeView {
            node,
            leader,
            term,
            leading: leader == Some(node),
        })
    }

    #[test]
    fn a_leader_needs_a_majority_and_must_answer_itself() {
        let views = [v(1, Some(1), 2), v(2, Some(1), 2), v(3, None, 3)];
        assert_eq!(agreed_leader(&views, 2), Some(1));
        let split = [v(1, Some(1), 2), v(2, Some(2), 3), None];
        assert_eq!(agreed_leader(&split, 2), None);
        assert_eq!(agreed_leader(&[None, None, None], 2), None);
        let dead_leader = [None, v(2, Some(1), 2), v(3, Some(1), 2)];
        assert_eq!(
            agreed_leader(&dead_leader, 2),
            None,
            "followers name a dead leader"
        );
    }

    #[test]
    fn a_silent_leader_is_named_by_nobody() {
        let status = |node: u64, role: &str, silence: Option<u64>| pb::NodeStatus {
            node_id: node,
            role: role.into(),
            term: 4,
            leader_id: 1,
            has_leader: true,
            leader_silence_ms: silence,
            ..pb::NodeStatus::default()
        };
        // (status, names leader 1, calls itself leader)
        let cases = [
            (status(1, "leader", Some(20)), Some(1), true),
            (status(1, "leader", Some(501)), None, false),
            (status(1, "leader", None), None, false),
            (status(2, "follower", Some(500)), Some(1), false),
            (status(2, "follower", Some(3000)), None, false),
            (status(2, "follower", None), None, false),
        ];
        for (s, leader, leading) in cases {
            let v = view_of(&s, silence_limit_ms(100));
            assert_eq!((v.leader, v.leading), (leader, leading), "{s:?}");
        }
        assert_eq!(silence_limit_ms(300), 1500);
    }

    #[test]
    fn gaps_and_elections_are_counted() {
        let samples = [
            sample(0, Some(1), 1),
            sample(100, None, 1),
            sample(200, None, 2),
            sample(300, Some(2), 2),
            sample(400, None, 3),
            sample(500, Some(3), 3),
        ];
        let phases = [("before".to_string(), 0, 250_000_000)];
        let a = availability(&samples, &phases);
        assert_eq!(a.no_leader_ms, 300.0);
        assert_eq!(a.longest_no_leader_ms, 200.0);
        assert_eq!(a.elections, 2);
        assert_eq!((a.first_term, a.last_term), (1, 3));
        assert_eq!(a.no_leader_by_phase_ms[0].1, 150.0);
    }
}
