//! `licctl gen`: a synthetic dataset that looks like the Shanghai pilot stock.
//!
//! What a generated file contains (shares are of records, drawn per record):
//!
//! * 居民身份证 (resident ID card), 45%: citizens, address code 92% Shanghai; valid 5, 10 or
//!   20 years by age at issue (under 16, 16-25, 26-45), long-term from 46.
//! * 上海市居住证 (residence permit), 20%: citizens aged 18-60 from other provinces; 1 year
//!   (endorsed yearly).
//! * 出生医学证明 (birth medical certificate), 10%: newborns of the last 18 years, 85%
//!   Shanghai address codes; long-term.
//! * 营业执照 (business license), 25%: USCCs (85% companies `91…`, 15% individual businesses
//!   `92…`) with a Shanghai district code; long-term.
//!
//! Residence permits go, by definition, to people whose household registration is elsewhere,
//! so their address codes are never Shanghai's; over all citizen holders the Shanghai share is
//! therefore about two thirds. Statuses: about 3% suspended and 2% revoked in every type, and
//! about 3% of all records expired — only ID cards and permits expire, with a `valid_until`
//! before the as-of date; every other record is valid on the as-of date.
//!
//! Every holder id has valid check characters; a holder never gets two licenses of a type that
//! allows one per holder (some birth-certificate holders later get an ID card, so a few
//! holders have several licenses of different types). Issuers are fixed offices with stable
//! USCCs ([`Issuers`]). License numbers: the citizen ID number for ID cards and permits, the
//! USCC for business licenses, a letter and nine digits for birth certificates (unique).
//!
//! The output is a function of `(seed, as_of)` only: the generator is a ChaCha8 stream seeded
//! from the seed, and it never reads the clock. A longer file extends a shorter one with the
//! same seed.

pub(crate) mod ids;
mod issuers;
mod kinds;
mod names;

use std::collections::{BTreeMap, HashSet};

use anyhow::Context;
use licstore_model::region::{self, Region};
use licstore_model::{Date, LicenseStatus, LicenseTemplate};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::dataset::{HolderInput, IssuerInput, LicenseInput, Record};
use crate::output::{Render, Table};
use crate::types;

pub use ids::Sex;
pub use issuers::{Issuer, Issuers};

/// Share of all records that are suspended.
const SUSPENDED_SHARE: f64 = 0.03;
/// Share of all records that are revoked.
const REVOKED_SHARE: f64 = 0.02;
/// Share of all records that are expired (carried by the types with a finite validity).
const EXPIRED_SHARE: f64 = 0.03;
/// Provinces most Shanghai migrants come from: Jiangsu, Zhejiang, Anhui, Jiangxi, Henan, Hubei,
/// Hunan, Sichuan.
const MIGRANT_PROVINCES: [&str; 8] = ["32", "33", "34", "36", "41", "42", "43", "51"];

/// The four pilot types, with their share of records (percent).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// 居民身份证.
    IdCard,
    /// 上海市居住证.
    ResidencePermit,
    /// 出生医学证明.
    BirthCertificate,
    /// 营业执照.
    BusinessLicense,
}

impl Kind {
    /// All kinds with their weights.
    pub const MIX: [(Kind, u32); 4] = [
        (Kind::IdCard, 45),
        (Kind::ResidencePermit, 20),
        (Kind::BirthCertificate, 10),
        (Kind::BusinessLicense, 25),
    ];

    /// The template key.
    pub fn key(self) -> &'static str {
        match self {
            Kind::IdCard => "resident-id-card",
            Kind::ResidencePermit => "shanghai-residence-permit",
            Kind::BirthCertificate => "birth-medical-certificate",
            Kind::BusinessLicense => "business-license",
        }
    }

    /// Whether licenses of this kind run out (and so can be expired).
    pub fn expires(self) -> bool {
        matches!(self, Kind::IdCard | Kind::ResidencePermit)
    }

    fn expired_rate() -> f64 {
        let finite: u32 = Kind::MIX
            .iter()
            .filter(|(k, _)| k.expires())
            .map(|(_, w)| w)
            .sum();
        EXPIRED_SHARE * 100.0 / f64::from(finite)
    }
}

/// A person: a citizen holder, or a parent named on a birth certificate.
#[derive(Clone, Debug)]
pub struct Person {
    /// Citizen ID number.
    pub id: String,
    /// Full name.
    pub name: String,
    /// Sex, matching the ID's sequence parity.
    pub sex: Sex,
    /// Birth date, matching the ID's digits 7-14.
    pub birth: Date,
    /// Ethnicity as printed on the card.
    pub ethnicity: &'static str,
    /// The region of the address code.
    pub native: &'static Region,
}

/// The parts of a record that differ per type.
struct Draft {
    holder: HolderInput,
    license_number: String,
    issuer: Issuer,
    issue: Date,
    valid_until: Option<Date>,
    face: BTreeMap<String, String>,
}

/// Generates records; an endless iterator.
pub struct Generator {
    rng: ChaCha8Rng,
    as_of: Date,
    issuers: Issuers,
    templates: BTreeMap<Kind, &'static LicenseTemplate>,
    shanghai: Vec<&'static Region>,
    migrant: Vec<&'static Region>,
    elsewhere: Vec<&'static Region>,
    /// Every holder id handed out, so a new holder never reuses one.
    holders: HashSet<String>,
    /// (holder id, kind) pairs issued, for the one-per-holder rule.
    held: HashSet<(String, Kind)>,
    /// License numbers handed out (birth certificates; the others are holder ids).
    numbers: HashSet<String>,
    /// Birth-certificate holders without an ID card yet.
    children: Vec<Person>,
}

impl Generator {
    /// A generator for `seed`, with records valid (or expired) as of `as_of`.
    pub fn new(seed: u64, as_of: Date) -> anyhow::Result<Generator> {
        let mut templates = BTreeMap::new();
        for (kind, _) in Kind::MIX {
            let t =
                types::find(kind.key()).with_context(|| format!("no template {}", kind.key()))?;
            templates.insert(kind, t);
        }
        let in_province = |r: &Region, list: &[&str]| list.contains(&r.province_code.as_str());
        let all = region::regions();
        Ok(Generator {
            rng: ChaCha8Rng::seed_from_u64(seed),
            as_of,
            issuers: Issuers::shanghai(),
            templates,
            shanghai: all.iter().filter(|r| r.province_code == "31").collect(),
            migrant: all
                .iter()
                .filter(|r| in_province(r, &MIGRANT_PROVINCES))
                .collect(),
            elsewhere: all.iter().filter(|r| r.province_code != "31").collect(),
            holders: HashSet::new(),
            held: HashSet::new(),
            numbers: HashSet::new(),
            children: Vec::new(),
        })
    }

    /// The next record.
    pub fn next_record(&mut self) -> Record {
        let kind = names::pick_weighted(&mut self.rng, &Kind::MIX);
        let status = self.draw_status(kind);
        let draft = match kind {
            Kind::IdCard => self.id_card(status),
            Kind::ResidencePermit => self.residence_permit(status),
            Kind::BirthCertificate => self.birth_certificate(),
            Kind::BusinessLicense => self.business_license(),
        };
        debug_assert!(
            self.templates[&kind].multiple_per_holder
                || !self.held.contains(&(draft.holder.id.clone(), kind))
        );
        self.held.insert((draft.holder.id.clone(), kind));
        self.finish(kind, status, draft)
    }

    fn draw_status(&mut self, kind: Kind) -> LicenseStatus {
        let u: f64 = self.rng.random();
        let expired = if kind.expires() {
            Kind::expired_rate()
        } else {
            0.0
        };
        if u < SUSPENDED_SHARE {
            LicenseStatus::Suspended
        } else if u < SUSPENDED_SHARE + REVOKED_SHARE {
            LicenseStatus::Revoked
        } else if u < SUSPENDED_SHARE + REVOKED_SHARE + expired {
            LicenseStatus::Expired
        } else {
            LicenseStatus::Valid
        }
    }

    fn finish(&self, kind: Kind, status: LicenseStatus, d: Draft) -> Record {
        let issue = d.issue.to_string();
        Record {
            request_id: String::new(),
            identifier: String::new(),
            license: LicenseInput {
                type_code: self.templates[&kind].type_code.clone(),
                holder: d.holder,
                license_number: d.license_number,
                issuer: IssuerInput {
                    code: d.issuer.code,
                    name: d.issuer.name,
                },
                issue_date: issue.clone(),
                valid_from: issue,
                valid_until: d.valid_until.map(|u| u.to_string()).unwrap_or_default(),
                region_code: d.issuer.region_code,
                face: d.face,
                serial: String::new(),
            },
            lenient_holder_check: false,
            status: status.as_str().to_owned(),
            status_reason: status_reason(kind, status).to_owned(),
            seal_bundle: String::new(),
        }
    }
}

impl Iterator for Generator {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        Some(self.next_record())
    }
}

/// Status reason of a suspended business license.
const BUSINESS_SUSPENDED: &str = "涉嫌违法经营,依法暂扣营业执照";
/// Status reason of a revoked business license.
const BUSINESS_REVOKED: &str = "提交虚假材料取得登记,依法撤销";

fn status_reason(kind: Kind, status: LicenseStatus) -> &'static str {
    match (status, kind) {
        (LicenseStatus::Suspended, Kind::BusinessLicense) => BUSINESS_SUSPENDED,
        (LicenseStatus::Suspended, _) => "涉嫌违法违规,暂扣审查",
        (LicenseStatus::Revoked, Kind::BusinessLicense) => BUSINESS_REVOKED,
        (LicenseStatus::Revoked, _) => "以欺骗等不正当手段取得,依法撤销",
        (LicenseStatus::Expired, _) => "有效期届满",
        _ => "",
    }
}

/// What `licctl gen` wrote.
#[derive(Clone, Debug, Serialize)]
pub struct GenReport {
    pub out: String,
    pub seed: u64,
    pub as_of: String,
    pub count: u64,
    /// Records per template key.
    pub by_type: BTreeMap<String, u64>,
    /// Records per status.
    pub by_status: BTreeMap<String, u64>,
}

impl GenReport {
    /// An empty report.
    pub fn new(out: String, seed: u64, as_of: Date) -> GenReport {
        let as_of = as_of.to_string();
        GenReport {
            out,
            seed,
            as_of,
            count: 0,
            by_type: BTreeMap::new(),
            by_status: BTreeMap::new(),
        }
    }

    /// Counts one record.
    pub fn add(&mut self, record: &Record) {
        self.count += 1;
        let key = types::find(&record.license.type_code).map_or("other", |t| t.key.as_str());
        *self.by_type.entry(key.to_owned()).or_default() += 1;
        *self.by_status.entry(record.status.clone()).or_default() += 1;
    }
}

impl Render for GenReport {
    fn table(&self) -> Table {
        let mut t = Table::new(&["what", "records", "share"]);
        let share = |n: u64| format!("{:.1}%", 100.0 * n as f64 / self.count.max(1) as f64);
        t.row([
            "total".to_owned(),
            self.count.to_string(),
            share(self.count),
        ]);
        for (name, n) in self.by_type.iter().chain(&self.by_status) {
            t.row([name.clone(), n.to_string(), share(*n)]);
        }
        t
    }
}

/// Writes `count` records to `out` and returns the counts.
pub fn write_dataset<W: std::io::Write>(
    generator: &mut Generator,
    count: u64,
    out: &mut crate::dataset::RecordWriter<W>,
    report: &mut GenReport,
) -> anyhow::Result<()> {
    for record in generator.take(usize::try_from(count).unwrap_or(usize::MAX)) {
        out.write(&record)?;
        report.add(&record);
    }
    Ok(())
}

// Date helpers shared by the per-type builders.

/// `d` moved by `days` (negative for earlier); clamped to the model's date range.
fn shift(d: Date, days: i64) -> Date {
    let target = d.days_since_epoch() + days;
    Date::from_days_since_epoch(target).unwrap_or(if days < 0 { Date::MIN } else { Date::MAX })
}

/// Whole years from `birth` to `on`.
fn age(birth: Date, on: Date) -> u16 {
    let had_birthday = (on.month(), on.day()) >= (birth.month(), birth.day());
    on.year()
        .saturating_sub(birth.year())
        .saturating_sub(u16::from(!had_birthday))
}

/// The date `years` after `d`, saturating at the model's last date.
fn plus_years(d: Date, years: u16) -> Date {
    d.add_years(years).unwrap_or(Date::MAX)
}

#[cfg(test)]
mod tests;
