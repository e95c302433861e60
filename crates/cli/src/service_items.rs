//! `licctl item`: the service items a store knows, loaded from the plan's table and edited one
//! by one.
//!
//! The table (`data/service-items.csv`, columns
//! `license_type,department,department_item_count,service_item`) has one row per license type
//! and service item, and names the types in Chinese (居民身份证, 上海市居住证, 出生医学证明).
//! `item load` groups the rows by service item, registers each item with every type its rows
//! name, and leaves alone the items already registered exactly so.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context};
use licstore_proto::v1 as pb;
use licstore_proto::v1::policies_client::PoliciesClient;
use serde::{Deserialize, Serialize};

use crate::args::ItemCommand;
use crate::disclosure::split_names;
use crate::output::{emit, Render, Table};
use crate::{types, Ctx};

/// One row of the service-items table.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ItemRow {
    pub license_type: String,
    pub department: String,
    #[serde(default)]
    pub department_item_count: String,
    pub service_item: String,
}

/// Reads a service-items table.
pub fn read_rows(path: &Path) -> anyhow::Result<Vec<ItemRow>> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("open {}", path.display()))?;
    let mut rows = Vec::new();
    for (i, row) in reader.deserialize::<ItemRow>().enumerate() {
        rows.push(row.with_context(|| format!("{}: row {}", path.display(), i + 2))?);
    }
    Ok(rows)
}

/// The items a table describes, in name order, each with the type codes of all its rows.
/// A row naming an unknown type, or an item under two departments, is an error naming the
/// row (counted from 2, after the header).
pub fn group_rows(rows: &[ItemRow]) -> anyhow::Result<Vec<pb::ServiceItem>> {
    let mut items: BTreeMap<String, pb::ServiceItem> = BTreeMap::new();
    for (i, row) in rows.iter().enumerate() {
        let line = i + 2;
        let Some(template) = types::find(&row.license_type) else {
            bail!("row {line}: unknown license type {:?}", row.license_type);
        };
        let name = row.service_item.trim();
        let department = row.department.trim();
        let item = items
            .entry(name.to_owned())
            .or_insert_with(|| pb::ServiceItem {
                name: name.to_owned(),
                department: department.to_owned(),
                type_codes: Vec::new(),
            });
        if item.department != department {
            bail!(
                "row {line}: service item {name:?} is under {:?} and {department:?}",
                item.department
            );
        }
        if !item.type_codes.contains(&template.type_code) {
            item.type_codes.push(template.type_code.clone());
        }
    }
    let mut items: Vec<pb::ServiceItem> = items.into_values().collect();
    for item in &mut items {
        item.type_codes.sort();
    }
    Ok(items)
}

/// Runs one `licctl item` command.
pub async fn run(ctx: &Ctx, command: ItemCommand) -> anyhow::Result<()> {
    match command {
        ItemCommand::Put {
            name,
            department,
            type_codes,
        } => {
            let item = pb::ServiceItem {
                name,
                department,
                type_codes: split_names(&type_codes)
                    .iter()
                    .map(|t| types::resolve(t))
                    .collect(),
            };
            let response = put(ctx, item).await?;
            emit(ctx.output, &ItemsView::of(&response, None))
        }
        ItemCommand::Remove { name } => {
            let request = pb::RemoveServiceItemRequest { name };
            let response = ctx
                .client()?
                .retrying(|ch| {
                    let request = request.clone();
                    async move { PoliciesClient::new(ch).remove_service_item(request).await }
                })
                .await?;
            emit(ctx.output, &ItemsView::of(&response, None))
        }
        ItemCommand::List { name } => {
            let response = list(ctx, name.unwrap_or_default()).await?;
            emit(ctx.output, &ItemsView::of(&response, None))
        }
        ItemCommand::Load { file } => load(ctx, &file).await,
    }
}

/// Registers one item.
async fn put(ctx: &Ctx, item: pb::ServiceItem) -> anyhow::Result<pb::ServiceItemsResponse> {
    let request = pb::PutServiceItemRequest { item: Some(item) };
    Ok(ctx
        .client()?
        .retrying(|ch| {
            let request = request.clone();
            async move { PoliciesClient::new(ch).put_service_item(request).await }
        })
        .await?)
}

/// The registered items (all when `name` is empty), read linearizably.
pub async fn list(ctx: &Ctx, name: String) -> anyhow::Result<pb::ServiceItemsResponse> {
    let request = pb::ListServiceItemsRequest {
        consistency: 0,
        name,
    };
    Ok(ctx
        .client()?
        .retrying(|ch| {
            let request = request.clone();
            async move { PoliciesClient::new(ch).list_service_items(request).await }
        })
        .await?)
}

/// `licctl item load FILE`.
async fn load(ctx: &Ctx, file: &Path) -> anyhow::Result<()> {
    let wanted = group_rows(&read_rows(file)?)?;
    let stored: BTreeMap<String, pb::ServiceItem> = list(ctx, String::new())
        .await?
        .items
        .into_iter()
        .map(|i| (i.name.clone(), i))
        .collect();
    let mut changes = Vec::with_capacity(wanted.len());
    let mut loaded = Vec::with_capacity(wanted.len());
    let mut revision = 0;
    for item in wanted {
        let change = match stored.get(&item.name) {
            Some(s) if *s == item => "unchanged",
            Some(_) => "updated",
            None => "added",
        };
        if change != "unchanged" {
            let response = put(ctx, item.clone()).await?;
            revision = revision.max(response.revision);
        }
        changes.push(change.to_owned());
        loaded.push(item);
    }
    let response = pb::ServiceItemsResponse {
        items: loaded,
        revision,
    };
    emit(ctx.output, &ItemsView::of(&response, Some(changes)))
}

/// Service items as printed.
#[derive(Clone, Debug, Serialize)]
pub struct ItemsView {
    pub items: Vec<ItemLine>,
    /// The revision of the answer; for a load, of its last write (0 when nothing changed).
    pub revision: u64,
}

/// One service item as printed.
#[derive(Clone, Debug, Serialize)]
pub struct ItemLine {
    pub name: String,
    pub department: String,
    pub type_codes: Vec<String>,
    /// For a load: added, updated or unchanged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<String>,
}

impl ItemsView {
    fn of(r: &pb::ServiceItemsResponse, changes: Option<Vec<String>>) -> ItemsView {
        let mut changes = changes.map(Vec::into_iter);
        let items = r
            .items
            .iter()
            .map(|i| ItemLine {
                name: i.name.clone(),
                department: i.department.clone(),
                type_codes: i.type_codes.clone(),
                change: changes.as_mut().and_then(Iterator::next),
            })
            .collect();
        ItemsView {
            items,
            revision: r.revision,
        }
    }
}

impl Render for ItemsView {
    fn table(&self) -> Table {
        let with_change = self.items.iter().any(|i| i.change.is_some());
        let mut headers = vec!["service item", "department", "license types"];
        if with_change {
            headers.push("change");
        }
        let mut t = Table::new(&headers);
        for i in &self.items {
            let names: Vec<String> = i
                .type_codes
                .iter()
                .map(|c| types::display_name(c))
                .collect();
            let mut row = vec![i.name.clone(), i.department.clone(), names.join(", ")];
            row.extend(i.change.clone());
            t.row(row);
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(license_type: &str, department: &str, service_item: &str) -> ItemRow {
        ItemRow {
            license_type: license_type.to_owned(),
            department: department.to_owned(),
            department_item_count: String::new(),
            service_item: service_item.to_owned(),
        }
    }

    #[test]
    fn rows_group_by_item_with_every_type_they_name() {
        let rows = [
            row("居民身份证", "市卫生计生委", "申领《独生子女父母光荣证》"),
            row("上海市居住证", "市卫生计生委", "申领《独生子女父母光荣证》"),
            row("居民身份证", "市档案局", "婚姻登记档案查询"),
            row("居民身份证", "市档案局", "婚姻登记档案查询"),
        ];
        let items = group_rows(&rows).expect("valid");
        let names: Vec<&str> = items.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["婚姻登记档案查询", "申领《独生子女父母光荣证》"]);
        assert_eq!(items[0].type_codes, [types::resolve("居民身份证")]);
        let mut both = vec![types::resolve("居民身份证"), types::resolve("上海市居住证")];
        both.sort();
        assert_eq!(items[1].type_codes, both);
        assert_eq!(items[1].department, "市卫生计生委");
    }

    #[test]
    fn bad_rows_are_named() {
        let cases = [
            (
                vec![row("居民身份证", "A", "x"), row("驾驶证", "A", "y")],
                "row 3: unknown license type",
            ),
            (
                vec![row("居民身份证", "A", "x"), row("出生医学证明", "B", "x")],
                "row 3: service item \"x\" is under",
            ),
        ];
        for (rows, expected) in cases {
            let err = group_rows(&rows).expect_err(expected).to_string();
            assert!(err.starts_with(expected), "{err}");
        }
    }

    #[test]
    fn the_bundled_table_parses_into_items_of_known_types() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/service-items.csv");
        let rows = read_rows(&path).expect("data/service-items.csv");
        let items = group_rows(&rows).expect("valid table");
        assert!(
            items.len() > 10 && items.len() < rows.len(),
            "{}",
            items.len()
        );
        let several = items.iter().filter(|i| i.type_codes.len() > 1).count();
        assert!(several > 0, "some items accept more than one type");
    }
}
