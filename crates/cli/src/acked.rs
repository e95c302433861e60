//! `licctl issue-each` and `licctl check-acked`: write records one at a time while the cluster
//! is being disturbed, keep the identifier of every acknowledged write, and check afterwards
//! with linearizable reads that none of them was lost.
//!
//! `issue-each` reads a dataset file with the `import` parser ([`RecordReader`]) and sends
//! each record as one `Issue` call through [`Client::retrying`], with a longer retry policy
//! than the default (20 attempts, pauses doubling from 50 ms to 1 s; `--attempts`) so that a
//! leader election in the middle is ridden out. Each record's request id is fixed before its
//! first attempt (the record's own `request_id`, else `each-` and a hash of its content) and
//! reused on every retry, so a retry after a lost answer is applied once: the store answers it
//! with the stored result (`duplicate`). Issue sets no status, so a record whose status is not
//! `valid` is issued as valid (counted); a record's `identifier` is not used either.
//!
//! The identifier of every acknowledged write is appended to `--acked-file` at once, one per
//! line, and flushed, so the file is complete even when `licctl` itself is killed. Records
//! the server refuses (a non-retryable code such as `FAILED_PRECONDITION`) are counted by code
//! and the run goes on; so do records whose retries ran out. Exit code: 3 when retries ran out
//! for any record, else 1 when any was refused or did not parse, else 0.
//!
//! `check-acked` reads identifiers (one per line; blank lines and `#` comments skipped; the
//! command-line ones added, duplicates dropped) and reads each back with GetByIdentifier at
//! linearizable consistency, retried like `issue-each`. It prints `N of M acknowledged writes
//! present` and the missing ones, and exits 1 when any is missing (or a read was refused), 3
//! when some could not be read at all.

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use licstore_client::{retryable, Client, ClientError, RetryPolicy};
use licstore_model::LicenseStatus;
use licstore_proto::v1 as pb;
use licstore_proto::v1::licenses_client::LicensesClient;
use serde::Serialize;
use tonic::Code;

use crate::args::{CheckAckedArgs, IssueEachArgs};
use crate::dataset::{Record, RecordReader, SourceRecord};
use crate::exit::{code_name, describe_status, reported, FAILURE, UNAVAILABLE};
use crate::output::{emit, OutputFormat, Render, Table};
use crate::{convert, Ctx};

/// Pause before the second attempt of a call.
const INITIAL_BACKOFF: Duration = Duration::from_millis(50);
/// Longest pause between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Attempts of a read in `check-acked`.
const CHECK_ATTEMPTS: u32 = 20;
/// Reads in flight in `check-acked`.
const CHECK_CONCURRENCY: usize = 8;
/// Refusals and failures printed on stderr.
const PROBLEMS_SHOWN_MAX: usize = 10;

/// The retry policy of both commands: `attempts` attempts, 50 ms doubling to 1 s.
pub fn retry_policy(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts: attempts.max(1),
        initial_backoff: INITIAL_BACKOFF,
        max_backoff: MAX_BACKOFF,
    }
}

/// The summary of `issue-each`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct IssueEachReport {
    pub file: String,
    /// Records read, including those that did not parse.
    pub records: u64,
    /// Writes the cluster acknowledged.
    pub acked: u64,
    /// Acknowledged writes answered as duplicates: an earlier attempt had been applied and
    /// its answer was lost (or the request id was issued before).
    pub duplicates: u64,
    /// Records that needed more than one attempt.
    pub retried: u64,
    /// Attempts in all.
    pub attempts: u64,
    /// Refused by the server, by gRPC code.
    pub refused: BTreeMap<String, u64>,
    /// Not acknowledged when the retries ran out, by the last gRPC code.
    pub failed: BTreeMap<String, u64>,
    /// Lines that did not parse.
    pub rejected_locally: u64,
    /// Records whose status was not `valid`, issued as valid, by their status.
    pub issued_as_valid: BTreeMap<String, u64>,
    /// Where acknowledged identifiers went.
    pub acked_file: Option<String>,
    pub elapsed_ms: u64,
}

impl IssueEachReport {
    fn refused_total(&self) -> u64 {
        self.refused.values().sum()
    }

    fn failed_total(&self) -> u64 {
        self.failed.values().sum()
    }
}

impl Render for IssueEachReport {
    fn table(&self) -> Table {
        let mut t = Table::key_value();
        t.pair("file", self.file.clone());
        t.pair("records", self.records.to_string());
        t.pair("acked", self.acked.to_string());
        t.pair("  of which duplicates", self.duplicates.to_string());
        t.pair("retried records", self.retried.to_string());
        t.pair("attempts", self.attempts.to_string());
        t.pair("refused", self.refused_total().to_string());
        for (code, n) in &self.refused {
            t.pair(&format!("  {code}"), n.to_string());
        }
        t.pair("failed after retries", self.failed_total().to_string());
        for (code, n) in &self.failed {
            t.pair(&format!("  {code}"), n.to_string());
        }
        t.pair("rejected locally", self.rejected_locally.to_string());
        for (status, n) in &self.issued_as_valid {
            t.pair(
                &format!("input status {status}, issued valid"),
                n.to_string(),
            );
        }
        if let Some(path) = &self.acked_file {
            t.pair("acked file", path.clone());
        }
        t.pair(
            "elapsed",
            format!("{:.1}s", self.elapsed_ms as f64 / 1000.0),
        );
        t
    }
}

/// Appends acknowledged identifiers to a file, one line each, flushed at once.
pub struct AckedFile {
    file: Option<File>,
}

impl AckedFile {
    /// Opens `path` for appending (created when missing); `None` keeps nothing.
    pub fn open(path: Option<&Path>) -> anyhow::Result<AckedFile> {
        let file = match path {
            Some(p) => Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .with_context(|| format!("open {}", p.display()))?,
            ),
            None => None,
        };
        Ok(AckedFile { file })
    }

    /// Appends one identifier and flushes it to the operating system.
    pub fn append(&mut self, identifier: &str) -> anyhow::Result<()> {
        if let Some(file) = &mut self.file {
            file.write_all(format!("{identifier}\n").as_bytes())
                .context("append to the acked file")?;
            file.flush().context("flush the acked file")?;
        }
        Ok(())
    }
}

/// The Issue request for a dataset record, and the status the record asked for when it is not
/// `valid`. Fails with the reason when the record did not parse.
pub fn issue_request(
    source: SourceRecord,
    lenient: bool,
) -> Result<(pb::IssueRequest, Option<String>), String> {
    let record = source.parsed?;
    let license = record.license.to_proto().map_err(|e| e.to_string())?;
    let status = record
        .status
        .parse::<LicenseStatus>()
        .map_err(|e| format!("status: {e}"))?;
    let other_status = (status != LicenseStatus::Valid).then(|| status.as_str().to_owned());
    let request = pb::IssueRequest {
        request_id: each_request_id(&record),
        license: Some(license),
        lenient_holder_check: record.lenient_holder_check || lenient,
        seal_bundle: Vec::new(),
    };
    Ok((request, other_status))
}

/// The record's own request id, else `each-` and 32 hex digits of the hash of its content
/// (distinct from the `imp-` ids `import` derives, since an Issue is not an Import).
pub fn each_request_id(record: &Record) -> String {
    if !record.request_id.is_empty() {
        return record.request_id.clone();
    }
    let json = serde_json::to_vec(record).unwrap_or_default();
    format!("each-{}", &blake3::hash(&json).to_hex()[..32])
}

/// `licctl issue-each`.
pub async fn issue_each(ctx: &Ctx, args: IssueEachArgs) -> anyhow::Result<()> {
    let format = args.format.resolve(&args.file);
    let reader = RecordReader::open(&args.file, format)?;
    let mut client = ctx.client()?.with_retry(retry_policy(args.attempts));
    let mut acked = AckedFile::open(args.acked_file.as_deref())?;
    let mut report = IssueEachReport {
        file: args.file.display().to_string(),
        acked_file: args.acked_file.as_ref().map(|p| p.display().to_string()),
        ..IssueEachReport::default()
    };
    let started = Instant::now();
    let mut shown = 0;
    let mut show = |line: String| {
        if shown < PROBLEMS_SHOWN_MAX {
            shown += 1;
            eprintln!("{line}");
        }
    };
    for source in reader {
        report.records += 1;
        let line = source.line;
        let (request, other_status) = match issue_request(source, args.lenient) {
            Ok(prepared) => prepared,
            Err(reason) => {
                report.rejected_locally += 1;
                show(format!("line {line}: not issued: {reason}"));
                continue;
            }
        };
        let mut attempts = 0u64;
        let result = client
            .retrying(|ch| {
                attempts += 1;
                let request = request.clone();
                async move { LicensesClient::new(ch).issue(request).await }
            })
            .await;
        report.attempts += attempts;
        report.retried += u64::from(attempts > 1);
        match result {
            Ok(response) => {
                let identifier = response
                    .license
                    .as_ref()
                    .map(|l| l.identifier.clone())
                    .unwrap_or_default();
                if identifier.is_empty() {
                    anyhow::bail!("line {line}: the server acknowledged with no identifier");
                }
                acked.append(&identifier)?;
                report.acked += 1;
                report.duplicates += u64::from(response.duplicate);
                if let Some(status) = other_status {
                    *report.issued_as_valid.entry(status).or_default() += 1;
                }
            }
            Err(ClientError::Status(status)) => {
                let (what, counts) = match retryable(&status) {
                    true => ("failed after retries", &mut report.failed),
                    false => ("refused", &mut report.refused),
                };
                *counts
                    .entry(code_name(status.code()).to_owned())
                    .or_default() += 1;
                show(format!("line {line}: {what}: {}", describe_status(&status)));
            }
            Err(other) => return Err(other.into()),
        }
    }
    report.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    emit(ctx.output, &report)?;
    each_outcome(&report)
}

fn each_outcome(report: &IssueEachReport) -> anyhow::Result<()> {
    let (failed, refused) = (report.failed_total(), report.refused_total());
    let summary = format!(
        "{} of {} records acknowledged; {refused} refused, {failed} failed after retries, {} \
         rejected locally",
        report.acked, report.records, report.rejected_locally
    );
    if failed > 0 {
        return Err(reported(UNAVAILABLE, summary));
    }
    if refused + report.rejected_locally > 0 {
        return Err(reported(FAILURE, summary));
    }
    Ok(())
}

/// The identifiers of an acked file: one per line, trimmed; blank lines and lines starting
/// with `#` are skipped.
pub fn parse_acked(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// `first` then `more`, each identifier once, in order of first appearance.
pub fn merge_identifiers(first: Vec<String>, more: &[String]) -> Vec<String> {
    let mut seen = HashSet::new();
    first
        .into_iter()
        .chain(more.iter().map(|s| s.trim().to_owned()))
        .filter(|id| !id.is_empty() && seen.insert(id.clone()))
        .collect()
}

/// What a read of one acknowledged identifier found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// Stored.
    Present,
    /// NOT_FOUND, or an answer without that license.
    Missing,
    /// The read failed; the code and message, and whether retries ran out (else refused).
    Error { line: String, unavailable: bool },
}

/// One identifier that is not confirmed present.
#[derive(Clone, Debug, Serialize)]
pub struct Unconfirmed {
    pub identifier: String,
    pub error: String,
}

/// The result of `check-acked`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CheckReport {
    pub checked: usize,
    pub present: usize,
    pub missing: Vec<String>,
    /// Identifiers that could not be read.
    pub errors: Vec<Unconfirmed>,
    pub elapsed_ms: u64,
}

impl CheckReport {
    /// Books the outcome of one identifier.
    pub fn add(&mut self, identifier: &str, found: Found) {
        self.checked += 1;
        match found {
            Found::Present => self.present += 1,
            Found::Missing => self.missing.push(identifier.to_owned()),
            Found::Error { line, .. } => self.errors.push(Unconfirmed {
                identifier: identifier.to_owned(),
                error: line,
            }),
        }
    }

    /// The headline: `N of M acknowledged writes present`.
    pub fn headline(&self) -> String {
        format!(
            "{} of {} acknowledged writes present",
            self.present, self.checked
        )
    }
}

impl CheckReport {
    /// The plain-text form: the headline, then one line per missing or unread identifier.
    pub fn text(&self) -> String {
        let mut out = self.headline() + "\n";
        for id in &self.missing {
            out += &format!("missing: {id}\n");
        }
        for e in &self.errors {
            out += &format!("not read: {}: {}\n", e.identifier, e.error);
        }
        out
    }
}

/// Classifies the answer to GetByIdentifier(`identifier`).
pub fn classify_read(identifier: &str, result: Result<pb::GetResponse, ClientError>) -> Found {
    match result {
        Ok(r) => match r.license {
            Some(l) if l.identifier == identifier => Found::Present,
            Some(l) => Found::Error {
                line: format!("the server returned {} instead", l.identifier),
                unavailable: false,
            },
            None => Found::Missing,
        },
        Err(ClientError::Status(s)) if s.code() == Code::NotFound => Found::Missing,
        Err(ClientError::Status(s)) => Found::Error {
            line: describe_status(&s),
            unavailable: retryable(&s),
        },
        Err(other) => Found::Error {
            line: other.to_string(),
            unavailable: false,
        },
    }
}

async fn read_one(mut client: Client, identifier: String) -> (String, Found) {
    let request = pb::GetByIdentifierRequest {
        identifier: identifier.clone(),
        consistency: convert::consistency(false),
        max_staleness_ms: 0,
    };
    let result = client
        .retrying(|ch| {
            let request = request.clone();
            async move { LicensesClient::new(ch).get_by_identifier(request).await }
        })
        .await;
    let found = classify_read(&identifier, result);
    (identifier, found)
}

fn read_acked_file(path: &PathBuf) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    Ok(parse_acked(&text))
}

/// `licctl check-acked`.
pub async fn check_acked(ctx: &Ctx, args: CheckAckedArgs) -> anyhow::Result<()> {
    let identifiers = merge_identifiers(read_acked_file(&args.file)?, &args.identifiers);
    let client = ctx.client()?.with_retry(retry_policy(CHECK_ATTEMPTS));
    let started = Instant::now();
    let mut reads = futures::stream::iter(identifiers)
        .map(|id| read_one(client.clone(), id))
        .buffered(CHECK_CONCURRENCY);
    let mut report = CheckReport::default();
    let mut unavailable = 0;
    while let Some((identifier, found)) = reads.next().await {
        if let Found::Error {
            unavailable: true, ..
        } = &found
        {
            unavailable += 1;
        }
        report.add(&identifier, found);
    }
    report.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match ctx.output {
        OutputFormat::Table => print!("{}", report.text()),
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    let (missing, errors) = (report.missing.len(), report.errors.len());
    if missing > 0 || errors > unavailable {
        return Err(reported(
            FAILURE,
            format!(
                "{missing} acknowledged writes missing, {errors} not readable ({})",
                report.headline()
            ),
        ));
    }
    if errors > 0 {
        return Err(reported(
            UNAVAILABLE,
            format!("{errors} identifiers could not be read; the cluster did not answer"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Format;
    use tonic::Status;

    #[test]
    fn acked_files_parse() {
        let cases: [(&str, &[&str]); 5] = [
            ("A\nB\n", &["A", "B"]),
            ("A\r\n\n  B  \n", &["A", "B"]),
            ("# run 1\nA\n#B\n", &["A"]),
            ("", &[]),
            ("A", &["A"]),
        ];
        for (text, want) in cases {
            assert_eq!(parse_acked(text), want, "{text:?}");
        }
    }

    #[test]
    fn command_line_identifiers_are_added_once() {
        let file = vec!["A".to_owned(), "B".to_owned(), "A".to_owned()];
        let more = ["C".to_owned(), " B ".to_owned(), String::new()];
        assert_eq!(merge_identifiers(file, &more), ["A", "B", "C"]);
    }

    #[test]
    fn acked_file_appends_whole_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("acked.txt");
        std::fs::write(&path, "OLD\n").expect("seed");
        let mut acked = AckedFile::open(Some(&path)).expect("open");
        acked.append("ID1").expect("append");
        acked.append("ID2").expect("append");
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(parse_acked(&text), ["OLD", "ID1", "ID2"]);
        AckedFile::open(None)
            .expect("none")
            .append("x")
            .expect("noop");
    }

    fn sample_source(line: &str) -> SourceRecord {
        let mut reader = RecordReader::new(line.as_bytes(), Format::Jsonl).expect("reader");
        reader.next().expect("one record")
    }

    fn sample_line() -> String {
        let record: Record =
            serde_json::from_str(crate::dataset::tests::SAMPLE_JSON).expect("sample");
        serde_json::to_string(&record).expect("json")
    }

    #[test]
    fn records_become_issue_requests_with_stable_ids() {
        let good = sample_line();
        let (a, status) = issue_request(sample_source(&good), false).expect("parses");
        let (b, _) = issue_request(sample_source(&good), true).expect("parses");
        assert!(a.request_id.starts_with("each-"), "{}", a.request_id);
        assert_eq!(a.request_id, b.request_id, "same content, same id");
        assert_eq!(status, None);
        assert!(!a.lenient_holder_check && b.lenient_holder_check);

        let suspended = good.replace("\"status\":\"valid\"", "\"status\":\"suspended\"");
        let (c, status) = issue_request(sample_source(&suspended), false).expect("parses");
        assert_eq!(status.as_deref(), Some("suspended"));
        assert_ne!(c.request_id, a.request_id);

        let own = good.replacen('{', "{\"request_id\":\"mine-1\",", 1);
        let (d, _) = issue_request(sample_source(&own), false).expect("parses");
        assert_eq!(d.request_id, "mine-1");

        let cases = [
            good.replace("\"citizen_id\"", "\"passport\""),
            good.replace("\"status\":\"valid\"", "\"status\":\"lost\""),
            "not json".to_owned(),
        ];
        for bad in cases {
            assert!(issue_request(sample_source(&bad), false).is_err(), "{bad}");
        }
    }

    #[test]
    fn reads_classify() {
        let license = |id: &str| pb::GetResponse {
            license: Some(pb::License {
                identifier: id.to_owned(),
                ..Default::default()
            }),
            read_revision: 1,
        };
        let status = |s: Status| Err(ClientError::Status(s));
        let cases: [(Result<pb::GetResponse, ClientError>, Found); 6] = [
            (Ok(license("X")), Found::Present),
            (Ok(pb::GetResponse::default()), Found::Missing),
            (status(Status::not_found("no such license")), Found::Missing),
            (
                Ok(license("Y")),
                Found::Error {
                    line: "the server returned Y instead".to_owned(),
                    unavailable: false,
                },
            ),
            (
                status(Status::unavailable("no leader")),
                Found::Error {
                    line: "UNAVAILABLE: no leader".to_owned(),
                    unavailable: true,
                },
            ),
            (
                status(Status::invalid_argument("bad")),
                Found::Error {
                    line: "INVALID_ARGUMENT: bad".to_owned(),
                    unavailable: false,
                },
            ),
        ];
        for (result, want) in cases {
            assert_eq!(classify_read("X", result), want);
        }
    }

    #[test]
    fn check_report_headline_and_outcomes() {
        let mut r = CheckReport::default();
        r.add("A", Found::Present);
        r.add("B", Found::Missing);
        r.add("C", Found::Present);
        assert_eq!(r.headline(), "2 of 3 acknowledged writes present");
        assert_eq!(r.missing, ["B"]);
        let want = "2 of 3 acknowledged writes present\nmissing: B\n";
        assert_eq!(r.text(), want);
    }

    #[test]
    fn issue_each_exit_codes() {
        let mut r = IssueEachReport {
            records: 3,
            acked: 3,
            ..Default::default()
        };
        assert!(each_outcome(&r).is_ok());
        r.refused.insert("FAILED_PRECONDITION".to_owned(), 1);
        let code = |r: &IssueEachReport| {
            each_outcome(r)
                .err()
                .and_then(|e| e.downcast_ref::<crate::exit::Reported>().map(|x| x.code))
        };
        assert_eq!(code(&r), Some(FAILURE));
        r.failed.insert("UNAVAILABLE".to_owned(), 1);
        assert_eq!(code(&r), Some(UNAVAILABLE));
    }
}
