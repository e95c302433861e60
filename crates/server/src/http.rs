//! The plain-HTTP operations endpoint on `node.metrics_addr`: Prometheus text at
//! `GET /metrics`, and `GET /livez` and `GET /readyz` for probes that cannot speak gRPC over
//! TLS (Kubernetes' gRPC probes cannot).
//!
//! `/livez` answers 200 whenever the process serves, quorum or not; `/readyz` answers 200 when
//! the node knows a leader and is a member, 503 otherwise: the same rules as the gRPC health
//! service's liveness and readiness.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Bytes;
use metrics_exporter_prometheus::PrometheusHandle;
use tonic_health::ServingStatus;

use crate::node::Node;

/// How long a client may take to send its request headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// What the endpoint answers, decided apart from any I/O.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Metrics,
    Live,
    Ready,
    NotFound,
    WrongMethod,
}

fn route(method: &Method, path: &str) -> Route {
    let known = match path {
        "/metrics" => Route::Metrics,
        "/livez" => Route::Live,
        "/readyz" => Route::Ready,
        _ => return Route::NotFound,
    };
    if method == Method::GET || method == Method::HEAD {
        known
    } else {
        Route::WrongMethod
    }
}

/// Serves connections until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, metrics: PrometheusHandle, node: Arc<Node>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: pause rather than spin.
                tracing::warn!(error = %e, "metrics endpoint: accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (metrics, node) = (metrics.clone(), node.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: http::Request<_>| {
                let response = respond(route(req.method(), req.uri().path()), &metrics, &node);
                async move { Ok::<_, Infallible>(response) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "metrics endpoint: connection");
            }
        });
    }
}

fn respond(route: Route, metrics: &PrometheusHandle, node: &Node) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match route {
        Route::Metrics => (
            StatusCode::OK,
            "text/plain; version=0.0.4",
            metrics.render(),
        ),
        Route::Live => (StatusCode::OK, "text/plain", "ok\n".to_string()),
        Route::Ready => match crate::health::readiness(node) {
            ServingStatus::Serving => (StatusCode::OK, "text/plain", "ok\n".to_string()),
            _ => (
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "not ready: no leader known, or not a member\n".to_string(),
            ),
        },
        Route::NotFound => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: /metrics, /livez, /readyz\n".to_string(),
        ),
        Route::WrongMethod => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "only GET\n".to_string(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        headers.insert(http::header::CONTENT_TYPE, v);
    }
    if route == Route::WrongMethod {
        headers.insert(
            http::header::ALLOW,
            http::HeaderValue::from_static("GET, HEAD"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let cases = [
            (Method::GET, "/metrics", Route::Metrics),
            (Method::HEAD, "/livez", Route::Live),
            (Method::GET, "/readyz", Route::Ready),
            (Method::POST, "/metrics", Route::WrongMethod),
            (Method::GET, "/", Route::NotFound),
            (Method::GET, "/metrics/x", Route::NotFound),
        ];
        for (method, path, want) in cases {
            assert_eq!(route(&method, path), want, "{method} {path}");
        }
    }
}
