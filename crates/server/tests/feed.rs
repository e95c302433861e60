//! The change feed, queries and expiry on real `licstored` processes: watches stay ordered,
//! gapless and duplicate-free across a leader kill and a follower restart, resume from any
//! revision, report compaction, and see the sweeper's expiries from another node.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{licenses_at, resident_card, status, Cluster, WAIT};
use futures::StreamExt;
use licstore_proto::v1 as pb;
use licstore_proto::v1::cluster_client::ClusterClient;
use licstore_proto::v1::licenses_client::LicensesClient;
use tonic::transport::Channel;
use tonic::Status;

/// A channel without a request timeout, for streams that live as long as the test.
fn stream_client(addr: &str) -> LicensesClient<Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect_timeout(Duration::from_millis(500))
        .connect_lazy();
    LicensesClient::new(channel)
}

/// Events seen by a watcher and how far its feed has reached.
#[derive(Default)]
struct Seen {
    events: Vec<pb::Event>,
    progress: u64,
    reconnects: u32,
}

/// Watches from `from` and keeps going: a failed stream is re-opened on the next address from
/// the revision after the last progress, as a client must. Runs until `stop` is set.
fn spawn_watcher(
    addrs: Vec<String>,
    from: u64,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut next = from;
        let mut at = 0usize;
        let deadline = Instant::now() + 4 * WAIT;
        while !stop.load(std::sync::atomic::Ordering::SeqCst) && Instant::now() < deadline {
            let req = pb::WatchRequest {
                from_revision: next,
                progress_interval_ms: 200,
                ..Default::default()
            };
            let addr = &addrs[at % addrs.len()];
            let mut stream = match stream_client(addr).watch(req).await {
                Ok(s) => s.into_inner(),
                Err(_) => {
                    at += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            loop {
                let item = tokio::time::timeout(Duration::from_millis(500), stream.next()).await;
                if stop.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                match item {
                    Ok(Some(Ok(r))) => {
                        let mut s = seen.lock().expect("lock");
                        s.events.extend(r.events);
                        s.progress = r.progress_revision;
                        next = r.progress_revision + 1;
                    }
                    Ok(Some(Err(_))) | Ok(None) => break,
                    // Quiet for longer than the progress interval: the node may be frozen.
                    Err(_) => break,
                }
            }
            seen.lock().expect("lock").reconnects += 1;
            at += 1;
        }
    })
}

/// Reads the whole feed from `from` on one node until it has reached `until`.
async fn read_feed(addr: &str, from: u64, until: u64) -> Vec<pb::Event> {
    let req = pb::WatchRequest {
        from_revision: from,
        progress_interval_ms: 100,
        ..Default::default()
    };
    let mut stream = stream_client(addr)
        .watch(req)
        .await
        .expect("watch")
        .into_inner();
    let mut out = Vec::new();
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        let r = tokio::time::timeout(WAIT, stream.next())
            .await
            .expect("a response")
            .expect("stream open")
            .expect("response");
        out.extend(r.events);
        if r.progress_revision >= until {
            return out;
        }
    }
    panic!("feed on {addr} did not reach {until}");
}

/// Cluster.Compact sent to `addr`, retried while there is no leader.
async fn compact_retrying(addr: &str, revision: u64) -> Result<pb::CompactResponse, Status> {
    let mut client = licstore_client::Client::new(&[addr.to_string()]).expect("client");
    let req = pb::CompactRequest { revision };
    match client
        .retrying(|ch| async move { ClusterClient::new(ch).compact(req).await })
        .await
    {
        Ok(r) => Ok(r),
        Err(licstore_client::ClientError::Status(s)) => Err(s),
        Err(e) => panic!("client: {e}"),
    }
}

fn keys(events: &[pb::Event]) -> Vec<(u64, u32)> {
    events.iter().map(|e| (e.revision, e.seq)).collect()
}

fn issue_req(n: u32) -> pb::IssueRequest {
    pb::IssueRequest {
        request_id: format!("feed-{n}"),
        license: Some(resident_card(n)),
        lenient_holder_check: false,
        seal_bundle: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_is_gapless_across_a_leader_kill_and_a_follower_restart() {
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.wait_leader().await;
    let follower = (1..=3).find(|id| *id != leader).expect("follower");
    // The watcher starts on the follower that will be restarted; it falls over to the others.
    let first = cluster.node(follower).addr.clone();
    let mut addrs = vec![first.clone()];
    addrs.extend(cluster.endpoints().into_iter().filter(|a| *a != first));
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = spawn_watcher(addrs, 1, seen.clone(), stop.clone());

    let mut client = cluster.client();
    let mut acked: Vec<(u64, String)> = Vec::new();
    let mut suspended = 0u64;
    for n in 0..120u32 {
        match n {
            40 => cluster.kill(leader),
            70 => cluster.restart(leader),
            80 => cluster.kill(follower),
            100 => cluster.restart(follower),
            _ => {}
        }
        let req = issue_req(n);
        let issued = client
            .retrying(|ch| {
                let req = req.clone();
                async move { LicensesClient::new(ch).issue(req).await }
            })
            .await;
        let Ok(issued) = issued else { continue };
        let license = issued.license.expect("license");
        acked.push((issued.revision, license.identifier.clone()));
        if n % 5 == 0 {
            let req = pb::ChangeStatusRequest {
                request_id: format!("feed-s-{n}"),
                identifier: license.identifier.clone(),
                op: pb::StatusOp::Suspend as i32,
                reason: String::new(),
            };
            let changed = client
                .retrying(|ch| {
                    let req = req.clone();
                    async move { LicensesClient::new(ch).change_status(req).await }
                })
                .await;
            if let Ok(c) = changed {
                acked.push((c.revision, license.identifier.clone()));
                suspended += 1;
            }
        }
    }
    assert!(
        acked.len() >= 100,
        "only {} writes acknowledged",
        acked.len()
    );
    let converged = cluster.wait_converged().await;
    let end = converged.applied_index;
    let deadline = Instant::now() + WAIT;
    while seen.lock().expect("lock").progress < end {
        assert!(
            Instant::now() < deadline,
            "watcher never reached revision {end}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    watcher.await.expect("watcher");

    let seen = std::mem::take(&mut *seen.lock().expect("lock"));
    assert!(seen.reconnects >= 1, "the stream was never cut");
    let got = keys(&seen.events);
    assert!(
        got.windows(2).all(|w| w[0] < w[1]),
        "out of order or duplicated: {got:?}"
    );
    for (revision, identifier) in &acked {
        let found = seen
            .events
            .iter()
            .any(|e| e.revision == *revision && e.identifier == *identifier);
        assert!(
            found,
            "acknowledged write at {revision} ({identifier}) missing from the feed"
        );
    }
    // The same feed, read in one go from the restarted follower, is identical: no gaps.
    let whole = read_feed(&cluster.node(follower).addr, 1, end).await;
    let whole: Vec<pb::Event> = whole.into_iter().filter(|e| e.revision <= end).collect();
    let seen_upto: Vec<pb::Event> = seen
        .events
        .iter()
        .filter(|e| e.revision <= end)
        .cloned()
        .collect();
    assert_eq!(seen_upto, whole);
    // Resuming from any revision yields exactly the suffix, on any node.
    for (i, pick) in [0usize, whole.len() / 3, whole.len() - 1]
        .into_iter()
        .enumerate()
    {
        let from = whole[pick].revision;
        let addr = &cluster.endpoints()[i % 3];
        let suffix = read_feed(addr, from, end).await;
        let want: Vec<&pb::Event> = whole.iter().filter(|e| e.revision >= from).collect();
        let got: Vec<&pb::Event> = suffix.iter().filter(|e| e.revision <= end).collect();
        assert_eq!(got, want, "resume from {from} on {addr}");
    }

    // The status index agrees with the writes, and says which index it used.
    let req = pb::QueryRequest {
        statuses: vec![pb::LicenseStatus::Suspended as i32],
        count_only: true,
        ..Default::default()
    };
    let addr = cluster.node(follower).addr.clone();
    let counted = licenses_at(&addr)
        .query(req)
        .await
        .expect("query")
        .into_inner();
    assert_eq!(counted.count, suspended);
    assert_eq!(counted.plan.expect("plan").index, "status_type");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_revision_is_refused_with_the_oldest_one_available() {
    let cluster = Cluster::start(3, &[]);
    let leader = cluster.wait_leader().await;
    let mut revisions = Vec::new();
    for n in 0..10 {
        revisions.push(cluster.issue_retrying(issue_req(n)).await.revision);
    }
    let target = revisions[5];
    let follower = cluster
        .nodes
        .iter()
        .find(|p| p.id != leader)
        .expect("follower");
    let compacted = compact_retrying(&follower.addr, target)
        .await
        .expect("compact through a follower");
    assert_eq!(compacted.compacted_revision, target);
    cluster.wait_converged().await;
    for p in &cluster.nodes {
        let s = status(&p.addr).await.expect("status");
        assert_eq!(s.compacted_revision, target, "node {}", p.id);
        let req = pb::WatchRequest {
            from_revision: revisions[2],
            ..Default::default()
        };
        let err = stream_client(&p.addr)
            .watch(req)
            .await
            .expect_err("compacted");
        assert_eq!(err.code(), tonic::Code::OutOfRange, "{err:?}");
        assert!(
            err.message().contains("revision compacted"),
            "{}",
            err.message()
        );
        let oldest = err
            .metadata()
            .get("licstore-compacted-revision")
            .expect("metadata");
        assert_eq!(oldest.to_str().expect("ascii"), target.to_string());
        let events = read_feed(&p.addr, target, revisions[9]).await;
        assert_eq!(events.first().map(|e| e.revision), Some(target));
        assert_eq!(events.len(), 5);
    }
    let beyond = compact_retrying(&follower.addr, 1 << 40)
        .await
        .expect_err("beyond the log");
    assert_eq!(beyond.code(), tonic::Code::InvalidArgument);
    assert!(
        beyond.message().starts_with("revision: "),
        "{}",
        beyond.message()
    );
}

/// Yesterday in Asia/Shanghai, as the server counts days.
fn yesterday() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    licstore_model::Date::from_unix_secs(now + 8 * 3600 - 24 * 3600).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_expires_a_lapsed_license_and_another_node_sees_it() {
    // First without sweeping: verification already says expired, the record still says valid.
    let no_sweep = ["--expiry-sweep-ms", "3600000"];
    let mut cluster = Cluster::start(3, &no_sweep);
    let leader = cluster.wait_leader().await;
    let addr = cluster.node(leader).addr.clone();
    common::register_items(&addr, &[common::TEST_ITEM]).await;
    let mut card = resident_card(7);
    card.valid_from = yesterday();
    card.valid_until = yesterday();
    let req = pb::IssueRequest {
        request_id: "short".into(),
        license: Some(card.clone()),
        lenient_holder_check: false,
        seal_bundle: Vec::new(),
    };
    let issued = cluster.issue_retrying(req).await;
    let identifier = issued.license.expect("license").identifier;
    let holder = card.holder.clone().expect("holder");
    let verify = pb::VerifyRequest {
        holder_kind: holder.kind,
        holder_id: holder.id.clone(),
        type_code: card.type_code.clone(),
        service_item: common::TEST_ITEM.into(),
        purpose: common::TEST_PURPOSE.into(),
        ..Default::default()
    };
    let v = licenses_at(&addr)
        .verify(verify.clone())
        .await
        .expect("verify")
        .into_inner();
    assert_eq!((v.valid, v.verdict), (false, pb::Verdict::Expired as i32));
    let req = pb::GetByIdentifierRequest {
        identifier: identifier.clone(),
        consistency: 0,
        max_staleness_ms: 0,
    };
    let stored = licenses_at(&addr)
        .get_by_identifier(req)
        .await
        .expect("get")
        .into_inner();
    let stored = stored.license.expect("license");
    assert_eq!(
        stored.status,
        pb::LicenseStatus::Valid as i32,
        "not yet swept"
    );

    // Restart every node with a fast sweeper; watch for the expiry on a follower.
    for p in cluster.nodes.iter_mut() {
        p.extra_args = vec!["--expiry-sweep-ms".into(), "300".into()];
    }
    for id in 1..=3 {
        cluster.kill(id);
        cluster.restart(id);
    }
    let leader = cluster.wait_leader().await;
    let watcher_addr = cluster
        .nodes
        .iter()
        .find(|p| p.id != leader)
        .expect("f")
        .addr
        .clone();
    let req = pb::WatchRequest {
        from_revision: issued.revision,
        statuses: vec![pb::LicenseStatus::Expired as i32],
        ..Default::default()
    };
    let mut stream = stream_client(&watcher_addr)
        .watch(req)
        .await
        .expect("watch")
        .into_inner();
    let deadline = Instant::now() + WAIT;
    let event = loop {
        assert!(Instant::now() < deadline, "no expiry event within {WAIT:?}");
        let r = tokio::time::timeout(WAIT, stream.next())
            .await
            .expect("response");
        let r = r.expect("stream open").expect("response");
        if let Some(e) = r.events.into_iter().next() {
            break e;
        }
    };
    assert_eq!(event.identifier, identifier);
    assert_eq!(event.op, pb::EventOp::Expire as i32);
    assert_eq!(event.old_status, pb::LicenseStatus::Valid as i32);
    assert!(event.revision > issued.revision);
    cluster.wait_converged().await;
    for p in &cluster.nodes {
        let req = pb::GetByIdentifierRequest {
            identifier: identifier.clone(),
            consistency: pb::Consistency::Serializable as i32,
            max_staleness_ms: 0,
        };
        let got = licenses_at(&p.addr)
            .get_by_identifier(req)
            .await
            .expect("get");
        let got = got.into_inner().license.expect("license");
        assert_eq!(
            got.status,
            pb::LicenseStatus::Expired as i32,
            "node {}",
            p.id
        );
        assert_eq!(got.revision, event.revision);
    }
    let q = pb::QueryRequest {
        expires_before: "2099-01-01".into(),
        count_only: true,
        ..Default::default()
    };
    let live = licenses_at(&addr)
        .query(q)
        .await
        .expect("query")
        .into_inner();
    assert_eq!(live.count, 0, "an expired license leaves the expiry index");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_compacts_old_events_on_every_node() {
    let cluster = Cluster::start(3, &["--event-retention-secs", "1"]);
    cluster.wait_leader().await;
    let first = cluster.issue_retrying(issue_req(1)).await.revision;
    let deadline = Instant::now() + WAIT;
    for p in &cluster.nodes {
        loop {
            let compacted = status(&p.addr).await.map(|s| s.compacted_revision);
            if compacted.is_some_and(|c| c > first) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {} never compacted past {first}",
                p.id
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let req = pb::WatchRequest {
            from_revision: first,
            ..Default::default()
        };
        let err = stream_client(&p.addr)
            .watch(req)
            .await
            .expect_err("compacted");
        assert_eq!(err.code(), tonic::Code::OutOfRange, "node {}", p.id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_reads_one_state_across_its_pages() {
    let cluster = Cluster::start(3, &[]);
    cluster.wait_leader().await;
    let mut ids = Vec::new();
    for n in 0..12 {
        let issued = cluster.issue_retrying(issue_req(n)).await;
        ids.push(issued.license.expect("license").identifier);
    }
    let addr = cluster.endpoints()[1].clone();
    let query = |cursor: String| pb::QueryRequest {
        statuses: vec![
            pb::LicenseStatus::Valid as i32,
            pb::LicenseStatus::Suspended as i32,
        ],
        page_size: 5,
        cursor,
        ..Default::default()
    };
    let first = licenses_at(&addr)
        .query(query(String::new()))
        .await
        .expect("page 1");
    let first = first.into_inner();
    // Between pages, records move between the two status ranges and leave them.
    for (n, id) in ids.iter().enumerate() {
        let op = if n % 2 == 0 {
            pb::StatusOp::Suspend
        } else {
            pb::StatusOp::Revoke
        };
        let req = pb::ChangeStatusRequest {
            request_id: format!("list-{n}"),
            identifier: id.clone(),
            op: op as i32,
            reason: String::new(),
        };
        cluster
            .client()
            .retrying(|ch| {
                let req = req.clone();
                async move { LicensesClient::new(ch).change_status(req).await }
            })
            .await
            .expect("status change");
    }
    let elsewhere = cluster.endpoints()[2].clone();
    let err = licenses_at(&elsewhere)
        .query(query(first.next_cursor.clone()))
        .await
        .expect_err("a cursor belongs to its node");
    assert_eq!(
        err.code(),
        tonic::Code::FailedPrecondition,
        "{}",
        err.message()
    );
    let mut got: Vec<String> = first.licenses.into_iter().map(|l| l.identifier).collect();
    let mut cursor = first.next_cursor;
    while !cursor.is_empty() {
        let page = licenses_at(&addr)
            .query(query(cursor))
            .await
            .expect("page")
            .into_inner();
        assert_eq!(
            page.read_revision, first.read_revision,
            "one state for all pages"
        );
        got.extend(page.licenses.into_iter().map(|l| l.identifier));
        cursor = page.next_cursor;
    }
    got.sort();
    ids.sort();
    assert_eq!(
        got, ids,
        "every license valid when the listing began, exactly once"
    );
}
