//! Sealed licenses on a real 3-node cluster: keys registered through Raft, seals made by the
//! server or supplied by the issuer, verdicts through rotation and revocation, and exports
//! checked by `licctl verify-offline` with no server against right and wrong trust files.

mod common;

use common::{
    field_of, licctl_json, licenses_at, resident_card, seal_verdict, seals_at, write_key, Cluster,
};
use licstore_proto::v1 as pb;
use licstore_seal::{SealBundle, SecretKey, Signature, Suite};
use tonic::Code;

fn second_issuer() -> String {
    let first17 = "11310000002425678";
    let check = licstore_model::uscc_check_char(first17).expect("17 chars");
    format!("{first17}{check}")
}

fn issue_req(license: pb::NewLicense, seal_bundle: Vec<u8>) -> pb::IssueRequest {
    pb::IssueRequest {
        request_id: String::new(),
        license: Some(license),
        lenient_holder_check: false,
        seal_bundle,
    }
}

/// A seal of payload version 1, as older sealing systems made, over `card` (serial set).
fn version_1_seal(card: &pb::NewLicense, key: &SecretKey, signed_at_ms: u64) -> Vec<u8> {
    let model = licstore_cli::seals::model_license(card).expect("license");
    let serial = model.serial.clone().expect("serial");
    let id = licstore_model::Identifier::generate(&model.type_code, &model.issuer.code, &serial, 1)
        .expect("identifier");
    let license = licstore_model::build_license(model, id, false);
    let fields = license.disclosable_fields();
    let (commitments, disclosures) =
        licstore_seal::commit_fields(&fields, &mut rand::rng()).expect("commit");
    let payload = licstore_seal::SealedPayload {
        version: 1,
        ..licstore_seal::SealedPayload::for_key(
            &key.public_key(),
            &license.issuer.code,
            signed_at_ms,
            licstore_model::issued_digest(&license),
            commitments,
        )
    };
    SealBundle {
        seal: licstore_seal::seal(key, &payload).expect("seal"),
        payload,
        salts: disclosures.iter().map(|d| d.salt).collect(),
        digest_salt: None,
    }
    .to_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seals_follow_keys_and_verify_offline() {
    let keys = tempfile::tempdir().expect("tempdir");
    let a = SecretKey::from_seed(Suite::Sm2Sm3, &[1; 32]).expect("key");
    let a2 = SecretKey::from_seed(Suite::Ed25519, &[2; 32]).expect("key");
    let issuer_b = SecretKey::from_seed(Suite::Ed25519, &[3; 32]).expect("key");
    let root = SecretKey::from_seed(Suite::Sm2Sm3, &[4; 32]).expect("key");
    let other_root = SecretKey::from_seed(Suite::Ed25519, &[5; 32]).expect("key");
    let a_file = write_key(keys.path(), "a.key", &a);
    let a2_file = write_key(keys.path(), "a2.key", &a2);
    let root_file = write_key(keys.path(), "root.key", &root);
    let other_root_file = write_key(keys.path(), "other-root.key", &other_root);
    let args = ["--seal-key-file", &a_file, "--seal-key-file", &a2_file];
    let cluster = Cluster::start(3, &args);
    let leader = cluster.wait_leader().await;
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");
    let at = cluster.node(follower).addr.clone();
    common::register_items(&at, &[common::TEST_ITEM]).await;
    let endpoints = cluster.endpoints().join(",");
    let authority = common::issuer_code();

    // Stock imported before the issuer had a key is stored unsealed.
    let stock10 = pb::ImportRecord {
        request_id: "stock-10".into(),
        license: Some(resident_card(10)),
        ..Default::default()
    };
    let import_at = |records: Vec<pb::ImportRecord>| {
        let at = at.clone();
        async move {
            licenses_at(&at)
                .import(tokio_stream::iter(records))
                .await
                .expect("import")
                .into_inner()
        }
    };
    let summary = import_at(vec![stock10.clone()]).await;
    assert_eq!((summary.imported, summary.rejected), (1, 0), "{summary:?}");

    // Registration through a follower is forwarded to the leader.
    let register = pb::RegisterKeyRequest {
        authority: authority.clone(),
        public_key: a.public_key().to_bytes(),
        valid_from_ms: 0,
    };
    let r = seals_at(&at)
        .register_key(register)
        .await
        .expect("register")
        .into_inner();
    assert!(r.keys[0].active);
    assert_eq!(r.keys[0].key_id, a.key_id().to_string());

    // The server seals with the key file it holds.
    let card1 = cluster
        .issue_retrying(issue_req(resident_card(1), Vec::new()))
        .await;
    let card1 = card1.license.expect("license");
    let seal = card1.seal.clone().expect("sealed");
    assert_eq!(
        (seal.key_id.as_str(), seal.suite.as_str()),
        (a.key_id().to_string().as_str(), "sm2-sm3")
    );
    assert_eq!(seal_verdict(&at, 1).await, pb::SealVerdict::Valid);
    // The same import again, now that the node would seal it, is the same request.
    let summary = import_at(vec![stock10]).await;
    assert_eq!(
        (summary.imported, summary.duplicates, summary.rejected),
        (0, 1, 0),
        "{summary:?}"
    );

    // Export, trust files, offline checks.
    let dir = keys.path();
    let export1 = dir.join("card1.lic").display().to_string();
    let (code, _) = licctl_json(&[
        "--endpoints",
        &endpoints,
        "export",
        &card1.identifier,
        "--out",
        &export1,
    ]);
    assert_eq!(code, 0);
    let trust = |name: &str, root_file: &str, only: Option<&str>| {
        let out = dir.join(name).display().to_string();
        let mut args = vec![
            "--endpoints",
            &endpoints,
            "trust",
            "export",
            "--root-key",
            root_file,
        ];
        args.extend(["--issued-by", "310000", "--out", &out]);
        if let Some(authority) = only {
            args.extend(["--authority", authority]);
        }
        let (code, _) = licctl_json(&args);
        assert_eq!(code, 0, "trust export {name}");
        out
    };
    let trust1 = trust("trust1.bin", &root_file, None);
    let wrong = trust("wrong.bin", &other_root_file, Some("NOBODY"));
    let root_id = root.key_id().to_string();
    let offline = |file: &str, trust: &str, pin: &str| {
        licctl_json(&[
            "verify-offline",
            file,
            "--trust",
            trust,
            "--root-key-id",
            pin,
        ])
    };
    let (code, report) = offline(&export1, &trust1, &root_id);
    assert_eq!(
        (code, report["valid"].as_bool()),
        (0, Some(true)),
        "{report}"
    );
    let (code, report) = offline(&export1, &wrong, &other_root.key_id().to_string());
    assert_eq!(code, 1, "{report}");
    assert!(report["reason"]
        .as_str()
        .unwrap_or("")
        .contains("not in the trust list"));
    let (code, _) = offline(&export1, &trust1, &other_root.key_id().to_string());
    assert_eq!(
        code, 1,
        "a trust file under another root than the pinned one"
    );
    let (code, _) = licctl_json(&["verify-offline", &export1, "--trust", &trust1]);
    assert_eq!(code, 2, "the trusted root must be named");
    let tampered = dir.join("tampered.lic");
    let mut bytes = std::fs::read(&export1).expect("read export");
    let at_name = bytes
        .windows(6)
        .position(|w| w == "张三".as_bytes())
        .expect("holder name");
    bytes[at_name + 5] ^= 1;
    std::fs::write(&tampered, bytes).expect("write");
    let (code, _) = offline(&tampered.display().to_string(), &trust1, &root_id);
    assert_eq!(code, 1, "an altered record");

    // An issuer that seals in its own system: the server holds no key of it.
    let b_authority = second_issuer();
    let register = pb::RegisterKeyRequest {
        authority: b_authority.clone(),
        public_key: issuer_b.public_key().to_bytes(),
        valid_from_ms: 0,
    };
    seals_at(&at)
        .register_key(register)
        .await
        .expect("register b");
    let mut card7 = resident_card(7);
    card7.issuer.as_mut().expect("issuer").code = b_authority.clone();
    let refused = licenses_at(&at)
        .issue(issue_req(card7.clone(), Vec::new()))
        .await;
    let refused = refused.expect_err("no seal, no held key");
    assert_eq!(
        (refused.code(), field_of(&refused).as_str()),
        (Code::FailedPrecondition, "seal_bundle")
    );
    let now = licstore_cli::seals::now_ms();
    let bundle =
        licstore_cli::seals::seal_issue_request(&mut card7, false, &issuer_b, now).expect("seal");
    let mut forged = SealBundle::from_bytes(&bundle).expect("bundle");
    let mut signature = forged.seal.signature.as_bytes().to_vec();
    signature[0] ^= 1;
    forged.seal.signature = Signature::from_bytes(signature);
    let refused = licenses_at(&at)
        .issue(issue_req(card7.clone(), forged.to_bytes()))
        .await;
    let refused = refused.expect_err("forged");
    assert_eq!(
        (refused.code(), field_of(&refused).as_str()),
        (Code::InvalidArgument, "seal_bundle.signature")
    );
    // A new seal of payload version 1 (the plain issued digest) is refused.
    let v1 = version_1_seal(&card7, &issuer_b, now);
    let refused = licenses_at(&at).issue(issue_req(card7.clone(), v1)).await;
    let refused = refused.expect_err("version 1");
    assert_eq!(
        (refused.code(), field_of(&refused).as_str()),
        (Code::InvalidArgument, "seal_bundle.version")
    );
    let card7_stored = licenses_at(&at)
        .issue(issue_req(card7, bundle.clone()))
        .await
        .expect("sealed by issuer");
    let card7_stored = card7_stored.into_inner().license.expect("license");
    assert_eq!(card7_stored.seal.expect("seal").bundle, bundle);

    // Imported stock of a sealing authority needs its seal too.
    let mut card8 = resident_card(8);
    card8.issuer.as_mut().expect("issuer").code = b_authority.clone();
    let unsealed = pb::ImportRecord {
        license: Some(card8.clone()),
        ..Default::default()
    };
    let bundle8 =
        licstore_cli::seals::seal_issue_request(&mut card8, false, &issuer_b, now).expect("seal");
    let sealed = pb::ImportRecord {
        license: Some(card8),
        seal_bundle: bundle8,
        ..Default::default()
    };
    let records = tokio_stream::iter(vec![unsealed, sealed]);
    let summary = licenses_at(&at)
        .import(records)
        .await
        .expect("import")
        .into_inner();
    assert_eq!((summary.imported, summary.rejected), (1, 1), "{summary:?}");
    assert_eq!(summary.rejections[0].field, "seal_bundle");
    // Unsealed stock of an authority whose key the node holds is sealed on import.
    let held = pb::ImportRecord {
        license: Some(resident_card(9)),
        ..Default::default()
    };
    let summary = licenses_at(&at)
        .import(tokio_stream::iter(vec![held]))
        .await
        .expect("import")
        .into_inner();
    assert_eq!((summary.imported, summary.rejected), (1, 0), "{summary:?}");
    assert_eq!(seal_verdict(&at, 9).await, pb::SealVerdict::Valid);
    // The node seals no identifier that names another issuing office.
    let card11 = resident_card(11);
    let foreign = licstore_model::Identifier::generate(&card11.type_code, &b_authority, "S11", 1)
        .expect("identifier");
    let summary = import_at(vec![pb::ImportRecord {
        identifier: foreign.to_string(),
        license: Some(card11),
        ..Default::default()
    }])
    .await;
    assert_eq!((summary.imported, summary.rejected), (0, 1), "{summary:?}");
    assert_eq!(summary.rejections[0].field, "identifier");

    // Rotation: the old key's seals stay valid, new ones use the new key.
    let rotate = pb::RotateKeyRequest {
        authority: authority.clone(),
        new_public_key: a2.public_key().to_bytes(),
        at_ms: 0,
    };
    let r = seals_at(&at)
        .rotate_key(rotate)
        .await
        .expect("rotate")
        .into_inner();
    assert_eq!(r.keys.len(), 2);
    let card2 = cluster
        .issue_retrying(issue_req(resident_card(2), Vec::new()))
        .await;
    let card2 = card2.license.expect("license").seal.expect("sealed");
    assert_eq!(card2.key_id, a2.key_id().to_string());
    assert_eq!(seal_verdict(&at, 1).await, pb::SealVerdict::ValidRotated);
    let trust2 = trust("trust2.bin", &root_file, None);
    let (code, report) = offline(&export1, &trust2, &root_id);
    assert_eq!(
        code, 0,
        "a rotated key still verifies what it sealed: {report}"
    );

    // Revocation after card 2 was sealed: card 2 stays valid, no new unsealed issue.
    let revoke = pb::RevokeKeyRequest {
        key_id: a2.key_id().to_string(),
        revoked_from_ms: card2.signed_at_ms + 1,
    };
    seals_at(&at).revoke_key(revoke).await.expect("revoke");
    assert_eq!(
        seal_verdict(&at, 2).await,
        pb::SealVerdict::SignedBeforeRevocation
    );
    let refused = licenses_at(&at)
        .issue(issue_req(resident_card(3), Vec::new()))
        .await;
    assert_eq!(
        refused.expect_err("revoked").code(),
        Code::FailedPrecondition
    );

    // Revoking the first key from before card 1 voids card 1, online and offline.
    let revoke = pb::RevokeKeyRequest {
        key_id: a.key_id().to_string(),
        revoked_from_ms: seal.signed_at_ms,
    };
    seals_at(&at).revoke_key(revoke).await.expect("revoke");
    assert_eq!(
        seal_verdict(&at, 1).await,
        pb::SealVerdict::RevokedAtSigning
    );
    let trust3 = trust("trust3.bin", &root_file, None);
    let (code, report) = offline(&export1, &trust3, &root_id);
    assert_eq!(code, 1, "{report}");

    // Every replica holds the same registry and records.
    cluster.wait_converged().await;
}
