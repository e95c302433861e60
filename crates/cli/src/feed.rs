//! `licctl query`, `licctl watch` and `licctl compact`: secondary-index queries and the change
//! feed.
//!
//! `watch` prints one line per event (one JSON object per line with `-o json`) and reconnects
//! by itself: after a dropped stream it watches again, on the next endpoint, from the revision
//! after the last one it had reached, so no event is printed twice or skipped.

use std::str::FromStr;
use std::time::{Duration, Instant};

use futures::StreamExt;
use licstore_model::{HolderKind, LicenseStatus};
use licstore_proto::v1 as pb;
use licstore_proto::v1::cluster_client::ClusterClient;
use licstore_proto::v1::licenses_client::LicensesClient;
use serde::Serialize;
use tonic::Code;

use crate::args::{CompactArgs, QueryArgs, WatchArgs};
use crate::exit::{describe_status, reported, usage, FAILURE};
use crate::output::{emit, OutputFormat, Render, Table};
use crate::view::{LicenseView, ListView};
use crate::{convert, types, Ctx};

/// How long `watch` keeps trying to re-establish a dropped stream before giving up.
pub const RECONNECT_WINDOW: Duration = Duration::from_secs(60);

fn statuses(values: &[String]) -> anyhow::Result<Vec<i32>> {
    values
        .iter()
        .map(|s| {
            LicenseStatus::from_str(s.trim())
                .map(|st| convert::status_to_proto(st) as i32)
                .map_err(|_| usage(format!("--status: unknown status {s:?}")))
        })
        .collect()
}

/// `licctl query`.
pub async fn query(ctx: &Ctx, args: QueryArgs) -> anyhow::Result<()> {
    let mut request = pb::QueryRequest {
        type_code: args
            .type_code
            .as_deref()
            .map(types::resolve)
            .unwrap_or_default(),
        license_number: args.number.clone().unwrap_or_default(),
        statuses: statuses(&args.statuses)?,
        issuer_code: args.issuer.clone().unwrap_or_default(),
        region: args.region.clone().unwrap_or_default(),
        expires_before: args.expires_before.clone().unwrap_or_default(),
        changed_since_revision: args.changed_since,
        page_size: args.page_size,
        cursor: args.cursor.clone().unwrap_or_default(),
        count_only: args.count,
        consistency: convert::consistency(args.serializable),
    };
    let mut client = ctx.client()?;
    let mut view = QueryView::default();
    loop {
        let response = client
            .retrying(|ch| {
                let request = request.clone();
                async move { LicensesClient::new(ch).query(request).await }
            })
            .await?;
        view.add(&response);
        if !args.all || response.next_cursor.is_empty() {
            break;
        }
        request.cursor = response.next_cursor;
    }
    view.explain = args.explain;
    view.count_only = args.count;
    emit(ctx.output, &view)?;
    if ctx.output == OutputFormat::Table {
        for line in view.notes() {
            println!("{line}");
        }
    }
    Ok(())
}

/// What `licctl query` prints.
#[derive(Clone, Debug, Default, Serialize)]
pub struct QueryView {
    pub licenses: Vec<LicenseView>,
    /// Matches returned, or all matches with `--count`.
    pub count: u64,
    /// Empty when nothing is left.
    pub next_cursor: String,
    pub read_revision: u64,
    /// Pages fetched.
    pub pages: u64,
    pub plan: PlanView,
    #[serde(skip)]
    explain: bool,
    #[serde(skip)]
    count_only: bool,
}

/// The index a query used.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PlanView {
    pub index: String,
    pub reason: String,
    pub ranges: Vec<String>,
    pub entries_scanned: u64,
}

impl QueryView {
    fn add(&mut self, r: &pb::QueryResponse) {
        self.licenses
            .extend(r.licenses.iter().map(LicenseView::from));
        self.count += r.count;
        self.next_cursor = r.next_cursor.clone();
        self.read_revision = r.read_revision;
        self.pages += 1;
        let plan = r.plan.clone().unwrap_or_default();
        self.plan.index = plan.index;
        self.plan.reason = plan.reason;
        self.plan.ranges = plan.ranges;
        self.plan.entries_scanned += plan.entries_scanned;
    }
}

impl Render for QueryView {
    fn table(&self) -> Table {
        if self.count_only {
            let mut t = Table::key_value();
            t.pair("count", self.count.to_string());
            return t;
        }
        ListView {
            licenses: self.licenses.clone(),
            read_revision: self.read_revision,
        }
        .table()
    }
}

impl QueryView {
    /// Lines printed under the table: the cursor, and the plan with `--explain`.
    pub fn notes(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.next_cursor.is_empty() {
            out.push(format!("# next cursor: {}", self.next_cursor));
        }
        if self.explain {
            out.push(format!(
                "# index: {} ({})",
                self.plan.index, self.plan.reason
            ));
            for range in &self.plan.ranges {
                out.push(format!("# range: {range}"));
            }
            out.push(format!(
                "# scanned {} index entries in {} pages at revision {}",
                self.plan.entries_scanned, self.pages, self.read_revision
            ));
        }
        out
    }
}

/// `licctl compact`.
pub async fn compact(ctx: &Ctx, args: CompactArgs) -> anyhow::Result<()> {
    let mut client = ctx.client()?;
    let request = pb::CompactRequest {
        revision: args.revision,
    };
    let r = client
        .retrying(|ch| async move { ClusterClient::new(ch).compact(request).await })
        .await?;
    emit(
        ctx.output,
        &CompactView {
            compacted_revision: r.compacted_revision,
            revision: r.revision,
        },
    )
}

/// What `licctl compact` prints.
#[derive(Clone, Debug, Serialize)]
pub struct CompactView {
    pub compacted_revision: u64,
    pub revision: u64,
}

impl Render for CompactView {
    fn table(&self) -> Table {
        let mut t = Table::key_value();
        t.row([
            "compacted revision".into(),
            self.compacted_revision.to_string(),
        ]);
        t.row(["log index".into(), self.revision.to_string()]);
        t
    }
}

/// One event as printed.
#[derive(Clone, Debug, Serialize)]
pub struct EventLine {
    pub revision: u64,
    pub seq: u32,
    pub op: String,
    pub identifier: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub previous_identifier: String,
    pub holder_kind: String,
    pub holder_id: String,
    pub type_code: String,
    pub issuer_code: String,
    pub old_status: String,
    pub new_status: String,
    pub version: u32,
    pub digest: String,
}

impl From<&pb::Event> for EventLine {
    fn from(e: &pb::Event) -> EventLine {
        let holder = e.holder.clone().unwrap_or_default();
        let op = pb::EventOp::try_from(e.op)
            .map(|op| {
                op.as_str_name()
                    .trim_start_matches("EVENT_OP_")
                    .to_lowercase()
            })
            .unwrap_or_else(|_| format!("unknown({})", e.op));
        EventLine {
            revision: e.revision,
            seq: e.seq,
            op: op.replace('_', "-"),
            identifier: e.identifier.clone(),
            previous_identifier: e.previous_identifier.clone(),
            holder_kind: convert::holder_kind_name(holder.kind).to_owned(),
            holder_id: holder.id,
            type_code: e.type_code.clone(),
            issuer_code: e.issuer_code.clone(),
            old_status: convert::status_name(e.old_status),
            new_status: convert::status_name(e.new_status),
            version: e.version,
            digest: e.digest.clone(),
        }
    }
}

impl EventLine {
    fn text(&self) -> String {
        let old = if self.old_status == "unspecified" {
            "new"
        } else {
            &self.old_status
        };
        format!(
            "{}.{} {} {} {}:{} {} {}->{} v{}",
            self.revision,
            self.seq,
            self.op,
            self.identifier,
            self.holder_kind,
            self.holder_id,
            types::display_name(&self.type_code),
            old,
            self.new_status,
            self.version
        )
    }
}

fn holders(values: &[String]) -> anyhow::Result<Vec<pb::HolderRef>> {
    values
        .iter()
        .map(|v| {
            let (kind, id) = match v.split_once(':') {
                Some((k, id)) => (HolderKind::from_str(k.trim()).ok(), id.trim()),
                None => (None, v.trim()),
            };
            let kind = match kind {
                Some(k) => k,
                None if v.contains(':') => {
                    return Err(usage(format!("--holder {v:?}: kind is citizen_id or uscc")))
                }
                None => crate::licenses::holder_kind(
                    &crate::args::HolderArgs {
                        holder_kind: None,
                        holder: id.to_owned(),
                    },
                    None,
                )?,
            };
            Ok(pb::HolderRef {
                kind: convert::holder_kind_to_proto(kind) as i32,
                id: id.to_uppercase(),
            })
        })
        .collect()
}

/// `licctl watch`.
pub async fn watch(ctx: &Ctx, args: WatchArgs) -> anyhow::Result<()> {
    let mut request = pb::WatchRequest {
        from_revision: args.from_revision,
        type_codes: args.types.iter().map(|t| types::resolve(t)).collect(),
        issuer_codes: args.issuers.clone(),
        holders: holders(&args.holders)?,
        statuses: statuses(&args.statuses)?,
        progress_interval_ms: args.progress_ms,
    };
    // Streams outlive any per-request timeout: the stub's deadline covers only the start.
    let client = ctx.client_with_default(Some(10_000))?;
    let deadline = args
        .duration_ms
        .map(|ms| Instant::now() + Duration::from_millis(ms));
    let mut printed = 0u64;
    let mut reconnect = Reconnect {
        endpoint: 0,
        endpoints: client.endpoint_count(),
        failing_since: None,
    };
    loop {
        let mut stub = LicensesClient::new(client.channel_at(reconnect.endpoint));
        let stream = match stub.watch(request.clone()).await {
            Ok(s) => s.into_inner(),
            Err(status) => {
                reconnect.after(&status)?;
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        reconnect.failing_since = None;
        let ended = pump(
            ctx.output,
            &args,
            stream,
            &mut request,
            &mut printed,
            deadline,
        )
        .await;
        match ended {
            Pumped::Done => return Ok(()),
            Pumped::Failed(status) => {
                reconnect.after(&status)?;
                eprintln!(
                    "licctl watch: stream ended ({}); resuming from revision {}",
                    describe_status(&status),
                    request.from_revision
                );
            }
        }
    }
}

enum Pumped {
    /// The event limit or the duration was reached.
    Done,
    /// The stream failed; `request.from_revision` says where to resume.
    Failed(tonic::Status),
}

async fn pump(
    output: OutputFormat,
    args: &WatchArgs,
    mut stream: tonic::Streaming<pb::WatchResponse>,
    request: &mut pb::WatchRequest,
    printed: &mut u64,
    deadline: Option<Instant>,
) -> Pumped {
    loop {
        let next = match deadline {
            Some(d) => match tokio::time::timeout_at(d.into(), stream.next()).await {
                Ok(item) => item,
                Err(_) => return Pumped::Done,
            },
            None => stream.next().await,
        };
        let response = match next {
            Some(Ok(r)) => r,
            Some(Err(status)) => return Pumped::Failed(status),
            None => return Pumped::Failed(tonic::Status::unavailable("stream closed by server")),
        };
        for e in &response.events {
            let line = EventLine::from(e);
            match output {
                OutputFormat::Json => {
                    println!("{}", serde_json::to_string(&line).unwrap_or_default())
                }
                OutputFormat::Table => println!("{}", line.text()),
            }
            *printed += 1;
            if args.limit.is_some_and(|n| *printed >= n) {
                return Pumped::Done;
            }
        }
        if response.events.is_empty() && args.show_progress {
            match output {
                OutputFormat::Json => {
                    println!("{{\"progress_revision\":{}}}", response.progress_revision)
                }
                OutputFormat::Table => println!("# progress {}", response.progress_revision),
            }
        }
        // Whole revisions arrive together, so everything up to here has been printed. A watch
        // from a future revision reports progress below it: never move the start back.
        request.from_revision = request.from_revision.max(response.progress_revision + 1);
    }
}

/// Where the next watch attempt goes.
struct Reconnect {
    endpoint: usize,
    endpoints: usize,
    /// When the attempts started failing; `None` while a stream is up.
    failing_since: Option<Instant>,
}

impl Reconnect {
    /// Moves to the next endpoint after a retryable failure; a final error (compaction
    /// included), or failures for longer than [`RECONNECT_WINDOW`], end the command.
    fn after(&mut self, status: &tonic::Status) -> anyhow::Result<()> {
        let retryable = matches!(
            status.code(),
            Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded
        );
        if !retryable {
            return Err(tonic_error(status));
        }
        let since = *self.failing_since.get_or_insert_with(Instant::now);
        if since.elapsed() > RECONNECT_WINDOW {
            let msg = format!("no endpoint served the watch for {RECONNECT_WINDOW:?}");
            return Err(reported(crate::exit::UNAVAILABLE, msg));
        }
        self.endpoint = (self.endpoint + 1) % self.endpoints.max(1);
        Ok(())
    }
}

fn tonic_error(status: &tonic::Status) -> anyhow::Error {
    let code = crate::exit::status_exit_code(status);
    reported(code.max(FAILURE), describe_status(status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ops_print_as_the_api_names_them() {
        let cases = [
            (pb::EventOp::Issue, "issue"),
            (pb::EventOp::LiftSuspension, "lift-suspension"),
            (pb::EventOp::RevokeAsPenalty, "revoke-as-penalty"),
            (pb::EventOp::Expire, "expire"),
        ];
        for (op, want) in cases {
            let e = pb::Event {
                op: op as i32,
                ..Default::default()
            };
            assert_eq!(EventLine::from(&e).op, want);
        }
        let unknown = pb::Event {
            op: 77,
            ..Default::default()
        };
        assert_eq!(EventLine::from(&unknown).op, "unknown(77)");
    }

    #[test]
    fn holder_filters_take_an_explicit_or_guessed_kind() {
        let uscc = "91310000MA1FL0000X";
        let ok = holders(&[format!("uscc:{uscc}"), "uscc:abc".into()]).expect("parsed");
        assert_eq!(ok[0].kind, pb::HolderKind::Uscc as i32);
        assert_eq!(ok[1].id, "ABC");
        assert!(holders(&["person:1".into()]).is_err());
        assert!(
            holders(&["not-an-id".into()]).is_err(),
            "no kind can be guessed"
        );
    }

    #[test]
    fn compaction_and_bad_filters_are_final_unavailability_is_retried() {
        let mut r = Reconnect {
            endpoint: 2,
            endpoints: 3,
            failing_since: None,
        };
        r.after(&tonic::Status::unavailable("down"))
            .expect("retried");
        assert_eq!(r.endpoint, 0);
        for code in [Code::OutOfRange, Code::InvalidArgument] {
            assert!(r.after(&tonic::Status::new(code, "x")).is_err(), "{code:?}");
        }
    }
}
