//! Serving status lists (`Seals.GetStatusList`): the replica's bits of one list, signed with
//! the authority's active key when this node holds its key file.
//!
//! Bits and revisions are replicated state (`licstore_store::status_lists`), so every replica
//! serves the same bits at the same revision; only the signature and its time are this node's.

use licstore_model::License;
use licstore_proto::v1 as pb;
use licstore_seal::{sign_status_entry, sign_status_list, StatusListDoc, StatusPurpose};
use licstore_seal::{SignedStatusEntry, StatusEntryClaim};
use licstore_store::status_lists::LIST_CAPACITY;
use tonic::{Code, Response, Status};

use crate::api::consistency_of;
use crate::convert::{field_status, required};
use crate::node::Node;
use crate::sealing::now_ms;

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

fn purpose(value: i32) -> Result<StatusPurpose, Status> {
    match pb::StatusPurpose::try_from(value) {
        Ok(pb::StatusPurpose::Revocation) => Ok(StatusPurpose::Revocation),
        Ok(pb::StatusPurpose::Suspension) => Ok(StatusPurpose::Suspension),
        _ => Err(field_status(
            Code::InvalidArgument,
            "purpose",
            format!("{value}: STATUS_PURPOSE_REVOCATION or STATUS_PURPOSE_SUSPENSION"),
        )),
    }
}

/// Answers one `GetStatusList` request from `node`'s replica.
pub async fn get(
    node: &Node,
    req: pb::GetStatusListRequest,
) -> Result<Response<pb::GetStatusListResponse>, Status> {
    let authority = required("authority", &req.authority)?.trim().to_owned();
    let type_code = node
        .templates
        .get(required("type_code", &req.type_code)?.trim())
        .map_err(|e| field_status(Code::InvalidArgument, "type_code", e))?
        .type_code
        .clone();
    let purpose = purpose(req.purpose)?;
    node.read_barrier(consistency_of(req.consistency, 0)?)
        .await?;
    let found = node
        .reader
        .status_list(&authority, &type_code, req.list, purpose)
        .map_err(internal)?;
    let Some((read_revision, list)) = found else {
        let why = format!(
            "no status list {} for {authority} and {type_code}",
            req.list
        );
        return Err(field_status(Code::NotFound, "list", why));
    };
    let revision = list.meta.revision(purpose);
    let mut answer = pb::GetStatusListResponse {
        not_modified: revision <= req.if_newer_than,
        revision,
        capacity: LIST_CAPACITY,
        used: list.meta.used,
        read_revision,
        ..Default::default()
    };
    if answer.not_modified {
        return Ok(Response::new(answer));
    }
    let doc = StatusListDoc {
        authority,
        license_type: type_code,
        purpose,
        list: req.list,
        revision,
        issued_at_ms: now_ms(),
        bits: list.bits,
    };
    let (key_id, signed) = sign(node, doc)?;
    answer.key_id = key_id;
    answer.signed_list = signed;
    Ok(Response::new(answer))
}

/// Signs a list with its authority's active key, which this node must hold.
fn sign(node: &Node, doc: StatusListDoc) -> Result<(String, Vec<u8>), Status> {
    let active = node
        .reader
        .active_seal_key(&doc.authority)
        .map_err(internal)?;
    let Some(secret) = active.and_then(|k| node.sealer.secret(&k.key_id)) else {
        let why = format!(
            "this node holds no active key of {} to sign its lists",
            doc.authority
        );
        return Err(field_status(Code::FailedPrecondition, "authority", why));
    };
    let signed = sign_status_list(secret, doc).map_err(internal)?;
    Ok((secret.key_id().to_string(), signed.to_bytes()))
}

/// The entry of a license as the API shows it.
pub fn entry_of(
    reader: &licstore_store::Reader,
    identifier: &str,
) -> Result<Option<pb::StatusListEntry>, Status> {
    Ok(reader
        .status_entry(identifier)
        .map_err(internal)?
        .map(|e| pb::StatusListEntry {
            list: e.list,
            position: e.position,
        }))
}

/// The authority's signed word on where `license`'s bits are, when this node holds the
/// authority's active key; `None` otherwise (the export then carries no entry).
pub fn signed_entry(
    node: &Node,
    license: &License,
    entry: Option<&pb::StatusListEntry>,
) -> Result<Option<SignedStatusEntry>, Status> {
    let Some(entry) = entry else {
        return Ok(None);
    };
    let active = node
        .reader
        .active_seal_key(&license.issuer.code)
        .map_err(internal)?;
    let Some(secret) = active.and_then(|k| node.sealer.secret(&k.key_id)) else {
        return Ok(None);
    };
    let claim = StatusEntryClaim {
        signed_at_ms: now_ms(),
        authority: license.issuer.code.clone(),
        license_type: license.type_code.clone(),
        issued_digest: licstore_model::issued_digest(license),
        list: entry.list,
        position: entry.position,
    };
    sign_status_entry(secret, claim).map(Some).map_err(internal)
}
