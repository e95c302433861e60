//! `licctl verify-items`: checks one holder for every registered service item that accepts a
//! license of the holder's kind.
//!
//! The items come from the store (Policies.ListServiceItems); with access control on, only the
//! caller's own items are checked, as a verifier may verify for no other. Every (item, type)
//! pair is sent in one VerifyBatch, so one barrier covers them all and the answer is one state
//! of one replica. Pairs whose verdict is "not found" are counted as skipped: the holder has no
//! license of that type. The table shows the names of the fields each item's disclosure rule
//! lets it see; `-o json` adds their values, and the identifier where the rule names it.

use std::collections::BTreeMap;

use anyhow::bail;
use licstore_model::HolderKind;
use licstore_proto::v1 as pb;
use licstore_proto::v1::access_client::AccessClient;
use licstore_proto::v1::licenses_client::LicensesClient;
use serde::Serialize;

use crate::args::VerifyItemsArgs;
use crate::licenses::holder_kind;
use crate::output::{emit, Render, Table};
use crate::{convert, service_items, types, Ctx};

/// Most pairs one VerifyBatch carries (the server's limit).
const BATCH_MAX: usize = 1000;

/// The verdict for one item.
#[derive(Clone, Debug, Serialize)]
pub struct ItemVerdict {
    pub license_type: String,
    pub department: String,
    pub service_item: String,
    pub valid: bool,
    pub verdict: String,
    /// Only for an item whose disclosure rule names `@identifier`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub identifier: String,
    /// The fields the item's disclosure rule lets it see.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
}

/// Every verdict, plus how many items were skipped.
#[derive(Clone, Debug, Serialize)]
pub struct ItemsReport {
    pub holder: String,
    pub items: Vec<ItemVerdict>,
    /// Items whose license type the holder has no license of.
    pub skipped: usize,
}

impl Render for ItemsReport {
    fn table(&self) -> Table {
        let headers = [
            "license type",
            "department",
            "service item",
            "verdict",
            "disclosed",
        ];
        let mut t = Table::new(&headers);
        for i in &self.items {
            let disclosed = match i.fields.is_empty() {
                true => "-".to_owned(),
                false => i.fields.keys().cloned().collect::<Vec<_>>().join(", "),
            };
            t.row([
                i.license_type.clone(),
                i.department.clone(),
                i.service_item.clone(),
                i.verdict.clone(),
                disclosed,
            ]);
        }
        t
    }
}

/// The (item, type code) pairs to verify for a holder of `kind`: each item with every type it
/// accepts whose licenses are held by that kind, in item order. With `only`, just those items.
pub fn pairs(
    items: &[pb::ServiceItem],
    kind: HolderKind,
    only: Option<&[String]>,
) -> Vec<(pb::ServiceItem, String)> {
    let mut out = Vec::new();
    for item in items {
        if only.is_some_and(|names| !names.contains(&item.name)) {
            continue;
        }
        for code in &item.type_codes {
            if types::find(code).is_some_and(|t| t.holder_kind == kind) {
                out.push((item.clone(), code.clone()));
            }
        }
    }
    out
}

/// The items the caller may verify for: all with access control off, else its principal's.
async fn own_items(client: &mut licstore_client::Client) -> anyhow::Result<Option<Vec<String>>> {
    let me = client
        .retrying(|ch| async move { AccessClient::new(ch).who_am_i(pb::WhoAmIRequest {}).await })
        .await?;
    if !me.access_control {
        return Ok(None);
    }
    match me.principal {
        Some(p) if !p.service_items.is_empty() => Ok(Some(p.service_items)),
        _ => bail!("{:?} is not a verifier: it has no service items", me.name),
    }
}

/// `licctl verify-items`.
pub async fn run(ctx: &Ctx, args: VerifyItemsArgs) -> anyhow::Result<()> {
    let kind = holder_kind(&args.holder, None)?;
    let mut client = ctx.client()?;
    let only = own_items(&mut client).await?;
    let items = service_items::list(ctx, String::new()).await?.items;
    let pairs = pairs(&items, kind, only.as_deref());
    let mut verdicts = Vec::with_capacity(pairs.len());
    let mut skipped = 0;
    for chunk in pairs.chunks(BATCH_MAX) {
        let request = pb::VerifyBatchRequest {
            items: chunk
                .iter()
                .map(|(item, code)| pb::VerifyRequest {
                    holder_kind: convert::holder_kind_to_proto(kind) as i32,
                    holder_id: args.holder.holder.clone(),
                    type_code: code.clone(),
                    service_item: item.name.clone(),
                    purpose: args.purpose.clone(),
                    ..Default::default()
                })
                .collect(),
            consistency: convert::consistency(args.serializable),
            max_staleness_ms: 0,
        };
        let response = client
            .retrying(|ch| {
                let request = request.clone();
                async move { LicensesClient::new(ch).verify_batch(request).await }
            })
            .await?;
        for ((item, code), r) in chunk.iter().zip(response.results) {
            if r.verdict == pb::Verdict::NotFound as i32 {
                skipped += 1;
                continue;
            }
            verdicts.push(ItemVerdict {
                license_type: types::display_name(code),
                department: item.department.clone(),
                service_item: item.name.clone(),
                valid: r.valid,
                verdict: convert::verdict_name(r.verdict),
                identifier: r.identifier,
                fields: r.fields.into_iter().collect(),
            });
        }
    }
    let report = ItemsReport {
        holder: args.holder.holder.clone(),
        items: verdicts,
        skipped,
    };
    emit(ctx.output, &report)?;
    if report.skipped > 0 {
        eprintln!(
            "{} items skipped: the holder has no license of their type",
            report.skipped
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(name: &str, types: &[&str]) -> pb::ServiceItem {
        pb::ServiceItem {
            name: name.to_owned(),
            department: "市档案局".to_owned(),
            type_codes: types.iter().map(|t| types::resolve(t)).collect(),
        }
    }

    #[test]
    fn pairs_cover_the_types_of_the_holder_kind_of_the_chosen_items() {
        let items = [
            item("婚姻登记档案查询", &["居民身份证"]),
            item(
                "办理《来沪人员生育情况证明》",
                &["上海市居住证", "出生医学证明"],
            ),
            item("企业登记", &["营业执照"]),
        ];
        let names = |pairs: Vec<(pb::ServiceItem, String)>| -> Vec<(String, String)> {
            pairs
                .into_iter()
                .map(|(i, code)| (i.name, types::display_name(&code)))
                .collect()
        };
        let owned = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect()
        };
        let citizen = owned(&[
            ("婚姻登记档案查询", "居民身份证"),
            ("办理《来沪人员生育情况证明》", "上海市居住证"),
            ("办理《来沪人员生育情况证明》", "出生医学证明"),
        ]);
        assert_eq!(names(pairs(&items, HolderKind::CitizenId, None)), citizen);
        let company = owned(&[("企业登记", "营业执照")]);
        assert_eq!(names(pairs(&items, HolderKind::Uscc, None)), company);
        let only = ["婚姻登记档案查询".to_owned()];
        let mine = owned(&[("婚姻登记档案查询", "居民身份证")]);
        assert_eq!(
            names(pairs(&items, HolderKind::CitizenId, Some(&only))),
            mine
        );
    }

    #[test]
    fn each_item_shows_what_its_rule_discloses() {
        let verdict = |fields: &[(&str, &str)], identifier: &str| ItemVerdict {
            license_type: "居民身份证".into(),
            department: "市民政局".into(),
            service_item: "婚姻登记".into(),
            valid: true,
            verdict: "VALID".into(),
            identifier: identifier.into(),
            fields: fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        let report = ItemsReport {
            holder: "h".into(),
            items: vec![
                verdict(&[], ""),
                verdict(&[("name", "张三"), ("@identifier", "1.2")], "1.2"),
            ],
            skipped: 0,
        };
        let text = report.table().render();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].ends_with("DISCLOSED"), "{text}");
        assert!(lines[1].ends_with('-'), "{text}");
        assert!(lines[2].ends_with("@identifier, name"), "{text}");
        let json = serde_json::to_value(&report).expect("json");
        let items = json["items"].as_array().expect("items");
        assert_eq!(items[0].get("identifier"), None, "no rule, no identifier");
        assert_eq!(items[0].get("fields"), None);
        assert_eq!(items[1]["identifier"], "1.2");
        assert_eq!(items[1]["fields"]["name"], "张三");
    }
}
