//! The replicated registry of seal keys, and the seal checks a sealed write passes on apply.
//!
//! Each authority has at most one *active* key: the one its new licenses are sealed with.
//! Registering gives an authority its first active key (or a new one after a revocation);
//! rotating hands over from the active key to a new one at a stated instant, after which the
//! old key verifies what it sealed before and seals nothing new; revoking voids a key's seals
//! from a stated instant on and ends its active role. Key records are never deleted, so every
//! seal the store ever accepted can still be judged. Every command here is idempotent: applied
//! again (a client's retry is a new log entry), it finds its own result and answers with it;
//! a retried rotation answers with the new key's record only.
//!
//! A sealed write is checked on every replica without the signature, which the node that
//! proposed it verified against the same key record (key records never change their public
//! key, so that check holds here too): the bundle decodes, names a registered key of the
//! record's issuer that [`judge`] accepts at the signing time, carries the record's issued
//! digest and opens to the record's disclosable fields. An authority that ever registered a
//! key gets no unsealed issue, import or amendment, even while its last key is revoked, and a
//! sealed license's next version is sealed whoever issues it. An authority trusted through an
//! imported trust list (see `trust_anchors`) counts as sealing too, and registers no key here.

use licstore_model::{canonical, License};
use licstore_seal::{judge, KeyId, KeyRecord, PublicKey, SealBundle};

use crate::apply::Applier;
use crate::command::{RejectCode, Rejection};
use crate::keys::{self, CF_SEAL_KEYS};
use crate::StoreError;

type KeysResult = Result<Vec<Vec<u8>>, Rejection>;

fn reject(code: RejectCode, field: &str, reason: impl ToString) -> Rejection {
    Rejection::new(code, field, reason.to_string())
}

fn public_key(field: &str, bytes: &[u8]) -> Result<PublicKey, Rejection> {
    PublicKey::from_bytes(bytes).map_err(|e| reject(RejectCode::InvalidArgument, field, e))
}

impl Applier<'_, '_> {
    pub(crate) fn key_record(&self, key_id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        let key = keys::seal_key_record_key(key_id.as_bytes());
        match self.txn.get(CF_SEAL_KEYS, &key)? {
            Some(bytes) => KeyRecord::from_bytes(&bytes)
                .map(Some)
                .map_err(|e| StoreError::corrupt("seal key record", e)),
            None => Ok(None),
        }
    }

    /// Whether `authority` ever had a key here or is trusted through an imported trust list:
    /// then it gets no unsealed issue or amendment.
    fn is_sealing(&self, authority: &str) -> Result<bool, StoreError> {
        let key = keys::seal_active_key(authority);
        Ok(self.txn.get(CF_SEAL_KEYS, &key)?.is_some() || self.trusted_via(authority)?.is_some())
    }

    fn active_key(&self, authority: &str) -> Result<Option<KeyRecord>, StoreError> {
        let Some(id) = self
            .txn
            .get(CF_SEAL_KEYS, &keys::seal_active_key(authority))?
            .filter(|id| !id.is_empty())
        else {
            return Ok(None);
        };
        let id: [u8; 16] = id
            .try_into()
            .map_err(|_| StoreError::corrupt("active seal key", "not 16 bytes"))?;
        match self.key_record(&KeyId::from_bytes(id))? {
            Some(record) => Ok(Some(record)),
            None => Err(StoreError::corrupt(
                "active seal key",
                "names no key record",
            )),
        }
    }

    fn put_record(&mut self, record: &KeyRecord) -> Result<Vec<u8>, StoreError> {
        let bytes = record.to_bytes();
        let key = keys::seal_key_record_key(record.key_id.as_bytes());
        self.txn.put(CF_SEAL_KEYS, &key, bytes.clone())?;
        Ok(bytes)
    }

    fn set_active(&mut self, record: &KeyRecord) -> Result<(), StoreError> {
        let key = keys::seal_active_key(&record.authority);
        self.txn
            .put(CF_SEAL_KEYS, &key, record.key_id.as_bytes().to_vec())
    }

    /// A refusal when `authority` is trusted through an imported list: its keys are that
    /// root's to change.
    fn refuse_if_trusted(&self, authority: &str) -> Result<Option<Rejection>, StoreError> {
        let Some(root) = self.trusted_via(authority)? else {
            return Ok(None);
        };
        let msg = format!(
            "authority {authority} is trusted through the trust list of root {}; its keys change \
             only with a newer list",
            KeyId::from_bytes(root)
        );
        Ok(Some(reject(
            RejectCode::FailedPrecondition,
            "authority",
            msg,
        )))
    }

    pub(crate) fn register_key(
        &mut self,
        authority: &str,
        public_key_bytes: &[u8],
        valid_from_ms: u64,
    ) -> Result<KeysResult, StoreError> {
        let public_key = match public_key("public_key", public_key_bytes) {
            Ok(k) => k,
            Err(r) => return Ok(Err(r)),
        };
        let record = KeyRecord::new(authority, public_key, valid_from_ms);
        if let Err(e) = record.validate() {
            return Ok(Err(reject(RejectCode::InvalidArgument, e.field(), &e)));
        }
        if let Some(refused) = self.refuse_if_trusted(authority)? {
            return Ok(Err(refused));
        }
        if let Some(active) = self.active_key(authority)? {
            // A retry: the same key, whatever start time the retry was stamped with.
            if active.key_id == record.key_id {
                return Ok(Ok(vec![active.to_bytes()]));
            }
            let msg = format!(
                "authority {authority} already seals with key {}; rotate it instead",
                active.key_id
            );
            return Ok(Err(reject(
                RejectCode::FailedPrecondition,
                "authority",
                msg,
            )));
        }
        if let Some(existing) = self.key_record(&record.key_id)? {
            let msg = format!(
                "key {} is already registered (for {}); keys are never reused",
                existing.key_id, existing.authority
            );
            return Ok(Err(reject(RejectCode::AlreadyExists, "public_key", msg)));
        }
        let bytes = self.put_record(&record)?;
        self.set_active(&record)?;
        Ok(Ok(vec![bytes]))
    }

    pub(crate) fn rotate_key(
        &mut self,
        authority: &str,
        new_public_key: &[u8],
        at_ms: u64,
    ) -> Result<KeysResult, StoreError> {
        let public_key = match public_key("new_public_key", new_public_key) {
            Ok(k) => k,
            Err(r) => return Ok(Err(r)),
        };
        let new_id = public_key.key_id();
        if let Some(refused) = self.refuse_if_trusted(authority)? {
            return Ok(Err(refused));
        }
        let Some(mut old) = self.active_key(authority)? else {
            let msg = format!("authority {authority} has no active key; register one");
            return Ok(Err(reject(RejectCode::NotFound, "authority", msg)));
        };
        if old.key_id == new_id {
            // A retry of a rotation that was applied: answer with the active (new) key.
            return Ok(Ok(vec![old.to_bytes()]));
        }
        if self.key_record(&new_id)?.is_some() {
            let msg = format!("key {new_id} is already registered; keys are never reused");
            return Ok(Err(reject(
                RejectCode::AlreadyExists,
                "new_public_key",
                msg,
            )));
        }
        if at_ms <= old.valid_from_ms {
            let msg = format!(
                "must be after the active key's valid_from_ms {}",
                old.valid_from_ms
            );
            return Ok(Err(reject(RejectCode::InvalidArgument, "at_ms", msg)));
        }
        old.valid_until_ms = Some(old.valid_until_ms.map_or(at_ms, |until| until.min(at_ms)));
        old.replaced_by = Some(new_id);
        let new = KeyRecord::new(authority, public_key, at_ms);
        let old_bytes = self.put_record(&old)?;
        let new_bytes = self.put_record(&new)?;
        self.set_active(&new)?;
        Ok(Ok(vec![old_bytes, new_bytes]))
    }

    pub(crate) fn revoke_key(
        &mut self,
        key_id: &[u8; 16],
        revoked_from_ms: u64,
    ) -> Result<KeysResult, StoreError> {
        let key_id = KeyId::from_bytes(*key_id);
        let Some(mut record) = self.key_record(&key_id)? else {
            let msg = format!("no key {key_id} is registered");
            return Ok(Err(reject(RejectCode::NotFound, "key_id", msg)));
        };
        let from = record
            .revoked_from_ms
            .map_or(revoked_from_ms, |earlier| earlier.min(revoked_from_ms));
        record.revoked_from_ms = Some(from);
        let bytes = self.put_record(&record)?;
        let active = self.active_key(&record.authority)?;
        if active.is_some_and(|a| a.key_id == key_id) {
            // An empty id: the authority still seals, but has no active key until it
            // registers a new one.
            let key = keys::seal_active_key(&record.authority);
            self.txn.put(CF_SEAL_KEYS, &key, Vec::new())?;
        }
        Ok(Ok(vec![bytes]))
    }

    /// Checks the seal of a license about to be stored (see the module header); `Ok` means
    /// `license.seal` may be kept. With `required`, a sealing authority's license must be
    /// sealed.
    pub(crate) fn check_seal(
        &self,
        license: &License,
        required: bool,
    ) -> Result<Result<(), Rejection>, StoreError> {
        if license.seal.is_empty() {
            if !required {
                return Ok(Ok(()));
            }
            if !self.is_sealing(&license.issuer.code)? {
                return Ok(Ok(()));
            }
            let key = match (
                self.active_key(&license.issuer.code)?,
                self.trusted_via(&license.issuer.code)?,
            ) {
                (Some(active), _) => format!("with key {}", active.key_id),
                (None, Some(root)) => {
                    format!("(trusted through root {})", KeyId::from_bytes(root))
                }
                (None, None) => "(its last key was revoked: register a new one)".to_owned(),
            };
            let msg = format!(
                "authority {} seals its licenses {key}; an unsealed license is refused",
                license.issuer.code
            );
            return Ok(Err(reject(RejectCode::FailedPrecondition, "seal", msg)));
        }
        let bundle = match SealBundle::from_bytes(&license.seal) {
            Ok(b) => b,
            Err(e) => return Ok(Err(reject(RejectCode::InvalidArgument, "seal", e))),
        };
        let key_id = bundle.payload.key_id;
        let Some(record) = self.key_record(&key_id)? else {
            let msg = format!("key {key_id} is not registered");
            return Ok(Err(reject(
                RejectCode::FailedPrecondition,
                "seal.key_id",
                msg,
            )));
        };
        Ok(check_with_record(&record, &bundle, license))
    }
}

/// The key-free part of checking `bundle` on `license` under its key record.
pub fn check_with_record(
    record: &KeyRecord,
    bundle: &SealBundle,
    license: &License,
) -> Result<(), Rejection> {
    if record.authority != license.issuer.code {
        let msg = format!(
            "key {} seals for {}, not for the issuer {}",
            record.key_id, record.authority, license.issuer.code
        );
        return Err(reject(RejectCode::FailedPrecondition, "seal.key_id", msg));
    }
    let verdict = judge(record, bundle.payload.signed_at_ms);
    if !verdict.accepts() {
        let msg = format!("key {}: {verdict}", record.key_id);
        return Err(reject(
            RejectCode::FailedPrecondition,
            "seal.signed_at_ms",
            msg,
        ));
    }
    let issued = canonical::issued_digest(license);
    let fields = license.disclosable_fields();
    bundle
        .check_content(&license.issuer.code, &issued, &fields)
        .map_err(|e| {
            let field = match e.field() {
                "disclosure" => "seal.field_commitments",
                field => field,
            };
            reject(RejectCode::InvalidArgument, field, &e)
        })
}
