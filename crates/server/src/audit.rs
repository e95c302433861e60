//! The audit trail on a node: records made durable before the call is answered, then
//! shipped into the replicated trail in batches.
//!
//! [`AuditLog::record`] hands events to one writer thread, which appends every event queued
//! meanwhile to the node's journal with a single synced write (group commit) and only then lets
//! the callers answer. The shipper ([`spawn_shipper`]) proposes the journal's events as one
//! `AppendAudit` command every `ship_interval`, so reads cost no consensus round each, and trims
//! the journal once the trail holds them. A batch proposed twice is recorded once (the trail
//! keeps each journal's high water), so a lost answer or a crash between commit and trim costs
//! nothing but a retry.
//!
//! Records wait on the node alone for a bounded time: once the journal has held records that
//! could not be shipped for `audit.max_unshipped_ms` (no leader reachable, say), the node
//! refuses new audited calls with UNAVAILABLE ([`AuditLog::admit`]), so clients move to a node
//! that can ship, until a shipment succeeds again. The wait counts from the first shipment
//! that found records waiting (or failed to read the journal). This bounds how long a node
//! goes on making records it cannot replicate; the records already made are replicated once
//! a leader takes them.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use licstore_model::audit::AuditEvent;
use licstore_store::audit::{AuditJournal, AUDIT_BATCH_MAX};
use licstore_store::{Command, CommandResult};
use tokio::sync::oneshot;
use tonic::Status;

use crate::node::Node;

/// How many events the writer takes into one synced write at most.
const WRITE_BATCH_MAX: usize = 4096;

/// Metric: audit events in this node's journal, not yet in the replicated trail.
pub const AUDIT_BACKLOG: &str = "licstore_audit_backlog";
/// Metric: audit events this node made durable.
pub const AUDIT_RECORDED: &str = "licstore_audit_events_total";
/// Metric: audit events this node shipped into the replicated trail.
pub const AUDIT_SHIPPED: &str = "licstore_audit_shipped_total";
/// Metric: how long this node's oldest unshipped records have waited; zero when none wait.
pub const AUDIT_UNSHIPPED_SECONDS: &str = "licstore_audit_unshipped_seconds";
/// Metric: `audit.max_unshipped_ms` in seconds; zero: no bound.
pub const AUDIT_MAX_UNSHIPPED_SECONDS: &str = "licstore_audit_max_unshipped_seconds";
/// Metric: journal events the trail refused for good, set aside and replaced by a stand-in.
pub const AUDIT_QUARANTINED: &str = "licstore_audit_quarantined_total";

struct Pending {
    events: Vec<AuditEvent>,
    done: oneshot::Sender<Result<(), String>>,
}

/// The gRPC paths whose calls make audit records (refusals aside): those refused while the
/// journal cannot ship.
pub const AUDITED_PATHS: [&str; 14] = [
    "/licstore.v1.Licenses/Issue",
    "/licstore.v1.Licenses/Amend",
    "/licstore.v1.Licenses/ChangeStatus",
    "/licstore.v1.Licenses/Import",
    "/licstore.v1.Licenses/Get",
    "/licstore.v1.Licenses/GetByIdentifier",
    "/licstore.v1.Licenses/ListByHolder",
    "/licstore.v1.Licenses/Query",
    "/licstore.v1.Licenses/Watch",
    "/licstore.v1.Licenses/Verify",
    "/licstore.v1.Licenses/VerifyBatch",
    "/licstore.v1.Seals/ExportLicense",
    "/licstore.v1.Seals/Present",
    "/licstore.v1.Cluster/Snapshot",
];

/// The node's side of the audit trail.
pub struct AuditLog {
    node_id: u64,
    journal: Arc<Mutex<AuditJournal>>,
    queue: std::sync::mpsc::Sender<Pending>,
    /// Longest time records may wait unshipped before audited calls are refused; zero: never.
    max_unshipped: Duration,
    /// Since when the journal has held records no shipment has taken.
    waiting_since: Mutex<Option<Instant>>,
    /// Calls are recorded; off only with `[audit] enabled = false` in plain text.
    enabled: bool,
}

/// Whether records that have waited `waited` unshipped are past `max` (zero: no bound).
pub fn past_bound(waited: Option<Duration>, max: Duration) -> bool {
    !max.is_zero() && waited.is_some_and(|w| w > max)
}

impl AuditLog {
    /// Opens the journal of the database `reader` reads and starts the writer thread.
    /// `max_unshipped` bounds how long records wait unshipped (see the module docs).
    pub fn start(
        reader: &licstore_store::Reader,
        node_id: u64,
        max_unshipped: Duration,
    ) -> Result<AuditLog, licstore_store::StoreError> {
        let journal = AuditJournal::open(reader, rand::random::<u64>)?;
        tracing::debug!(node_id, journal = journal.id(), "audit journal open");
        let journal = Arc::new(Mutex::new(journal));
        let (queue, rx) = std::sync::mpsc::channel::<Pending>();
        let writer = journal.clone();
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || write_loop(&writer, &rx))
            .map_err(|e| licstore_store::StoreError::corrupt("audit writer thread", e))?;
        Ok(AuditLog {
            node_id,
            journal,
            queue,
            max_unshipped,
            waiting_since: Mutex::new(None),
            enabled: true,
        })
    }

    /// The same log recording nothing: [`AuditLog::record`] answers at once and
    /// [`AuditLog::admit`] refuses nothing. Records already in the journal are still shipped.
    pub fn disabled(self) -> AuditLog {
        AuditLog {
            enabled: false,
            ..self
        }
    }

    /// Refuses a call to `path` that would make a record while records have waited
    /// unshipped past `audit.max_unshipped_ms`.
    pub fn admit(&self, path: &str) -> Result<(), Status> {
        if !self.enabled || !AUDITED_PATHS.contains(&path) {
            return Ok(());
        }
        let waited = self.waiting().map(|since| since.elapsed());
        if !past_bound(waited, self.max_unshipped) {
            return Ok(());
        }
        let waited_s = waited.unwrap_or_default().as_secs();
        Err(Status::unavailable(format!(
            "audit trail: this node's audit records have waited {waited_s} s to be replicated, \
             over audit.max_unshipped_ms ({} ms): no leader takes its shipments (its log says \
             why); try another node",
            self.max_unshipped.as_millis()
        )))
    }

    /// How long records have waited unshipped; zero when none wait.
    pub fn unshipped_for(&self) -> Duration {
        self.waiting()
            .map_or(Duration::ZERO, |since| since.elapsed())
    }

    /// The bound on [`AuditLog::unshipped_for`] past which audited calls are refused; zero:
    /// none.
    pub fn max_unshipped(&self) -> Duration {
        self.max_unshipped
    }

    fn waiting(&self) -> Option<Instant> {
        *self.waiting_since.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes that records wait (`true`, keeping an earlier start) or that a shipment took
    /// them (`false`).
    fn set_waiting(&self, waiting: bool) {
        let mut since = self.waiting_since.lock().unwrap_or_else(|p| p.into_inner());
        *since = match waiting {
            true => Some(since.unwrap_or_else(Instant::now)),
            false => None,
        };
    }

    /// Makes `events` durable in this node's journal; the call they describe may be answered
    /// once this returns `Ok`. Each event gets this node's id and the current time.
    pub async fn record(&self, mut events: Vec<AuditEvent>) -> Result<(), Status> {
        if !self.enabled {
            return Ok(());
        }
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        for e in &mut events {
            e.node_id = self.node_id;
            e.time_ms = now_ms;
        }
        let count = events.len() as u64;
        let (done, wait) = oneshot::channel();
        let unavailable = |why: &str| Status::unavailable(format!("audit journal: {why}"));
        self.queue
            .send(Pending { events, done })
            .map_err(|_| unavailable("the writer stopped"))?;
        match wait.await {
            Ok(Ok(())) => {
                metrics::counter!(AUDIT_RECORDED).increment(count);
                Ok(())
            }
            Ok(Err(e)) => Err(unavailable(&e)),
            Err(_) => Err(unavailable("the writer stopped")),
        }
    }

    /// Up to `limit` journal events not yet trimmed, the journal's id and its backlog. On the
    /// blocking pool: the lock is held by the writer across its sync.
    async fn pending(&self, limit: usize) -> Result<(u64, Vec<(u64, Vec<u8>)>, u64), String> {
        let journal = self.journal.clone();
        tokio::task::spawn_blocking(move || {
            let journal = journal.lock().map_err(|e| e.to_string())?;
            let events = journal.pending_at(limit).map_err(|e| e.to_string())?;
            let backlog = journal.backlog().map_err(|e| e.to_string())?;
            Ok((journal.id(), events, backlog))
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// Sets aside the journal event at `position`, refused by the trail for good (`why`), for
    /// a stand-in that records the loss (see `AuditJournal::quarantine`).
    async fn quarantine(&self, position: u64, why: String) -> Result<bool, String> {
        let (journal, node_id) = (self.journal.clone(), self.node_id);
        tokio::task::spawn_blocking(move || {
            let journal = journal.lock().map_err(|e| e.to_string())?;
            let now_ms = crate::sealing::now_ms();
            journal
                .quarantine(position, node_id, now_ms, &why)
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?
    }

    async fn trim_through(&self, position: u64) -> Result<(), String> {
        let journal = self.journal.clone();
        tokio::task::spawn_blocking(move || {
            let journal = journal.lock().map_err(|e| e.to_string())?;
            journal.trim_through(position).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?
    }
}

/// The writer thread: every event queued while the last write ran goes into the next one.
fn write_loop(journal: &Mutex<AuditJournal>, rx: &std::sync::mpsc::Receiver<Pending>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        let mut count = batch[0].events.len();
        while count < WRITE_BATCH_MAX {
            match rx.try_recv() {
                Ok(next) => {
                    count += next.events.len();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        let mut events: Vec<AuditEvent> =
            batch.iter_mut().flat_map(|p| p.events.drain(..)).collect();
        let written = match journal.lock() {
            Ok(mut j) => j.append(&mut events).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = &written {
            tracing::error!(error = %e, "audit journal append failed; the calls are refused");
        }
        for p in batch {
            let _ = p.done.send(written.clone());
        }
    }
}

/// Ships the journal into the replicated trail every `interval`, until the process ends.
pub fn spawn_shipper(node: Arc<Node>, interval: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // A full batch means more may wait: ship again at once.
            while let Ok(true) = ship_once(&node).await {}
        }
    });
}

/// Ships one batch; `Ok(true)` when it was full.
async fn ship_once(node: &Node) -> Result<bool, ()> {
    let (journal, events, backlog) = node.audit.pending(AUDIT_BATCH_MAX).await.map_err(|e| {
        // Records may wait behind a journal that cannot be read: the bound applies.
        node.audit.set_waiting(true);
        tracing::error!(error = %e, "audit journal read failed");
    })?;
    metrics::gauge!(AUDIT_BACKLOG).set(backlog as f64);
    node.audit.set_waiting(!events.is_empty());
    if events.is_empty() {
        return Ok(false);
    }
    let full = events.len() == AUDIT_BATCH_MAX;
    let count = events.len() as u64;
    let (positions, events): (Vec<u64>, Vec<Vec<u8>>) = events.into_iter().unzip();
    let result = node.write(Command::AppendAudit { events }).await;
    let appended = match result {
        Ok((CommandResult::Audit(Ok(appended)), _)) => appended,
        Ok((CommandResult::Audit(Err(refused)), _)) => {
            let Some(position) = refused_event(&refused.field).and_then(|i| positions.get(i))
            else {
                tracing::error!(?refused, "audit batch refused");
                return Err(());
            };
            // Refused for good, and every later event behind it: set it aside for a
            // stand-in the trail takes, and ship again at once.
            let set_aside = node
                .audit
                .quarantine(*position, refused.message.clone())
                .await
                .map_err(|e| tracing::error!(error = %e, "audit quarantine failed"))?;
            if !set_aside {
                // It decodes here: the leader's refusal is not this event's fault.
                tracing::error!(position, ?refused, "audit event refused but decodes here");
                return Err(());
            }
            tracing::error!(position, reason = %refused.message, "audit event set aside");
            metrics::counter!(AUDIT_QUARANTINED).increment(1);
            return Ok(true);
        }
        Ok((other, _)) => {
            tracing::error!(result = ?other, "audit batch: unexpected result");
            return Err(());
        }
        Err(e) => {
            tracing::warn!(error = %e, backlog = count, "audit batch not shipped; retrying");
            return Err(());
        }
    };
    let through = appended
        .high_water
        .iter()
        .find(|(j, _)| *j == journal)
        .map(|(_, position)| *position);
    if let Some(position) = through {
        node.audit.trim_through(position).await.map_err(|e| {
            tracing::error!(error = %e, "audit journal trim failed");
        })?;
    }
    // Taken: whatever is left (a full batch's rest) starts waiting afresh.
    node.audit.set_waiting(false);
    metrics::counter!(AUDIT_SHIPPED).increment(appended.recorded);
    Ok(full)
}

/// The index of the event a refusal of an `AppendAudit` batch names (`events[i]`).
fn refused_event(field: &str) -> Option<usize> {
    field
        .strip_prefix("events[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// Runs an audited call and the making of its record on a task of its own, so a client that
/// goes away mid-call (a reset stream, a deadline) cannot leave a served call, such as a
/// committed write, without its record.
pub async fn detached<T: Send + 'static>(
    call: impl std::future::Future<Output = Result<T, Status>> + Send + 'static,
) -> Result<T, Status> {
    tokio::spawn(call)
        .await
        .map_err(|e| Status::internal(format!("audited call: {e}")))?
}

/// Longest client-given text an event keeps, in bytes.
pub const TEXT_MAX: usize = 256;

/// At most [`TEXT_MAX`] bytes of `text`, cut at a character boundary.
pub fn bounded(text: &str) -> String {
    let text = text.trim();
    let mut end = text.len().min(TEXT_MAX);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// `Service/Method` of a gRPC path (`/licstore.v1.Licenses/Verify` → `Licenses/Verify`).
pub fn action_of(path: &str) -> String {
    let path = path.trim_start_matches('/');
    path.strip_prefix("licstore.v1.").unwrap_or(path).to_owned()
}

/// The outcome a refused call is recorded with: its gRPC code in snake case.
pub fn code_outcome(status: &Status) -> String {
    format!("{:?}", status.code())
        .chars()
        .flat_map(|c| match c.is_ascii_uppercase() {
            true => vec!['_', c.to_ascii_lowercase()],
            false => vec![c],
        })
        .collect::<String>()
        .trim_start_matches('_')
        .to_owned()
}

/// An event of a call by `caller` to `action`; the handler fills in the rest.
pub fn event(caller: &crate::access::Caller, action: &str) -> AuditEvent {
    let roles = match caller.unrestricted {
        true => String::new(),
        false => caller
            .roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(","),
    };
    AuditEvent {
        caller: caller.name.clone(),
        roles,
        action: action.to_owned(),
        ..Default::default()
    }
}

/// The event of one verification (`Licenses/Verify`, or one item of `Licenses/VerifyBatch`)
/// and how it was answered.
pub fn verify_event(
    caller: &crate::access::Caller,
    action: &str,
    req: &licstore_proto::v1::VerifyRequest,
    answer: Result<&licstore_proto::v1::VerifyResponse, &Status>,
) -> AuditEvent {
    let mut e = event(caller, action);
    e.service_item = bounded(&req.service_item);
    e.purpose = bounded(&req.purpose);
    (e.holder_kind, e.holder_id) = holder_of(req.holder_kind, &req.holder_id);
    e.type_code = bounded(&req.type_code);
    match answer {
        Ok(r) => {
            e.outcome = verdict_outcome(r.verdict);
            e.identifier = r.identifier.clone();
            e.revision = r.read_revision;
        }
        Err(status) => {
            e.outcome = code_outcome(status);
            e.detail = bounded(status.message());
        }
    }
    e
}

/// What a call asked about a license, taken from its request before it is answered.
#[derive(Clone, Debug, Default)]
pub struct Asked {
    /// The holder kind as the request gave it (0: none).
    pub holder_kind: i32,
    /// The holder id as given.
    pub holder_id: String,
    /// The license type as given.
    pub type_code: String,
    /// The identifier as given.
    pub identifier: String,
}

impl Asked {
    /// What a request naming a license by `identifier` asks about.
    pub fn identifier(identifier: &str) -> Asked {
        Asked {
            identifier: identifier.to_owned(),
            ..Default::default()
        }
    }

    /// What a request carrying `license` (an issue or an amendment) asks about.
    pub fn license(license: Option<&licstore_proto::v1::NewLicense>) -> Asked {
        let holder = license.and_then(|l| l.holder.as_ref());
        Asked {
            holder_kind: holder.map_or(0, |h| h.kind),
            holder_id: holder.map(|h| h.id.clone()).unwrap_or_default(),
            type_code: license.map(|l| l.type_code.clone()).unwrap_or_default(),
            identifier: String::new(),
        }
    }
}

/// How a call about licenses was answered: the license it names (the first, for a listing),
/// how many it returned, and the revision read or written; or why it was refused.
pub type Answered<'a> = Result<(Option<&'a licstore_proto::v1::License>, usize, u64), &'a Status>;

/// The event of a call that reads, exports or writes licenses.
pub fn license_event(
    caller: &crate::access::Caller,
    action: &str,
    asked: &Asked,
    answer: Answered<'_>,
) -> AuditEvent {
    let mut e = event(caller, action);
    (e.holder_kind, e.holder_id) = holder_of(asked.holder_kind, &asked.holder_id);
    e.type_code = bounded(&asked.type_code);
    e.identifier = bounded(&asked.identifier);
    match answer {
        Ok((license, count, revision)) => {
            e.outcome = "ok".into();
            e.revision = revision;
            if let Some(l) = license {
                if let Some(h) = &l.holder {
                    e.holder_kind = crate::convert::holder_kind("holder_kind", h.kind).ok();
                    e.holder_id = h.id.clone();
                }
                e.type_code = l.type_code.clone();
                e.identifier = l.identifier.clone();
            }
            if count != 1 {
                e.detail = format!("{count} licenses");
            }
        }
        Err(status) => {
            e.outcome = code_outcome(status);
            e.detail = bounded(status.message());
        }
    }
    e
}

/// The events of one `Licenses/Query` page: one per license returned, so that every holder's
/// history shows the listing; one for a page that returned none (a count, an empty page); or
/// one for a refusal.
pub fn query_events(
    caller: &crate::access::Caller,
    req: &licstore_proto::v1::QueryRequest,
    answer: Result<&licstore_proto::v1::QueryResponse, &Status>,
) -> Vec<AuditEvent> {
    const ACTION: &str = "Licenses/Query";
    let asked = Asked {
        type_code: req.type_code.clone(),
        ..Default::default()
    };
    // What was asked, so that a count or an empty page still says which licenses it was about.
    let filter = query_filter(req);
    let plan = |r: &licstore_proto::v1::QueryResponse| {
        r.plan.as_ref().map_or(String::new(), |p| p.index.clone())
    };
    let with_detail = |mut e: AuditEvent, detail: String| {
        e.detail = bounded(&detail);
        e
    };
    match answer {
        Ok(r) if !r.licenses.is_empty() => r
            .licenses
            .iter()
            .map(|l| {
                let e = license_event(caller, ACTION, &asked, Ok((Some(l), 1, r.read_revision)));
                with_detail(e, format!("index {}; {filter}", plan(r)))
            })
            .collect(),
        Ok(r) => {
            let e = license_event(caller, ACTION, &asked, Ok((None, 0, r.read_revision)));
            let detail = match req.count_only {
                true => format!("index {}; counted {} matches; {filter}", plan(r), r.count),
                false => format!("index {}; no license on this page; {filter}", plan(r)),
            };
            vec![with_detail(e, detail)]
        }
        Err(status) => {
            let e = license_event(caller, ACTION, &asked, Err(status));
            let detail = format!("{}; {filter}", e.detail);
            vec![with_detail(e, detail)]
        }
    }
}

/// A query's filter as text: every condition it set.
fn query_filter(req: &licstore_proto::v1::QueryRequest) -> String {
    let mut parts = Vec::new();
    let mut text = |name: &str, value: &str| {
        if !value.is_empty() {
            parts.push(format!("{name}={}", bounded(value)));
        }
    };
    text("type", &req.type_code);
    text("number", &req.license_number);
    text("issuer", &req.issuer_code);
    text("region", &req.region);
    text("expires_before", &req.expires_before);
    if !req.statuses.is_empty() {
        let shown: Vec<i32> = req.statuses.iter().take(8).copied().collect();
        parts.push(format!("statuses={shown:?} of {}", req.statuses.len()));
    }
    if let Some(r) = req.changed_since_revision {
        parts.push(format!("changed_since_revision={r}"));
    }
    format!("filter: {}", parts.join(", "))
}

/// The first few of `items`, comma-separated, and how many there were in all when more.
fn few(items: &[String]) -> String {
    const SHOWN: usize = 8;
    let shown = items
        .iter()
        .take(SHOWN)
        .map(String::as_str)
        .collect::<Vec<_>>();
    match items.len() > SHOWN {
        true => format!("{} and {} more", shown.join(","), items.len() - SHOWN),
        false => shown.join(","),
    }
}

/// The events of opening a `Licenses/Watch` stream: one per holder the filter names (so the
/// holder's history shows who watches their licenses), else one; each with the filter. A
/// refused watch is one event whatever it asked for, so an oversized filter cannot make
/// more records than a valid one.
pub fn watch_events(
    caller: &crate::access::Caller,
    req: &licstore_proto::v1::WatchRequest,
    answer: Result<(), &Status>,
) -> Vec<AuditEvent> {
    let detail = bounded(&format!(
        "from revision {}; types [{}]; issuers [{}]; {} holders; {} statuses",
        req.from_revision,
        few(&req.type_codes),
        few(&req.issuer_codes),
        req.holders.len(),
        req.statuses.len()
    ));
    let type_code = match req.type_codes.as_slice() {
        [one] => one.clone(),
        _ => String::new(),
    };
    let one = |holder_kind: i32, holder_id: &str| {
        let asked = Asked {
            holder_kind,
            holder_id: holder_id.to_owned(),
            type_code: type_code.clone(),
            identifier: String::new(),
        };
        let answered = answer.map(|()| (None, 0, req.from_revision));
        let mut e = license_event(caller, "Licenses/Watch", &asked, answered);
        if answer.is_ok() {
            e.detail = detail.clone();
        }
        e
    };
    match (answer, req.holders.is_empty()) {
        (Ok(()), false) => req.holders.iter().map(|h| one(h.kind, &h.id)).collect(),
        _ => vec![one(0, "")],
    }
}

/// The event of a `Cluster/Snapshot` call: a copy of every license left the node.
pub fn snapshot_event(caller: &crate::access::Caller, answer: Result<(), &Status>) -> AuditEvent {
    let mut e = event(caller, "Cluster/Snapshot");
    match answer {
        Ok(()) => {
            e.outcome = "ok".into();
            e.detail = "the whole replicated state".into();
        }
        Err(status) => {
            e.outcome = code_outcome(status);
            e.detail = bounded(status.message());
        }
    }
    e
}

/// Records the event of a license call on `node` before the call is answered.
pub async fn record_license_call(
    node: &Node,
    caller: &crate::access::Caller,
    action: &str,
    asked: &Asked,
    answer: Answered<'_>,
) -> Result<(), Status> {
    node.audit
        .record(vec![license_event(caller, action, asked, answer)])
        .await
}

/// The holder a request named, as an event keeps it: the id as given (bounded, upper case),
/// and its kind only when the id is a valid one of that kind, so that only real holder ids
/// reach the trail's holder index.
fn holder_of(kind: i32, id: &str) -> (Option<licstore_model::HolderKind>, String) {
    let id = bounded(id).to_uppercase();
    let Ok(kind) = crate::convert::holder_kind("holder_kind", kind) else {
        return (None, id);
    };
    let now_secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let today = licstore_model::Date::from_unix_secs(now_secs);
    let mode = licstore_model::CheckMode::Lenient;
    match licstore_model::validate_holder_id(kind, &id, mode, today) {
        Ok(_) => (Some(kind), id),
        Err(_) => (None, id),
    }
}

/// `valid`, `suspended`, `revoked`, `expired`, `not_found`.
fn verdict_outcome(verdict: i32) -> String {
    let name = licstore_proto::v1::Verdict::try_from(verdict)
        .map(|v| v.as_str_name())
        .unwrap_or("VERDICT_UNKNOWN");
    name.trim_start_matches("VERDICT_").to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_wait_unshipped_only_up_to_the_bound() {
        let s = Duration::from_secs;
        // (waited, bound, past it)
        let cases = [
            (None, s(30), false),
            (Some(s(29)), s(30), false),
            (Some(s(31)), s(30), true),
            (Some(s(3600)), Duration::ZERO, false),
        ];
        for (waited, max, past) in cases {
            assert_eq!(past_bound(waited, max), past, "{waited:?} {max:?}");
        }
    }

    #[test]
    fn audited_paths_are_real_rpcs_of_license_rights() {
        use crate::access::{right_of, Right};
        for path in AUDITED_PATHS {
            let right = right_of(path);
            // A snapshot copies every license out: recorded though it needs an admin.
            let snapshot = path == "/licstore.v1.Cluster/Snapshot";
            let license: &[Right] = match snapshot {
                true => &[Right::ClusterManage],
                false => &[
                    Right::LicenseRead,
                    Right::LicenseWrite,
                    Right::LicenseVerify,
                ],
            };
            assert!(
                right.is_some_and(|r| license.contains(&r)),
                "{path}: {right:?}"
            );
        }
    }

    #[test]
    fn a_refusal_names_the_event_it_refused() {
        let cases = [
            ("events[0]", Some(0)),
            ("events[1999]", Some(1999)),
            ("events", None),
            ("events[]", None),
            ("events[-1]", None),
            ("event[3]", None),
            ("events[3].x", None),
        ];
        for (field, expected) in cases {
            assert_eq!(refused_event(field), expected, "{field}");
        }
    }

    #[test]
    fn names_and_text_are_shortened_for_events() {
        let long = "案".repeat(100);
        let cut = bounded(&long);
        assert!(
            cut.len() <= TEXT_MAX && cut.chars().all(|c| c == '案'),
            "{cut}"
        );
        let cases = [
            ("/licstore.v1.Licenses/Verify", "Licenses/Verify"),
            ("/licstore.v1.raft.Raft/Vote", "raft.Raft/Vote"),
            (
                "/grpc.health.v1.Health/Check",
                "grpc.health.v1.Health/Check",
            ),
        ];
        for (path, action) in cases {
            assert_eq!(action_of(path), action);
        }
        let codes = [
            (Status::permission_denied("x"), "permission_denied"),
            (Status::failed_precondition("x"), "failed_precondition"),
            (Status::invalid_argument("x"), "invalid_argument"),
            (Status::unavailable("x"), "unavailable"),
        ];
        for (status, name) in codes {
            assert_eq!(code_outcome(&status), name);
        }
        let verdicts = [
            (licstore_proto::v1::Verdict::Valid, "valid"),
            (licstore_proto::v1::Verdict::NotFound, "not_found"),
        ];
        for (verdict, name) in verdicts {
            assert_eq!(verdict_outcome(verdict as i32), name);
        }
    }
}
