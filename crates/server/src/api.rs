//! The public gRPC services: `Licenses` (issue, change, read, verify, import) and `Cluster`
//! (status and membership).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use licstore_model::{
    validate_new_license, validate_status_reason, CheckMode, Date, HolderKind, Identifier, License,
    LicenseStatus, Limits,
};
use licstore_proto::v1 as pb;
use licstore_proto::v1::cluster_server::Cluster;
use licstore_proto::v1::licenses_server::Licenses;
use licstore_store::audit::AUDIT_BATCH_MAX;
use licstore_store::revoked_tokens::FORGET_BATCH_MAX;
use licstore_store::service_items::{self, check_name};
use licstore_store::{Command, CommandResult, ImportItem, Rejection, StoreError, WriteOutcome};
use openraft::type_config::async_runtime::WatchReceiver;
use openraft::{ChangeMembers, ServerState};
use tonic::{Code, Request, Response, Status, Streaming};

use crate::access::Caller;
use crate::audit;
use crate::convert::{self, field_status, model_status, rejection_status, required};
use crate::node::{Consistency, Node};
use crate::{query, watch};

/// How long a leader transfer may take before the caller is told it did not happen.
pub const TRANSFER_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// Records per Raft proposal during an import.
pub const IMPORT_BATCH: usize = 500;
/// Most verifications one `VerifyBatch` call may carry.
pub const MAX_VERIFY_BATCH: usize = 1000;
/// The bound of a bounded-staleness read that names none.
pub const DEFAULT_MAX_STALENESS_MS: u32 = 1000;
/// Largest `Cluster.Probe` payload, in bytes.
pub const MAX_PROBE_BYTES: usize = 64 * 1024;
/// The audit action of `Licenses/Verify`.
const VERIFY_ACTION: &str = "Licenses/Verify";
/// The audit action of each item of `Licenses/VerifyBatch`.
const VERIFY_BATCH_ACTION: &str = "Licenses/VerifyBatch";
/// What an item without a result in an answered batch is recorded with (never expected).
static MISSING_RESULT: std::sync::LazyLock<Status> =
    std::sync::LazyLock::new(|| Status::internal("no result for the item"));
/// Longest stated purpose of a verification, in bytes.
pub const PURPOSE_LEN_MAX: usize = 256;
/// Offset of the plan's time zone (Asia/Shanghai, UTC+8, no daylight saving), in seconds.
const LOCAL_OFFSET_SECS: u64 = 8 * 3600;

/// Today's date in the plan's time zone.
pub fn today() -> Date {
    let now_secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Date::from_unix_secs(now_secs + LOCAL_OFFSET_SECS)
}

/// The license service.
#[derive(Clone)]
pub struct LicenseApi {
    node: Arc<Node>,
}

impl LicenseApi {
    /// Serves `node`.
    pub fn new(node: Arc<Node>) -> Self {
        LicenseApi { node }
    }

    /// The 21-character type code for a code or template key.
    fn type_code(&self, field: &str, code_or_key: &str) -> Result<String, Status> {
        let t = self
            .node
            .templates
            .get(required(field, code_or_key)?.trim())
            .map_err(|_| {
                field_status(
                    Code::InvalidArgument,
                    field,
                    format!("unknown license type {:?}", truncate(code_or_key)),
                )
            })?;
        Ok(t.type_code.clone())
    }

    /// Converts and validates a new license; `prefix` is its path in the request.
    fn checked_license(
        &self,
        p: Option<&pb::NewLicense>,
        prefix: &str,
        mode: CheckMode,
    ) -> Result<(licstore_model::NewLicense, bool), Status> {
        let mut new = convert::new_license(p, prefix)?;
        new.type_code = self.type_code(&format!("{prefix}type_code"), &new.type_code)?;
        new.holder.id = new.holder.id.trim().to_uppercase();
        let checked = validate_new_license(&new, &self.node.templates, mode, today())
            .map_err(|e| model_status(&e, prefix))?;
        Ok((new, checked.holder_check.legacy_checksum))
    }

    /// One verification, answered from one replica.
    async fn verify_one(
        &self,
        caller: &Caller,
        req: &pb::VerifyRequest,
    ) -> Result<pb::VerifyResponse, Status> {
        let consistency = consistency_of(req.consistency, req.max_staleness_ms)?;
        let (kind, id, type_code) = self.verify_item(caller, req)?;
        let item = req.service_item.trim().to_owned();
        let (found, revision) = self
            .read(consistency, ReadCost::Point, move |r| {
                Ok(match registered_for(r, &item, &type_code)? {
                    Err(refusal) => Err(refusal),
                    Ok(()) => Ok(r.get(kind, &id, &type_code)?),
                })
            })
            .await?;
        let found = found.map_err(|r| rejection_status(&r))?;
        // The seal's key record and the disclosure rule come from the same replica: point
        // reads on this task.
        let item = req.service_item.trim();
        verdict_at(&self.node.reader, found, revision, today(), item)
    }

    /// A batch of verifications, answered from one state of one replica.
    async fn verify_many(
        &self,
        caller: &Caller,
        req: &pb::VerifyBatchRequest,
    ) -> Result<pb::VerifyBatchResponse, Status> {
        let consistency = consistency_of(req.consistency, req.max_staleness_ms)?;
        if req.items.len() > MAX_VERIFY_BATCH {
            let reason = format!("{} items; at most {MAX_VERIFY_BATCH}", req.items.len());
            return Err(field_status(Code::InvalidArgument, "items", reason));
        }
        let mut asked = Vec::with_capacity(req.items.len());
        let mut service_items = Vec::with_capacity(req.items.len());
        for (i, item) in req.items.iter().enumerate() {
            // Built only on refusal: valid batches are the hot path.
            let prefix = || format!("items[{i}].");
            if item.consistency != 0 || item.max_staleness_ms != 0 {
                let reason = "set on the batch, not on an item";
                return Err(field_status(
                    Code::InvalidArgument,
                    &format!("{}consistency", prefix()),
                    reason,
                ));
            }
            asked.push(
                self.verify_item(caller, item)
                    .map_err(|s| convert::prefixed(&s, &prefix()))?,
            );
            service_items.push(item.service_item.trim().to_owned());
        }
        let cost = match asked.len() <= POINT_BATCH {
            true => ReadCost::Point,
            false => ReadCost::Walk,
        };
        let today = today();
        let (results, revision) = self
            .read(consistency, cost, move |r| {
                let revision = r.applied_index()?;
                if let Some(refused) = batch_refusal(r, &asked, &service_items)? {
                    return Ok(Err(refused));
                }
                let found = r.get_many(&asked)?;
                Ok(found
                    .into_iter()
                    .zip(&service_items)
                    .map(|(f, item)| verdict_at(r, f, revision, today, item))
                    .collect::<Result<Vec<_>, Status>>())
            })
            .await?;
        Ok(pb::VerifyBatchResponse {
            results: results?,
            read_revision: revision,
        })
    }

    /// The holder and type a verification asks for, checked, with its service item. Whether
    /// the item is registered and accepts the type is for [`registered_for`], on the replica
    /// that answers.
    fn verify_item(
        &self,
        caller: &Caller,
        req: &pb::VerifyRequest,
    ) -> Result<(HolderKind, String, String), Status> {
        let (kind, id) = self.holder(req.holder_kind, &req.holder_id)?;
        let type_code = self.type_code("type_code", &req.type_code)?;
        let item = required("service_item", &req.service_item)?.trim();
        caller.may_verify_for(item)?;
        check_name("purpose", &req.purpose, PURPOSE_LEN_MAX).map_err(|r| rejection_status(&r))?;
        Ok((kind, id, type_code))
    }

    fn holder(&self, kind: i32, id: &str) -> Result<(HolderKind, String), Status> {
        let kind = convert::holder_kind("holder_kind", kind)?;
        let id = required("holder_id", id)?.trim().to_uppercase();
        licstore_model::validate_holder_id(kind, &id, CheckMode::Lenient, today())
            .map_err(|e| field_status(Code::InvalidArgument, "holder_id", strip_field(&e)))?;
        Ok((kind, id))
    }

    async fn read<T: Send + 'static>(
        &self,
        consistency: Consistency,
        cost: ReadCost,
        f: impl FnOnce(&licstore_store::Reader) -> Result<T, licstore_store::StoreError>
            + Send
            + 'static,
    ) -> Result<(T, u64), Status> {
        self.node.read_barrier(consistency).await?;
        let reader = self.node.reader.clone();
        let run = move |r: &licstore_store::Reader| -> Result<(T, u64), StoreError> {
            let revision = r.applied_index()?;
            Ok((f(r)?, revision))
        };
        match cost {
            ReadCost::Point => run(&reader).map_err(|e| Status::internal(e.to_string())),
            ReadCost::Walk => on_reader(reader, run).await,
        }
    }

    /// Whether `caller` may change the license `id` names: the stored version's type and
    /// issuer must be in the caller's scope. The version is read after a linearizable read
    /// barrier, so a lagging replica cannot let a change through; one that does not exist is
    /// NOT_FOUND here.
    async fn may_change(&self, caller: &Caller, id: &Identifier) -> Result<(), Status> {
        if caller.unrestricted {
            return Ok(());
        }
        self.node.read_barrier(Consistency::Linearizable).await?;
        let stored = self
            .node
            .reader
            .get_by_identifier(&id.to_string())
            .map_err(|e| Status::internal(e.to_string()))?
            .ok_or_else(|| field_status(Code::NotFound, "identifier", "no such license"))?;
        match caller.write_refusal(&stored.issuer.code, &stored.type_code) {
            None => Ok(()),
            Some((_, why)) => Err(field_status(Code::PermissionDenied, "identifier", why)),
        }
    }

    async fn write_one(&self, cmd: Command) -> Result<Response<pb::WriteResponse>, Status> {
        let (result, _) = self.node.write(cmd).await?;
        match result {
            CommandResult::Write(Ok(outcome)) => Ok(Response::new(write_response(&outcome))),
            CommandResult::Write(Err(r)) => Err(rejection_status(&r)),
            other => Err(Status::internal(format!("unexpected result {other:?}"))),
        }
    }
}

/// How much a read does. A few point lookups (microseconds from the block cache) run on the
/// request's own task: handing them to the blocking pool would cost more than the lookups.
/// Anything longer runs on the blocking pool, so it cannot hold up other requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReadCost {
    /// At most a few lookups of one holder's keys.
    Point,
    /// Many lookups.
    Walk,
}

/// Verifications a `VerifyBatch` may carry and still be read as [`ReadCost::Point`].
const POINT_BATCH: usize = 8;

/// Runs a RocksDB read off the async workers; storage failures are `INTERNAL`.
async fn on_reader<T, F>(reader: licstore_store::Reader, f: F) -> Result<T, Status>
where
    T: Send + 'static,
    F: FnOnce(&licstore_store::Reader) -> Result<T, licstore_store::StoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(move || f(&reader))
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(|e| Status::internal(e.to_string()))
}

fn strip_field(e: &licstore_model::ModelError) -> String {
    match e {
        licstore_model::ModelError::InvalidField { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}

/// At most 64 characters of a value, for echoing it in an error message.
fn truncate(value: &str) -> String {
    let mut out: String = value.chars().take(64).collect();
    if out.len() < value.len() {
        out.push('…');
    }
    out
}

/// Checks a command received from another node as the public API would have checked it.
pub fn revalidate(
    cmd: &Command,
    templates: &licstore_model::TemplateRegistry,
) -> Result<(), Status> {
    let check_item = |item: &ImportItem| -> Result<(), Status> {
        let mode = if item.legacy_checksum {
            CheckMode::Lenient
        } else {
            CheckMode::Strict
        };
        validate_new_license(&item.license, templates, mode, today())
            .map_err(|e| model_status(&e, "license."))?;
        if let Some(id) = &item.identifier {
            identifier("identifier", id)?;
        }
        validate_status_reason(item.status_reason.as_deref(), &Limits::default())
            .map_err(|e| model_status(&e, ""))
    };
    match cmd {
        Command::Issue(item) => check_item(item),
        Command::Import(items) => items.iter().try_for_each(check_item),
        Command::Amend {
            identifier: id,
            license,
            ..
        } => {
            identifier("identifier", id)?;
            validate_new_license(license, templates, CheckMode::Lenient, today())
                .map(|_| ())
                .map_err(|e| model_status(&e, "license."))
        }
        Command::ChangeStatus {
            identifier: id,
            reason,
            ..
        } => {
            identifier("identifier", id)?;
            validate_status_reason(reason.as_deref(), &Limits::default())
                .map_err(|e| model_status(&e, ""))
        }
        Command::Expire { identifiers, .. } => identifiers
            .iter()
            .try_for_each(|id| identifier("identifiers", id).map(|_| ())),
        Command::Compact { .. } => Ok(()),
        Command::Probe { payload } if payload.len() > MAX_PROBE_BYTES => Err(field_status(
            Code::InvalidArgument,
            "payload",
            format!("{} bytes, at most {MAX_PROBE_BYTES}", payload.len()),
        )),
        Command::Probe { .. } => Ok(()),
        Command::RegisterKey { .. } | Command::RotateKey { .. } | Command::RevokeKey { .. } => {
            crate::sealing::check_key_command(cmd)
        }
        Command::SetDisclosure(rule) => licstore_store::policies::check_rule(templates, rule)
            .map(|_| ())
            .map_err(|r| rejection_status(&r)),
        Command::ImportTrustList {
            trust_file,
            root_key_id,
        } => licstore_store::trust_anchors::open_pinned(trust_file, root_key_id)
            .map(|_| ())
            .map_err(|r| rejection_status(&r)),
        Command::PutPrincipal(p) => licstore_store::principals::check_principal(templates, p)
            .map(|_| ())
            .map_err(|r| crate::access_api::principal_rejection(&r)),
        Command::RemovePrincipal { name } => licstore_store::principals::check_principal_name(name)
            .map(|_| ())
            .map_err(|r| rejection_status(&r)),
        Command::PutServiceItem(item) => {
            licstore_store::service_items::check_service_item(templates, item)
                .map(|_| ())
                .map_err(|r| crate::policies::item_rejection(&r))
        }
        Command::RemoveServiceItem { name } => {
            licstore_store::service_items::check_item_name("name", name)
                .map(|_| ())
                .map_err(|r| rejection_status(&r))
        }
        Command::AppendAudit { events } if events.len() > AUDIT_BATCH_MAX => Err(field_status(
            Code::InvalidArgument,
            "events",
            format!("{} events, at most {AUDIT_BATCH_MAX}", events.len()),
        )),
        Command::AppendAudit { .. } => Ok(()),
        Command::RevokeToken { jti, expires_at_s } => {
            licstore_store::revoked_tokens::check_token_id("jti", jti)
                .map_err(|r| rejection_status(&r))?;
            match expires_at_s {
                0 => Err(field_status(
                    Code::InvalidArgument,
                    "expires_at_s",
                    "required: the token's exp, seconds since the Unix epoch",
                )),
                _ => Ok(()),
            }
        }
        Command::ForgetRevokedTokens { jtis, .. } if jtis.len() > FORGET_BATCH_MAX => {
            Err(field_status(
                Code::InvalidArgument,
                "jtis",
                format!("{} ids, at most {FORGET_BATCH_MAX}", jtis.len()),
            ))
        }
        Command::ForgetRevokedTokens { .. } => Ok(()),
        Command::TrimAudit { through_seq: 0, .. } => Err(field_status(
            Code::InvalidArgument,
            "through_seq",
            "required: the last record to remove",
        )),
        Command::TrimAudit { .. } => Ok(()),
    }
}

pub(crate) fn consistency_of(c: i32, max_staleness_ms: u32) -> Result<Consistency, Status> {
    match pb::Consistency::try_from(c) {
        Ok(pb::Consistency::Unspecified | pb::Consistency::Linearizable) => {
            Ok(Consistency::Linearizable)
        }
        Ok(pb::Consistency::Serializable) => Ok(Consistency::Serializable),
        Ok(pb::Consistency::BoundedStaleness) => {
            let ms = match max_staleness_ms {
                0 => DEFAULT_MAX_STALENESS_MS,
                ms => ms,
            };
            Ok(Consistency::BoundedStaleness(Duration::from_millis(
                ms.into(),
            )))
        }
        Err(_) => Err(field_status(
            Code::InvalidArgument,
            "consistency",
            format!("unknown value {c}"),
        )),
    }
}

fn write_response(o: &WriteOutcome) -> pb::WriteResponse {
    pb::WriteResponse {
        license: Some(convert::license_to_pb(&o.license)),
        revision: o.revision,
        duplicate: o.duplicate,
    }
}

/// True for the state machine's refusal of an unsealed write by a sealing authority.
fn refused_unsealed(status: &Status) -> bool {
    status.code() == Code::FailedPrecondition
        && status
            .metadata()
            .get(convert::FIELD_METADATA_KEY)
            .is_some_and(|f| f == "seal")
}

fn request_id(given: &str) -> Result<String, Status> {
    if given.len() > 128 {
        return Err(field_status(
            Code::InvalidArgument,
            "request_id",
            "longer than 128 bytes",
        ));
    }
    Ok(if given.is_empty() {
        licstore_client::new_request_id()
    } else {
        given.to_string()
    })
}

fn identifier(field: &str, s: &str) -> Result<Identifier, Status> {
    Identifier::parse(required(field, s)?.trim())
        .map_err(|e| field_status(Code::InvalidArgument, field, strip_field(&e)))
}

/// Verdict of a verification from the effective status.
fn verdict(status: LicenseStatus) -> pb::Verdict {
    match status {
        LicenseStatus::Valid => pb::Verdict::Valid,
        LicenseStatus::Suspended => pb::Verdict::Suspended,
        LicenseStatus::Revoked | LicenseStatus::RevokedAsPenalty => pb::Verdict::Revoked,
        LicenseStatus::Expired => pb::Verdict::Expired,
        _ => pb::Verdict::NotValid,
    }
}

/// Among several instances, the one that decides the verdict: a valid one first.
fn best_instance(licenses: Vec<License>, today: Date) -> Option<License> {
    let rank = |l: &License| match l.effective_status(today) {
        LicenseStatus::Valid => 0,
        LicenseStatus::Suspended => 1,
        _ => 2,
    };
    licenses.into_iter().min_by_key(rank)
}

/// The license calls the audit trail records, as served before their record is made.
impl LicenseApi {
    async fn issue_inner(
        &self,
        req: Request<pb::IssueRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        let caller = Caller::of(&req)?;
        let req = req.into_inner();
        let mode = if req.lenient_holder_check {
            CheckMode::Lenient
        } else {
            CheckMode::Strict
        };
        let (license, legacy) = self.checked_license(req.license.as_ref(), "license.", mode)?;
        caller.may_write("license.", &license.issuer.code, &license.type_code)?;
        let mut item = ImportItem {
            request_id: request_id(&req.request_id)?,
            identifier: None,
            license,
            legacy_checksum: legacy,
            status: LicenseStatus::Valid,
            status_reason: None,
            seal: Vec::new(),
            serial_derived: false,
        };
        self.node.seal_issue(&mut item, req.seal_bundle)?;
        let unsealed = item.seal.is_empty();
        match self.write_one(Command::Issue(item.clone())).await {
            Err(s) if unsealed && refused_unsealed(&s) => {
                // This replica had not applied the issuer's key registration yet.
                self.node.read_barrier(Consistency::Linearizable).await?;
                self.node.seal_issue(&mut item, Vec::new())?;
                self.write_one(Command::Issue(item)).await
            }
            other => other,
        }
    }

    async fn amend_inner(
        &self,
        req: Request<pb::AmendRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        let caller = Caller::of(&req)?;
        let req = req.into_inner();
        let id = identifier("identifier", &req.identifier)?;
        let (license, _) =
            self.checked_license(req.license.as_ref(), "license.", CheckMode::Lenient)?;
        self.may_change(&caller, &id).await?;
        caller.may_write("license.", &license.issuer.code, &license.type_code)?;
        let identifier = id.to_string();
        let seal = self
            .node
            .seal_amend(&identifier, &license, req.seal_bundle)?;
        let unsealed = seal.is_empty();
        let mut cmd = Command::Amend {
            request_id: request_id(&req.request_id)?,
            identifier: identifier.clone(),
            license: license.clone(),
            seal,
        };
        match self.write_one(cmd.clone()).await {
            Err(s) if unsealed && refused_unsealed(&s) => {
                self.node.read_barrier(Consistency::Linearizable).await?;
                let fresh = self.node.seal_amend(&identifier, &license, Vec::new())?;
                if let Command::Amend { seal, .. } = &mut cmd {
                    *seal = fresh;
                }
                self.write_one(cmd).await
            }
            other => other,
        }
    }

    async fn change_status_inner(
        &self,
        req: Request<pb::ChangeStatusRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        let caller = Caller::of(&req)?;
        let req = req.into_inner();
        let id = identifier("identifier", &req.identifier)?;
        self.may_change(&caller, &id).await?;
        let op = convert::status_op(req.op)?;
        let reason = (!req.reason.trim().is_empty()).then(|| req.reason.trim().to_string());
        validate_status_reason(reason.as_deref(), &Limits::default())
            .map_err(|e| model_status(&e, ""))?;
        if op == licstore_model::StatusOp::Other && reason.is_none() {
            return Err(field_status(
                Code::InvalidArgument,
                "reason",
                "required with STATUS_OP_OTHER",
            ));
        }
        let cmd = Command::ChangeStatus {
            request_id: request_id(&req.request_id)?,
            identifier: id.to_string(),
            op,
            reason,
        };
        self.write_one(cmd).await
    }

    async fn get_inner(
        &self,
        req: Request<pb::GetRequest>,
    ) -> Result<Response<pb::GetResponse>, Status> {
        let req = req.into_inner();
        let (kind, id) = self.holder(req.holder_kind, &req.holder_id)?;
        let type_code = self.type_code("type_code", &req.type_code)?;
        let (found, revision) = self
            .read(
                consistency_of(req.consistency, req.max_staleness_ms)?,
                ReadCost::Point,
                move |r| r.get(kind, &id, &type_code),
            )
            .await?;
        let license = best_instance(found, today()).ok_or_else(|| {
            field_status(Code::NotFound, "holder_id", "holds no license of this type")
        })?;
        Ok(Response::new(pb::GetResponse {
            license: Some(convert::license_to_pb(&license)),
            read_revision: revision,
        }))
    }

    async fn get_by_identifier_inner(
        &self,
        req: Request<pb::GetByIdentifierRequest>,
    ) -> Result<Response<pb::GetResponse>, Status> {
        let req = req.into_inner();
        let id = identifier("identifier", &req.identifier)?.to_string();
        let (found, revision) = self
            .read(
                consistency_of(req.consistency, req.max_staleness_ms)?,
                ReadCost::Point,
                move |r| r.get_by_identifier(&id),
            )
            .await?;
        let license =
            found.ok_or_else(|| field_status(Code::NotFound, "identifier", "no such license"))?;
        Ok(Response::new(pb::GetResponse {
            license: Some(convert::license_to_pb(&license)),
            read_revision: revision,
        }))
    }

    async fn list_by_holder_inner(
        &self,
        req: Request<pb::ListByHolderRequest>,
    ) -> Result<Response<pb::ListByHolderResponse>, Status> {
        let req = req.into_inner();
        let (kind, id) = self.holder(req.holder_kind, &req.holder_id)?;
        let (found, revision) = self
            .read(
                consistency_of(req.consistency, req.max_staleness_ms)?,
                ReadCost::Point,
                move |r| r.list_by_holder(kind, &id),
            )
            .await?;
        let licenses = found.iter().map(convert::license_to_pb).collect();
        Ok(Response::new(pb::ListByHolderResponse {
            licenses,
            read_revision: revision,
        }))
    }

    /// An import stream, counted into `summary` as it goes, so a failed import still tells
    /// what it wrote.
    async fn import_inner(
        &self,
        req: Request<Streaming<pb::ImportRecord>>,
        summary: &mut pb::ImportSummary,
    ) -> Result<(), Status> {
        let caller = Caller::of(&req)?;
        let mut stream = req.into_inner();
        let mut batch: Vec<(u64, ImportItem)> = Vec::with_capacity(IMPORT_BATCH);
        let max_request_bytes = self.node.limits.settings().max_request_bytes;
        while let Some(record) = stream.next().await {
            let record =
                record.map_err(|s| crate::limits::oversize(&s, max_request_bytes).unwrap_or(s))?;
            let index = summary.received;
            summary.received += 1;
            let item = self
                .import_item(&record)
                .and_then(|item| may_import(&caller, item));
            match item {
                Ok(item) => batch.push((index, item)),
                Err(status) => reject(summary, index, &record.request_id, &status),
            }
            if batch.len() >= IMPORT_BATCH {
                self.flush_import(&mut batch, summary).await?;
            }
        }
        self.flush_import(&mut batch, summary).await
    }
}

/// What becomes of a listing's pinned state once its page's audit records are durable, or
/// could not be made so: a page answered keeps the pin for the next page and drops a finished
/// listing's; a page refused drops the pin it made, and keeps the one a retry reads again.
#[derive(Clone, Copy, Debug, Default)]
struct PinFate {
    /// The pin this first page made, for the pages after it.
    made: Option<u64>,
    /// The pin of a listing this page finished.
    finished: Option<u64>,
}

impl PinFate {
    fn settle(self, pins: &query::Pins, answered: bool) {
        let drop = match answered {
            true => self.finished,
            false => self.made,
        };
        if let Some(id) = drop {
            pins.remove(id);
        }
    }
}

impl LicenseApi {
    /// One page of a query: the licenses matching `req` from the state its first page pinned,
    /// and what to do with that pin once the page is recorded.
    async fn query_page(
        &self,
        req: &pb::QueryRequest,
    ) -> Result<(pb::QueryResponse, PinFate), Status> {
        let q = query::to_query(&self.node, req)?;
        let plan = query::plan_of(&q)?;
        let page_size = query::page_size(req)?;
        let cursor = query::decode_cursor(&req.cursor, &plan, self.node.id)?;
        consistency_of(req.consistency, 0)?;
        let now = std::time::Instant::now();
        let (pin, pin_id, after) = match cursor {
            // Later pages read the state the first one pinned; it already passed the barrier.
            Some(c) => match self.node.pins.get(c.pin, now) {
                Some(pin) => (pin, Some(c.pin), Some(c.key)),
                None => return Err(query::expired_cursor()),
            },
            None => {
                self.node
                    .read_barrier(consistency_of(req.consistency, 0)?)
                    .await?;
                let pin = on_reader(self.node.reader.clone(), |r| r.pin()).await?;
                (Arc::new(pin), None, None)
            }
        };
        let (p, walked) = (plan.clone(), pin.clone());
        let page = tokio::task::spawn_blocking(move || {
            licstore_store::query::run(&walked, &q, &p, after.as_deref(), page_size)
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(|e| Status::internal(e.to_string()))?;
        let mut fate = PinFate::default();
        let next_cursor = match (page.next_cursor, pin_id) {
            (Some(key), id) => query::encode_cursor(&query::Cursor {
                node_id: self.node.id,
                pin: id.unwrap_or_else(|| {
                    let made = self.node.pins.insert(pin, now);
                    fate.made = Some(made);
                    made
                }),
                key,
            }),
            (None, id) => {
                fate.finished = id;
                String::new()
            }
        };
        let response = pb::QueryResponse {
            licenses: page.licenses.iter().map(convert::license_to_pb).collect(),
            count: page.count,
            next_cursor,
            plan: Some(query::plan_to_pb(&plan, page.scanned)),
            read_revision: page.applied_index,
        };
        Ok((response, fate))
    }
}

#[tonic::async_trait]
impl Licenses for LicenseApi {
    async fn issue(
        &self,
        req: Request<pb::IssueRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        let caller = Caller::of(&req)?;
        let asked = audit::Asked::license(req.get_ref().license.as_ref());
        let api = self.clone();
        // On a task of its own: a client that gives up mid-call cannot leave a served call
        // without its record.
        audit::detached(async move {
            let answer = api.issue_inner(req).await;
            let answered = written(&answer);
            audit::record_license_call(&api.node, &caller, "Licenses/Issue", &asked, answered)
                .await?;
            answer
        })
        .await
    }

    async fn amend(
        &self,
        req: Request<pb::AmendRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        let caller = Caller::of(&req)?;
        let mut asked = audit::Asked::license(req.get_ref().license.as_ref());
        asked.identifier = req.get_ref().identifier.clone();
        let api = self.clone();
        // On a task of its own: a client that gives up mid-call cannot leave a served call
        // without its record.
        audit::detached(async move {
            let answer = api.amend_inner(req).await;
            let answered = written(&answer);
            audit::record_license_call(&api.node, &caller, "Licenses/Amend", &asked, answered)
                .await?;
            answer
        })
        .await
    }

    async fn change_status(
        &self,
        req: Request<pb::ChangeStatusRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        let caller = Caller::of(&req)?;
        let asked = audit::Asked::identifier(&req.get_ref().identifier);
        let api = self.clone();
        // On a task of its own: a client that gives up mid-call cannot leave a served call
        // without its record.
        audit::detached(async move {
            let answer = api.change_status_inner(req).await;
            let action = "Licenses/ChangeStatus";
            audit::record_license_call(&api.node, &caller, action, &asked, written(&answer))
                .await?;
            answer
        })
        .await
    }

    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::GetResponse>, Status> {
        let caller = Caller::of(&req)?;
        let r = req.get_ref();
        let asked = audit::Asked {
            holder_kind: r.holder_kind,
            holder_id: r.holder_id.clone(),
            type_code: r.type_code.clone(),
            identifier: String::new(),
        };
        let api = self.clone();
        // On a task of its own: a client that gives up mid-call cannot leave a served call
        // without its record.
        audit::detached(async move {
            let answer = api.get_inner(req).await;
            let action = "Licenses/Get";
            audit::record_license_call(&api.node, &caller, action, &asked, got(&answer)).await?;
            answer
        })
        .await
    }

    async fn get_by_identifier(
        &self,
        req: Request<pb::GetByIdentifierRequest>,
    ) -> Result<Response<pb::GetResponse>, Status> {
        let caller = Caller::of(&req)?;
        let asked = audit::Asked::identifier(&req.get_ref().identifier);
        let api = self.clone();
        // On a task of its own: a client that gives up mid-call cannot leave a served call
        // without its record.
        audit::detached(async move {
            let answer = api.get_by_identifier_inner(req).await;
            let action = "Licenses/GetByIdentifier";
            audit::record_license_call(&api.node, &caller, action, &asked, got(&answer)).await?;
            answer
        })
        .await
    }

    async fn list_by_holder(
        &self,
        req: Request<pb::ListByHolderRequest>,
    ) -> Result<Response<pb::ListByHolderResponse>, Status> {
        let caller = Caller::of(&req)?;
        let asked = audit::Asked {
            holder_kind: req.get_ref().holder_kind,
            holder_id: req.get_ref().holder_id.clone(),
            ..Default::default()
        };
        let api = self.clone();
        // On a task of its own: a client that gives up mid-call cannot leave a served call
        // without its record.
        audit::detached(async move {
            let answer = api.list_by_holder_inner(req).await;
            let answered = match &answer {
                Ok(r) => {
                    let r = r.get_ref();
                    Ok((r.licenses.first(), r.licenses.len(), r.read_revision))
                }
                Err(status) => Err(status),
            };
            let action = "Licenses/ListByHolder";
            audit::record_license_call(&api.node, &caller, action, &asked, answered).await?;
            answer
        })
        .await
    }

    async fn verify(
        &self,
        req: Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::VerifyResponse>, Status> {
        let caller = Caller::of(&req)?;
        let req = req.into_inner();
        let api = self.clone();
        // On a task of its own: a client that gives up mid-call cannot leave a served call
        // without its record.
        audit::detached(async move {
            let answer = api.verify_one(&caller, &req).await;
            let event = audit::verify_event(&caller, VERIFY_ACTION, &req, answer.as_ref());
            // Answered only once its audit record is durable on this node.
            api.node.audit.record(vec![event]).await?;
            answer.map(Response::new)
        })
        .await
    }

    async fn verify_batch(
        &self,
        req: Request<pb::VerifyBatchRequest>,
    ) -> Result<Response<pb::VerifyBatchResponse>, Status> {
        let caller = Caller::of(&req)?;
        // The access layer took one token for the call; each further item costs one more.
        let items = req.get_ref().items.len();
        if let Some(key) = req.extensions().get::<crate::limits::LimitKey>() {
            let more = items.min(MAX_VERIFY_BATCH).saturating_sub(1);
            self.node
                .limits
                .charge(&key.0, u32::try_from(more).unwrap_or(u32::MAX))?;
        }
        // A batch refused for its size is one record, not one per item.
        let recorded = if items > MAX_VERIFY_BATCH { 1 } else { items };
        let req = req.into_inner();
        let api = self.clone();
        // On a task of its own: a client that gives up mid-call cannot leave a served call
        // without its record.
        audit::detached(async move {
            let answer = api.verify_many(&caller, &req).await;
            // One record per item; a refused batch records its refusal for every item.
            let events = req
                .items
                .iter()
                .take(recorded)
                .enumerate()
                .map(|(i, item)| {
                    let result = match &answer {
                        Ok(r) => r.results.get(i).ok_or(&*MISSING_RESULT),
                        Err(status) => Err(status),
                    };
                    audit::verify_event(&caller, VERIFY_BATCH_ACTION, item, result)
                })
                .collect();
            api.node.audit.record(events).await?;
            answer.map(Response::new)
        })
        .await
    }

    async fn query(
        &self,
        req: Request<pb::QueryRequest>,
    ) -> Result<Response<pb::QueryResponse>, Status> {
        let caller = Caller::of(&req)?;
        let req = req.into_inner();
        let api = self.clone();
        // On a task of its own: a client that gives up mid-call cannot leave a served page
        // without its records.
        audit::detached(async move {
            let (answer, fate) = match api.query_page(&req).await {
                Ok((page, fate)) => (Ok(page), fate),
                Err(status) => (Err(status), PinFate::default()),
            };
            let events = audit::query_events(&caller, &req, answer.as_ref());
            let recorded = api.node.audit.record(events).await;
            fate.settle(&api.node.pins, recorded.is_ok());
            recorded?;
            answer.map(Response::new)
        })
        .await
    }

    type WatchStream = watch::WatchStream;

    async fn watch(
        &self,
        req: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let caller = Caller::of(&req)?;
        let req = req.into_inner();
        let api = self.clone();
        // One record per stream, made durable before its first event is sent.
        audit::detached(async move {
            let answer = watch::watch(api.node.clone(), req.clone()).await;
            let events = audit::watch_events(&caller, &req, answer.as_ref().map(|_| ()));
            api.node.audit.record(events).await?;
            answer.map(Response::new)
        })
        .await
    }

    async fn import(
        &self,
        req: Request<Streaming<pb::ImportRecord>>,
    ) -> Result<Response<pb::ImportSummary>, Status> {
        let caller = Caller::of(&req)?;
        let api = self.clone();
        // On a task of its own: a client that gives up mid-call cannot leave a served call
        // without its record.
        audit::detached(async move {
            let mut summary = pb::ImportSummary::default();
            let answer = api.import_inner(req, &mut summary).await;
            // One record per import, with what it wrote even when it failed part way: the change
            // feed names each license.
            let mut event = audit::event(&caller, "Licenses/Import");
            let s = &summary;
            event.revision = s.last_revision;
            event.detail = format!(
                "{} received, {} imported, {} duplicates, {} rejected",
                s.received, s.imported, s.duplicates, s.rejected
            );
            match &answer {
                Ok(()) => event.outcome = "ok".into(),
                Err(status) => {
                    event.outcome = audit::code_outcome(status);
                    event.detail =
                        audit::bounded(&format!("{}; {}", event.detail, status.message()));
                }
            }
            api.node.audit.record(vec![event]).await?;
            answer.map(|()| Response::new(summary))
        })
        .await
    }
}

/// The verdict on the licenses a verification found, with the seal's from the registry of
/// the same replica and the fields `service_item` is entitled to see.
fn verdict_at(
    reader: &licstore_store::Reader,
    found: Vec<License>,
    read_revision: u64,
    today: Date,
    service_item: &str,
) -> Result<pb::VerifyResponse, Status> {
    let Some(license) = best_instance(found, today) else {
        return Ok(pb::VerifyResponse {
            verdict: pb::Verdict::NotFound as i32,
            read_revision,
            ..Default::default()
        });
    };
    let status = license.effective_status(today);
    let fields = disclosed_fields(reader, &license, service_item)?;
    // The identifier and the digest each single out one version of one license: they go only
    // to a service item whose rule discloses the identifier.
    let named = fields.contains_key(IDENTIFIER_FIELD);
    Ok(pb::VerifyResponse {
        valid: status == LicenseStatus::Valid,
        verdict: verdict(status) as i32,
        status: convert::status_to_pb(status) as i32,
        identifier: match named {
            true => license.identifier.clone(),
            false => String::new(),
        },
        revision: license.revision,
        digest: match named {
            true => convert::hex(&license.digest),
            false => String::new(),
        },
        read_revision,
        seal: crate::sealing::seal_verdict(&license, reader)? as i32,
        fields,
    })
}

/// A write's answer as the audit trail sees it.
fn written(answer: &Result<Response<pb::WriteResponse>, Status>) -> audit::Answered<'_> {
    match answer {
        Ok(r) => Ok((r.get_ref().license.as_ref(), 1, r.get_ref().revision)),
        Err(status) => Err(status),
    }
}

/// A read's answer as the audit trail sees it.
fn got(answer: &Result<Response<pb::GetResponse>, Status>) -> audit::Answered<'_> {
    match answer {
        Ok(r) => Ok((r.get_ref().license.as_ref(), 1, r.get_ref().read_revision)),
        Err(status) => Err(status),
    }
}

/// Whether service item `item` is registered and accepts `type_code`, on this replica: the
/// inner error is the refusal.
fn registered_for(
    reader: &licstore_store::Reader,
    item: &str,
    type_code: &str,
) -> Result<Result<(), Rejection>, StoreError> {
    let stored = reader.service_item(item)?;
    Ok(
        match service_items::refusal(stored.as_ref(), item, type_code) {
            Some(refusal) => Err(refusal),
            None => Ok(()),
        },
    )
}

/// The refusal of the first batch item whose service item is not registered or does not
/// accept its type, named under `items[i].`; each distinct item is read once.
fn batch_refusal(
    reader: &licstore_store::Reader,
    asked: &[(HolderKind, String, String)],
    service_items: &[String],
) -> Result<Option<Status>, StoreError> {
    let mut stored: HashMap<&str, Option<licstore_store::ServiceItem>> = HashMap::new();
    for (i, ((_, _, type_code), item)) in asked.iter().zip(service_items).enumerate() {
        if !stored.contains_key(item.as_str()) {
            stored.insert(item.as_str(), reader.service_item(item)?);
        }
        let registered = &stored[item.as_str()];
        if let Some(refusal) = service_items::refusal(registered.as_ref(), item, type_code) {
            let status = rejection_status(&refusal);
            return Ok(Some(convert::prefixed(&status, &format!("items[{i}]."))));
        }
    }
    Ok(None)
}

/// The disclosure name of a license's identifier; a rule naming it also discloses the digest.
const IDENTIFIER_FIELD: &str = "@identifier";

/// The fields of `license` the rule for (`service_item`, its type) lists; none without one.
fn disclosed_fields(
    reader: &licstore_store::Reader,
    license: &License,
    service_item: &str,
) -> Result<std::collections::HashMap<String, String>, Status> {
    let names = reader
        .disclosure_fields(service_item, &license.type_code)
        .map_err(|e| Status::internal(e.to_string()))?;
    if names.is_empty() {
        return Ok(Default::default());
    }
    let mut all = license.disclosable_fields();
    Ok(names
        .into_iter()
        .filter_map(|name| all.remove_entry(&name))
        .collect())
}

/// Whether `caller` may import `item`: the license's issuer and type, and the issuer segment
/// of an identifier it brings, must all be in the caller's scope.
fn may_import(caller: &Caller, item: ImportItem) -> Result<ImportItem, Status> {
    let l = &item.license;
    caller.may_write("license.", &l.issuer.code, &l.type_code)?;
    if let Some(given) = &item.identifier {
        let id = identifier("identifier", given)?;
        if let Some((_, why)) = caller.write_refusal(id.issuer_code(), id.type_code()) {
            return Err(field_status(Code::PermissionDenied, "identifier", why));
        }
    }
    Ok(item)
}

fn reject(summary: &mut pb::ImportSummary, index: u64, request_id: &str, status: &Status) {
    let field = status
        .metadata()
        .get(convert::FIELD_METADATA_KEY)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    summary.rejected += 1;
    summary.rejections.push(pb::ImportRejection {
        index,
        request_id: request_id.to_string(),
        field,
        reason: status.message().to_string(),
    });
}

impl LicenseApi {
    fn import_item(&self, record: &pb::ImportRecord) -> Result<ImportItem, Status> {
        let mode = if record.lenient_holder_check {
            CheckMode::Lenient
        } else {
            CheckMode::Strict
        };
        let (license, legacy) = self.checked_license(record.license.as_ref(), "license.", mode)?;
        let given = if record.identifier.trim().is_empty() {
            None
        } else {
            let id = identifier("identifier", &record.identifier)?;
            if id.type_code() != license.type_code {
                return Err(field_status(
                    Code::InvalidArgument,
                    "identifier",
                    "type segment differs from license.type_code",
                ));
            }
            Some(id.to_string())
        };
        let status = convert::status_from_pb("status", record.status)?;
        let reason = (!record.status_reason.is_empty()).then(|| record.status_reason.clone());
        validate_status_reason(reason.as_deref(), &Limits::default())
            .map_err(|e| model_status(&e, ""))?;
        let request_id = match (&given, record.request_id.is_empty()) {
            (_, false) => request_id(&record.request_id)?,
            (Some(id), true) => format!("import:{id}"),
            (None, true) => content_key(&license),
        };
        Ok(ImportItem {
            request_id,
            identifier: given,
            license,
            legacy_checksum: legacy,
            status,
            status_reason: reason,
            seal: record.seal_bundle.clone(),
            serial_derived: false,
        })
    }

    /// Seals the batch's items ([`Node::seal_import`]) on the blocking pool: signing and
    /// checking 500 seals takes tens of milliseconds. Each item comes back with its outcome.
    async fn seal_batch(&self, items: Vec<ImportItem>) -> Result<Vec<Sealed>, Status> {
        let node = Arc::clone(&self.node);
        tokio::task::spawn_blocking(move || {
            let seal = |mut item: ImportItem| {
                let outcome = node.seal_import(&mut item);
                (item, outcome)
            };
            items.into_iter().map(seal).collect()
        })
        .await
        .map_err(|e| Status::internal(format!("sealing task: {e}")))
    }

    /// Proposes the items as one import; one result per item, in order.
    async fn import_once(
        &self,
        items: Vec<ImportItem>,
        summary: &mut pb::ImportSummary,
    ) -> Result<Vec<Result<WriteOutcome, Status>>, Status> {
        let (result, revision) = self.node.write(Command::Import(items)).await?;
        let CommandResult::Import(results) = result else {
            return Err(Status::internal("import produced no per-item results"));
        };
        summary.last_revision = revision;
        Ok(results
            .into_iter()
            .map(|r| r.map_err(|r| rejection_status(&r)))
            .collect())
    }

    async fn flush_import(
        &self,
        batch: &mut Vec<(u64, ImportItem)>,
        summary: &mut pb::ImportSummary,
    ) -> Result<(), Status> {
        if batch.is_empty() {
            return Ok(());
        }
        let (indexes, items): (Vec<u64>, Vec<ImportItem>) =
            std::mem::take(batch).into_iter().unzip();
        let mut ready = Vec::with_capacity(items.len());
        for (index, (item, sealed)) in indexes.into_iter().zip(self.seal_batch(items).await?) {
            match sealed {
                Ok(()) => ready.push((index, item)),
                Err(status) => reject(summary, index, &item.request_id, &status),
            }
        }
        if ready.is_empty() {
            return Ok(());
        }
        let unsealed: Vec<bool> = ready.iter().map(|(_, i)| i.seal.is_empty()).collect();
        let items = ready.iter().map(|(_, i)| i.clone()).collect();
        let mut results = self.import_once(items, summary).await?;
        let again: Vec<usize> = (0..results.len())
            .filter(|&i| unsealed[i] && results[i].as_ref().is_err_and(refused_unsealed))
            .collect();
        if !again.is_empty() {
            self.import_resealed(&again, &ready, &mut results, summary)
                .await?;
        }
        for ((index, item), result) in ready.into_iter().zip(results) {
            match result {
                Ok(o) if o.duplicate => summary.duplicates += 1,
                Ok(_) => summary.imported += 1,
                Err(status) => reject(summary, index, &item.request_id, &status),
            }
        }
        Ok(())
    }
}

impl LicenseApi {
    /// Items `again` of `ready` were refused on apply for lacking a seal: this replica had not
    /// applied their issuer's key registration when it sealed the batch. After a read barrier,
    /// the ones it can now seal are proposed again; the others keep their refusal.
    async fn import_resealed(
        &self,
        again: &[usize],
        ready: &[(u64, ImportItem)],
        results: &mut [Result<WriteOutcome, Status>],
        summary: &mut pb::ImportSummary,
    ) -> Result<(), Status> {
        self.node.read_barrier(Consistency::Linearizable).await?;
        let items = again.iter().map(|&i| ready[i].1.clone()).collect();
        let mut resealed = Vec::with_capacity(again.len());
        for (&i, (item, sealed)) in again.iter().zip(self.seal_batch(items).await?) {
            match sealed {
                Ok(()) if !item.seal.is_empty() => resealed.push((i, item)),
                Ok(()) => {}
                Err(status) => results[i] = Err(status),
            }
        }
        if resealed.is_empty() {
            return Ok(());
        }
        let (positions, items): (Vec<usize>, Vec<ImportItem>) = resealed.into_iter().unzip();
        // A failed proposal fails the stream, as the first one does: the client sends the
        // chunk again, and the items already applied come back as duplicates.
        let retried = self.import_once(items, summary).await?;
        for (i, result) in positions.into_iter().zip(retried) {
            results[i] = result;
        }
        Ok(())
    }
}

/// An item and how sealing it went.
type Sealed = (ImportItem, Result<(), Status>);

/// An idempotency key for an import record that has neither request id nor identifier.
fn content_key(l: &licstore_model::NewLicense) -> String {
    let mut h = blake3::Hasher::new();
    for part in [
        l.type_code.as_str(),
        l.holder.kind.as_code(),
        &l.holder.id,
        &l.license_number,
        &l.issuer.code,
    ] {
        h.update(part.as_bytes());
        h.update(&[0]);
    }
    format!("import:{}", &h.finalize().to_hex()[..32])
}

/// The cluster service.
pub struct ClusterApi {
    node: Arc<Node>,
}

impl ClusterApi {
    /// Serves `node`.
    pub fn new(node: Arc<Node>) -> Self {
        ClusterApi { node }
    }

    fn members(&self) -> pb::MemberListResponse {
        let m = self.node.raft.metrics().borrow_watched().clone();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let members = membership
            .nodes()
            .map(|(id, n)| pb::Member {
                node_id: *id,
                addr: n.addr.clone(),
                voter: voters.contains(id),
            })
            .collect();
        pb::MemberListResponse {
            members,
            leader_id: m.current_leader.unwrap_or(0),
        }
    }

    /// Waits for the one whole-state walk allowed at a time.
    async fn walk_permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>, Status> {
        self.node
            .walks
            .acquire()
            .await
            .map_err(|_| Status::unavailable("node stopping"))
    }

    fn membership_error(
        &self,
        e: impl std::fmt::Display + std::fmt::Debug,
        forward: bool,
    ) -> Status {
        if forward {
            self.node.unavailable("not the leader")
        } else {
            Status::failed_precondition(e.to_string())
        }
    }
}

fn role(state: ServerState) -> &'static str {
    match state {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    }
}

#[tonic::async_trait]
impl Cluster for ClusterApi {
    async fn status(
        &self,
        _req: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let m = self.node.raft.metrics().borrow_watched().clone();
        let node = pb::NodeStatus {
            node_id: self.node.id,
            addr: self.node.addr.clone(),
            role: role(m.state).to_string(),
            term: m.current_term,
            leader_id: m.current_leader.unwrap_or(0),
            has_leader: crate::health::leader_confirmed(
                &m,
                crate::health::leader_lease(&self.node),
                self.node.leader_contact.age(),
            ),
            last_log_index: m.last_log_index.unwrap_or(0),
            applied_index: m.last_applied.as_ref().map(|l| l.index()).unwrap_or(0),
            snapshot_index: m.snapshot.as_ref().map(|l| l.index()).unwrap_or(0),
            purged_index: m.purged.as_ref().map(|l| l.index()).unwrap_or(0),
            compacted_revision: on_reader(self.node.reader.clone(), |r| r.compacted_revision())
                .await?,
            leader_silence_ms: crate::health::leader_silence(&m, self.node.leader_contact.age())
                .map(|d| d.as_millis() as u64),
        };
        let replication: BTreeMap<u64, u64> = m
            .replication
            .as_ref()
            .map(|r| {
                r.iter()
                    .map(|(id, l)| (*id, l.as_ref().map(|l| l.index()).unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Response::new(pb::StatusResponse {
            node: Some(node),
            replication: replication.into_iter().collect(),
        }))
    }

    async fn member_list(
        &self,
        _req: Request<pb::MemberListRequest>,
    ) -> Result<Response<pb::MemberListResponse>, Status> {
        Ok(Response::new(self.members()))
    }

    async fn add_learner(
        &self,
        req: Request<pb::AddLearnerRequest>,
    ) -> Result<Response<pb::MemberListResponse>, Status> {
        let req = req.into_inner();
        if req.node_id == 0 {
            return Err(field_status(
                Code::InvalidArgument,
                "node_id",
                "must be positive",
            ));
        }
        let addr = required("addr", &req.addr)?;
        if addr.parse::<std::net::SocketAddr>().is_err() {
            return Err(field_status(
                Code::InvalidArgument,
                "addr",
                "must be host:port with an IP host",
            ));
        }
        let current = self.members();
        if let Some(m) = current.members.iter().find(|m| m.node_id == req.node_id) {
            let msg = format!("node {} is already a member at {}", m.node_id, m.addr);
            return Err(field_status(Code::AlreadyExists, "node_id", msg));
        }
        if let Some(m) = current.members.iter().find(|m| m.addr == addr) {
            let msg = format!("address already used by node {}", m.node_id);
            return Err(field_status(Code::AlreadyExists, "addr", msg));
        }
        let node = licstore_store::Node {
            addr: addr.to_string(),
        };
        if let Err(e) = self
            .node
            .raft
            .add_learner(req.node_id, node, req.blocking)
            .await
        {
            return Err(self.membership_error(&e, e.forward_to_leader().is_some()));
        }
        Ok(Response::new(self.members()))
    }

    async fn promote(
        &self,
        req: Request<pb::PromoteRequest>,
    ) -> Result<Response<pb::MemberListResponse>, Status> {
        let id = req.into_inner().node_id;
        let member = self.members().members.into_iter().find(|m| m.node_id == id);
        match member {
            None => {
                return Err(field_status(
                    Code::NotFound,
                    "node_id",
                    format!("no member {id}"),
                ))
            }
            Some(m) if m.voter => {
                let msg = format!("node {id} is already a voter");
                return Err(field_status(Code::FailedPrecondition, "node_id", msg));
            }
            Some(_) => {}
        }
        let change = ChangeMembers::AddVoterIds(BTreeSet::from([id]));
        if let Err(e) = self.node.raft.change_membership(change, false).await {
            return Err(self.membership_error(&e, e.forward_to_leader().is_some()));
        }
        Ok(Response::new(self.members()))
    }

    async fn remove_member(
        &self,
        req: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::MemberListResponse>, Status> {
        let id = req.into_inner().node_id;
        if !self.members().members.iter().any(|m| m.node_id == id) {
            return Err(field_status(
                Code::NotFound,
                "node_id",
                format!("no member {id}"),
            ));
        }
        let is_voter = self.node.raft.voter_ids().any(|v| v == id);
        let change = if is_voter {
            ChangeMembers::RemoveVoters(BTreeSet::from([id]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        };
        if let Err(e) = self.node.raft.change_membership(change, false).await {
            return Err(self.membership_error(&e, e.forward_to_leader().is_some()));
        }
        Ok(Response::new(self.members()))
    }

    async fn check(
        &self,
        _req: Request<pb::CheckRequest>,
    ) -> Result<Response<pb::CheckResponse>, Status> {
        let _walk = self.walk_permit().await?;
        let reader = self.node.reader.clone();
        let r = on_reader(reader, |r| r.check()).await?;
        let problems = r
            .problems
            .into_iter()
            .map(|p| pb::CheckProblem {
                table: p.table.to_string(),
                key: p.key,
                detail: p.detail,
            })
            .collect();
        Ok(Response::new(pb::CheckResponse {
            applied_index: r.applied_index,
            records_checked: r.records_checked,
            index_entries_checked: r.index_entries_checked,
            problem_count: r.problem_count,
            problems,
            events_checked: r.events_checked,
        }))
    }

    async fn transfer_leader(
        &self,
        req: Request<pb::TransferLeaderRequest>,
    ) -> Result<Response<pb::TransferLeaderResponse>, Status> {
        let to = req.into_inner().node_id;
        // Only the leader's membership is authoritative: a new follower may not know it yet.
        if !self.node.is_leader() {
            return Err(self
                .node
                .unavailable("not the leader; ask the leader to transfer"));
        }
        match self.members().members.iter().find(|m| m.node_id == to) {
            None => {
                let msg = format!("no member {to}");
                return Err(field_status(Code::NotFound, "node_id", msg));
            }
            Some(m) if !m.voter => {
                let msg = format!("node {to} is a learner; promote it first");
                return Err(field_status(Code::FailedPrecondition, "node_id", msg));
            }
            Some(_) => {}
        }
        if to != self.node.id {
            self.node.suspend_lease();
            self.node
                .raft
                .trigger()
                .transfer_leader(to)
                .await
                .map_err(|e| Status::unavailable(format!("raft stopped: {e}")))?;
        }
        let waited = self
            .node
            .raft
            .wait(Some(TRANSFER_WAIT))
            .metrics(|m| m.current_leader == Some(to), "leader transfer")
            .await;
        match waited {
            Ok(m) => Ok(Response::new(pb::TransferLeaderResponse {
                leader_id: to,
                term: m.current_term,
            })),
            Err(e) => Err(self.node.unavailable(&format!(
                "node {to} did not take over within {TRANSFER_WAIT:?}: {e}"
            ))),
        }
    }

    async fn compact(
        &self,
        req: Request<pb::CompactRequest>,
    ) -> Result<Response<pb::CompactResponse>, Status> {
        let revision = req.into_inner().revision;
        if revision == 0 {
            return Err(field_status(
                Code::InvalidArgument,
                "revision",
                "must be positive",
            ));
        }
        // Answered here when the outcome is already certain, so no log entry is spent on it;
        // the state machine still decides every proposal on its own.
        let current = on_reader(self.node.reader.clone(), |r| r.compacted_revision()).await?;
        if revision <= current {
            return Ok(Response::new(pb::CompactResponse {
                compacted_revision: current,
                revision: *self.node.applied.borrow(),
            }));
        }
        let last_log = self
            .node
            .raft
            .metrics()
            .borrow_watched()
            .last_log_index
            .unwrap_or(0);
        // Only the leader knows the latest revision; elsewhere the state machine decides.
        if self.node.is_leader() && revision > last_log + 1 {
            let msg = format!("{revision} is beyond the latest revision {last_log}");
            return Err(field_status(Code::InvalidArgument, "revision", msg));
        }
        match self.node.write(Command::Compact { revision }).await? {
            (CommandResult::Compacted(Ok(compacted)), index) => {
                Ok(Response::new(pb::CompactResponse {
                    compacted_revision: compacted,
                    revision: index,
                }))
            }
            (CommandResult::Compacted(Err(r)), _) => Err(rejection_status(&r)),
            (other, _) => Err(Status::internal(format!("unexpected result {other:?}"))),
        }
    }

    async fn probe(
        &self,
        req: Request<pb::ProbeRequest>,
    ) -> Result<Response<pb::ProbeResponse>, Status> {
        let cmd = Command::Probe {
            payload: req.into_inner().payload,
        };
        revalidate(&cmd, &self.node.templates)?;
        match self.node.write(cmd).await? {
            (CommandResult::Probed, revision) => Ok(Response::new(pb::ProbeResponse { revision })),
            (other, _) => Err(Status::internal(format!(
                "probe: unexpected result {other:?}"
            ))),
        }
    }

    type SnapshotStream = crate::backup::SnapshotStream;

    async fn snapshot(
        &self,
        req: Request<pb::SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        let caller = Caller::of(&req)?;
        let node = self.node.clone();
        // Recorded before the first byte of the copy is sent.
        audit::detached(async move {
            let answer = crate::backup::stream(node.clone()).await;
            let event = audit::snapshot_event(&caller, answer.as_ref().map(|_| ()));
            node.audit.record(vec![event]).await?;
            answer.map(Response::new)
        })
        .await
    }

    async fn state_digest(
        &self,
        _req: Request<pb::StateDigestRequest>,
    ) -> Result<Response<pb::StateDigestResponse>, Status> {
        let _walk = self.walk_permit().await?;
        let reader = self.node.reader.clone();
        let d = on_reader(reader, |r| r.state_digest()).await?;
        Ok(Response::new(pb::StateDigestResponse {
            applied_index: d.applied_index,
            digest: convert::hex(&d.digest),
            records: d.records,
        }))
    }
}
