//! The Prometheus endpoint of real nodes: after writes and reads the named series are there
//! with non-zero values, every name the alerts and dashboard use is exported, and the
//! leader-change counter moves when the leader is killed.

mod common;

use std::time::{Duration, Instant};

use common::{has_series, licenses_at, parse, resident_card, scrape, total, Cluster, Scrape, WAIT};
use licstore_proto::v1 as pb;

/// Every metric name the alerts and the dashboard may use.
const METRICS_TXT: &str = include_str!("../../../deploy/monitoring/metrics.txt");

/// Histograms exported from their first observation; the learner test in `cluster.rs` checks
/// them.
const AFTER_A_SNAPSHOT: [&str; 2] = [
    "licstore_network_snapshot_send_total_duration_seconds",
    "licstore_network_snapshot_receive_total_duration_seconds",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_series_move_and_leader_changes_are_counted() {
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.wait_leader().await;
    for n in 0..5 {
        cluster
            .issue_retrying(pb::IssueRequest {
                request_id: format!("m-{n}"),
                license: Some(resident_card(n)),
                lenient_holder_check: false,
                seal_bundle: Vec::new(),
            })
            .await;
    }
    let leader_addr = cluster.node(leader).addr.clone();
    let bad = pb::GetByIdentifierRequest {
        identifier: "not-an-identifier".into(),
        consistency: pb::Consistency::Linearizable as i32,
        max_staleness_ms: 0,
    };
    let refused = licenses_at(&leader_addr).get_by_identifier(bad).await;
    assert_eq!(
        refused.expect_err("bad identifier").code(),
        tonic::Code::InvalidArgument
    );

    let before = scrape(&cluster.node(leader).metrics_addr).await;
    let positive = [
        ("licstore_server_has_leader", vec![]),
        ("licstore_server_is_leader", vec![]),
        ("licstore_server_term", vec![]),
        ("licstore_server_leader_changes_seen_total", vec![]),
        ("licstore_server_proposals_committed_total", vec![]),
        ("licstore_server_proposals_applied_total", vec![]),
        ("licstore_server_proposal_batch_size_count", vec![]),
        (
            "licstore_server_proposal_batch_size_bucket",
            vec!["le=\"256\""],
        ),
        ("licstore_disk_wal_fsync_duration_seconds_count", vec![]),
        (
            "licstore_disk_backend_commit_duration_seconds_count",
            vec![],
        ),
        ("licstore_mvcc_db_total_size_in_bytes", vec![]),
        (
            "grpc_server_started_total",
            vec!["grpc_method=\"Issue\"", "grpc_type=\"unary\""],
        ),
        (
            "grpc_server_handled_total",
            vec!["grpc_method=\"Issue\"", "grpc_code=\"OK\""],
        ),
        (
            "grpc_server_handled_total",
            vec![
                "grpc_method=\"GetByIdentifier\"",
                "grpc_code=\"InvalidArgument\"",
            ],
        ),
        (
            "grpc_server_handling_seconds_count",
            vec!["grpc_method=\"Issue\""],
        ),
    ];
    for (name, labels) in &positive {
        let value = total(&before, name, labels);
        assert!(value > 0.0, "{name}{labels:?} is {value} on the leader");
    }
    assert_eq!(
        total(&before, "licstore_server_proposals_pending", &[]),
        0.0
    );
    let lag = total(&before, "licstore_server_apply_lag_entries", &[]);
    assert!(lag >= 0.0, "apply lag {lag}");

    // Every name the alerts and dashboard use is exported by some node.
    let mut all = Scrape::new();
    for p in &cluster.nodes {
        all.extend(scrape(&p.metrics_addr).await);
    }
    // Followers answer the leader's Raft calls.
    let raft = ["grpc_service=\"licstore.v1.raft.Raft\"", "grpc_code=\"OK\""];
    assert!(total(&all, "grpc_server_handled_total", &raft) > 0.0);
    let names = METRICS_TXT
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let missing: Vec<&str> = names
        .filter(|n| !has_series(&all, n) && !AFTER_A_SNAPSHOT.contains(n))
        .collect();
    assert!(missing.is_empty(), "not exported: {missing:?}");

    // Probes for what cannot speak gRPC over TLS: a member knowing a leader is ready; a node
    // that is not (yet) a member is live but not ready.
    let leader_metrics = cluster.node(leader).metrics_addr.clone();
    assert_eq!(common::http_get(&leader_metrics, "/readyz").await.0, 200);
    assert_eq!(common::http_get(&leader_metrics, "/livez").await.0, 200);
    assert_eq!(common::http_get(&leader_metrics, "/nope").await.0, 404);
    cluster.spawn_extra(4, &[]);
    let outsider = cluster.node(4).metrics_addr.clone();
    let deadline = Instant::now() + WAIT;
    while common::try_connect(&outsider).await.is_err() {
        assert!(Instant::now() < deadline, "node 4 never listened");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(common::http_get(&outsider, "/livez").await.0, 200);
    assert_eq!(common::http_get(&outsider, "/readyz").await.0, 503);
    cluster.kill(4);

    // Kill the leader: a survivor counts the new leader.
    let survivor = cluster
        .nodes
        .iter()
        .find(|p| p.id != leader)
        .expect("a follower");
    let survivor_metrics = survivor.metrics_addr.clone();
    let changes = "licstore_server_leader_changes_seen_total";
    let seen_before = total(&scrape(&survivor_metrics).await, changes, &[]);
    cluster.kill(leader);
    let new_leader = cluster.wait_leader().await;
    assert_ne!(new_leader, leader);
    let deadline = Instant::now() + WAIT;
    loop {
        let after = scrape(&survivor_metrics).await;
        if total(&after, changes, &[]) > seen_before {
            let failures = total(
                &scrape(&cluster.node(new_leader).metrics_addr).await,
                "licstore_network_peer_sent_failures_total",
                &[&format!("To=\"{leader}\"")],
            );
            assert!(failures > 0.0, "no failed sends to the dead node {leader}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "leader changes stayed at {seen_before}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn scrape_lines_parse_with_and_without_labels() {
    let text = "# HELP x y\nup 1\nreq_total{code=\"OK\",m=\"a b\"} 3\nbad line\n";
    let s = parse(text);
    assert_eq!(total(&s, "up", &[]), 1.0);
    assert_eq!(total(&s, "req_total", &["code=\"OK\""]), 3.0);
    assert_eq!(total(&s, "req_total", &["code=\"Unknown\""]), 0.0);
    assert!(!has_series(&s, "bad"));
}
