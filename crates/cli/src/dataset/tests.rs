//! Tests of the dataset format: JSONL and CSV round trips, defaults, proto mapping.

use super::*;

/// One record in the JSONL form, used by the import tests too.
pub(crate) const SAMPLE_JSON: &str = r#"{
  "license": {
    "type_code": "11100000000001011X001",
    "holder": {"kind": "citizen_id", "id": "310115198506120042", "name": "王芳"},
    "license_number": "310115198506120042",
    "issuer": {"code": "11310115000000000X", "name": "上海市公安局浦东分局"},
    "issue_date": "2019-03-02", "valid_from": "2019-03-02", "valid_until": "2039-03-02",
    "region_code": "310115",
    "face": {"name": "王芳", "sex": "女",
             "address": "上海市浦东新区张江路1弄2号301室, \"A\"座"}
  },
  "status": "valid"
}"#;

fn sample() -> Record {
    serde_json::from_str(SAMPLE_JSON).expect("sample parses")
}

fn variants() -> Vec<Record> {
    let mut suspended = sample();
    suspended.status = "suspended".into();
    suspended.status_reason = "暂扣审查".into();
    suspended.request_id = "r-1".into();
    let mut long_term = sample();
    long_term.license.valid_until.clear();
    long_term.license.face.clear();
    long_term.identifier = "1.2.156.3005.2.X.Y.1.001.0".into();
    long_term.lenient_holder_check = true;
    long_term.license.serial = "2024000001".into();
    let mut sealed = sample();
    sealed.seal_bundle = "0a0b".into();
    vec![sample(), suspended, long_term, sealed]
}

fn round_trip(format: Format, records: &[Record]) -> Vec<SourceRecord> {
    let mut writer = RecordWriter::new(Vec::new(), format);
    for r in records {
        writer.write(r).expect("write");
    }
    let bytes = writer.finish().expect("finish");
    RecordReader::new(bytes.as_slice(), format)
        .expect("reader")
        .collect()
}

#[test]
fn records_survive_both_encodings() {
    for format in [Format::Jsonl, Format::Csv] {
        let records = variants();
        let read = round_trip(format, &records);
        assert_eq!(read.len(), records.len(), "{format:?}");
        for (i, (source, want)) in read.iter().zip(&records).enumerate() {
            assert_eq!(source.parsed.as_ref(), Ok(want), "{format:?} #{i}");
            assert_eq!(
                source.line,
                i as u64 + 1 + u64::from(format == Format::Csv),
                "{format:?}"
            );
            assert!(!source.raw.is_empty());
        }
    }
}

#[test]
fn csv_raw_line_reparses_and_header_is_fixed() {
    let read = round_trip(Format::Csv, &[sample()]);
    let text = format!("{}\n{}\n", CSV_COLUMNS.join(","), read[0].raw);
    let again: Vec<_> = RecordReader::new(text.as_bytes(), Format::Csv)
        .expect("reader")
        .collect();
    assert_eq!(again[0].parsed, Ok(sample()));
    let bad_header = "request_id,colour\n";
    assert!(RecordReader::new(bad_header.as_bytes(), Format::Csv).is_err());
}

#[test]
fn defaults_and_rejections() {
    // (JSONL line, parses)
    let cases = [
        (r#"{"license": {"type_code": "t"}}"#, true),
        (r#"{"license": {"type_code": "t"}, "colour": "red"}"#, false),
        (r#"{"status": "valid"}"#, false),
        (r#"not json"#, false),
    ];
    for (line, ok) in cases {
        let parsed: Vec<_> = RecordReader::new(line.as_bytes(), Format::Jsonl)
            .expect("r")
            .collect();
        assert_eq!(parsed[0].parsed.is_ok(), ok, "{line}");
    }
    let minimal: Record = serde_json::from_str(r#"{"license": {}}"#).expect("minimal");
    assert_eq!(minimal.status, "valid");
}

#[test]
fn proto_mapping() {
    let proto = sample().to_proto().expect("maps");
    let license = proto.license.as_ref().expect("license");
    let holder = license.holder.as_ref().expect("holder");
    assert_eq!(holder.kind, pb::HolderKind::CitizenId as i32);
    assert_eq!(proto.status, pb::LicenseStatus::Valid as i32);
    assert_eq!(license.face.len(), 3);
    assert!(proto.request_id.starts_with("imp-"), "{}", proto.request_id);
    // An explicit request id or an identifier suppresses the derived id.
    for r in variants().into_iter().skip(1).take(2) {
        let p = r.to_proto().expect("maps");
        assert_eq!(p.request_id, r.request_id);
    }
    let mut coded = sample();
    (coded.license.holder.kind, coded.status) = ("001".into(), "07".into());
    let p = coded.to_proto().expect("codes map");
    assert_eq!(p.status, pb::LicenseStatus::RevokedAsPenalty as i32);
}

#[test]
fn content_request_id_is_stable_and_content_bound() {
    let a = sample().content_request_id();
    assert_eq!(a, sample().content_request_id());
    assert_eq!(a.len(), 36);
    let csv_copy = round_trip(Format::Csv, &[sample()])
        .remove(0)
        .parsed
        .expect("parses");
    assert_eq!(csv_copy.content_request_id(), a);
    let mut other = sample();
    other.license.license_number.push('1');
    assert_ne!(other.content_request_id(), a);
}

#[test]
fn formats_from_paths() {
    let cases = [
        ("a.csv", Format::Csv),
        ("a.CSV", Format::Csv),
        ("a.jsonl", Format::Jsonl),
        ("a", Format::Jsonl),
    ];
    for (path, want) in cases {
        assert_eq!(Format::from_path(Path::new(path)), want, "{path}");
    }
}

#[test]
fn seal_bundles_are_hex_and_optional_in_csv() {
    let mut sealed = sample();
    sealed.seal_bundle = "0a0b".into();
    assert_eq!(sealed.to_proto().expect("proto").seal_bundle, vec![10, 11]);
    assert!(sample().to_proto().expect("proto").seal_bundle.is_empty());
    assert_ne!(sealed.content_request_id(), sample().content_request_id());
    for bad in ["0a0", "zz"] {
        let mut record = sample();
        record.seal_bundle = bad.into();
        let err = record.to_proto().expect_err("not hex");
        assert_eq!(err.field, "seal_bundle", "{bad}");
    }
    // A CSV file written before the column existed reads as unsealed.
    let read = round_trip(Format::Csv, &[sample()]);
    let header = CSV_COLUMNS[..CSV_COLUMNS.len() - 1].join(",");
    let row = read[0].raw.strip_suffix(',').expect("an empty last cell");
    let text = format!("{header}\n{row}\n");
    let old: Vec<_> = RecordReader::new(text.as_bytes(), Format::Csv)
        .expect("reader")
        .collect();
    assert_eq!(old[0].parsed, Ok(sample()));
}
