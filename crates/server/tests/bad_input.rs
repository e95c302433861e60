//! Bad input on every RPC gets a clear error that names the field, and stores nothing.

mod common;

use common::{citizen_id, digest, field_of, licenses_at, resident_card, Cluster};
use licstore_proto::v1 as pb;
use tonic::Code;

fn issue(f: impl FnOnce(&mut pb::NewLicense)) -> pb::IssueRequest {
    let mut license = resident_card(7);
    f(&mut license);
    pb::IssueRequest {
        request_id: String::new(),
        license: Some(license),
        lenient_holder_check: false,
        seal_bundle: Vec::new(),
    }
}

fn holder_mut(l: &mut pb::NewLicense) -> &mut pb::Holder {
    l.holder.as_mut().expect("holder")
}

/// (case name, request, expected code, expected field)
fn bad_issues() -> Vec<(&'static str, pb::IssueRequest, Code, &'static str)> {
    let wrong_check = {
        let good = citizen_id("310115", "19900101", 123);
        let last = good.chars().last().expect("check char");
        let bad = if last == '1' { '2' } else { '1' };
        format!("{}{}", &good[..17], bad)
    };
    vec![
        (
            "missing license",
            pb::IssueRequest::default(),
            Code::InvalidArgument,
            "license",
        ),
        (
            "unknown type",
            issue(|l| l.type_code = "no-such-type".into()),
            Code::InvalidArgument,
            "license.type_code",
        ),
        (
            "wrong check char",
            issue(|l| holder_mut(l).id = wrong_check.clone()),
            Code::InvalidArgument,
            "license.holder.id",
        ),
        (
            "short holder id",
            issue(|l| holder_mut(l).id = "31011519".into()),
            Code::InvalidArgument,
            "license.holder.id",
        ),
        (
            "birth date that does not exist",
            issue(|l| holder_mut(l).id = citizen_id("310115", "19900230", 1)),
            Code::InvalidArgument,
            "license.holder.id",
        ),
        (
            "unspecified holder kind",
            issue(|l| holder_mut(l).kind = 0),
            Code::InvalidArgument,
            "license.holder.kind",
        ),
        (
            "uscc holder on a citizen type",
            issue(|l| holder_mut(l).kind = pb::HolderKind::Uscc as i32),
            Code::InvalidArgument,
            "license.holder.kind",
        ),
        (
            "empty holder name",
            issue(|l| holder_mut(l).name = String::new()),
            Code::InvalidArgument,
            "license.holder.name",
        ),
        (
            "oversize holder name",
            issue(|l| holder_mut(l).name = "名".repeat(500)),
            Code::InvalidArgument,
            "license.holder.name",
        ),
        (
            "issue date that does not exist",
            issue(|l| l.issue_date = "2021-02-29".into()),
            Code::InvalidArgument,
            "license.issue_date",
        ),
        (
            "issue date in the future",
            issue(|l| l.issue_date = "2999-01-01".into()),
            Code::InvalidArgument,
            "license.issue_date",
        ),
        (
            "validity ends before it starts",
            issue(|l| l.valid_until = "2019-01-01".into()),
            Code::InvalidArgument,
            "license.valid_until",
        ),
        (
            "unknown region",
            issue(|l| l.region_code = "999999".into()),
            Code::InvalidArgument,
            "license.region_code",
        ),
        (
            "bad issuer code",
            issue(|l| l.issuer.as_mut().expect("issuer").code = "12345".into()),
            Code::InvalidArgument,
            "license.issuer.code",
        ),
        (
            "missing required face field",
            issue(|l| {
                l.face.remove("name");
            }),
            Code::InvalidArgument,
            "license.face.name",
        ),
        (
            "unknown face field",
            issue(|l| {
                l.face.insert("shoe_size".into(), "42".into());
            }),
            Code::InvalidArgument,
            "license.face.shoe_size",
        ),
        (
            "oversize face field",
            issue(|l| {
                l.face.insert("address".into(), "路".repeat(1000));
            }),
            Code::InvalidArgument,
            "license.face.address",
        ),
        (
            "face enum value",
            issue(|l| {
                l.face.insert("sex".into(), "x".into());
            }),
            Code::InvalidArgument,
            "license.face.sex",
        ),
        (
            "bad serial",
            issue(|l| l.serial = "no spaces!".into()),
            Code::InvalidArgument,
            "license.serial",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_names_the_bad_field_and_stores_nothing() {
    let cluster = Cluster::start(3, &[]);
    let leader = cluster.wait_leader().await;
    let addr = cluster.node(leader).addr.clone();
    let before = digest(&addr).await.expect("digest");
    let mut api = licenses_at(&addr);

    for (name, req, code, field) in bad_issues() {
        let err = api.issue(req).await.expect_err(name);
        assert_eq!(err.code(), code, "{name}: {}", err.message());
        assert_eq!(field_of(&err), field, "{name}: {}", err.message());
        assert!(
            err.message().starts_with(field),
            "{name}: message {:?} should name {field}",
            err.message()
        );
    }

    let bad_ids = [
        ("not an identifier", "hello"),
        (
            "wrong check character",
            "1.2.156.3005.2.11100000000013338W032.11220000013544541J.2430599.001.G",
        ),
        (
            "wrong root",
            "1.2.840.3005.2.11100000000013338W032.11220000013544541J.2430599.001.F",
        ),
    ];
    for (name, id) in bad_ids {
        let req = pb::ChangeStatusRequest {
            identifier: id.into(),
            op: pb::StatusOp::Suspend as i32,
            ..Default::default()
        };
        let err = api.change_status(req).await.expect_err(name);
        assert_eq!(
            (err.code(), field_of(&err).as_str()),
            (Code::InvalidArgument, "identifier"),
            "{name}"
        );
        let req = pb::GetByIdentifierRequest {
            identifier: id.into(),
            consistency: 0,
            max_staleness_ms: 0,
        };
        let err = api.get_by_identifier(req).await.expect_err(name);
        assert_eq!(
            (err.code(), field_of(&err).as_str()),
            (Code::InvalidArgument, "identifier"),
            "{name}"
        );
        let req = pb::AmendRequest {
            identifier: id.into(),
            license: Some(resident_card(7)),
            ..Default::default()
        };
        let err = api.amend(req).await.expect_err(name);
        assert_eq!(
            (err.code(), field_of(&err).as_str()),
            (Code::InvalidArgument, "identifier"),
            "{name}"
        );
    }

    // A well-formed identifier that is not stored.
    let absent = "1.2.156.3005.2.11100000000013338W032.11220000013544541J.2430599.001.F";
    let req = pb::ChangeStatusRequest {
        identifier: absent.into(),
        op: pb::StatusOp::Suspend as i32,
        ..Default::default()
    };
    assert_eq!(
        api.change_status(req).await.expect_err("absent").code(),
        Code::NotFound
    );
    let req = pb::ChangeStatusRequest {
        identifier: absent.into(),
        op: 0,
        ..Default::default()
    };
    assert_eq!(
        field_of(&api.change_status(req).await.expect_err("no op")),
        "op"
    );
    let req = pb::ChangeStatusRequest {
        identifier: absent.into(),
        op: pb::StatusOp::Other as i32,
        ..Default::default()
    };
    assert_eq!(
        field_of(&api.change_status(req).await.expect_err("no reason")),
        "reason"
    );

    let holder = citizen_id("310115", "19850612", 7);
    let reads: Vec<(&str, pb::GetRequest, &str)> = vec![
        (
            "no holder",
            pb::GetRequest {
                holder_kind: 1,
                type_code: "resident-id-card".into(),
                ..Default::default()
            },
            "holder_id",
        ),
        (
            "no kind",
            pb::GetRequest {
                holder_id: holder.clone(),
                type_code: "resident-id-card".into(),
                ..Default::default()
            },
            "holder_kind",
        ),
        (
            "bad type",
            pb::GetRequest {
                holder_kind: 1,
                holder_id: holder.clone(),
                type_code: "x".into(),
                ..Default::default()
            },
            "type_code",
        ),
        (
            "bad consistency",
            pb::GetRequest {
                holder_kind: 1,
                holder_id: holder.clone(),
                type_code: "resident-id-card".into(),
                consistency: 9,
                max_staleness_ms: 0,
            },
            "consistency",
        ),
    ];
    for (name, req, field) in reads {
        let err = api.get(req).await.expect_err(name);
        assert_eq!(
            (err.code(), field_of(&err).as_str()),
            (Code::InvalidArgument, field),
            "{name}: {}",
            err.message()
        );
    }
    let req = pb::VerifyRequest {
        holder_kind: 1,
        holder_id: holder.clone(),
        type_code: "resident-id-card".into(),
        purpose: "test".into(),
        ..Default::default()
    };
    assert_eq!(
        field_of(&api.verify(req).await.expect_err("no service item")),
        "service_item"
    );
    let req = pb::ListByHolderRequest {
        holder_kind: 2,
        holder_id: holder.clone(),
        consistency: 0,
        max_staleness_ms: 0,
    };
    assert_eq!(
        field_of(
            &api.list_by_holder(req)
                .await
                .expect_err("citizen id as uscc")
        ),
        "holder_id"
    );

    // Queries, watches and compaction name the field at fault.
    let q = pb::QueryRequest::default;
    let queries = [
        (
            "number without type",
            pb::QueryRequest {
                license_number: "N1".into(),
                ..q()
            },
            "license_number",
        ),
        (
            "unknown type",
            pb::QueryRequest {
                type_code: "no-such".into(),
                ..q()
            },
            "type_code",
        ),
        (
            "bad region",
            pb::QueryRequest {
                region: "99".into(),
                ..q()
            },
            "region",
        ),
        (
            "odd region",
            pb::QueryRequest {
                region: "310".into(),
                ..q()
            },
            "region",
        ),
        (
            "bad date",
            pb::QueryRequest {
                expires_before: "2026-02-30".into(),
                ..q()
            },
            "expires_before",
        ),
        (
            "unspecified status",
            pb::QueryRequest {
                statuses: vec![0],
                ..q()
            },
            "statuses",
        ),
        (
            "unknown status",
            pb::QueryRequest {
                statuses: vec![42],
                ..q()
            },
            "statuses",
        ),
        (
            "huge page",
            pb::QueryRequest {
                page_size: 5000,
                ..q()
            },
            "page_size",
        ),
        (
            "forged cursor",
            pb::QueryRequest {
                cursor: "c1.zz".into(),
                ..q()
            },
            "cursor",
        ),
        (
            "cursor of another query",
            pb::QueryRequest {
                statuses: vec![1],
                cursor: "c1.74".into(),
                ..q()
            },
            "cursor",
        ),
        (
            "consistency",
            pb::QueryRequest {
                consistency: 9,
                ..q()
            },
            "consistency",
        ),
        (
            "count with a cursor",
            pb::QueryRequest {
                count_only: true,
                cursor: "c1.73".into(),
                ..q()
            },
            "cursor",
        ),
        (
            "blank issuer",
            pb::QueryRequest {
                issuer_code: "  ".into(),
                ..q()
            },
            "issuer_code",
        ),
        (
            "year out of range",
            pb::QueryRequest {
                expires_before: "9999-12-31".into(),
                ..q()
            },
            "expires_before",
        ),
    ];
    for (name, req, field) in queries {
        let err = api.query(req).await.expect_err(name);
        assert_eq!(
            (err.code(), field_of(&err).as_str()),
            (Code::InvalidArgument, field),
            "{name}: {}",
            err.message()
        );
    }
    let w = pb::WatchRequest::default;
    let watches = [
        (
            "too many types",
            pb::WatchRequest {
                type_codes: vec!["resident-id-card".into(); 65],
                ..w()
            },
            "type_codes",
        ),
        (
            "long issuer",
            pb::WatchRequest {
                issuer_codes: vec!["X".repeat(200)],
                ..w()
            },
            "issuer_codes[0]",
        ),
        (
            "fast progress",
            pb::WatchRequest {
                progress_interval_ms: 10,
                ..w()
            },
            "progress_interval_ms",
        ),
        (
            "unknown type",
            pb::WatchRequest {
                type_codes: vec!["x".into()],
                ..w()
            },
            "type_codes[0]",
        ),
        (
            "holder without kind",
            pb::WatchRequest {
                holders: vec![pb::HolderRef {
                    kind: 0,
                    id: holder.clone(),
                }],
                ..w()
            },
            "holders[0].kind",
        ),
        (
            "unspecified status",
            pb::WatchRequest {
                statuses: vec![0],
                ..w()
            },
            "statuses",
        ),
    ];
    for (name, req, field) in watches {
        let err = api.watch(req).await.expect_err(name);
        assert_eq!(
            (err.code(), field_of(&err).as_str()),
            (Code::InvalidArgument, field),
            "{name}: {}",
            err.message()
        );
    }
    let mut admin = common::cluster_at(&addr);
    for (name, revision) in [("zero", 0), ("beyond the log", 1 << 40)] {
        let err = admin
            .compact(pb::CompactRequest { revision })
            .await
            .expect_err(name);
        assert_eq!(
            (err.code(), field_of(&err).as_str()),
            (Code::InvalidArgument, "revision"),
            "{name}"
        );
    }

    // Import reports each bad record and stores none of them.
    let records = bad_issues()
        .into_iter()
        .map(|(_, req, _, _)| pb::ImportRecord {
            license: req.license,
            ..Default::default()
        });
    let summary = api
        .import(tokio_stream::iter(records.collect::<Vec<_>>()))
        .await
        .expect("import")
        .into_inner();
    assert_eq!(summary.imported, 0);
    assert_eq!(summary.rejected, summary.received);
    assert!(
        summary
            .rejections
            .iter()
            .all(|r| !r.field.is_empty() && !r.reason.is_empty()),
        "{summary:?}"
    );

    // The digest covers the audit trail too, which records every refused call: only the
    // licenses are compared.
    let after = digest(&addr).await.expect("digest");
    assert_eq!(
        (before.records, after.records),
        (0, 0),
        "bad input stored a license"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_machine_over_grpc() {
    let cluster = Cluster::start(1, &[]);
    let leader = cluster.wait_leader().await;
    let mut api = licenses_at(&cluster.node(leader).addr);
    common::register_items(&cluster.node(leader).addr, &[common::TEST_ITEM]).await;
    let issued = api.issue(issue(|_| {})).await.expect("issue").into_inner();
    let id = issued.license.expect("license").identifier;
    let change = |op: pb::StatusOp| pb::ChangeStatusRequest {
        identifier: id.clone(),
        op: op as i32,
        ..Default::default()
    };
    let verify = || pb::VerifyRequest {
        holder_kind: 1,
        holder_id: citizen_id("310115", "19850612", 7),
        type_code: "resident-id-card".into(),
        service_item: common::TEST_ITEM.into(),
        purpose: common::TEST_PURPOSE.into(),
        ..Default::default()
    };
    assert_eq!(
        api.verify(verify())
            .await
            .expect("verify")
            .into_inner()
            .verdict,
        pb::Verdict::Valid as i32
    );
    api.change_status(change(pb::StatusOp::Suspend))
        .await
        .expect("suspend");
    assert_eq!(
        api.verify(verify())
            .await
            .expect("verify")
            .into_inner()
            .verdict,
        pb::Verdict::Suspended as i32
    );
    api.change_status(change(pb::StatusOp::LiftSuspension))
        .await
        .expect("lift");

    // An amendment creates version 2, links the old identifier, and retires version 1.
    let mut next = resident_card(7);
    next.face.insert("address".into(), "上海市徐汇区".into());
    let req = pb::AmendRequest {
        identifier: id.clone(),
        license: Some(next),
        ..Default::default()
    };
    let amended = api
        .amend(req)
        .await
        .expect("amend")
        .into_inner()
        .license
        .expect("license");
    assert_eq!(amended.version, 2);
    assert_eq!(amended.replaces, id);
    let req = pb::GetByIdentifierRequest {
        identifier: id.clone(),
        consistency: 0,
        max_staleness_ms: 0,
    };
    let old = api
        .get_by_identifier(req)
        .await
        .expect("old version")
        .into_inner();
    assert_eq!(
        old.license.expect("license").superseded_by,
        amended.identifier
    );
    let err = api
        .change_status(change(pb::StatusOp::Revoke))
        .await
        .expect_err("superseded");
    assert_eq!(err.code(), Code::FailedPrecondition, "{}", err.message());
    let id = amended.identifier.clone();
    let change = |op: pb::StatusOp| pb::ChangeStatusRequest {
        identifier: id.clone(),
        op: op as i32,
        ..Default::default()
    };
    api.change_status(change(pb::StatusOp::Revoke))
        .await
        .expect("revoke");
    let err = api
        .change_status(change(pb::StatusOp::LiftSuspension))
        .await
        .expect_err("final state");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("revoked") && err.message().contains("valid"),
        "{}",
        err.message()
    );
    assert_eq!(
        api.verify(verify())
            .await
            .expect("verify")
            .into_inner()
            .verdict,
        pb::Verdict::Revoked as i32
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reused_request_ids_and_member_addresses_are_refused() {
    let cluster = Cluster::start(1, &[]);
    let leader = cluster.wait_leader().await;
    let addr = cluster.node(leader).addr.clone();
    let mut api = licenses_at(&addr);
    let mut first = issue(|_| {});
    first.request_id = "same-id".into();
    api.issue(first.clone()).await.expect("first issue");
    let again = api.issue(first).await.expect("retry").into_inner();
    assert!(
        again.duplicate,
        "a retry with the same content is a duplicate"
    );

    let mut other = pb::IssueRequest {
        license: Some(resident_card(8)),
        ..Default::default()
    };
    other.request_id = "same-id".into();
    let err = api.issue(other).await.expect_err("same id, other content");
    assert_eq!(
        (err.code(), field_of(&err).as_str()),
        (Code::InvalidArgument, "request_id")
    );

    let mut admin = common::cluster_at(&addr);
    let req = pb::AddLearnerRequest {
        node_id: 9,
        addr: addr.clone(),
        blocking: false,
    };
    let err = admin.add_learner(req).await.expect_err("address in use");
    assert_eq!(
        (err.code(), field_of(&err).as_str()),
        (Code::AlreadyExists, "addr")
    );
    let req = pb::AddLearnerRequest {
        node_id: leader,
        addr: "127.0.0.1:1".into(),
        blocking: false,
    };
    let err = admin.add_learner(req).await.expect_err("id in use");
    assert_eq!(
        (err.code(), field_of(&err).as_str()),
        (Code::AlreadyExists, "node_id")
    );
    let err = admin
        .promote(pb::PromoteRequest { node_id: 99 })
        .await
        .expect_err("no member");
    assert_eq!(
        (err.code(), field_of(&err).as_str()),
        (Code::NotFound, "node_id")
    );
    let err = admin
        .remove_member(pb::RemoveMemberRequest { node_id: 99 })
        .await;
    assert_eq!(err.expect_err("no member").code(), Code::NotFound);
}

/// A Verify of resident card 7 for `item`, of type `type_code`, stating `purpose`.
fn verify_for(item: &str, type_code: &str, purpose: &str) -> pb::VerifyRequest {
    pb::VerifyRequest {
        holder_kind: 1,
        holder_id: citizen_id("310115", "19850612", 7),
        type_code: type_code.into(),
        service_item: item.into(),
        purpose: purpose.into(),
        ..Default::default()
    }
}

fn service_item(name: &str, types: &[&str]) -> pb::PutServiceItemRequest {
    pb::PutServiceItemRequest {
        item: Some(pb::ServiceItem {
            name: name.into(),
            department: "市档案局".into(),
            type_codes: types.iter().map(|t| (*t).to_owned()).collect(),
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifications_need_a_registered_item_that_accepts_the_type_and_a_purpose() {
    let cluster = Cluster::start(1, &[]);
    let leader = cluster.wait_leader().await;
    let addr = cluster.node(leader).addr.clone();
    let mut api = licenses_at(&addr);
    let mut policies = common::policies_at(&addr);
    let card = "resident-id-card";
    let births = "birth-medical-certificate";
    policies
        .put_service_item(service_item("婚姻登记档案查询", &[card]))
        .await
        .expect("register");
    api.issue(issue(|_| {})).await.expect("issue");
    let long = "x".repeat(257);
    let verifications = [
        (
            "valid",
            verify_for("婚姻登记档案查询", card, "案卷 2026-118"),
            None,
        ),
        (
            "no purpose",
            verify_for("婚姻登记档案查询", card, " "),
            Some((Code::InvalidArgument, "purpose")),
        ),
        (
            "control in purpose",
            verify_for("婚姻登记档案查询", card, "a\u{1b}b"),
            Some((Code::InvalidArgument, "purpose")),
        ),
        (
            "long purpose",
            verify_for("婚姻登记档案查询", card, &long),
            Some((Code::InvalidArgument, "purpose")),
        ),
        (
            "unregistered item",
            verify_for("户口迁移", card, "p"),
            Some((Code::FailedPrecondition, "service_item")),
        ),
        (
            "type not accepted",
            verify_for("婚姻登记档案查询", births, "p"),
            Some((Code::FailedPrecondition, "type_code")),
        ),
    ];
    for (case, req, refused) in verifications {
        let batch = pb::VerifyBatchRequest {
            items: vec![verify_for("婚姻登记档案查询", card, "p"), req.clone()],
            ..Default::default()
        };
        match (api.verify(req).await, refused) {
            (Ok(r), None) => assert_eq!(r.into_inner().verdict, pb::Verdict::Valid as i32),
            (Err(e), Some((code, field))) => {
                assert_eq!(
                    (e.code(), field_of(&e).as_str()),
                    (code, field),
                    "{case}: {e:?}"
                );
                let e = api.verify_batch(batch).await.expect_err(case);
                let in_batch = format!("items[1].{field}");
                assert_eq!((e.code(), field_of(&e)), (code, in_batch), "{case}: {e:?}");
            }
            (got, _) => panic!("{case}: {got:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_item_changes_name_the_bad_field() {
    let cluster = Cluster::start(1, &[]);
    let leader = cluster.wait_leader().await;
    let addr = cluster.node(leader).addr.clone();
    let mut policies = common::policies_at(&addr);
    let card = "resident-id-card";
    policies
        .put_service_item(service_item("户口迁移", &[card]))
        .await
        .expect("register");
    let puts = [
        ("no item", pb::PutServiceItemRequest { item: None }, "item"),
        ("no name", service_item(" ", &[card]), "item.name"),
        ("no type", service_item("x", &[]), "item.type_codes"),
        (
            "unknown type",
            service_item("x", &[card, "driving-licence"]),
            "item.type_codes[1]",
        ),
    ];
    for (case, req, field) in puts {
        let e = policies.put_service_item(req).await.expect_err(case);
        let got = (e.code(), field_of(&e));
        assert_eq!(
            got,
            (Code::InvalidArgument, field.to_owned()),
            "{case}: {e:?}"
        );
    }
    let rule = |item: &str| pb::SetDisclosureRequest {
        rule: Some(pb::DisclosureRule {
            service_item: item.into(),
            type_code: card.into(),
            fields: vec!["@holder.name".into()],
        }),
    };
    let e = policies
        .set_disclosure(rule("婚姻登记"))
        .await
        .expect_err("unregistered item");
    let got = (e.code(), field_of(&e));
    assert_eq!(
        got,
        (Code::FailedPrecondition, "rule.service_item".to_owned())
    );
    policies
        .set_disclosure(rule("户口迁移"))
        .await
        .expect("rule");
    let counter = pb::Principal {
        name: "counter".into(),
        roles: vec!["verifier".into()],
        service_items: vec!["户口迁移".into()],
        ..Default::default()
    };
    common::access_at(&addr)
        .put_principal(pb::PutPrincipalRequest {
            principal: Some(counter),
        })
        .await
        .expect("verifier");
    let remove = |name: &str| pb::RemoveServiceItemRequest { name: name.into() };
    let e = policies
        .remove_service_item(remove("户口迁移"))
        .await
        .expect_err("named by a principal");
    assert_eq!(
        (e.code(), field_of(&e)),
        (Code::FailedPrecondition, "name".into())
    );
    assert!(e.message().contains("counter"), "{e:?}");
    let e = policies
        .remove_service_item(remove("婚姻登记"))
        .await
        .expect_err("unknown");
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    let listed = policies
        .list_service_items(pb::ListServiceItemsRequest::default())
        .await
        .expect("list")
        .into_inner();
    let names: Vec<&str> = listed.items.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["户口迁移"]);
}
