//! What each command does to the state machine: decisions over a [`Txn`], no Raft types.
//!
//! Every function here is deterministic in (state, command, log index): no clocks, no
//! randomness, so all replicas agree.

use licstore_model::{
    apply_status_op, build_license, can_amend, canonical, content_digest, issued_digest, Date,
    Identifier, License, LicenseStatus, StatusOp, TemplateRegistry,
};

use crate::command::{Command, CommandResult, ImportItem, RejectCode, Rejection, WriteOutcome};
use crate::event::{Event, EventOp};
use crate::index::{self, IndexSummary};
use crate::keys::{self, CF_CURRENT, CF_EVENTS, CF_HISTORY, CF_IDENT, CF_INDEX, CF_REQUESTS};
use crate::keys::{CF_REQ_REVS, CF_SERIALS, CF_SM_VARS};
use crate::txn::Txn;
use crate::{codec, StoreError};

type WriteResult = Result<WriteOutcome, Rejection>;

/// Request results one compaction forgets at most, so its write batch stays bounded.
const MAX_FORGOTTEN_PER_COMPACT: usize = 100_000;

/// How many serial numbers are tried when a generated identifier is already taken.
const MAX_SERIAL_ATTEMPTS: u32 = 16;

pub(crate) struct Applier<'t, 'a> {
    pub(crate) txn: &'t mut Txn<'a>,
    pub(crate) templates: &'t TemplateRegistry,
    /// Log index of the command, which is the revision of everything it changes.
    pub(crate) index: u64,
    /// Events this command has produced so far; the sequence number of the next one.
    pub(crate) events: u32,
}

/// How a new current version came about, for its change-feed event.
struct Change {
    op: EventOp,
    old_status: Option<LicenseStatus>,
    previous: Option<String>,
}

impl Change {
    fn new_license(op: EventOp) -> Self {
        Change {
            op,
            old_status: None,
            previous: None,
        }
    }
}

impl Applier<'_, '_> {
    /// Applies one command at log index `self.index`.
    pub(crate) fn apply(&mut self, cmd: &Command) -> Result<CommandResult, StoreError> {
        Ok(match cmd {
            Command::Issue(item) => {
                let print = item.fingerprint()?;
                let create = |a: &mut Self| a.create(item, EventOp::Issue);
                CommandResult::Write(self.once(&item.request_id, print, create)?)
            }
            Command::Amend {
                request_id,
                identifier,
                license,
                seal,
            } => {
                // The seal stays out of the fingerprint: a retry is signed afresh.
                let print = fingerprint(&("amend", identifier, license))?;
                CommandResult::Write(
                    self.once(request_id, print, |a| a.amend(identifier, license, seal))?,
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
                    let print = item.fingerprint()?;
                    let create = |a: &mut Self| a.create(item, EventOp::Import);
                    results.push(self.once(&item.request_id, print, create)?);
                }
                CommandResult::Import(results)
            }
            Command::Expire { as_of, identifiers } => {
                CommandResult::Expired(self.expire(*as_of, identifiers)?)
            }
            Command::Compact { revision } => CommandResult::Compacted(self.compact(*revision)?),
            Command::Probe { .. } => CommandResult::Probed,
            Command::RegisterKey {
                authority,
                public_key,
                valid_from_ms,
            } => {
                CommandResult::SealKeys(self.register_key(authority, public_key, *valid_from_ms)?)
            }
            Command::RotateKey {
                authority,
                new_public_key,
                at_ms,
            } => CommandResult::SealKeys(self.rotate_key(authority, new_public_key, *at_ms)?),
            Command::RevokeKey {
                key_id,
                revoked_from_ms,
            } => CommandResult::SealKeys(self.revoke_key(key_id, *revoked_from_ms)?),
            Command::SetDisclosure(rule) => CommandResult::Disclosure(self.set_disclosure(rule)?),
            Command::ImportTrustList {
                trust_file,
                root_key_id,
            } => CommandResult::TrustImport(self.import_trust_list(trust_file, root_key_id)?),
            Command::PutPrincipal(p) => CommandResult::Principal(self.put_principal(p)?),
            Command::RemovePrincipal { name } => {
                CommandResult::Principal(self.remove_principal(name)?)
            }
            Command::PutServiceItem(item) => {
                CommandResult::ServiceItem(self.put_service_item(item)?)
            }
            Command::RemoveServiceItem { name } => {
                CommandResult::ServiceItem(self.remove_service_item(name)?)
            }
            Command::AppendAudit { events } => CommandResult::Audit(self.append_audit(events)?),
            Command::RevokeToken { jti, expires_at_s } => {
                CommandResult::TokenRevoked(self.revoke_token(jti, *expires_at_s)?)
            }
            Command::ForgetRevokedTokens {
                jtis,
                expired_before_s,
            } => CommandResult::RevocationsForgotten(
                self.forget_revoked_tokens(jtis, *expired_before_s)?,
            ),
            Command::TrimAudit { through_seq, event } => {
                CommandResult::AuditTrim(self.trim_audit(*through_seq, event)?)
            }
        })
    }

    /// Marks expired every listed current version that is live and lapsed on `as_of`.
    fn expire(&mut self, as_of: Date, identifiers: &[String]) -> Result<Vec<String>, StoreError> {
        let mut expired = Vec::new();
        for identifier in identifiers {
            let Some(ckey) = self.txn.get(CF_IDENT, identifier.as_bytes())? else {
                continue;
            };
            let mut license = self.load(CF_CURRENT, &ckey)?.ok_or_else(|| {
                StoreError::corrupt("identifier index", format!("{identifier} dangles"))
            })?;
            let Some(until) = license.valid_until else {
                continue;
            };
            if !index::is_live(license.status) || !license.is_expired_on(as_of) {
                continue;
            }
            let change = Change {
                op: EventOp::Status(StatusOp::Expire),
                old_status: Some(license.status),
                previous: None,
            };
            self.unindex(&license)?;
            license.status = LicenseStatus::Expired;
            license.status_reason = Some(format!("validity ended {until}"));
            self.finish(&ckey, license, change)?;
            expired.push(identifier.clone());
        }
        Ok(expired)
    }

    /// Drops change-feed events below `revision`. Compacting to a revision at or below the
    /// current one changes nothing and answers with the current one, so retries are harmless.
    fn compact(&mut self, revision: u64) -> Result<Result<u64, Rejection>, StoreError> {
        if revision > self.index {
            let msg = format!("{revision} is beyond the latest revision {}", self.index);
            return Ok(Err(reject(RejectCode::InvalidArgument, "revision", msg)));
        }
        let current = compacted_revision(self.txn)?;
        if revision <= current {
            return Ok(Ok(current));
        }
        // Events are never read back while applying, so a range delete in the batch is exact:
        // it also removes events that earlier entries of this batch wrote below `revision`.
        self.txn.delete_range(
            CF_EVENTS,
            &keys::event_key(0, 0),
            &keys::event_key(revision, 0),
        )?;
        self.txn.put(
            CF_SM_VARS,
            keys::VAR_COMPACTED,
            revision.to_be_bytes().to_vec(),
        )?;
        self.forget_requests_below(revision)?;
        Ok(Ok(revision))
    }

    /// Deletes the oldest stored request results below `revision`, at most
    /// [`MAX_FORGOTTEN_PER_COMPACT`]; a later compaction takes the rest.
    fn forget_requests_below(&mut self, revision: u64) -> Result<(), StoreError> {
        let bound = revision.to_be_bytes();
        let old = self
            .txn
            .keys_below(CF_REQ_REVS, &bound, MAX_FORGOTTEN_PER_COMPACT)?;
        for key in old {
            let request_id = key.get(8..).unwrap_or_default().to_vec();
            self.txn.delete(CF_REQUESTS, &request_id)?;
            self.txn.delete(CF_REQ_REVS, &key)?;
        }
        Ok(())
    }

    /// Runs `f` unless `request_id` was applied before, in which case the stored result is
    /// returned marked as a duplicate, or refused when the earlier request had other content
    /// (its `print`). Only successful writes are stored: a refusal changed nothing, so a retry
    /// of it is simply decided again against the state of its own time.
    // Stored results expire with the change feed: a compaction to revision R forgets the
    // results stored below R (see `compact`), so a retry older than the retention window is
    // decided afresh.
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
            let rev_key = keys::req_rev_key(self.index, request_id);
            self.txn.put(CF_REQ_REVS, &rev_key, Vec::new())?;
        }
        Ok(result)
    }

    fn create(&mut self, item: &ImportItem, op: EventOp) -> Result<WriteResult, StoreError> {
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
            Chosen::Free(id) => id,
            Chosen::Done(result) => return Ok(result),
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
        let existing = self.load(CF_CURRENT, &ckey)?;
        if let Some(existing) = existing
            .as_ref()
            .filter(|e| matches!(e.status, LicenseStatus::Valid | LicenseStatus::Suspended))
        {
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
        let mut license = build_license(new.clone(), identifier, item.legacy_checksum);
        license.type_code = template.type_code.clone();
        license.status = item.status;
        license.status_reason = item.status_reason.clone();
        license.seal = item.seal.clone();
        // Checked before anything moves: a refusal must leave the slot as it was.
        if let Err(r) = self.check_seal(&license, true)? {
            return Ok(Err(r));
        }
        if let Some(existing) = existing {
            // A final-state license gives its slot to the new one and moves to history.
            self.unindex(&existing)?;
            self.txn.delete(CF_IDENT, existing.identifier.as_bytes())?;
            self.store(CF_HISTORY, existing.identifier.as_bytes(), &existing)?;
        }
        self.finish(&ckey, license, Change::new_license(op)).map(Ok)
    }

    /// The identifier given with historic stock, or one from the given serial, or a fresh one
    /// with the next free serial.
    fn choose_identifier(
        &mut self,
        item: &ImportItem,
        type_code: &str,
    ) -> Result<Chosen, StoreError> {
        let new = &item.license;
        let (id, field) = if let Some(given) = &item.identifier {
            match Identifier::parse(given) {
                Ok(id) => (id, "identifier"),
                Err(e) => {
                    return Ok(Chosen::refused(
                        RejectCode::InvalidArgument,
                        "identifier",
                        e,
                    ))
                }
            }
        } else if let Some(serial) = &new.serial {
            match Identifier::generate(type_code, &new.issuer.code, serial, 1) {
                Ok(id) => (id, "license.serial"),
                Err(e) => {
                    return Ok(Chosen::refused(
                        RejectCode::InvalidArgument,
                        "license.serial",
                        e,
                    ))
                }
            }
        } else {
            return self.next_free_identifier(item, type_code);
        };
        match self.stored_version(&id.to_string())? {
            None => Ok(Chosen::Free(id)),
            Some(stored) => Ok(Chosen::Done(same_license(
                item, id, type_code, stored, field,
            ))),
        }
    }

    /// A fresh identifier with the next free serial of (type, issuer).
    fn next_free_identifier(
        &mut self,
        item: &ImportItem,
        type_code: &str,
    ) -> Result<Chosen, StoreError> {
        let new = &item.license;
        for _ in 0..MAX_SERIAL_ATTEMPTS {
            let serial = self.next_serial(type_code, &new.issuer.code, new.issue_date.year())?;
            let id = match Identifier::generate(type_code, &new.issuer.code, &serial, 1) {
                Ok(id) => id,
                Err(e) => {
                    let code = RejectCode::InvalidArgument;
                    return Ok(Chosen::refused(code, "license.issuer.code", e));
                }
            };
            if !self.identifier_taken(&id.to_string())? {
                return Ok(Chosen::Free(id));
            }
        }
        let why = "no free serial number";
        Ok(Chosen::refused(
            RejectCode::FailedPrecondition,
            "license.serial",
            why,
        ))
    }

    fn next_serial(
        &mut self,
        type_code: &str,
        issuer_code: &str,
        year: u16,
    ) -> Result<String, StoreError> {
        let key = keys::serial_key(type_code, issuer_code);
        let last = match self.txn.get(CF_SERIALS, &key)? {
            Some(bytes) => decode_u64("serial", &bytes)?,
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

    /// The stored version with `identifier`, current or historic.
    fn stored_version(&self, identifier: &str) -> Result<Option<License>, StoreError> {
        let Some(ckey) = self.txn.get(CF_IDENT, identifier.as_bytes())? else {
            return self.load(CF_HISTORY, identifier.as_bytes());
        };
        match self.load(CF_CURRENT, &ckey)? {
            Some(current) => Ok(Some(current)),
            None => Err(StoreError::corrupt(
                "identifier index",
                format!("{identifier} dangles"),
            )),
        }
    }

    fn amend(
        &mut self,
        identifier: &str,
        new: &licstore_model::NewLicense,
        seal: &[u8],
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
        license.seal = seal.to_vec();
        if let Err(r) = self.check_seal(&license, true)? {
            return Ok(Err(r));
        }
        if license.seal.is_empty() && !old.seal.is_empty() {
            let msg = format!(
                "{} is sealed by {}; its next version must be sealed too",
                old.identifier, old.issuer.code
            );
            return Ok(Err(reject(RejectCode::FailedPrecondition, "seal", msg)));
        }
        let change = Change {
            op: EventOp::Amend,
            old_status: Some(old.status),
            previous: Some(old.identifier.clone()),
        };
        self.unindex(&old)?;
        old.superseded_by = Some(license.identifier.clone());
        old.revision = self.index;
        old.digest = content_digest(&old);
        self.txn.delete(CF_IDENT, old.identifier.as_bytes())?;
        self.store(CF_HISTORY, old.identifier.as_bytes(), &old)?;
        // A superseded sealed version is flagged in its status list: its seal still holds.
        self.track_status(&old)?;
        self.finish(&ckey, license, change).map(Ok)
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
        let status = match apply_status_op(license.status, op) {
            Ok(s) => s,
            Err(e) => return Ok(Err(reject(RejectCode::FailedPrecondition, "op", e))),
        };
        let change = Change {
            op: EventOp::Status(op),
            old_status: Some(license.status),
            previous: None,
        };
        self.unindex(&license)?;
        license.status = status;
        license.status_reason = reason.map(str::to_string);
        self.finish(&ckey, license, change).map(Ok)
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

    /// Stamps the record with this revision and its digest, stores it as current with its
    /// index entries and records the change in the feed. The caller has already removed the
    /// index entries of the version this one replaces.
    fn finish(
        &mut self,
        ckey: &[u8],
        mut license: License,
        change: Change,
    ) -> Result<WriteOutcome, StoreError> {
        license.revision = self.index;
        license.digest = content_digest(&license);
        self.txn
            .put(CF_IDENT, license.identifier.as_bytes(), ckey.to_vec())?;
        self.store(CF_CURRENT, ckey, &license)?;
        self.track_status(&license)?;
        let summary = codec::encode("index summary", &IndexSummary::of(&license))?;
        for (_, key) in index::keys_of(&license) {
            self.txn.put(CF_INDEX, &key, summary.clone())?;
        }
        self.record_event(&license, change)?;
        Ok(WriteOutcome {
            license,
            revision: self.index,
            duplicate: false,
        })
    }

    /// Removes the index entries of a version that stops being current or is about to change.
    fn unindex(&mut self, license: &License) -> Result<(), StoreError> {
        for (_, key) in index::keys_of(license) {
            self.txn.delete(CF_INDEX, &key)?;
        }
        Ok(())
    }

    fn record_event(&mut self, license: &License, change: Change) -> Result<(), StoreError> {
        let event = Event {
            revision: self.index,
            seq: self.events,
            op: change.op,
            identifier: license.identifier.clone(),
            previous_identifier: change.previous,
            holder_kind: license.holder.kind,
            holder_id: license.holder.id.clone(),
            type_code: license.type_code.clone(),
            issuer_code: license.issuer.code.clone(),
            old_status: change.old_status,
            new_status: license.status,
            version: license.version,
            digest: license.digest,
        };
        let key = keys::event_key(self.index, self.events);
        self.events += 1;
        self.txn
            .put(CF_EVENTS, &key, codec::encode("event", &event)?)
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

/// The change feed's compaction revision as seen by the batch being applied; 0 before any.
fn compacted_revision(txn: &Txn<'_>) -> Result<u64, StoreError> {
    match txn.get(CF_SM_VARS, keys::VAR_COMPACTED)? {
        Some(bytes) => decode_u64("compaction revision", &bytes),
        None => Ok(0),
    }
}

/// A big-endian u64 value.
pub(crate) fn decode_u64(what: &'static str, bytes: &[u8]) -> Result<u64, StoreError> {
    let arr: [u8; 8] = bytes
        .try_into()
        .map_err(|_| StoreError::corrupt(what, "length"))?;
    Ok(u64::from_be_bytes(arr))
}

/// A digest of what a request asked for, to tell a retry from a reused request id.
fn fingerprint<T: serde::Serialize>(request: &T) -> Result<[u8; 32], StoreError> {
    Ok(*blake3::hash(&codec::encode("request", request)?).as_bytes())
}

/// Where [`Applier::choose_identifier`] leaves a new license.
// Lives for one call; boxing the result would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Chosen {
    /// Stored under this identifier, which is free.
    Free(Identifier),
    /// Not stored: this is the result.
    Done(WriteResult),
}

impl Chosen {
    fn refused(code: RejectCode, field: &str, reason: impl ToString) -> Self {
        Chosen::Done(Err(reject(code, field, reason)))
    }
}

/// The result of creating `item` under `id`, which `stored` already has: the same license in
/// the same state (same issued content, so also the same seal's subject; same status and
/// reason; not a seal the stored version lacks) is a duplicate of the stored one; anything
/// else is refused. A replayed import file counts as duplicates the records the store still
/// holds as the file gives them, and a different record, or a status or seal the store would
/// drop, never passes for one: it is refused, loudly.
fn same_license(
    item: &ImportItem,
    id: Identifier,
    type_code: &str,
    stored: License,
    field: &str,
) -> WriteResult {
    let mut candidate = build_license(item.license.clone(), id, item.legacy_checksum);
    candidate.type_code = type_code.to_owned();
    let why = if issued_digest(&candidate) != issued_digest(&stored) {
        Some("identifier already stored, with other content".to_owned())
    } else if (item.status, &item.status_reason) != (stored.status, &stored.status_reason) {
        Some(format!(
            "identifier already stored, now {} with reason {:?}",
            stored.status.as_str(),
            stored.status_reason.as_deref().unwrap_or("")
        ))
    } else if !item.seal.is_empty() && stored.seal.is_empty() {
        Some("identifier already stored, unsealed".to_owned())
    } else {
        None
    };
    if let Some(why) = why {
        return Err(reject(RejectCode::AlreadyExists, field, why));
    }
    Ok(WriteOutcome {
        revision: stored.revision,
        license: stored,
        duplicate: true,
    })
}

fn reject(code: RejectCode, field: &str, reason: impl ToString) -> Rejection {
    Rejection::new(code, field, reason.to_string())
}
