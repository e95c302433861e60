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

/// What an offline status check is given.
pub struct ListInputs<'a> {
    /// The `--status-list` files: one revocation and one suspension list.
    pub files: &'a [PathBuf],
    /// Oldest list accepted, by its signing time, ms since the Unix epoch.
    pub not_before_ms: u64,
}

/// Checks `license` against its revocation and suspension lists; one line per list, or why
/// it fails. With no files there is nothing to check.
pub fn check_lists(
    license: &License,
    entry: Option<&SignedStatusEntry>,
    trust: &TrustList,
    inputs: &ListInputs<'_>,
) -> Result<Vec<String>, String> {
    if inputs.files.is_empty() {
        return Ok(Vec::new());
    }
    let entry = entry.ok_or(
        "the export carries no signed status entry: the exporting node holds no key of the \
         authority, or the license has not changed status since status lists were added",
    )?;
    check_entry(license, entry, trust)?;
    let mut lines = Vec::new();
    let mut purposes = Vec::new();
    for file in inputs.files {
        let (purpose, line) = check_list(entry, trust, inputs.not_before_ms, file)
            .map_err(|e| format!("{}: {e}", file.display()))?;
        purposes.push(purpose);
        lines.push(line);
    }
    purposes.sort_by_key(|p| matches!(p, StatusPurpose::Suspension));
    if purposes != [StatusPurpose::Revocation, StatusPurpose::Suspension] {
        return Err("--status-list needs one revocation and one suspension list".into());
    }
    Ok(lines)
}

/// The trust list's record of `key_id`, which must be a key of `authority` that accepts
/// `signed_at_ms`.
fn trusted_key<'t>(
    trust: &'t TrustList,
    authority: &str,
    key_id: &licstore_seal::KeyId,
    signed_at_ms: u64,
) -> Result<&'t licstore_seal::KeyRecord, String> {
    let record = trust
        .find(key_id)
        .ok_or_else(|| format!("key {key_id} is not in the trust list"))?;
    if record.authority != authority {
        return Err(format!("key {key_id} is not a key of {authority}"));
    }
    let verdict = judge(record, signed_at_ms);
    if !verdict.accepts() {
        return Err(format!("key {key_id}: {verdict}"));
    }
    Ok(record)
}

fn check_entry(
    license: &License,
    entry: &SignedStatusEntry,
    trust: &TrustList,
) -> Result<(), String> {
    let claim = &entry.claim;
    let issuer = &license.issuer.code;
    let record = trusted_key(trust, issuer, &entry.seal.key_id, claim.signed_at_ms)
        .map_err(|e| format!("status entry: {e}"))?;
    entry
        .verify(&record.public_key)
        .map_err(|e| format!("status entry: {e}"))?;
    if claim.authority != *issuer {
        return Err(format!("status entry: names authority {}", claim.authority));
    }
    if claim.license_type != license.type_code {
        return Err(format!("status entry: names type {}", claim.license_type));
    }
    if claim.issued_digest != canonical::issued_digest(license) {
        return Err("status entry: its issued digest is another license's".into());
    }
    Ok(())
}

fn check_list(
    entry: &SignedStatusEntry,
    trust: &TrustList,
    not_before_ms: u64,
    file: &Path,
) -> Result<(StatusPurpose, String), String> {
    let bytes = std::fs::read(file).map_err(|e| format!("read: {e}"))?;
    let list = SignedStatusList::from_bytes(&bytes).map_err(|e| format!("status list: {e}"))?;
    let doc = &list.doc;
    let claim = &entry.claim;
    let record = trusted_key(trust, &claim.authority, &list.seal.key_id, doc.issued_at_ms)?;
    list.verify(&record.public_key).map_err(|e| e.to_string())?;
    if doc.authority != claim.authority
        || doc.license_type != claim.license_type
        || doc.list != claim.list
    {
        return Err("not the list of the license's status entry".into());
    }
    if doc.issued_at_ms < not_before_ms {
        return Err(format!(
            "signed at {} ms, older than --max-list-age-s allows",
            doc.issued_at_ms
        ));
    }
    let set = doc.bits.get(claim.position).map_err(|e| e.to_string())?;
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
    let line = format!(
        "{name} list {} revision {} signed at {} ms: clear",
        doc.list, doc.revision, doc.issued_at_ms
    );
    Ok((doc.purpose, line))
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
