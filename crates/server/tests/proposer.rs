//! Group proposals on real nodes: many concurrent writes, some sent to a follower and forwarded,
//! each get their own answer and their own log entry, and the leader hands them to Raft in
//! fewer messages than there were writes.

mod common;

use std::collections::BTreeSet;

use common::{licenses_at, resident_card, scrape, total, Cluster};
use licstore_proto::v1 as pb;

const WRITES: u32 = 96;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_are_grouped_and_answered_one_by_one() {
    let cluster = Cluster::start(3, &[]);
    let leader = cluster.wait_leader().await;
    let follower = cluster
        .nodes
        .iter()
        .find(|p| p.id != leader)
        .expect("follower");
    let at_leader = licenses_at(&cluster.node(leader).addr);
    let at_follower = licenses_at(&follower.addr);

    let mut calls = Vec::new();
    for n in 0..WRITES {
        // Every third write goes through the follower, which forwards it to the leader.
        let mut client = if n % 3 == 0 {
            at_follower.clone()
        } else {
            at_leader.clone()
        };
        calls.push(tokio::spawn(async move {
            let req = pb::IssueRequest {
                request_id: format!("group-{n}"),
                license: Some(resident_card(n)),
                lenient_holder_check: false,
                seal_bundle: Vec::new(),
            };
            (n, client.issue(req).await)
        }));
    }
    let mut identifiers = BTreeSet::new();
    let mut revisions = BTreeSet::new();
    for call in calls {
        let (n, answer) = call.await.expect("task");
        let written = answer
            .unwrap_or_else(|e| panic!("write {n}: {e}"))
            .into_inner();
        let license = written.license.expect("license");
        let want = resident_card(n).holder.expect("holder").id;
        let got = license.holder.as_ref().expect("holder").id.clone();
        assert_eq!(
            got, want,
            "write {n} was answered with another write's record"
        );
        identifiers.insert(license.identifier);
        revisions.insert(written.revision);
    }
    assert_eq!(
        identifiers.len(),
        WRITES as usize,
        "identifiers are distinct"
    );
    assert_eq!(
        revisions.len(),
        WRITES as usize,
        "each write is its own log entry"
    );

    let metrics = scrape(&cluster.node(leader).metrics_addr).await;
    let groups = total(&metrics, "licstore_server_proposal_batch_size_count", &[]);
    let commands = total(&metrics, "licstore_server_proposal_batch_size_sum", &[]);
    assert!(
        commands >= f64::from(WRITES),
        "{commands} commands proposed"
    );
    assert!(
        groups < f64::from(WRITES),
        "{WRITES} concurrent writes went to Raft in {groups} groups"
    );
}
