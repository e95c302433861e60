//! `licctl snapshot save|status|restore`: online backups and the offline restore that starts a
//! new cluster from one.
//!
//! `save` streams `Cluster.Snapshot` from the first endpoint that answers into
//! `FILE.part-<pid>`,
//! syncs it, checks its digest, and only then gives it its name: a file named `FILE` is always a
//! whole, checked backup. `status` and `restore` need no server; `restore` writes a new data
//! directory (see `licstore_store::backup`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use licstore_proto::v1 as pb;
use licstore_proto::v1::cluster_client::ClusterClient;
use licstore_store::snapshot::{self, SnapshotMeta};
use openraft::vote::RaftLeaderId;
use serde::Serialize;

use crate::args::{RestoreArgs, SnapshotCommand};
use crate::exit::{describe_status, reported, usage, FAILURE, UNAVAILABLE};
use crate::output::{emit, Render, Table};
use crate::Ctx;

/// How long a backup stream may take unless `--timeout-ms` says otherwise.
const SAVE_TIMEOUT_MS: u64 = 30 * 60 * 1000;

/// Runs one `licctl snapshot` command.
pub async fn run(ctx: &Ctx, command: SnapshotCommand) -> anyhow::Result<()> {
    match command {
        SnapshotCommand::Save { file } => save(ctx, &file).await,
        SnapshotCommand::Status { file } => status(ctx, &file),
        SnapshotCommand::Restore(args) => restore(ctx, &args),
    }
}

/// What a backup file holds, as printed.
#[derive(Clone, Debug, Serialize)]
pub struct SnapshotView {
    pub file: String,
    pub revision: u64,
    pub term: u64,
    pub size_bytes: u64,
    pub members: BTreeMap<u64, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<String>,
}

impl Render for SnapshotView {
    fn table(&self) -> Table {
        let mut t = Table::key_value();
        t.row(["file".into(), self.file.clone()]);
        if let Some(e) = &self.endpoint {
            t.row(["from".into(), e.clone()]);
        }
        if let Some(d) = &self.data_dir {
            t.row(["restored into".into(), d.clone()]);
        }
        t.row(["revision".into(), self.revision.to_string()]);
        t.row(["term".into(), self.term.to_string()]);
        t.row(["bytes".into(), self.size_bytes.to_string()]);
        t.row(["digest", "checked (blake3)"]);
        let members: Vec<String> = self
            .members
            .iter()
            .map(|(id, addr)| format!("{id}={addr}"))
            .collect();
        t.row(["members".into(), members.join(",")]);
        t
    }
}

fn view(file: &Path, meta: &SnapshotMeta) -> anyhow::Result<SnapshotView> {
    let position = meta
        .last_log_id
        .as_ref()
        .map(|l| (l.index(), l.committed_leader_id().term()));
    let members = meta
        .last_membership
        .membership()
        .nodes()
        .map(|(id, node)| (*id, node.addr.clone()))
        .collect();
    view_of(file, position, members)
}

/// The view of `file` at a (revision, term), `None` for an empty state.
fn view_of(
    file: &Path,
    position: Option<(u64, u64)>,
    members: BTreeMap<u64, String>,
) -> anyhow::Result<SnapshotView> {
    let (revision, term) = position.unwrap_or((0, 0));
    Ok(SnapshotView {
        file: file.display().to_string(),
        revision,
        term,
        size_bytes: std::fs::metadata(file)?.len(),
        members,
        endpoint: None,
        data_dir: None,
    })
}

/// `licctl snapshot save FILE`.
async fn save(ctx: &Ctx, file: &Path) -> anyhow::Result<()> {
    if ctx.endpoints.is_empty() {
        return Err(usage("no endpoints"));
    }
    let part = part_path(file);
    let client = ctx.client_with_default(Some(SAVE_TIMEOUT_MS))?;
    // The local side is checked before any node spends a whole-state copy on it.
    std::fs::File::create(&part)
        .map_err(|e| reported(FAILURE, format!("{}: {e}", part.display())))?;
    let mut failures = Vec::new();
    for (i, endpoint) in ctx.endpoints.iter().enumerate() {
        let attempt = receive(ClusterClient::new(client.channel_at(i)), &part).await;
        let error = match attempt {
            Ok(()) => match seal(&part, file) {
                Ok(meta) => {
                    let mut v = view(file, &meta)?;
                    v.endpoint = Some(endpoint.clone());
                    return emit(ctx.output, &v);
                }
                Err(e) => format!("{e:#}"),
            },
            Err(e) => e,
        };
        let _ = std::fs::remove_file(&part);
        eprintln!("snapshot from {endpoint}: {error}");
        failures.push(error);
    }
    Err(reported(
        UNAVAILABLE,
        format!("no endpoint gave a backup ({} tried)", failures.len()),
    ))
}

/// `FILE.part-<pid>`: two saves to one FILE do not write into each other's part file.
fn part_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(format!(".part-{}", std::process::id()));
    PathBuf::from(name)
}

/// Streams one endpoint's copy into `part`.
async fn receive(
    mut client: ClusterClient<licstore_client::Transport>,
    part: &Path,
) -> Result<(), String> {
    let mut stream = client
        .snapshot(pb::SnapshotRequest {})
        .await
        .map_err(|s| describe_status(&s))?
        .into_inner();
    let mut out = std::io::BufWriter::new(std::fs::File::create(part).map_err(|e| e.to_string())?);
    let mut done = false;
    while let Some(message) = stream.message().await.map_err(|s| describe_status(&s))? {
        out.write_all(&message.blob).map_err(|e| e.to_string())?;
        done = message.remaining_bytes == 0;
    }
    if !done {
        return Err("the stream ended before the whole file".into());
    }
    let file = out.into_inner().map_err(|e| e.to_string())?;
    // Durability: the backup must be on disk before it gets its final name.
    file.sync_all().map_err(|e| e.to_string())
}

/// Checks the received file, then renames it to `file`.
fn seal(part: &Path, file: &Path) -> anyhow::Result<SnapshotMeta> {
    let meta = snapshot::verify(part)?;
    std::fs::rename(part, file)?;
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        snapshot::sync_dir(dir)?;
    }
    Ok(meta)
}

/// `licctl snapshot status FILE`.
fn status(ctx: &Ctx, file: &Path) -> anyhow::Result<()> {
    let meta = snapshot::verify(file)
        .map_err(|e| reported(FAILURE, format!("{}: {e}", file.display())))?;
    emit(ctx.output, &view(file, &meta)?)
}

/// `licctl snapshot restore FILE --data-dir DIR --id N --init id=host:port,...`.
fn restore(ctx: &Ctx, args: &RestoreArgs) -> anyhow::Result<()> {
    let members = parse_members(&args.init).map_err(usage)?;
    let done = licstore_store::backup::restore(&args.file, &args.data_dir, args.id, &members)
        .map_err(|e| reported(FAILURE, e.to_string()))?;
    let term = done.last_log_id.committed_leader_id().term();
    let mut v = view_of(
        &args.file,
        Some((done.last_log_id.index(), term)),
        done.members,
    )?;
    v.data_dir = Some(args.data_dir.display().to_string());
    emit(ctx.output, &v)
}

/// Parses `--init`: the shared member-list syntax, and at least one member.
fn parse_members(spec: &str) -> Result<BTreeMap<u64, String>, String> {
    let members = licstore_client::parse_members(spec)?;
    if members.is_empty() {
        return Err("--init: no members".into());
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_lists() {
        let ok = parse_members("1=127.0.0.1:7001, 2=db-1.peers:7001").expect("valid");
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[&2], "db-1.peers:7001");
        for bad in ["", "1", "0=a:1", "x=a:1", "1=a", "1=a:port", "1=a:1,1=b:1"] {
            assert!(parse_members(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn part_files_sit_beside_the_target() {
        let want = format!("/b/x.snap.part-{}", std::process::id());
        assert_eq!(part_path(Path::new("/b/x.snap")), PathBuf::from(want));
    }
}
