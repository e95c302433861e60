//! What each command does to the state machine: decisions over a [`Txn`], no Raft types.
//!
//! Every function here is deterministic in (state, command, log index): no clocks, no
//! randomness, so all replicas agree.

use licstore_model::{
    apply_status_op, build_license, can_amend, canonical, content_digest, Identifier, License,
    LicenseStatus, StatusOp, TemplateRegistry,
};

use crate::command::{Command, CommandResult, ImportItem, RejectCode, Rejection, WriteOutcome};
use crate::keys::{self, CF_CURRENT, CF_HISTORY, CF_IDENT, CF_REQUESTS, CF_SERIALS};
use crate::txn::Txn;
use crate::{codec, StoreError};

type WriteResult = Result<WriteOutcome, Rejection>;

/// How many serial numbers are tried when a generated identifier is already taken.
const MAX_SERIAL_ATTEMPTS: u32 = 16;

pub(crate) struct Applier<'t, 'a> {
    pub(crate) txn: &'t mut Txn<'a>,
    pub(crate) templates: &'t TemplateRegistry,
    pub(crate) index: u64,
}

impl Applier<'_, '_> {
    /// Applies one command at log index `self.index`.
    pub(crate) fn apply(&mut self, cmd: &Command) -> Result<CommandResult, StoreError> {
        Ok(match cmd {
            Command::Issue(item) => {
                let print = fingerprint(item)?;
                CommandResult::Write(self.once(&item.request_id, print, |a| a.create(item))?)
            }
            Command::Amend {
                request_id,
                identifier,
                license,
            } => {
                let print = fingerprint(&("amend", identifier, license))?;
                CommandResult::Write(
                    self.once(request_id, print, |a| a.amend(identifier, license))?,
                )
            }
            Command::ChangeStatus {
                request_id,
                identifier,
                op,
                reason,
            } => {
                let print = fingerprint(&("status", identifier, op, reason))?;
                let change = |a: &mut Self| a.change_status(identifier, *op, reason.as_deref());
                CommandResult::Write(self.once(request_id, print, change)?)
            }
            Command::Import(items) => {
                let mut results = Vec::with_capacity(items.len());
                for item in items {
                    let print = fingerprint(item)?;
                    results.push(self.once(&item.request_id, print, |a| a.create(item))?);
                }
                CommandResult::Import(results)
            }
        })
    }

    /// Runs `f` unless `request_id` was applied before, in which case the stored result is
    /// returned marked as a duplicate, or refused when the earlier request had other content
    /// (its `print`). Only successful writes are stored: a refusal changed nothing, so a retry
    /// of it is simply decided again against the state of its own time.
    // TODO(retention): request results are kept forever; they need an expiry (a replicated
    // clean-up command keyed by log index) so the table does not grow with every write.
    fn once(
        &mut self,
        request_id: &str,
        print: [u8; 32],
        f: impl FnOnce(&mut Self) -> Result<WriteResult, StoreError>,
    ) -> Result<WriteResult, StoreError> {
        if !request_id.is_empty() {
            if let Some(bytes) = self.txn.get(CF_REQUESTS, request_id.as_bytes())? {
                let (stored_print, mut stored): ([u8; 32], WriteResult) =
                    codec::decode("request result", &bytes)?;
                if stored_print != print {
                    let msg = "already used for a different request; use a new request id";
                    return Ok(Err(reject(RejectCode::InvalidArgument, "request_id", msg)));
                }
                if let Ok(outcome) = &mut stored {
                    outcome.duplicate = true;
                }
                return Ok(stored);
            }
        }
        let result = f(self)?;
        if !request_id.is_empty() && result.is_ok() {
            let bytes = codec::encode("request result", &(print, &result))?;
            self.txn.put(CF_REQUESTS, request_id.as_bytes(), bytes)?;
        }
        Ok(result)
    }

    fn create(&mut self, item: &ImportItem) -> Result<WriteResult, StoreError> {
        let new = &item.license;
        let template = match self.templates.get(&new.type_code) {
            Ok(t) => t,
            Err(e) => {
                return Ok(Err(reject(
                    RejectCode::InvalidArgument,
                    "license.type_code",
                    e,
                )))
            }
        };
        let identifier = match self.choose_identifier(item, &template.type_code)? {
            Ok(id) => id,
            Err(r) => return Ok(Err(r)),
        };
        let instance = if template.multiple_per_holder {
            identifier.serial()
        } else {
            ""
        };
        let ckey = keys::current_key(
            new.holder.kind,
            &new.holder.id,
            &template.type_code,
            instance,
        );
        if let Some(existing) = self.load(CF_CURRENT, &ckey)? {
            if matches!(
                existing.status,
                LicenseStatus::Valid | LicenseStatus::Suspended
            ) {
                let msg = format!(
                    "holder already holds {} {} ({}); amend it or change its status first",
                    template.name,
                    existing.identifier,
                    existing.status.as_str()
                );
                return Ok(Err(reject(
                    RejectCode::FailedPrecondition,
                    "license.holder.id",
                    msg,
                )));
            }
            // A final-state license gives its slot to the new one and moves to history.
            self.txn.delete(CF_IDENT, existing.identifier.as_bytes())?;
            self.store(CF_HISTORY, existing.identifier.as_bytes(), &existing)?;
        }
        let mut license = build_license(new.clone(), identifier, item.legacy_checksum);
        license.type_code = template.type_code.clone();
        license.status = item.status;
        license.status_reason = item.status_reason.clone();
        self.finish(&ckey, license).map(Ok)
    }

    /// The identifier given with historic stock, or a fresh one with the next free serial.
    fn choose_identifier(
        &mut self,
        item: &ImportItem,
        type_code: &str,
    ) -> Result<Result<Identifier, Rejection>, StoreError> {
        let new = &item.license;
        if let Some(given) = &item.identifier {
            let id = match Identifier::parse(given) {
                Ok(id) => id,
                Err(e) => return Ok(Err(reject(RejectCode::InvalidArgument, "identifier", e))),
            };
            if self.identifier_taken(given)? {
                return Ok(Err(reject(
                    RejectCode::AlreadyExists,
                    "identifier",
                    "already stored",
                )));
            }
            return Ok(Ok(id));
        }
        if let Some(serial) = &new.serial {
            let id = match Identifier::generate(type_code, &new.issuer.code, serial, 1) {
                Ok(id) => id,
                Err(e) => {
                    return Ok(Err(reject(
                        RejectCode::InvalidArgument,
                        "license.serial",
                        e,
                    )))
                }
            };
            if self.identifier_taken(&id.to_string())? {
                return Ok(Err(reject(
                    RejectCode::AlreadyExists,
                    "license.serial",
                    "identifier already stored",
                )));
            }
            return Ok(Ok(id));
        }
        for _ in 0..MAX_SERIAL_ATTEMPTS {
            let serial = self.next_serial(type_code, &new.issuer.code, new.issue_date.year())?;
            let id = match Identifier::generate(type_code, &new.issuer.code, &serial, 1) {
                Ok(id) => id,
                Err(e) => {
                    return Ok(Err(reject(
                        RejectCode::InvalidArgument,
                        "license.issuer.code",
                        e,
                    )))
                }
            };
            if !self.identifier_taken(&id.to_string())? {
                return Ok(Ok(id));
            }
        }
        Ok(Err(reject(
            RejectCode::FailedPrecondition,
            "license.serial",
            "no free serial number",
        )))
    }

    fn next_serial(
        &mut self,
        type_code: &str,
        issuer_code: &str,
        year: u16,
    ) -> Result<String, StoreError> {
        let key = keys::serial_key(type_code, issuer_code);
        let last = match self.txn.get(CF_SERIALS, &key)? {
            Some(bytes) => {
                let arr: [u8; 8] = bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| StoreError::corrupt("serial", "length"))?;
                u64::from_be_bytes(arr)
            }
            None => 0,
        };
        let next = last + 1;
        self.txn
            .put(CF_SERIALS, &key, next.to_be_bytes().to_vec())?;
        Ok(format!("{year:04}{next:08}"))
    }

    fn identifier_taken(&self, identifier: &str) -> Result<bool, StoreError> {
        Ok(self.txn.get(CF_IDENT, identifier.as_bytes())?.is_some()
            || self.txn.get(CF_HISTORY, identifier.as_bytes())?.is_some())
    }

    fn amend(
        &mut self,
        identifier: &str,
        new: &licstore_model::NewLicense,
    ) -> Result<WriteResult, StoreError> {
        let (ckey, mut old) = match self.find_current(identifier)? {
            Ok(found) => found,
            Err(r) => return Ok(Err(r)),
        };
        if let Err(e) = can_amend(old.status) {
            return Ok(Err(reject(RejectCode::FailedPrecondition, "identifier", e)));
        }
        let same_type = self
            .templates
            .get(&new.type_code)
            .map(|t| t.type_code == old.type_code);
        if same_type != Ok(true) {
            let msg = format!("must stay {} for an amendment", old.type_code);
            return Ok(Err(reject(
                RejectCode::InvalidArgument,
                "license.type_code",
                msg,
            )));
        }
        if new.holder.kind != old.holder.kind || new.holder.id != old.holder.id {
            let msg = format!("must stay {} for an amendment", old.holder.id);
            return Ok(Err(reject(
                RejectCode::InvalidArgument,
                "license.holder.id",
                msg,
            )));
        }
        let next = match Identifier::parse(&old.identifier).and_then(|id| id.next_version()) {
            Ok(id) => id,
            Err(e) => return Ok(Err(reject(RejectCode::FailedPrecondition, "identifier", e))),
        };
        if self.identifier_taken(&next.to_string())? {
            let msg = format!("next version {next} is already stored for another record");
            return Ok(Err(reject(
                RejectCode::FailedPrecondition,
                "identifier",
                msg,
            )));
        }
        let mut license = build_license(new.clone(), next, old.holder.legacy_checksum);
        license.type_code = old.type_code.clone();
        license.replaces = Some(old.identifier.clone());
        old.superseded_by = Some(license.identifier.clone());
        old.revision = self.index;
        old.digest = content_digest(&old);
        self.txn.delete(CF_IDENT, old.identifier.as_bytes())?;
        self.store(CF_HISTORY, old.identifier.as_bytes(), &old)?;
        self.finish(&ckey, license).map(Ok)
    }

    fn change_status(
        &mut self,
        identifier: &str,
        op: StatusOp,
        reason: Option<&str>,
    ) -> Result<WriteResult, StoreError> {
        if op == StatusOp::Other && reason.is_none_or(str::is_empty) {
            return Ok(Err(reject(
                RejectCode::InvalidArgument,
                "reason",
                "required with op other",
            )));
        }
        let (ckey, mut license) = match self.find_current(identifier)? {
            Ok(found) => found,
            Err(r) => return Ok(Err(r)),
        };
        license.status = match apply_status_op(license.status, op) {
            Ok(s) => s,
            Err(e) => return Ok(Err(reject(RejectCode::FailedPrecondition, "op", e))),
        };
        license.status_reason = reason.map(str::to_string);
        self.finish(&ckey, license).map(Ok)
    }

    /// The `current` key and record of a current version, or why there is none.
    fn find_current(
        &self,
        identifier: &str,
    ) -> Result<Result<(Vec<u8>, License), Rejection>, StoreError> {
        if let Some(ckey) = self.txn.get(CF_IDENT, identifier.as_bytes())? {
            let license = self.load(CF_CURRENT, &ckey)?.ok_or_else(|| {
                StoreError::corrupt("identifier index", format!("{identifier} dangles"))
            })?;
            return Ok(Ok((ckey, license)));
        }
        if let Some(old) = self.load(CF_HISTORY, identifier.as_bytes())? {
            let msg = match old.superseded_by {
                Some(next) => format!("version superseded by {next}"),
                None => format!("no longer current (status {})", old.status.as_str()),
            };
            return Ok(Err(reject(
                RejectCode::FailedPrecondition,
                "identifier",
                msg,
            )));
        }
        Ok(Err(reject(
            RejectCode::NotFound,
            "identifier",
            format!("no license {identifier}"),
        )))
    }

    /// Stamps the record with this revision and its digest and stores it as current.
    fn finish(&mut self, ckey: &[u8], mut license: License) -> Result<WriteOutcome, StoreError> {
        license.revision = self.index;
        license.digest = content_digest(&license);
        self.txn
            .put(CF_IDENT, license.identifier.as_bytes(), ckey.to_vec())?;
        self.store(CF_CURRENT, ckey, &license)?;
        Ok(WriteOutcome {
            license,
            revision: self.index,
            duplicate: false,
        })
    }

    fn load(&self, cf: &'static str, key: &[u8]) -> Result<Option<License>, StoreError> {
        match self.txn.get(cf, key)? {
            Some(bytes) => Ok(Some(
                canonical::decode(&bytes).map_err(|e| StoreError::corrupt("license", e))?,
            )),
            None => Ok(None),
        }
    }

    fn store(&mut self, cf: &'static str, key: &[u8], license: &License) -> Result<(), StoreError> {
        self.txn.put(cf, key, canonical::encode(license))
    }
}

/// A digest of what a request asked for, to tell a retry from a reused request id.
fn fingerprint<T: serde::Serialize>(request: &T) -> Result<[u8; 32], StoreError> {
    Ok(*blake3::hash(&codec::encode("request", request)?).as_bytes())
}

fn reject(code: RejectCode, field: &str, reason: impl ToString) -> Rejection {
    Rejection::new(code, field, reason.to_string())
}
