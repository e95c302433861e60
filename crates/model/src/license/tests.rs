//! Tests of issue-request validation and record assembly.

use super::*;
use crate::holder::HolderKind;

fn date(s: &str) -> Date {
    Date::parse(s).expect("test date")
}

fn today() -> Date {
    date("2026-01-01")
}

fn resident_request() -> NewLicense {
    let face = [
        ("name", "王芳"),
        ("sex", "女"),
        ("ethnicity", "汉"),
        ("birth_date", "1985-06-12"),
        ("address", "上海市浦东新区世纪大道1号"),
        ("issuing_authority", "上海市公安局浦东分局"),
    ];
    NewLicense {
        type_code: "11100000000001011X001".into(),
        holder: Holder {
            kind: HolderKind::CitizenId,
            id: "310115198506120042".into(),
            name: "王芳".into(),
            legacy_checksum: false,
        },
        license_number: "310115198506120042".into(),
        issuer: Issuer {
            code: "11220000013544541J".into(),
            name: "上海市公安局浦东分局".into(),
        },
        issue_date: date("2020-01-01"),
        valid_from: date("2020-01-01"),
        valid_until: Some(date("2030-01-01")),
        region_code: "310115".into(),
        face: face.map(|(k, v)| (k.to_owned(), v.to_owned())).into(),
        serial: None,
    }
}

type Edit = fn(&mut NewLicense);

#[test]
fn validation_names_each_field() {
    let registry = TemplateRegistry::builtin();
    let cases: [(&str, Edit, Option<&str>); 26] = [
        ("unchanged", |_| {}, None),
        (
            "key instead of code",
            |n| n.type_code = "resident-id-card".into(),
            Some("type_code"),
        ),
        (
            "unknown type",
            |n| n.type_code = "11100000000001011X999".into(),
            Some("type_code"),
        ),
        (
            "holder kind",
            |n| n.holder.kind = HolderKind::Uscc,
            Some("holder.kind"),
        ),
        (
            "holder id",
            |n| n.holder.id = "310115198506120041".into(),
            Some("holder.id"),
        ),
        (
            "holder name empty",
            |n| n.holder.name = " ".into(),
            Some("holder.name"),
        ),
        (
            "holder name long",
            |n| n.holder.name = "名".repeat(129),
            Some("holder.name"),
        ),
        (
            "holder name 128",
            |n| n.holder.name = "名".repeat(128),
            None,
        ),
        (
            "number empty",
            |n| n.license_number.clear(),
            Some("license_number"),
        ),
        (
            "number long",
            |n| n.license_number = "1".repeat(129),
            Some("license_number"),
        ),
        (
            "number newline",
            |n| n.license_number.push('\n'),
            Some("license_number"),
        ),
        (
            "issuer check",
            |n| n.issuer.code = "11220000013544541K".into(),
            Some("issuer.code"),
        ),
        (
            "issuer short",
            |n| n.issuer.code = "12345".into(),
            Some("issuer.code"),
        ),
        ("issuer region", |n| n.issuer.code = "340100".into(), None),
        (
            "issuer province",
            |n| n.issuer.code = "990100".into(),
            Some("issuer.code"),
        ),
        (
            "issuer name",
            |n| n.issuer.name.clear(),
            Some("issuer.name"),
        ),
        (
            "region unknown",
            |n| n.region_code = "310199".into(),
            Some("region_code"),
        ),
        ("region province", |n| n.region_code = "310000".into(), None),
        (
            "issued tomorrow",
            |n| n.issue_date = date("2026-01-02"),
            Some("issue_date"),
        ),
        (
            "until before from",
            |n| n.valid_until = Some(date("2019-12-31")),
            Some("valid_until"),
        ),
        ("long-term", |n| n.valid_until = None, None),
        (
            "face missing",
            |n| drop(n.face.remove("name")),
            Some("face.name"),
        ),
        (
            "face unknown",
            |n| drop(n.face.insert("x".into(), "1".into())),
            Some("face.x"),
        ),
        (
            "serial charset",
            |n| n.serial = Some("ab-1".into()),
            Some("serial"),
        ),
        (
            "serial empty",
            |n| n.serial = Some(String::new()),
            Some("serial"),
        ),
        (
            "serial lowercase hex",
            |n| n.serial = Some("9f8e7d".into()),
            None,
        ),
    ];
    for (name, edit, expected) in cases {
        let mut request = resident_request();
        edit(&mut request);
        let result = validate_new_license(&request, &registry, CheckMode::Strict, today());
        let field = result.as_ref().err().and_then(ModelError::field);
        assert_eq!(field, expected, "{name}: {result:?}");
    }
}

#[test]
fn too_many_face_fields() {
    let registry = TemplateRegistry::builtin();
    let mut request = resident_request();
    for i in 0..60 {
        request.face.insert(format!("extra_{i}"), "x".into());
    }
    let result = validate_new_license(&request, &registry, CheckMode::Strict, today());
    assert_eq!(
        result.err().as_ref().and_then(ModelError::field),
        Some("face")
    );
}

fn business_request(holder_id: &str) -> NewLicense {
    let face = [
        ("company_name", "某某科技有限公司"),
        ("company_type", "有限责任公司"),
        ("legal_representative", "李四"),
        ("established_date", "2015-03-01"),
        ("business_scope", "技术开发"),
        ("address", "福建省福州市"),
        ("registration_authority", "福州市市场监督管理局"),
    ];
    NewLicense {
        type_code: "1110000000000401XA004".into(),
        holder: Holder {
            kind: HolderKind::Uscc,
            id: holder_id.into(),
            name: "某某科技有限公司".into(),
            legacy_checksum: false,
        },
        face: face.map(|(k, v)| (k.to_owned(), v.to_owned())).into(),
        valid_until: None,
        region_code: "350102".into(),
        ..resident_request()
    }
}

#[test]
fn lenient_mode_flags_legacy_holder_codes() {
    let registry = TemplateRegistry::builtin();
    let cases = [
        ("91110000600037341L", CheckMode::Strict, Some(false)),
        ("91350100M0001TGQXM", CheckMode::Strict, None),
        ("91350100M0001TGQXM", CheckMode::Lenient, Some(true)),
        ("91310115MA1K3YJ12H", CheckMode::Lenient, None),
    ];
    for (holder_id, mode, expected) in cases {
        let request = business_request(holder_id);
        let result = validate_new_license(&request, &registry, mode, today());
        let legacy = result.as_ref().ok().map(|v| v.holder_check.legacy_checksum);
        assert_eq!(legacy, expected, "{holder_id} {mode:?}: {result:?}");
        if let Ok(validated) = result {
            assert_eq!(validated.template.key, "business-license");
        }
    }
}

#[test]
fn build_license_sets_issue_state() {
    let request = resident_request();
    let identifier = Identifier::generate(&request.type_code, &request.issuer.code, "A1", 1)
        .expect("identifier");
    let license = build_license(request.clone(), identifier.clone(), true);
    assert_eq!(license.identifier, identifier.to_string());
    assert_eq!(license.status, LicenseStatus::Valid);
    assert_eq!(license.version, 1);
    assert_eq!(license.revision, 0);
    assert!(license.holder.legacy_checksum);
    assert!(license.digest_matches());
    assert_eq!(license.face, request.face);
    assert_eq!(
        (license.replaces.as_ref(), license.superseded_by.as_ref()),
        (None, None)
    );
}

#[test]
fn expiry_by_date() {
    let request = resident_request();
    let identifier = Identifier::generate(&request.type_code, &request.issuer.code, "A1", 1)
        .expect("identifier");
    let mut license = build_license(request, identifier, false);
    // (status, valid_until, today, expired?, effective status)
    let cases = [
        (
            LicenseStatus::Valid,
            Some("2030-01-01"),
            "2030-01-01",
            false,
            LicenseStatus::Valid,
        ),
        (
            LicenseStatus::Valid,
            Some("2030-01-01"),
            "2030-01-02",
            true,
            LicenseStatus::Expired,
        ),
        (
            LicenseStatus::Valid,
            None,
            "2999-12-31",
            false,
            LicenseStatus::Valid,
        ),
        (
            LicenseStatus::Suspended,
            Some("2030-01-01"),
            "2031-01-01",
            true,
            LicenseStatus::Expired,
        ),
        (
            LicenseStatus::Suspended,
            Some("2030-01-01"),
            "2030-01-01",
            false,
            LicenseStatus::Suspended,
        ),
        (
            LicenseStatus::Revoked,
            Some("2030-01-01"),
            "2031-01-01",
            true,
            LicenseStatus::Revoked,
        ),
    ];
    for (status, until, on, expired, effective) in cases {
        license.status = status;
        license.valid_until = until.map(date);
        assert_eq!(
            license.is_expired_on(date(on)),
            expired,
            "{status} {until:?} {on}"
        );
        assert_eq!(
            license.effective_status(date(on)),
            effective,
            "{status} {until:?} {on}"
        );
    }
}

#[test]
fn status_reason_limits() {
    let limits = Limits::default();
    let long = "因".repeat(513);
    let cases = [
        (None, true),
        (Some("依法吊销"), true),
        (Some(""), false),
        (Some(&*long), false),
    ];
    for (reason, ok) in cases {
        assert_eq!(
            validate_status_reason(reason, &limits).is_ok(),
            ok,
            "{reason:?}"
        );
    }
}

#[test]
fn invisible_or_reordering_text_is_refused() {
    let templates = TemplateRegistry::builtin();
    let cases = [
        ("\u{200B}", false),
        ("\u{FEFF}\u{FEFF}", false),
        (" \u{2060} ", false),
        ("张\u{202E}三", false),
        ("张\u{2067}三", false),
        ("张三", true),
        ("Zhang San", true),
    ];
    for (name, ok) in cases {
        let mut req = resident_request();
        req.holder.name = name.to_string();
        let result = validate_new_license(&req, &templates, CheckMode::Strict, today());
        assert_eq!(result.is_ok(), ok, "{name:?}: {result:?}");
        if let Err(e) = result {
            assert_eq!(e.field(), Some("holder.name"), "{name:?}");
        }
    }
}
