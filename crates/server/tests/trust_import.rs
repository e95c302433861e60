//! Trust between two stores, each real processes: store A's keys, exported as a trust list
//! under a root key, are imported into store B, which then takes A's sealed licenses (carried
//! as `licctl export --as-import` records) and judges their seals. A list must be signed by
//! the pinned root; lists of a root only move forward; a dropped key is withdrawn; a newer
//! revocation reaches B's verdicts; B can neither register keys for A's authority nor store
//! an unsealed license of it.

mod common;

use std::path::Path;

use common::{
    field_of, licctl_json, licenses_at, resident_card, seal_verdict, seals_at, write_key, Cluster,
};
use licstore_proto::v1 as pb;
use licstore_seal::{sign_trust_list, SecretKey, Suite, TrustFile, TrustList};
use tonic::Code;

fn now_ms() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.expect("clock after 1970").as_millis() as u64
}

/// Runs licctl against `endpoints`; returns exit code and JSON output.
fn licctl_at(endpoints: &str, args: &[&str]) -> (i32, serde_json::Value) {
    let mut all = vec!["--endpoints", endpoints];
    all.extend_from_slice(args);
    licctl_json(&all)
}

fn import_trust(b: &str, file: &str, pin: &str) -> (i32, serde_json::Value) {
    licctl_at(b, &["trust", "import", file, "--root-key-id", pin])
}

/// Imports one record file into `b`; returns (imported, rejected, first rejected field).
fn import_records(b: &str, file: &Path, rejects: &Path) -> (u64, u64, String) {
    let (file, rejects) = (file.display().to_string(), rejects.display().to_string());
    let (_, summary) = licctl_at(b, &["import", &file, "--reject-file", &rejects]);
    let count = |name: &str| summary[name].as_u64().unwrap_or(u64::MAX);
    let text = std::fs::read_to_string(&rejects).unwrap_or_default();
    let field = text
        .lines()
        .next()
        .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| format!("{}: {}", v["field"], v["reason"]))
        .unwrap_or_default();
    (count("imported"), count("rejected"), field)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_trusts_another_through_its_list() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = |name: &str| dir.path().join(name);
    let text = |name: &str| path(name).display().to_string();
    let key = SecretKey::from_seed(Suite::Sm2Sm3, &[11; 32]).expect("key");
    let root = SecretKey::from_seed(Suite::Ed25519, &[12; 32]).expect("key");
    let key_file = write_key(dir.path(), "a.key", &key);
    let root_file = write_key(dir.path(), "root.key", &root);
    let root_id = root.key_id().to_string();
    let authority = common::issuer_code();

    let a = Cluster::start(3, &["--seal-key-file", &key_file]);
    a.wait_leader().await;
    let a_eps = a.endpoints().join(",");
    let (code, _) = licctl_at(
        &a_eps,
        &[
            "keys",
            "register",
            "--authority",
            &authority,
            "--key-file",
            &key_file,
        ],
    );
    assert_eq!(code, 0, "register A's key");
    let mut cards = Vec::new();
    for n in 1..=2 {
        let req = pb::IssueRequest {
            license: Some(resident_card(n)),
            ..Default::default()
        };
        cards.push(a.issue_retrying(req).await.license.expect("license"));
    }
    for (n, card) in cards.iter().enumerate() {
        let out = text(&format!("card{}.jsonl", n + 1));
        let (code, _) = licctl_at(
            &a_eps,
            &["export", &card.identifier, "--out", &out, "--as-import"],
        );
        assert_eq!(code, 0, "export card {}", n + 1);
    }
    let export_trust = |name: &str, only: Option<&str>| {
        let out = text(name);
        let mut args = vec![
            "trust",
            "export",
            "--root-key",
            &root_file,
            "--issued-by",
            "310000",
        ];
        args.extend(["--out", &out]);
        if let Some(authority) = only {
            args.extend(["--authority", authority]);
        }
        let (code, view) = licctl_at(&a_eps, &args);
        assert_eq!(code, 0, "trust export {name}");
        (out, view["keys"].as_u64())
    };
    let (trust1, keys1) = export_trust("trust1.bin", None);
    assert_eq!(keys1, Some(1));

    // A store may import its own list: its keys stay its own.
    let (code, own) = import_trust(&a_eps, &trust1, &root_id);
    assert_eq!(code, 0, "{own}");
    assert_eq!(
        (own["local"].as_u64(), own["added"].as_u64()),
        (Some(1), Some(0))
    );
    // A later list of that root without the key does not withdraw the store's own key.
    let (own_empty, _) = export_trust("own-empty.bin", Some("NOBODY"));
    let (code, own) = import_trust(&a_eps, &own_empty, &root_id);
    assert_eq!((code, own["withdrawn"].as_u64()), (0, Some(0)), "{own}");
    let (_, keys) = licctl_at(&a_eps, &["keys", "list"]);
    assert_eq!(
        keys["keys"][0]["revoked_from_ms"].as_u64(),
        Some(0),
        "{keys}"
    );
    assert_eq!(keys["keys"][0]["active"].as_bool(), Some(true), "{keys}");

    let b = Cluster::start(1, &[]);
    b.wait_leader().await;
    let b_addr = b.node(1).addr.clone();
    common::register_items(&b_addr, &[common::TEST_ITEM]).await;
    let b_eps = b.endpoints().join(",");

    // Before B trusts A, A's sealed records are refused and nothing is stored.
    let (imported, rejected, why) = import_records(&b_eps, &path("card1.jsonl"), &path("r0"));
    assert_eq!((imported, rejected), (0, 1));
    assert!(why.contains("seal_bundle.key_id"), "{why}");

    // The list must be signed under the pinned root, and be a trust file at all.
    let other = SecretKey::from_seed(Suite::Ed25519, &[13; 32]).expect("key");
    let bytes = std::fs::read(&trust1).expect("trust file");
    let import = |trust_file: Vec<u8>, root_key_id: String| pb::ImportTrustListRequest {
        trust_file,
        root_key_id,
    };
    let err = seals_at(&b_addr)
        .import_trust_list(import(bytes.clone(), other.key_id().to_string()))
        .await
        .expect_err("another root pinned");
    assert_eq!(
        (err.code(), field_of(&err)),
        (Code::FailedPrecondition, "root_key_id".into())
    );
    let mut flipped = bytes.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    let err = seals_at(&b_addr)
        .import_trust_list(import(flipped, root_id.clone()))
        .await
        .expect_err("altered list");
    assert_eq!(
        (err.code(), field_of(&err)),
        (Code::InvalidArgument, "trust_file".into())
    );

    // A list dated in the future is refused before it is proposed.
    let ahead = TrustList::new("310000", now_ms() + 86_400_000, Vec::new());
    let ahead = TrustFile {
        root: root.public_key(),
        signed_list: sign_trust_list(&root, &ahead).expect("sign"),
    };
    let err = seals_at(&b_addr)
        .import_trust_list(import(ahead.to_bytes(), root_id.clone()))
        .await
        .expect_err("a list from the future");
    let want = (Code::InvalidArgument, "trust_file.issued_at_ms".to_owned());
    assert_eq!((err.code(), field_of(&err)), want);

    let (code, done) = import_trust(&b_eps, &trust1, &root_id);
    assert_eq!(code, 0, "{done}");
    assert_eq!(done["added"].as_u64(), Some(1), "{done}");
    let (_, again) = import_trust(&b_eps, &trust1, &root_id);
    assert_eq!(again["replay"].as_bool(), Some(true), "{again}");
    let (_, lists) = licctl_at(&b_eps, &["trust", "list"]);
    assert_eq!(
        lists["lists"][0]["root_key_id"].as_str(),
        Some(root_id.as_str())
    );
    let (_, keys) = licctl_at(&b_eps, &["keys", "list"]);
    assert_eq!(
        keys["keys"][0]["trusted_via"].as_str(),
        Some(root_id.as_str())
    );
    assert_eq!(keys["keys"][0]["active"].as_bool(), Some(false));

    // A record altered after sealing is refused; the records as sealed are stored as they are.
    let line = std::fs::read_to_string(path("card2.jsonl")).expect("record");
    let name = cards[1].holder.as_ref().expect("holder").name.clone();
    std::fs::write(path("bad.jsonl"), line.replace(&name, "李四")).expect("write");
    let (imported, rejected, why) = import_records(&b_eps, &path("bad.jsonl"), &path("r1"));
    assert_eq!((imported, rejected), (0, 1), "{why}");
    for n in 1..=2 {
        let file = path(&format!("card{n}.jsonl"));
        let (imported, rejected, why) = import_records(&b_eps, &file, &path("r2"));
        assert_eq!((imported, rejected), (1, 0), "card {n}: {why}");
        assert_eq!(seal_verdict(&b_addr, n).await, pb::SealVerdict::Valid);
    }
    let stored = licenses_at(&b_addr)
        .get_by_identifier(pb::GetByIdentifierRequest {
            identifier: cards[0].identifier.clone(),
            ..Default::default()
        })
        .await
        .expect("get")
        .into_inner()
        .license
        .expect("license");
    assert_eq!(stored.seal, cards[0].seal, "the seal is kept as made");

    // B neither seals for A's authority nor stores its licenses unsealed.
    let err = seals_at(&b_addr)
        .register_key(pb::RegisterKeyRequest {
            authority: authority.clone(),
            public_key: other.public_key().to_bytes(),
            valid_from_ms: 0,
        })
        .await
        .expect_err("A's authority registered at B");
    assert_eq!(
        (err.code(), field_of(&err)),
        (Code::FailedPrecondition, "authority".into())
    );
    let err = seals_at(&b_addr)
        .rotate_key(pb::RotateKeyRequest {
            authority: authority.clone(),
            new_public_key: other.public_key().to_bytes(),
            at_ms: 0,
        })
        .await
        .expect_err("A's key rotated at B");
    let want = (Code::FailedPrecondition, "authority".to_owned());
    assert_eq!((err.code(), field_of(&err)), want);
    let err = licenses_at(&b_addr)
        .issue(pb::IssueRequest {
            license: Some(resident_card(3)),
            ..Default::default()
        })
        .await
        .expect_err("unsealed license of a trusted authority");
    assert_eq!(
        (err.code(), field_of(&err)),
        (Code::FailedPrecondition, "seal".into())
    );

    // A list without the key withdraws it from its issue time: earlier seals stay valid.
    let (empty, _) = export_trust("empty.bin", Some("NOBODY"));
    let (_, done) = import_trust(&b_eps, &empty, &root_id);
    assert_eq!(done["withdrawn"].as_u64(), Some(1), "{done}");
    let (_, keys) = licctl_at(&b_eps, &["keys", "list"]);
    let withdrawn_at = keys["keys"][0]["revoked_from_ms"].as_u64().unwrap_or(0);
    assert_eq!(Some(withdrawn_at), done["list"]["issued_at_ms"].as_u64());
    assert_eq!(
        seal_verdict(&b_addr, 1).await,
        pb::SealVerdict::SignedBeforeRevocation
    );

    // A revokes its key from before card 1 was sealed; B sees it with A's next list, and an
    // older list can no longer be imported.
    let signed_at = cards[0].seal.as_ref().expect("seal").signed_at_ms;
    let revoke = pb::RevokeKeyRequest {
        key_id: key.key_id().to_string(),
        revoked_from_ms: signed_at - 1,
    };
    seals_at(&a.node(1).addr)
        .revoke_key(revoke)
        .await
        .expect("revoke at A");
    let (trust2, _) = export_trust("trust2.bin", None);
    let (code, done) = import_trust(&b_eps, &trust2, &root_id);
    assert_eq!(code, 0, "{done}");
    assert_eq!(done["updated"].as_u64(), Some(1), "{done}");
    assert_eq!(
        seal_verdict(&b_addr, 1).await,
        pb::SealVerdict::RevokedAtSigning
    );
    let err = seals_at(&b_addr)
        .import_trust_list(import(bytes, root_id.clone()))
        .await
        .expect_err("an older list");
    assert_eq!(
        (err.code(), field_of(&err)),
        (Code::FailedPrecondition, "trust_file".into())
    );
    assert!(err.message().contains("not newer"), "{}", err.message());
    assert_eq!(
        seal_verdict(&b_addr, 1).await,
        pb::SealVerdict::RevokedAtSigning
    );
}
