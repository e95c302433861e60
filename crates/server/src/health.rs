//! gRPC health checking (`grpc.health.v1.Health`) with separate liveness and readiness.
//!
//! - Liveness, service name `""` or `liveness`: SERVING while the process serves gRPC at all. It
//!   needs no quorum, so a probe does not restart nodes of a cluster that has lost its majority.
//! - Readiness, service name `readiness` (also `licstore.v1.Licenses`): SERVING while this node
//!   knows a leader and is a member, i.e. it can take writes (forwarded if need be) and serve
//!   linearizable reads; NOT_SERVING otherwise. A leader counts only while a quorum has
//!   acknowledged it recently, and a follower's leader only while its appends or heartbeats
//!   keep arriving (see [`leader_confirmed`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use licstore_store::TypeConfig;
use openraft::type_config::async_runtime::WatchReceiver;
use openraft::{Instant, RaftMetrics};
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

use crate::node::Node;

/// Service names answered for liveness.
pub const LIVENESS: [&str; 2] = ["", "liveness"];
/// Service names answered for readiness.
pub const READINESS: [&str; 2] = ["readiness", "licstore.v1.Licenses"];

/// Readiness from what this node knows: a leader, and membership of the cluster.
pub fn ready(has_leader: bool, is_member: bool) -> ServingStatus {
    if has_leader && is_member {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    }
}

/// This node's readiness now.
pub fn readiness(node: &Node) -> ServingStatus {
    let m = node.raft.metrics();
    let m = m.borrow_watched();
    let is_member = m
        .membership_config
        .membership()
        .get_node(&node.id)
        .is_some();
    let confirmed = leader_confirmed(&m, leader_lease(node), node.leader_contact.age());
    ready(confirmed, is_member)
}

/// When this node last accepted an append or heartbeat from a leader. With Pre-Vote a follower
/// cut off from its leader never becomes a candidate, so openraft goes on naming that leader;
/// this is how long ago it actually spoke.
#[derive(Debug)]
pub struct LeaderContact {
    epoch: std::time::Instant,
    /// Milliseconds since `epoch` plus one at the last contact; zero before the first.
    heard_ms: AtomicU64,
}

impl Default for LeaderContact {
    fn default() -> Self {
        LeaderContact {
            epoch: std::time::Instant::now(),
            heard_ms: AtomicU64::new(0),
        }
    }
}

impl LeaderContact {
    /// Records a contact now.
    pub fn heard(&self) {
        let now_ms = self.epoch.elapsed().as_millis() as u64 + 1;
        self.heard_ms.fetch_max(now_ms, Ordering::Relaxed);
    }

    /// How long ago the last contact was; `None` before the first.
    pub fn age(&self) -> Option<Duration> {
        let heard = self.heard_ms.load(Ordering::Relaxed);
        let now_ms = self.epoch.elapsed().as_millis() as u64 + 1;
        (heard != 0).then(|| Duration::from_millis(now_ms.saturating_sub(heard)))
    }
}

/// How long a leader counts as leading after a quorum last acknowledged it: twice the longest
/// election timeout, by when the others have elected someone else.
pub fn leader_lease(node: &Node) -> Duration {
    Duration::from_millis(node.raft.config().election_timeout_max.saturating_mul(2))
}

/// Whether this node knows a leader it can count on: itself with a quorum's acknowledgement
/// within `lease`, or another node that it heard from (`contact_age` ago) within `lease`. A
/// leader cut off from the others goes on believing it leads until it hears of a newer term,
/// and with Pre-Vote a follower cut off goes on naming its old leader; this does neither.
pub fn leader_confirmed(
    m: &RaftMetrics<TypeConfig>,
    lease: Duration,
    contact_age: Option<Duration>,
) -> bool {
    leader_silence(m, contact_age).is_some_and(|silence| silence < lease)
}

/// How long ago this node last heard from its leader: on the leader, since a quorum last
/// acknowledged it (zero when it is the only voter); on a follower, `contact_age`. `None`
/// without a leader or before any contact.
pub fn leader_silence(
    m: &RaftMetrics<TypeConfig>,
    contact_age: Option<Duration>,
) -> Option<Duration> {
    match m.current_leader {
        None => None,
        Some(id) if id == m.id => {
            // After a restart openraft names the stored vote's leader before any election.
            if m.state != openraft::ServerState::Leader {
                return None;
            }
            let alone = m.membership_config.membership().voter_ids().eq([m.id]);
            if alone {
                return Some(Duration::ZERO);
            }
            m.last_quorum_acked.as_ref().map(|t| t.elapsed())
        }
        Some(_) => contact_age,
    }
}

/// The health service, kept up to date from Raft's metrics until the node stops.
pub async fn service(
    node: Arc<Node>,
) -> tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health> {
    let (reporter, server) = tonic_health::server::health_reporter();
    for name in LIVENESS {
        reporter
            .set_service_status(name, ServingStatus::Serving)
            .await;
    }
    tokio::spawn(follow(reporter, node));
    server
}

/// How often readiness is re-evaluated when openraft's metrics do not change: a leader's lease
/// runs out without any change.
const RECHECK: Duration = Duration::from_secs(1);

async fn follow(reporter: HealthReporter, node: Arc<Node>) {
    let mut metrics = node.raft.metrics();
    let mut last = publish(&reporter, &node, None).await;
    loop {
        match tokio::time::timeout(RECHECK, metrics.changed()).await {
            Ok(Err(_)) => break,
            Ok(Ok(())) | Err(_) => last = publish(&reporter, &node, Some(last)).await,
        }
    }
    for name in READINESS.into_iter().chain(LIVENESS) {
        reporter
            .set_service_status(name, ServingStatus::NotServing)
            .await;
    }
}

/// Publishes readiness when it differs from `last`; returns it.
async fn publish(
    reporter: &HealthReporter,
    node: &Node,
    last: Option<ServingStatus>,
) -> ServingStatus {
    let status = readiness(node);
    if last != Some(status) {
        for name in READINESS {
            reporter.set_service_status(name, status).await;
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_follower_counts_its_leader_only_while_it_hears_from_it() {
        let lease = Duration::from_secs(2);
        let ms = Duration::from_millis;
        let mut m = RaftMetrics::<TypeConfig>::new_initial(2);
        // (current leader, last contact, confirmed)
        let cases = [
            (None, Some(ms(10)), false),
            (Some(1), None, false),
            (Some(1), Some(ms(10)), true),
            (Some(1), Some(ms(1999)), true),
            (Some(1), Some(ms(2000)), false),
            (Some(1), Some(ms(60_000)), false),
        ];
        for (leader, contact, want) in cases {
            m.current_leader = leader;
            let got = leader_confirmed(&m, lease, contact);
            assert_eq!(got, want, "leader {leader:?}, contact {contact:?}");
        }
    }

    #[test]
    fn contact_ages_from_the_last_heard() {
        let c = LeaderContact::default();
        assert_eq!(c.age(), None);
        c.heard();
        let age = c.age().expect("heard");
        assert!(age < Duration::from_secs(1), "{age:?}");
    }

    #[test]
    fn ready_only_with_a_leader_and_as_a_member() {
        let cases = [
            (true, true, ServingStatus::Serving),
            (false, true, ServingStatus::NotServing),
            (true, false, ServingStatus::NotServing),
            (false, false, ServingStatus::NotServing),
        ];
        for (leader, member, want) in cases {
            assert_eq!(
                ready(leader, member),
                want,
                "leader {leader}, member {member}"
            );
        }
    }
}
