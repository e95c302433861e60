//! Records and keys of a benchmark dataset.
//!
//! The records come from `licctl gen`'s generator, which is a function of (seed, as-of date):
//! the loader and every later run regenerate the same records, so no key file has to travel
//! between them, and every system is loaded with the same licenses. New records for `issue`
//! and `import` come from a different seed per run, and only valid ones are kept (a new issue
//! must be valid today).

use anyhow::Context;
use licstore_cli::dataset::Record;
use licstore_cli::gen::Generator;
use licstore_model::Date;
use licstore_proto::v1 as pb;

/// What a verification asks for: holder and license type.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    /// `pb::HolderKind` as its number.
    pub holder_kind: i32,
    /// Citizen ID number or USCC.
    pub holder_id: String,
    /// The 21-character type code.
    pub type_code: String,
}

impl Key {
    /// The etcd key the record is stored under: `lic/<kind>/<holder>/<type>`.
    pub fn etcd_key(&self) -> String {
        format!(
            "lic/{}/{}/{}",
            self.holder_kind, self.holder_id, self.type_code
        )
    }
}

/// A record ready to send: the import message, its key and its size as a stored value.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The bulk-load message (status and request id included).
    pub import: pb::ImportRecord,
    /// Holder and type.
    pub key: Key,
}

impl Prepared {
    /// The new-license content.
    pub fn license(&self) -> &pb::NewLicense {
        self.import
            .license
            .as_ref()
            .expect("prepared records carry a license")
    }
}

/// Today's date in UTC, the generator's as-of date.
pub fn today() -> Date {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Date::from_unix_secs(secs)
}

/// Turns a generated record into what is sent.
pub fn prepare(record: &Record) -> anyhow::Result<Prepared> {
    let mut import = record
        .to_proto()
        .map_err(|e| anyhow::anyhow!("generated record: {e}"))?;
    let license = import
        .license
        .as_mut()
        .context("generated record without license")?;
    let template = licstore_cli::types::find(&license.type_code)
        .with_context(|| format!("no template {}", license.type_code))?;
    license.type_code = template.type_code.clone();
    let holder = license
        .holder
        .as_ref()
        .context("generated record without holder")?;
    let key = Key {
        holder_kind: holder.kind,
        holder_id: holder.id.clone(),
        type_code: template.type_code.clone(),
    };
    Ok(Prepared { import, key })
}

/// The loaded dataset's records, in order, endlessly (take `records`).
pub fn records(seed: u64) -> anyhow::Result<impl Iterator<Item = anyhow::Result<Prepared>>> {
    let mut generator = Generator::new(seed, today())?;
    Ok(std::iter::from_fn(move || {
        Some(prepare(&generator.next_record()))
    }))
}

/// The keys of the first `n` records of the dataset.
pub fn keys(seed: u64, n: u64) -> anyhow::Result<Vec<Key>> {
    records(seed)?
        .take(n as usize)
        .map(|r| r.map(|p| p.key))
        .collect()
}

/// Seed of the new records of run `run_id`: far from any dataset seed.
pub fn fresh_seed(seed: u64, run_id: u64) -> u64 {
    seed ^ 0x5eed_0000_0000_0000 ^ run_id.rotate_left(17)
}

/// New valid records for `issue` and `import`, endlessly. Their holders are drawn from the
/// same space as the dataset's, so a rare one may collide with a loaded holder; such an issue
/// is refused and counted as an error by the run, not hidden.
pub fn fresh(seed: u64, run_id: u64) -> anyhow::Result<impl Iterator<Item = Prepared>> {
    let mut generator = Generator::new(fresh_seed(seed, run_id), today())?;
    let valid = licstore_model::LicenseStatus::Valid.as_str();
    Ok(std::iter::from_fn(move || loop {
        let record = generator.next_record();
        if record.status != valid {
            continue;
        }
        if let Ok(mut p) = prepare(&record) {
            p.import.request_id = licstore_client::new_request_id();
            return Some(p);
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_keys() {
        let a = keys(7, 50).unwrap();
        let b = keys(7, 50).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, keys(8, 50).unwrap());
        assert!(a.iter().all(|k| k.type_code.len() == 21), "{a:?}");
    }

    #[test]
    fn fresh_records_are_valid_and_differ_from_the_dataset() {
        let loaded: std::collections::HashSet<Key> = keys(7, 200).unwrap().into_iter().collect();
        let fresh: Vec<Prepared> = fresh(7, 1).unwrap().take(200).collect();
        let valid = pb::LicenseStatus::Valid as i32;
        assert!(fresh.iter().all(|p| p.import.status == valid));
        let overlap = fresh.iter().filter(|p| loaded.contains(&p.key)).count();
        assert!(
            overlap < 5,
            "{overlap} of 200 fresh records collide with the dataset"
        );
    }
}
