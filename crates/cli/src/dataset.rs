//! The dataset record format shared by `licctl gen` (writes it) and `licctl import` (reads it).
//!
//! One record is one license to load, mirroring the proto `ImportRecord`. Two encodings exist.
//!
//! # JSONL (default; `.jsonl`, `.ndjson`, `.json`)
//!
//! One JSON object per line; blank lines are skipped. Unknown keys are rejected.
//!
//! ```json
//! {"request_id": "optional idempotency key",
//!  "identifier": "optional GB/T 36904 identifier for historic stock",
//!  "license": {
//!    "type_code": "11100000000001011X001 or a template key such as resident-id-card",
//!    "holder": {"kind": "citizen_id | uscc", "id": "310115198506120042", "name": "王芳"},
//!    "license_number": "310115198506120042",
//!    "issuer": {"code": "18-char USCC of the issuing office",
//!               "name": "上海市公安局浦东分局"},
//!    "issue_date": "2019-03-02", "valid_from": "2019-03-02",
//!    "valid_until": "2039-03-02  (empty string = long-term)",
//!    "region_code": "310115",
//!    "face": {"name": "王芳", "sex": "女", "...": "per the template's fields"},
//!    "serial": "optional identifier serial"},
//!  "lenient_holder_check": false,
//!  "status": "valid | suspended | revoked | cancelled | expired | transferred-out |
//!             revoked-as-penalty | other  (or the national code 01..07, 99)",
//!  "status_reason": "free text, needed with other",
//!  "seal_bundle": "hex of the issuing authority's seal bundle over the record as stored"}
//! ```
//!
//! `request_id`, `identifier`, `serial`, `status_reason`, `seal_bundle` and
//! `lenient_holder_check` may be omitted; `status` defaults to `valid`, `valid_until` and `face`
//! to empty. The holder kind also accepts the GB/T 36903 codes `111` and `001`.
//!
//! # CSV (`.csv`)
//!
//! A header row and one flat row per record, columns in this order (see [`CSV_COLUMNS`]):
//! `request_id, identifier, type_code, holder_kind, holder_id, holder_name, license_number,
//! issuer_code, issuer_name, issue_date, valid_from, valid_until, region_code, serial, status,
//! status_reason, lenient_holder_check, face, seal_bundle`. The `face` column holds the face
//! fields as one JSON object (`{"name":"王芳","sex":"女"}`), quoted by the CSV rules. Empty
//! cells mean the same as omitted JSON keys; `lenient_holder_check` is `true`/`false` or empty;
//! `seal_bundle` is hex, as in JSONL. A file without the `seal_bundle` column is unsealed.
//!
//! # Idempotency
//!
//! `licctl import` sends records that carry neither `request_id` nor `identifier` with a request
//! id derived from the record's content ([`Record::content_request_id`]), so re-running an
//! import, or repeating a chunk after a lost answer, never stores a record twice.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use anyhow::{bail, Context};
use licstore_model::{HolderKind, LicenseStatus};
use licstore_proto::v1 as pb;
use serde::{Deserialize, Serialize};

use crate::convert;

/// The column names of the CSV encoding, in order.
pub const CSV_COLUMNS: [&str; 19] = [
    "request_id",
    "identifier",
    "type_code",
    "holder_kind",
    "holder_id",
    "holder_name",
    "license_number",
    "issuer_code",
    "issuer_name",
    "issue_date",
    "valid_from",
    "valid_until",
    "region_code",
    "serial",
    "status",
    "status_reason",
    "lenient_holder_check",
    "face",
    "seal_bundle",
];

/// One dataset record (see the module doc).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Idempotency key.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub request_id: String,
    /// Identifier to store the record under (historic stock).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub identifier: String,
    /// The license content.
    pub license: LicenseInput,
    /// Accept a holder id with a wrong check character.
    #[serde(default, skip_serializing_if = "is_false")]
    pub lenient_holder_check: bool,
    /// Initial status name or code.
    #[serde(default = "default_status")]
    pub status: String,
    /// Reason for the status.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status_reason: String,
    /// The issuing authority's seal bundle over the record as it will be stored, in hex.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub seal_bundle: String,
}

/// The content of a license, mirroring the proto `NewLicense`. Also the `--file` format of
/// `licctl issue` and `licctl amend`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LicenseInput {
    /// Type code or template key.
    #[serde(default)]
    pub type_code: String,
    /// The holder.
    #[serde(default)]
    pub holder: HolderInput,
    /// The number printed on the license.
    #[serde(default)]
    pub license_number: String,
    /// The issuing office.
    #[serde(default)]
    pub issuer: IssuerInput,
    /// `YYYY-MM-DD`.
    #[serde(default)]
    pub issue_date: String,
    /// `YYYY-MM-DD`.
    #[serde(default)]
    pub valid_from: String,
    /// `YYYY-MM-DD`, empty for long-term.
    #[serde(default)]
    pub valid_until: String,
    /// GB/T 2260 region code.
    #[serde(default)]
    pub region_code: String,
    /// Face fields.
    #[serde(default)]
    pub face: BTreeMap<String, String>,
    /// Optional identifier serial.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub serial: String,
}

/// A holder as written in a record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HolderInput {
    /// `citizen_id` or `uscc` (or `111` / `001`).
    #[serde(default)]
    pub kind: String,
    /// Citizen ID number or USCC.
    #[serde(default)]
    pub id: String,
    /// Person or organisation name.
    #[serde(default)]
    pub name: String,
}

/// An issuer as written in a record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerInput {
    /// USCC of the issuing office (or a region code).
    #[serde(default)]
    pub code: String,
    /// Office name.
    #[serde(default)]
    pub name: String,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn default_status() -> String {
    LicenseStatus::Valid.as_str().to_owned()
}

/// A value that could not be turned into a proto message, with the field it concerns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted field name, e.g. `license.holder.kind`.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl LicenseInput {
    /// The proto `NewLicense`; fails only on an unknown holder kind.
    pub fn to_proto(&self) -> Result<pb::NewLicense, FieldError> {
        Ok(pb::NewLicense {
            type_code: self.type_code.clone(),
            holder: Some(self.holder.to_proto()?),
            license_number: self.license_number.clone(),
            issuer: Some(pb::Issuer {
                code: self.issuer.code.clone(),
                name: self.issuer.name.clone(),
            }),
            issue_date: self.issue_date.clone(),
            valid_from: self.valid_from.clone(),
            valid_until: self.valid_until.clone(),
            region_code: self.region_code.clone(),
            face: self.face.clone().into_iter().collect(),
            serial: self.serial.clone(),
        })
    }

    /// The domain form, for tests that check generated content with the model's own rules.
    /// Panics on unparsable dates or kinds: test input only.
    #[cfg(test)]
    pub(crate) fn to_model(&self) -> licstore_model::NewLicense {
        let date = |s: &str| licstore_model::Date::parse(s).expect("date");
        licstore_model::NewLicense {
            type_code: self.type_code.clone(),
            holder: licstore_model::Holder {
                kind: self.holder.kind.parse::<HolderKind>().expect("kind"),
                id: self.holder.id.clone(),
                name: self.holder.name.clone(),
                legacy_checksum: false,
            },
            license_number: self.license_number.clone(),
            issuer: licstore_model::Issuer {
                code: self.issuer.code.clone(),
                name: self.issuer.name.clone(),
            },
            issue_date: date(&self.issue_date),
            valid_from: date(&self.valid_from),
            valid_until: (!self.valid_until.is_empty()).then(|| date(&self.valid_until)),
            region_code: self.region_code.clone(),
            face: self.face.clone(),
            serial: None,
        }
    }

    /// The editable content of a stored license (identifier, status and revision dropped).
    pub fn from_license(license: &pb::License) -> LicenseInput {
        let holder = license.holder.clone().unwrap_or_default();
        let issuer = license.issuer.clone().unwrap_or_default();
        LicenseInput {
            type_code: license.type_code.clone(),
            holder: HolderInput {
                kind: convert::holder_kind_name(holder.kind).to_owned(),
                id: holder.id,
                name: holder.name,
            },
            license_number: license.license_number.clone(),
            issuer: IssuerInput {
                code: issuer.code,
                name: issuer.name,
            },
            issue_date: license.issue_date.clone(),
            valid_from: license.valid_from.clone(),
            valid_until: license.valid_until.clone(),
            region_code: license.region_code.clone(),
            face: license.face.clone().into_iter().collect(),
            serial: String::new(),
        }
    }
}

impl HolderInput {
    fn to_proto(&self) -> Result<pb::Holder, FieldError> {
        let kind = self.kind.parse::<HolderKind>().map_err(|e| FieldError {
            field: "license.holder.kind".to_owned(),
            reason: e.to_string(),
        })?;
        Ok(pb::Holder {
            kind: convert::holder_kind_to_proto(kind) as i32,
            id: self.id.clone(),
            name: self.name.clone(),
            legacy_checksum: false,
        })
    }
}

impl Record {
    /// The proto `ImportRecord`. A record without request id and identifier gets
    /// [`Record::content_request_id`].
    pub fn to_proto(&self) -> Result<pb::ImportRecord, FieldError> {
        let status = self
            .status
            .parse::<LicenseStatus>()
            .map_err(|e| FieldError {
                field: "status".to_owned(),
                reason: e.to_string(),
            })?;
        let request_id = match (self.request_id.is_empty(), self.identifier.is_empty()) {
            (true, true) => self.content_request_id(),
            _ => self.request_id.clone(),
        };
        Ok(pb::ImportRecord {
            request_id,
            identifier: self.identifier.clone(),
            license: Some(self.license.to_proto()?),
            lenient_holder_check: self.lenient_holder_check,
            status: convert::status_to_proto(status) as i32,
            status_reason: self.status_reason.clone(),
            seal_bundle: crate::seals::unhex(self.seal_bundle.trim()).map_err(|e| FieldError {
                field: "seal_bundle".to_owned(),
                reason: e,
            })?,
        })
    }

    /// A stored license version as an import record for another store: its identifier, status
    /// and seal, so the other store keeps it exactly as sealed.
    pub fn of_license(license: &licstore_model::License) -> Record {
        Record {
            request_id: String::new(),
            identifier: license.identifier.clone(),
            license: LicenseInput {
                type_code: license.type_code.clone(),
                holder: HolderInput {
                    kind: license.holder.kind.as_str().to_owned(),
                    id: license.holder.id.clone(),
                    name: license.holder.name.clone(),
                },
                license_number: license.license_number.clone(),
                issuer: IssuerInput {
                    code: license.issuer.code.clone(),
                    name: license.issuer.name.clone(),
                },
                issue_date: license.issue_date.to_string(),
                valid_from: license.valid_from.to_string(),
                valid_until: license
                    .valid_until
                    .map(|d| d.to_string())
                    .unwrap_or_default(),
                region_code: license.region_code.clone(),
                face: license.face.clone(),
                serial: String::new(),
            },
            lenient_holder_check: false,
            status: license.status.as_str().to_owned(),
            status_reason: license.status_reason.clone().unwrap_or_default(),
            seal_bundle: crate::seals::hex(&license.seal),
        }
    }

    /// `imp-` and 32 hex digits of the blake3 hash of the record's JSON encoding: equal content
    /// gives an equal id, whichever file encoding it came from.
    pub fn content_request_id(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        let hash = blake3::hash(&json);
        format!("imp-{}", &hash.to_hex()[..32])
    }
}

/// A file encoding of records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// Flat columns with the face as a JSON string.
    Csv,
}

impl Format {
    /// `.csv` → CSV, anything else → JSONL.
    pub fn from_path(path: &Path) -> Format {
        let is_csv = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        if is_csv {
            Format::Csv
        } else {
            Format::Jsonl
        }
    }
}

/// The flat CSV row of a record.
#[derive(Debug, Default, Serialize, Deserialize)]
struct CsvRow {
    #[serde(default)]
    request_id: String,
    #[serde(default)]
    identifier: String,
    type_code: String,
    holder_kind: String,
    holder_id: String,
    holder_name: String,
    license_number: String,
    issuer_code: String,
    issuer_name: String,
    issue_date: String,
    valid_from: String,
    #[serde(default)]
    valid_until: String,
    region_code: String,
    #[serde(default)]
    serial: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    status_reason: String,
    #[serde(default)]
    lenient_holder_check: String,
    #[serde(default)]
    face: String,
    #[serde(default)]
    seal_bundle: String,
}

impl CsvRow {
    fn from_record(r: &Record) -> CsvRow {
        let l = &r.license;
        CsvRow {
            request_id: r.request_id.clone(),
            identifier: r.identifier.clone(),
            type_code: l.type_code.clone(),
            holder_kind: l.holder.kind.clone(),
            holder_id: l.holder.id.clone(),
            holder_name: l.holder.name.clone(),
            license_number: l.license_number.clone(),
            issuer_code: l.issuer.code.clone(),
            issuer_name: l.issuer.name.clone(),
            issue_date: l.issue_date.clone(),
            valid_from: l.valid_from.clone(),
            valid_until: l.valid_until.clone(),
            region_code: l.region_code.clone(),
            serial: l.serial.clone(),
            status: r.status.clone(),
            status_reason: r.status_reason.clone(),
            lenient_holder_check: if r.lenient_holder_check { "true" } else { "" }.to_owned(),
            face: serde_json::to_string(&l.face).unwrap_or_default(),
            seal_bundle: r.seal_bundle.clone(),
        }
    }

    fn into_record(self) -> Result<Record, String> {
        let face = match self.face.trim() {
            "" => BTreeMap::new(),
            text => serde_json::from_str(text).map_err(|e| format!("face: {e}"))?,
        };
        let lenient = match self.lenient_holder_check.trim() {
            "" | "false" => false,
            "true" => true,
            other => return Err(format!("lenient_holder_check: {other:?} is not true/false")),
        };
        let status = if self.status.is_empty() {
            default_status()
        } else {
            self.status
        };
        Ok(Record {
            request_id: self.request_id,
            identifier: self.identifier,
            license: LicenseInput {
                type_code: self.type_code,
                holder: HolderInput {
                    kind: self.holder_kind,
                    id: self.holder_id,
                    name: self.holder_name,
                },
                license_number: self.license_number,
                issuer: IssuerInput {
                    code: self.issuer_code,
                    name: self.issuer_name,
                },
                issue_date: self.issue_date,
                valid_from: self.valid_from,
                valid_until: self.valid_until,
                region_code: self.region_code,
                face,
                serial: self.serial,
            },
            lenient_holder_check: lenient,
            status,
            status_reason: self.status_reason,
            seal_bundle: self.seal_bundle,
        })
    }
}

/// Writes records in one encoding.
pub enum RecordWriter<W: Write> {
    /// JSONL.
    Jsonl(W),
    /// CSV (the header is written with the first record).
    Csv(Box<csv::Writer<W>>),
}

impl RecordWriter<BufWriter<File>> {
    /// Creates (truncates) `path`.
    pub fn create(path: &Path, format: Format) -> anyhow::Result<Self> {
        let file = File::create(path).with_context(|| format!("create {}", path.display()))?;
        Ok(RecordWriter::new(BufWriter::new(file), format))
    }
}

impl<W: Write> RecordWriter<W> {
    /// Wraps a writer.
    pub fn new(out: W, format: Format) -> Self {
        match format {
            Format::Jsonl => RecordWriter::Jsonl(out),
            Format::Csv => RecordWriter::Csv(Box::new(csv::Writer::from_writer(out))),
        }
    }

    /// Appends one record.
    pub fn write(&mut self, record: &Record) -> anyhow::Result<()> {
        match self {
            RecordWriter::Jsonl(out) => {
                serde_json::to_writer(&mut *out, record)?;
                out.write_all(b"\n")?;
            }
            RecordWriter::Csv(out) => out.serialize(CsvRow::from_record(record))?,
        }
        Ok(())
    }

    /// Flushes and returns the inner writer.
    pub fn finish(self) -> anyhow::Result<W> {
        match self {
            RecordWriter::Jsonl(mut out) => {
                out.flush()?;
                Ok(out)
            }
            RecordWriter::Csv(out) => out
                .into_inner()
                .map_err(|e| anyhow::anyhow!("{}", e.error())),
        }
    }
}

/// One record read from a file: where it was, its text, and whether it parsed.
#[derive(Debug)]
pub struct SourceRecord {
    /// One-based line number in the file.
    pub line: u64,
    /// The record's original text (for CSV, the row re-encoded as one CSV line).
    pub raw: String,
    /// The record, or why it could not be parsed.
    pub parsed: Result<Record, String>,
}

/// Reads records one at a time, never failing the whole file for one bad line.
pub enum RecordReader<R: BufRead> {
    /// JSONL lines.
    Jsonl { lines: std::io::Lines<R>, line: u64 },
    /// CSV rows.
    Csv {
        reader: Box<csv::Reader<R>>,
        headers: csv::StringRecord,
    },
}

impl RecordReader<BufReader<File>> {
    /// Opens `path`.
    pub fn open(path: &Path, format: Format) -> anyhow::Result<Self> {
        let file = File::open(path).with_context(|| format!("open {}", path.display()))?;
        RecordReader::new(BufReader::with_capacity(1 << 20, file), format)
    }
}

impl<R: BufRead> RecordReader<R> {
    /// Wraps a reader; for CSV the header row is read and checked here.
    pub fn new(input: R, format: Format) -> anyhow::Result<Self> {
        match format {
            Format::Jsonl => Ok(RecordReader::Jsonl {
                lines: input.lines(),
                line: 0,
            }),
            Format::Csv => {
                let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(input);
                let headers = reader.headers().context("read CSV header")?.clone();
                check_csv_headers(&headers)?;
                Ok(RecordReader::Csv {
                    reader: Box::new(reader),
                    headers,
                })
            }
        }
    }
}

fn check_csv_headers(headers: &csv::StringRecord) -> anyhow::Result<()> {
    let known: Vec<&str> = CSV_COLUMNS.to_vec();
    if let Some(unknown) = headers.iter().find(|h| !known.contains(h)) {
        bail!("CSV header: unknown column {unknown:?}");
    }
    Ok(())
}

impl<R: BufRead> Iterator for RecordReader<R> {
    type Item = SourceRecord;

    fn next(&mut self) -> Option<SourceRecord> {
        match self {
            RecordReader::Jsonl { lines, line } => next_jsonl(lines, line),
            RecordReader::Csv { reader, headers } => next_csv(reader, headers),
        }
    }
}

fn next_jsonl<R: BufRead>(lines: &mut std::io::Lines<R>, line: &mut u64) -> Option<SourceRecord> {
    loop {
        *line += 1;
        let text = match lines.next()? {
            Ok(text) => text,
            Err(e) => {
                let parsed = Err(format!("unreadable line: {e}"));
                return Some(SourceRecord {
                    line: *line,
                    raw: String::new(),
                    parsed,
                });
            }
        };
        if text.trim().is_empty() {
            continue;
        }
        let parsed = serde_json::from_str::<Record>(&text).map_err(|e| e.to_string());
        return Some(SourceRecord {
            line: *line,
            raw: text,
            parsed,
        });
    }
}

fn next_csv<R: BufRead>(
    reader: &mut csv::Reader<R>,
    headers: &csv::StringRecord,
) -> Option<SourceRecord> {
    let mut row = csv::StringRecord::new();
    let line = reader.position().line();
    match reader.read_record(&mut row) {
        Ok(false) => None,
        Err(e) => Some(SourceRecord {
            line,
            raw: String::new(),
            parsed: Err(e.to_string()),
        }),
        Ok(true) => {
            let line = row.position().map_or(line, csv::Position::line);
            let parsed = row
                .deserialize::<CsvRow>(Some(headers))
                .map_err(|e| e.to_string())
                .and_then(CsvRow::into_record);
            Some(SourceRecord {
                line,
                raw: csv_line(&row),
                parsed,
            })
        }
    }
}

/// The row as one CSV line (without the newline).
fn csv_line(row: &csv::StringRecord) -> String {
    let mut out = csv::Writer::from_writer(Vec::new());
    let bytes = match out.write_record(row) {
        Ok(()) => out.into_inner().unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    String::from_utf8_lossy(&bytes).trim_end().to_owned()
}

/// Counts the lines of a file quickly (for the progress bar's length).
pub fn count_lines(path: &Path) -> anyhow::Result<u64> {
    use std::io::Read;
    let mut file = File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut buffer = vec![0u8; 1 << 20];
    let mut count = 0u64;
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            return Ok(count);
        }
        count += buffer[..n].iter().filter(|&&b| b == b'\n').count() as u64;
    }
}

#[cfg(test)]
pub(crate) mod tests;
