//! Tests of template loading and face validation.

use super::*;

fn face(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn resident_face() -> BTreeMap<String, String> {
    face(&[
        ("name", "张三"),
        ("sex", "男"),
        ("ethnicity", "汉"),
        ("birth_date", "1990-01-01"),
        ("address", "上海市浦东新区世纪大道1号"),
        ("issuing_authority", "上海市公安局浦东分局"),
    ])
}

#[test]
fn builtin_has_the_four_pilot_types() {
    let registry = TemplateRegistry::builtin();
    let keys: Vec<&str> = registry.iter().map(|t| t.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "resident-id-card",
            "shanghai-residence-permit",
            "birth-medical-certificate",
            "business-license"
        ]
    );
    let cases = [
        ("resident-id-card", "居民身份证", HolderKind::CitizenId),
        (
            "shanghai-residence-permit",
            "上海市居住证",
            HolderKind::CitizenId,
        ),
        (
            "birth-medical-certificate",
            "出生医学证明",
            HolderKind::CitizenId,
        ),
        ("business-license", "营业执照", HolderKind::Uscc),
    ];
    for (key, name, kind) in cases {
        let by_key = registry.get(key).expect(key);
        assert_eq!(by_key.name, name);
        assert_eq!(by_key.holder_kind, kind);
        assert_eq!(registry.get(&by_key.type_code), Ok(by_key));
    }
    assert_eq!(PILOT_TOML.parse::<toml::Table>().map(|_| ()), Ok(()));
    assert_eq!(
        TemplateRegistry::from_toml(PILOT_TOML).map(|r| r.len()),
        Ok(4)
    );
}

#[test]
fn unknown_type_is_reported() {
    let registry = TemplateRegistry::builtin();
    let error = registry.get("drivers-license").expect_err("unknown");
    assert_eq!(
        error,
        ModelError::UnknownLicenseType {
            type_code: "drivers-license".into()
        }
    );
}

#[test]
fn face_validation_table() {
    let registry = TemplateRegistry::builtin();
    let template = registry.get("resident-id-card").unwrap();
    let long_address = "路".repeat(129);
    // (edit: key, value or None to remove; expected error field or None)
    let cases: [(&str, Option<&str>, Option<&str>); 11] = [
        ("name", Some("张三"), None),
        ("name", None, Some("face.name")),
        ("name", Some("   "), Some("face.name")),
        ("sex", Some("男性"), Some("face.sex")),
        ("ethnicity", Some("Han"), Some("face.ethnicity")),
        ("birth_date", Some("1990-02-30"), Some("face.birth_date")),
        ("birth_date", Some("19900228"), None),
        ("address", Some(long_address.as_str()), Some("face.address")),
        ("address", Some("上海\u{7}"), Some("face.address")),
        ("address", Some("上海\n浦东"), None),
        ("blood_type", Some("A"), Some("face.blood_type")),
    ];
    for (key, value, expected) in cases {
        let mut data = resident_face();
        match value {
            Some(v) => data.insert(key.to_owned(), v.to_owned()),
            None => data.remove(key),
        };
        let result = template.validate_face(&data);
        let field = result.as_ref().err().and_then(ModelError::field);
        assert_eq!(field, expected, "{key}={value:?}: {result:?}");
    }
}

#[test]
fn kinds_and_patterns() {
    let registry = TemplateRegistry::builtin();
    let birth = registry.get("birth-medical-certificate").unwrap();
    let business = registry.get("business-license").unwrap();
    let cases: [(&LicenseTemplate, &str, &str, bool); 12] = [
        (birth, "certificate_number", "O310123456", true),
        (birth, "certificate_number", "o310123456", false),
        (birth, "certificate_number", "O31012345", false),
        (birth, "birth_time", "23:59", true),
        (birth, "birth_time", "24:00", false),
        (birth, "birth_weight_grams", "3250", true),
        (birth, "birth_weight_grams", "3.2", false),
        (birth, "gestational_weeks", "+9", false),
        (birth, "mother_id_number", "11010519491231002X", true),
        (business, "registered_capital", "100万元人民币", true),
        (business, "registered_capital", "100万", false),
        (business, "established_date", "2020-13-01", false),
    ];
    for (template, name, value, ok) in cases {
        let spec = template.field(name).expect(name);
        let result = spec.validate_value(Some(value));
        assert_eq!(result.is_ok(), ok, "{name}={value}: {result:?}");
        if let Err(error) = result {
            assert_eq!(error.field(), Some(format!("face.{name}").as_str()));
        }
    }
}

#[test]
fn integer_parsing() {
    let cases = [
        ("0", Some(0)),
        ("-12", Some(-12)),
        ("9223372036854775807", Some(i64::MAX)),
        ("9223372036854775808", None),
        ("", None),
        ("-", None),
        ("+1", None),
        ("1 ", None),
        ("１", None),
    ];
    for (input, expected) in cases {
        assert_eq!(parse_integer(input).ok(), expected, "{input:?}");
    }
}

const MINIMAL: &str = r#"
[[template]]
type_code = "11100000000001011X001"
key = "demo"
name = "示例"
holder_kind = "111"
multiple_per_holder = true
"#;

#[test]
fn from_toml_rejects_bad_templates() {
    assert_eq!(TemplateRegistry::from_toml(MINIMAL).map(|r| r.len()), Ok(1));
    assert_eq!(TemplateRegistry::from_toml("").map(|r| r.len()), Ok(0));
    let field = "\n[[template.field]]\nname = \"f\"\n";
    let cases: [(String, &str); 16] = [
        (MINIMAL.replace("X001", "X01"), "template.demo.type_code"),
        (MINIMAL.replace("1011X", "1011Y"), "template.demo.type_code"),
        (MINIMAL.replace("\"demo\"", "\"Demo\""), "template.Demo"),
        (MINIMAL.replace("\"demo\"", "\"demo-\""), "template.demo-"),
        (MINIMAL.replace("\"示例\"", "\"\""), "template.demo.name"),
        (
            MINIMAL.replace("\"111\"", "\"414\""),
            "template.demo.holder_kind",
        ),
        (
            format!("{MINIMAL}default_validity_years = 0"),
            "template.demo.default_validity_years",
        ),
        (format!("{MINIMAL}colour = 1"), "templates"),
        (format!("{MINIMAL}{MINIMAL}"), "template.demo"),
        (
            format!("{MINIMAL}{field}kind = \"blob\""),
            "template.demo.field.f",
        ),
        (
            format!("{MINIMAL}{field}kind = \"enum\""),
            "template.demo.field.f",
        ),
        (
            format!("{MINIMAL}{field}kind = \"text\"\nvalues = [\"a\"]"),
            "template.demo.field.f",
        ),
        (
            format!("{MINIMAL}{field}kind = \"text\"\npattern = \"(\""),
            "template.demo.field.f",
        ),
        (
            format!("{MINIMAL}{field}kind = \"text\"\nmax_len = 0"),
            "template.demo.field.f",
        ),
        (
            format!("{MINIMAL}{field}kind = \"text\"{field}kind = \"date\""),
            "template.demo.field.f",
        ),
        (
            format!("{MINIMAL}\n[[template.field]]\nname = \"Bad\"\nkind = \"text\""),
            "template.demo.field.Bad",
        ),
    ];
    for (text, expected) in cases {
        let error = TemplateRegistry::from_toml(&text).expect_err(&text);
        assert_eq!(error.field(), Some(expected), "{text}\n{error}");
    }
}

#[test]
fn enum_default_max_len_fits_values() {
    let field = "[[template.field]]\nname = \"colour\"\nkind = \"enum\"";
    let text = format!("{MINIMAL}\n{field}\nvalues = [\"红\", \"蓝绿\"]");
    let registry = TemplateRegistry::from_toml(&text).unwrap();
    let spec = registry.get("demo").unwrap().field("colour").unwrap();
    assert_eq!(spec.max_len, 2);
    assert_eq!(spec.kind, FieldKind::Enum(vec!["红".into(), "蓝绿".into()]));
}

#[test]
fn hand_built_template_with_bad_pattern_fails_cleanly() {
    let spec = FieldSpec {
        name: "f".into(),
        kind: FieldKind::Text,
        required: false,
        pattern: Some("(".into()),
        max_len: 8,
    };
    let error = spec.validate_value(Some("x")).expect_err("bad pattern");
    assert_eq!(error.field(), Some("face.f"));
}
