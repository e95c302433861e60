//! gRPC health checking (`grpc.health.v1.Health`) with separate liveness and readiness.
//!
//! - Liveness, service name `""` or `liveness`: SERVING while the process serves gRPC at all. It
//!   needs no quorum, so a probe does not restart nodes of a cluster that has lost its majority.
//! - Readiness, service name `readiness` (also `licstore.v1.Licenses`): SERVING while this node
//!   knows a leader and is a member, i.e. it can take writes (forwarded if need be) and serve
//!   linearizable reads; NOT_SERVING otherwise. A leader counts only while a quorum has
//!   acknowledged it recently (see [`leader_confirmed`]).

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
    ready(leader_confirmed(&m, leader_lease(node)), is_member)
}

/// How long a leader counts as leading after a quorum last acknowledged it: twice the longest
/// election timeout, by when the others have elected someone else.
pub fn leader_lease(node: &Node) -> Duration {
    Duration::from_millis(node.raft.config().election_timeout_max.saturating_mul(2))
}

/// Whether this node knows a leader it can count on: another node, or itself with a quorum's
/// acknowledgement within `lease`. A leader cut off from the others goes on believing it leads
/// until it hears of a newer term; this does not.
pub fn leader_confirmed(m: &RaftMetrics<TypeConfig>, lease: Duration) -> bool {
    match m.current_leader {
        None => false,
        Some(id) if id == m.id => {
            let alone = m.membership_config.membership().voter_ids().eq([m.id]);
            alone
                || m.last_quorum_acked
                    .as_ref()
                    .is_some_and(|t| t.elapsed() < lease)
        }
        Some(_) => true,
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
