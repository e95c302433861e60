//! The `Audit` service: the replicated audit trail, for auditors.
//!
//! Records are served as stored (`raw`, what the chain hashes) and decoded, so a client can
//! check the chain itself instead of trusting this node (`licctl audit verify`).

use std::sync::Arc;

use licstore_model::audit::{decode_record, AuditRecord};
use licstore_model::HolderKind;
use licstore_proto::v1 as pb;
use licstore_proto::v1::audit_server::Audit;
use licstore_store::audit::AuditReader;
use tonic::{Code, Request, Response, Status};

use crate::api::consistency_of;
use crate::convert::{self, field_status};
use crate::node::Node;

/// Records a call returns when it names no limit.
pub const LIST_DEFAULT: usize = 1000;
/// Most records one call returns.
pub const LIST_MAX: usize = 10_000;

/// The `Audit` service.
pub struct AuditApi {
    node: Arc<Node>,
}

impl AuditApi {
    /// A service over `node`.
    pub fn new(node: Arc<Node>) -> Self {
        AuditApi { node }
    }
}

/// A stored record as the API shows it.
fn entry(raw: Vec<u8>) -> Result<pb::AuditEntry, Status> {
    let AuditRecord { seq, event: e, .. } = decode_record(&raw)
        .map_err(|err| Status::data_loss(format!("audit record does not decode: {err}")))?;
    let holder_kind = match e.holder_kind {
        None => pb::HolderKind::Unspecified,
        Some(HolderKind::CitizenId) => pb::HolderKind::CitizenId,
        Some(HolderKind::Uscc) => pb::HolderKind::Uscc,
    };
    Ok(pb::AuditEntry {
        raw,
        seq,
        time_ms: e.time_ms,
        node_id: e.node_id,
        caller: e.caller,
        roles: e.roles,
        action: e.action,
        outcome: e.outcome,
        detail: e.detail,
        service_item: e.service_item,
        purpose: e.purpose,
        holder_kind: holder_kind as i32,
        holder_id: e.holder_id,
        type_code: e.type_code,
        identifier: e.identifier,
        revision: e.revision,
    })
}

/// The holder a request filters on, if any: both fields or neither.
fn holder_filter(req: &pb::ListAuditRequest) -> Result<Option<(HolderKind, String)>, Status> {
    let id = req.holder_id.trim().to_uppercase();
    match (req.holder_kind, id.is_empty()) {
        (0, true) => Ok(None),
        (_, true) => Err(field_status(
            Code::InvalidArgument,
            "holder_id",
            "required with holder_kind",
        )),
        (kind, false) => Ok(Some((convert::holder_kind("holder_kind", kind)?, id))),
    }
}

fn limit_of(limit: u32) -> Result<usize, Status> {
    match limit as usize {
        0 => Ok(LIST_DEFAULT),
        n if n > LIST_MAX => Err(field_status(
            Code::InvalidArgument,
            "limit",
            format!("{n}; at most {LIST_MAX}"),
        )),
        n => Ok(n),
    }
}

#[tonic::async_trait]
impl Audit for AuditApi {
    async fn list_audit(
        &self,
        req: Request<pb::ListAuditRequest>,
    ) -> Result<Response<pb::ListAuditResponse>, Status> {
        let req = req.into_inner();
        let holder = holder_filter(&req)?;
        let limit = limit_of(req.limit)?;
        self.node
            .read_barrier(consistency_of(req.consistency, 0)?)
            .await?;
        let reader = self.node.reader.clone();
        let internal = |e: licstore_store::StoreError| Status::internal(e.to_string());
        let listed = tokio::task::spawn_blocking(move || {
            let trail = AuditReader::new(&reader);
            let tail = trail.tail()?;
            let raw = match &holder {
                None => trail.records(req.from_seq, limit)?,
                Some((kind, id)) => trail.records_of_holder(*kind, id, req.from_seq, limit)?,
            };
            Ok((tail, raw))
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(internal)?;
        let (tail, raw) = listed;
        let read_revision = self.node.reader.applied_index().map_err(internal)?;
        Ok(Response::new(pb::ListAuditResponse {
            records: raw.into_iter().map(entry).collect::<Result<_, _>>()?,
            tail_seq: tail.seq,
            tail_hash: tail.hash.to_vec(),
            read_revision,
        }))
    }
}
