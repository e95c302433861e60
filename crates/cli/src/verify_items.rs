//! `licctl verify-items`: checks one holder against every service item of a service-items CSV.
//!
//! The CSV (columns `license_type,department,department_item_count,service_item`) names license
//! types in Chinese (居民身份证, 上海市居住证, 出生医学证明,
//! 营业执照); they are matched to the built-in templates by name. The holder's
//! licenses are listed once (ListByHolder); for each item whose type the holder has any
//! license of, Verify is called and the verdict printed, with the names of the fields the
//! item's disclosure rule lets it see (their values, and the identifier when the rule names
//! it, in `-o json`).
//! Items of other types are counted as skipped, and rows naming an unknown type are reported
//! on stderr.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Context;
use licstore_proto::v1 as pb;
use serde::{Deserialize, Serialize};

use crate::args::VerifyItemsArgs;
use crate::licenses::{call_verify, holder_kind, list_by_holder};
use crate::output::{emit, Render, Table};
use crate::{convert, types, Ctx};

/// One row of the service-items CSV.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ServiceItem {
    pub license_type: String,
    pub department: String,
    #[serde(default)]
    pub department_item_count: String,
    pub service_item: String,
}

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

/// Reads the service-items CSV.
pub fn read_items(path: &Path) -> anyhow::Result<Vec<ServiceItem>> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("open {}", path.display()))?;
    let mut items = Vec::new();
    for (i, row) in reader.deserialize::<ServiceItem>().enumerate() {
        items.push(row.with_context(|| format!("{}: row {}", path.display(), i + 2))?);
    }
    Ok(items)
}

/// Splits items into those of a type in `held` (by type code) and a skipped count; rows of
/// unknown types are reported on stderr and skipped.
pub fn select_items<'a>(
    items: &'a [ServiceItem],
    held: &BTreeSet<String>,
) -> (Vec<(&'a ServiceItem, String)>, usize) {
    let mut selected = Vec::new();
    let mut skipped = 0;
    for item in items {
        let Some(template) = types::find(&item.license_type) else {
            eprintln!(
                "warning: unknown license type {:?} ({})",
                item.license_type, item.service_item
            );
            skipped += 1;
            continue;
        };
        match held.contains(&template.type_code) {
            true => selected.push((item, template.type_code.clone())),
            false => skipped += 1,
        }
    }
    (selected, skipped)
}

/// `licctl verify-items`.
pub async fn run(ctx: &Ctx, args: VerifyItemsArgs) -> anyhow::Result<()> {
    let items = read_items(&args.service_items)?;
    let kind = holder_kind(&args.holder, None)?;
    let mut client = ctx.client()?;
    let listed = list_by_holder(&mut client, &args.holder, args.serializable).await?;
    let held: BTreeSet<String> = listed
        .licenses
        .iter()
        .map(|l| types::resolve(&l.type_code))
        .collect();
    let (selected, skipped) = select_items(&items, &held);
    let mut verdicts = Vec::with_capacity(selected.len());
    for (item, type_code) in selected {
        let request = pb::VerifyRequest {
            holder_kind: convert::holder_kind_to_proto(kind) as i32,
            holder_id: args.holder.holder.clone(),
            type_code,
            service_item: item.service_item.clone(),
            consistency: convert::consistency(args.serializable),
            max_staleness_ms: 0,
        };
        let response = call_verify(&mut client, request).await?;
        verdicts.push(ItemVerdict {
            license_type: item.license_type.clone(),
            department: item.department.clone(),
            service_item: item.service_item.clone(),
            valid: response.valid,
            verdict: convert::verdict_name(response.verdict),
            identifier: response.identifier,
            fields: response.fields.into_iter().collect(),
        });
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

    fn item(license_type: &str, service_item: &str) -> ServiceItem {
        ServiceItem {
            license_type: license_type.to_owned(),
            department: "市档案局".to_owned(),
            department_item_count: "10".to_owned(),
            service_item: service_item.to_owned(),
        }
    }

    #[test]
    fn items_are_selected_by_the_types_the_holder_has() {
        let items = vec![
            item("居民身份证", "婚姻登记档案查询"),
            item("上海市居住证", "办理《来沪人员生育情况证明》"),
            item("出生医学证明", "办理《上海市生育登记单》"),
            item("驾驶证", "unknown type"),
        ];
        let held: BTreeSet<String> =
            [types::resolve("居民身份证"), types::resolve("出生医学证明")].into();
        let (selected, skipped) = select_items(&items, &held);
        let names: Vec<&str> = selected
            .iter()
            .map(|(i, _)| i.service_item.as_str())
            .collect();
        assert_eq!(names, ["婚姻登记档案查询", "办理《上海市生育登记单》"]);
        assert_eq!(skipped, 2);
    }

    #[test]
    fn the_bundled_service_items_file_parses_and_names_known_types() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/service-items.csv");
        let items = read_items(&path).expect("data/service-items.csv");
        assert!(!items.is_empty());
        for i in &items {
            assert!(types::find(&i.license_type).is_some(), "{}", i.license_type);
        }
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
