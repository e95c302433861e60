//! Status lists on a real 3-node cluster: every sealed license has a random position, and a
//! status change flips its bit in the next list revision on every replica, in a list signed
//! with the authority's key; a client holding the newest revision is told nothing changed.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{field_of, licctl_json, licenses_at, resident_card, seals_at, Cluster};
use licstore_proto::v1 as pb;
use licstore_seal::{
    encode_key_file, verify_status_list, ExportDocument, PublicKey, SecretKey, Suite,
};
use tonic::Code;

fn ask(purpose: pb::StatusPurpose, if_newer_than: u64) -> pb::GetStatusListRequest {
    pb::GetStatusListRequest {
        authority: common::issuer_code(),
        type_code: "resident-id-card".into(),
        purpose: purpose as i32,
        list: 0,
        if_newer_than,
        consistency: pb::Consistency::Serializable as i32,
    }
}

/// The list `addr` serves once its replica has applied `revision` (bounded wait), checked
/// under `key`: (list revision, bits).
async fn list_at(
    addr: &str,
    purpose: pb::StatusPurpose,
    revision: u64,
    key: &PublicKey,
) -> (u64, licstore_seal::Bitstring) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = seals_at(addr)
            .get_status_list(ask(purpose, 0))
            .await
            .expect("status list")
            .into_inner();
        if r.read_revision >= revision {
            let doc = verify_status_list(key, &r.signed_list).expect("signed by the key");
            assert_eq!(doc.revision, r.revision);
            return (r.revision, doc.bits);
        }
        assert!(Instant::now() < deadline, "{addr} never applied {revision}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn change(cluster: &Cluster, identifier: &str, op: pb::StatusOp) -> u64 {
    let request = pb::ChangeStatusRequest {
        request_id: format!("{identifier}-{op:?}"),
        identifier: identifier.into(),
        op: op as i32,
        reason: String::new(),
    };
    let mut client = licenses_at(&cluster.endpoints()[0]);
    client
        .change_status(request)
        .await
        .expect("status change")
        .into_inner()
        .revision
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_change_flips_its_bit_in_the_next_revision_on_every_replica() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = SecretKey::from_seed(Suite::Ed25519, &[21; 32]).expect("key");
    let key_file = dir.path().join("issuer.key");
    std::fs::write(&key_file, encode_key_file(&key)).expect("write key");
    let cluster = Cluster::start(3, &["--seal-key-file", &key_file.display().to_string()]);
    cluster.wait_leader().await;
    let addrs: Vec<String> = cluster.endpoints();
    let register = pb::RegisterKeyRequest {
        authority: common::issuer_code(),
        public_key: key.public_key().to_bytes(),
        valid_from_ms: 0,
    };
    seals_at(&addrs[0])
        .register_key(register)
        .await
        .expect("register");
    let mut cards = Vec::new();
    for n in 1..=3 {
        let issued = cluster
            .issue_retrying(pb::IssueRequest {
                license: Some(resident_card(n)),
                ..Default::default()
            })
            .await;
        cards.push(issued.license.expect("license"));
    }
    let mut positions = Vec::new();
    for card in &cards {
        let export = seals_at(&addrs[1])
            .export_license(pb::ExportLicenseRequest {
                identifier: card.identifier.clone(),
                consistency: 0,
            })
            .await
            .expect("export")
            .into_inner();
        let entry = export.status_entry.expect("a sealed license has an entry");
        assert_eq!(entry.list, 0);
        positions.push(entry.position);
    }
    let mut distinct = positions.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "positions {positions:?}");

    let suspension = pb::StatusPurpose::Suspension;
    let revocation = pb::StatusPurpose::Revocation;
    let public = key.public_key();
    let issued_at = cards[2].revision;
    let mut before = Vec::new();
    for addr in &addrs {
        let (revision, bits) = list_at(addr, suspension, issued_at, &public).await;
        assert_eq!(bits.count_set(), 0, "{addr}");
        before.push(revision);
    }
    assert!(before.iter().all(|r| *r == before[0]), "{before:?}");

    // Suspending card 2 sets its bit, and only its bit, in a newer revision everywhere.
    let suspended_at = change(&cluster, &cards[1].identifier, pb::StatusOp::Suspend).await;
    for addr in &addrs {
        let (revision, bits) = list_at(addr, suspension, suspended_at, &public).await;
        assert_eq!(revision, suspended_at, "{addr}");
        assert!(revision > before[0]);
        assert!(bits.get(positions[1]).expect("in range"), "{addr}");
        assert_eq!(bits.count_set(), 1, "{addr}");
        let (_, revoked) = list_at(addr, revocation, suspended_at, &public).await;
        assert_eq!(revoked.count_set(), 0, "{addr}");
        let unchanged = seals_at(addr)
            .get_status_list(ask(suspension, revision))
            .await
            .expect("conditional get")
            .into_inner();
        assert!(unchanged.not_modified && unchanged.signed_list.is_empty());
    }

    // Lifting clears it; revoking card 3 sets its revocation bit.
    let lifted_at = change(&cluster, &cards[1].identifier, pb::StatusOp::LiftSuspension).await;
    let revoked_at = change(&cluster, &cards[2].identifier, pb::StatusOp::Revoke).await;
    for addr in &addrs {
        let (revision, bits) = list_at(addr, suspension, revoked_at, &public).await;
        assert_eq!((revision, bits.count_set()), (lifted_at, 0), "{addr}");
        let (revision, bits) = list_at(addr, revocation, revoked_at, &public).await;
        assert_eq!(revision, revoked_at, "{addr}");
        assert!(bits.get(positions[2]).expect("in range"));
        assert_eq!(bits.count_set(), 1, "{addr}");
    }

    offline_status_checks(&cluster, &cards, dir.path());

    let mut bad = ask(suspension, 0);
    bad.purpose = 0;
    let refused = seals_at(&addrs[0])
        .get_status_list(bad)
        .await
        .expect_err("no purpose");
    assert_eq!(
        (refused.code(), field_of(&refused).as_str()),
        (Code::InvalidArgument, "purpose")
    );
    let mut missing = ask(suspension, 0);
    missing.list = 7;
    let refused = seals_at(&addrs[0])
        .get_status_list(missing)
        .await
        .expect_err("no list 7");
    assert_eq!(
        (refused.code(), field_of(&refused).as_str()),
        (Code::NotFound, "list")
    );
}

/// `verify-offline --status-list`: card 1 (valid) passes with both lists clear; card 3
/// (revoked) fails on the revocation list though its seal still holds.
fn offline_status_checks(cluster: &Cluster, cards: &[pb::License], dir: &Path) {
    let endpoints = cluster.endpoints().join(",");
    let path = |name: &str| dir.join(name).display().to_string();
    let root = SecretKey::from_seed(Suite::Ed25519, &[22; 32]).expect("key");
    std::fs::write(path("root.key"), encode_key_file(&root)).expect("write root");
    let run = |args: &[&str]| {
        let mut all = vec!["--endpoints", &endpoints];
        all.extend_from_slice(args);
        licctl_json(&all)
    };
    let issuer = common::issuer_code();
    let (code, _) = run(&[
        "trust",
        "export",
        "--root-key",
        &path("root.key"),
        "--issued-by",
        &issuer,
        "--out",
        &path("trust.bin"),
    ]);
    assert_eq!(code, 0);
    for purpose in ["revocation", "suspension"] {
        let (code, got) = run(&[
            "status-list",
            "get",
            "--authority",
            &issuer,
            "--type",
            "resident-id-card",
            "--purpose",
            purpose,
            "--out",
            &path(purpose),
        ]);
        assert_eq!(code, 0, "{got}");
    }
    let root_id = root.key_id().to_string();
    let check = |card: &pb::License| {
        let file = path(&format!("{}.lic", card.revision));
        let (code, _) = run(&["export", &card.identifier, "--out", &file]);
        assert_eq!(code, 0);
        licctl_json(&[
            "verify-offline",
            &file,
            "--trust",
            &path("trust.bin"),
            "--root-key-id",
            &root_id,
            "--status-list",
            &path("revocation"),
            "--status-list",
            &path("suspension"),
        ])
    };
    let (code, report) = check(&cards[0]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(
        report["status_lists"].as_array().map(Vec::len),
        Some(2),
        "{report}"
    );
    let (code, report) = check(&cards[2]);
    assert_eq!(code, 1, "{report}");
    assert_reason(&report, "no longer valid");

    // Card 1's export with card 3's entry, one list only, or a list older than allowed: all
    // refused.
    let card1_file = path(&format!("{}.lic", cards[0].revision));
    let card1 = std::fs::read(&card1_file).expect("read");
    let card3 = std::fs::read(path(&format!("{}.lic", cards[2].revision))).expect("read");
    let mut swapped = ExportDocument::from_bytes(&card1).expect("export");
    swapped.status_entry = ExportDocument::from_bytes(&card3)
        .expect("export")
        .status_entry;
    std::fs::write(path("swapped.lic"), swapped.to_bytes()).expect("write");
    let trust = path("trust.bin");
    let offline = |file: &str, extra: &[&str]| {
        let mut args = vec![
            "verify-offline",
            file,
            "--trust",
            &trust,
            "--root-key-id",
            &root_id,
        ];
        args.extend_from_slice(extra);
        licctl_json(&args)
    };
    let (revocation, suspension) = (path("revocation"), path("suspension"));
    let both = [
        "--status-list",
        revocation.as_str(),
        "--status-list",
        suspension.as_str(),
    ];
    let (code, report) = offline(&path("swapped.lic"), &both);
    assert_eq!(code, 1, "{report}");
    assert_reason(&report, "another license");
    let (code, report) = offline(&card1_file, &both[..2]);
    assert_eq!(code, 1, "{report}");
    assert_reason(&report, "one revocation and one suspension");
    std::thread::sleep(Duration::from_millis(1100));
    let mut stale = both.to_vec();
    stale.extend_from_slice(&["--max-list-age-s", "1"]);
    let (code, report) = offline(&card1_file, &stale);
    assert_eq!(code, 1, "{report}");
    assert_reason(&report, "older than");
}

fn assert_reason(report: &serde_json::Value, part: &str) {
    let reason = report["reason"].as_str().unwrap_or_default();
    assert!(reason.contains(part), "{reason:?} does not say {part:?}");
}
