//! Work the leader does on its own: the expiry sweeper, change-feed retention, and forgetting
//! the revocations of tokens that have expired.
//!
//! Both only propose commands; what a command does is decided when it is applied, identically
//! on every replica. A node that is not the leader keeps its tasks idle, so a new leader takes
//! over without any hand-off.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use licstore_store::query::{plan, Query};
use licstore_store::{Command, CommandResult};

use crate::api::today;
use crate::node::Node;

/// Licenses marked expired per proposal.
pub const EXPIRE_BATCH: usize = 500;
/// Proposals per sweep at most; the next sweep continues.
const MAX_BATCHES_PER_SWEEP: usize = 100;

/// Starts the sweeper: every `every`, the leader proposes `Expire` for the live licenses whose
/// last valid day is before today (Asia/Shanghai), found through the expiry index.
pub fn spawn_expiry_sweeper(node: Arc<Node>, every: Duration) {
    every_while_leader(node, every, |node| async move { sweep(&node).await });
}

/// Runs `pass` every `every` (the first at once) while this node leads; a pass that runs long
/// delays the next instead of piling them up.
pub fn every_while_leader<F, Fut>(node: Arc<Node>, every: Duration, pass: F)
where
    F: Fn(Arc<Node>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if node.is_leader() {
                pass(node.clone()).await;
            }
        }
    });
}

async fn sweep(node: &Node) {
    let as_of = today();
    let query = Query {
        expires_before: Some(as_of),
        ..Query::default()
    };
    let Ok(p) = plan(&query) else { return };
    for _ in 0..MAX_BATCHES_PER_SWEEP {
        let reader = node.reader.clone();
        let (q, p2) = (query.clone(), p.clone());
        let page = tokio::task::spawn_blocking(move || reader.query(&q, &p2, None, EXPIRE_BATCH));
        let identifiers: Vec<String> = match page.await {
            Ok(Ok(page)) => page.licenses.into_iter().map(|l| l.identifier).collect(),
            Ok(Err(e)) => return tracing::error!(error = %e, "expiry sweep: reading the index"),
            Err(e) => return tracing::error!(error = %e, "expiry sweep: reader task"),
        };
        if identifiers.is_empty() {
            return;
        }
        let asked = identifiers.len();
        let cmd = Command::Expire { as_of, identifiers };
        match node.write_local(cmd).await {
            Ok((CommandResult::Expired(done), index)) => {
                let expired = done.len();
                consensus_info!(node, expired, index, %as_of, "expiry sweep");
                if done.is_empty() || asked < EXPIRE_BATCH {
                    return;
                }
            }
            Ok((other, _)) => return tracing::error!(?other, "expiry sweep: unexpected result"),
            // Lost leadership or quorum: the next leader's sweep picks these up.
            Err(status) => return tracing::warn!(error = %status.message(), "expiry sweep"),
        }
    }
}

/// How often the leader looks for revocations of expired tokens.
pub const REVOCATION_SWEEP: Duration = Duration::from_secs(600);

/// Starts the sweep that forgets revoked tokens once they have expired (plus the leeway a
/// token's expiry is checked with), so the list stays as short as the tokens still valid.
pub fn spawn_revocation_sweeper(node: Arc<Node>) {
    every_while_leader(node, REVOCATION_SWEEP, |node| async move {
        forget_expired_revocations(&node).await
    });
}

/// Margin past a token's expiry and leeway before its revocation is forgotten, for nodes
/// whose clocks run behind the leader's.
pub const REVOCATION_MARGIN_S: u64 = 3600;

/// The second before which a kept expiry is past at `now_s` on every node whose clock is
/// within [`REVOCATION_MARGIN_S`] of this one.
pub fn forget_before_s(now_s: u64) -> u64 {
    now_s.saturating_sub(crate::access::TOKEN_LEEWAY_S + REVOCATION_MARGIN_S)
}

/// The ids of revoked tokens no longer valid anyway at `now_s`.
pub fn expired_revocations(
    kept: &[licstore_store::revoked_tokens::RevokedToken],
    now_s: u64,
) -> Vec<String> {
    let before_s = forget_before_s(now_s);
    kept.iter()
        .filter(|r| r.expires_at_s < before_s)
        .map(|r| r.jti.clone())
        .collect()
}

async fn forget_expired_revocations(node: &Node) {
    let reader = node.reader.clone();
    let kept = match tokio::task::spawn_blocking(move || reader.revoked_tokens()).await {
        Ok(Ok(kept)) => kept,
        Ok(Err(e)) => return tracing::error!(error = %e, "revocation sweep: reading"),
        Err(e) => return tracing::error!(error = %e, "revocation sweep: reader task"),
    };
    let now_s = crate::sealing::now_ms() / 1000;
    let expired = expired_revocations(&kept, now_s);
    let batch_max = licstore_store::revoked_tokens::FORGET_BATCH_MAX;
    for jtis in expired.chunks(batch_max) {
        let cmd = Command::ForgetRevokedTokens {
            jtis: jtis.to_vec(),
            expired_before_s: forget_before_s(now_s),
        };
        match node.write_local(cmd).await {
            Ok((CommandResult::RevocationsForgotten(forgotten), index)) => {
                consensus_info!(
                    node,
                    forgotten,
                    index,
                    "revocations of expired tokens forgotten"
                );
            }
            Ok((other, _)) => return tracing::error!(?other, "revocation sweep: unexpected"),
            Err(status) => return tracing::warn!(error = %status.message(), "revocation sweep"),
        }
    }
}

/// Starts retention: every node samples its applied index at intervals, and the leader
/// compacts the change feed to the newest sample that is older than `retention`, so events
/// are kept at least that long (and at most one sampling interval longer).
pub fn spawn_retention(node: Arc<Node>, retention: Duration) {
    if retention.is_zero() {
        return;
    }
    let every = (retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(3600));
    tokio::spawn(async move {
        let mut samples = Samples::default();
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = Instant::now();
            samples.record(now, *node.applied.borrow());
            let Some(revision) = samples.compaction_target(now, retention) else {
                continue;
            };
            if node.is_leader() {
                compact(&node, revision).await;
            }
        }
    });
}

async fn compact(node: &Node, revision: u64) {
    let current = node.reader.compacted_revision().unwrap_or(0);
    if revision <= current {
        return;
    }
    match node.write_local(Command::Compact { revision }).await {
        Ok((CommandResult::Compacted(Ok(r)), index)) => {
            let compacted_revision = r;
            consensus_info!(node, compacted_revision, index, "change feed compacted");
        }
        Ok((other, _)) => tracing::error!(?other, "retention: unexpected result"),
        Err(status) => tracing::warn!(error = %status.message(), "retention"),
    }
}

/// Applied indexes sampled over time. Decisions only; the caller supplies the clock.
#[derive(Debug, Default)]
pub struct Samples {
    taken: VecDeque<(Instant, u64)>,
}

impl Samples {
    /// Records the applied index seen at `at`.
    pub fn record(&mut self, at: Instant, applied_index: u64) {
        self.taken.push_back((at, applied_index));
    }

    /// The revision to compact to: one past the newest sample at least `retention` old, whose
    /// events are then all older than `retention`. Older samples are dropped.
    pub fn compaction_target(&mut self, now: Instant, retention: Duration) -> Option<u64> {
        let old_enough = |at: &Instant| now.saturating_duration_since(*at) >= retention;
        let newest_old = self.taken.iter().rposition(|(at, _)| old_enough(at))?;
        self.taken.drain(..newest_old);
        let (_, index) = self.taken.front()?;
        (*index > 0).then_some(index + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_revocations_past_expiry_and_leeway_are_forgotten() {
        use licstore_store::revoked_tokens::RevokedToken;
        let margin = crate::access::TOKEN_LEEWAY_S + REVOCATION_MARGIN_S;
        let at = |jti: &str, expires_at_s: u64| RevokedToken {
            jti: jti.into(),
            expires_at_s,
        };
        let now = 1_800_000_000;
        let kept = [
            at("long-gone", now - 7 * 24 * 3600),
            at("just-past-margin", now - margin - 1),
            at("within-margin", now - margin),
            at("expired-an-hour-ago", now - 3600),
            at("still-valid", now + 600),
        ];
        assert_eq!(
            expired_revocations(&kept, now),
            ["long-gone", "just-past-margin"]
        );
    }

    #[test]
    fn retention_compacts_to_the_newest_sample_old_enough() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut samples = Samples::default();
        let cases = [
            // (sample at, applied index, check at, want)
            (0, 0, 5, None),
            (10, 40, 15, None),
            (20, 90, 30, Some(41)),
            (30, 120, 40, Some(91)),
            (40, 150, 45, Some(121)),
            (50, 150, 56, Some(151)),
        ];
        for (at, index, check, want) in cases {
            samples.record(t0 + s(at), index);
            assert_eq!(
                samples.compaction_target(t0 + s(check), s(15)),
                want,
                "check {check}"
            );
        }
        assert!(
            samples.taken.len() <= 2,
            "old samples are dropped: {:?}",
            samples.taken
        );
    }
}
