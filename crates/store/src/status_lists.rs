//! Status lists: one position per sealed license in a bitstring of its authority and type, so a
//! verifier can learn a license's status by downloading the whole list, which says nothing
//! about which license it checked.
//!
//! Every sealed license gets an entry (list number, position) when it first becomes current.
//! Positions are drawn at random among the free ones, from a draw derived from the identifier,
//! so every replica picks the same one and neighbouring positions within a list say nothing
//! about issue order (list numbers do, coarsely). Positions are never freed: a superseded
//! version keeps its position with its revocation bit set.
//!
//! TODO(upgrade): apply gained these writes without a state-machine version, so replicas of
//! this build and an older one must not apply the same log (their positions would differ),
//! and licenses sealed before this build get an entry only at their next status change; a
//! replicated feature switch and a backfill command are missing.
//!
//! A list holds [`LIST_CAPACITY`] positions and takes new ones until half of them are used,
//! which keeps a draw's chance of hitting a free position at one half or better; then the
//! next list number opens.
//!
//! Two bit planes are published per list: *revocation* (set for every status that cannot
//! become valid again, and for a version an amendment superseded) and *suspension* (set while
//! suspended). A third plane, *used*, marks taken positions. Each published plane has a
//! revision: the log index of the last change to its bits, so a client can ask for a list only
//! when it is newer than the copy it holds.
//!
//! Bits live in chunks of [`CHUNK_BYTES`], so a status change rewrites 256 bytes, not the
//! whole 16 KiB list. Layout in the `status_lists` family (scope = authority + `\0` + type +
//! `\0`):
//!
//! | key                                              | value                            |
//! |--------------------------------------------------|----------------------------------|
//! | `n` + scope                                      | open list number, u32 big-endian |
//! | `m` + scope + list (u32 BE)                      | bincode [`ListMeta`]             |
//! | `c` + plane + scope + list (u32 BE) + chunk (u32 BE) | the chunk's bytes            |
//! | `e` + identifier                                 | bincode [`StatusEntry`]          |

use licstore_model::{License, LicenseStatus};
use licstore_seal::status_list::STATUS_LIST_CAPACITY_MIN;
use licstore_seal::{Bitstring, StatusPurpose};
use serde::{Deserialize, Serialize};

use crate::apply::Applier;
use crate::keys::CF_STATUS_LISTS;
use crate::{codec, StoreError};

/// Positions per list: the smallest list the W3C format allows (16 KiB of bits). Pinned here:
/// replicas must agree on it, whatever the seal crate's limits become.
pub const LIST_CAPACITY: u32 = 131_072;

const _: () = assert!(LIST_CAPACITY >= STATUS_LIST_CAPACITY_MIN);

/// Bytes per stored chunk of a plane (2,048 positions).
pub const CHUNK_BYTES: usize = 256;

/// Used positions at which a list stops taking new licenses.
const LIST_FILL_MAX: u32 = LIST_CAPACITY / 2;

/// Random draws tried before the first free position after the last draw is taken.
const DRAWS_MAX: u32 = 64;

const CHUNK_BITS: u32 = (CHUNK_BYTES * 8) as u32;

/// Where a license's status bits are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusEntry {
    /// List number within the license's (authority, type).
    pub list: u32,
    /// Position within the list.
    pub position: u32,
}

/// Bookkeeping of one list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListMeta {
    /// Positions taken.
    pub used: u32,
    /// Log index of the last change to the revocation bits (or of the list's opening).
    pub revocation_revision: u64,
    /// Log index of the last change to the suspension bits (or of the list's opening).
    pub suspension_revision: u64,
}

impl ListMeta {
    /// The revision of the bits of `purpose`.
    pub fn revision(&self, purpose: StatusPurpose) -> u64 {
        match purpose {
            StatusPurpose::Revocation => self.revocation_revision,
            StatusPurpose::Suspension => self.suspension_revision,
        }
    }
}

/// A bit plane of a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Plane {
    Used,
    Revocation,
    Suspension,
}

impl Plane {
    fn tag(self) -> u8 {
        match self {
            Plane::Used => b'u',
            Plane::Revocation => b'r',
            Plane::Suspension => b's',
        }
    }

    fn of(purpose: StatusPurpose) -> Plane {
        match purpose {
            StatusPurpose::Revocation => Plane::Revocation,
            StatusPurpose::Suspension => Plane::Suspension,
        }
    }
}

/// The published bits of a license: (revocation, suspension).
pub fn status_bits(license: &License) -> (bool, bool) {
    if license.superseded_by.is_some() {
        return (true, false);
    }
    match license.status {
        LicenseStatus::Valid => (false, false),
        LicenseStatus::Suspended => (false, true),
        _ => (true, false),
    }
}

fn scope(authority: &str, type_code: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(authority.len() + type_code.len() + 2);
    out.extend_from_slice(authority.as_bytes());
    out.push(0);
    out.extend_from_slice(type_code.as_bytes());
    out.push(0);
    out
}

fn open_list_key(scope: &[u8]) -> Vec<u8> {
    [b"n".as_slice(), scope].concat()
}

fn meta_key(scope: &[u8], list: u32) -> Vec<u8> {
    [b"m".as_slice(), scope, &list.to_be_bytes()].concat()
}

fn chunk_prefix(plane: Plane, scope: &[u8], list: u32) -> Vec<u8> {
    [&[b'c', plane.tag()], scope, &list.to_be_bytes()].concat()
}

fn chunk_key(plane: Plane, scope: &[u8], list: u32, chunk: u32) -> Vec<u8> {
    [
        chunk_prefix(plane, scope, list).as_slice(),
        &chunk.to_be_bytes(),
    ]
    .concat()
}

/// `status_lists` key of a license's entry.
pub fn entry_key(identifier: &str) -> Vec<u8> {
    [b"e".as_slice(), identifier.as_bytes()].concat()
}

/// The `k`-th draw for a license: uniform 64 bits derived from its identifier.
fn draw(identifier: &str, k: u32) -> u64 {
    let mut hasher = blake3::Hasher::new_derive_key("licstore status list position v1");
    hasher.update(identifier.as_bytes());
    hasher.update(&k.to_le_bytes());
    let bytes = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&bytes.as_bytes()[..8]);
    u64::from_le_bytes(first)
}

fn locate(position: u32) -> (u32, usize, u8) {
    let chunk = position / CHUNK_BITS;
    let within = position % CHUNK_BITS;
    let byte = usize::try_from(within / 8).unwrap_or(0);
    (chunk, byte, 0x80 >> (within % 8))
}

impl Applier<'_, '_> {
    /// Keeps a sealed license's status bits in step with the record being stored: gives it a
    /// position the first time, then sets its bits, and moves the list's revision when a
    /// published bit changes. Unsealed licenses have no entry.
    pub(crate) fn track_status(&mut self, license: &License) -> Result<(), StoreError> {
        if license.seal.is_empty() {
            return Ok(());
        }
        let scope = scope(&license.issuer.code, &license.type_code);
        let entry = match self
            .txn
            .get(CF_STATUS_LISTS, &entry_key(&license.identifier))?
        {
            Some(bytes) => codec::decode("status entry", &bytes)?,
            None => self.allocate(&scope, &license.identifier)?,
        };
        let (revoked, suspended) = status_bits(license);
        let revocation = self.set_bit(Plane::Revocation, &scope, entry, revoked)?;
        let suspension = self.set_bit(Plane::Suspension, &scope, entry, suspended)?;
        if revocation || suspension {
            let mut meta = self.meta(&scope, entry.list)?;
            if revocation {
                meta.revocation_revision = self.index;
            }
            if suspension {
                meta.suspension_revision = self.index;
            }
            self.put_meta(&scope, entry.list, meta)?;
        }
        Ok(())
    }

    fn allocate(&mut self, scope: &[u8], identifier: &str) -> Result<StatusEntry, StoreError> {
        let mut list = match self.txn.get(CF_STATUS_LISTS, &open_list_key(scope))? {
            Some(bytes) => <[u8; 4]>::try_from(bytes.as_slice())
                .map(u32::from_be_bytes)
                .map_err(|_| StoreError::corrupt("open status list", "not 4 bytes"))?,
            None => 0,
        };
        let mut meta = self.meta(scope, list)?;
        if meta.used >= LIST_FILL_MAX {
            list += 1;
            meta = ListMeta::default();
        }
        if meta.used == 0 {
            // A new list: its revisions tell clients it exists.
            meta.revocation_revision = self.index;
            meta.suspension_revision = self.index;
            self.txn.put(
                CF_STATUS_LISTS,
                &open_list_key(scope),
                list.to_be_bytes().to_vec(),
            )?;
        }
        let position = self.free_position(scope, list, identifier)?;
        self.set_bit(Plane::Used, scope, StatusEntry { list, position }, true)?;
        meta.used += 1;
        self.put_meta(scope, list, meta)?;
        let entry = StatusEntry { list, position };
        self.txn.put(
            CF_STATUS_LISTS,
            &entry_key(identifier),
            codec::encode("status entry", &entry)?,
        )?;
        Ok(entry)
    }

    /// A free position: the first of [`DRAWS_MAX`] draws that is free, else the first free
    /// one after the last draw (the list is at most half full, so one exists).
    fn free_position(
        &mut self,
        scope: &[u8],
        list: u32,
        identifier: &str,
    ) -> Result<u32, StoreError> {
        let mut position = 0;
        for k in 0..DRAWS_MAX {
            position = u32::try_from(draw(identifier, k) % u64::from(LIST_CAPACITY)).unwrap_or(0);
            if !self.bit(Plane::Used, scope, list, position)? {
                return Ok(position);
            }
        }
        for step in 1..LIST_CAPACITY {
            let next = (position + step) % LIST_CAPACITY;
            if !self.bit(Plane::Used, scope, list, next)? {
                return Ok(next);
            }
        }
        Err(StoreError::corrupt(
            "status list",
            "no free position in a list under half full",
        ))
    }

    fn chunk(
        &self,
        plane: Plane,
        scope: &[u8],
        list: u32,
        chunk: u32,
    ) -> Result<Vec<u8>, StoreError> {
        let key = chunk_key(plane, scope, list, chunk);
        match self.txn.get(CF_STATUS_LISTS, &key)? {
            Some(bytes) if bytes.len() == CHUNK_BYTES => Ok(bytes),
            Some(_) => Err(StoreError::corrupt("status list chunk", "wrong length")),
            None => Ok(vec![0; CHUNK_BYTES]),
        }
    }

    fn bit(
        &self,
        plane: Plane,
        scope: &[u8],
        list: u32,
        position: u32,
    ) -> Result<bool, StoreError> {
        let (chunk, byte, mask) = locate(position);
        Ok(self.chunk(plane, scope, list, chunk)?[byte] & mask != 0)
    }

    /// Sets one bit; answers whether it changed.
    fn set_bit(
        &mut self,
        plane: Plane,
        scope: &[u8],
        entry: StatusEntry,
        value: bool,
    ) -> Result<bool, StoreError> {
        let (chunk, byte, mask) = locate(entry.position);
        let mut bytes = self.chunk(plane, scope, entry.list, chunk)?;
        if (bytes[byte] & mask != 0) == value {
            return Ok(false);
        }
        bytes[byte] ^= mask;
        let key = chunk_key(plane, scope, entry.list, chunk);
        self.txn.put(CF_STATUS_LISTS, &key, bytes)?;
        Ok(true)
    }

    fn meta(&self, scope: &[u8], list: u32) -> Result<ListMeta, StoreError> {
        match self.txn.get(CF_STATUS_LISTS, &meta_key(scope, list))? {
            Some(bytes) => codec::decode("status list meta", &bytes),
            None => Ok(ListMeta::default()),
        }
    }

    fn put_meta(&mut self, scope: &[u8], list: u32, meta: ListMeta) -> Result<(), StoreError> {
        let bytes = codec::encode("status list meta", &meta)?;
        self.txn.put(CF_STATUS_LISTS, &meta_key(scope, list), bytes)
    }
}

/// One list's published bits for one purpose, as a reader assembles them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListBits {
    /// The list's bookkeeping.
    pub meta: ListMeta,
    /// The bits of the asked purpose.
    pub bits: Bitstring,
}

impl crate::Reader {
    /// The entry of a sealed license, if it has one.
    pub fn status_entry(&self, identifier: &str) -> Result<Option<StatusEntry>, StoreError> {
        match self.get_cf_bytes(CF_STATUS_LISTS, &entry_key(identifier))? {
            Some(bytes) => Ok(Some(codec::decode("status entry", &bytes)?)),
            None => Ok(None),
        }
    }

    /// List `list` of (`authority`, `type_code`) for `purpose`, with the applied index, all read
    /// from one snapshot so bits and revision agree; `None` when the list was never opened.
    pub fn status_list(
        &self,
        authority: &str,
        type_code: &str,
        list: u32,
        purpose: StatusPurpose,
    ) -> Result<Option<(u64, ListBits)>, StoreError> {
        let snap = self.db.snapshot();
        let applied = crate::reader::applied_index_at(&self.db, Some(&snap))?;
        let scope = scope(authority, type_code);
        let meta = crate::reader::get_at(
            &self.db,
            Some(&snap),
            CF_STATUS_LISTS,
            &meta_key(&scope, list),
        )?;
        let Some(meta) = meta else {
            return Ok(None);
        };
        let meta: ListMeta = codec::decode("status list meta", &meta)?;
        let mut bytes = vec![0u8; usize::try_from(LIST_CAPACITY / 8).unwrap_or(0)];
        let prefix = chunk_prefix(Plane::of(purpose), &scope, list);
        let cf = crate::txn::cf_handle(&self.db, CF_STATUS_LISTS)?;
        let from = rocksdb::IteratorMode::From(&prefix, rocksdb::Direction::Forward);
        for item in snap.iterator_cf(cf, from) {
            let (key, chunk) = item?;
            if !key.starts_with(&prefix) {
                break;
            }
            copy_chunk(&mut bytes, &key[prefix.len()..], &chunk)?;
        }
        let bits =
            Bitstring::from_bytes(bytes).map_err(|e| StoreError::corrupt("status list", e))?;
        Ok(Some((applied, ListBits { meta, bits })))
    }
}

/// Copies one stored chunk (key suffix: chunk index, u32 big-endian) into the list's bytes.
fn copy_chunk(bytes: &mut [u8], index: &[u8], chunk: &[u8]) -> Result<(), StoreError> {
    let index = <[u8; 4]>::try_from(index)
        .map(u32::from_be_bytes)
        .map_err(|_| StoreError::corrupt("status list chunk key", "bad length"))?;
    let start = usize::try_from(index)
        .unwrap_or(usize::MAX)
        .saturating_mul(CHUNK_BYTES);
    let target = bytes
        .get_mut(start..start.saturating_add(CHUNK_BYTES))
        .filter(|_| chunk.len() == CHUNK_BYTES)
        .ok_or_else(|| StoreError::corrupt("status list chunk", "out of range"))?;
    target.copy_from_slice(chunk);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_follow_status_and_supersession() {
        let mut license = crate::index::tests::sample(LicenseStatus::Valid, None);
        let cases = [
            (LicenseStatus::Valid, (false, false)),
            (LicenseStatus::Suspended, (false, true)),
            (LicenseStatus::Revoked, (true, false)),
            (LicenseStatus::Expired, (true, false)),
            (LicenseStatus::Cancelled, (true, false)),
        ];
        for (status, bits) in cases {
            license.status = status;
            assert_eq!(status_bits(&license), bits, "{status:?}");
        }
        license.status = LicenseStatus::Valid;
        license.superseded_by = Some("next".into());
        assert_eq!(status_bits(&license), (true, false));
    }

    #[test]
    fn draws_differ_per_identifier_and_attempt() {
        assert_ne!(draw("a", 0), draw("a", 1));
        assert_ne!(draw("a", 0), draw("b", 0));
        assert_eq!(draw("a", 3), draw("a", 3));
        let (chunk, byte, mask) = locate(CHUNK_BITS + 9);
        assert_eq!((chunk, byte, mask), (1, 1, 0x40));
    }
}
