//! `licctl endpoint health` against in-process grpc.health.v1 servers on 127.0.0.1: healthy
//! only when every endpoint is both live and ready; an unreachable endpoint is reported.

use licstore_cli::exit::{Reported, UNAVAILABLE};
use licstore_cli::output::OutputFormat;
use licstore_cli::Ctx;
use tonic_health::ServingStatus;

/// A health server whose readiness is `ready`; returns its address.
async fn serve(ready: ServingStatus) -> String {
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("liveness", ServingStatus::Serving)
        .await;
    reporter.set_service_status("readiness", ready).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tokio::spawn(async move {
        // The reporter must outlive the server, or the statuses it set are dropped.
        let _keep = reporter;
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(incoming)
            .await
    });
    addr
}

fn exit_code(result: anyhow::Result<()>) -> Option<u8> {
    result
        .err()
        .map(|e| e.downcast_ref::<Reported>().map_or(255, |r| r.code))
}

#[tokio::test]
async fn healthy_only_when_every_endpoint_is_live_and_ready() {
    let ready = serve(ServingStatus::Serving).await;
    let not_ready = serve(ServingStatus::NotServing).await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").to_string()
    };
    let cases = [
        (vec![ready.clone()], None),
        (vec![ready.clone(), not_ready], Some(UNAVAILABLE)),
        (vec![ready, closed], Some(UNAVAILABLE)),
    ];
    for (endpoints, want) in cases {
        let ctx = Ctx {
            endpoints: endpoints.clone(),
            output: OutputFormat::Json,
            timeout_ms: Some(2_000),
            tls: None,
        };
        let got = exit_code(licstore_cli::cluster::endpoint_health(&ctx).await);
        assert_eq!(got, want, "{endpoints:?}");
    }
}
