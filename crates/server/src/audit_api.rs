//! The `Audit` service: the replicated audit trail, for auditors.
//!
//! Records are served as stored (`raw`, what the chain hashes) and decoded, so a client can
//! check the chain itself instead of trusting this node (`licctl audit verify`).
//!
//! Trims (admin) remove the oldest records in steps of `AUDIT_TRIM_MAX`, once every record
//! they would remove is older than `audit.trim_min_age_secs`; the leader also trims on its own
//! past `audit.retention_secs` ([`spawn_retention`]). Whether a trim may go ahead is decided
//! here, from the records as this node holds them; what it removes is decided when it applies.

use std::sync::Arc;
use std::time::Duration;

use licstore_model::audit::{decode_record, encode_record, AuditEvent, AuditRecord, Trim};
use licstore_model::HolderKind;
use licstore_proto::v1 as pb;
use licstore_proto::v1::audit_server::Audit;
use licstore_store::audit::{AuditReader, AuditTrimmed, AUDIT_TRIM_MAX};
use licstore_store::{Command, CommandResult};
use tonic::{Code, Request, Response, Status};

use crate::access::Caller;
use crate::api::consistency_of;
use crate::convert::{self, field_status, rejection_status};
use crate::node::Node;
use crate::sealing::now_ms;

/// Records a call returns when it names no limit.
pub const LIST_DEFAULT: usize = 1000;
/// Most records one call returns.
pub const LIST_MAX: usize = 10_000;

/// The caller a trim by the leader's own retention is recorded under.
pub const RETENTION_CALLER: &str = "licstored retention";

/// The `Audit` service.
pub struct AuditApi {
    node: Arc<Node>,
    /// `audit.trim_min_age_secs`.
    trim_min_age: Duration,
}

impl AuditApi {
    /// A service over `node`; no trim removes a record younger than `trim_min_age`.
    pub fn new(node: Arc<Node>, trim_min_age: Duration) -> Self {
        AuditApi { node, trim_min_age }
    }
}

/// The record a trim proposes, by `caller` with `roles`; applying fills in what it removed.
fn trim_event(node: &Node, caller: &str, roles: &str) -> Vec<u8> {
    encode_record(&AuditRecord {
        seq: 0,
        prev: [0; 32],
        event: AuditEvent {
            time_ms: now_ms(),
            node_id: node.id,
            caller: caller.to_owned(),
            roles: roles.to_owned(),
            ..Default::default()
        },
    })
}

/// Proposes one trim step through `through_seq`.
pub async fn trim_step(
    node: &Node,
    through_seq: u64,
    caller: &str,
    roles: &str,
) -> Result<AuditTrimmed, Status> {
    let event = trim_event(node, caller, roles);
    match node
        .write(Command::TrimAudit { through_seq, event })
        .await?
    {
        (CommandResult::AuditTrim(Ok(done)), _) => Ok(done),
        (CommandResult::AuditTrim(Err(r)), _) => Err(rejection_status(&r)),
        (other, _) => Err(Status::internal(format!("unexpected result {other:?}"))),
    }
}

/// Trim steps one retention pass proposes at most; the next pass goes on.
const RETENTION_STEPS_PER_PASS: usize = 100;

/// Starts retention of the trail: while this node leads, it trims the records older than
/// `retention` every tenth of it (between 1 s and 1 h), recorded as [`RETENTION_CALLER`].
/// Zero: never.
pub fn spawn_retention(node: Arc<Node>, retention: Duration) {
    if retention.is_zero() {
        return;
    }
    let every = (retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(3600));
    crate::background::every_while_leader(node, every, move |node| async move {
        retention_pass(&node, retention).await
    });
}

/// Trims, step by step, the run of records after the checkpoint older than `retention`.
async fn retention_pass(node: &Node, retention: Duration) {
    let keep_ms = u64::try_from(retention.as_millis()).unwrap_or(u64::MAX);
    let cutoff_ms = now_ms().saturating_sub(keep_ms);
    for _ in 0..RETENTION_STEPS_PER_PASS {
        let reader = node.reader.clone();
        let target = tokio::task::spawn_blocking(move || {
            let trail = AuditReader::new(&reader);
            let checkpoint = trail.checkpoint()?.seq;
            let (end, _) = trail.trimmable(cutoff_ms, u64::MAX, AUDIT_TRIM_MAX)?;
            // The last trim's own record alone: removing it would only make another.
            let only_a_trim = end == checkpoint + 1
                && trail.records(end, 1)?.first().is_some_and(|bytes| {
                    decode_record(bytes).is_ok_and(|r| Trim::of_record(&r).is_some())
                });
            let worth_it = end > checkpoint && !only_a_trim;
            Ok::<_, licstore_store::StoreError>(worth_it.then_some(end))
        })
        .await;
        let through_seq = match target {
            Ok(Ok(Some(end))) => end,
            Ok(Ok(None)) => return,
            Ok(Err(e)) => return tracing::error!(error = %e, "audit retention: reading the trail"),
            Err(e) => return tracing::error!(error = %e, "audit retention: reader task"),
        };
        match trim_step(node, through_seq, RETENTION_CALLER, "").await {
            Ok(done) => {
                let (checkpoint_seq, trimmed) = (done.checkpoint.seq, done.trimmed);
                tracing::info!(checkpoint_seq, trimmed, "audit retention: trail trimmed");
            }
            // Lost leadership or quorum: the next pass, here or on the next leader, goes on.
            Err(status) => return tracing::warn!(error = %status.message(), "audit retention"),
        }
    }
}

/// Most records one `TrimAudit` call removes, so its age check and its steps stay bounded;
/// a longer trim takes several calls.
pub const TRIM_PER_CALL_MAX: u64 = 1_000_000;

/// Refuses a trim through `through_seq` that would remove a record made after `cutoff_ms`, go
/// past the trail's end, or remove more than [`TRIM_PER_CALL_MAX`] records, as this node's
/// copy shows them (read after a linearizable barrier).
async fn check_trimmable(node: &Node, through_seq: u64, cutoff_ms: u64) -> Result<(), Status> {
    node.read_barrier(crate::node::Consistency::Linearizable)
        .await?;
    let reader = node.reader.clone();
    let scanned = tokio::task::spawn_blocking(move || {
        let trail = AuditReader::new(&reader);
        let (tail, checkpoint) = (trail.tail()?, trail.checkpoint()?);
        if through_seq > tail.seq || through_seq.saturating_sub(checkpoint.seq) > TRIM_PER_CALL_MAX
        {
            return Ok((tail, checkpoint, None));
        }
        let (_, younger) = trail.trimmable(cutoff_ms, through_seq, TRIM_PER_CALL_MAX)?;
        Ok::<_, licstore_store::StoreError>((tail, checkpoint, younger))
    })
    .await
    .map_err(|e| Status::internal(e.to_string()))?
    .map_err(|e| Status::internal(e.to_string()))?;
    let precondition = |why: String| field_status(Code::FailedPrecondition, "through_seq", why);
    match scanned {
        (tail, _, _) if through_seq > tail.seq => Err(precondition(format!(
            "{through_seq} is past the trail's last record {}",
            tail.seq
        ))),
        (_, checkpoint, _) if through_seq.saturating_sub(checkpoint.seq) > TRIM_PER_CALL_MAX => {
            Err(precondition(format!(
                "removes more than {TRIM_PER_CALL_MAX} records (the checkpoint is {}): trim in \
                 steps",
                checkpoint.seq
            )))
        }
        (_, _, Some((seq, time_ms))) => {
            let age_s = now_ms().saturating_sub(time_ms) / 1000;
            Err(precondition(format!(
                "record {seq} is {age_s} s old, younger than audit.trim_min_age_secs"
            )))
        }
        (_, _, None) => Ok(()),
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
            let checkpoint = trail.checkpoint()?;
            let raw = match &holder {
                None => trail.records(req.from_seq, limit)?,
                Some((kind, id)) => trail.records_of_holder(*kind, id, req.from_seq, limit)?,
            };
            Ok((tail, checkpoint, raw, trail.applied_index()?))
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(internal)?;
        let (tail, checkpoint, raw, read_revision) = listed;
        Ok(Response::new(pb::ListAuditResponse {
            records: raw.into_iter().map(entry).collect::<Result<_, _>>()?,
            tail_seq: tail.seq,
            tail_hash: tail.hash.to_vec(),
            read_revision,
            checkpoint_seq: checkpoint.seq,
            checkpoint_hash: match checkpoint.seq {
                0 => Vec::new(),
                _ => checkpoint.hash.to_vec(),
            },
        }))
    }

    async fn trim_audit(
        &self,
        req: Request<pb::TrimAuditRequest>,
    ) -> Result<Response<pb::TrimAuditResponse>, Status> {
        let caller = Caller::of(&req)?;
        let through_seq = req.into_inner().through_seq;
        if through_seq == 0 {
            let why = "required: the last record to remove";
            return Err(field_status(Code::InvalidArgument, "through_seq", why));
        }
        let min_age_ms = u64::try_from(self.trim_min_age.as_millis()).unwrap_or(u64::MAX);
        let cutoff_ms = now_ms().saturating_sub(min_age_ms);
        check_trimmable(&self.node, through_seq, cutoff_ms).await?;
        let roles = crate::audit::event(&caller, "").roles;
        // Each step removes at most AUDIT_TRIM_MAX records past the checkpoint; one more
        // step allows for a checkpoint this node had not yet seen move.
        let steps = through_seq.div_ceil(AUDIT_TRIM_MAX) + 1;
        let mut trimmed = 0;
        for _ in 0..steps {
            let done = trim_step(&self.node, through_seq, &caller.name, &roles).await?;
            trimmed += done.trimmed;
            if done.checkpoint.seq >= through_seq || done.trimmed == 0 {
                return Ok(Response::new(pb::TrimAuditResponse {
                    checkpoint_seq: done.checkpoint.seq,
                    checkpoint_hash: done.checkpoint.hash.to_vec(),
                    trimmed,
                    tail_seq: done.tail_seq,
                }));
            }
        }
        Err(Status::internal(format!(
            "the trim through {through_seq} did not finish in {steps} steps"
        )))
    }
}
