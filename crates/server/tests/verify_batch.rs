//! `VerifyBatch` and bounded-staleness reads on real processes: verdicts in order from one
//! state, read-your-writes on a follower at every consistency that promises it, and refusals
//! that name the item and field.

mod common;

use std::time::Duration;

use common::{field_of, licenses_at, resident_card, Cluster};
use licstore_proto::v1 as pb;
use tonic::Code;

fn item(license: &pb::NewLicense) -> pb::VerifyRequest {
    let holder = license.holder.as_ref().expect("holder");
    pb::VerifyRequest {
        holder_kind: holder.kind,
        holder_id: holder.id.clone(),
        type_code: license.type_code.clone(),
        service_item: common::TEST_ITEM.into(),
        purpose: common::TEST_PURPOSE.into(),
        ..Default::default()
    }
}

fn batch(
    items: Vec<pb::VerifyRequest>,
    c: pb::Consistency,
    bound_ms: u32,
) -> pb::VerifyBatchRequest {
    pb::VerifyBatchRequest {
        items,
        consistency: c as i32,
        max_staleness_ms: bound_ms,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdicts_come_in_order_and_followers_read_their_writes() {
    let cluster = Cluster::start(3, &[]);
    let leader = cluster.wait_leader().await;
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");
    let follower_addr = cluster.node(follower).addr.clone();
    common::register_items(&cluster.node(leader).addr, &[common::TEST_ITEM]).await;
    cluster.wait_converged().await;
    let (valid, suspended, absent) = (resident_card(11), resident_card(12), resident_card(13));
    let mut identifiers = Vec::new();
    for l in [&valid, &suspended] {
        let req = pb::IssueRequest {
            request_id: String::new(),
            license: Some(l.clone()),
            lenient_holder_check: false,
            seal_bundle: Vec::new(),
        };
        let issued = cluster.issue_retrying(req).await;
        identifiers.push(issued.license.expect("license").identifier);
    }
    let items = vec![item(&valid), item(&suspended), item(&absent), item(&valid)];
    let table = [
        (pb::Consistency::Linearizable, 0),
        (pb::Consistency::BoundedStaleness, 0),
        (pb::Consistency::BoundedStaleness, 20),
        (pb::Consistency::Serializable, 0),
    ];
    // Suspend the second license through the leader, then wait longer than the tightest bound:
    // every consistency but serializable must now see the suspension on a follower.
    let req = pb::ChangeStatusRequest {
        request_id: String::new(),
        identifier: identifiers[1].clone(),
        op: pb::StatusOp::Suspend as i32,
        reason: String::new(),
    };
    let changed = licenses_at(&cluster.node(leader).addr)
        .change_status(req)
        .await
        .expect("suspend")
        .into_inner();
    tokio::time::sleep(Duration::from_millis(50)).await;
    for (c, bound_ms) in table {
        let resp = licenses_at(&follower_addr)
            .verify_batch(batch(items.clone(), c, bound_ms))
            .await
            .unwrap_or_else(|e| panic!("{c:?}: {e}"))
            .into_inner();
        let verdicts: Vec<i32> = resp.results.iter().map(|r| r.verdict).collect();
        if c != pb::Consistency::Serializable {
            let want = [
                pb::Verdict::Valid,
                pb::Verdict::Suspended,
                pb::Verdict::NotFound,
            ];
            let want: Vec<i32> = [&want[..], &want[..1]]
                .concat()
                .iter()
                .map(|v| *v as i32)
                .collect();
            assert_eq!(verdicts, want, "{c:?} bound {bound_ms}");
            assert!(resp.read_revision >= changed.revision, "{c:?}: stale read");
        }
        assert_eq!(resp.results.len(), 4, "{c:?}");
        assert!(resp
            .results
            .iter()
            .all(|r| r.read_revision == resp.read_revision));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_batches_name_the_item_and_field() {
    let cluster = Cluster::start(1, &[]);
    cluster.wait_leader().await;
    let addr = cluster.node(1).addr.clone();
    let good = item(&resident_card(1));
    let lin = pb::Consistency::Linearizable;
    let mut no_item = good.clone();
    no_item.service_item.clear();
    let mut no_purpose = good.clone();
    no_purpose.purpose.clear();
    let mut bad_holder = good.clone();
    bad_holder.holder_id = "31011519".into();
    let mut own_consistency = good.clone();
    own_consistency.consistency = pb::Consistency::Serializable as i32;
    let mut unknown = batch(vec![good.clone()], lin, 0);
    unknown.consistency = 9;
    let cases = [
        ("too many", batch(vec![good.clone(); 1001], lin, 0), "items"),
        (
            "no service item",
            batch(vec![good.clone(), no_item], lin, 0),
            "items[1].service_item",
        ),
        (
            "no purpose",
            batch(vec![good.clone(), no_purpose], lin, 0),
            "items[1].purpose",
        ),
        (
            "bad holder",
            batch(vec![bad_holder, good.clone()], lin, 0),
            "items[0].holder_id",
        ),
        (
            "item consistency",
            batch(vec![own_consistency], lin, 0),
            "items[0].consistency",
        ),
        ("unknown consistency", unknown, "consistency"),
    ];
    for (name, req, field) in cases {
        let err = licenses_at(&addr).verify_batch(req).await.expect_err(name);
        assert_eq!(
            err.code(),
            Code::InvalidArgument,
            "{name}: {}",
            err.message()
        );
        assert_eq!(field_of(&err), field, "{name}: {}", err.message());
        assert!(
            err.message().starts_with(field),
            "{name}: {}",
            err.message()
        );
    }
    let empty = licenses_at(&addr)
        .verify_batch(batch(Vec::new(), lin, 0))
        .await
        .expect("an empty batch is answered")
        .into_inner();
    assert!(empty.results.is_empty());
}
