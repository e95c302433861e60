//! `Licenses.Watch`: the change feed as a server stream.
//!
//! Each watcher has one task that reads the feed from RocksDB a page at a time and hands whole
//! revisions to a small bounded channel. A slow watcher therefore holds back only its own task:
//! what it has not yet received stays on disk, never in a growing queue. Once caught up, the
//! task sleeps until the state machine publishes a new applied index, sending a progress-only
//! response whenever the stream has been quiet for the progress interval.
//!
//! Followers serve watches from their own replica. Their feed is a prefix of the same log, so
//! they deliver the same events in the same order, possibly later.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use licstore_proto::v1 as pb;
use licstore_store::{EventFilter, EventPage, FeedRead};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::{Code, Status};

use crate::convert::{self, field_status};
use crate::node::Node;

/// Metadata key carrying the oldest available revision with a `revision compacted` error.
pub const COMPACTED_METADATA_KEY: &str = "licstore-compacted-revision";
/// Progress interval when the request gives none.
pub const DEFAULT_PROGRESS: Duration = Duration::from_secs(5);
/// Shortest progress interval accepted.
pub const MIN_PROGRESS: Duration = Duration::from_millis(100);
/// Open watches per node at most.
pub const MAX_WATCHES: usize = 1024;
/// Matching events per page read from disk (a page may exceed it to finish a revision).
const PAGE_EVENTS: usize = 512;
/// Events read per page at most, matching or not.
const PAGE_SCANNED: usize = 8192;
/// Responses queued per watcher.
const CHANNEL_RESPONSES: usize = 4;

/// The response stream.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchResponse, Status>> + Send>>;

/// Counts a watch as open until dropped.
struct Slot(Arc<Node>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.watches.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Starts a watch. A compacted start revision fails here, before any response is streamed.
pub async fn watch(node: Arc<Node>, req: pb::WatchRequest) -> Result<WatchStream, Status> {
    let filter = filter_of(&node, &req)?;
    let progress = progress_interval(req.progress_interval_ms)?;
    if node.watches.fetch_add(1, Ordering::Relaxed) >= MAX_WATCHES {
        node.watches.fetch_sub(1, Ordering::Relaxed);
        let msg = format!("{MAX_WATCHES} watches already open on this node");
        return Err(Status::resource_exhausted(msg));
    }
    let slot = Slot(node.clone());
    let mut applied = node.applied.clone();
    let from = match req.from_revision {
        0 => *applied.borrow_and_update() + 1,
        r => r,
    };
    let first = read_page(&node, from, &filter).await?;
    let (tx, rx) = mpsc::channel(CHANNEL_RESPONSES);
    let pump = Pump {
        node,
        filter,
        progress,
        applied,
        tx,
        _slot: slot,
    };
    tokio::spawn(pump.run(first));
    Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
}

struct Pump {
    node: Arc<Node>,
    filter: EventFilter,
    progress: Duration,
    applied: tokio::sync::watch::Receiver<u64>,
    tx: mpsc::Sender<Result<pb::WatchResponse, Status>>,
    _slot: Slot,
}

impl Pump {
    async fn run(mut self, first: EventPage) {
        let mut page = first;
        let mut last_sent = Instant::now();
        // The first response goes out at once, events or not: it tells the watcher the watch is
        // in place and the revision it starts after.
        let mut first_response = true;
        loop {
            // Never past the applied index: a watch from a future revision has seen nothing yet.
            let progress_revision = (page.next_revision - 1).min(page.applied_index);
            let quiet = last_sent.elapsed() >= self.progress;
            if !page.events.is_empty() || quiet || std::mem::take(&mut first_response) {
                let response = pb::WatchResponse {
                    events: page.events.iter().map(convert::event_to_pb).collect(),
                    progress_revision,
                    compacted_revision: page.compacted_revision,
                };
                let sent = response.events.len() as u64;
                if self.tx.send(Ok(response)).await.is_err() {
                    return;
                }
                metrics::counter!(crate::metrics::WATCH_EVENTS_SENT).increment(sent);
                last_sent = Instant::now();
            }
            if page.next_revision > page.applied_index {
                let reached = page.applied_index;
                let wait = self.wait_past(reached, &mut last_sent, progress_revision, &page);
                if !wait.await {
                    return;
                }
            }
            page = match read_page(&self.node, page.next_revision, &self.filter).await {
                Ok(p) => p,
                Err(status) => {
                    let _ = self.tx.send(Err(status)).await;
                    return;
                }
            };
        }
    }

    /// Waits until the applied index passes `reached`, sending progress responses while quiet.
    /// False when the watcher is gone or the node is stopping.
    async fn wait_past(
        &mut self,
        reached: u64,
        last_sent: &mut Instant,
        progress_revision: u64,
        page: &EventPage,
    ) -> bool {
        loop {
            if *self.applied.borrow_and_update() > reached {
                return true;
            }
            let bookmark_at = *last_sent + self.progress;
            tokio::select! {
                changed = self.applied.changed() => {
                    if changed.is_err() {
                        let _ = self.tx.send(Err(Status::unavailable("node stopping"))).await;
                        return false;
                    }
                }
                _ = tokio::time::sleep_until(bookmark_at) => {
                    let bookmark = pb::WatchResponse {
                        events: Vec::new(),
                        progress_revision,
                        compacted_revision: page.compacted_revision,
                    };
                    if self.tx.send(Ok(bookmark)).await.is_err() {
                        return false;
                    }
                    *last_sent = Instant::now();
                }
                _ = self.tx.closed() => return false,
            }
        }
    }
}

/// One page of the feed from disk, or the `revision compacted` error.
async fn read_page(node: &Node, from: u64, filter: &EventFilter) -> Result<EventPage, Status> {
    let reader = node.reader.clone();
    let filter = filter.clone();
    let read = tokio::task::spawn_blocking(move || {
        reader.events(from, &filter, PAGE_EVENTS, PAGE_SCANNED)
    })
    .await
    .map_err(|e| Status::internal(e.to_string()))?
    .map_err(|e| Status::internal(e.to_string()))?;
    match read {
        FeedRead::Page(page) => Ok(page),
        FeedRead::Compacted { oldest } => Err(compacted(from, oldest)),
    }
}

/// `OUT_OF_RANGE` for a revision below the oldest one retained.
pub fn compacted(from: u64, oldest: u64) -> Status {
    let msg = format!(
        "revision compacted: {from} is below the oldest available revision {oldest}; \
         watch from {oldest} or later"
    );
    let mut status = field_status(Code::OutOfRange, "from_revision", msg);
    if let Ok(v) = oldest.to_string().parse() {
        status.metadata_mut().insert(COMPACTED_METADATA_KEY, v);
    }
    status
}

fn progress_interval(ms: u32) -> Result<Duration, Status> {
    let interval = match ms {
        0 => DEFAULT_PROGRESS,
        ms => Duration::from_millis(ms.into()),
    };
    if interval < MIN_PROGRESS {
        let msg = format!("at least {} ms", MIN_PROGRESS.as_millis());
        return Err(field_status(
            Code::InvalidArgument,
            "progress_interval_ms",
            msg,
        ));
    }
    Ok(interval)
}

/// Entries per filter list at most.
pub const MAX_FILTER_ENTRIES: usize = 64;

fn filter_of(node: &Node, req: &pb::WatchRequest) -> Result<EventFilter, Status> {
    let lists = [
        ("type_codes", req.type_codes.len()),
        ("issuer_codes", req.issuer_codes.len()),
        ("holders", req.holders.len()),
        ("statuses", req.statuses.len()),
    ];
    for (field, len) in lists {
        if len > MAX_FILTER_ENTRIES {
            let msg = format!("{len} entries, at most {MAX_FILTER_ENTRIES}");
            return Err(field_status(Code::InvalidArgument, field, msg));
        }
    }
    let mut type_codes = Vec::with_capacity(req.type_codes.len());
    for (i, t) in req.type_codes.iter().enumerate() {
        let field = format!("type_codes[{i}]");
        let template = node.templates.get(t.trim()).map_err(|_| {
            let shown: String = t.chars().take(64).collect();
            field_status(
                Code::InvalidArgument,
                &field,
                format!("unknown type {shown:?}"),
            )
        })?;
        type_codes.push(template.type_code.clone());
    }
    let mut holders = Vec::with_capacity(req.holders.len());
    for (i, h) in req.holders.iter().enumerate() {
        let kind = convert::holder_kind(&format!("holders[{i}].kind"), h.kind)?;
        let field = format!("holders[{i}].id");
        match crate::query::filter_text(&field, &h.id)? {
            Some(id) => holders.push((kind, id.to_uppercase())),
            None => return Err(field_status(Code::InvalidArgument, &field, "required")),
        }
    }
    let statuses = req
        .statuses
        .iter()
        .map(|s| convert::status_from_pb_strict("statuses", *s))
        .collect::<Result<_, _>>()?;
    let mut issuer_codes = Vec::with_capacity(req.issuer_codes.len());
    for (i, code) in req.issuer_codes.iter().enumerate() {
        let field = format!("issuer_codes[{i}]");
        match crate::query::filter_text(&field, code)? {
            Some(code) => issuer_codes.push(code.to_uppercase()),
            None => return Err(field_status(Code::InvalidArgument, &field, "required")),
        }
    }
    Ok(EventFilter {
        type_codes,
        issuer_codes,
        holders,
        statuses,
    })
}
