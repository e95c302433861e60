//! `licctl issue-each` and `licctl check-acked` against an in-process mock of the Licenses
//! service on 127.0.0.1: one Issue per record, the retry of a write whose answer was lost
//! (same request id, applied once, acknowledged once), refusals counted and skipped, the acked
//! file, and the linearizable read-back of every acknowledged identifier.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use licstore_cli::acked::parse_acked;
use licstore_cli::args::{CheckAckedArgs, FormatArg, IssueEachArgs};
use licstore_cli::dataset::{Format, RecordWriter};
use licstore_cli::exit::{Reported, FAILURE};
use licstore_cli::gen::{GenReport, Generator};
use licstore_cli::output::OutputFormat;
use licstore_cli::Ctx;
use licstore_model::Date;
use licstore_proto::v1 as pb;
use licstore_proto::v1::licenses_server::{Licenses, LicensesServer};
use tonic::{Request, Response, Status, Streaming};

/// Stores request id → identifier; refuses records whose license number ends in `7`; answers
/// the Issue that stores record number `lose_answer_of` with UNAVAILABLE after storing it.
#[derive(Default)]
struct Mock {
    stored: Mutex<HashMap<String, String>>,
    issue_calls: AtomicUsize,
    read_calls: AtomicUsize,
    lose_answer_of: usize,
}

struct Service(Arc<Mock>);

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("mock"))
}

fn license(identifier: &str) -> pb::License {
    pb::License {
        identifier: identifier.to_owned(),
        status: pb::LicenseStatus::Valid as i32,
        ..Default::default()
    }
}

#[tonic::async_trait]
impl Licenses for Service {
    async fn issue(
        &self,
        request: Request<pb::IssueRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        self.0.issue_calls.fetch_add(1, Ordering::SeqCst);
        let request = request.into_inner();
        let number = request
            .license
            .map(|l| l.license_number)
            .unwrap_or_default();
        if number.ends_with('7') {
            return Err(Status::failed_precondition("holder already holds one"));
        }
        let (identifier, duplicate, index) = {
            let mut stored = self.0.stored.lock().expect("lock");
            let index = stored.len();
            let next = format!("1.2.156.3005.2.MOCK.{index:06}.001.X");
            match stored.get(&request.request_id) {
                Some(id) => (id.clone(), true, usize::MAX),
                None => {
                    stored.insert(request.request_id.clone(), next.clone());
                    (next, false, index)
                }
            }
        };
        if index == self.0.lose_answer_of {
            return Err(Status::unavailable("answer lost"));
        }
        Ok(Response::new(pb::WriteResponse {
            license: Some(license(&identifier)),
            revision: 1,
            duplicate,
        }))
    }
    async fn amend(
        &self,
        _: Request<pb::AmendRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        unimplemented()
    }
    async fn change_status(
        &self,
        _: Request<pb::ChangeStatusRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        unimplemented()
    }
    async fn get(&self, _: Request<pb::GetRequest>) -> Result<Response<pb::GetResponse>, Status> {
        unimplemented()
    }
    async fn get_by_identifier(
        &self,
        request: Request<pb::GetByIdentifierRequest>,
    ) -> Result<Response<pb::GetResponse>, Status> {
        let call = self.0.read_calls.fetch_add(1, Ordering::SeqCst);
        if call == 0 {
            return Err(Status::unavailable("no leader yet"));
        }
        let request = request.into_inner();
        assert_eq!(request.consistency, pb::Consistency::Linearizable as i32);
        let stored = self.0.stored.lock().expect("lock");
        if stored.values().any(|id| *id == request.identifier) {
            return Ok(Response::new(pb::GetResponse {
                license: Some(license(&request.identifier)),
                read_revision: 1,
            }));
        }
        Err(Status::not_found("no such license"))
    }
    async fn list_by_holder(
        &self,
        _: Request<pb::ListByHolderRequest>,
    ) -> Result<Response<pb::ListByHolderResponse>, Status> {
        unimplemented()
    }
    async fn verify(
        &self,
        _: Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::VerifyResponse>, Status> {
        unimplemented()
    }
    async fn verify_batch(
        &self,
        _: Request<pb::VerifyBatchRequest>,
    ) -> Result<Response<pb::VerifyBatchResponse>, Status> {
        unimplemented()
    }
    async fn query(
        &self,
        _: Request<pb::QueryRequest>,
    ) -> Result<Response<pb::QueryResponse>, Status> {
        unimplemented()
    }
    type WatchStream = futures::stream::Empty<Result<pb::WatchResponse, Status>>;
    async fn watch(
        &self,
        _: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        unimplemented()
    }
    async fn import(
        &self,
        _: Request<Streaming<pb::ImportRecord>>,
    ) -> Result<Response<pb::ImportSummary>, Status> {
        unimplemented()
    }
}

async fn serve(mock: Arc<Mock>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(LicensesServer::new(Service(mock)))
            .serve_with_incoming(incoming)
            .await
    });
    addr.to_string()
}

/// `count` generated records; returns the file and how many have a number ending in 7.
fn dataset(dir: &Path, count: u64) -> (PathBuf, usize) {
    let path = dir.join("d.jsonl");
    let as_of = Date::new(2026, 3, 15).expect("date");
    let mut generator = Generator::new(5, as_of).expect("generator");
    let mut writer = RecordWriter::create(&path, Format::Jsonl).expect("create");
    let mut report = GenReport::new(String::new(), 5, as_of);
    licstore_cli::gen::write_dataset(&mut generator, count, &mut writer, &mut report).expect("gen");
    writer.finish().expect("flush");
    let text = std::fs::read_to_string(&path).expect("read");
    let sevens = text
        .lines()
        .filter(|l| l.contains("7\",\"issuer\""))
        .count();
    (path, sevens)
}

fn exit_code(result: anyhow::Result<()>) -> Option<u8> {
    result
        .err()
        .map(|e| e.downcast_ref::<Reported>().map_or(255, |r| r.code))
}

#[tokio::test]
async fn acknowledged_writes_are_recorded_once_and_read_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, sevens) = dataset(dir.path(), 60);
    assert!(sevens > 0, "the sample should contain refusals");
    let mock = Arc::new(Mock {
        lose_answer_of: 3,
        ..Mock::default()
    });
    let ctx = Ctx {
        endpoints: vec![serve(mock.clone()).await],
        output: OutputFormat::Json,
        timeout_ms: Some(5_000),
        tls: None,
    };
    let acked_file = dir.path().join("acked.txt");
    let args = IssueEachArgs {
        file: path,
        acked_file: Some(acked_file.clone()),
        format: FormatArg::Auto,
        lenient: false,
        attempts: 5,
    };
    let result = licstore_cli::acked::issue_each(&ctx, args).await;
    assert_eq!(
        exit_code(result),
        Some(FAILURE),
        "refusals give exit code 1"
    );
    // One call per record plus the repeat of the call whose answer was lost.
    assert_eq!(mock.issue_calls.load(Ordering::SeqCst), 61);
    let acked = parse_acked(&std::fs::read_to_string(&acked_file).expect("acked"));
    assert_eq!(acked.len(), 60 - sevens);
    let stored = mock.stored.lock().expect("lock").len();
    assert_eq!(
        stored,
        60 - sevens,
        "the lost answer's write was applied once"
    );
    let mut unique = acked.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), acked.len(), "each write acknowledged once");

    let check = |identifiers: Vec<String>| CheckAckedArgs {
        file: acked_file.clone(),
        identifiers,
    };
    let all_there = licstore_cli::acked::check_acked(&ctx, check(vec![])).await;
    assert!(all_there.is_ok(), "{all_there:?}");
    let missing = check(vec!["1.2.156.3005.2.MOCK.999999.001.X".to_owned()]);
    let result = licstore_cli::acked::check_acked(&ctx, missing).await;
    assert_eq!(
        exit_code(result),
        Some(FAILURE),
        "a missing write gives exit code 1"
    );
}
