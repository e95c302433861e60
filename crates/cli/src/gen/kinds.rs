//! The per-type record builders of the generator: holder, dates, issuer and face fields of
//! each pilot license type. Face field names follow the built-in templates
//! (`crates/model/templates/pilot.toml`); a unit test validates every generated face against
//! its template.

use std::collections::BTreeMap;

use licstore_model::region::{self, Region};
use licstore_model::{Date, LicenseStatus};
use rand::Rng;

use super::ids::{self, Sex};
use super::names::{self, pick, pick_weighted};
use super::{age, plus_years, shift, Draft, Generator, Person};
use crate::dataset::HolderInput;

const DAYS_PER_YEAR: i64 = 365;
/// Share of ID cards issued to an earlier birth-certificate holder.
const CHILD_ID_CARD_SHARE: f64 = 0.1;
/// Most children kept for a later ID card.
const CHILDREN_KEPT_MAX: usize = 50_000;
/// Share of ID-card and birth-certificate holders with a Shanghai address code.
const ID_CARD_SHANGHAI_SHARE: f64 = 0.92;
const BIRTH_SHANGHAI_SHARE: f64 = 0.85;

/// (lowest age, highest age, weight) of ID-card holders on the as-of date.
const ID_CARD_AGES: [((u16, u16), u32); 5] = [
    ((0, 15), 5),
    ((16, 25), 14),
    ((26, 45), 36),
    ((46, 60), 25),
    ((61, 90), 20),
];

/// ID card validity by age at issue (GB 11643 practice): `None` is long-term.
pub fn id_card_years(age_at_issue: u16) -> Option<u16> {
    match age_at_issue {
        0..=15 => Some(5),
        16..=25 => Some(10),
        26..=45 => Some(20),
        _ => None,
    }
}

/// A uniform draw from a non-empty region list.
fn pick_region(rng: &mut impl Rng, regions: &[&'static Region]) -> &'static Region {
    regions[rng.random_range(0..regions.len())]
}

fn face(pairs: &[(&str, String)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn citizen_holder(p: &Person) -> HolderInput {
    HolderInput {
        kind: "citizen_id".to_owned(),
        id: p.id.clone(),
        name: p.name.clone(),
    }
}

impl Generator {
    fn days_back(&mut self, from: i64, to: i64) -> Date {
        shift(self.as_of, -self.rng.random_range(from..=to))
    }

    fn native_region(&mut self, shanghai_share: f64) -> &'static Region {
        if self.rng.random_bool(shanghai_share) {
            return pick_region(&mut self.rng, &self.shanghai);
        }
        if self.rng.random_bool(0.6) {
            return pick_region(&mut self.rng, &self.migrant);
        }
        pick_region(&mut self.rng, &self.elsewhere)
    }

    /// A new person with an unused citizen ID number.
    fn new_person(&mut self, birth: Date, native: &'static Region) -> Person {
        let sex = Sex::random(&mut self.rng);
        let id = loop {
            let id = ids::citizen_id(&mut self.rng, &native.code, birth, sex);
            if self.holders.insert(id.clone()) {
                break id;
            }
        };
        let name = names::person_name(&mut self.rng, sex);
        let ethnicity = names::ethnicity(&mut self.rng);
        Person {
            id,
            name,
            sex,
            birth,
            ethnicity,
            native,
        }
    }

    fn person_aged(&mut self, lowest: u16, highest: u16, shanghai_share: f64) -> Person {
        let days = self.rng.random_range(
            i64::from(lowest) * DAYS_PER_YEAR..=i64::from(highest + 1) * DAYS_PER_YEAR - 1,
        );
        let birth = shift(self.as_of, -days.max(1));
        let native = self.native_region(shanghai_share);
        self.new_person(birth, native)
    }

    fn district_of(&mut self, person: &Person) -> &'static Region {
        match person.native.province_code.as_str() {
            "31" => person.native,
            _ => pick_region(&mut self.rng, &self.shanghai),
        }
    }

    /// 居民身份证.
    pub(super) fn id_card(&mut self, status: LicenseStatus) -> Draft {
        let (person, issue, until) = match status == LicenseStatus::Expired {
            true => self.expired_id_card(),
            false => {
                let person = self.id_card_person();
                let (issue, until) = self.current_id_card_window(person.birth);
                (person, issue, until)
            }
        };
        let district = self.district_of(&person);
        let issuer = self.police_of(district);
        let address = names::shanghai_address(&mut self.rng, &district.name);
        let face = face(&[
            ("name", person.name.clone()),
            ("sex", person.sex.label().to_owned()),
            ("ethnicity", person.ethnicity.to_owned()),
            ("birth_date", person.birth.to_string()),
            ("address", address),
            ("issuing_authority", issuer.name.clone()),
        ]);
        let license_number = person.id.clone();
        Draft {
            holder: citizen_holder(&person),
            license_number,
            issuer,
            issue,
            valid_until: until,
            face,
        }
    }

    /// An earlier birth-certificate holder (sometimes) or a new person of a realistic age.
    fn id_card_person(&mut self) -> Person {
        if !self.children.is_empty() && self.rng.random_bool(CHILD_ID_CARD_SHARE) {
            let i = self.rng.random_range(0..self.children.len());
            return self.children.swap_remove(i);
        }
        let (lowest, highest) = pick_weighted(&mut self.rng, &ID_CARD_AGES);
        self.person_aged(lowest, highest, ID_CARD_SHANGHAI_SHARE)
    }

    fn police_of(&self, district: &Region) -> super::Issuer {
        let found = self.issuers.police_of(&district.code);
        found.unwrap_or(&self.issuers.police[0]).clone()
    }

    /// Issue date and end of validity of the card current on the as-of date.
    fn current_id_card_window(&mut self, birth: Date) -> (Date, Option<Date>) {
        let earliest = shift(birth, 30);
        for _ in 0..64 {
            let issue = self.days_back(0, 20 * DAYS_PER_YEAR);
            if issue < earliest {
                continue;
            }
            let until = id_card_years(age(birth, issue)).map(|y| plus_years(issue, y));
            if until.is_none_or(|u| u > self.as_of) {
                return (issue, until);
            }
        }
        // A card issued in the last month is current for every age.
        let issue = earliest.max(shift(self.as_of, -30)).min(self.as_of);
        (
            issue,
            id_card_years(age(birth, issue)).map(|y| plus_years(issue, y)),
        )
    }

    /// A holder whose 10- or 20-year card ran out within the last four years and was not
    /// renewed. Dates are chosen first (end of validity, then issue, then birth, with the age
    /// at issue inside the band of the period), then the person.
    fn expired_id_card(&mut self) -> (Person, Date, Option<Date>) {
        let (years, lowest_age, highest_age) = match self.rng.random_bool(0.8) {
            true => (10u16, 17u16, 24u16),
            false => (20, 27, 44),
        };
        let years_days = i64::from(years) * DAYS_PER_YEAR + i64::from(years) / 4 + 2;
        let issue = self.days_back(years_days, years_days + 4 * DAYS_PER_YEAR);
        let age_at_issue = i64::from(self.rng.random_range(lowest_age..=highest_age));
        let birth = shift(
            issue,
            -(age_at_issue * DAYS_PER_YEAR + self.rng.random_range(0..300)),
        );
        let native = self.native_region(ID_CARD_SHANGHAI_SHARE);
        let person = self.new_person(birth, native);
        let until = id_card_years(age(birth, issue)).map(|y| plus_years(issue, y));
        debug_assert!(until.is_some_and(|u| u < self.as_of));
        (person, issue, until)
    }

    /// 上海市居住证.
    pub(super) fn residence_permit(&mut self, status: LicenseStatus) -> Draft {
        let person = self.person_aged(18, 60, 0.0);
        let issue = match status == LicenseStatus::Expired {
            true => self.days_back(DAYS_PER_YEAR + 1, 2 * DAYS_PER_YEAR),
            false => self.days_back(0, DAYS_PER_YEAR - 1),
        };
        let district = pick_region(&mut self.rng, &self.shanghai);
        let issuer = self.police_of(district);
        let province_code = format!("{}0000", person.native.province_code);
        let province = region::region_name(&province_code).unwrap_or_default();
        let face = face(&[
            ("name", person.name.clone()),
            ("sex", person.sex.label().to_owned()),
            ("ethnicity", person.ethnicity.to_owned()),
            ("birth_date", person.birth.to_string()),
            (
                "residence_address",
                names::shanghai_address(&mut self.rng, &district.name),
            ),
            (
                "household_address",
                names::household_address(&mut self.rng, province, &person.native.name),
            ),
            ("issuing_authority", issuer.name.clone()),
        ]);
        let until = Some(plus_years(issue, 1));
        Draft {
            holder: citizen_holder(&person),
            license_number: person.id.clone(),
            issuer,
            issue,
            valid_until: until,
            face,
        }
    }

    /// 出生医学证明.
    pub(super) fn birth_certificate(&mut self) -> Draft {
        let child = self.person_aged(0, 17, BIRTH_SHANGHAI_SHARE);
        let issue = shift(child.birth, self.rng.random_range(0..=30)).min(self.as_of);
        let hospital = pick(&mut self.rng, &self.issuers.hospitals).clone();
        let number =
            self.unique_number(|rng| ids::birth_certificate_number(rng, child.birth.year()));
        let (mother, father) = (
            self.parent(&child, Sex::Female),
            self.parent(&child, Sex::Male),
        );
        let child_name = format!("{}{}", surname_of(&father.name), given_of(&child.name));
        let face = face(&[
            ("certificate_number", number.clone()),
            ("child_name", child_name.clone()),
            ("sex", child.sex.label().to_owned()),
            ("birth_date", child.birth.to_string()),
            (
                "birth_time",
                format!(
                    "{:02}:{:02}",
                    self.rng.random_range(0..24),
                    self.rng.random_range(0..60)
                ),
            ),
            ("birth_place", format!("上海市{}", hospital.district)),
            (
                "gestational_weeks",
                self.rng.random_range(36..=41).to_string(),
            ),
            (
                "birth_weight_grams",
                self.rng.random_range(2500..=4200).to_string(),
            ),
            (
                "birth_length_cm",
                self.rng.random_range(47..=53).to_string(),
            ),
            ("mother_name", mother.name.clone()),
            ("mother_id_number", mother.id.clone()),
            ("father_name", father.name.clone()),
            ("father_id_number", father.id.clone()),
            ("institution", hospital.name.clone()),
        ]);
        let child = Person {
            name: child_name,
            ..child
        };
        if self.children.len() < CHILDREN_KEPT_MAX {
            self.children.push(child.clone());
        }
        Draft {
            holder: citizen_holder(&child),
            license_number: number,
            issuer: hospital,
            issue,
            valid_until: None,
            face,
        }
    }

    /// A parent aged 22-40 at the child's birth (not a holder: the id may repeat).
    fn parent(&mut self, child: &Person, sex: Sex) -> Person {
        let years = self.rng.random_range(22..=40);
        let birth = shift(
            child.birth,
            -(years * DAYS_PER_YEAR + self.rng.random_range(0..DAYS_PER_YEAR)),
        );
        let native = self.native_region(0.6);
        let id = ids::citizen_id(&mut self.rng, &native.code, birth, sex);
        let name = names::person_name(&mut self.rng, sex);
        Person {
            id,
            name,
            sex,
            birth,
            ethnicity: child.ethnicity,
            native,
        }
    }

    fn unique_number(
        &mut self,
        mut draw: impl FnMut(&mut rand_chacha::ChaCha8Rng) -> String,
    ) -> String {
        loop {
            let n = draw(&mut self.rng);
            if self.numbers.insert(n.clone()) {
                return n;
            }
        }
    }

    /// 营业执照.
    pub(super) fn business_license(&mut self) -> Draft {
        let district = pick_region(&mut self.rng, &self.shanghai);
        let established = self.days_back(0, 25 * DAYS_PER_YEAR);
        let individual = self.rng.random_bool(0.15);
        let modern = established.year() >= 2016;
        let prefix = if individual { "92" } else { "91" };
        let code = loop {
            let code = ids::uscc(&mut self.rng, prefix, &district.code, modern);
            if self.holders.insert(code.clone()) {
                break code;
            }
        };
        let since = self.as_of.days_since_epoch() - established.days_since_epoch();
        let issue = match self.rng.random_bool(0.6) {
            true => established,
            false => shift(established, self.rng.random_range(0..=since)),
        };
        let issuer = self
            .issuers
            .market_of(&district.code)
            .cloned()
            .unwrap_or_else(|| self.issuers.market[0].clone());
        let (name, face) = self.business_face(individual, district, established, &issuer);
        let holder = HolderInput {
            kind: "uscc".to_owned(),
            id: code.clone(),
            name,
        };
        Draft {
            holder,
            license_number: code,
            issuer,
            issue,
            valid_until: None,
            face,
        }
    }

    fn business_face(
        &mut self,
        individual: bool,
        district: &Region,
        established: Date,
        issuer: &super::Issuer,
    ) -> (String, BTreeMap<String, String>) {
        let (industry, scopes) = *pick(&mut self.rng, &names::INDUSTRIES);
        let trade = names::trade_name(&mut self.rng);
        let (name, company_type, capital, term) = if individual {
            let shop = pick(&mut self.rng, names::SHOPS);
            (
                format!("上海市{}{trade}{shop}", district.name),
                "个体工商户".to_owned(),
                String::new(),
                String::new(),
            )
        } else {
            let company_type = pick_weighted(&mut self.rng, &names::COMPANY_TYPES);
            let suffix = if company_type.starts_with("股份") {
                "股份有限公司"
            } else {
                "有限公司"
            };
            let capital = format!("{}万元人民币", pick(&mut self.rng, &names::CAPITALS_WAN));
            let term = match self.rng.random_bool(0.8) {
                true => format!("{established}至无固定期限"),
                false => format!("{established}至{}", shift(plus_years(established, 20), -1)),
            };
            (
                format!("上海{trade}{industry}{suffix}"),
                company_type.to_owned(),
                capital,
                term,
            )
        };
        let sex = Sex::random(&mut self.rng);
        let count = self.rng.random_range(1..=scopes.len());
        let scope = format!(
            "一般项目:{}。\
             (除依法须经批准的项目外,凭营业执照依法自主开展经营活动)",
            scopes[..count].join(";")
        );
        let face = face(&[
            ("company_name", name.clone()),
            ("company_type", company_type),
            (
                "legal_representative",
                names::person_name(&mut self.rng, sex),
            ),
            ("registered_capital", capital),
            ("established_date", established.to_string()),
            ("business_term", term),
            ("business_scope", scope),
            (
                "address",
                names::shanghai_address(&mut self.rng, &district.name),
            ),
            ("registration_authority", issuer.name.clone()),
        ]);
        (name, face)
    }
}

/// The surname of a generated name (compound surnames are two characters).
fn surname_of(name: &str) -> String {
    let two: String = name.chars().take(2).collect();
    match two.as_str() {
        "欧阳" | "司马" => two,
        _ => name.chars().take(1).collect(),
    }
}

/// The given name of a generated name.
fn given_of(name: &str) -> String {
    let surname = surname_of(name).chars().count();
    name.chars().skip(surname).collect()
}
