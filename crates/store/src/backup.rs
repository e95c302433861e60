//! Backups: a consistent copy of the replicated state taken while the node serves, and the
//! offline restore of such a copy into a new data directory that starts a new cluster.
//!
//! A backup is a snapshot file (see [`crate::snapshot`]): every state-machine record as one
//! RocksDB snapshot saw it, with the applied log id and membership, sealed by a blake3 digest.
//!
//! Restore follows etcd's `snapshot restore`: the copy keeps its data and applied log id but
//! gets a new membership, so the restored nodes form a new cluster and can never exchange
//! entries with the old one's members. Everything is written into a staging directory beside
//! the target, renamed to the target name only at the end: a restore that is killed leaves no
//! data directory a node could start from. The steps, each synced:
//! 1. the records are installed as a snapshot install would install them, with the new
//!    membership;
//! 2. a snapshot file is built from the result, so a member added later catches up from it;
//! 3. the log is marked purged up to the applied log id (the log is empty, as after a
//!    compaction), and the vote is set to the applied entry's term, so the first election of
//!    the new cluster happens in a later term and its entries follow the restored ones.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use openraft::alias::{LogIdOf, VoteOf};
use openraft::storage::RaftLogStorage;
use openraft::vote::RaftLeaderId;
use openraft::{Membership, StoredMembership};
use rocksdb::DB;

use crate::snapshot::{self, SnapshotMeta};
use crate::{Node, NodeId, StoreError, TypeConfig};

/// Writes the state visible now to a new snapshot file in `dir` and returns its path and meta.
///
/// One RocksDB snapshot is read, so the copy is one applied state even while writes go on.
/// The applied state is not synced per batch; a backup need not be either: it is a copy, and
/// the file itself is synced before it gets its name.
pub fn save(db: &DB, dir: &Path) -> Result<(PathBuf, SnapshotMeta), StoreError> {
    std::fs::create_dir_all(dir)?;
    let snap = db.snapshot();
    let (last_log_id, last_membership) = crate::state_machine::read_applied_from(db, Some(&snap))?;
    let meta = SnapshotMeta {
        last_log_id,
        last_membership,
    };
    let path = snapshot::write(db, &snap, &meta, dir)?;
    Ok((path, meta))
}

/// What a restore did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restored {
    /// The log id the restored state was applied up to.
    pub last_log_id: LogIdOf<TypeConfig>,
    /// The members of the new cluster, id → address.
    pub members: BTreeMap<NodeId, String>,
}

/// TODO(restore): the new cluster has no identity its members compare, so members restored
/// from different backups are not detected; restore the same file on every member.
///
/// Restores the backup `file` into `data_dir`, which must not exist or be empty, as node
/// `node_id` of a new cluster of `members` (every member is a voter; restore the same file on
/// each, with the same members).
pub fn restore(
    file: &Path,
    data_dir: &Path,
    node_id: NodeId,
    members: &BTreeMap<NodeId, String>,
) -> Result<Restored, StoreError> {
    let refuse = |reason: String| StoreError::BadSnapshot {
        path: file.display().to_string(),
        reason,
    };
    let meta = snapshot::verify(file).map_err(|e| match e {
        StoreError::Io(io) => refuse(io.to_string()),
        other => other,
    })?;
    let last_log_id = meta
        .last_log_id
        .ok_or_else(|| refuse("the backup holds no applied entry".into()))?;
    let at_dir = |reason: String| StoreError::Restore {
        data_dir: data_dir.display().to_string(),
        reason,
    };
    check_new_cluster(data_dir, node_id, members).map_err(at_dir)?;
    let new_meta = SnapshotMeta {
        last_log_id: Some(last_log_id),
        last_membership: StoredMembership::new(
            Some(last_log_id),
            membership(members).map_err(refuse)?,
        ),
    };
    let staging = staging_dir(data_dir).map_err(at_dir)?;
    let written = write_restored(file, &staging, &new_meta, node_id);
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    put_in_place(&staging, data_dir).map_err(|e| at_dir(e.to_string()))?;
    Ok(Restored {
        last_log_id,
        members: members.clone(),
    })
}

/// `<parent>/.<name>.restoring`, emptied if a killed restore left it.
fn staging_dir(data_dir: &Path) -> Result<PathBuf, String> {
    let name = data_dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("the data directory needs a final path component")?;
    let staging = data_dir.with_file_name(format!(".{name}.restoring"));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|e| format!("{}: {e}", staging.display()))?;
    }
    Ok(staging)
}

/// Writes the whole restored state into `dir` and closes the database.
fn write_restored(
    file: &Path,
    dir: &Path,
    meta: &SnapshotMeta,
    node_id: NodeId,
) -> Result<(), StoreError> {
    let last_log_id = meta
        .last_log_id
        .ok_or_else(|| StoreError::corrupt("meta", "no log id"))?;
    let storage = crate::open(dir)?;
    storage.state_machine.install_file(file, meta)?;
    storage.state_machine.build()?;
    let mut log_store = storage.log_store.clone();
    let term = last_log_id.committed_leader_id().term();
    let vote = VoteOf::<TypeConfig>::new(term, node_id);
    futures::executor::block_on(async {
        log_store.purge(last_log_id).await?;
        log_store.save_vote(&vote).await
    })?;
    Ok(())
}

/// Renames the finished staging directory to the data directory (replacing it if it is an
/// empty directory) and syncs the parent, so the name appears whole or not at all.
fn put_in_place(staging: &Path, data_dir: &Path) -> std::io::Result<()> {
    if data_dir.exists() {
        std::fs::remove_dir(data_dir)?;
    }
    std::fs::rename(staging, data_dir)?;
    match data_dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => std::fs::File::open(parent)?.sync_all(),
        None => Ok(()),
    }
}

/// Refuses a restore that would overwrite data or start a cluster without this node.
fn check_new_cluster(
    data_dir: &Path,
    node_id: NodeId,
    members: &BTreeMap<NodeId, String>,
) -> Result<(), String> {
    if node_id == 0 || members.contains_key(&0) {
        return Err("node ids must be positive".into());
    }
    if !members.contains_key(&node_id) {
        return Err(format!(
            "node {node_id} is not among the members {members:?}"
        ));
    }
    match std::fs::read_dir(data_dir).map(|mut entries| entries.next().is_some()) {
        Ok(true) => Err(format!(
            "{} is not empty; restore into a new data directory",
            data_dir.display()
        )),
        Ok(false) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("{}: {e}", data_dir.display())),
    }
}

fn membership(members: &BTreeMap<NodeId, String>) -> Result<Membership<NodeId, Node>, String> {
    let voters: BTreeSet<NodeId> = members.keys().copied().collect();
    let nodes: BTreeMap<NodeId, Node> = members
        .iter()
        .map(|(id, addr)| (*id, Node { addr: addr.clone() }))
        .collect();
    Membership::new(vec![voters], nodes).map_err(|e| e.to_string())
}
