//! Backup and restore end to end: `licctl snapshot save` from a follower of a live cluster,
//! `licctl snapshot restore` into a new data directory, a one-node cluster started from it
//! with every record and the same state digest, and refusals of a damaged file and of a data
//! directory in use.

mod common;

use std::process::Command;

use common::{licctl, licenses_at, resident_card, Cluster, Proc};
use licstore_proto::v1 as pb;

/// Runs licctl; returns exit code, stdout and stderr.
fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(licctl())
        .args(args)
        .env_remove("LICSTORE_ENDPOINTS")
        .output()
        .expect("run licctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saved_backup_restores_into_a_new_cluster_with_the_same_digest() {
    let cluster = Cluster::start(3, &[]);
    let leader = cluster.wait_leader().await;
    let mut identifiers = Vec::new();
    for n in 0..40 {
        let written = cluster
            .issue_retrying(pb::IssueRequest {
                request_id: format!("b-{n}"),
                license: Some(resident_card(n)),
                lenient_holder_check: false,
                seal_bundle: Vec::new(),
            })
            .await;
        identifiers.push(written.license.expect("license").identifier);
    }
    let suspend = pb::ChangeStatusRequest {
        request_id: "b-suspend".into(),
        identifier: identifiers[3].clone(),
        op: pb::StatusOp::Suspend as i32,
        reason: String::new(),
    };
    let leader_addr = cluster.node(leader).addr.clone();
    licenses_at(&leader_addr)
        .change_status(suspend)
        .await
        .expect("suspend");
    let source = cluster.wait_settled().await;

    // Saved from a follower first in the endpoint list.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("licstore.snap");
    let file_arg = file.to_str().expect("utf-8");
    let mut endpoints: Vec<String> = cluster.nodes.iter().map(|p| p.addr.clone()).collect();
    endpoints.sort_by_key(|a| *a == leader_addr);
    let endpoints = endpoints.join(",");
    let (code, out, err) = run(&[
        "--endpoints",
        &endpoints,
        "-o",
        "json",
        "snapshot",
        "save",
        file_arg,
    ]);
    assert_eq!(code, 0, "save: {err}");
    let saved = json(&out);
    assert_eq!(saved["revision"], source.applied_index, "{out}");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".part"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let (code, out, err) = run(&["-o", "json", "snapshot", "status", file_arg]);
    assert_eq!(code, 0, "status: {err}");
    assert_eq!(json(&out)["members"].as_object().map(|m| m.len()), Some(3));

    // Restore as node 1 of a new one-node cluster and start it.
    let mut node = Proc::fresh(1, dir.path().join("restored"));
    let data_arg = node.dir.to_str().expect("utf-8").to_string();
    let init = format!("1={}", node.addr);
    let restore = [
        "snapshot",
        "restore",
        file_arg,
        "--data-dir",
        &data_arg,
        "--id",
        "1",
        "--init",
        &init,
    ];
    let (code, _, err) = run(&restore);
    assert_eq!(code, 0, "restore: {err}");
    assert!(
        !dir.path().join(".restored.restoring").exists(),
        "the staging directory was renamed into place"
    );
    let (code, _, err) = run(&restore);
    assert_eq!(
        code, 1,
        "a second restore into the same directory must fail"
    );
    assert!(err.contains("not empty"), "{err}");

    common::spawn(&mut node, None);
    let restored = Cluster {
        root: tempfile::tempdir().expect("tempdir"),
        nodes: vec![node],
    };
    assert_eq!(restored.wait_leader().await, 1);
    let digest = restored.wait_converged().await;
    assert_eq!(digest.digest, source.digest, "restored state differs");
    assert_eq!(digest.records, 40);
    let addr = restored.nodes[0].addr.clone();
    for identifier in &identifiers {
        let req = pb::GetByIdentifierRequest {
            identifier: identifier.clone(),
            consistency: pb::Consistency::Linearizable as i32,
            max_staleness_ms: 0,
        };
        let got = licenses_at(&addr).get_by_identifier(req).await;
        assert!(got.is_ok(), "{identifier}: {got:?}");
    }
    // The new cluster takes writes after the restored entries.
    let written = restored
        .issue_retrying(pb::IssueRequest {
            request_id: "after-restore".into(),
            license: Some(resident_card(900)),
            lenient_holder_check: false,
            seal_bundle: Vec::new(),
        })
        .await;
    assert!(written.revision > source.applied_index);
    let members = common::cluster_at(&addr)
        .member_list(pb::MemberListRequest {})
        .await
        .expect("member list")
        .into_inner()
        .members;
    assert_eq!(members.len(), 1, "{members:?}");
}

#[test]
fn a_damaged_backup_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.snap");
    std::fs::write(
        &file,
        b"LICSNAP1 this is not a backup at all, only some bytes",
    )
    .expect("write");
    let file_arg = file.to_str().expect("utf-8");
    let (code, _, err) = run(&["snapshot", "status", file_arg]);
    assert_eq!(code, 1, "{err}");
    let data = dir.path().join("data");
    let data_arg = data.to_str().expect("utf-8");
    let args = [
        "snapshot",
        "restore",
        file_arg,
        "--data-dir",
        data_arg,
        "--id",
        "1",
        "--init",
        "1=127.0.0.1:1",
    ];
    let (code, _, err) = run(&args);
    assert_eq!(code, 1, "{err}");
    assert!(
        !data.exists(),
        "nothing may be written for a damaged backup"
    );
    let target = dir.path().join("never.snap");
    let target_arg = target.to_str().expect("utf-8");
    let save = [
        "--endpoints",
        "127.0.0.1:1",
        "--timeout-ms",
        "500",
        "snapshot",
        "save",
        target_arg,
    ];
    let (code, _, err) = run(&save);
    assert_eq!(code, 3, "no server answers: {err}");
    assert!(!target.exists());
    // A local path that cannot be written is the caller's error, found before any node copies.
    let nowhere = dir.path().join("no-such-dir").join("x.snap");
    let save = [
        "--endpoints",
        "127.0.0.1:1",
        "snapshot",
        "save",
        nowhere.to_str().expect("utf-8"),
    ];
    let (code, _, err) = run(&save);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no-such-dir"), "{err}");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    assert!(
        !names.iter().any(|n| n.to_string_lossy().contains(".part")),
        "{names:?}"
    );
}
