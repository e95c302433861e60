//! Trust lists imported from other stores: the seal keys of authorities this store does not
//! register itself, vouched for by another store's root key.
//!
//! A store in another province exports its keys as a trust list signed with its root key
//! (`licctl trust export`). Importing that list here (`Command::ImportTrustList`) copies its key
//! records into the seal-key registry, so seals of those authorities are checked on write (an
//! imported or issued license they sealed) and judged on verification exactly like local
//! ones. The operator pins the root key id; the list must be signed under that root, which
//! every replica checks again on apply (a signature check is deterministic).
//!
//! What an import may change, decided by [`merge`] and [`plan`] from the registry as read:
//! - An authority belongs to one source: this store (it registered a key here) or one root.
//!   A list naming a local authority may only repeat that authority's records unchanged (so a
//!   store may import its own list); any other entry of it, or one of an authority trusted
//!   through another root, refuses the whole list.
//! - Lists of one root only move forward: an older list is refused, the same list again is a
//!   no-op answer, another list with the same time is refused.
//! - A key's trust only narrows: a newer list may revoke a key, end or shorten its validity,
//!   but never lift a revocation or widen a validity the registry already holds.
//! - A key the previous list of the root carried and the new one drops is withdrawn: revoked
//!   from the new list's issue time, so what it sealed before stays valid. Only keys of
//!   authorities trusted through that root are ever withdrawn; a local authority's records a
//!   list repeated are not the root's to withdraw.
//! - One refused entry refuses the whole list, revocations in it included: the operator
//!   sees the conflict and asks the root for a list without it.
//!
//! TODO(trust-scope): any root the caller pins may vouch for any authority not registered
//! here, and an imported list cannot be removed; a configured set of roots, each with the
//! authority codes it may vouch for, and removal by an admin come with access control.
//!
//! Layout in the `seal_keys` column family (beside `k` records and `a` active keys): `t` + root
//! key id → [`TrustAnchor`]; `f` + authority → the root key id it is trusted through.

use licstore_seal::{KeyId, KeyRecord, TrustFile, TrustList};
use serde::{Deserialize, Serialize};

use crate::apply::Applier;
use crate::command::{RejectCode, Rejection};
use crate::keys::{self, CF_SEAL_KEYS};
use crate::{codec, StoreError};

/// What this store keeps of the last list imported under one root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustAnchor {
    /// The root's public key (`licstore-seal` encoding).
    pub root_public_key: Vec<u8>,
    /// Code of the authority that issued the list.
    pub issued_by: String,
    /// When that list was issued, ms since the Unix epoch.
    pub issued_at_ms: u64,
    /// BLAKE3 of the signed list, to tell a retry from another list of the same time.
    pub list_digest: [u8; 32],
    /// Ids of the keys the list carried, ascending.
    pub key_ids: Vec<[u8; 16]>,
    /// Log index of the import.
    pub imported_at_revision: u64,
}

/// What one import did, in counts of key records.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustImport {
    /// The root the list is signed under.
    pub root_key_id: [u8; 16],
    /// Code of the authority that issued the list.
    pub issued_by: String,
    /// When the list was issued, ms since the Unix epoch.
    pub issued_at_ms: u64,
    /// Keys new to this store.
    pub added: u32,
    /// Keys whose record narrowed (revoked, ended, replaced).
    pub updated: u32,
    /// Keys already held as listed.
    pub unchanged: u32,
    /// Keys of local authorities, left to this store's own registry.
    pub local: u32,
    /// Keys the previous list of this root carried and this one dropped.
    pub withdrawn: u32,
    /// True when this exact list had been imported before and nothing was written.
    pub replay: bool,
    /// Log index of the import that stored the list (an earlier one for a replay).
    pub imported_at_revision: u64,
}

/// The registry's view of one listed key, read before deciding.
#[derive(Clone, Debug, Default)]
pub struct Known {
    /// The record held under the key's id, if any.
    pub record: Option<KeyRecord>,
    /// The authority registers its keys in this store.
    pub local_authority: bool,
    /// The root the authority is trusted through, if any.
    pub trusted_via: Option<[u8; 16]>,
}

/// What to do with one listed key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Store this record; it is new.
    Add(KeyRecord),
    /// Store this narrowed record.
    Update(KeyRecord),
    /// Nothing to write.
    Unchanged,
    /// A local authority's record, repeated as held.
    Local,
}

fn reject(code: RejectCode, field: &str, reason: impl Into<String>) -> Rejection {
    Rejection::new(code, field, reason)
}

fn min_option(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

/// `held` narrowed by `listed`: the later start, the earlier end and revocation; a successor
/// once named stays.
pub fn merge(held: &KeyRecord, listed: &KeyRecord) -> KeyRecord {
    KeyRecord {
        authority: held.authority.clone(),
        key_id: held.key_id,
        public_key: held.public_key.clone(),
        valid_from_ms: held.valid_from_ms.max(listed.valid_from_ms),
        valid_until_ms: min_option(held.valid_until_ms, listed.valid_until_ms),
        revoked_from_ms: min_option(held.revoked_from_ms, listed.revoked_from_ms),
        replaced_by: held.replaced_by.or(listed.replaced_by),
    }
}

/// The change for listed entry `index` under `root`, or why the whole list is refused.
pub fn plan(
    root: &[u8; 16],
    index: usize,
    listed: &KeyRecord,
    known: &Known,
) -> Result<Change, Rejection> {
    let field = format!("trust_file.entries[{index}]");
    if known.local_authority {
        if known.record.as_ref() == Some(listed) {
            return Ok(Change::Local);
        }
        let why = format!(
            "authority {} registers its keys in this store; a trust list may only repeat its \
             records unchanged (key {})",
            listed.authority, listed.key_id
        );
        return Err(reject(RejectCode::FailedPrecondition, &field, why));
    }
    if let Some(other) = known.trusted_via.filter(|via| via != root) {
        let why = format!(
            "authority {} is trusted through root {}",
            listed.authority,
            KeyId::from_bytes(other)
        );
        return Err(reject(RejectCode::FailedPrecondition, &field, why));
    }
    let Some(held) = &known.record else {
        return Ok(Change::Add(listed.clone()));
    };
    if held.authority != listed.authority {
        let why = format!("key {} is held for {}", held.key_id, held.authority);
        return Err(reject(RejectCode::FailedPrecondition, &field, why));
    }
    let merged = merge(held, listed);
    if let Err(e) = merged.validate() {
        let why = format!("key {} narrowed by this list is invalid: {e}", held.key_id);
        return Err(reject(RejectCode::InvalidArgument, &field, why));
    }
    Ok(if &merged == held {
        Change::Unchanged
    } else {
        Change::Update(merged)
    })
}

/// Decodes `trust_file` and checks its list under the pinned root.
pub fn open_pinned(trust_file: &[u8], pin: &[u8; 16]) -> Result<(TrustFile, TrustList), Rejection> {
    let file = TrustFile::from_bytes(trust_file)
        .map_err(|e| reject(RejectCode::InvalidArgument, "trust_file", e.to_string()))?;
    let root_id = file.root.key_id();
    if root_id.as_bytes() != pin {
        let why = format!(
            "signed by root {root_id}, not the pinned {}",
            KeyId::from_bytes(*pin)
        );
        return Err(reject(RejectCode::FailedPrecondition, "root_key_id", why));
    }
    let list = file
        .open()
        .map_err(|e| reject(RejectCode::InvalidArgument, "trust_file", e.to_string()))?;
    Ok((file, list))
}

/// A root key id as stored under an authority's `f` key.
pub(crate) fn decode_root_id(bytes: Option<Vec<u8>>) -> Result<Option<[u8; 16]>, StoreError> {
    bytes
        .map(|b| b.try_into())
        .transpose()
        .map_err(|_| StoreError::corrupt("trusted authority", "not 16 bytes"))
}

/// Orders a list against the anchor held for its root: `Ok(true)` for a replay of the same
/// list, `Ok(false)` for a newer one.
fn order(
    held: Option<&TrustAnchor>,
    list: &TrustList,
    digest: &[u8; 32],
) -> Result<bool, Rejection> {
    let Some(held) = held else {
        return Ok(false);
    };
    if list.issued_at_ms > held.issued_at_ms {
        return Ok(false);
    }
    if list.issued_at_ms == held.issued_at_ms && &held.list_digest == digest {
        return Ok(true);
    }
    let why = format!(
        "list issued at {} ms is not newer than the one imported from this root (issued at {} \
         ms)",
        list.issued_at_ms, held.issued_at_ms
    );
    Err(reject(RejectCode::FailedPrecondition, "trust_file", why))
}

type ImportResult = Result<TrustImport, Rejection>;

impl Applier<'_, '_> {
    fn trust_anchor(&self, root: &[u8; 16]) -> Result<Option<TrustAnchor>, StoreError> {
        match self.txn.get(CF_SEAL_KEYS, &keys::trust_anchor_key(root))? {
            Some(bytes) => Ok(Some(codec::decode("trust anchor", &bytes)?)),
            None => Ok(None),
        }
    }

    /// The root an authority is trusted through, if it is trusted through one.
    pub(crate) fn trusted_via(&self, authority: &str) -> Result<Option<[u8; 16]>, StoreError> {
        let key = keys::trusted_authority_key(authority);
        decode_root_id(self.txn.get(CF_SEAL_KEYS, &key)?)
    }

    fn known(&self, record: &KeyRecord) -> Result<Known, StoreError> {
        let active = keys::seal_active_key(&record.authority);
        Ok(Known {
            record: self.key_record(&record.key_id)?,
            local_authority: self.txn.get(CF_SEAL_KEYS, &active)?.is_some(),
            trusted_via: self.trusted_via(&record.authority)?,
        })
    }

    /// Applies `Command::ImportTrustList` (see the module header).
    pub(crate) fn import_trust_list(
        &mut self,
        trust_file: &[u8],
        pin: &[u8; 16],
    ) -> Result<ImportResult, StoreError> {
        let (file, list) = match open_pinned(trust_file, pin) {
            Ok(opened) => opened,
            Err(r) => return Ok(Err(r)),
        };
        let root_id = *file.root.key_id().as_bytes();
        let digest = *blake3::hash(&file.signed_list).as_bytes();
        let held = self.trust_anchor(&root_id)?;
        let mut outcome = TrustImport {
            root_key_id: root_id,
            issued_by: list.issued_by.clone(),
            issued_at_ms: list.issued_at_ms,
            imported_at_revision: self.index,
            ..TrustImport::default()
        };
        match order(held.as_ref(), &list, &digest) {
            Err(r) => return Ok(Err(r)),
            Ok(true) => {
                outcome.replay = true;
                outcome.imported_at_revision = held.map_or(self.index, |h| h.imported_at_revision);
                outcome.unchanged = list.entries.len() as u32;
                return Ok(Ok(outcome));
            }
            Ok(false) => {}
        }
        let mut changes = Vec::with_capacity(list.entries.len());
        for (i, listed) in list.entries.iter().enumerate() {
            match plan(&root_id, i, listed, &self.known(listed)?) {
                Ok(change) => changes.push(change),
                Err(r) => return Ok(Err(r)),
            }
        }
        // The keys this root vouches for: a local authority's records it repeats stay this
        // store's own, so a later list of the root can never withdraw them.
        let mut vouched = Vec::with_capacity(list.entries.len());
        for (listed, change) in list.entries.iter().zip(changes) {
            if change != Change::Local {
                vouched.push(*listed.key_id.as_bytes());
            }
            self.write_change(&root_id, listed, change, &mut outcome)?;
        }
        // Entries are strictly ascending by key id, so `vouched` is sorted.
        for dropped in held.iter().flat_map(|h| &h.key_ids) {
            if vouched.binary_search(dropped).is_err() {
                outcome.withdrawn += self.withdraw(&root_id, dropped, list.issued_at_ms)? as u32;
            }
        }
        let anchor = TrustAnchor {
            root_public_key: file.root.to_bytes(),
            issued_by: list.issued_by.clone(),
            issued_at_ms: list.issued_at_ms,
            list_digest: digest,
            key_ids: vouched,
            imported_at_revision: self.index,
        };
        // Written in the command's batch with the records, so a replica never holds records
        // of a list without the anchor that orders the next one.
        let bytes = codec::encode("trust anchor", &anchor)?;
        self.txn
            .put(CF_SEAL_KEYS, &keys::trust_anchor_key(&root_id), bytes)?;
        Ok(Ok(outcome))
    }

    fn write_change(
        &mut self,
        root: &[u8; 16],
        listed: &KeyRecord,
        change: Change,
        outcome: &mut TrustImport,
    ) -> Result<(), StoreError> {
        let record = match change {
            Change::Local => {
                outcome.local += 1;
                return Ok(());
            }
            Change::Unchanged => {
                outcome.unchanged += 1;
                return Ok(());
            }
            Change::Add(record) => {
                outcome.added += 1;
                record
            }
            Change::Update(record) => {
                outcome.updated += 1;
                record
            }
        };
        let via = keys::trusted_authority_key(&listed.authority);
        self.txn.put(CF_SEAL_KEYS, &via, root.to_vec())?;
        let key = keys::seal_key_record_key(record.key_id.as_bytes());
        self.txn.put(CF_SEAL_KEYS, &key, record.to_bytes())
    }

    /// Revokes a key `root` dropped from `at_ms` (or keeps an earlier revocation); true if it
    /// changed. A key whose authority is not trusted through `root` is left alone.
    fn withdraw(
        &mut self,
        root: &[u8; 16],
        key_id: &[u8; 16],
        at_ms: u64,
    ) -> Result<bool, StoreError> {
        let Some(mut record) = self.key_record(&KeyId::from_bytes(*key_id))? else {
            return Err(StoreError::corrupt(
                "trust anchor",
                "names a key with no record",
            ));
        };
        if self.trusted_via(&record.authority)? != Some(*root) {
            return Ok(false);
        }
        if record.revoked_from_ms.is_some_and(|from| from <= at_ms) {
            return Ok(false);
        }
        record.revoked_from_ms = Some(at_ms);
        let key = keys::seal_key_record_key(key_id);
        self.txn.put(CF_SEAL_KEYS, &key, record.to_bytes())?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use licstore_seal::{SecretKey, Suite};

    const ROOT: [u8; 16] = [7; 16];
    const OTHER_ROOT: [u8; 16] = [9; 16];

    fn record(seed: u8) -> KeyRecord {
        let key = SecretKey::from_seed(Suite::Ed25519, &[seed; 32]).unwrap();
        KeyRecord::new("AUTH", key.public_key(), 1_000)
    }

    fn with(f: impl FnOnce(&mut KeyRecord)) -> KeyRecord {
        let mut r = record(1);
        f(&mut r);
        r
    }

    fn known(held: Option<KeyRecord>, local: bool, via: Option<[u8; 16]>) -> Known {
        Known {
            record: held,
            local_authority: local,
            trusted_via: via,
        }
    }

    #[test]
    fn plan_decides_each_case() {
        let revoked = with(|r| r.revoked_from_ms = Some(5_000));
        let later_revoked = with(|r| r.revoked_from_ms = Some(9_000));
        let ended = with(|r| r.valid_until_ms = Some(4_000));
        let cases: Vec<(&str, KeyRecord, Known, Result<Change, &str>)> = vec![
            (
                "new key",
                record(1),
                known(None, false, None),
                Ok(Change::Add(record(1))),
            ),
            (
                "same record again",
                record(1),
                known(Some(record(1)), false, Some(ROOT)),
                Ok(Change::Unchanged),
            ),
            (
                "revoked by the newer list",
                revoked.clone(),
                known(Some(record(1)), false, Some(ROOT)),
                Ok(Change::Update(revoked.clone())),
            ),
            (
                "a revocation is never lifted",
                record(1),
                known(Some(revoked.clone()), false, Some(ROOT)),
                Ok(Change::Unchanged),
            ),
            (
                "a revocation is never moved later",
                later_revoked,
                known(Some(revoked.clone()), false, Some(ROOT)),
                Ok(Change::Unchanged),
            ),
            (
                "validity only shortens",
                record(1),
                known(Some(ended.clone()), false, Some(ROOT)),
                Ok(Change::Unchanged),
            ),
            (
                "a successor once named stays",
                with(|r| r.replaced_by = Some(record(3).key_id)),
                known(
                    Some(with(|r| r.replaced_by = Some(record(2).key_id))),
                    false,
                    Some(ROOT),
                ),
                Ok(Change::Unchanged),
            ),
            (
                "local authority, same record",
                record(1),
                known(Some(record(1)), true, None),
                Ok(Change::Local),
            ),
            (
                "local authority, other record",
                revoked.clone(),
                known(Some(record(1)), true, None),
                Err("registers its keys in this store"),
            ),
            (
                "local authority, unknown key",
                record(2),
                known(None, true, None),
                Err("registers its keys in this store"),
            ),
            (
                "authority of another root",
                record(1),
                known(None, false, Some(OTHER_ROOT)),
                Err("is trusted through root"),
            ),
            (
                "key held for another authority",
                record(1),
                known(
                    Some(with(|r| r.authority = "ELSE".into())),
                    false,
                    Some(ROOT),
                ),
                Err("is held for ELSE"),
            ),
        ];
        for (name, listed, known, want) in cases {
            let got = plan(&ROOT, 3, &listed, &known);
            match (got, want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{name}"),
                (Err(got), Err(want)) => {
                    assert_eq!(got.field, "trust_file.entries[3]", "{name}");
                    assert!(got.message.contains(want), "{name}: {}", got.message);
                }
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn lists_of_a_root_only_move_forward() {
        let list = |at: u64| TrustList::new("ROOT", at, vec![record(1)]);
        let held = TrustAnchor {
            root_public_key: Vec::new(),
            issued_by: "ROOT".into(),
            issued_at_ms: 2_000,
            list_digest: [1; 32],
            key_ids: Vec::new(),
            imported_at_revision: 5,
        };
        assert_eq!(order(None, &list(1), &[0; 32]), Ok(false), "first list");
        assert_eq!(
            order(Some(&held), &list(3_000), &[0; 32]),
            Ok(false),
            "newer"
        );
        assert_eq!(
            order(Some(&held), &list(2_000), &[1; 32]),
            Ok(true),
            "replay"
        );
        for (at, digest) in [(2_000, [2; 32]), (1_999, [1; 32])] {
            let err = order(Some(&held), &list(at), &digest).unwrap_err();
            assert_eq!(err.field, "trust_file");
            assert!(err.message.contains("not newer"), "{}", err.message);
        }
    }
}
