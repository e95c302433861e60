//! The cluster commands: `endpoint status|health`, `member list|add-learner|promote|remove`,
//! `digest`.
//!
//! `endpoint status` and `digest` ask every endpoint directly (no retries, no leader
//! following: the point is to see each node), concurrently, and exit 3 when any endpoint did
//! not answer. Membership calls go through [`licstore_client::Client::retrying`], which follows
//! the leader hint; membership changes are idempotent on the server side (adding a learner that
//! is already there, removing one that is gone), so repeating them is safe.

use licstore_client::Client;
use licstore_proto::v1 as pb;
use licstore_proto::v1::cluster_client::ClusterClient;

use crate::args::MemberCommand;
use crate::exit::{describe_status, reported, UNAVAILABLE};
use crate::output::{emit, Render, Table};
use crate::view::{DigestView, DigestsView, EndpointsView, MembersView, NodeView};
use crate::Ctx;
use serde::Serialize;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// Timeout for a blocking add-learner when `--timeout-ms` is not given.
const ADD_LEARNER_TIMEOUT_MS: u64 = 120_000;

/// `licctl endpoint status`.
pub async fn endpoint_status(ctx: &Ctx) -> anyhow::Result<()> {
    let client = ctx.client()?;
    let nodes = status_rows(&client, &ctx.endpoints).await;
    let failed = nodes.iter().filter(|n| n.error.is_some()).count();
    emit(ctx.output, &EndpointsView(nodes))?;
    all_answered(failed, ctx.endpoints.len())
}

/// `licctl leader transfer`: asks the leader (found by following hints) to hand over.
pub async fn transfer_leader(ctx: &Ctx, node_id: u64) -> anyhow::Result<()> {
    let mut client = ctx.client_with_default(Some(20_000))?;
    let req = pb::TransferLeaderRequest { node_id };
    let r = client
        .retrying(|ch| async move { ClusterClient::new(ch).transfer_leader(req).await })
        .await?;
    let line = format!("leader: node {} (term {})", r.leader_id, r.term);
    crate::waits::print_line_or_json(
        ctx.output,
        &line,
        &serde_json::json!({"leader_id": r.leader_id, "term": r.term}),
    )
}

/// `licctl endpoint health`: exit 0 only when every endpoint is live and ready.
pub async fn endpoint_health(ctx: &Ctx) -> anyhow::Result<()> {
    let client = ctx.client()?;
    let calls = ctx.endpoints.iter().enumerate().map(|(i, endpoint)| {
        let channel = client.channel_at(i);
        async move { health_row(endpoint, channel).await }
    });
    let rows = futures::future::join_all(calls).await;
    let unhealthy = rows.iter().filter(|r| !r.healthy()).count();
    emit(ctx.output, &HealthView(rows))?;
    if unhealthy > 0 {
        let msg = format!(
            "{unhealthy} of {} endpoints not healthy",
            ctx.endpoints.len()
        );
        return Err(reported(UNAVAILABLE, msg));
    }
    Ok(())
}

async fn health_row(endpoint: &str, channel: licstore_client::Transport) -> HealthRow {
    let mut client = HealthClient::new(channel);
    let started = std::time::Instant::now();
    let mut row = HealthRow {
        endpoint: endpoint.to_owned(),
        ..HealthRow::default()
    };
    for (service, slot) in [("liveness", &mut row.live), ("readiness", &mut row.ready)] {
        let req = HealthCheckRequest {
            service: service.to_owned(),
        };
        *slot = match client.check(req).await {
            Ok(r) => r.into_inner().status().as_str_name().to_lowercase(),
            Err(status) => format!("error: {}", describe_status(&status)),
        };
    }
    row.took_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    row
}

/// One endpoint's health.
#[derive(Clone, Debug, Default, Serialize)]
pub struct HealthRow {
    pub endpoint: String,
    /// `serving`, `not_serving`, or the error.
    pub live: String,
    pub ready: String,
    /// Both checks, in milliseconds.
    pub took_ms: u64,
}

impl HealthRow {
    fn healthy(&self) -> bool {
        self.live == "serving" && self.ready == "serving"
    }
}

/// `licctl endpoint health` output.
#[derive(Clone, Debug, Serialize)]
pub struct HealthView(pub Vec<HealthRow>);

impl Render for HealthView {
    fn table(&self) -> Table {
        let mut t = Table::new(&["endpoint", "live", "ready", "took"]);
        for r in &self.0 {
            t.row([
                r.endpoint.clone(),
                r.live.clone(),
                r.ready.clone(),
                format!("{} ms", r.took_ms),
            ]);
        }
        t
    }
}

/// Cluster.Status of every endpoint, asked concurrently and once (no retries); a failed call
/// is a row with `error` set.
pub async fn status_rows(client: &Client, endpoints: &[String]) -> Vec<NodeView> {
    let calls = endpoints.iter().enumerate().map(|(i, endpoint)| {
        let cluster = client.cluster_at(i);
        async move {
            let Some(mut cluster) = cluster else {
                return failed_node(endpoint, "no channel");
            };
            match cluster.status(pb::StatusRequest {}).await {
                Ok(r) => NodeView::new(endpoint, r.get_ref()),
                Err(status) => failed_node(endpoint, &describe_status(&status)),
            }
        }
    });
    futures::future::join_all(calls).await
}

fn failed_node(endpoint: &str, error: &str) -> NodeView {
    NodeView {
        endpoint: endpoint.to_owned(),
        error: Some(error.to_owned()),
        ..NodeView::default()
    }
}

/// `licctl digest`.
pub async fn digest(ctx: &Ctx) -> anyhow::Result<()> {
    // A digest reads the whole state machine: allow it a minute unless --timeout-ms says.
    let client = ctx.client_with_default(Some(60_000))?;
    let digests = digest_rows(&client, &ctx.endpoints).await;
    let failed = digests.iter().filter(|d| d.error.is_some()).count();
    emit(ctx.output, &DigestsView(digests))?;
    all_answered(failed, ctx.endpoints.len())
}

/// Cluster.StateDigest of every endpoint, asked concurrently and once (no retries); a failed
/// call is a row with `error` set.
pub async fn digest_rows(client: &Client, endpoints: &[String]) -> Vec<DigestView> {
    let calls = endpoints.iter().enumerate().map(|(i, endpoint)| {
        let cluster = client.cluster_at(i);
        async move {
            let mut view = DigestView {
                endpoint: endpoint.clone(),
                ..DigestView::default()
            };
            let Some(mut cluster) = cluster else {
                view.error = Some("no channel".to_owned());
                return view;
            };
            match cluster.state_digest(pb::StateDigestRequest {}).await {
                Ok(r) => {
                    let r = r.into_inner();
                    (view.applied_index, view.digest, view.records) =
                        (r.applied_index, r.digest, r.records);
                }
                Err(status) => view.error = Some(describe_status(&status)),
            }
            view
        }
    });
    futures::future::join_all(calls).await
}

fn all_answered(failed: usize, total: usize) -> anyhow::Result<()> {
    match failed {
        0 => Ok(()),
        n => Err(reported(
            UNAVAILABLE,
            format!("{n} of {total} endpoints did not answer"),
        )),
    }
}

/// `licctl member ...`.
pub async fn member(ctx: &Ctx, command: MemberCommand) -> anyhow::Result<()> {
    let response = match command {
        MemberCommand::List => member_list(ctx).await?,
        MemberCommand::AddLearner { id, addr, no_wait } => {
            let request = pb::AddLearnerRequest {
                node_id: id,
                addr,
                blocking: !no_wait,
            };
            let timeout = if no_wait {
                None
            } else {
                Some(ADD_LEARNER_TIMEOUT_MS)
            };
            let mut client = ctx.client_with_default(timeout)?;
            client
                .retrying(|ch| {
                    let request = request.clone();
                    async move { ClusterClient::new(ch).add_learner(request).await }
                })
                .await?
        }
        MemberCommand::Promote { id } => {
            let mut client = ctx.client()?;
            client
                .retrying(|ch| async move {
                    ClusterClient::new(ch)
                        .promote(pb::PromoteRequest { node_id: id })
                        .await
                })
                .await?
        }
        MemberCommand::Remove { id } => {
            let mut client = ctx.client()?;
            client
                .retrying(|ch| async move {
                    let request = pb::RemoveMemberRequest { node_id: id };
                    ClusterClient::new(ch).remove_member(request).await
                })
                .await?
        }
    };
    emit(ctx.output, &MembersView::from(&response))
}

async fn member_list(ctx: &Ctx) -> anyhow::Result<pb::MemberListResponse> {
    let mut client = ctx.client()?;
    fetch_members(&mut client).await
}

/// Cluster.MemberList, retried.
pub async fn fetch_members(client: &mut Client) -> anyhow::Result<pb::MemberListResponse> {
    let response = client
        .retrying(|ch| async move {
            ClusterClient::new(ch)
                .member_list(pb::MemberListRequest {})
                .await
        })
        .await?;
    Ok(response)
}
