//! Keys and the licenses the workloads write.
//!
//! A *key* is one license slot: (holder kind, holder id, license type) of a type a holder holds
//! at most once (`multiple_per_holder = false`), so `Get` by holder and type names exactly one
//! current record. Its printable name ([`Key::name`], the history's `key`) is
//! `citizen_id/<holder id>/<type code>`.
//!
//! Every license is a resident ID card (template `resident-id-card`). The value of a key is a
//! *marker* string written into the face field [`MARKER_FIELD`] (`address`): free text of up
//! to 128 characters with no pattern, not indexed and not cross-checked against any other
//! field, so any short ASCII marker is valid and changing it changes nothing else.
//!
//! Holder *numbers* map one-to-one onto valid citizen ids ([`citizen_holder_id`]): address
//! code 310115 (a known province), a birth date from 1950 on with day ≤ 28, a 3-digit sequence
//! and the correct check character. Workloads sharing a cluster use disjoint number ranges.

use std::collections::HashMap;

use anyhow::Context as _;
use licstore_model::{FieldKind, LicenseTemplate, TemplateRegistry};
use licstore_proto::v1 as pb;

/// The face field that carries a key's value.
pub const MARKER_FIELD: &str = "address";
/// The template every workload license uses.
pub const TEMPLATE_KEY: &str = "resident-id-card";
/// Holder numbers below this map to distinct citizen ids.
pub const HOLDER_SPACE: u64 = 1000 * 28 * 12 * 50;
/// GB/T 2260 code of the holders' address and the issuing region.
const REGION: &str = "310115";

/// One license slot; see the module doc.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub holder_id: String,
    /// The 21-character type code.
    pub type_code: String,
}

impl Key {
    /// The name recorded in the history: `citizen_id/<holder id>/<type code>`.
    pub fn name(&self) -> String {
        format!("citizen_id/{}/{}", self.holder_id, self.type_code)
    }

    /// The key a [`Key::name`] names, if it is one.
    pub fn parse(name: &str) -> Option<Key> {
        let rest = name.strip_prefix("citizen_id/")?;
        let (holder_id, type_code) = rest.split_once('/')?;
        Some(Key {
            holder_id: holder_id.to_string(),
            type_code: type_code.to_string(),
        })
    }

    /// A linearizable `Get` of this key.
    pub fn get_request(&self) -> pb::GetRequest {
        pb::GetRequest {
            holder_kind: pb::HolderKind::CitizenId as i32,
            holder_id: self.holder_id.clone(),
            type_code: self.type_code.clone(),
            consistency: pb::Consistency::Linearizable as i32,
            max_staleness_ms: 0,
        }
    }
}

/// The marker of a license read back (`None` when the field is absent).
pub fn marker_of(license: &pb::License) -> Option<String> {
    license.face.get(MARKER_FIELD).cloned()
}

/// The citizen id of holder number `n`; see the module doc.
pub fn citizen_holder_id(n: u64) -> anyhow::Result<String> {
    anyhow::ensure!(
        n < HOLDER_SPACE,
        "holder number {n} is not below {HOLDER_SPACE}"
    );
    let seq = n % 1000;
    let day = n / 1000;
    let (year, month, dom) = (1950 + day / 336, day / 28 % 12 + 1, day % 28 + 1);
    let first17 = format!("{REGION}{year:04}{month:02}{dom:02}{seq:03}");
    let check = licstore_model::citizen_id_check_char(&first17).context("citizen id")?;
    Ok(format!("{first17}{check}"))
}

/// Builds keys and license contents of the resident-ID-card template.
#[derive(Clone, Debug)]
pub struct LicenseFactory {
    template: LicenseTemplate,
    issuer_code: String,
}

impl LicenseFactory {
    /// The factory of the built-in template; fails when the template or a usable
    /// [`MARKER_FIELD`] is missing from it.
    pub fn new() -> anyhow::Result<Self> {
        let registry = TemplateRegistry::builtin();
        let template = registry
            .get(TEMPLATE_KEY)
            .with_context(|| format!("template {TEMPLATE_KEY}"))?
            .clone();
        anyhow::ensure!(
            !template.multiple_per_holder,
            "{TEMPLATE_KEY}: several per holder"
        );
        let field = template
            .field(MARKER_FIELD)
            .with_context(|| format!("{TEMPLATE_KEY} has no field {MARKER_FIELD}"))?;
        let usable = field.kind == FieldKind::Text && field.pattern.is_none();
        anyhow::ensure!(
            usable && field.max_len >= 32,
            "{MARKER_FIELD}: not free text"
        );
        let first17 = "11310000002421234";
        let check = licstore_model::uscc_check_char(first17).context("issuer code")?;
        Ok(LicenseFactory {
            template,
            issuer_code: format!("{first17}{check}"),
        })
    }

    /// The key of holder number `n`.
    pub fn key(&self, n: u64) -> anyhow::Result<Key> {
        Ok(Key {
            holder_id: citizen_holder_id(n)?,
            type_code: self.template.type_code.clone(),
        })
    }

    /// The full content of `key`'s license with `marker` as its value.
    pub fn license(&self, key: &Key, marker: &str) -> pb::NewLicense {
        pb::NewLicense {
            type_code: key.type_code.clone(),
            holder: Some(pb::Holder {
                kind: pb::HolderKind::CitizenId as i32,
                id: key.holder_id.clone(),
                name: "张三".into(),
                legacy_checksum: false,
            }),
            license_number: key.holder_id.clone(),
            issuer: Some(pb::Issuer {
                code: self.issuer_code.clone(),
                name: "上海市公安局浦东分局".into(),
            }),
            issue_date: "2020-01-15".into(),
            valid_from: "2020-01-15".into(),
            valid_until: "2040-01-15".into(),
            region_code: REGION.into(),
            face: self.face(&key.holder_id, marker),
            serial: String::new(),
        }
    }

    /// Every required field filled per its kind, then the marker.
    fn face(&self, holder_id: &str, marker: &str) -> HashMap<String, String> {
        let mut face = HashMap::new();
        for f in self.template.fields.iter().filter(|f| f.required) {
            let v = match &f.kind {
                FieldKind::Date => "1985-06-12".to_string(),
                FieldKind::Integer => "1".to_string(),
                FieldKind::Enum(values) => values.first().cloned().unwrap_or_default(),
                FieldKind::Text if f.name.contains("number") => holder_id.to_string(),
                FieldKind::Text => "上海市浦东新区".to_string(),
            };
            face.insert(f.name.clone(), v);
        }
        face.insert(MARKER_FIELD.to_string(), marker.to_string());
        face
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model_license(l: &pb::NewLicense) -> licstore_model::NewLicense {
        let face = l.face.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let holder = l.holder.as_ref().expect("holder");
        let issuer = l.issuer.as_ref().expect("issuer");
        let date = |s: &str| licstore_model::Date::parse(s).expect("date");
        licstore_model::NewLicense {
            type_code: l.type_code.clone(),
            holder: licstore_model::Holder {
                kind: licstore_model::HolderKind::CitizenId,
                id: holder.id.clone(),
                name: holder.name.clone(),
                legacy_checksum: false,
            },
            license_number: l.license_number.clone(),
            issuer: licstore_model::Issuer {
                code: issuer.code.clone(),
                name: issuer.name.clone(),
            },
            issue_date: date(&l.issue_date),
            valid_from: date(&l.valid_from),
            valid_until: Some(date(&l.valid_until)),
            region_code: l.region_code.clone(),
            face,
            serial: None,
        }
    }

    #[test]
    fn licenses_of_distant_holder_numbers_are_valid_and_distinct() {
        let f = LicenseFactory::new().expect("factory");
        let registry = TemplateRegistry::builtin();
        let today = licstore_model::Date::parse("2025-01-01").expect("date");
        let mut seen = std::collections::HashSet::new();
        for n in [0, 1, 999, 1000, 27_999, 336_000, HOLDER_SPACE - 1] {
            let key = f.key(n).expect("key");
            assert!(seen.insert(key.holder_id.clone()), "{n}");
            let l = f.license(&key, "c3-17");
            let checked = licstore_model::validate_new_license(
                &model_license(&l),
                &registry,
                licstore_model::CheckMode::Strict,
                today,
            );
            assert!(checked.is_ok(), "{n}: {checked:?}");
            assert_eq!(Key::parse(&key.name()), Some(key));
        }
        assert!(citizen_holder_id(HOLDER_SPACE).is_err());
    }
}
