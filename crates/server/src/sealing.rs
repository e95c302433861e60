//! Seals on writes and the `Seals` service (the key registry, license export).
//!
//! Who seals an issue or amendment:
//! - the issuing department's own system, which sends a `seal_bundle`: the node verifies its
//!   signature under the registered key before proposing (the leader again for a forwarded
//!   write), and every replica checks the rest on apply (`licstore_store::seal_keys`);
//! - else this node, when the issuer's active key is one of its key files ([`Sealer`]): it
//!   fixes the identifier first (a serial derived from the request, so a retry gets the
//!   same one: [`ImportItem::derive_serial`]), builds the record as apply will, and seals its
//!   issued content; imported records are sealed the same way when they come without a seal;
//! - else nobody: the write is unsealed, which apply refuses for an issuer with an active key.
//!
//! The signing time is this node's clock; a supplied seal's time must be within
//! [`SIGNED_AT_SKEW_MS`] of it, so a seal cannot be dated before a revocation at will.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use licstore_model::{build_license, Identifier, License, NewLicense};
use licstore_proto::v1 as pb;
use licstore_proto::v1::seals_server::Seals;
use licstore_seal::payload::PAYLOAD_VERSION;
use licstore_seal::{
    judge, parse_key_file, verify_seal, ExportDocument, KeyId, KeyRecord, KeyVerdict, PublicKey,
    SealBundle, SecretKey,
};
use licstore_store::{Command, CommandResult, ImportItem, Reader};
use tonic::{Code, Request, Response, Status};

use crate::access::Caller;
use crate::audit;
use crate::convert::{field_status, rejection_status, required};
use crate::node::{Consistency, Node};
use crate::ServerError;

/// How far a supplied seal's signing time may be from this node's clock.
pub const SIGNED_AT_SKEW_MS: u64 = 5 * 60 * 1000;

/// The secret keys this node seals with, by key id.
#[derive(Default)]
pub struct Sealer {
    keys: HashMap<KeyId, SecretKey>,
}

impl Sealer {
    /// Loads every key file; an unreadable or malformed file is a configuration error naming
    /// it.
    pub fn load(paths: &[PathBuf]) -> Result<Sealer, ServerError> {
        let mut keys = HashMap::new();
        for path in paths {
            let bad = |why: String| {
                ServerError::Config(format!("seal.key_files {}: {why}", path.display()))
            };
            let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
            let key = parse_key_file(&text).map_err(|e| bad(e.to_string()))?;
            keys.insert(key.key_id(), key);
        }
        Ok(Sealer { keys })
    }

    /// The secret key of `key_id`, when this node holds it.
    pub fn secret(&self, key_id: &KeyId) -> Option<&SecretKey> {
        self.keys.get(key_id)
    }

    /// Ids of the keys held, for the start-up log.
    pub fn key_ids(&self) -> Vec<String> {
        self.keys.keys().map(ToString::to_string).collect()
    }

    fn seal(&self, key_id: &KeyId, license: &License) -> Result<Option<Vec<u8>>, Status> {
        let Some(secret) = self.keys.get(key_id) else {
            return Ok(None);
        };
        let bundle = SealBundle::for_license(
            secret,
            &license.issuer.code,
            now_ms(),
            licstore_model::issued_digest(license),
            &license.disclosable_fields(),
            &mut rand::rng(),
        )
        .map_err(|e| field_status(Code::InvalidArgument, "license", e))?;
        Ok(Some(bundle.to_bytes()))
    }
}

/// Milliseconds since the Unix epoch by this node's clock.
pub fn now_ms() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

fn bad_bundle(field: &str, e: impl std::fmt::Display) -> Status {
    field_status(Code::InvalidArgument, field, e)
}

fn store_error(e: licstore_store::StoreError) -> Status {
    Status::internal(e.to_string())
}

/// Decodes a supplied bundle and verifies its signature under the registered key.
fn verify_supplied(reader: &Reader, bytes: &[u8]) -> Result<(SealBundle, KeyRecord), Status> {
    let bundle = SealBundle::from_bytes(bytes).map_err(|e| bad_bundle("seal_bundle", e))?;
    let key_id = bundle.payload.key_id;
    let Some(record) = reader.seal_key(&key_id).map_err(store_error)? else {
        let why = format!("key {key_id} is not registered");
        return Err(field_status(
            Code::FailedPrecondition,
            "seal_bundle.key_id",
            why,
        ));
    };
    verify_seal(&record.public_key, &bundle.payload, &bundle.seal)
        .map_err(|e| bad_bundle("seal_bundle.signature", e))?;
    Ok((bundle, record))
}

/// The record an issue will store, for sealing; the identifier comes from the serial.
fn issued_license(item: &ImportItem) -> Result<License, Status> {
    let new = &item.license;
    let serial = new.serial.as_deref().ok_or_else(|| {
        field_status(
            Code::InvalidArgument,
            "license.serial",
            "required with a seal_bundle: the seal covers the identifier",
        )
    })?;
    let id = Identifier::generate(&new.type_code, &new.issuer.code, serial, 1)
        .map_err(|e| field_status(Code::InvalidArgument, "license.serial", e))?;
    Ok(build_license(new.clone(), id, item.legacy_checksum))
}

/// The record an amendment of `identifier` (whose current version is `old`) will store.
fn amended_license(identifier: &str, new: &NewLicense, old: &License) -> Result<License, Status> {
    let next = Identifier::parse(identifier)
        .and_then(|id| id.next_version())
        .map_err(|e| field_status(Code::FailedPrecondition, "identifier", e))?;
    let mut license = build_license(new.clone(), next, old.holder.legacy_checksum);
    license.type_code = old.type_code.clone();
    license.replaces = Some(identifier.to_owned());
    Ok(license)
}

/// A new seal (an issue's, an amendment's, an imported record's without identifier) must be
/// of the current payload version: an older one shows the plain issued digest to every
/// verifier of a presentation. Imported stock with its identifier may keep its seal.
fn current_version(bundle: &SealBundle) -> Result<(), Status> {
    let version = bundle.payload.version;
    if version < PAYLOAD_VERSION {
        let why = format!("version {version}; new seals are version {PAYLOAD_VERSION}");
        return Err(bad_bundle("seal_bundle.version", why));
    }
    Ok(())
}

fn check_supplied_content(
    record: &KeyRecord,
    bundle: &SealBundle,
    license: &License,
) -> Result<(), Status> {
    let skew = bundle.payload.signed_at_ms.abs_diff(now_ms());
    if skew > SIGNED_AT_SKEW_MS {
        let why = format!("{skew} ms from this node's clock, more than {SIGNED_AT_SKEW_MS}");
        return Err(bad_bundle("seal_bundle.signed_at_ms", why));
    }
    licstore_store::seal_keys::check_with_record(record, bundle, license)
        .map_err(|r| rejection_status(&r))
}

/// The issuer's active key, looked up locally; a key registered moments ago may not have
/// reached this replica yet, which costs the caller a retry, not a wrong result.
fn active_key(reader: &Reader, authority: &str) -> Result<Option<KeyRecord>, Status> {
    reader.active_seal_key(authority).map_err(store_error)
}

fn not_held(authority: &str, key: &KeyRecord) -> Status {
    let why = format!(
        "authority {authority} seals with key {}, which this node does not hold; \
         send a seal_bundle made with it",
        key.key_id
    );
    field_status(Code::FailedPrecondition, "seal_bundle", why)
}

impl Node {
    /// Seals an issue: checks a supplied bundle, or seals with a held key (see the module
    /// header). Leaves the item unsealed when its issuer has no active key.
    pub fn seal_issue(&self, item: &mut ImportItem, supplied: Vec<u8>) -> Result<(), Status> {
        if !supplied.is_empty() {
            let (bundle, record) = verify_supplied(&self.reader, &supplied)?;
            current_version(&bundle)?;
            check_supplied_content(&record, &bundle, &issued_license(item)?)?;
            item.seal = supplied;
            return Ok(());
        }
        self.seal_unsealed(item)
    }

    /// Seals `item` with its issuer's active key when this node holds it, over the record as
    /// apply will store it: under its given identifier, or one whose serial derives from the
    /// request id, so a retry gets the same identifier. No active key: left unsealed.
    fn seal_unsealed(&self, item: &mut ImportItem) -> Result<(), Status> {
        let Some(active) = active_key(&self.reader, &item.license.issuer.code)? else {
            return Ok(());
        };
        item.derive_serial().map_err(store_error)?;
        item.seal = self.seal_held(&active, &imported_license(item)?)?;
        Ok(())
    }

    /// `license` sealed with the held secret of `active`, or why this node cannot.
    fn seal_held(&self, active: &KeyRecord, license: &License) -> Result<Vec<u8>, Status> {
        self.sealer
            .seal(&active.key_id, license)?
            .ok_or_else(|| not_held(&license.issuer.code, active))
    }

    /// The seal of an amendment's new version, or an empty one for an issuer without an
    /// active key.
    pub fn seal_amend(
        &self,
        identifier: &str,
        new: &NewLicense,
        supplied: Vec<u8>,
    ) -> Result<Vec<u8>, Status> {
        let active = active_key(&self.reader, &new.issuer.code)?;
        let sealing_key = match (&active, supplied.is_empty()) {
            (None, true) => return Ok(Vec::new()),
            (Some(key), true) => Some(key),
            (_, false) => None,
        };
        let old = self
            .reader
            .get_by_identifier(identifier)
            .map_err(store_error)?
            .ok_or_else(|| {
                field_status(
                    Code::NotFound,
                    "identifier",
                    "no license has this identifier",
                )
            })?;
        let license = amended_license(identifier, new, &old)?;
        let Some(key) = sealing_key else {
            let (bundle, record) = verify_supplied(&self.reader, &supplied)?;
            current_version(&bundle)?;
            check_supplied_content(&record, &bundle, &license)?;
            return Ok(supplied);
        };
        self.seal_held(key, &license)
    }
}

impl Node {
    /// Seals an imported record as [`Node::seal_issue`] seals an issue: a supplied seal is
    /// checked ([`Node::check_import_seal`]), an unsealed record is sealed when this node
    /// holds its issuer's active key.
    pub fn seal_import(&self, item: &mut ImportItem) -> Result<(), Status> {
        if item.seal.is_empty() {
            self.seal_unsealed(item)
        } else {
            self.check_import_seal(item)
        }
    }

    /// Checks a seal supplied with an imported record: the signature under the registered key
    /// and the content. Stock may have been sealed long ago, so the signing time is judged by
    /// the key's record only, not against this node's clock.
    pub fn check_import_seal(&self, item: &ImportItem) -> Result<(), Status> {
        if item.seal.is_empty() {
            return Ok(());
        }
        let (bundle, record) = verify_supplied(&self.reader, &item.seal)?;
        if item.identifier.is_none() {
            // Without an identifier of its own, the record is issued now.
            current_version(&bundle)?;
        }
        let license = imported_license(item)?;
        licstore_store::seal_keys::check_with_record(&record, &bundle, &license)
            .map_err(|r| rejection_status(&r))
    }
}

/// The record an import will store: under its given identifier, or as an issue.
fn imported_license(item: &ImportItem) -> Result<License, Status> {
    let Some(given) = &item.identifier else {
        return issued_license(item);
    };
    let id = Identifier::parse(given)
        .map_err(|e| field_status(Code::InvalidArgument, "identifier", e))?;
    if id.type_code() != item.license.type_code {
        let why = "its type segment is not license.type_code";
        return Err(field_status(Code::InvalidArgument, "identifier", why));
    }
    // A seal attests the identifier too: it must name this license's issuing office, by its
    // code or, as older stock does, by the region's code.
    let issuer = id.issuer_code();
    if issuer != item.license.issuer.code && issuer != item.license.region_code {
        let why = format!(
            "its issuer segment {issuer} is neither license.issuer.code nor license.region_code"
        );
        return Err(field_status(Code::InvalidArgument, "identifier", why));
    }
    Ok(build_license(
        item.license.clone(),
        id,
        item.legacy_checksum,
    ))
}

/// Verifies the signature of every seal a forwarded command carries, as the node that
/// received the request did.
pub fn check_forwarded(cmd: &Command, reader: &Reader) -> Result<(), Status> {
    let seals: Vec<&Vec<u8>> = match cmd {
        Command::Issue(item) => vec![&item.seal],
        Command::Import(items) => items.iter().map(|i| &i.seal).collect(),
        Command::Amend { seal, .. } => vec![seal],
        _ => Vec::new(),
    };
    for seal in seals.into_iter().filter(|s| !s.is_empty()) {
        verify_supplied(reader, seal)?;
    }
    Ok(())
}

/// What the registry says now about a license's seal.
pub fn seal_verdict(license: &License, reader: &Reader) -> Result<pb::SealVerdict, Status> {
    if license.seal.is_empty() {
        return Ok(pb::SealVerdict::Unsealed);
    }
    let Ok(bundle) = SealBundle::from_bytes(&license.seal) else {
        return Ok(pb::SealVerdict::UnknownKey);
    };
    let Some(record) = reader
        .seal_key(&bundle.payload.key_id)
        .map_err(store_error)?
    else {
        return Ok(pb::SealVerdict::UnknownKey);
    };
    Ok(match judge(&record, bundle.payload.signed_at_ms) {
        KeyVerdict::Valid => pb::SealVerdict::Valid,
        KeyVerdict::ValidRotated { .. } => pb::SealVerdict::ValidRotated,
        KeyVerdict::SignedBeforeRevocation { .. } => pb::SealVerdict::SignedBeforeRevocation,
        KeyVerdict::RevokedAtSigning { .. } => pb::SealVerdict::RevokedAtSigning,
        KeyVerdict::NotYetValid { .. } | KeyVerdict::Expired { .. } => {
            pb::SealVerdict::OutsideKeyValidity
        }
    })
}

/// The API form of a key record.
pub fn key_to_pb(record: &KeyRecord, active: bool) -> pb::SealKey {
    pb::SealKey {
        authority: record.authority.clone(),
        key_id: record.key_id.to_string(),
        suite: record.suite().name().to_owned(),
        public_key: record.public_key.to_bytes(),
        valid_from_ms: record.valid_from_ms,
        valid_until_ms: record.valid_until_ms.unwrap_or(0),
        revoked_from_ms: record.revoked_from_ms.unwrap_or(0),
        replaced_by: record
            .replaced_by
            .map(|id| id.to_string())
            .unwrap_or_default(),
        active,
        record: record.to_bytes(),
        trusted_via: String::new(),
    }
}

fn trust_info(anchor: &licstore_store::TrustAnchor) -> Result<pb::TrustListInfo, Status> {
    let root = PublicKey::from_bytes(&anchor.root_public_key)
        .map_err(|e| Status::internal(format!("stored trust anchor: {e}")))?;
    Ok(pb::TrustListInfo {
        root_key_id: root.key_id().to_string(),
        issued_by: anchor.issued_by.clone(),
        issued_at_ms: anchor.issued_at_ms,
        keys: anchor.key_ids.len() as u32,
        imported_at_revision: anchor.imported_at_revision,
    })
}

/// The `Seals` service.
#[derive(Clone)]
pub struct SealsApi {
    node: Arc<Node>,
}

impl SealsApi {
    /// A service over `node`.
    pub fn new(node: Arc<Node>) -> Self {
        SealsApi { node }
    }

    /// Proposes a key command; `active` says which of the written records are active.
    async fn write_keys(
        &self,
        cmd: Command,
        active: impl Fn(usize, usize) -> bool,
    ) -> Result<Response<pb::SealKeysResponse>, Status> {
        let (result, revision) = self.node.write(cmd).await?;
        let records = match result {
            CommandResult::SealKeys(Ok(records)) => records,
            CommandResult::SealKeys(Err(r)) => return Err(rejection_status(&r)),
            other => return Err(Status::internal(format!("unexpected result {other:?}"))),
        };
        let count = records.len();
        let keys = records
            .iter()
            .enumerate()
            .map(|(i, bytes)| {
                KeyRecord::from_bytes(bytes)
                    .map(|r| key_to_pb(&r, active(i, count)))
                    .map_err(|e| Status::internal(e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Response::new(pb::SealKeysResponse { keys, revision }))
    }
}

fn authority(value: &str) -> Result<String, Status> {
    let value = required("authority", value)?.trim();
    if value.len() > 128 || value.chars().any(char::is_control) {
        let why = "at most 128 bytes, no control characters";
        return Err(field_status(Code::InvalidArgument, "authority", why));
    }
    Ok(value.to_owned())
}

fn public_key(field: &str, bytes: &[u8]) -> Result<Vec<u8>, Status> {
    if bytes.is_empty() {
        return Err(field_status(Code::InvalidArgument, field, "required"));
    }
    PublicKey::from_bytes(bytes).map_err(|e| field_status(Code::InvalidArgument, field, e))?;
    Ok(bytes.to_vec())
}

/// The checks the API makes on a key command, for one forwarded to the leader.
pub fn check_key_command(cmd: &Command) -> Result<(), Status> {
    match cmd {
        Command::RegisterKey {
            authority: code,
            public_key: key,
            valid_from_ms,
        } => {
            authority(code)?;
            public_key("public_key", key)?;
            check_not_ahead("valid_from_ms", *valid_from_ms)
        }
        Command::RotateKey {
            authority: code,
            new_public_key,
            at_ms,
        } => {
            authority(code)?;
            public_key("new_public_key", new_public_key)?;
            check_near_now("at_ms", *at_ms)
        }
        _ => Ok(()),
    }
}

/// A key's start may be in the past, not more than [`SIGNED_AT_SKEW_MS`] ahead: a key that
/// becomes active before it may sign would leave its authority unable to seal meanwhile.
fn check_not_ahead(field: &str, ms: u64) -> Result<(), Status> {
    let now = now_ms();
    if ms > now.saturating_add(SIGNED_AT_SKEW_MS) {
        let why = format!("{ms} is more than {SIGNED_AT_SKEW_MS} ms after this node's clock");
        return Err(field_status(Code::InvalidArgument, field, why));
    }
    Ok(())
}

/// A handover instant within [`SIGNED_AT_SKEW_MS`] of this node's clock: an earlier one would
/// void seals the old key made since, a later one would leave no key able to seal meanwhile.
fn check_near_now(field: &str, ms: u64) -> Result<(), Status> {
    let skew = ms.abs_diff(now_ms());
    if skew > SIGNED_AT_SKEW_MS {
        let why = format!("{skew} ms from this node's clock, more than {SIGNED_AT_SKEW_MS}");
        return Err(field_status(Code::InvalidArgument, field, why));
    }
    Ok(())
}

fn or_now(ms: u64) -> u64 {
    if ms == 0 {
        now_ms()
    } else {
        ms
    }
}

fn consistency(c: i32) -> Result<Consistency, Status> {
    match pb::Consistency::try_from(c) {
        Ok(pb::Consistency::Unspecified | pb::Consistency::Linearizable) => {
            Ok(Consistency::Linearizable)
        }
        Ok(pb::Consistency::Serializable) => Ok(Consistency::Serializable),
        _ => Err(field_status(
            Code::InvalidArgument,
            "consistency",
            format!("{c}: linearizable or serializable"),
        )),
    }
}

/// The license calls the audit trail records, as served before their record is made.
impl SealsApi {
    async fn export_license_inner(
        &self,
        req: Request<pb::ExportLicenseRequest>,
        shown: &mut Option<License>,
    ) -> Result<Response<pb::ExportLicenseResponse>, Status> {
        let req = req.into_inner();
        let why = "the license is not sealed, so it cannot be checked offline";
        let (license, keys, read_revision) = self
            .sealed_license(&req.identifier, req.consistency, why)
            .await?;
        *shown = Some(license.clone());
        let status_entry = crate::status_lists::entry_of(&self.node.reader, &license.identifier)?;
        let signed =
            crate::status_lists::signed_entry(&self.node, &license, status_entry.as_ref())?;
        let document = ExportDocument {
            record: licstore_model::encode(&license),
            keys,
            status_entry: signed,
        };
        Ok(Response::new(pb::ExportLicenseResponse {
            document: document.to_bytes(),
            read_revision,
            status_entry,
        }))
    }

    async fn present_inner(
        &self,
        req: Request<pb::PresentRequest>,
        shown: &mut Option<License>,
    ) -> Result<Response<pb::PresentResponse>, Status> {
        let req = req.into_inner();
        let names = presented_names(&req.fields)?;
        let why = "the license is not sealed, so it has no fields to present";
        let (license, keys, read_revision) = self
            .sealed_license(&req.identifier, req.consistency, why)
            .await?;
        *shown = Some(license.clone());
        check_presentable(&license)?;
        let bundle = SealBundle::from_bytes(&license.seal)
            .map_err(|e| Status::internal(format!("stored seal: {e}")))?;
        let presentation = bundle
            .present(&license.disclosable_fields(), &names, keys)
            .map_err(|e| unknown_field(&req.fields, e))?;
        let revealed = presentation
            .revealed
            .iter()
            .map(|d| (d.name.clone(), d.value.clone()))
            .collect();
        Ok(Response::new(pb::PresentResponse {
            document: presentation.to_bytes(),
            revealed,
            read_revision,
        }))
    }
}

#[tonic::async_trait]
impl Seals for SealsApi {
    async fn register_key(
        &self,
        req: Request<pb::RegisterKeyRequest>,
    ) -> Result<Response<pb::SealKeysResponse>, Status> {
        let caller = Caller::of(&req)?;
        let req = req.into_inner();
        let authority = authority(&req.authority)?;
        caller.may_manage_keys("authority", &authority)?;
        let cmd = Command::RegisterKey {
            authority,
            public_key: public_key("public_key", &req.public_key)?,
            valid_from_ms: or_now(req.valid_from_ms),
        };
        check_key_command(&cmd)?;
        self.write_keys(cmd, |_, _| true).await
    }

    async fn rotate_key(
        &self,
        req: Request<pb::RotateKeyRequest>,
    ) -> Result<Response<pb::SealKeysResponse>, Status> {
        let caller = Caller::of(&req)?;
        let req = req.into_inner();
        let authority = authority(&req.authority)?;
        caller.may_manage_keys("authority", &authority)?;
        let cmd = Command::RotateKey {
            authority,
            new_public_key: public_key("new_public_key", &req.new_public_key)?,
            at_ms: or_now(req.at_ms),
        };
        check_key_command(&cmd)?;
        self.write_keys(cmd, |i, count| i + 1 == count).await
    }

    async fn revoke_key(
        &self,
        req: Request<pb::RevokeKeyRequest>,
    ) -> Result<Response<pb::SealKeysResponse>, Status> {
        let caller = Caller::of(&req)?;
        let req = req.into_inner();
        let key_id: KeyId = required("key_id", &req.key_id)?
            .trim()
            .parse()
            .map_err(|e| field_status(Code::InvalidArgument, "key_id", e))?;
        if !caller.has(licstore_store::Role::Admin) {
            // An issuer revokes only its own keys, as the latest state has them.
            self.node.read_barrier(Consistency::Linearizable).await?;
            let record = self.node.reader.seal_key(&key_id).map_err(store_error)?;
            let record =
                record.ok_or_else(|| field_status(Code::NotFound, "key_id", "no such key"))?;
            caller.may_manage_keys("key_id", &record.authority)?;
        }
        let cmd = Command::RevokeKey {
            key_id: *key_id.as_bytes(),
            revoked_from_ms: or_now(req.revoked_from_ms),
        };
        self.write_keys(cmd, |_, _| false).await
    }

    async fn list_keys(
        &self,
        req: Request<pb::ListKeysRequest>,
    ) -> Result<Response<pb::SealKeysResponse>, Status> {
        let consistency = consistency(req.into_inner().consistency)?;
        self.node.read_barrier(consistency).await?;
        let reader = &self.node.reader;
        let revision = reader.applied_index().map_err(store_error)?;
        let records = reader.seal_keys().map_err(store_error)?;
        let mut keys = Vec::with_capacity(records.len());
        for record in &records {
            let active =
                active_key(reader, &record.authority)?.is_some_and(|a| a.key_id == record.key_id);
            let mut key = key_to_pb(record, active);
            if let Some(root) = reader.trusted_via(&record.authority).map_err(store_error)? {
                key.trusted_via = KeyId::from_bytes(root).to_string();
            }
            keys.push(key);
        }
        Ok(Response::new(pb::SealKeysResponse { keys, revision }))
    }

    async fn import_trust_list(
        &self,
        req: Request<pb::ImportTrustListRequest>,
    ) -> Result<Response<pb::ImportTrustListResponse>, Status> {
        let req = req.into_inner();
        if req.trust_file.is_empty() {
            return Err(field_status(
                Code::InvalidArgument,
                "trust_file",
                "required",
            ));
        }
        let pin: KeyId = required("root_key_id", &req.root_key_id)?
            .trim()
            .parse()
            .map_err(|e| field_status(Code::InvalidArgument, "root_key_id", e))?;
        let (_, list) = licstore_store::trust_anchors::open_pinned(&req.trust_file, pin.as_bytes())
            .map_err(|r| rejection_status(&r))?;
        // A list from a root whose clock runs ahead would make every later list look older;
        // the clock is read here, never on apply.
        check_not_ahead("trust_file.issued_at_ms", list.issued_at_ms)?;
        let cmd = Command::ImportTrustList {
            trust_file: req.trust_file,
            root_key_id: *pin.as_bytes(),
        };
        let (result, revision) = self.node.write(cmd).await?;
        let done = match result {
            CommandResult::TrustImport(Ok(done)) => done,
            CommandResult::TrustImport(Err(r)) => return Err(rejection_status(&r)),
            other => return Err(Status::internal(format!("unexpected result {other:?}"))),
        };
        let list = pb::TrustListInfo {
            root_key_id: KeyId::from_bytes(done.root_key_id).to_string(),
            issued_by: done.issued_by,
            issued_at_ms: done.issued_at_ms,
            keys: done.added + done.updated + done.unchanged + done.local,
            imported_at_revision: done.imported_at_revision,
        };
        Ok(Response::new(pb::ImportTrustListResponse {
            list: Some(list),
            added: done.added,
            updated: done.updated,
            unchanged: done.unchanged,
            local: done.local,
            withdrawn: done.withdrawn,
            replay: done.replay,
            revision,
        }))
    }

    async fn list_trust_lists(
        &self,
        req: Request<pb::ListTrustListsRequest>,
    ) -> Result<Response<pb::ListTrustListsResponse>, Status> {
        let consistency = consistency(req.into_inner().consistency)?;
        self.node.read_barrier(consistency).await?;
        let reader = &self.node.reader;
        let revision = reader.applied_index().map_err(store_error)?;
        let lists = reader
            .trust_anchors()
            .map_err(store_error)?
            .iter()
            .map(trust_info)
            .collect::<Result<_, _>>()?;
        Ok(Response::new(pb::ListTrustListsResponse {
            lists,
            revision,
        }))
    }

    async fn export_license(
        &self,
        req: Request<pb::ExportLicenseRequest>,
    ) -> Result<Response<pb::ExportLicenseResponse>, Status> {
        let caller = Caller::of(&req)?;
        let asked = audit::Asked::identifier(&req.get_ref().identifier);
        let api = self.clone();
        // On a task of its own: a client that gives up mid-call cannot leave a served call
        // without its record.
        audit::detached(async move {
            let mut shown = None;
            let answer = api.export_license_inner(req, &mut shown).await;
            let named = shown.as_ref().map(crate::convert::license_to_pb);
            let answered = match &answer {
                Ok(r) => Ok((named.as_ref(), 1, r.get_ref().read_revision)),
                Err(status) => Err(status),
            };
            let action = "Seals/ExportLicense";
            audit::record_license_call(&api.node, &caller, action, &asked, answered).await?;
            answer
        })
        .await
    }

    async fn present(
        &self,
        req: Request<pb::PresentRequest>,
    ) -> Result<Response<pb::PresentResponse>, Status> {
        let caller = Caller::of(&req)?;
        let asked = audit::Asked::identifier(&req.get_ref().identifier);
        let api = self.clone();
        // On a task of its own: a client that gives up mid-call cannot leave a served call
        // without its record.
        audit::detached(async move {
            let mut shown = None;
            let answer = api.present_inner(req, &mut shown).await;
            let named = shown.as_ref().map(crate::convert::license_to_pb);
            let answered = match &answer {
                Ok(r) => Ok((named.as_ref(), 1, r.get_ref().read_revision)),
                Err(status) => Err(status),
            };
            let action = "Seals/Present";
            audit::record_license_call(&api.node, &caller, action, &asked, answered).await?;
            answer
        })
        .await
    }

    async fn get_status_list(
        &self,
        req: Request<pb::GetStatusListRequest>,
    ) -> Result<Response<pb::GetStatusListResponse>, Status> {
        crate::status_lists::get(&self.node, req.into_inner()).await
    }
}

/// A presentation carries no status, so only a current, valid version is presented.
fn check_presentable(license: &License) -> Result<(), Status> {
    if let Some(next) = &license.superseded_by {
        let why = format!("version superseded by {next}; present the current one");
        return Err(field_status(Code::FailedPrecondition, "identifier", why));
    }
    if license.status != licstore_model::LicenseStatus::Valid {
        let why = format!("the license is {}, not valid", license.status.as_str());
        return Err(field_status(Code::FailedPrecondition, "identifier", why));
    }
    Ok(())
}

/// A refusal of a name the license has no sealed field for, naming its position.
fn unknown_field(asked: &[String], e: licstore_seal::SealError) -> Status {
    let field = match &e {
        licstore_seal::SealError::Disclosure { name, .. } => asked
            .iter()
            .position(|a| a.trim() == name)
            .map_or("fields".to_owned(), |i| format!("fields[{i}]")),
        _ => "fields".to_owned(),
    };
    field_status(Code::InvalidArgument, &field, e)
}

/// The field names a presentation request asks for: at least one, each a plausible name.
fn presented_names(fields: &[String]) -> Result<Vec<&str>, Status> {
    if fields.is_empty() {
        let why = "name at least one field to reveal";
        return Err(field_status(Code::InvalidArgument, "fields", why));
    }
    if fields.len() > licstore_seal::disclosure::FIELD_COUNT_MAX {
        let why = format!(
            "{} names; at most {}",
            fields.len(),
            licstore_seal::disclosure::FIELD_COUNT_MAX
        );
        return Err(field_status(Code::InvalidArgument, "fields", why));
    }
    fields
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let name = name.trim();
            if name.is_empty() || name.len() > licstore_seal::disclosure::FIELD_NAME_LEN_MAX {
                let why = "must be 1 to 128 bytes";
                return Err(field_status(
                    Code::InvalidArgument,
                    &format!("fields[{i}]"),
                    why,
                ));
            }
            Ok(name)
        })
        .collect()
}

impl SealsApi {
    /// The sealed license `identifier` names, its authority's key records and the revision
    /// read; `unsealed` is the reason given when it carries no seal.
    async fn sealed_license(
        &self,
        identifier: &str,
        consistency_level: i32,
        unsealed: &str,
    ) -> Result<(License, Vec<KeyRecord>, u64), Status> {
        let identifier = required("identifier", identifier)?.trim().to_owned();
        self.node
            .read_barrier(consistency(consistency_level)?)
            .await?;
        let reader = &self.node.reader;
        let read_revision = reader.applied_index().map_err(store_error)?;
        let license = reader
            .get_by_identifier(&identifier)
            .map_err(store_error)?
            .ok_or_else(|| {
                field_status(
                    Code::NotFound,
                    "identifier",
                    "no license has this identifier",
                )
            })?;
        if license.seal.is_empty() {
            return Err(field_status(
                Code::FailedPrecondition,
                "identifier",
                unsealed,
            ));
        }
        let keys = reader
            .seal_keys()
            .map_err(store_error)?
            .into_iter()
            .filter(|k| k.authority == license.issuer.code)
            .collect();
        Ok((license, keys, read_revision))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use licstore_seal::Suite;
    use rand::SeedableRng;

    #[test]
    fn new_seals_must_be_of_the_current_version() {
        let key = SecretKey::from_seed(Suite::Ed25519, &[1; 32]).expect("key");
        let rng = &mut rand::rngs::StdRng::seed_from_u64(1);
        let fields = Default::default();
        let current = SealBundle::for_license(&key, "A", 1, [2; 32], &fields, rng).expect("seal");
        for (version, accepted) in [(1, false), (PAYLOAD_VERSION, true)] {
            let mut bundle = current.clone();
            bundle.payload.version = version;
            let result = current_version(&bundle);
            assert_eq!(result.is_ok(), accepted, "version {version}");
            if let Err(status) = result {
                let field = status.metadata().get(crate::convert::FIELD_METADATA_KEY);
                assert_eq!(
                    field.map(|f| f.to_str().unwrap_or("")),
                    Some("seal_bundle.version")
                );
            }
        }
    }
}
