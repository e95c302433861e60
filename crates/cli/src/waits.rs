//! Commands that look at every endpoint until the cluster is in a wanted state, for scripts:
//! `wait-leader`, `leader` and `wait-converged`.
//!
//! Each round asks every endpoint once, concurrently, with a short per-call timeout (1 s, or
//! `--timeout-ms`), through [`crate::cluster::status_rows`] / [`crate::cluster::digest_rows`];
//! rounds start every [`POLL_INTERVAL`] until the condition holds or `--timeout-s` has passed.
//! The conditions are pure functions over the rows ([`agreed_leader`], [`known_leader`],
//! [`converged`]) so they can be tested on tables of answers.
//!
//! * `wait-leader` holds when more than half of the endpoints answer, all of them name the same
//!   leader, and that node itself answers with role `leader`. It prints `leader: ID ADDR`.
//! * `wait-converged` holds when every endpoint answers with the same applied index, record
//!   count and digest. It prints them.
//! * On timeout both print the last round's answers (the `endpoint status` / `digest` table)
//!   and exit 3.
//! * `leader` asks once and prints `ID ADDR`; it exits 3 when no endpoint knows a leader.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::args::{WaitConvergedArgs, WaitLeaderArgs};
use crate::cluster::{digest_rows, fetch_members, status_rows};
use crate::exit::{reported, UNAVAILABLE};
use crate::output::{emit, OutputFormat};
use crate::view::{DigestView, DigestsView, EndpointsView, NodeView};
use crate::Ctx;

/// Pause between the starts of two polling rounds.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Per-call timeout of a polling round when `--timeout-ms` is not given.
const POLL_CALL_TIMEOUT_MS: u64 = 1_000;
/// Per-call timeout of a state digest, which reads the whole state machine.
const DIGEST_CALL_TIMEOUT_MS: u64 = 60_000;
/// The role a leader reports in Cluster.Status.
const LEADER_ROLE: &str = "leader";

/// A leader as the endpoints see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Leader {
    /// Node id.
    pub leader_id: u64,
    /// Its address, when known (from its own Status answer or the member list).
    pub addr: Option<String>,
    /// The term it leads in, when it answered itself.
    pub term: Option<u64>,
}

/// The leader every answering endpoint agrees on, or `None`. Holds when more than half of the
/// rows answered (a lone node that still believes it leads cannot be confirmed), every answer
/// names the same leader, and the leader itself answered with role `leader`.
pub fn agreed_leader(rows: &[NodeView]) -> Option<Leader> {
    let answered: Vec<&NodeView> = rows.iter().filter(|r| r.error.is_none()).collect();
    if answered.len() * 2 <= rows.len() {
        return None;
    }
    let id = answered.first().filter(|r| r.has_leader)?.leader_id;
    if answered.iter().any(|r| !r.has_leader || r.leader_id != id) {
        return None;
    }
    let own = answered
        .iter()
        .find(|r| r.node_id == id && r.role == LEADER_ROLE)?;
    Some(Leader {
        leader_id: id,
        addr: Some(own.addr.clone()),
        term: Some(own.term),
    })
}

/// The leader as best known from one round: a node answering with role `leader` (the highest
/// term wins), else the leader named by the answers of the highest term. `None` when no
/// answering endpoint knows a leader.
pub fn known_leader(rows: &[NodeView]) -> Option<Leader> {
    let answered = rows.iter().filter(|r| r.error.is_none());
    let claimed = answered
        .clone()
        .filter(|r| r.role == LEADER_ROLE)
        .max_by_key(|r| r.term);
    if let Some(own) = claimed {
        return Some(Leader {
            leader_id: own.node_id,
            addr: Some(own.addr.clone()),
            term: Some(own.term),
        });
    }
    let named = answered.filter(|r| r.has_leader).max_by_key(|r| r.term)?;
    let id = named.leader_id;
    let own = rows.iter().find(|r| r.error.is_none() && r.node_id == id);
    Some(Leader {
        leader_id: id,
        addr: own.map(|r| r.addr.clone()),
        term: None,
    })
}

/// The state every endpoint agrees on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Converged {
    pub applied_index: u64,
    pub records: u64,
    pub digest: String,
}

/// The common state when every row answered with the same applied index, record count and
/// (non-empty) digest.
pub fn converged(rows: &[DigestView]) -> Option<Converged> {
    let first = rows.first()?;
    let same = |r: &DigestView| {
        r.error.is_none()
            && r.applied_index == first.applied_index
            && r.records == first.records
            && r.digest == first.digest
    };
    if first.digest.is_empty() || !rows.iter().all(same) {
        return None;
    }
    Some(Converged {
        applied_index: first.applied_index,
        records: first.records,
        digest: first.digest.clone(),
    })
}

/// Runs `round` every [`POLL_INTERVAL`] until `check` accepts its rows or `timeout` passes.
/// Returns what was accepted and the time waited, or the rows of the last round.
async fn poll<R, T, F, Fut>(
    timeout: Duration,
    mut round: F,
    check: impl Fn(&[R]) -> Option<T>,
) -> Result<(T, Duration), Vec<R>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Vec<R>>,
{
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = Vec::new();
    loop {
        let next = tokio::time::Instant::now() + POLL_INTERVAL;
        match tokio::time::timeout_at(deadline, round()).await {
            Ok(rows) => match check(&rows) {
                Some(found) => return Ok((found, started.elapsed())),
                None => last = rows,
            },
            Err(_) => return Err(last),
        }
        if next >= deadline {
            return Err(last);
        }
        tokio::time::sleep_until(next).await;
    }
}

/// What `wait-leader` prints.
#[derive(Debug, Serialize)]
struct WaitedLeader {
    #[serde(flatten)]
    leader: Leader,
    waited_ms: u64,
}

/// `licctl wait-leader`.
pub async fn wait_leader(ctx: &Ctx, args: WaitLeaderArgs) -> anyhow::Result<()> {
    let client = ctx.client_with_default(Some(POLL_CALL_TIMEOUT_MS))?;
    let timeout = Duration::from_secs(args.timeout_s);
    let outcome = poll(
        timeout,
        || status_rows(&client, &ctx.endpoints),
        agreed_leader,
    )
    .await;
    match outcome {
        Ok((leader, waited)) => {
            let line = format!("leader: {}", leader_line(&leader));
            let waited_ms = u64::try_from(waited.as_millis()).unwrap_or(u64::MAX);
            print_line_or_json(ctx.output, &line, &WaitedLeader { leader, waited_ms })
        }
        Err(last) => {
            emit(ctx.output, &EndpointsView(last))?;
            Err(reported(
                UNAVAILABLE,
                format!(
                    "no leader agreed on by the answering endpoints within {}s",
                    args.timeout_s
                ),
            ))
        }
    }
}

/// `licctl leader`: `ID ADDR` of the leader, one line.
pub async fn leader(ctx: &Ctx) -> anyhow::Result<()> {
    let mut client = ctx.client_with_default(Some(POLL_CALL_TIMEOUT_MS))?;
    let rows = status_rows(&client, &ctx.endpoints).await;
    let Some(mut leader) = known_leader(&rows) else {
        return Err(reported(UNAVAILABLE, "no endpoint knows a leader"));
    };
    if leader.addr.is_none() {
        // The leader did not answer itself: its address is in the member list.
        if let Ok(members) = fetch_members(&mut client).await {
            leader.addr = members
                .members
                .iter()
                .find(|m| m.node_id == leader.leader_id)
                .map(|m| m.addr.clone());
        }
    }
    print_line_or_json(ctx.output, &leader_line(&leader), &leader)
}

/// The leader's address as the endpoints know it, if any endpoint does.
pub async fn leader_address(ctx: &Ctx) -> Option<String> {
    let client = ctx.client_with_default(Some(POLL_CALL_TIMEOUT_MS)).ok()?;
    known_leader(&status_rows(&client, &ctx.endpoints).await)?.addr
}

/// `ID ADDR`, with `-` for an unknown address.
fn leader_line(leader: &Leader) -> String {
    let addr = leader.addr.as_deref().unwrap_or("-");
    format!("{} {addr}", leader.leader_id)
}

/// `line` for the table format, `value` as JSON otherwise.
pub fn print_line_or_json<T: Serialize>(
    format: OutputFormat,
    line: &str,
    value: &T,
) -> anyhow::Result<()> {
    match format {
        OutputFormat::Table => println!("{line}"),
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(value)?),
    }
    Ok(())
}

/// What `wait-converged` prints.
#[derive(Debug, Serialize)]
struct WaitedConvergence {
    #[serde(flatten)]
    state: Converged,
    endpoints: usize,
    waited_ms: u64,
}

/// `licctl wait-converged`.
pub async fn wait_converged(ctx: &Ctx, args: WaitConvergedArgs) -> anyhow::Result<()> {
    let client = ctx.client_with_default(Some(DIGEST_CALL_TIMEOUT_MS))?;
    let timeout = Duration::from_secs(args.timeout_s);
    let outcome = poll(timeout, || digest_rows(&client, &ctx.endpoints), converged).await;
    match outcome {
        Ok((state, waited)) => {
            let line = format!(
                "converged: {} endpoints at applied index {}, {} records, digest {}",
                ctx.endpoints.len(),
                state.applied_index,
                state.records,
                state.digest
            );
            let value = WaitedConvergence {
                state,
                endpoints: ctx.endpoints.len(),
                waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
            };
            print_line_or_json(ctx.output, &line, &value)
        }
        Err(last) => {
            emit(ctx.output, &DigestsView(last))?;
            Err(reported(
                UNAVAILABLE,
                format!(
                    "the endpoints did not converge within {}s (last answers above)",
                    args.timeout_s
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row: `None` for an endpoint that did not answer, else (node id, role, term, leader).
    fn node(row: Option<(u64, &str, u64, Option<u64>)>) -> NodeView {
        let Some((id, role, term, leader)) = row else {
            return NodeView {
                error: Some("UNAVAILABLE: connection refused".to_owned()),
                ..NodeView::default()
            };
        };
        NodeView {
            node_id: id,
            addr: format!("127.0.0.1:700{id}"),
            role: role.to_owned(),
            term,
            leader_id: leader.unwrap_or(0),
            has_leader: leader.is_some(),
            ..NodeView::default()
        }
    }

    type Row = Option<(u64, &'static str, u64, Option<u64>)>;

    #[test]
    fn leader_agreement() {
        // (rows, agreed leader)
        let cases: [(&[Row], Option<u64>); 10] = [
            (
                &[
                    Some((1, "leader", 2, Some(1))),
                    Some((2, "follower", 2, Some(1))),
                    Some((3, "follower", 2, Some(1))),
                ],
                Some(1),
            ),
            // The old leader is dead and the survivors agree on a new one.
            (
                &[
                    None,
                    Some((2, "leader", 3, Some(2))),
                    Some((3, "follower", 3, Some(2))),
                ],
                Some(2),
            ),
            // The survivors still name the dead leader.
            (
                &[
                    None,
                    Some((2, "follower", 2, Some(1))),
                    Some((3, "follower", 2, Some(1))),
                ],
                None,
            ),
            // Election under way.
            (
                &[
                    None,
                    Some((2, "candidate", 3, None)),
                    Some((3, "follower", 3, None)),
                ],
                None,
            ),
            // Disagreement.
            (
                &[
                    Some((1, "leader", 2, Some(1))),
                    Some((2, "leader", 3, Some(2))),
                    Some((3, "follower", 3, Some(2))),
                ],
                None,
            ),
            // The named leader answers but is no longer leader.
            (
                &[
                    Some((1, "follower", 4, Some(1))),
                    Some((2, "follower", 4, Some(1))),
                    Some((3, "follower", 4, Some(1))),
                ],
                None,
            ),
            // A lone node that believes it leads is not enough.
            (&[Some((1, "leader", 2, Some(1))), None, None], None),
            (&[None, None, None], None),
            (&[], None),
            // A single endpoint is its own majority.
            (&[Some((1, "leader", 1, Some(1)))], Some(1)),
        ];
        for (rows, want) in cases {
            let rows: Vec<NodeView> = rows.iter().copied().map(node).collect();
            let got = agreed_leader(&rows);
            assert_eq!(got.as_ref().map(|l| l.leader_id), want, "{rows:?}");
            if let Some(l) = got {
                assert_eq!(l.addr, Some(format!("127.0.0.1:700{}", l.leader_id)));
            }
        }
    }

    #[test]
    fn best_known_leader() {
        // (rows, leader id, address known)
        type Want = Option<(u64, bool)>;
        let cases: [(&[Row], Want); 6] = [
            (
                &[
                    Some((1, "leader", 2, Some(1))),
                    Some((2, "follower", 2, Some(1))),
                ],
                Some((1, true)),
            ),
            // The leader did not answer: named by the followers, address unknown.
            (&[None, Some((2, "follower", 2, Some(1)))], Some((1, false))),
            // A stale leader of term 2 and a new one of term 3: the newer wins.
            (
                &[
                    Some((1, "leader", 2, Some(1))),
                    Some((2, "leader", 3, Some(2))),
                ],
                Some((2, true)),
            ),
            // Followers of different terms: the highest term's leader.
            (
                &[
                    Some((1, "follower", 2, Some(1))),
                    Some((3, "follower", 3, Some(2))),
                ],
                Some((2, false)),
            ),
            (&[Some((2, "candidate", 3, None)), None], None),
            (&[None, None], None),
        ];
        for (rows, want) in cases {
            let rows: Vec<NodeView> = rows.iter().copied().map(node).collect();
            let got = known_leader(&rows).map(|l| (l.leader_id, l.addr.is_some()));
            assert_eq!(got, want, "{rows:?}");
        }
    }

    fn digest(row: Option<(u64, u64, &str)>) -> DigestView {
        match row {
            None => DigestView {
                error: Some("UNAVAILABLE: down".to_owned()),
                ..DigestView::default()
            },
            Some((applied_index, records, digest)) => DigestView {
                applied_index,
                records,
                digest: digest.to_owned(),
                ..DigestView::default()
            },
        }
    }

    #[test]
    fn convergence() {
        type D = Option<(u64, u64, &'static str)>;
        // (rows, converged applied index)
        let cases: [(&[D], Option<u64>); 7] = [
            (
                &[Some((9, 3, "ab")), Some((9, 3, "ab")), Some((9, 3, "ab"))],
                Some(9),
            ),
            // A node still catching up.
            (
                &[Some((9, 3, "ab")), Some((7, 2, "cd")), Some((9, 3, "ab"))],
                None,
            ),
            // Same index, different state: diverged replicas never converge.
            (
                &[Some((9, 3, "ab")), Some((9, 3, "ff")), Some((9, 3, "ab"))],
                None,
            ),
            (&[Some((9, 3, "ab")), None, Some((9, 3, "ab"))], None),
            (&[Some((0, 0, "")), Some((0, 0, ""))], None),
            (&[], None),
            (&[Some((4, 1, "aa"))], Some(4)),
        ];
        for (rows, want) in cases {
            let rows: Vec<DigestView> = rows.iter().copied().map(digest).collect();
            let got = converged(&rows).map(|c| c.applied_index);
            assert_eq!(got, want, "{rows:?}");
        }
    }

    #[tokio::test]
    async fn polling_stops_on_success_or_timeout() {
        let mut n = 0u32;
        let found = poll(
            Duration::from_secs(5),
            || {
                n += 1;
                let rows = vec![n];
                async move { rows }
            },
            |rows: &[u32]| (rows[0] == 3).then_some(rows[0]),
        )
        .await;
        assert_eq!(found.map(|(v, _)| v), Ok(3));
        let never = poll(
            Duration::from_millis(500),
            || async { vec![0u32] },
            |_: &[u32]| None::<u32>,
        )
        .await;
        assert_eq!(never.map(|(v, _)| v), Err(vec![0]));
    }
}
