//! The audit trail on real processes: every verification, answered or refused, and every
//! license read and write becomes one record of the replicated trail, on every node alike;
//! `licctl audit list --holder` and `licctl audit verify` read it; a node killed right after
//! answering loses no record; a node that cannot ship its records refuses audited calls once
//! they have waited past the bound; a record altered on disk is found; queries, watches and
//! snapshots are recorded for the holders they reach; a plain-text node with auditing
//! switched off records nothing; and a trimmed trail still checks, from its checkpoint and
//! with its archive, while no trim removes a record younger than the least age.

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
    trail_until(addr, |r| r.purpose == purpose).await
}

/// The trail as the node at `addr` has it, once one of its records matches `wanted`
/// (bounded wait).
async fn trail_until(addr: &str, wanted: impl Fn(&pb::AuditEntry) -> bool) -> Vec<pb::AuditEntry> {
    let deadline = Instant::now() + WAIT;
    loop {
        let listed = audit_at(addr)
            .list_audit(pb::ListAuditRequest::default())
            .await
            .map(|r| r.into_inner().records);
        if let Ok(records) = listed {
            if records.iter().any(&wanted) {
                return records;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{addr}: the record waited for never came"
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
    let issued = cluster
        .issue_retrying(pb::IssueRequest {
            license: Some(resident_card(1)),
            ..Default::default()
        })
        .await
        .license
        .expect("license");
    let mut api = licenses_at(&at);
    let read = pb::GetByIdentifierRequest {
        identifier: issued.identifier.clone(),
        ..Default::default()
    };
    api.get_by_identifier(read).await.expect("read");
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

    // Each node ships its own records: wait for the last of each.
    let leader_addr = cluster.node(leader).addr.clone();
    trail_until(&leader_addr, |r| r.action == "Licenses/Issue").await;
    let records = trail_with(&leader_addr, "case 4").await;
    let holder = resident_card(1).holder.expect("holder").id;
    let verifications: Vec<&pb::AuditEntry> = records
        .iter()
        .filter(|r| r.action.starts_with("Licenses/Verify"))
        .collect();
    let mut seen: Vec<(&str, &str, &str)> = verifications
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
    for r in &verifications {
        assert_eq!(r.node_id, follower, "recorded by the node that answered");
        assert_eq!(r.holder_id, holder);
        assert!(r.time_ms > 0);
    }
    // The issue and the read are recorded too, naming the license.
    for action in ["Licenses/Issue", "Licenses/GetByIdentifier"] {
        let found: Vec<&pb::AuditEntry> = records.iter().filter(|r| r.action == action).collect();
        assert_eq!(found.len(), 1, "{action}: {records:?}");
        assert_eq!(found[0].outcome, "ok", "{action}");
        assert_eq!(found[0].identifier, issued.identifier, "{action}");
        assert_eq!(found[0].holder_id, holder, "{action}");
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
    let about_holder = records.iter().filter(|r| r.holder_id == holder).count();
    assert_eq!(
        about_holder, 6,
        "four verifications, the issue and the read"
    );
    assert_eq!(
        mine["records"].as_array().map(Vec::len),
        Some(about_holder),
        "{mine}"
    );
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
    // Answered, yet only in node 3's journal: the trail elsewhere does not have it.
    let elsewhere = audit_at(&cluster.node(1).addr)
        .list_audit(pb::ListAuditRequest::default())
        .await
        .expect("list")
        .into_inner();
    let shipped = elsewhere
        .records
        .iter()
        .any(|r| r.purpose == "answered before the kill");
    assert!(
        !shipped,
        "node 3 shipped before the kill: the test proves nothing"
    );
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

/// A verification of the local replica as it is: served by a node cut off from its peers.
fn serializable(purpose: &str) -> pb::VerifyRequest {
    pb::VerifyRequest {
        consistency: pb::Consistency::Serializable as i32,
        ..verify(purpose, TEST_ITEM)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_cannot_ship_refuses_audited_calls_past_the_bound() {
    let mut cluster = Cluster::start(3, &["--audit-max-unshipped-ms", "1000"]);
    cluster.wait_leader().await;
    let at = cluster.node(3).addr.clone();
    common::register_items(&at, &[TEST_ITEM]).await;
    cluster.wait_converged().await;
    // Node 3 alone: no leader can take its records.
    cluster.kill(1);
    cluster.kill(2);
    licenses_at(&at)
        .verify(serializable("before the bound"))
        .await
        .expect("served while its record is fresh");
    let deadline = Instant::now() + WAIT;
    let refused = loop {
        match licenses_at(&at).verify(serializable("while cut off")).await {
            Err(s) if s.code() == tonic::Code::Unavailable => break s,
            Err(other) => panic!("refused for another reason: {other:?}"),
            Ok(_) => {}
        }
        assert!(Instant::now() < deadline, "never refused");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        refused.message().contains("audit.max_unshipped_ms"),
        "{refused:?}"
    );
    // The wait shows in the node's metrics, next to the bound (sampled every 2 s).
    let metrics = cluster.node(3).metrics_addr.clone();
    let waited = wait_gauge(&metrics, |v| v > 1.0).await;
    let scraped = common::scrape(&metrics).await;
    assert_eq!(
        scraped.get("licstore_audit_max_unshipped_seconds"),
        Some(&1.0),
        "{waited}"
    );
    // A call that makes no record is still served.
    common::cluster_at(&at)
        .status(pb::StatusRequest {})
        .await
        .expect("status needs no audit record");
    // With its peers back, a shipment succeeds and the node serves audited calls again.
    cluster.restart(1);
    cluster.restart(2);
    let deadline = Instant::now() + WAIT;
    while licenses_at(&at)
        .verify(serializable("after the peers came back"))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "still refused");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_gauge(&metrics, |v| v == 0.0).await;
    let other = cluster.node(1).addr.clone();
    let records = trail_with(&other, "after the peers came back").await;
    let before = records.iter().filter(|r| r.purpose == "before the bound");
    assert_eq!(
        before.count(),
        1,
        "the record made while cut off reached the trail"
    );
}

/// Scrapes `metrics` until `licstore_audit_unshipped_seconds` satisfies `ok`; its value.
async fn wait_gauge(metrics: &str, ok: impl Fn(f64) -> bool) -> f64 {
    let deadline = Instant::now() + WAIT;
    loop {
        let scraped = common::scrape(metrics).await;
        let value = scraped.get("licstore_audit_unshipped_seconds").copied();
        if let Some(v) = value.filter(|v| ok(*v)) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "unshipped wait stuck at {value:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs licctl with `args`; returns its exit code and JSON output.
fn licctl_at(endpoint: &str, args: &[&str]) -> (i32, serde_json::Value) {
    licctl_json(&[&["--endpoints", endpoint][..], args].concat())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_altered_on_disk_is_found_by_licctl_audit_verify() {
    let cluster = Cluster::start(1, &[]);
    cluster.wait_leader().await;
    let addr = cluster.node(1).addr.clone();
    common::register_items(&addr, &[TEST_ITEM]).await;
    for n in 1..=3 {
        licenses_at(&addr)
            .verify(verify(&format!("file {n}"), TEST_ITEM))
            .await
            .expect("verify");
    }
    trail_with(&addr, "file 3").await;
    let (code, intact) = licctl_at(&addr, &["audit", "verify"]);
    assert_eq!(
        (code, &intact["nodes"][0]["result"]),
        (0, &"ok".into()),
        "{intact}"
    );

    // A backup restored into a new data directory: its trail is on disk, with nothing left
    // to re-apply over it. Record 2's purpose is then rewritten in place, as someone with
    // access to the disk would, keeping its link to record 1.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("backup.snap").display().to_string();
    let (code, saved) = licctl_at(&addr, &["snapshot", "save", &file]);
    assert_eq!(code, 0, "{saved}");
    let mut node = common::Proc::fresh(1, dir.path().join("restored"));
    let data = node.dir.display().to_string();
    let init = format!("1={}", node.addr);
    let restore = [
        "snapshot",
        "restore",
        &file,
        "--data-dir",
        &data,
        "--id",
        "1",
    ];
    let (code, restored) = licctl_json(&[&restore[..], &["--init", &init]].concat());
    assert_eq!(code, 0, "{restored}");
    alter_record(&node.dir, 2, "altered purpose");

    common::spawn(&mut node, None);
    let altered = Cluster {
        root: tempfile::tempdir().expect("tempdir"),
        nodes: vec![node],
    };
    altered.wait_leader().await;
    let at = altered.nodes[0].addr.clone();
    let listed = trail_with(&at, "altered purpose").await;
    assert_eq!(listed.len(), 3);
    let (code, checked) = licctl_at(&at, &["audit", "verify"]);
    assert_eq!(code, 1, "{checked}");
    let verdict = &checked["nodes"][0];
    assert_eq!(verdict["broken_at"].as_u64(), Some(3), "{checked}");
    let result = verdict["result"].as_str().unwrap_or_default();
    assert!(result.starts_with("broken at record 3"), "{checked}");
}

/// Rewrites the purpose of trail record `seq` in the stopped node's data directory `dir`.
fn alter_record(dir: &std::path::Path, seq: u64, purpose: &str) {
    use licstore_model::audit::{decode_record, encode_record};
    let storage = licstore_store::open(dir).expect("open the restored data");
    let db = storage.db.clone();
    let cf = db.cf_handle("audit").expect("audit family");
    let mut key = vec![b'r'];
    key.extend_from_slice(&seq.to_be_bytes());
    let bytes = db.get_cf(&cf, &key).expect("read").expect("record");
    let mut record = decode_record(&bytes).expect("decode");
    record.event.purpose = purpose.into();
    db.put_cf(&cf, &key, encode_record(&record)).expect("write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_auditing_off_serves_and_records_nothing() {
    let cluster = Cluster::start(1, &["--no-audit"]);
    cluster.wait_leader().await;
    let addr = cluster.node(1).addr.clone();
    common::register_items(&addr, &[TEST_ITEM]).await;
    for n in 1..=3 {
        licenses_at(&addr)
            .verify(verify(&format!("unaudited {n}"), TEST_ITEM))
            .await
            .expect("verify");
    }
    // A record is counted as soon as it is durable on the node, before any shipment.
    let scraped = common::scrape(&cluster.node(1).metrics_addr).await;
    assert_eq!(
        scraped.get("licstore_audit_events_total"),
        Some(&0.0),
        "{scraped:?}"
    );
    // Several shipment intervals later the trail is still empty.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let trail = audit_at(&addr)
        .list_audit(pb::ListAuditRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(trail.records.is_empty(), "{:?}", trail.records);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_watches_and_snapshots_are_recorded_for_the_holders_they_reach() {
    let cluster = Cluster::start(1, &[]);
    cluster.wait_leader().await;
    let addr = cluster.node(1).addr.clone();
    let mut holders = Vec::new();
    for n in [1, 2] {
        let license = resident_card(n);
        holders.push(license.holder.clone().expect("holder"));
        cluster
            .issue_retrying(pb::IssueRequest {
                license: Some(license),
                ..Default::default()
            })
            .await;
    }
    let type_code = resident_card(1).type_code;
    // A listing by type: one record per license it returned.
    let page = licenses_at(&addr)
        .query(pb::QueryRequest {
            type_code: type_code.clone(),
            ..Default::default()
        })
        .await
        .expect("query")
        .into_inner();
    assert_eq!(page.licenses.len(), 2);
    // A count returns no license: one record saying what it counted.
    licenses_at(&addr)
        .query(pb::QueryRequest {
            type_code: type_code.clone(),
            count_only: true,
            ..Default::default()
        })
        .await
        .expect("count");
    // A watch on holder 2 is recorded before its first message.
    let watch = pb::WatchRequest {
        holders: vec![pb::HolderRef {
            kind: holders[1].kind,
            id: holders[1].id.clone(),
        }],
        ..Default::default()
    };
    let stream = licenses_at(&addr).watch(watch).await.expect("watch");
    drop(stream);
    // A watch refused for an oversized filter is one record, however many holders it named.
    let many = pb::WatchRequest {
        holders: (0..5000)
            .map(|n| pb::HolderRef {
                kind: holders[0].kind,
                id: format!("{n}"),
            })
            .collect(),
        ..Default::default()
    };
    let refused = licenses_at(&addr)
        .watch(many)
        .await
        .expect_err("too many holders");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    let mut copy = common::cluster_at(&addr)
        .snapshot(pb::SnapshotRequest::default())
        .await
        .expect("snapshot")
        .into_inner();
    while copy.message().await.expect("snapshot chunk").is_some() {}
    let trail = trail_until(&addr, |r| r.action == "Cluster/Snapshot").await;
    let of = |action: &str| -> Vec<&pb::AuditEntry> {
        trail.iter().filter(|r| r.action == action).collect()
    };
    let mut got: Vec<String> = of("Licenses/Query")
        .iter()
        .filter(|r| !r.holder_id.is_empty())
        .map(|r| r.holder_id.clone())
        .collect();
    let mut expected: Vec<String> = holders.iter().map(|h| h.id.to_uppercase()).collect();
    got.sort_unstable();
    expected.sort_unstable();
    assert_eq!(got, expected, "one Query record per license returned");
    let counted = of("Licenses/Query")
        .into_iter()
        .find(|r| r.holder_id.is_empty())
        .expect("the count's record");
    assert!(counted.detail.contains("counted 2 matches"), "{counted:?}");
    let watched: Vec<&pb::AuditEntry> = of("Licenses/Watch")
        .into_iter()
        .filter(|r| r.outcome == "ok")
        .collect();
    assert_eq!(watched.len(), 1, "{watched:?}");
    let refusals = of("Licenses/Watch").len() - watched.len();
    assert_eq!(refusals, 1, "one record for the refused watch");
    assert_eq!(
        (watched[0].holder_id.clone(), watched[0].outcome.as_str()),
        (holders[1].id.to_uppercase(), "ok")
    );
    assert_eq!(of("Cluster/Snapshot")[0].outcome, "ok");
    // "Who looked at my license": holder 2's history has the listing and the watch.
    let history = audit_at(&addr)
        .list_audit(pb::ListAuditRequest {
            holder_kind: holders[1].kind,
            holder_id: holders[1].id.clone(),
            ..Default::default()
        })
        .await
        .expect("holder history")
        .into_inner()
        .records;
    let actions: Vec<&str> = history.iter().map(|r| r.action.as_str()).collect();
    for wanted in ["Licenses/Issue", "Licenses/Query", "Licenses/Watch"] {
        assert!(actions.contains(&wanted), "{wanted}: {actions:?}");
    }
}

/// The checkpoint node `addr` reports, once it is at least `seq` (bounded wait).
async fn checkpoint_at_least(addr: &str, seq: u64) -> pb::ListAuditResponse {
    let deadline = Instant::now() + WAIT;
    loop {
        let page = audit_at(addr)
            .list_audit(pb::ListAuditRequest::default())
            .await
            .map(|r| r.into_inner());
        if let Ok(page) = page {
            if page.checkpoint_seq >= seq {
                return page;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{addr}: checkpoint {seq} never came"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trimmed_trail_checks_from_its_checkpoint_and_with_its_archive() {
    let cluster = Cluster::start(3, &["--audit-trim-min-age-secs", "0"]);
    let leader = cluster.wait_leader().await;
    let at = cluster.node(leader).addr.clone();
    common::register_items(&at, &[TEST_ITEM]).await;
    for n in 1..=6 {
        licenses_at(&at)
            .verify(verify(&format!("kept {n}"), TEST_ITEM))
            .await
            .expect("verify");
    }
    for addr in cluster.endpoints() {
        trail_with(&addr, "kept 6").await;
    }
    let endpoints = cluster.endpoints().join(",");
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = dir.path().join("trail.archive");
    let archive = archive.to_str().expect("utf-8");
    let (code, exported) = licctl_at(&at, &["audit", "export", "--out", archive]);
    assert_eq!(code, 0, "{exported}");
    assert_eq!(exported["first_seq"].as_u64(), Some(1), "{exported}");
    let archived = exported["last_seq"].as_u64().expect("last_seq");
    assert!(archived >= 6, "{exported}");
    let (code, again) = licctl_at(&at, &["audit", "export", "--out", archive]);
    assert_ne!(code, 0, "an archive is never overwritten: {again}");

    let (code, trimmed) = licctl_at(&at, &["audit", "trim", "--through", "4"]);
    assert_eq!(code, 0, "{trimmed}");
    assert_eq!(
        (
            trimmed["checkpoint_seq"].as_u64(),
            trimmed["trimmed"].as_u64()
        ),
        (Some(4), Some(4)),
        "{trimmed}"
    );
    for addr in cluster.endpoints() {
        let page = checkpoint_at_least(&addr, 4).await;
        assert_eq!(page.records.first().map(|r| r.seq), Some(5), "{addr}");
        let own = page.records.last().expect("the trim's record");
        assert_eq!(
            (own.action.as_str(), own.outcome.as_str()),
            ("Audit/TrimAudit", "ok")
        );
        assert!(own.detail.starts_with("through=4 "), "{}", own.detail);
    }
    // Retried, it removes nothing and records nothing.
    let (code, retried) = licctl_at(&at, &["audit", "trim", "--through", "3"]);
    assert_eq!(code, 0, "{retried}");
    assert_eq!(retried["trimmed"].as_u64(), Some(0), "{retried}");
    let past = audit_at(&at)
        .trim_audit(pb::TrimAuditRequest {
            through_seq: 1_000_000,
        })
        .await
        .expect_err("past the tail");
    assert_eq!(past.code(), tonic::Code::FailedPrecondition);
    assert_eq!(common::field_of(&past), "through_seq");

    // Every node checks from its checkpoint, which the trim's record vouches for.
    let (code, checked) = licctl_json(&["--endpoints", &endpoints, "audit", "verify"]);
    assert_eq!(code, 0, "{checked}");
    for n in checked["nodes"].as_array().expect("nodes") {
        assert_eq!(
            (&n["result"], n["checkpoint"].as_u64()),
            (&"ok".into(), Some(4)),
            "{n}"
        );
    }
    // With the archive, the trimmed records are checked too, and reach the checkpoint.
    let with_archive = [
        "--endpoints",
        &endpoints,
        "audit",
        "verify",
        "--archive",
        archive,
    ];
    let (code, checked) = licctl_json(&with_archive);
    assert_eq!(code, 0, "{checked}");
    let rows = checked["nodes"].as_array().expect("nodes");
    assert_eq!(rows.len(), 4, "three nodes and the archive: {checked}");
    assert_eq!(rows[3]["records"].as_u64(), Some(archived), "{checked}");
    // An archive that does not start at record 1 vouches for no checkpoint.
    let late = dir.path().join("late.archive");
    let late = late.to_str().expect("utf-8");
    let (code, exported) = licctl_at(&at, &["audit", "export", "--out", late, "--from", "5"]);
    assert_eq!(code, 0, "{exported}");
    let with_late = [
        "--endpoints",
        &endpoints,
        "audit",
        "verify",
        "--archive",
        late,
    ];
    let (code, checked) = licctl_json(&with_late);
    assert_eq!(code, 1, "{checked}");
    let late_row = &checked["nodes"][3]["result"];
    let why = late_row.as_str().unwrap_or_default();
    assert!(why.contains("record 1: holds position 5"), "{checked}");
    // An archive altered after the export no longer agrees.
    let forged = dir.path().join("forged.archive");
    let mut bytes = std::fs::read(archive).expect("read archive");
    let at_purpose = find(&bytes, "kept 2".as_bytes()).expect("record of kept 2");
    bytes[at_purpose + 5] = b'9';
    std::fs::write(&forged, bytes).expect("write forged");
    let forged = forged.to_str().expect("utf-8");
    let with_forged = [
        "--endpoints",
        &endpoints,
        "audit",
        "verify",
        "--archive",
        forged,
    ];
    let (code, checked) = licctl_json(&with_forged);
    assert_eq!(code, 1, "{checked}");
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_trim_removes_a_record_younger_than_the_least_age() {
    let cluster = Cluster::start(1, &["--audit-trim-min-age-secs", "3600"]);
    cluster.wait_leader().await;
    let addr = cluster.node(1).addr.clone();
    common::register_items(&addr, &[TEST_ITEM]).await;
    licenses_at(&addr)
        .verify(verify("young", TEST_ITEM))
        .await
        .expect("verify");
    let records = trail_with(&addr, "young").await;
    let through_seq = records.last().expect("a record").seq;
    let refused = audit_at(&addr)
        .trim_audit(pb::TrimAuditRequest { through_seq })
        .await
        .expect_err("too young");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert!(
        refused.message().contains("audit.trim_min_age_secs"),
        "{refused:?}"
    );
    let page = audit_at(&addr)
        .list_audit(pb::ListAuditRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert_eq!(
        (page.checkpoint_seq, page.records.len()),
        (0, records.len())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_trims_records_past_the_retention_on_its_own() {
    let flags = [
        "--audit-trim-min-age-secs",
        "2",
        "--audit-retention-secs",
        "2",
    ];
    let cluster = Cluster::start(1, &flags);
    cluster.wait_leader().await;
    let addr = cluster.node(1).addr.clone();
    common::register_items(&addr, &[TEST_ITEM]).await;
    licenses_at(&addr)
        .verify(verify("old", TEST_ITEM))
        .await
        .expect("verify");
    let old = trail_with(&addr, "old").await;
    let old_seq = old.iter().find(|r| r.purpose == "old").expect("record").seq;
    let page = checkpoint_at_least(&addr, old_seq).await;
    assert!(
        page.records.iter().all(|r| r.purpose != "old"),
        "{:?}",
        page.records
    );
    let own = page
        .records
        .iter()
        .rev()
        .find(|r| r.action == "Audit/TrimAudit");
    assert_eq!(own.map(|r| r.caller.as_str()), Some("licstored retention"));
    let (code, checked) = licctl_at(&addr, &["audit", "verify"]);
    assert_eq!(code, 0, "{checked}");
    assert_eq!(checked["nodes"][0]["result"], "ok", "{checked}");
}
