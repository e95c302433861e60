//! gRPC health checking and server reflection on real processes: liveness needs no quorum,
//! readiness does, and reflection lists the services without proto files.

mod common;

use std::time::{Duration, Instant};

use common::{Cluster, WAIT};
use futures::StreamExt;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::ServerReflectionRequest;

fn channel(addr: &str) -> Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("uri")
        .timeout(Duration::from_secs(5))
        .connect_lazy()
}

async fn health(addr: &str, service: &str) -> ServingStatus {
    let req = HealthCheckRequest {
        service: service.to_string(),
    };
    let status = HealthClient::new(channel(addr))
        .check(req)
        .await
        .expect("check");
    status.into_inner().status()
}

async fn wait_for(addr: &str, service: &str, want: ServingStatus) {
    let deadline = Instant::now() + WAIT;
    while health(addr, service).await != want {
        assert!(
            Instant::now() < deadline,
            "{service:?} on {addr} never became {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn liveness_needs_no_quorum_and_readiness_does() {
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.wait_leader().await;
    for p in &cluster.nodes {
        for service in ["", "liveness"] {
            assert_eq!(health(&p.addr, service).await, ServingStatus::Serving);
        }
        wait_for(&p.addr, "readiness", ServingStatus::Serving).await;
        wait_for(&p.addr, "licstore.v1.Licenses", ServingStatus::Serving).await;
    }
    // Leave one follower alone: it is alive but can serve nothing that needs a quorum.
    let survivor = (1..=3).find(|id| *id != leader).expect("follower");
    for id in (1..=3).filter(|id| *id != survivor) {
        cluster.kill(id);
    }
    let addr = cluster.node(survivor).addr.clone();
    wait_for(&addr, "readiness", ServingStatus::NotServing).await;
    assert_eq!(health(&addr, "").await, ServingStatus::Serving);
    let unknown = HealthClient::new(channel(&addr))
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .expect_err("unknown service");
    assert_eq!(unknown.code(), tonic::Code::NotFound);
}

/// Sends a signal to a node process this test started.
fn signal(cluster: &Cluster, id: u64, sig: &str) {
    let pid = cluster.node(id).child.as_ref().expect("running").id();
    let status = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill {sig} {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_its_quorum_stops_being_ready() {
    let cluster = Cluster::start(3, &[]);
    let leader = cluster.wait_leader().await;
    let addr = cluster.node(leader).addr.clone();
    let metrics = cluster.node(leader).metrics_addr.clone();
    wait_for(&addr, "readiness", ServingStatus::Serving).await;
    let followers: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    for id in &followers {
        signal(&cluster, *id, "-STOP");
    }
    // Still alive, but no longer a leader anyone can count on.
    wait_for(&addr, "readiness", ServingStatus::NotServing).await;
    assert_eq!(health(&addr, "liveness").await, ServingStatus::Serving);
    assert_eq!(common::http_get(&metrics, "/readyz").await.0, 503);
    let deadline = Instant::now() + WAIT;
    loop {
        let s = common::scrape(&metrics).await;
        if common::total(&s, "licstore_server_has_leader", &[]) == 0.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "has_leader stayed 1 without a quorum"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for id in &followers {
        signal(&cluster, *id, "-CONT");
    }
    let leader = cluster.wait_leader().await;
    wait_for(
        &cluster.node(leader).addr,
        "readiness",
        ServingStatus::Serving,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_the_services() {
    let cluster = Cluster::start(1, &[]);
    cluster.wait_leader().await;
    let addr = cluster.nodes[0].addr.clone();
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut client = ServerReflectionClient::new(channel(&addr));
    let mut answers = client
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .expect("reflection")
        .into_inner();
    let answer = answers.next().await.expect("an answer").expect("ok");
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("unexpected answer {answer:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in [
        "licstore.v1.Licenses",
        "licstore.v1.Cluster",
        "grpc.health.v1.Health",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
    }
}
