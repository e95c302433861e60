//! End-to-end tests on a cluster of real `licstored` processes over loopback gRPC.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{licenses_at, resident_card, status, Cluster};
use licstore_proto::v1 as pb;
use licstore_proto::v1::licenses_client::LicensesClient;

fn issue_req(n: u32) -> pb::IssueRequest {
    pb::IssueRequest {
        request_id: format!("req-{n}"),
        license: Some(resident_card(n)),
        lenient_holder_check: false,
        seal_bundle: Vec::new(),
    }
}

fn holder_of(n: u32) -> String {
    resident_card(n).holder.expect("holder").id
}

async fn get_by_id(
    addr: &str,
    identifier: &str,
    consistency: pb::Consistency,
) -> Result<pb::License, tonic::Status> {
    let req = pb::GetByIdentifierRequest {
        identifier: identifier.to_string(),
        consistency: consistency as i32,
        max_staleness_ms: 0,
    };
    let resp = licenses_at(addr).get_by_identifier(req).await?.into_inner();
    Ok(resp.license.expect("license"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_on_leader_read_from_follower() {
    let cluster = Cluster::start(3, &[]);
    let leader = cluster.wait_leader().await;
    let leader_addr = cluster.node(leader).addr.clone();
    let written = licenses_at(&leader_addr)
        .issue(issue_req(1))
        .await
        .expect("issue")
        .into_inner();
    let identifier = written
        .license
        .as_ref()
        .expect("license")
        .identifier
        .clone();
    let follower = cluster
        .nodes
        .iter()
        .find(|p| p.id != leader)
        .expect("a follower");

    // A linearizable read on a follower sees the write at once.
    let got = get_by_id(&follower.addr, &identifier, pb::Consistency::Linearizable)
        .await
        .expect("read");
    assert_eq!(got.revision, written.revision);
    assert_eq!(got.status, pb::LicenseStatus::Valid as i32);

    // A serializable read sees it once the follower has applied that far.
    let deadline = std::time::Instant::now() + common::WAIT;
    loop {
        let s = status(&follower.addr).await.expect("status");
        if s.applied_index >= written.revision {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "follower never applied {}",
            written.revision
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = get_by_id(&follower.addr, &identifier, pb::Consistency::Serializable)
        .await
        .expect("read");
    assert_eq!(got.digest, written.license.expect("license").digest);

    // A write sent to a follower is forwarded to the leader.
    let forwarded = licenses_at(&follower.addr)
        .issue(issue_req(2))
        .await
        .expect("forwarded issue")
        .into_inner();
    assert!(forwarded.revision > written.revision);

    // Retrying a write with the same request id applies it once.
    let again = licenses_at(&leader_addr)
        .issue(issue_req(1))
        .await
        .expect("retry")
        .into_inner();
    assert!(again.duplicate);
    assert_eq!(again.revision, written.revision);
    cluster.wait_converged().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_under_writes_loses_nothing_acknowledged() {
    let mut cluster = Cluster::start(3, &[]);
    let first_leader = cluster.wait_leader().await;
    let acked: Arc<Mutex<Vec<(u32, String)>>> = Arc::default();
    let writer = {
        let acked = acked.clone();
        let mut client = cluster.client();
        tokio::spawn(async move {
            for n in 0..300u32 {
                let req = issue_req(n);
                let result = client.retrying(|ch| {
                    let req = req.clone();
                    async move { LicensesClient::new(ch).issue(req).await }
                });
                if let Ok(resp) = result.await {
                    let id = resp.license.expect("license").identifier;
                    acked.lock().expect("lock").push((n, id));
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cluster.kill(first_leader);
    let new_leader = cluster.wait_leader().await;
    assert_ne!(new_leader, first_leader);
    writer.await.expect("writer task");

    let acked = acked.lock().expect("lock").clone();
    assert!(
        acked.len() >= 250,
        "only {} of 300 writes acknowledged",
        acked.len()
    );
    let leader_addr = cluster.node(new_leader).addr.clone();
    for (n, identifier) in &acked {
        let got = get_by_id(&leader_addr, identifier, pb::Consistency::Linearizable).await;
        let got = got.unwrap_or_else(|e| panic!("acknowledged write {n} ({identifier}) lost: {e}"));
        assert_eq!(got.holder.expect("holder").id, holder_of(*n));
    }

    // The old leader restarts from its data directory and catches up.
    cluster.restart(first_leader);
    let d = cluster.wait_converged().await;
    for p in &cluster.nodes {
        let report = common::cluster_at(&p.addr).check(pb::CheckRequest {}).await;
        let report = report.expect("check").into_inner();
        assert_eq!(
            report.problem_count, 0,
            "node {}: {:?}",
            p.id, report.problems
        );
        assert_eq!(report.records_checked, d.records);
    }
    assert!(d.records as usize >= acked.len());
}

/// Issues `n` licenses (retried: on a loaded machine leadership may move meanwhile) and
/// returns their identifiers.
async fn issue_all(cluster: &Cluster, n: u32) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let resp = cluster.issue_retrying(issue_req(i)).await;
        ids.push(resp.license.expect("license").identifier);
    }
    ids
}

/// Kills every node at once, starts them again, checks that every identifier is readable and
/// waits for the replicas to agree.
async fn power_cut_and_check(cluster: &mut Cluster, ids: &[String]) -> pb::StateDigestResponse {
    for id in 1..=3 {
        cluster.kill(id);
    }
    for id in 1..=3 {
        cluster.restart(id);
    }
    let leader = cluster.wait_leader().await;
    let addr = cluster.node(leader).addr.clone();
    for id in ids {
        get_by_id(&addr, id, pb::Consistency::Linearizable)
            .await
            .expect("write survived");
    }
    cluster.wait_converged().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_cluster_killed_after_acks_recovers_every_write() {
    let mut cluster = Cluster::start(3, &[]);
    cluster.wait_leader().await;
    let ids = issue_all(&cluster, 40).await;
    // Power cut for everyone right after the acknowledgements: applied state was not written
    // to the write-ahead log and must come back from the Raft log.
    power_cut_and_check(&mut cluster, &ids).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_cluster_killed_after_log_purge_recovers_every_write() {
    let small_log = ["--snapshot-logs", "20", "--logs-to-keep", "5"];
    let mut cluster = Cluster::start(3, &small_log);
    cluster.wait_leader().await;
    let ids = issue_all(&cluster, 120).await;
    // Every node has dropped log entries whose effect lives only in its state machine, which
    // is written without the write-ahead log: the purge must have put that state on disk.
    cluster.wait_converged().await;
    for id in 1..=3 {
        let addr = cluster.node(id).addr.clone();
        let st = status(&addr).await.expect("status");
        assert!(st.purged_index > 0, "node {id} never purged: {st:?}");
    }
    assert_eq!(power_cut_and_check(&mut cluster, &ids).await.records, 120);
    // The state on disk was at least as new as each node's last snapshot, so none of them had
    // to reinstall a snapshot to get back to it.
    for id in 1..=3 {
        let scraped = common::scrape(&cluster.node(id).metrics_addr).await;
        let installs = common::total(&scraped, "licstore_snapshot_installs_total", &[]);
        assert_eq!(installs, 0.0, "node {id} reinstalled a snapshot");
    }
}

/// Snapshots sent, as the Prometheus endpoint counts them.
const SENT_OK: &str = "licstore_network_snapshot_send_success_total";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_learner_catches_up_through_a_snapshot() {
    let small_log = ["--snapshot-logs", "20", "--logs-to-keep", "5"];
    let mut cluster = Cluster::start(3, &small_log);
    let leader = cluster.wait_leader().await;
    let addr = cluster.node(leader).addr.clone();
    for n in 0..120 {
        licenses_at(&addr).issue(issue_req(n)).await.expect("issue");
    }
    let leader_status = status(&addr).await.expect("status");
    assert!(
        leader_status.purged_index > 0,
        "log was never purged: {leader_status:?}"
    );

    let learner_addr = cluster.spawn_extra(4, &small_log);
    let req = pb::AddLearnerRequest {
        node_id: 4,
        addr: learner_addr.clone(),
        blocking: true,
    };
    let members = common::cluster_at(&addr)
        .add_learner(req)
        .await
        .expect("add learner")
        .into_inner();
    let ids: BTreeSet<u64> = members.members.iter().map(|m| m.node_id).collect();
    assert_eq!(ids, BTreeSet::from([1, 2, 3, 4]));

    let converged = cluster.wait_converged().await;
    assert_eq!(converged.records, 120);
    let learner = status(&learner_addr).await.expect("learner status");
    assert_eq!(learner.role, "learner");
    assert!(
        learner.snapshot_index > 0,
        "learner did not install a snapshot: {learner:?}"
    );
    let learner_metrics = common::scrape(&cluster.node(4).metrics_addr).await;
    let received = [
        "licstore_network_snapshot_receive_success_total",
        "licstore_network_snapshot_receive_total_duration_seconds_count",
    ];
    for name in received {
        assert!(common::total(&learner_metrics, name, &[]) >= 1.0, "{name}");
    }
    let mut sent = 0.0;
    for p in cluster.nodes.iter().filter(|p| p.id != 4) {
        let s = common::scrape(&p.metrics_addr).await;
        let count = "licstore_network_snapshot_send_total_duration_seconds_count";
        sent += common::total(&s, count, &[]).min(common::total(&s, SENT_OK, &[]));
    }
    assert!(sent >= 1.0, "no node counted a snapshot sent");

    // Promote the learner, then remove a voter that is not the leader.
    let mut admin = common::cluster_at(&addr);
    let members = admin
        .promote(pb::PromoteRequest { node_id: 4 })
        .await
        .expect("promote");
    let voters: BTreeSet<u64> = members
        .into_inner()
        .members
        .iter()
        .filter(|m| m.voter)
        .map(|m| m.node_id)
        .collect();
    assert_eq!(voters, BTreeSet::from([1, 2, 3, 4]));
    let victim = (1..=3).find(|id| *id != leader).expect("a follower");
    let members = admin
        .remove_member(pb::RemoveMemberRequest { node_id: victim })
        .await;
    let ids: BTreeSet<u64> = members
        .expect("remove")
        .into_inner()
        .members
        .iter()
        .map(|m| m.node_id)
        .collect();
    assert!(!ids.contains(&victim), "{victim} still a member: {ids:?}");
    licenses_at(&addr)
        .issue(issue_req(500))
        .await
        .expect("write after membership changes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_moves_to_the_named_voter() {
    let cluster = Cluster::start(3, &[]);
    let leader = cluster.wait_leader().await;
    let target = (1..=3).find(|id| *id != leader).expect("a follower");
    // Sent to a follower first: the client follows the leader hint.
    let follower_first: Vec<String> = {
        let other = (1..=3)
            .find(|id| *id != leader && *id != target)
            .expect("third");
        vec![
            cluster.node(other).addr.clone(),
            cluster.node(leader).addr.clone(),
        ]
    };
    let mut client = licstore_client::Client::new(&follower_first).expect("client");
    let req = pb::TransferLeaderRequest { node_id: target };
    let moved = client
        .retrying(|ch| async move {
            licstore_proto::v1::cluster_client::ClusterClient::new(ch)
                .transfer_leader(req)
                .await
        })
        .await
        .expect("transfer");
    assert_eq!(moved.leader_id, target);
    assert_eq!(cluster.wait_leader().await, target);
    let addr = cluster.node(target).addr.clone();
    let absent = common::cluster_at(&addr)
        .transfer_leader(pb::TransferLeaderRequest { node_id: 9 })
        .await
        .expect_err("no such member");
    assert_eq!(absent.code(), tonic::Code::NotFound);
    licenses_at(&addr)
        .issue(issue_req(1))
        .await
        .expect("the new leader takes writes");
}
