//! `licctl import` against an in-process mock of the Licenses service on 127.0.0.1: chunking,
//! the retry of a chunk whose answer was lost, duplicates by request id, and the mapping of
//! server rejections back to file lines.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use licstore_cli::args::{FormatArg, ImportArgs};
use licstore_cli::dataset::{Format, RecordWriter};
use licstore_cli::gen::{GenReport, Generator};
use licstore_cli::output::OutputFormat;
use licstore_cli::Ctx;
use licstore_model::Date;
use licstore_proto::v1 as pb;
use licstore_proto::v1::licenses_server::{Licenses, LicensesServer};
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

/// Stores request ids; rejects records whose license number ends in `7`; answers the call
/// number `lose_answer_of` with UNAVAILABLE after storing its records.
#[derive(Default)]
struct Mock {
    seen: Mutex<HashSet<String>>,
    calls: AtomicUsize,
    lose_answer_of: usize,
}

/// The service handed to tonic; the test keeps another handle on the mock.
struct Service(Arc<Mock>);

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("mock"))
}

#[tonic::async_trait]
impl Licenses for Service {
    async fn issue(
        &self,
        _: Request<pb::IssueRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        unimplemented()
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
        _: Request<pb::GetByIdentifierRequest>,
    ) -> Result<Response<pb::GetResponse>, Status> {
        unimplemented()
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
        request: Request<Streaming<pb::ImportRecord>>,
    ) -> Result<Response<pb::ImportSummary>, Status> {
        let call = self.0.calls.fetch_add(1, Ordering::SeqCst);
        let mut stream = request.into_inner();
        let mut summary = pb::ImportSummary::default();
        let mut index = 0;
        while let Some(record) = stream.next().await {
            self.0.book(record?, index, &mut summary);
            index += 1;
        }
        if call == self.0.lose_answer_of {
            return Err(Status::unavailable("answer lost"));
        }
        Ok(Response::new(summary))
    }
}

impl Mock {
    fn book(&self, record: pb::ImportRecord, index: u64, summary: &mut pb::ImportSummary) {
        summary.received += 1;
        let number = record.license.map(|l| l.license_number).unwrap_or_default();
        if number.ends_with('7') {
            summary.rejected += 1;
            summary.rejections.push(pb::ImportRejection {
                index,
                request_id: record.request_id,
                field: "license_number".into(),
                reason: "ends in 7".into(),
            });
        } else if self.seen.lock().expect("lock").insert(record.request_id) {
            summary.imported += 1;
        } else {
            summary.duplicates += 1;
        }
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

fn dataset(dir: &std::path::Path, count: u64) -> (PathBuf, u64) {
    let path = dir.join("d.jsonl");
    let as_of = Date::new(2026, 3, 15).expect("date");
    let mut generator = Generator::new(3, as_of).expect("generator");
    let mut writer = RecordWriter::create(&path, Format::Jsonl).expect("create");
    let mut report = GenReport::new(String::new(), 3, as_of);
    licstore_cli::gen::write_dataset(&mut generator, count, &mut writer, &mut report).expect("gen");
    writer.finish().expect("flush");
    let text = std::fs::read_to_string(&path).expect("read");
    let sevens = text
        .lines()
        .filter(|l| l.contains("7\",\"issuer\""))
        .count() as u64;
    std::fs::write(&path, format!("{text}not json\n")).expect("append");
    (path, sevens)
}

#[tokio::test]
async fn chunks_are_retried_and_rejections_mapped_to_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, sevens) = dataset(dir.path(), 250);
    let mock = Arc::new(Mock {
        lose_answer_of: 1,
        ..Mock::default()
    });
    let endpoint = serve(mock.clone()).await;
    let ctx = Ctx {
        endpoints: vec![endpoint],
        output: OutputFormat::Json,
        timeout_ms: Some(5_000),
        tls: None,
    };
    let reject_file = dir.path().join("rejects.jsonl");
    let args = ImportArgs {
        file: path,
        batch: 100,
        reject_file: Some(reject_file.clone()),
        format: FormatArg::Auto,
        lenient: false,
    };
    let result = licstore_cli::import::run(&ctx, args).await;
    assert!(result.is_err(), "rejections make the exit code non-zero");
    // 3 chunks (100, 100, 50) plus one repeat of the second, whose answer was lost.
    assert_eq!(mock.calls.load(Ordering::SeqCst), 4);
    let rejects = std::fs::read_to_string(&reject_file).expect("rejects");
    let lines: Vec<serde_json::Value> = rejects
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(lines.len() as u64, sevens + 1);
    let local = lines
        .iter()
        .find(|l| l["origin"] == "local")
        .expect("local rejection");
    assert_eq!(local["line"], 251);
    for server in lines.iter().filter(|l| l["origin"] == "server") {
        let record = server["record"].as_str().expect("record text");
        assert!(record.contains("7\",\"issuer\""), "{record}");
        assert!(server["line"].as_u64().expect("line") >= 1);
    }
    assert_eq!(mock.seen.lock().expect("lock").len() as u64, 250 - sevens);
}
