//! The pure checks of service items: what is refused, and the canonical form of what is not.

use super::*;

const ID_CARD: &str = "resident-id-card";
const PERMIT: &str = "shanghai-residence-permit";

fn item(name: &str, department: &str, types: &[&str]) -> ServiceItem {
    ServiceItem {
        name: name.into(),
        department: department.into(),
        type_codes: types.iter().map(|t| (*t).to_owned()).collect(),
    }
}

#[test]
fn items_are_checked_field_by_field() {
    let templates = TemplateRegistry::builtin();
    let long = "x".repeat(SERVICE_ITEM_LEN_MAX + 1);
    let too_many: Vec<&str> = vec![ID_CARD; templates.len() + 1];
    let cases: [(&str, ServiceItem, Option<&str>); 9] = [
        (
            "valid",
            item("婚姻登记档案查询", "市档案局", &[ID_CARD]),
            None,
        ),
        (
            "two types",
            item("户口迁移", "市公安局", &[ID_CARD, PERMIT]),
            None,
        ),
        ("no name", item(" ", "市档案局", &[ID_CARD]), Some("name")),
        (
            "long name",
            item(&long, "市档案局", &[ID_CARD]),
            Some("name"),
        ),
        (
            "control",
            item("a\u{7}b", "市档案局", &[ID_CARD]),
            Some("name"),
        ),
        (
            "no department",
            item("户口迁移", "", &[ID_CARD]),
            Some("department"),
        ),
        (
            "no type",
            item("户口迁移", "市公安局", &[]),
            Some("type_codes"),
        ),
        (
            "unknown type",
            item("户口迁移", "市公安局", &[ID_CARD, "no-such-type"]),
            Some("type_codes[1]"),
        ),
        (
            "too many types",
            item("户口迁移", "市公安局", &too_many),
            Some("type_codes"),
        ),
    ];
    for (case, input, refused) in cases {
        match (check_service_item(&templates, &input), refused) {
            (Ok(_), None) => {}
            (Err(r), Some(field)) => {
                assert_eq!(r.field, field, "{case}: {r:?}");
                assert_eq!(r.code, RejectCode::InvalidArgument, "{case}");
            }
            (outcome, _) => panic!("{case}: {outcome:?}"),
        }
    }
}

#[test]
fn items_come_out_trimmed_with_sorted_distinct_type_codes() {
    let templates = TemplateRegistry::builtin();
    let card = templates.get(ID_CARD).unwrap().type_code.clone();
    let permit = templates.get(PERMIT).unwrap().type_code.clone();
    let checked = check_service_item(
        &templates,
        &item(" 户口迁移 ", " 市公安局", &[PERMIT, &card, ID_CARD]),
    )
    .expect("valid");
    let mut expected = vec![card, permit];
    expected.sort();
    assert_eq!(checked.name, "户口迁移");
    assert_eq!(checked.department, "市公安局");
    assert_eq!(checked.type_codes, expected);
}

#[test]
fn refusals_name_the_missing_item_or_the_unaccepted_type() {
    let templates = TemplateRegistry::builtin();
    let card = templates.get(ID_CARD).unwrap().type_code.clone();
    let permit = templates.get(PERMIT).unwrap().type_code.clone();
    let stored =
        check_service_item(&templates, &item("户口迁移", "市公安局", &[ID_CARD])).expect("valid");
    let cases = [
        ("accepted", Some(&stored), &card, None),
        ("not registered", None, &card, Some("service_item")),
        ("other type", Some(&stored), &permit, Some("type_code")),
    ];
    for (case, stored, type_code, refused) in cases {
        let got = refusal(stored, "户口迁移", type_code);
        assert_eq!(got.as_ref().map(|r| r.field.as_str()), refused, "{case}");
        if let Some(r) = got {
            assert_eq!(r.code, RejectCode::FailedPrecondition, "{case}");
            assert!(r.message.contains("户口迁移"), "{case}: {}", r.message);
        }
    }
}
