//! Deterministic binary encoding of a [`License`], used for storage and for the content digest.
//!
//! # Format, version 1
//!
//! All integers are little-endian. A record is the format-version byte followed by the fields
//! in this fixed order:
//!
//! | # | field                  | encoding                                             |
//! |---|------------------------|------------------------------------------------------|
//! | 0 | format version         | `u8` = 1                                             |
//! | 1 | identifier             | string                                               |
//! | 2 | type_code              | string                                               |
//! | 3 | holder.kind            | `u8`: 0 citizen ID, 1 USCC                           |
//! | 4 | holder.id              | string                                               |
//! | 5 | holder.name            | string                                               |
//! | 6 | holder.legacy_checksum | bool                                                 |
//! | 7 | license_number         | string                                               |
//! | 8 | issuer.code            | string                                               |
//! | 9 | issuer.name            | string                                               |
//! | 10 | issue_date            | date                                                 |
//! | 11 | valid_from            | date                                                 |
//! | 12 | valid_until           | option of date                                       |
//! | 13 | region_code           | string                                               |
//! | 14 | face                  | `u32` count, then (key string, value string) pairs   |
//! | 15 | status                | `u8`: the national code as a number (1..=7, 99)      |
//! | 16 | status_reason         | option of string                                     |
//! | 17 | version               | `u16`                                                |
//! | 18 | replaces              | option of string                                     |
//! | 19 | superseded_by         | option of string                                     |
//! | 20 | revision              | `u64`                                                |
//! | 21 | digest                | 32 raw bytes                                         |
//! | 22 | seal (version 2 only) | `u32` byte length, then the seal bundle's bytes      |
//!
//! * string: `u32` byte length, then that many bytes of UTF-8.
//! * bool: one byte, 0 or 1.
//! * date: `u16` year, `u8` month, `u8` day (a valid [`Date`]).
//! * option: a presence byte (0 absent, 1 present), then the value if present.
//! * face pairs are in strictly ascending byte order of the keys (the `BTreeMap` order), so one
//!   map has exactly one encoding.
//!
//! A record without a seal is written in version 1, so records stored before seals existed
//! keep their bytes; a sealed record is written in version 2, which adds field 22. The seal is
//! opaque here (the `licstore-seal` crate gives it meaning).
//!
//! Fields 0-19 are the *content*; [`content_digest`] is BLAKE3 (in derive-key mode, with a
//! context string naming this format) over the content bytes, always with version byte 1, so
//! revision, digest and seal never feed the digest.
//!
//! The *issued content* is what an issuing authority seals: the content without the fields a
//! later status change rewrites (status, status reason, superseded-by). [`issued_digest`] is
//! BLAKE3 over fields 1-14, 17 and 18 under a context string of its own, so a seal stays
//! valid through suspension and revocation, which the status list and the store report.
//!
//! [`decode`] accepts exactly the bytes [`encode`] produces: every length is
//! bounds-checked before use, flags must be 0 or 1, dates must be real, face keys must ascend
//! and no bytes may trail. It never panics.

use std::collections::BTreeMap;

use crate::date::Date;
use crate::error::ModelError;
use crate::holder::{Holder, HolderKind};
use crate::license::{Issuer, License};
use crate::status::LicenseStatus;

/// The format version of an unsealed record, and of the content the digest covers.
pub const FORMAT_VERSION: u8 = 1;

/// The format version of a sealed record: version 1 followed by the seal.
pub const FORMAT_VERSION_SEALED: u8 = 2;

/// Largest seal accepted in a record, in bytes.
pub const SEAL_BYTES_MAX: usize = 64 * 1024;

const DIGEST_CONTEXT: &str = "licstore license content digest, canonical format v1";

const ISSUED_DIGEST_CONTEXT: &str = "licstore license issued content digest, canonical format v1";

/// The full record, content followed by revision, digest and (when sealed) the seal.
pub fn encode(license: &License) -> Vec<u8> {
    let mut out = encode_content(license);
    out.extend_from_slice(&license.revision.to_le_bytes());
    out.extend_from_slice(&license.digest);
    if !license.seal.is_empty() {
        out[0] = FORMAT_VERSION_SEALED;
        let length = u32::try_from(license.seal.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&length.to_le_bytes());
        out.extend_from_slice(&license.seal);
    }
    out
}

/// Decodes a record produced by [`encode`]; any other input is an error, never a panic.
///
/// The digest is read, not checked: use [`decode_verified`] or [`License::digest_matches`].
pub fn decode(bytes: &[u8]) -> Result<License, ModelError> {
    let mut reader = Reader { bytes, offset: 0 };
    let version = reader.u8("format_version")?;
    if version != FORMAT_VERSION && version != FORMAT_VERSION_SEALED {
        return Err(reader.error("format_version", format!("unknown version {version}")));
    }
    let mut license = read_license(&mut reader)?;
    if version == FORMAT_VERSION_SEALED {
        license.seal = reader.seal()?;
    }
    if reader.offset != bytes.len() {
        let trailing = bytes.len() - reader.offset;
        return Err(reader.error("record", format!("{trailing} trailing bytes")));
    }
    Ok(license)
}

/// [`decode`], then checks that the stored digest matches the content.
pub fn decode_verified(bytes: &[u8]) -> Result<License, ModelError> {
    let license = decode(bytes)?;
    if !license.digest_matches() {
        let reason = "does not match the record content".to_owned();
        return Err(ModelError::Decode {
            field: "digest".into(),
            reason,
        });
    }
    Ok(license)
}

/// BLAKE3 over the canonical encoding of every field except `revision` and `digest`.
pub fn content_digest(license: &License) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_derive_key(DIGEST_CONTEXT);
    hasher.update(&encode_content(license));
    *hasher.finalize().as_bytes()
}

/// BLAKE3 over the issued content: what a seal signs (see the module header).
pub fn issued_digest(license: &License) -> [u8; 32] {
    let mut w = Writer(Vec::with_capacity(512));
    w.issued_fields(license);
    w.0.extend_from_slice(&license.version.to_le_bytes());
    w.option(license.replaces.as_ref(), |w, s| w.string(s));
    let mut hasher = blake3::Hasher::new_derive_key(ISSUED_DIGEST_CONTEXT);
    hasher.update(&w.0);
    *hasher.finalize().as_bytes()
}

fn encode_content(license: &License) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(512));
    w.u8(FORMAT_VERSION);
    w.issued_fields(license);
    w.u8(status_tag(license.status));
    w.option(license.status_reason.as_ref(), |w, s| w.string(s));
    w.0.extend_from_slice(&license.version.to_le_bytes());
    w.option(license.replaces.as_ref(), |w, s| w.string(s));
    w.option(license.superseded_by.as_ref(), |w, s| w.string(s));
    w.0
}

fn read_license(r: &mut Reader<'_>) -> Result<License, ModelError> {
    Ok(License {
        identifier: r.string("identifier")?,
        type_code: r.string("type_code")?,
        holder: read_holder(r)?,
        license_number: r.string("license_number")?,
        issuer: Issuer {
            code: r.string("issuer.code")?,
            name: r.string("issuer.name")?,
        },
        issue_date: r.date("issue_date")?,
        valid_from: r.date("valid_from")?,
        valid_until: r.option("valid_until", |r| r.date("valid_until"))?,
        region_code: r.string("region_code")?,
        face: r.face()?,
        status: read_status(r)?,
        status_reason: r.option("status_reason", |r| r.string("status_reason"))?,
        version: u16::from_le_bytes(r.array("version")?),
        replaces: r.option("replaces", |r| r.string("replaces"))?,
        superseded_by: r.option("superseded_by", |r| r.string("superseded_by"))?,
        revision: u64::from_le_bytes(r.array("revision")?),
        digest: r.array("digest")?,
        seal: Vec::new(),
    })
}

fn read_holder(r: &mut Reader<'_>) -> Result<Holder, ModelError> {
    let kind = match r.u8("holder.kind")? {
        0 => HolderKind::CitizenId,
        1 => HolderKind::Uscc,
        tag => return Err(r.error("holder.kind", format!("unknown tag {tag}"))),
    };
    Ok(Holder {
        kind,
        id: r.string("holder.id")?,
        name: r.string("holder.name")?,
        legacy_checksum: r.bool("holder.legacy_checksum")?,
    })
}

fn read_status(r: &mut Reader<'_>) -> Result<LicenseStatus, ModelError> {
    let tag = r.u8("status")?;
    LicenseStatus::ALL
        .into_iter()
        .find(|s| status_tag(*s) == tag)
        .ok_or_else(|| r.error("status", format!("unknown tag {tag}")))
}

fn holder_tag(kind: HolderKind) -> u8 {
    match kind {
        HolderKind::CitizenId => 0,
        HolderKind::Uscc => 1,
    }
}

fn status_tag(status: LicenseStatus) -> u8 {
    match status {
        LicenseStatus::Valid => 1,
        LicenseStatus::Suspended => 2,
        LicenseStatus::Revoked => 3,
        LicenseStatus::Cancelled => 4,
        LicenseStatus::Expired => 5,
        LicenseStatus::TransferredOut => 6,
        LicenseStatus::RevokedAsPenalty => 7,
        LicenseStatus::Other => 99,
    }
}

/// Appends fields in this module's encodings; shared with [`crate::audit`].
pub(crate) struct Writer(pub(crate) Vec<u8>);

impl Writer {
    pub(crate) fn u8(&mut self, value: u8) {
        self.0.push(value);
    }

    pub(crate) fn u64(&mut self, value: u64) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }

    pub(crate) fn string(&mut self, value: &str) {
        // A string longer than 4 GiB cannot reach here: request limits are far smaller.
        debug_assert!(u32::try_from(value.len()).is_ok());
        let length = u32::try_from(value.len()).unwrap_or(u32::MAX);
        self.0.extend_from_slice(&length.to_le_bytes());
        self.0.extend_from_slice(value.as_bytes());
    }

    fn date(&mut self, date: Date) {
        self.0.extend_from_slice(&date.year().to_le_bytes());
        self.0.push(date.month());
        self.0.push(date.day());
    }

    fn holder(&mut self, holder: &Holder) {
        self.u8(holder_tag(holder.kind));
        self.string(&holder.id);
        self.string(&holder.name);
        self.u8(u8::from(holder.legacy_checksum));
    }

    /// Fields 1-14, shared by the content and the issued content.
    fn issued_fields(&mut self, license: &License) {
        self.string(&license.identifier);
        self.string(&license.type_code);
        self.holder(&license.holder);
        self.string(&license.license_number);
        self.string(&license.issuer.code);
        self.string(&license.issuer.name);
        self.date(license.issue_date);
        self.date(license.valid_from);
        self.option(license.valid_until.as_ref(), |w, d| w.date(*d));
        self.string(&license.region_code);
        self.face(&license.face);
    }

    fn face(&mut self, face: &BTreeMap<String, String>) {
        let count = u32::try_from(face.len()).unwrap_or(u32::MAX);
        self.0.extend_from_slice(&count.to_le_bytes());
        for (key, value) in face {
            self.string(key);
            self.string(value);
        }
    }

    fn option<T>(&mut self, value: Option<&T>, write: impl FnOnce(&mut Writer, &T)) {
        match value {
            Some(inner) => {
                self.u8(1);
                write(self, inner);
            }
            None => self.u8(0),
        }
    }
}

/// A bounds-checked cursor; every read names the field it is reading. Shared with
/// [`crate::audit`].
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    /// A cursor at the start of `bytes`.
    pub(crate) fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, offset: 0 }
    }

    /// Refuses bytes left over after the last field.
    pub(crate) fn finish(&self) -> Result<(), ModelError> {
        match self.bytes.len() - self.offset {
            0 => Ok(()),
            trailing => Err(self.error("record", format!("{trailing} trailing bytes"))),
        }
    }

    pub(crate) fn u64(&mut self, field: &str) -> Result<u64, ModelError> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }

    pub(crate) fn error(&self, field: &str, reason: String) -> ModelError {
        ModelError::Decode {
            field: field.to_owned(),
            reason: format!("{reason} (at byte {})", self.offset),
        }
    }

    fn take(&mut self, length: usize, field: &str) -> Result<&'a [u8], ModelError> {
        let end = self
            .offset
            .checked_add(length)
            .filter(|end| *end <= self.bytes.len());
        let Some(end) = end else {
            let reason = format!(
                "needs {length} bytes, {} left",
                self.bytes.len() - self.offset
            );
            return Err(self.error(field, reason));
        };
        let slice = &self.bytes[self.offset..end];
        self.offset = end;
        Ok(slice)
    }

    pub(crate) fn array<const N: usize>(&mut self, field: &str) -> Result<[u8; N], ModelError> {
        let slice = self.take(N, field)?;
        let mut out = [0; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, field: &str) -> Result<u8, ModelError> {
        Ok(self.array::<1>(field)?[0])
    }

    fn bool(&mut self, field: &str) -> Result<bool, ModelError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(self.error(field, format!("flag byte {other} is not 0 or 1"))),
        }
    }

    pub(crate) fn string(&mut self, field: &str) -> Result<String, ModelError> {
        let length = u32::from_le_bytes(self.array(field)?);
        let length = usize::try_from(length).unwrap_or(usize::MAX);
        let bytes = self.take(length, field)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| self.error(field, "is not valid UTF-8".to_owned()))
    }

    fn date(&mut self, field: &str) -> Result<Date, ModelError> {
        let year = u16::from_le_bytes(self.array(field)?);
        let [month, day] = self.array(field)?;
        Date::new(year, month, day).map_err(|e| self.error(field, e.to_string()))
    }

    fn option<T>(
        &mut self,
        field: &str,
        read: impl FnOnce(&mut Reader<'a>) -> Result<T, ModelError>,
    ) -> Result<Option<T>, ModelError> {
        if self.bool(field)? {
            read(self).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Field 22: a non-empty seal of at most [`SEAL_BYTES_MAX`] bytes (an empty one is
    /// written as version 1, so accepting it would give one record two encodings).
    fn seal(&mut self) -> Result<Vec<u8>, ModelError> {
        let length = u32::from_le_bytes(self.array("seal")?);
        let length = usize::try_from(length).unwrap_or(usize::MAX);
        if length == 0 || length > SEAL_BYTES_MAX {
            let reason = format!("length {length} is not within 1..={SEAL_BYTES_MAX}");
            return Err(self.error("seal", reason));
        }
        Ok(self.take(length, "seal")?.to_vec())
    }

    fn face(&mut self) -> Result<BTreeMap<String, String>, ModelError> {
        let count = u32::from_le_bytes(self.array("face")?);
        let mut face = BTreeMap::new();
        let mut previous: Option<String> = None;
        for _ in 0..count {
            let key = self.string("face")?;
            if previous.as_ref().is_some_and(|p| *p >= key) {
                return Err(self.error("face", "keys are not strictly ascending".to_owned()));
            }
            let value = self.string("face")?;
            previous = Some(key.clone());
            face.insert(key, value);
        }
        Ok(face)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> License {
        let face: BTreeMap<String, String> = [("name", "张三"), ("sex", "男")]
            .map(|(k, v)| (k.into(), v.into()))
            .into();
        let mut license = License {
            identifier: "1.2.156.3005.2.11100000000013338W032.11220000013544541J.2430599.001.F"
                .into(),
            type_code: "11100000000013338W032".into(),
            holder: Holder {
                kind: HolderKind::CitizenId,
                id: "11010519491231002X".into(),
                name: "张三".into(),
                legacy_checksum: false,
            },
            license_number: "No.1".into(),
            issuer: Issuer {
                code: "11220000013544541J".into(),
                name: "某局".into(),
            },
            issue_date: Date::new(2024, 1, 2).unwrap(),
            valid_from: Date::new(2024, 1, 2).unwrap(),
            valid_until: Some(Date::new(2034, 1, 1).unwrap()),
            region_code: "310115".into(),
            face,
            status: LicenseStatus::Valid,
            status_reason: None,
            version: 1,
            replaces: None,
            superseded_by: Some("x".into()),
            revision: 7,
            digest: [0; 32],
            seal: Vec::new(),
        };
        license.refresh_digest();
        license
    }

    #[test]
    fn sealed_records_use_version_2_and_roundtrip() {
        let mut license = sample();
        let unsealed = encode(&license);
        license.seal = vec![7; 40];
        let sealed = encode(&license);
        assert_eq!(sealed[0], FORMAT_VERSION_SEALED);
        assert_eq!(sealed[1..unsealed.len()], unsealed[1..]);
        assert_eq!(decode_verified(&sealed), Ok(license.clone()));
        for length in 0..sealed.len() {
            assert!(decode(&sealed[..length]).is_err(), "length {length}");
        }
        // A version 2 record with an empty seal has a version 1 spelling, so it is refused.
        let mut empty = unsealed.clone();
        empty[0] = FORMAT_VERSION_SEALED;
        empty.extend_from_slice(&0u32.to_le_bytes());
        assert_eq!(
            decode(&empty).expect_err("empty seal").field(),
            Some("seal")
        );
        let mut version_1_with_seal = sealed;
        version_1_with_seal[0] = FORMAT_VERSION;
        let error = decode(&version_1_with_seal).expect_err("trailing seal");
        assert_eq!(error.field(), Some("record"));
    }

    #[test]
    fn digests_cover_what_they_document() {
        // (change, changes content digest, changes issued digest)
        type Change = fn(&mut License);
        let cases: [(&str, Change, bool, bool); 8] = [
            ("seal", |l| l.seal = vec![1], false, false),
            ("revision", |l| l.revision += 1, false, false),
            (
                "status",
                |l| l.status = LicenseStatus::Suspended,
                true,
                false,
            ),
            (
                "status_reason",
                |l| l.status_reason = Some("r".into()),
                true,
                false,
            ),
            ("superseded_by", |l| l.superseded_by = None, true, false),
            (
                "face",
                |l| drop(l.face.insert("sex".into(), "女".into())),
                true,
                true,
            ),
            ("version", |l| l.version = 2, true, true),
            ("replaces", |l| l.replaces = Some("y".into()), true, true),
        ];
        let base = sample();
        for (name, change, content, issued) in cases {
            let mut changed = base.clone();
            change(&mut changed);
            assert_eq!(
                content_digest(&changed) != content_digest(&base),
                content,
                "{name}"
            );
            assert_eq!(
                issued_digest(&changed) != issued_digest(&base),
                issued,
                "{name}"
            );
        }
        assert_ne!(issued_digest(&base), content_digest(&base));
    }

    #[test]
    fn roundtrip_and_verified_decode() {
        let license = sample();
        let bytes = encode(&license);
        assert_eq!(bytes[0], FORMAT_VERSION);
        assert_eq!(decode(&bytes), Ok(license.clone()));
        assert_eq!(decode_verified(&bytes), Ok(license.clone()));
        let mut tampered = license;
        tampered.license_number.push('!');
        assert!(decode(&encode(&tampered)).is_ok());
        let error = decode_verified(&encode(&tampered)).expect_err("digest mismatch");
        assert_eq!(error.field(), Some("digest"));
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = encode(&sample());
        for length in 0..bytes.len() {
            assert!(decode(&bytes[..length]).is_err(), "length {length}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        let error = decode(&longer).expect_err("trailing byte");
        assert_eq!(error.field(), Some("record"));
    }

    #[test]
    fn corrupt_bytes_are_named() {
        let bytes = encode(&sample());
        let holder_kind_at = 1 + 4 + sample().identifier.len() + 4 + sample().type_code.len();
        let cases: [(usize, u8, &str); 3] = [
            (0, 3, "format_version"),
            (holder_kind_at, 9, "holder.kind"),
            (5, 0xff, "identifier"),
        ];
        for (offset, value, field) in cases {
            let mut corrupt = bytes.clone();
            corrupt[offset] = value;
            let error = decode(&corrupt).expect_err(field);
            assert_eq!(error.field(), Some(field), "{error}");
        }
    }

    #[test]
    fn unsorted_face_keys_are_rejected() {
        let mut license = sample();
        license.face.clear();
        license.face.insert("a".into(), "1".into());
        license.face.insert("b".into(), "2".into());
        let bytes = encode(&license);
        let swapped = {
            let text = bytes.clone();
            let a = text
                .windows(5)
                .position(|w| w == [1, 0, 0, 0, b'a'])
                .unwrap();
            let b = text
                .windows(5)
                .position(|w| w == [1, 0, 0, 0, b'b'])
                .unwrap();
            let mut out = text;
            out[a + 4] = b'b';
            out[b + 4] = b'a';
            out
        };
        let error = decode(&swapped).expect_err("unsorted");
        assert_eq!(error.field(), Some("face"));
    }
}
