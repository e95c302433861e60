//! The issuing offices of the synthetic dataset: one public security sub-bureau and one market
//! supervision bureau per Shanghai district, and a handful of maternity hospitals.
//!
//! Each office's USCC is derived from its name alone (a hash seeds the generator), so the
//! offices and their codes are the same for every dataset seed: a real library sees the same
//! few hundred issuers over and over. Government organs get the `11` prefix, hospitals (public
//! institutions) `12`; positions 3-8 are the district code.

use licstore_model::region::{self, Region};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::ids;

/// (hospital name, district code) of the birth-certificate issuers.
const HOSPITALS: [(&str, &str); 8] = [
    ("上海市第一妇婴保健院", "310115"),
    ("复旦大学附属妇产科医院", "310101"),
    ("中国福利会国际和平妇幼保健院", "310104"),
    ("上海交通大学医学院附属仁济医院", "310115"),
    ("上海市长宁区妇幼保健院", "310105"),
    ("上海市闵行区妇幼保健院", "310112"),
    ("上海市嘉定区妇幼保健院", "310114"),
    ("上海市松江区妇幼保健院", "310117"),
];

/// One issuing office.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issuer {
    /// 18-character USCC.
    pub code: String,
    /// Office name.
    pub name: String,
    /// GB/T 2260 code of its district.
    pub region_code: String,
    /// District name, e.g. `浦东新区`.
    pub district: String,
}

/// Every issuing office, by role.
#[derive(Clone, Debug)]
pub struct Issuers {
    /// 上海市公安局…分局, one per district (ID cards, residence permits).
    pub police: Vec<Issuer>,
    /// 上海市…市场监督管理局, one per district (business licenses).
    pub market: Vec<Issuer>,
    /// Maternity hospitals (birth medical certificates).
    pub hospitals: Vec<Issuer>,
}

impl Issuers {
    /// Builds the tables from the embedded region list.
    pub fn shanghai() -> Issuers {
        let districts: Vec<&Region> = region::regions_with_prefix("31").collect();
        let police = districts
            .iter()
            .map(|d| {
                office(
                    format!("上海市公安局{}分局", short_district(&d.name)),
                    d,
                    "11",
                )
            })
            .collect();
        let market = districts
            .iter()
            .map(|d| office(format!("上海市{}市场监督管理局", d.name), d, "11"))
            .collect();
        let hospitals = HOSPITALS
            .iter()
            .filter_map(|(name, code)| {
                let district = districts.iter().find(|d| d.code == *code)?;
                Some(office((*name).to_owned(), district, "12"))
            })
            .collect();
        Issuers {
            police,
            market,
            hospitals,
        }
    }

    /// The police sub-bureau of a district code, if it is a Shanghai district.
    pub fn police_of(&self, district_code: &str) -> Option<&Issuer> {
        self.police.iter().find(|i| i.region_code == district_code)
    }

    /// The market supervision bureau of a district code.
    pub fn market_of(&self, district_code: &str) -> Option<&Issuer> {
        self.market.iter().find(|i| i.region_code == district_code)
    }
}

/// `浦东新区` → `浦东`, `黄浦区` → `黄浦`: the form used in sub-bureau names.
fn short_district(name: &str) -> &str {
    name.strip_suffix("新区")
        .or_else(|| name.strip_suffix('区'))
        .unwrap_or(name)
}

fn office(name: String, district: &Region, prefix: &str) -> Issuer {
    let mut rng = ChaCha8Rng::seed_from_u64(fnv1a(&name));
    Issuer {
        code: ids::uscc(&mut rng, prefix, &district.code, false),
        name,
        region_code: district.code.clone(),
        district: district.name.clone(),
    }
}

/// 64-bit FNV-1a, a stable hash for seeding.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offices_cover_every_district_and_are_stable() {
        let a = Issuers::shanghai();
        let b = Issuers::shanghai();
        assert_eq!(a.police, b.police);
        assert_eq!(a.police.len(), 16);
        assert_eq!(a.market.len(), 16);
        assert_eq!(a.hospitals.len(), HOSPITALS.len());
        let pudong = a.police_of("310115").expect("pudong");
        assert_eq!(pudong.name, "上海市公安局浦东分局");
        assert_eq!(&pudong.code[..8], "11310115");
    }

    #[test]
    fn district_short_names() {
        let cases = [
            ("浦东新区", "浦东"),
            ("黄浦区", "黄浦"),
            ("上海市", "上海市"),
        ];
        for (name, short) in cases {
            assert_eq!(short_district(name), short);
        }
    }
}
