//! `licbench echo-server`: the licstore `Licenses` API answered without storage or
//! consensus, the ceiling of what gRPC over loopback allows on the machine.
//!
//! Reads answer with a verdict and fields of the sizes licstore fills in; writes echo the
//! license back; `Import` drains its stream. Everything else is `UNIMPLEMENTED`.

use std::pin::Pin;

use futures::Stream;
use licstore_proto::v1 as pb;
use licstore_proto::v1::licenses_server::{Licenses, LicensesServer};
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use crate::args::EchoArgs;

/// The echo service.
#[derive(Clone, Debug, Default)]
pub struct Echo;

/// What `Verify` answers: a valid verdict with a 32-character identifier and a 64-digit
/// digest, as licstore sends.
pub fn verdict(req: &pb::VerifyRequest) -> pb::VerifyResponse {
    pb::VerifyResponse {
        valid: true,
        verdict: pb::Verdict::Valid as i32,
        status: pb::LicenseStatus::Valid as i32,
        identifier: format!("{:0>32}", req.holder_id),
        revision: 1,
        digest: "0".repeat(64),
        read_revision: 1,
        seal: 0,
        fields: Default::default(),
    }
}

fn license_of(new: Option<pb::NewLicense>) -> pb::License {
    let new = new.unwrap_or_default();
    pb::License {
        identifier: "0".repeat(32),
        type_code: new.type_code,
        holder: new.holder,
        license_number: new.license_number,
        issuer: new.issuer,
        issue_date: new.issue_date,
        valid_from: new.valid_from,
        valid_until: new.valid_until,
        region_code: new.region_code,
        face: new.face,
        status: pb::LicenseStatus::Valid as i32,
        version: 1,
        revision: 1,
        digest: "0".repeat(64),
        ..Default::default()
    }
}

fn written(license: pb::License) -> Response<pb::WriteResponse> {
    Response::new(pb::WriteResponse {
        license: Some(license),
        revision: 1,
        duplicate: false,
    })
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Licenses for Echo {
    async fn issue(
        &self,
        req: Request<pb::IssueRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        Ok(written(license_of(req.into_inner().license)))
    }

    async fn amend(
        &self,
        req: Request<pb::AmendRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        Ok(written(license_of(req.into_inner().license)))
    }

    async fn change_status(
        &self,
        _req: Request<pb::ChangeStatusRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        Ok(written(license_of(None)))
    }

    async fn get(
        &self,
        _req: Request<pb::GetRequest>,
    ) -> Result<Response<pb::GetResponse>, Status> {
        Ok(Response::new(pb::GetResponse {
            license: Some(license_of(None)),
            read_revision: 1,
        }))
    }

    async fn get_by_identifier(
        &self,
        _req: Request<pb::GetByIdentifierRequest>,
    ) -> Result<Response<pb::GetResponse>, Status> {
        Err(Status::unimplemented("echo server"))
    }

    async fn list_by_holder(
        &self,
        _req: Request<pb::ListByHolderRequest>,
    ) -> Result<Response<pb::ListByHolderResponse>, Status> {
        Err(Status::unimplemented("echo server"))
    }

    async fn verify(
        &self,
        req: Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::VerifyResponse>, Status> {
        Ok(Response::new(verdict(&req.into_inner())))
    }

    async fn verify_batch(
        &self,
        req: Request<pb::VerifyBatchRequest>,
    ) -> Result<Response<pb::VerifyBatchResponse>, Status> {
        let results = req.into_inner().items.iter().map(verdict).collect();
        Ok(Response::new(pb::VerifyBatchResponse {
            results,
            read_revision: 1,
        }))
    }

    async fn import(
        &self,
        req: Request<Streaming<pb::ImportRecord>>,
    ) -> Result<Response<pb::ImportSummary>, Status> {
        let mut stream = req.into_inner();
        let mut received = 0;
        while let Some(record) = stream.next().await {
            record?;
            received += 1;
        }
        Ok(Response::new(pb::ImportSummary {
            received,
            imported: received,
            last_revision: 1,
            ..Default::default()
        }))
    }

    async fn query(
        &self,
        _req: Request<pb::QueryRequest>,
    ) -> Result<Response<pb::QueryResponse>, Status> {
        Err(Status::unimplemented("echo server"))
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        _req: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("echo server"))
    }
}

/// Serves until the process is stopped.
pub async fn serve(a: &EchoArgs) -> anyhow::Result<()> {
    let addr: std::net::SocketAddr = a
        .listen
        .parse()
        .map_err(|e| anyhow::anyhow!("--listen {}: {e}", a.listen))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("--listen {addr}: {e}"))?;
    eprintln!("echo-server: listening on {}", listener.local_addr()?);
    // Nagle's algorithm off on accepted connections, as licstored does.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .add_service(LicensesServer::new(Echo).max_decoding_message_size(64 << 20))
        .serve_with_incoming(incoming)
        .await?;
    Ok(())
}
