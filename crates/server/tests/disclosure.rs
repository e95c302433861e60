//! Verification that discloses little, on a real 3-node cluster: a verification shows only
//! the fields its service item's rule lists (none by default, the same on every replica),
//! and a holder's presentation reveals only the fields asked for, checked by
//! `licctl verify-presentation` with no server.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{field_of, licctl_json, licenses_at, resident_card, Cluster};
use licstore_proto::v1 as pb;
use licstore_proto::v1::policies_client::PoliciesClient;
use licstore_proto::v1::seals_client::SealsClient;
use licstore_seal::{encode_key_file, SecretKey, Suite};
use tonic::transport::Channel;
use tonic::Code;

const ITEM: &str = "户籍业务办理";
const OTHER_ITEM: &str = "婚姻登记档案查询";

fn channel(addr: &str) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect_lazy()
}

fn verify_req(n: u32, service_item: &str) -> pb::VerifyRequest {
    pb::VerifyRequest {
        consistency: pb::Consistency::Serializable as i32,
        ..common::verify_card(n, service_item)
    }
}

fn rule(fields: &[&str]) -> pb::SetDisclosureRequest {
    pb::SetDisclosureRequest {
        rule: Some(pb::DisclosureRule {
            service_item: ITEM.into(),
            type_code: "resident-id-card".into(),
            fields: fields.iter().map(|f| (*f).to_owned()).collect(),
        }),
    }
}

/// The fields a serializable verification on `addr` shows, once the replica has applied
/// `revision` (bounded wait).
async fn fields_at(addr: &str, n: u32, item: &str, revision: u64) -> HashMap<String, String> {
    let r = verify_at(addr, n, item, revision).await;
    let shown = r.fields.contains_key("@identifier");
    assert_eq!(
        !r.identifier.is_empty(),
        shown,
        "identifier shown only under its rule"
    );
    assert_eq!(
        !r.digest.is_empty(),
        shown,
        "digest shown only with the identifier"
    );
    r.fields
}

/// A serializable verification on `addr`, once the replica has applied `revision`.
async fn verify_at(addr: &str, n: u32, item: &str, revision: u64) -> pb::VerifyResponse {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = match licenses_at(addr).verify(verify_req(n, item)).await {
            Ok(r) => r.into_inner(),
            // A replica that has not yet applied the item's registration.
            Err(e) if e.code() == Code::FailedPrecondition && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Err(e) => panic!("verify on {addr}: {e:?}"),
        };
        if r.read_revision >= revision {
            assert_eq!(r.verdict(), pb::Verdict::Valid);
            return r;
        }
        assert!(Instant::now() < deadline, "{addr} never applied {revision}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifications_and_presentations_disclose_only_what_is_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = SecretKey::from_seed(Suite::Sm2Sm3, &[11; 32]).expect("key");
    let key_file = dir.path().join("issuer.key");
    std::fs::write(&key_file, encode_key_file(&key)).expect("write key");
    let key_file = key_file.display().to_string();
    let cluster = Cluster::start(3, &["--seal-key-file", &key_file]);
    let leader = cluster.wait_leader().await;
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");
    let at = cluster.node(follower).addr.clone();
    common::register_items(&at, &[ITEM, OTHER_ITEM]).await;
    let register = pb::RegisterKeyRequest {
        authority: common::issuer_code(),
        public_key: key.public_key().to_bytes(),
        valid_from_ms: 0,
    };
    SealsClient::new(channel(&at))
        .register_key(register)
        .await
        .expect("register");
    let card = cluster
        .issue_retrying(pb::IssueRequest {
            license: Some(resident_card(1)),
            ..Default::default()
        })
        .await
        .license
        .expect("license");
    assert!(card.seal.is_some(), "the node seals the card");
    let addrs: Vec<String> = (1..=3).map(|id| cluster.node(id).addr.clone()).collect();

    // No rule: no field, on any replica.
    for addr in &addrs {
        assert!(fields_at(addr, 1, ITEM, card.revision).await.is_empty());
    }

    // A rule set through a follower, checked field by field before it is proposed.
    let mut policies = PoliciesClient::new(channel(&at));
    let refused = policies
        .set_disclosure(rule(&["@holder.name", "salary"]))
        .await
        .expect_err("unknown field");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(field_of(&refused), "rule.fields[1]");
    let set = policies
        .set_disclosure(rule(&["@valid_until", "@holder.name", "sex"]))
        .await
        .expect("set rule")
        .into_inner();
    assert_eq!(set.rules[0].fields, ["@holder.name", "@valid_until", "sex"]);
    assert_eq!(set.rules[0].type_code, card.type_code);
    let sex = resident_card(1).face["sex"].clone();
    let expected: HashMap<String, String> = [
        ("@holder.name", "张三"),
        ("@valid_until", "2040-01-15"),
        ("sex", sex.as_str()),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .into();
    for addr in &addrs {
        assert_eq!(
            fields_at(addr, 1, ITEM, set.revision).await,
            expected,
            "{addr}"
        );
        let other = fields_at(addr, 1, OTHER_ITEM, set.revision).await;
        assert!(
            other.is_empty(),
            "{addr}: another service item sees {other:?}"
        );
    }
    let batch = licenses_at(&at)
        .verify_batch(pb::VerifyBatchRequest {
            items: vec![verify_req(1, OTHER_ITEM), verify_req(1, ITEM)]
                .into_iter()
                .map(|r| pb::VerifyRequest {
                    consistency: 0,
                    ..r
                })
                .collect(),
            consistency: pb::Consistency::Linearizable as i32,
            max_staleness_ms: 0,
        })
        .await
        .expect("batch")
        .into_inner();
    assert!(batch.results[0].fields.is_empty());
    assert_eq!(batch.results[1].fields, expected);
    assert!(batch.results[1].identifier.is_empty() && batch.results[1].digest.is_empty());

    // A rule naming the identifier shows it, and the digest, to its service item only.
    let mut by_id = rule(&["@identifier"]);
    if let Some(r) = by_id.rule.as_mut() {
        r.service_item = OTHER_ITEM.into();
    }
    let set_id = policies
        .set_disclosure(by_id)
        .await
        .expect("set")
        .into_inner();
    for addr in &addrs {
        let r = verify_at(addr, 1, OTHER_ITEM, set_id.revision).await;
        assert_eq!(r.identifier, card.identifier, "{addr}");
        assert_eq!(r.fields["@identifier"], card.identifier, "{addr}");
        assert_eq!(r.digest, card.digest, "{addr}");
        assert!(fields_at(addr, 1, ITEM, set_id.revision).await.len() == 3);
    }
    let listed = policies
        .list_disclosure(pb::ListDisclosureRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.rules.len(), 2, "{listed:?}");
    assert!(listed.rules.contains(&set.rules[0]));

    // Removing the rule: no field again.
    let removed = policies
        .set_disclosure(rule(&[]))
        .await
        .expect("remove")
        .into_inner();
    for addr in &addrs {
        assert!(fields_at(addr, 1, ITEM, removed.revision).await.is_empty());
    }

    present_and_check(&cluster, &card, dir.path()).await;
}

/// A presentation reveals the named fields only, and `verify-presentation` accepts it under
/// the right trust file and refuses it altered or under another root.
async fn present_and_check(cluster: &Cluster, card: &pb::License, dir: &Path) {
    let endpoints = cluster.endpoints().join(",");
    let mut seals = SealsClient::new(channel(&cluster.endpoints()[0]));
    let ask = |fields: &[&str]| pb::PresentRequest {
        identifier: card.identifier.clone(),
        fields: fields.iter().map(|f| (*f).to_owned()).collect(),
        consistency: 0,
    };
    let shown = seals
        .present(ask(&["@valid_until", "@holder.name"]))
        .await
        .expect("present")
        .into_inner();
    let names: Vec<&String> = {
        let mut names: Vec<&String> = shown.revealed.keys().collect();
        names.sort();
        names
    };
    assert_eq!(names, ["@holder.name", "@valid_until"]);
    let holder = card.holder.clone().expect("holder");
    let hidden = [
        holder.id.as_str(),
        card.license_number.as_str(),
        card.face["birth_date"].as_str(),
        card.face["address"].as_str(),
        card.identifier.as_str(),
    ];
    for value in hidden {
        let found = shown
            .document
            .windows(value.len())
            .any(|w| w == value.as_bytes());
        assert!(!found, "hidden value {value} is in the presentation");
    }
    let refused = seals
        .present(ask(&["salary"]))
        .await
        .expect_err("no such field");
    assert_eq!(
        (refused.code(), field_of(&refused).as_str()),
        (Code::InvalidArgument, "fields[0]")
    );

    // Offline checks with licctl.
    let root = SecretKey::from_seed(Suite::Ed25519, &[12; 32]).expect("key");
    let root_file = dir.join("root.key");
    std::fs::write(&root_file, encode_key_file(&root)).expect("write root");
    let trust = dir.join("trust.bin").display().to_string();
    let (code, _) = licctl_json(&[
        "--endpoints",
        &endpoints,
        "trust",
        "export",
        "--root-key",
        &root_file.display().to_string(),
        "--issued-by",
        &common::issuer_code(),
        "--out",
        &trust,
    ]);
    assert_eq!(code, 0);
    let file = dir.join("card.presentation").display().to_string();
    let (code, made) = licctl_json(&[
        "--endpoints",
        &endpoints,
        "present",
        &card.identifier,
        "--field",
        "@holder.name,sex",
        "--out",
        &file,
    ]);
    assert_eq!(code, 0, "{made}");
    let root_id = root.key_id().to_string();
    let check = |file: &str, root_id: &str| {
        licctl_json(&[
            "verify-presentation",
            file,
            "--trust",
            &trust,
            "--root-key-id",
            root_id,
        ])
    };
    let (code, report) = check(&file, &root_id);
    assert_eq!(code, 0, "{report}");
    let fields = report["fields"].as_object().expect("fields");
    let names: Vec<&str> = fields.keys().map(String::as_str).collect();
    assert_eq!(names, ["@holder.name", "sex"]);
    assert_eq!(fields["@holder.name"], "张三");

    // A changed revealed value, or a root nobody pinned, fails.
    let mut bytes = std::fs::read(&file).expect("read presentation");
    let name = "张三".as_bytes();
    let at = bytes
        .windows(name.len())
        .position(|w| w == name)
        .expect("revealed name in the file");
    bytes[at..at + name.len()].copy_from_slice("李四".as_bytes());
    let altered = dir.join("altered.presentation").display().to_string();
    std::fs::write(&altered, &bytes).expect("write altered");
    let (code, report) = check(&altered, &root_id);
    assert_eq!(code, 1, "{report}");
    assert!(report["fields"].as_object().is_none_or(|f| f.is_empty()));
    let stranger = SecretKey::from_seed(Suite::Ed25519, &[13; 32]).expect("key");
    let (code, _) = check(&file, &stranger.key_id().to_string());
    assert_eq!(code, 1);
}
