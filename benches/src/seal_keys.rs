//! `licbench seal-keys`: a seal key for every issuing office of the generated dataset, so a
//! licstore cluster seals every record the benches write (the sealed series of `benches/run`).
//!
//! Each key is derived with BLAKE3 from the suite and the office code, so every bench run
//! seals with the same keys. These are bench keys, printed in the open: never seal real
//! licenses with them.

use std::path::PathBuf;

use anyhow::Context;
use licstore_cli::gen::Issuers;
use licstore_seal::{encode_key_file, SecretKey, Suite};

use crate::args::SealKeysArgs;

/// BLAKE3 key-derivation context of the bench keys.
const KEY_CONTEXT: &str = "licbench seal key v1";

/// The key of one office for `suite`.
pub fn office_key(suite: Suite, office_code: &str) -> anyhow::Result<SecretKey> {
    let material = format!("{}\0{office_code}", suite.name());
    let seed = blake3::derive_key(KEY_CONTEXT, material.as_bytes());
    Ok(SecretKey::from_seed(suite, &seed)?)
}

/// Codes of every office the dataset generator issues from.
pub fn office_codes() -> Vec<String> {
    let issuers = Issuers::shanghai();
    let all = issuers.police.iter().chain(&issuers.market);
    let mut codes: Vec<String> = all
        .chain(&issuers.hospitals)
        .map(|i| i.code.clone())
        .collect();
    codes.sort();
    codes.dedup();
    codes
}

/// Writes `OUT/<office code>.key` for every office and prints `code<TAB>path` lines.
pub fn write(args: &SealKeysArgs) -> anyhow::Result<()> {
    let suite = Suite::from_name(&args.suite)
        .with_context(|| format!("--suite {}: ed25519 or sm2-sm3", args.suite))?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("create {}", args.out.display()))?;
    for code in office_codes() {
        let key = office_key(suite, &code)?;
        let path: PathBuf = args.out.join(format!("{code}.key"));
        licstore_cli::seals::write_private(&path, encode_key_file(&key).as_bytes())?;
        println!("{code}\t{}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_distinct_and_cover_every_generated_issuer() {
        let codes = office_codes();
        let generator = licstore_cli::gen::Generator::new(1, "2026-01-01".parse().unwrap());
        let mut generator = generator.expect("generator");
        for _ in 0..2_000 {
            let record = generator.next_record();
            let code = &record.license.issuer.code;
            assert!(codes.contains(code), "no key for issuer {code}");
        }
        for suite in [Suite::Ed25519, Suite::Sm2Sm3] {
            let a = office_key(suite, &codes[0]).expect("key").key_id();
            assert_eq!(a, office_key(suite, &codes[0]).expect("key").key_id());
            assert_ne!(a, office_key(suite, &codes[1]).expect("key").key_id());
        }
    }
}
