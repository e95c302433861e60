//! Files that travel without a server: an exported license and a trust file.
//!
//! # Exported license, version 2
//!
//! | # | field   | encoding                                                             |
//! |---|---------|----------------------------------------------------------------------|
//! | 0 | domain  | string [`EXPORT_DOMAIN`], then `u8` version 2                        |
//! | 1 | record  | `u32` length, then the license's canonical record (with its seal)     |
//! | 2 | keys    | `u32` count, then per key `u32` length and a [`KeyRecord`] encoding  |
//! | 3 | entry   | `u32` length, then a [`SignedStatusEntry`] encoding; length 0: none  |
//!
//! Version 1 is version 2 without field 3; it still decodes (with no entry).
//!
//! The record's encoding belongs to `licstore-model`; this crate carries it as bytes. The key
//! records are the exporting store's view of the authority's keys (the key chain). They are
//! for display: an offline verifier decides with the records of a trust list it was given,
//! never with those the document brings along.
//!
//! # Trust file, version 1
//!
//! | # | field   | encoding                                                             |
//! |---|---------|----------------------------------------------------------------------|
//! | 0 | domain  | string [`TRUST_FILE_DOMAIN`], then `u8` version 1                    |
//! | 1 | root    | `u32` length, then the root's public key encoding                    |
//! | 2 | list    | `u32` length, then the signed trust list ([`crate::sign_trust_list`]) |
//!
//! [`TrustFile::open`] verifies the list under the root key the file names; whoever relies on
//! it pins that root by its key id (`licctl verify-offline --root-key-id`), since anyone can
//! sign a list with a root of their own.

use crate::codec::{Reader, Writer};
use crate::error::SealError;
use crate::lifecycle::KeyRecord;
use crate::status_entry::SignedStatusEntry;
use crate::suite::PublicKey;
use crate::trust_list::{verify_trust_list, TrustList};

/// Domain string of an exported license.
pub const EXPORT_DOMAIN: &str = "licstore exported license";

/// Domain string of a trust file.
pub const TRUST_FILE_DOMAIN: &str = "licstore trust file";

const VERSION: u8 = 1;
const EXPORT_VERSION: u8 = 2;
const STATUS_ENTRY_BYTES_MAX: usize = 4096;

/// Largest record carried, in bytes.
const RECORD_BYTES_MAX: usize = 1 << 20;

/// Largest key record, in bytes.
const KEY_RECORD_BYTES_MAX: usize = 4096;

/// Most key records carried with one license.
const KEYS_MAX: usize = 1024;

/// Largest signed trust list, in bytes.
const TRUST_LIST_BYTES_MAX: usize = 64 << 20;

/// Largest public key encoding, in bytes.
const PUBLIC_KEY_BYTES_MAX: usize = 512;

/// A license record with its authority's key records, as `licctl export` writes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportDocument {
    /// The canonical record (`licstore-model` encoding), seal included.
    pub record: Vec<u8>,
    /// The exporting store's records of the authority's keys.
    pub keys: Vec<KeyRecord>,
    /// The authority's signed word on where the license's status bits are, when the
    /// exporting node could sign it.
    pub status_entry: Option<SignedStatusEntry>,
}

impl ExportDocument {
    /// The format in the module header.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.header(EXPORT_DOMAIN, EXPORT_VERSION);
        w.bytes(&self.record);
        w.u32(u32::try_from(self.keys.len()).unwrap_or(u32::MAX));
        for key in &self.keys {
            w.bytes(&key.to_bytes());
        }
        let entry = self.status_entry.as_ref().map(SignedStatusEntry::to_bytes);
        w.bytes(&entry.unwrap_or_default());
        w.0
    }

    /// Decodes bytes produced by [`ExportDocument::to_bytes`], or a version 1 document.
    pub fn from_bytes(bytes: &[u8]) -> Result<ExportDocument, SealError> {
        let mut r = Reader::new(bytes);
        let version = match r.header(EXPORT_DOMAIN, EXPORT_VERSION) {
            Ok(()) => EXPORT_VERSION,
            Err(_) => {
                r = Reader::new(bytes);
                r.header(EXPORT_DOMAIN, VERSION)?;
                VERSION
            }
        };
        let record = r.bytes("export.record", RECORD_BYTES_MAX)?.to_vec();
        let count = r.u32("export.keys")?;
        if usize::try_from(count).map_or(true, |c| c > KEYS_MAX) {
            return Err(r.error("export.keys", format!("count {count} too large")));
        }
        let mut keys = Vec::new();
        for _ in 0..count {
            keys.push(KeyRecord::from_bytes(
                r.bytes("export.keys", KEY_RECORD_BYTES_MAX)?,
            )?);
        }
        let mut status_entry = None;
        if version == EXPORT_VERSION {
            let entry = r.bytes("export.status_entry", STATUS_ENTRY_BYTES_MAX)?;
            if !entry.is_empty() {
                status_entry = Some(SignedStatusEntry::from_bytes(entry)?);
            }
        }
        r.finish("export")?;
        Ok(ExportDocument {
            record,
            keys,
            status_entry,
        })
    }
}

/// A signed trust list with the root key it is signed under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustFile {
    /// The root key that signed `signed_list`.
    pub root: PublicKey,
    /// The bytes [`crate::sign_trust_list`] produced.
    pub signed_list: Vec<u8>,
}

impl TrustFile {
    /// Verifies the list under the file's root key.
    pub fn open(&self) -> Result<TrustList, SealError> {
        verify_trust_list(&self.root, &self.signed_list)
    }

    /// The format in the module header.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.header(TRUST_FILE_DOMAIN, VERSION);
        w.bytes(&self.root.to_bytes());
        w.bytes(&self.signed_list);
        w.0
    }

    /// Decodes bytes produced by [`TrustFile::to_bytes`] (without verifying the list).
    pub fn from_bytes(bytes: &[u8]) -> Result<TrustFile, SealError> {
        let mut r = Reader::new(bytes);
        r.header(TRUST_FILE_DOMAIN, VERSION)?;
        let root = PublicKey::from_bytes(r.bytes("trust_file.root", PUBLIC_KEY_BYTES_MAX)?)
            .map_err(SealError::into_decode)?;
        let signed_list = r.bytes("trust_file.list", TRUST_LIST_BYTES_MAX)?.to_vec();
        r.finish("trust_file")?;
        Ok(TrustFile { root, signed_list })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::{SecretKey, Suite};
    use crate::trust_list::sign_trust_list;

    fn key(seed: u8) -> SecretKey {
        SecretKey::from_seed(Suite::Ed25519, &[seed; 32]).unwrap()
    }

    #[test]
    fn export_documents_roundtrip_and_reject_truncation() {
        let record = KeyRecord::new("AUTH", key(1).public_key(), 5);
        let claim = crate::StatusEntryClaim {
            authority: "AUTH".into(),
            license_type: "T".into(),
            issued_digest: [3; 32],
            list: 0,
            position: 17,
            signed_at_ms: 9,
        };
        let entry = crate::sign_status_entry(&key(1), claim).unwrap();
        for status_entry in [None, Some(entry)] {
            let doc = ExportDocument {
                record: vec![1, 2, 3],
                keys: vec![record.clone()],
                status_entry,
            };
            let bytes = doc.to_bytes();
            assert_eq!(ExportDocument::from_bytes(&bytes), Ok(doc));
            for length in 0..bytes.len() {
                assert!(ExportDocument::from_bytes(&bytes[..length]).is_err());
            }
        }
    }

    #[test]
    fn version_1_documents_still_decode() {
        let record = KeyRecord::new("AUTH", key(1).public_key(), 5);
        let mut w = Writer::default();
        w.header(EXPORT_DOMAIN, 1);
        w.bytes(&[1, 2, 3]);
        w.u32(1);
        w.bytes(&record.to_bytes());
        let doc = ExportDocument::from_bytes(&w.0).unwrap();
        assert_eq!((doc.keys, doc.status_entry), (vec![record], None));
    }

    #[test]
    fn trust_files_open_under_their_root_only() {
        let root = key(9);
        let list = TrustList::new("ROOT", 7, vec![KeyRecord::new("A", key(1).public_key(), 5)]);
        let file = TrustFile {
            root: root.public_key(),
            signed_list: sign_trust_list(&root, &list).unwrap(),
        };
        let bytes = file.to_bytes();
        let decoded = TrustFile::from_bytes(&bytes).unwrap();
        assert_eq!(decoded.open(), Ok(list));
        let swapped_root = TrustFile {
            root: key(8).public_key(),
            ..decoded
        };
        assert!(swapped_root.open().is_err());
    }
}
