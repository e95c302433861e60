//! The audit trail on real processes: every verification, answered or refused, becomes one
//! record of the replicated trail, on every node alike; `licctl audit list --holder` and
//! `licctl audit verify` read it; and a node killed right after answering loses no record.

mod common;

use std::time::{Duration, Instant};

use common::{licctl_json, licenses_at, resident_card, Cluster, TEST_ITEM, WAIT};
use licstore_proto::v1 as pb;
use licstore_proto::v1::audit_client::AuditClient;
use tonic::transport::Channel;

fn audit_at(addr: &str) -> AuditClient<Channel> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect_lazy();
    AuditClient::new(channel)
}

/// The trail as the node at `addr` has it, once it holds a record stating `purpose`
/// (bounded wait).
async fn trail_with(addr: &str, purpose: &str) -> Vec<pb::AuditEntry> {
    let deadline = Instant::now() + WAIT;
    loop {
        let listed = audit_at(addr)
            .list_audit(pb::ListAuditRequest::default())
            .await
            .map(|r| r.into_inner().records);
        if let Ok(records) = listed {
            if records.iter().any(|r| r.purpose == purpose) {
                return records;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{addr}: no record of {purpose:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn verify(purpose: &str, item: &str) -> pb::VerifyRequest {
    pb::VerifyRequest {
        purpose: purpose.into(),
        ..common::verify_card(1, item)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_verification_is_recorded_once_in_one_chain_on_every_node() {
    let cluster = Cluster::start(3, &[]);
    let leader = cluster.wait_leader().await;
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");
    let at = cluster.node(follower).addr.clone();
    common::register_items(&at, &[TEST_ITEM]).await;
    cluster
        .issue_retrying(pb::IssueRequest {
            license: Some(resident_card(1)),
            ..Default::default()
        })
        .await;
    let mut api = licenses_at(&at);
    let valid = api
        .verify(verify("case 1", TEST_ITEM))
        .await
        .expect("verify")
        .into_inner();
    assert_eq!(valid.verdict, pb::Verdict::Valid as i32);
    let refused = api
        .verify(verify("case 2", "no such item"))
        .await
        .expect_err("unregistered item");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    let batch = pb::VerifyBatchRequest {
        items: vec![verify("case 3", TEST_ITEM), verify("case 4", TEST_ITEM)],
        ..Default::default()
    };
    api.verify_batch(batch).await.expect("batch");

    let records = trail_with(&cluster.node(leader).addr, "case 4").await;
    let holder = resident_card(1).holder.expect("holder").id;
    let mut seen: Vec<(&str, &str, &str)> = records
        .iter()
        .map(|r| (r.purpose.as_str(), r.action.as_str(), r.outcome.as_str()))
        .collect();
    seen.sort();
    let expected = [
        ("case 1", "Licenses/Verify", "valid"),
        ("case 2", "Licenses/Verify", "failed_precondition"),
        ("case 3", "Licenses/VerifyBatch", "valid"),
        ("case 4", "Licenses/VerifyBatch", "valid"),
    ];
    assert_eq!(seen, expected, "one record per verification");
    for r in &records {
        assert_eq!(r.node_id, follower, "recorded by the node that answered");
        assert_eq!(r.holder_id, holder);
        assert!(r.time_ms > 0);
    }
    let seqs: Vec<u64> = records.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=records.len() as u64).collect::<Vec<_>>());

    // Every node holds the same trail, and licctl checks each one's chain itself.
    let endpoints = cluster.endpoints().join(",");
    for addr in cluster.endpoints() {
        trail_with(&addr, "case 4").await;
    }
    let (code, checked) = licctl_json(&["--endpoints", &endpoints, "audit", "verify"]);
    assert_eq!(code, 0, "{checked}");
    let nodes = checked["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 3, "{checked}");
    for n in nodes {
        assert_eq!(n["result"], "ok", "{checked}");
        assert_eq!(
            n["records"].as_u64(),
            Some(records.len() as u64),
            "{checked}"
        );
        assert_eq!(n["head"], nodes[0]["head"], "{checked}");
    }
    let (code, mine) = licctl_json(&[
        "--endpoints",
        &endpoints,
        "audit",
        "list",
        "--holder",
        &holder,
    ]);
    assert_eq!(code, 0, "{mine}");
    assert_eq!(mine["records"].as_array().map(Vec::len), Some(4), "{mine}");
    let (_, other) = licctl_json(&[
        "--endpoints",
        &endpoints,
        "audit",
        "list",
        "--holder",
        &common::citizen_id("310115", "19850612", 9),
    ]);
    assert_eq!(
        other["records"].as_array().map(Vec::len),
        Some(0),
        "{other}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_right_after_answering_keeps_the_record() {
    // Node 3 ships its journal once a minute: a record it answered for stays on it alone.
    let mut cluster = Cluster::start(3, &[]);
    cluster.wait_leader().await;
    let slow = cluster
        .nodes
        .iter_mut()
        .find(|p| p.id == 3)
        .expect("node 3");
    slow.extra_args = vec!["--audit-ship-interval-ms".into(), "60000".into()];
    cluster.kill(3);
    cluster.restart(3);
    let at = cluster.node(3).addr.clone();
    common::register_items(&at, &[TEST_ITEM]).await;
    cluster.wait_converged().await;
    let answered = licenses_at(&at)
        .verify(verify("answered before the kill", TEST_ITEM))
        .await
        .expect("verify")
        .into_inner();
    assert_eq!(answered.verdict, pb::Verdict::NotFound as i32);
    cluster.kill(3);
    let node3 = cluster
        .nodes
        .iter_mut()
        .find(|p| p.id == 3)
        .expect("node 3");
    node3.extra_args.clear();
    cluster.restart(3);
    let other = cluster.node(1).addr.clone();
    let records = trail_with(&other, "answered before the kill").await;
    let record = records
        .iter()
        .find(|r| r.purpose == "answered before the kill")
        .expect("record");
    assert_eq!((record.node_id, record.outcome.as_str()), (3, "not_found"));
    let once = records
        .iter()
        .filter(|r| r.purpose == record.purpose)
        .count();
    assert_eq!(once, 1, "recorded once");
}
