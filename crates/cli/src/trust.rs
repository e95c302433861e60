//! `licctl trust export | import | list`: trust lists between stores.
//!
//! - `export` signs this store's own keys (not those it imported from others) into a trust
//!   file with a root key held here, for verifiers and other stores.
//! - `import` hands another store's trust file to this one (`Seals.ImportTrustList`) under
//!   the root key id the operator pins; the store then checks and judges that store's seals.
//! - `list` shows the lists imported so far, one per root.

use std::path::Path;

use anyhow::Context;
use licstore_proto::v1 as pb;
use licstore_seal::{sign_trust_list, KeyRecord, TrustFile, TrustList};
use serde::Serialize;

use crate::args::TrustCommand;
use crate::output::{emit, Render, Table};
use crate::seals::{call, now_ms, read_secret_key};
use crate::Ctx;

/// Runs one `licctl trust` command.
pub async fn run(ctx: &Ctx, command: TrustCommand) -> anyhow::Result<()> {
    match command {
        TrustCommand::Export {
            root_key,
            issued_by,
            authority,
            out,
        } => export(ctx, &root_key, issued_by, &authority, &out).await,
        TrustCommand::Import { file, root_key_id } => import(ctx, &file, root_key_id).await,
        TrustCommand::List => {
            let r = call(ctx, |mut c| async move {
                c.list_trust_lists(pb::ListTrustListsRequest::default())
                    .await
            })
            .await?;
            let lists = r.lists.iter().map(ListLine::of).collect();
            emit(
                ctx.output,
                &ListsView {
                    lists,
                    revision: r.revision,
                },
            )
        }
    }
}

async fn export(
    ctx: &Ctx,
    root_key: &Path,
    issued_by: String,
    authorities: &[String],
    out: &Path,
) -> anyhow::Result<()> {
    let root = read_secret_key(root_key)?;
    let r = call(ctx, |mut c| async move {
        c.list_keys(pb::ListKeysRequest::default()).await
    })
    .await?;
    let mut entries = Vec::new();
    for key in &r.keys {
        // Keys imported from another root are that root's to vouch for, not ours.
        let own = key.trusted_via.is_empty();
        if own && (authorities.is_empty() || authorities.contains(&key.authority)) {
            entries.push(KeyRecord::from_bytes(&key.record)?);
        }
    }
    let count = entries.len();
    let list = TrustList::new(issued_by, now_ms(), entries);
    let file = TrustFile {
        root: root.public_key(),
        signed_list: sign_trust_list(&root, &list)?,
    };
    std::fs::write(out, file.to_bytes()).with_context(|| format!("write {}", out.display()))?;
    emit(
        ctx.output,
        &ExportView {
            file: out.display().to_string(),
            root_key_id: root.key_id().to_string(),
            keys: count,
        },
    )
}

async fn import(ctx: &Ctx, file: &Path, root_key_id: String) -> anyhow::Result<()> {
    let trust_file = std::fs::read(file).with_context(|| format!("read {}", file.display()))?;
    let request = pb::ImportTrustListRequest {
        trust_file,
        root_key_id,
    };
    let r = call(ctx, |mut c| {
        let request = request.clone();
        async move { c.import_trust_list(request).await }
    })
    .await?;
    let list = r.list.as_ref().map(ListLine::of).unwrap_or_default();
    emit(
        ctx.output,
        &ImportView {
            list,
            added: r.added,
            updated: r.updated,
            unchanged: r.unchanged,
            local: r.local,
            withdrawn: r.withdrawn,
            replay: r.replay,
            revision: r.revision,
        },
    )
}

/// What `licctl trust export` prints.
#[derive(Clone, Debug, Serialize)]
pub struct ExportView {
    pub file: String,
    pub root_key_id: String,
    pub keys: usize,
}

impl Render for ExportView {
    fn table(&self) -> Table {
        let mut t = Table::key_value();
        t.row(["file".to_owned(), self.file.clone()]);
        t.row(["root key id".to_owned(), self.root_key_id.clone()]);
        t.row(["keys".to_owned(), self.keys.to_string()]);
        t
    }
}

/// One imported list as printed.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ListLine {
    pub root_key_id: String,
    pub issued_by: String,
    pub issued_at_ms: u64,
    pub keys: u32,
    pub imported_at_revision: u64,
}

impl ListLine {
    fn of(l: &pb::TrustListInfo) -> ListLine {
        ListLine {
            root_key_id: l.root_key_id.clone(),
            issued_by: l.issued_by.clone(),
            issued_at_ms: l.issued_at_ms,
            keys: l.keys,
            imported_at_revision: l.imported_at_revision,
        }
    }
}

/// What `licctl trust import` prints.
#[derive(Clone, Debug, Serialize)]
pub struct ImportView {
    pub list: ListLine,
    pub added: u32,
    pub updated: u32,
    pub unchanged: u32,
    pub local: u32,
    pub withdrawn: u32,
    pub replay: bool,
    pub revision: u64,
}

impl Render for ImportView {
    fn table(&self) -> Table {
        let mut t = Table::key_value();
        let mut row = |k: &str, v: String| t.row([k.to_owned(), v]);
        row("root key id", self.list.root_key_id.clone());
        row("issued by", self.list.issued_by.clone());
        row("issued at ms", self.list.issued_at_ms.to_string());
        row("keys added", self.added.to_string());
        row("keys narrowed", self.updated.to_string());
        row("keys unchanged", self.unchanged.to_string());
        row("keys of local authorities", self.local.to_string());
        row("keys withdrawn", self.withdrawn.to_string());
        row("replay", self.replay.to_string());
        row("revision", self.revision.to_string());
        t
    }
}

/// What `licctl trust list` prints.
#[derive(Clone, Debug, Serialize)]
pub struct ListsView {
    pub lists: Vec<ListLine>,
    pub revision: u64,
}

impl Render for ListsView {
    fn table(&self) -> Table {
        let mut t = Table::new(&[
            "ROOT KEY ID",
            "ISSUED BY",
            "ISSUED AT MS",
            "KEYS",
            "REVISION",
        ]);
        for l in &self.lists {
            t.row([
                l.root_key_id.clone(),
                l.issued_by.clone(),
                l.issued_at_ms.to_string(),
                l.keys.to_string(),
                l.imported_at_revision.to_string(),
            ]);
        }
        t
    }
}
