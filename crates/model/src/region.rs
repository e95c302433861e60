//! GB/T 2260 administrative division codes, from the embedded `data/regions.csv`.
//!
//! The table lists county-level codes (e.g. `310115` 浦东新区) with their province prefix.
//! It is parsed once, on first use, into a sorted slice. Province-level codes (`310000`) are
//! not rows of the table; they are recognised from the set of province prefixes the table
//! contains, and
//! their names come from a small table here. The special codes `810000`, `820000` and `830000`
//! (Hong Kong, Macao and Taiwan residents' residence permits) are known too.

use std::sync::OnceLock;

const REGIONS_CSV: &str = include_str!("../data/regions.csv");

/// Province-level names for the prefixes in `regions.csv`, plus the residence-permit codes.
const PROVINCE_NAMES: [(&str, &str); 34] = [
    ("110000", "北京市"),
    ("120000", "天津市"),
    ("130000", "河北省"),
    ("140000", "山西省"),
    ("150000", "内蒙古自治区"),
    ("210000", "辽宁省"),
    ("220000", "吉林省"),
    ("230000", "黑龙江省"),
    ("310000", "上海市"),
    ("320000", "江苏省"),
    ("330000", "浙江省"),
    ("340000", "安徽省"),
    ("350000", "福建省"),
    ("360000", "江西省"),
    ("370000", "山东省"),
    ("410000", "河南省"),
    ("420000", "湖北省"),
    ("430000", "湖南省"),
    ("440000", "广东省"),
    ("450000", "广西壮族自治区"),
    ("460000", "海南省"),
    ("500000", "重庆市"),
    ("510000", "四川省"),
    ("520000", "贵州省"),
    ("530000", "云南省"),
    ("540000", "西藏自治区"),
    ("610000", "陕西省"),
    ("620000", "甘肃省"),
    ("630000", "青海省"),
    ("640000", "宁夏回族自治区"),
    ("650000", "新疆维吾尔自治区"),
    ("810000", "香港特别行政区"),
    ("820000", "澳门特别行政区"),
    ("830000", "台湾地区"),
];

/// Codes used in citizen ID numbers on Hong Kong, Macao and Taiwan residents' residence permits.
pub const SPECIAL_RESIDENCE_CODES: [&str; 3] = ["810000", "820000", "830000"];

/// One row of the embedded county-level table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region {
    /// Six-digit GB/T 2260 code, e.g. `310115`.
    pub code: String,
    /// Chinese name, e.g. `浦东新区`.
    pub name: String,
    /// Two-digit province prefix, e.g. `31`.
    pub province_code: String,
}

/// Every county-level region in the embedded table, sorted by code.
pub fn regions() -> &'static [Region] {
    static REGIONS: OnceLock<Vec<Region>> = OnceLock::new();
    REGIONS.get_or_init(parse_regions)
}

/// Regions whose code starts with `prefix`, e.g. `"31"` for Shanghai's districts.
pub fn regions_with_prefix(prefix: &str) -> impl Iterator<Item = &'static Region> + '_ {
    regions().iter().filter(move |r| r.code.starts_with(prefix))
}

/// The name of a county-level code from the table, or of a province-level or special code.
pub fn region_name(code: &str) -> Option<&'static str> {
    if let Some(region) = find_region(code) {
        return Some(region.name.as_str());
    }
    PROVINCE_NAMES
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, name)| *name)
}

/// True for a code that is a row of the table or a province-level code (`XX0000`) of a province
/// in the table. This is the rule for a license's `region_code`: municipal-level licenses
/// (Shanghai residence permits) belong to `310000`, which is not a county row.
pub fn is_known_region_code(code: &str) -> bool {
    find_region(code).is_some() || is_province_level_code(code)
}

/// True when the two-digit prefix is a province in the table (`"31"` yes, `"99"` no).
pub fn is_known_province(prefix: &str) -> bool {
    province_codes()
        .binary_search_by(|p| p.as_str().cmp(prefix))
        .is_ok()
}

/// The distinct two-digit province prefixes of the table, sorted.
pub fn province_codes() -> &'static [String] {
    static PROVINCES: OnceLock<Vec<String>> = OnceLock::new();
    PROVINCES.get_or_init(|| {
        let mut codes: Vec<String> = regions().iter().map(|r| r.province_code.clone()).collect();
        codes.dedup();
        codes
    })
}

/// True for `810000`, `820000` and `830000`.
pub fn is_special_residence_code(code: &str) -> bool {
    SPECIAL_RESIDENCE_CODES.contains(&code)
}

/// True for six ASCII digits.
pub(crate) fn is_six_digits(code: &str) -> bool {
    code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit())
}

fn is_province_level_code(code: &str) -> bool {
    is_six_digits(code) && code.ends_with("0000") && is_known_province(&code[..2])
}

fn find_region(code: &str) -> Option<&'static Region> {
    let table = regions();
    table
        .binary_search_by(|r| r.code.as_str().cmp(code))
        .ok()
        .map(|index| &table[index])
}

/// Parses the embedded CSV. Malformed rows are skipped; a test checks that none are.
fn parse_regions() -> Vec<Region> {
    let mut rows: Vec<Region> = REGIONS_CSV.lines().skip(1).filter_map(parse_row).collect();
    rows.sort_by(|a, b| a.code.cmp(&b.code));
    rows.dedup_by(|a, b| a.code == b.code);
    rows
}

fn parse_row(line: &str) -> Option<Region> {
    let mut parts = line.trim_end_matches('\r').split(',');
    let (code, name, province) = (parts.next()?, parts.next()?, parts.next()?);
    let well_formed = parts.next().is_none()
        && is_six_digits(code)
        && !name.is_empty()
        && code.starts_with(province)
        && province.len() == 2;
    well_formed.then(|| Region {
        code: code.to_owned(),
        name: name.to_owned(),
        province_code: province.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_csv_row_parses() {
        let data_rows = REGIONS_CSV
            .lines()
            .skip(1)
            .filter(|l| !l.is_empty())
            .count();
        assert_eq!(regions().len(), data_rows);
        assert!(regions().windows(2).all(|w| w[0].code < w[1].code));
    }

    #[test]
    fn province_names_cover_every_province_in_the_table() {
        for region in regions() {
            let province = format!("{}0000", region.province_code);
            assert!(region_name(&province).is_some(), "{province}");
        }
    }

    #[test]
    fn lookups() {
        let cases = [
            ("310115", Some("浦东新区"), true),
            ("110105", Some("朝阳区"), true),
            ("310000", Some("上海市"), true),
            ("810000", Some("香港特别行政区"), false),
            ("440524", None, false),
            ("990000", None, false),
            ("31011", None, false),
            ("", None, false),
        ];
        for (code, name, known) in cases {
            assert_eq!(region_name(code), name, "{code}");
            assert_eq!(is_known_region_code(code), known, "{code}");
        }
    }

    #[test]
    fn shanghai_has_sixteen_districts() {
        assert_eq!(regions_with_prefix("31").count(), 16);
    }
}
