//! `licctl status-list get`, and the status-list part of `verify-offline`.
//!
//! A verifier who downloaded an authority's status list checks an exported license's status
//! with no server: the list must verify under a trust-list key of the license's issuer (judged
//! at the list's issue time), the export's signed status entry must tie this license (by its
//! issued digest) to a position of that very list, and the bit there must be clear.

use std::path::{Path, PathBuf};

use anyhow::Context;
use licstore_model::{canonical, License};
use licstore_proto::v1 as pb;
use licstore_seal::{judge, SignedStatusEntry, SignedStatusList, StatusPurpose, TrustList};
use serde::Serialize;

use crate::args::StatusListGetArgs;
use crate::exit::usage;
use crate::output::{emit, Render, Table};
use crate::seals::call;
use crate::Ctx;

/// `licctl status-list get`.
pub async fn get(ctx: &Ctx, args: StatusListGetArgs) -> anyhow::Result<()> {
    let purpose = match args.purpose.as_str() {
        "revocation" => pb::StatusPurpose::Revocation,
        "suspension" => pb::StatusPurpose::Suspension,
        other => {
            return Err(usage(format!(
                "--purpose {other}: revocation or suspension"
            )))
        }
    };
    let request = pb::GetStatusListRequest {
        authority: args.authority,
        type_code: crate::types::resolve(&args.type_code),
        purpose: purpose as i32,
        list: args.list,
        if_newer_than: args.if_newer_than,
        consistency: 0,
    };
    let r = call(ctx, |mut c| {
        let request = request.clone();
        async move { c.get_status_list(request).await }
    })
    .await?;
    let mut view = ListView {
        file: String::new(),
        not_modified: r.not_modified,
        revision: r.revision,
        used: r.used,
        set: 0,
        key_id: r.key_id.clone(),
    };
    if !r.not_modified {
        let list = SignedStatusList::from_bytes(&r.signed_list).context("the server's list")?;
        view.set = list.doc.bits.count_set();
        let out = &args.out;
        std::fs::write(out, &r.signed_list).with_context(|| format!("write {}", out.display()))?;
        view.file = out.display().to_string();
    }
    emit(ctx.output, &view)
}

/// Checks `license` against each status-list file; one line per list, or why it fails.
pub fn check_lists(
    license: &License,
    entry: Option<&SignedStatusEntry>,
    trust: &TrustList,
    files: &[PathBuf],
) -> Result<Vec<String>, String> {
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let entry = entry.ok_or(
        "the export carries no signed status entry (export it from a node \
                             holding the authority's key)",
    )?;
    check_entry(license, entry, trust)?;
    files
        .iter()
        .map(|f| check_list(license, entry, trust, f))
        .collect()
}

fn trusted_key<'t>(
    trust: &'t TrustList,
    license: &License,
    key_id: &licstore_seal::KeyId,
    what: &str,
) -> Result<&'t licstore_seal::KeyRecord, String> {
    let record = trust
        .find(key_id)
        .ok_or_else(|| format!("{what}: key {key_id} is not in the trust list"))?;
    if record.authority != license.issuer.code {
        return Err(format!("{what}: key {key_id} is not the issuer's"));
    }
    Ok(record)
}

fn check_entry(
    license: &License,
    entry: &SignedStatusEntry,
    trust: &TrustList,
) -> Result<(), String> {
    let record = trusted_key(trust, license, &entry.seal.key_id, "status entry")?;
    entry
        .verify(&record.public_key)
        .map_err(|e| format!("status entry: {e}"))?;
    let claim = &entry.claim;
    let issued = canonical::issued_digest(license);
    if claim.issued_digest != issued || claim.license_type != license.type_code {
        return Err("status entry: names another license".into());
    }
    Ok(())
}

fn check_list(
    license: &License,
    entry: &SignedStatusEntry,
    trust: &TrustList,
    file: &Path,
) -> Result<String, String> {
    let bytes = std::fs::read(file).map_err(|e| format!("read {}: {e}", file.display()))?;
    let list = SignedStatusList::from_bytes(&bytes).map_err(|e| format!("status list: {e}"))?;
    let record = trusted_key(trust, license, &list.seal.key_id, "status list")?;
    list.verify(&record.public_key)
        .map_err(|e| format!("status list: {e}"))?;
    let doc = &list.doc;
    let verdict = judge(record, doc.issued_at_ms);
    if !verdict.accepts() {
        return Err(format!("status list: key {}: {verdict}", record.key_id));
    }
    let claim = &entry.claim;
    if doc.authority != claim.authority
        || doc.license_type != claim.license_type
        || doc.list != claim.list
    {
        return Err(format!(
            "status list {}: not the license's list",
            file.display()
        ));
    }
    let set = doc
        .bits
        .get(claim.position)
        .map_err(|e| format!("status list: {e}"))?;
    let (name, meaning) = match doc.purpose {
        StatusPurpose::Revocation => ("revocation", "no longer valid"),
        StatusPurpose::Suspension => ("suspension", "suspended"),
    };
    if set {
        return Err(format!(
            "{meaning} per the {name} list of revision {}",
            doc.revision
        ));
    }
    Ok(format!(
        "{name} list {} revision {}: clear",
        doc.list, doc.revision
    ))
}

/// What `licctl status-list get` prints.
#[derive(Clone, Debug, Serialize)]
pub struct ListView {
    /// Where the list was written; empty when not modified.
    pub file: String,
    pub not_modified: bool,
    pub revision: u64,
    pub used: u32,
    /// Bits set in the list.
    pub set: u32,
    pub key_id: String,
}

impl Render for ListView {
    fn table(&self) -> Table {
        let mut t = Table::key_value();
        t.pair("file", self.file.clone());
        t.pair("not modified", self.not_modified.to_string());
        t.pair("revision", self.revision.to_string());
        t.pair("positions used", self.used.to_string());
        t.pair("bits set", self.set.to_string());
        t.pair("signed by key", self.key_id.clone());
        t
    }
}
