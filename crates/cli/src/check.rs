//! `licctl check`: asks every endpoint to walk its records and indexes (Cluster.Check) and
//! prints one row per endpoint, then every problem reported. Exit 1 when any node reports a
//! problem, 3 when a node does not answer.

use licstore_proto::v1 as pb;
use serde::Serialize;

use crate::exit::{describe_status, reported, FAILURE, UNAVAILABLE};
use crate::output::{emit, Render, Table};
use crate::Ctx;

/// What one endpoint reported.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CheckRow {
    pub endpoint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub applied_index: u64,
    pub records_checked: u64,
    pub index_entries_checked: u64,
    pub events_checked: u64,
    pub problem_count: u64,
    pub problems: Vec<ProblemRow>,
}

/// One problem.
#[derive(Clone, Debug, Serialize)]
pub struct ProblemRow {
    pub table: String,
    pub key: String,
    pub detail: String,
}

/// `licctl check` output.
#[derive(Clone, Debug, Serialize)]
pub struct ChecksView(pub Vec<CheckRow>);

impl Render for ChecksView {
    fn table(&self) -> Table {
        let mut t = Table::new(&[
            "endpoint",
            "applied",
            "records",
            "index entries",
            "events",
            "problems",
        ]);
        for r in &self.0 {
            let problems = match &r.error {
                Some(e) => format!("error: {e}"),
                None => r.problem_count.to_string(),
            };
            t.row([
                r.endpoint.clone(),
                r.applied_index.to_string(),
                r.records_checked.to_string(),
                r.index_entries_checked.to_string(),
                r.events_checked.to_string(),
                problems,
            ]);
        }
        for r in &self.0 {
            for p in &r.problems {
                t.row([
                    r.endpoint.clone(),
                    p.table.clone(),
                    p.key.clone(),
                    String::new(),
                    String::new(),
                    p.detail.clone(),
                ]);
            }
        }
        t
    }
}

fn row(endpoint: &str, answer: Result<pb::CheckResponse, tonic::Status>) -> CheckRow {
    let mut row = CheckRow {
        endpoint: endpoint.to_owned(),
        ..CheckRow::default()
    };
    match answer {
        Ok(r) => {
            row.applied_index = r.applied_index;
            row.records_checked = r.records_checked;
            row.index_entries_checked = r.index_entries_checked;
            row.events_checked = r.events_checked;
            row.problem_count = r.problem_count;
            row.problems = r
                .problems
                .into_iter()
                .map(|p| ProblemRow {
                    table: p.table,
                    key: p.key,
                    detail: p.detail,
                })
                .collect();
        }
        Err(status) => row.error = Some(describe_status(&status)),
    }
    row
}

/// Runs the check on every endpoint.
pub async fn check(ctx: &Ctx) -> anyhow::Result<()> {
    // A walk reads every record and index entry: allow it ten minutes unless --timeout-ms says.
    let client = ctx.client_with_default(Some(600_000))?;
    let calls = ctx.endpoints.iter().enumerate().map(|(i, endpoint)| {
        let cluster = client.cluster_at(i);
        async move {
            let answer = match cluster {
                Some(mut c) => c.check(pb::CheckRequest {}).await.map(|r| r.into_inner()),
                None => Err(tonic::Status::internal("no channel")),
            };
            row(endpoint, answer)
        }
    });
    let rows = futures::future::join_all(calls).await;
    let failed = rows.iter().filter(|r| r.error.is_some()).count();
    let problems: u64 = rows.iter().map(|r| r.problem_count).sum();
    emit(ctx.output, &ChecksView(rows))?;
    if problems > 0 {
        return Err(reported(FAILURE, format!("{problems} problems found")));
    }
    if failed > 0 {
        return Err(reported(
            UNAVAILABLE,
            format!("{failed} endpoints did not answer"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_carry_answers_and_errors() {
        let ok = pb::CheckResponse {
            applied_index: 7,
            records_checked: 3,
            index_entries_checked: 3,
            problem_count: 1,
            problems: vec![pb::CheckProblem {
                table: "ident".into(),
                key: "k".into(),
                detail: "points at no current record".into(),
            }],
            events_checked: 2,
        };
        let r = row("a", Ok(ok));
        assert_eq!(
            (r.applied_index, r.problem_count, r.problems.len()),
            (7, 1, 1)
        );
        assert!(r.error.is_none());
        let r = row("b", Err(tonic::Status::unavailable("down")));
        assert!(
            r.error.as_deref().is_some_and(|e| e.contains("down")),
            "{r:?}"
        );
        let text = ChecksView(vec![row("a", Ok(pb::CheckResponse::default()))])
            .table()
            .render();
        assert!(text.contains("PROBLEMS"), "{text}");
    }
}
