//! `licctl import`: streams a dataset file through the client-streaming `Import` RPC.
//!
//! 1. Records are read one at a time ([`RecordReader`]); a line that does not parse, or whose
//!    holder kind or status is unknown, is rejected locally with its line number.
//! 2. Parsed records are gathered into chunks of `--batch` (default 10,000). Each chunk is one
//!    `Import` call, sent through [`Client::retrying`]: when a call fails with a retryable error
//!    only that chunk is sent again, and the server's idempotency (request id, or identifier;
//!    see [`crate::dataset`]) makes the repeat harmless — records already stored count as
//!    duplicates.
//! 3. Server rejections name the record by its position in the chunk; they are mapped back to
//!    the file's line numbers.
//! 4. Rejections go to `--reject-file` as JSON lines:
//!    `{"line": 12, "origin": "local|server", "field": "holder.id", "reason": "...",
//!    "request_id": "...", "record": "<the original line>"}`.
//!    Without `--reject-file` the first few are printed on stderr.
//! 5. A progress bar runs on stderr when it is a terminal; a summary (received, imported,
//!    duplicates, rejected, elapsed, records/s) is printed at the end. The exit code is 1 when
//!    any record was rejected.

use std::fs::File;
use std::io::{BufRead, BufWriter, IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use licstore_client::Client;
use licstore_proto::v1 as pb;
use licstore_proto::v1::licenses_client::LicensesClient;
use serde::Serialize;

use crate::args::ImportArgs;
use crate::dataset::{count_lines, RecordReader, SourceRecord};
use crate::exit::{reported, FAILURE};
use crate::output::{emit, Render, Table};
use crate::Ctx;

/// Timeout of one Import call when `--timeout-ms` is not given.
const IMPORT_TIMEOUT_MS: u64 = 600_000;
/// Rejections printed on stderr when there is no reject file.
const REJECTIONS_SHOWN_MAX: usize = 10;
/// Largest Import answer accepted (an answer lists every rejection of its chunk).
const SUMMARY_BYTES_MAX: usize = 256 << 20;

/// The final summary.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ImportReport {
    pub file: String,
    /// Records the server received (all chunks).
    pub received: u64,
    pub imported: u64,
    pub duplicates: u64,
    /// Rejected by the server.
    pub rejected: u64,
    /// Rejected before sending (unparseable lines).
    pub rejected_locally: u64,
    pub chunks: u64,
    pub last_revision: u64,
    pub elapsed_ms: u64,
    pub records_per_sec: f64,
}

impl Render for ImportReport {
    fn table(&self) -> Table {
        let mut t = Table::key_value();
        t.pair("file", self.file.clone());
        t.pair("received", self.received.to_string());
        t.pair("imported", self.imported.to_string());
        t.pair("duplicates", self.duplicates.to_string());
        t.pair("rejected", self.rejected.to_string());
        t.pair("rejected locally", self.rejected_locally.to_string());
        t.pair("chunks", self.chunks.to_string());
        t.pair("last revision", self.last_revision.to_string());
        t.pair(
            "elapsed",
            format!("{:.1}s", self.elapsed_ms as f64 / 1000.0),
        );
        t.pair("records/s", format!("{:.0}", self.records_per_sec));
        t
    }
}

/// One rejected record, as written to the reject file.
#[derive(Clone, Debug, Serialize)]
pub struct Rejection {
    pub line: u64,
    /// `local` (did not parse) or `server`.
    pub origin: &'static str,
    pub field: String,
    pub reason: String,
    pub request_id: String,
    /// The original text of the record.
    pub record: String,
}

/// A parsed record waiting in a chunk, with where it came from.
struct Pending {
    line: u64,
    raw: String,
    record: pb::ImportRecord,
}

/// Where rejections go.
struct RejectSink {
    file: Option<BufWriter<File>>,
    shown: usize,
}

impl RejectSink {
    fn open(path: Option<&Path>) -> anyhow::Result<RejectSink> {
        let file = match path {
            Some(p) => {
                let f = File::create(p).with_context(|| format!("create {}", p.display()))?;
                Some(BufWriter::new(f))
            }
            None => None,
        };
        Ok(RejectSink { file, shown: 0 })
    }

    fn write(&mut self, rejection: &Rejection) -> anyhow::Result<()> {
        if let Some(file) = &mut self.file {
            serde_json::to_writer(&mut *file, rejection)?;
            file.write_all(b"\n")?;
        } else if self.shown < REJECTIONS_SHOWN_MAX {
            self.shown += 1;
            let r = rejection;
            eprintln!(
                "rejected line {} ({}): {}: {}",
                r.line, r.origin, r.field, r.reason
            );
        }
        Ok(())
    }

    fn finish(self) -> anyhow::Result<()> {
        if let Some(mut file) = self.file {
            file.flush()?;
        }
        Ok(())
    }
}

/// `licctl import`.
pub async fn run(ctx: &Ctx, args: ImportArgs) -> anyhow::Result<()> {
    let format = args.format.resolve(&args.file);
    let reader = RecordReader::open(&args.file, format)?;
    let bar = progress_bar(count_lines(&args.file)?);
    let mut client = ctx.client_with_default(Some(IMPORT_TIMEOUT_MS))?;
    let mut sink = RejectSink::open(args.reject_file.as_deref())?;
    let mut report = ImportReport {
        file: args.file.display().to_string(),
        ..Default::default()
    };
    let started = Instant::now();
    let result = import_all(reader, &args, &mut client, &bar, &mut sink, &mut report).await;
    bar.finish_and_clear();
    sink.finish()?;
    finish_report(&mut report, started.elapsed());
    emit(ctx.output, &report)?;
    if result.is_err() {
        eprintln!("{}", resume_hint(&report));
    }
    result?;
    let rejected = report.rejected + report.rejected_locally;
    if rejected > 0 {
        let hint = if args.reject_file.is_some() {
            ""
        } else {
            "; use --reject-file to keep them"
        };
        return Err(reported(
            FAILURE,
            format!("{rejected} records rejected{hint}"),
        ));
    }
    Ok(())
}

fn resume_hint(report: &ImportReport) -> String {
    format!(
        "import stopped after {} chunks; records sent so far are stored, and running the same \
         import again is safe (they count as duplicates)",
        report.chunks
    )
}

async fn import_all<R: BufRead>(
    reader: RecordReader<R>,
    args: &ImportArgs,
    client: &mut Client,
    bar: &ProgressBar,
    sink: &mut RejectSink,
    report: &mut ImportReport,
) -> anyhow::Result<()> {
    let batch = usize::try_from(args.batch).unwrap_or(usize::MAX);
    let mut chunk: Vec<Pending> = Vec::with_capacity(batch.min(100_000));
    for source in reader {
        match prepare(source, args.lenient) {
            Ok(pending) => chunk.push(pending),
            Err(rejection) => {
                report.rejected_locally += 1;
                bar.inc(1);
                sink.write(&rejection)?;
            }
        }
        if chunk.len() >= batch {
            send_chunk(client, std::mem::take(&mut chunk), bar, sink, report).await?;
        }
    }
    if !chunk.is_empty() {
        send_chunk(client, chunk, bar, sink, report).await?;
    }
    Ok(())
}

/// Turns a source record into a pending proto record, or a local rejection.
fn prepare(source: SourceRecord, lenient: bool) -> Result<Pending, Rejection> {
    let reject = |field: &str, reason: String, raw: String| Rejection {
        line: source.line,
        origin: "local",
        field: field.to_owned(),
        reason,
        request_id: String::new(),
        record: raw,
    };
    let record = match source.parsed {
        Ok(record) => record,
        Err(reason) => return Err(reject("record", reason, source.raw)),
    };
    match record.to_proto() {
        Ok(mut proto) => {
            proto.lenient_holder_check |= lenient;
            Ok(Pending {
                line: source.line,
                raw: source.raw,
                record: proto,
            })
        }
        Err(e) => Err(reject(&e.field, e.reason, source.raw)),
    }
}

/// Sends one chunk as one Import call (retried as a whole) and books its summary.
async fn send_chunk(
    client: &mut Client,
    chunk: Vec<Pending>,
    bar: &ProgressBar,
    sink: &mut RejectSink,
    report: &mut ImportReport,
) -> anyhow::Result<()> {
    let records: Vec<pb::ImportRecord> = chunk.iter().map(|p| p.record.clone()).collect();
    let start = bar.position();
    let summary = client
        .retrying(|ch| {
            let (records, bar) = (records.clone(), bar.clone());
            async move {
                bar.set_position(start);
                let stream = tokio_stream::iter(records).inspect(move |_| bar.inc(1));
                let mut stub = LicensesClient::new(ch).max_decoding_message_size(SUMMARY_BYTES_MAX);
                stub.import(stream).await
            }
        })
        .await
        .with_context(|| format!("import chunk starting at line {}", chunk[0].line))?;
    bar.set_position(start + chunk.len() as u64);
    book_summary(&summary, &chunk, sink, report)
}

fn book_summary(
    summary: &pb::ImportSummary,
    chunk: &[Pending],
    sink: &mut RejectSink,
    report: &mut ImportReport,
) -> anyhow::Result<()> {
    report.chunks += 1;
    report.received += summary.received;
    report.imported += summary.imported;
    report.duplicates += summary.duplicates;
    report.rejected += summary.rejected;
    report.last_revision = report.last_revision.max(summary.last_revision);
    for r in &summary.rejections {
        sink.write(&server_rejection(r, chunk))?;
    }
    Ok(())
}

fn server_rejection(r: &pb::ImportRejection, chunk: &[Pending]) -> Rejection {
    let source = usize::try_from(r.index).ok().and_then(|i| chunk.get(i));
    Rejection {
        line: source.map_or(0, |p| p.line),
        origin: "server",
        field: r.field.clone(),
        reason: r.reason.clone(),
        request_id: r.request_id.clone(),
        record: source.map_or_else(String::new, |p| p.raw.clone()),
    }
}

fn finish_report(report: &mut ImportReport, elapsed: Duration) {
    report.elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    let secs = elapsed.as_secs_f64().max(1e-3);
    report.records_per_sec = report.received as f64 / secs;
}

fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
        return bar;
    }
    bar.set_draw_target(ProgressDrawTarget::stderr());
    let template = "{elapsed_precise} [{bar:40}] {human_pos}/{human_len} {per_sec} eta {eta}";
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::{Format, Record};

    fn sample_line() -> String {
        let record: Record =
            serde_json::from_str(crate::dataset::tests::SAMPLE_JSON).expect("sample");
        serde_json::to_string(&record).expect("json")
    }

    #[test]
    fn local_rejections_carry_line_and_reason() {
        let good = sample_line();
        let bad_kind = good.replace("\"citizen_id\"", "\"passport\"");
        let bad_status = good.replace("\"status\":\"valid\"", "\"status\":\"lost\"");
        let text = format!("{good}\n\nnot json\n{bad_kind}\n{bad_status}\n");
        let reader = RecordReader::new(text.as_bytes(), Format::Jsonl).expect("reader");
        let results: Vec<Result<u64, (u64, String)>> = reader
            .map(|s| {
                prepare(s, false)
                    .map(|p| p.line)
                    .map_err(|r| (r.line, r.field))
            })
            .collect();
        let want = vec![
            Ok(1),
            Err((3, "record".to_owned())),
            Err((4, "license.holder.kind".to_owned())),
            Err((5, "status".to_owned())),
        ];
        assert_eq!(results, want);
    }

    #[test]
    fn server_rejections_map_to_lines() {
        let pending = |line| Pending {
            line,
            raw: format!("raw{line}"),
            record: Default::default(),
        };
        let chunk = vec![pending(7), pending(9)];
        let cases = [(1, 9, "raw9"), (0, 7, "raw7"), (5, 0, "")];
        for (index, line, raw) in cases {
            let r = pb::ImportRejection {
                index,
                ..Default::default()
            };
            let got = server_rejection(&r, &chunk);
            assert_eq!((got.line, got.record.as_str()), (line, raw), "{index}");
        }
    }

    #[test]
    fn lenient_flag_is_forced_on_every_record() {
        let text = sample_line();
        let reader = RecordReader::new(text.as_bytes(), Format::Jsonl).expect("reader");
        for source in reader {
            let pending = prepare(source, true).map_err(|r| r.reason).expect("parses");
            assert!(pending.record.lenient_holder_check);
            assert!(pending.record.request_id.starts_with("imp-"));
        }
    }
}
