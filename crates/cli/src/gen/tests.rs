//! Tests of the generator: determinism, validity of every record under the model's own rules,
//! proportions, and the one-license-per-holder rule.

use std::collections::{BTreeMap, HashMap, HashSet};

use licstore_model::{validate_new_license, CheckMode};

use super::*;

const SAMPLE: usize = 20_000;

fn as_of() -> Date {
    Date::new(2026, 3, 15).expect("date")
}

fn records(seed: u64, n: usize) -> Vec<Record> {
    Generator::new(seed, as_of())
        .expect("generator")
        .take(n)
        .collect()
}

#[test]
fn same_seed_same_records_and_prefix_stable() {
    let a = records(42, 2_000);
    let b = records(42, 3_000);
    assert_eq!(a[..], b[..2_000]);
    let c = records(43, 2_000);
    assert_ne!(a, c);
}

#[test]
fn every_record_passes_model_validation_strictly() {
    let registry = crate::types::registry();
    for (i, r) in records(7, SAMPLE).iter().enumerate() {
        let new = r.license.to_model();
        let checked = validate_new_license(&new, registry, CheckMode::Strict, as_of());
        assert!(checked.is_ok(), "record {i}: {checked:?}\n{r:?}");
        assert!(r.to_proto().is_ok(), "record {i}");
    }
}

#[test]
fn citizen_ids_agree_with_the_face() {
    for r in records(8, SAMPLE) {
        let l = &r.license;
        if l.holder.kind != "citizen_id" {
            continue;
        }
        let birth = l.face.get("birth_date").expect("birth_date");
        assert_eq!(
            &l.holder.id[6..14],
            birth.replace('-', ""),
            "{}",
            l.holder.id
        );
        let male = (l.holder.id.as_bytes()[16] - b'0') % 2 == 1;
        assert_eq!(
            l.face.get("sex").map(String::as_str),
            Some(if male { "男" } else { "女" })
        );
    }
}

#[test]
fn no_holder_has_two_licenses_of_a_single_instance_type() {
    let mut seen = HashSet::new();
    let mut holders_with_several = 0;
    let mut per_holder: HashMap<String, usize> = HashMap::new();
    for r in records(9, SAMPLE) {
        let single = !crate::types::find(&r.license.type_code)
            .expect("t")
            .multiple_per_holder;
        let key = (r.license.holder.id.clone(), r.license.type_code.clone());
        assert!(!single || seen.insert(key.clone()), "{key:?}");
        *per_holder.entry(r.license.holder.id).or_default() += 1;
    }
    holders_with_several += per_holder.values().filter(|&&n| n > 1).count();
    assert!(
        holders_with_several > 0,
        "some children should also hold an ID card"
    );
}

fn shares<'a>(keys: impl Iterator<Item = &'a str>) -> BTreeMap<String, f64> {
    let mut counts: BTreeMap<String, f64> = BTreeMap::new();
    let mut total = 0.0;
    for k in keys {
        *counts.entry(k.to_owned()).or_default() += 1.0;
        total += 1.0;
    }
    counts.values_mut().for_each(|v| *v /= total);
    counts
}

#[test]
fn type_and_status_proportions() {
    let rs = records(10, SAMPLE);
    let by_type = shares(rs.iter().map(|r| {
        crate::types::find(&r.license.type_code)
            .expect("t")
            .key
            .as_str()
    }));
    let by_status = shares(rs.iter().map(|r| r.status.as_str()));
    // (name, expected share, tolerance)
    let cases = [
        (&by_type, "resident-id-card", 0.45, 0.015),
        (&by_type, "shanghai-residence-permit", 0.20, 0.015),
        (&by_type, "birth-medical-certificate", 0.10, 0.01),
        (&by_type, "business-license", 0.25, 0.015),
        (&by_status, "valid", 0.92, 0.01),
        (&by_status, "suspended", 0.03, 0.006),
        (&by_status, "revoked", 0.02, 0.005),
        (&by_status, "expired", 0.03, 0.006),
    ];
    for (table, name, want, tolerance) in cases {
        let got = table.get(name).copied().unwrap_or(0.0);
        assert!(
            (got - want).abs() <= tolerance,
            "{name}: {got:.4} vs {want}"
        );
    }
}

#[test]
fn validity_matches_status_on_the_as_of_date() {
    let today = as_of().to_string();
    for r in records(11, SAMPLE) {
        let until = &r.license.valid_until;
        match r.status.as_str() {
            "expired" => assert!(!until.is_empty() && *until < today, "{r:?}"),
            _ => assert!(until.is_empty() || *until >= today, "{} {until}", r.status),
        }
        assert!(r.license.issue_date <= today);
        assert_eq!(
            r.status.is_empty() || r.status == "valid",
            r.status_reason.is_empty()
        );
    }
}

#[test]
fn shanghai_address_codes_dominate_where_they_should() {
    let rs = records(12, SAMPLE);
    // (type key, lowest Shanghai share, highest)
    let cases = [
        ("resident-id-card", 0.89, 0.95),
        ("birth-medical-certificate", 0.80, 0.90),
        ("shanghai-residence-permit", 0.0, 0.0),
        ("business-license", 1.0, 1.0),
    ];
    for (key, low, high) in cases {
        let code = crate::types::resolve(key);
        let of_type: Vec<&Record> = rs.iter().filter(|r| r.license.type_code == code).collect();
        let local = of_type
            .iter()
            .filter(|r| r.license.holder.id[..8].contains("31"))
            .count();
        let in_31 = of_type
            .iter()
            .filter(|r| {
                let id = &r.license.holder.id;
                let region = if r.license.holder.kind == "uscc" {
                    &id[2..4]
                } else {
                    &id[..2]
                };
                region == "31"
            })
            .count();
        let share = in_31 as f64 / of_type.len() as f64;
        assert!(local >= in_31);
        assert!((low..=high).contains(&share), "{key}: {share:.3}");
    }
}

#[test]
fn id_card_validity_follows_age_at_issue() {
    let cases = [
        (0, Some(5)),
        (15, Some(5)),
        (16, Some(10)),
        (25, Some(10)),
        (26, Some(20)),
        (45, Some(20)),
        (46, None),
        (90, None),
    ];
    for (age, years) in cases {
        assert_eq!(kinds::id_card_years(age), years, "{age}");
    }
}

#[test]
fn date_helpers() {
    let d = |y, m, day| Date::new(y, m, day).expect("date");
    let cases = [
        (d(2000, 2, 29), d(2016, 2, 28), 15),
        (d(2000, 2, 29), d(2016, 2, 29), 16),
        (d(1990, 12, 31), d(2026, 1, 1), 35),
    ];
    for (birth, on, want) in cases {
        assert_eq!(age(birth, on), want, "{birth} {on}");
    }
    assert_eq!(shift(d(2024, 3, 1), -1), d(2024, 2, 29));
    assert_eq!(plus_years(d(2024, 2, 29), 1), d(2025, 2, 28));
}

#[test]
fn report_counts_by_type_and_status() {
    let mut report = GenReport::new("x".into(), 1, as_of());
    for r in records(13, 100) {
        report.add(&r);
    }
    assert_eq!(report.count, 100);
    assert_eq!(report.by_type.values().sum::<u64>(), 100);
    assert_eq!(report.by_status.values().sum::<u64>(), 100);
    assert!(report.table().render().starts_with("WHAT"));
}
