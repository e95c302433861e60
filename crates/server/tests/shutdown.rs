//! SIGTERM stops a node cleanly: it exits 0 within the drain deadline even with a watch stream
//! open, and it restarts from its data directory and catches up.

mod common;

use std::time::{Duration, Instant};

use common::{licenses_at, resident_card, Cluster};
use licstore_proto::v1 as pb;

fn issue_req(request_id: &str, n: u32) -> pb::IssueRequest {
    pb::IssueRequest {
        request_id: request_id.to_string(),
        license: Some(resident_card(n)),
        lenient_holder_check: false,
        seal_bundle: Vec::new(),
    }
}

/// Sends SIGTERM and waits for the exit status.
fn terminate(cluster: &mut Cluster, id: u64) -> std::process::ExitStatus {
    let p = cluster.nodes.iter_mut().find(|p| p.id == id).expect("node");
    let mut child = p.child.take().expect("running");
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("node {id} did not exit within 20 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_zero_with_a_watch_open_and_the_node_comes_back() {
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.wait_leader().await;
    for n in 0..20u32 {
        cluster
            .issue_retrying(issue_req(&format!("term-{n}"), n))
            .await;
    }
    // A watcher on the leader keeps a stream open while it is told to stop.
    let leader_addr = cluster.node(leader).addr.clone();
    let watch = pb::WatchRequest {
        from_revision: 1,
        ..Default::default()
    };
    let stream = licenses_at(&leader_addr).watch(watch).await.expect("watch");
    let started = Instant::now();
    let status = terminate(&mut cluster, leader);
    assert!(status.success(), "exit status {status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    drop(stream);

    // The others elect a leader and take writes; the stopped node returns and catches up.
    let new_leader = cluster.wait_leader().await;
    assert_ne!(new_leader, leader);
    cluster.issue_retrying(issue_req("term-after", 500)).await;
    cluster.restart(leader);
    let converged = cluster.wait_converged().await;
    assert_eq!(converged.records, 21);
}
