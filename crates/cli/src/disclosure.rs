//! `licctl present`, `verify-presentation` and `policy`: revealing only some fields of a
//! license, to a holder's verifier or to a service item.
//!
//! `present` asks the store for a presentation of a sealed license that reveals the named
//! fields; `verify-presentation` checks one with no server, under a trust file whose root the
//! caller pins, and prints the revealed fields only. `policy` sets and lists the fields each
//! service item sees when it verifies a license (none by default).

use std::collections::BTreeMap;

use anyhow::Context;
use licstore_proto::v1 as pb;
use licstore_proto::v1::policies_client::PoliciesClient;
use licstore_seal::{KeyId, Presentation};
use serde::Serialize;

use crate::args::{PolicyCommand, PresentArgs, VerifyPresentationArgs};
use crate::exit::{reported, usage, FAILURE};
use crate::output::{emit, Render, Table};
use crate::seals::{call, offline_inputs, open_pinned_trust};
use crate::Ctx;

/// `licctl present IDENTIFIER --field NAME... --out FILE`.
pub async fn present(ctx: &Ctx, args: PresentArgs) -> anyhow::Result<()> {
    let request = pb::PresentRequest {
        identifier: args.identifier,
        fields: split_names(&args.fields),
        consistency: 0,
    };
    let r = call(ctx, |mut c| {
        let request = request.clone();
        async move { c.present(request).await }
    })
    .await?;
    // What is written and printed comes from the document itself, checked against the ask.
    let shown = Presentation::from_bytes(&r.document).context("the server's presentation")?;
    let revealed: BTreeMap<String, String> = shown
        .revealed
        .iter()
        .map(|d| (d.name.clone(), d.value.clone()))
        .collect();
    let mut asked = request.fields.clone();
    asked.sort();
    asked.dedup();
    if !revealed.keys().eq(asked.iter()) {
        anyhow::bail!("the server's presentation reveals other fields than asked");
    }
    let out = &args.out;
    std::fs::write(out, &r.document).with_context(|| format!("write {}", out.display()))?;
    emit(
        ctx.output,
        &PresentView {
            file: out.display().to_string(),
            bytes: r.document.len(),
            revealed,
        },
    )
}

/// Names given as repeated flags or comma-separated lists.
pub(crate) fn split_names(given: &[String]) -> Vec<String> {
    given
        .iter()
        .flat_map(|g| g.split(','))
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `licctl verify-presentation FILE --trust TRUST --root-key-id ID`: exits 1 unless valid.
pub fn verify_presentation_cmd(ctx: &Ctx, args: VerifyPresentationArgs) -> anyhow::Result<()> {
    let (doc, trust, pin) = offline_inputs(&args.file, &args.trust, &args.root_key_id)?;
    let report = verify_presentation(&doc, &trust, pin);
    emit(ctx.output, &report)?;
    if report.valid {
        Ok(())
    } else {
        Err(reported(FAILURE, format!("not valid: {}", report.reason)))
    }
}

/// The outcome of checking a presentation.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct PresentationReport {
    /// True when the seal holds under the trust list and every revealed field opens.
    pub valid: bool,
    /// What decided it.
    pub reason: String,
    pub authority: String,
    pub key_id: String,
    pub signed_at_ms: u64,
    /// The key's verdict on the signing time, from the trust list.
    pub key_verdict: String,
    /// The revealed fields; empty unless valid.
    pub fields: BTreeMap<String, String>,
    /// A presentation carries no status: the store presents valid current versions only, and
    /// a later suspension or revocation shows in the authority's status lists.
    pub status: String,
}

/// Checks a presentation against a trust file pinned to root `pin`.
pub fn verify_presentation(doc: &[u8], trust: &[u8], pin: KeyId) -> PresentationReport {
    let mut report = PresentationReport {
        status: "not covered: valid when presented; check the authority's status list".into(),
        ..PresentationReport::default()
    };
    match check(doc, trust, pin, &mut report) {
        Ok(fields) => {
            report.valid = true;
            report.reason = "seal and revealed fields verified under the trust list".into();
            report.fields = fields;
        }
        Err(reason) => report.reason = reason,
    }
    report
}

fn check(
    doc: &[u8],
    trust: &[u8],
    pin: KeyId,
    report: &mut PresentationReport,
) -> Result<BTreeMap<String, String>, String> {
    let shown = Presentation::from_bytes(doc).map_err(|e| format!("presentation: {e}"))?;
    report.authority = shown.payload.authority.clone();
    report.key_id = shown.seal.key_id.to_string();
    report.signed_at_ms = shown.payload.signed_at_ms;
    let list = open_pinned_trust(trust, pin)?;
    let record = list
        .find(&shown.seal.key_id)
        .ok_or_else(|| format!("key {} is not in the trust list", shown.seal.key_id))?;
    let checked = shown.check(record).map_err(|e| e.to_string())?;
    report.key_verdict = checked.verdict.to_string();
    Ok(checked.fields)
}

/// Runs one `licctl policy` command.
pub async fn policy(ctx: &Ctx, command: PolicyCommand) -> anyhow::Result<()> {
    let mut client = ctx.client()?;
    let response = match command {
        PolicyCommand::SetDisclosure {
            service_item,
            type_code,
            fields,
            remove,
        } => {
            let fields = split_names(&fields);
            if fields.is_empty() != remove {
                return Err(usage("give --field names, or --remove to drop the rule"));
            }
            let request = pb::SetDisclosureRequest {
                rule: Some(pb::DisclosureRule {
                    service_item,
                    type_code: crate::types::resolve(&type_code),
                    fields,
                }),
            };
            client
                .retrying(|ch| {
                    let request = request.clone();
                    async move { PoliciesClient::new(ch).set_disclosure(request).await }
                })
                .await?
        }
        PolicyCommand::List { service_item } => {
            let request = pb::ListDisclosureRequest {
                consistency: 0,
                service_item: service_item.unwrap_or_default(),
            };
            client
                .retrying(|ch| {
                    let request = request.clone();
                    async move { PoliciesClient::new(ch).list_disclosure(request).await }
                })
                .await?
        }
    };
    emit(ctx.output, &RulesView::of(&response))
}

/// What `licctl present` prints.
#[derive(Clone, Debug, Serialize)]
pub struct PresentView {
    pub file: String,
    pub bytes: usize,
    pub revealed: BTreeMap<String, String>,
}

impl Render for PresentView {
    fn table(&self) -> Table {
        let mut t = Table::key_value();
        t.pair("file", self.file.clone());
        t.pair("bytes", self.bytes.to_string());
        for (name, value) in &self.revealed {
            t.pair(&format!("revealed {name}"), value.clone());
        }
        t
    }
}

impl Render for PresentationReport {
    fn table(&self) -> Table {
        let mut t = Table::key_value();
        t.pair("valid", self.valid.to_string());
        t.pair("reason", self.reason.clone());
        t.pair("authority", self.authority.clone());
        t.pair("key id", self.key_id.clone());
        t.pair("signed at (ms)", self.signed_at_ms.to_string());
        t.pair("key verdict", self.key_verdict.clone());
        t.pair("status", self.status.clone());
        for (name, value) in &self.fields {
            t.pair(&format!("field {name}"), value.clone());
        }
        t
    }
}

/// Disclosure rules as printed.
#[derive(Clone, Debug, Serialize)]
pub struct RulesView {
    pub rules: Vec<RuleLine>,
    pub revision: u64,
}

/// One rule as printed.
#[derive(Clone, Debug, Serialize)]
pub struct RuleLine {
    pub service_item: String,
    pub type_code: String,
    pub fields: Vec<String>,
}

impl RulesView {
    fn of(r: &pb::DisclosureRulesResponse) -> RulesView {
        RulesView {
            rules: r
                .rules
                .iter()
                .map(|rule| RuleLine {
                    service_item: rule.service_item.clone(),
                    type_code: rule.type_code.clone(),
                    fields: rule.fields.clone(),
                })
                .collect(),
            revision: r.revision,
        }
    }
}

impl Render for RulesView {
    fn table(&self) -> Table {
        let mut t = Table::new(&["SERVICE ITEM", "TYPE", "FIELDS"]);
        for rule in &self.rules {
            let fields = match rule.fields.is_empty() {
                true => "(none: removed)".to_owned(),
                false => rule.fields.join(","),
            };
            t.row([rule.service_item.clone(), rule.type_code.clone(), fields]);
        }
        t
    }
}
