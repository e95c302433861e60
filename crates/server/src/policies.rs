//! The `Policies` service: the registered service items, and which fields each sees when it
//! verifies a license.
//!
//! Items and rules are replicated commands (`licstore_store::service_items`,
//! `licstore_store::policies`); this module checks requests, proposes them and lists what the
//! replica has applied.

use std::sync::Arc;

use licstore_proto::v1 as pb;
use licstore_proto::v1::policies_server::Policies;
use licstore_store::policies::check_rule;
use licstore_store::service_items::{check_item_name, check_service_item};
use licstore_store::{Command, CommandResult, DisclosureRule, Rejection, ServiceItem};
use tonic::{Code, Request, Response, Status};

use crate::api::consistency_of;
use crate::convert::{field_status, rejection_status};
use crate::node::Node;

/// The `Policies` service.
pub struct PoliciesApi {
    node: Arc<Node>,
}

impl PoliciesApi {
    /// A service over `node`.
    pub fn new(node: Arc<Node>) -> Self {
        PoliciesApi { node }
    }
}

fn rule_to_pb(rule: DisclosureRule) -> pb::DisclosureRule {
    pb::DisclosureRule {
        service_item: rule.service_item,
        type_code: rule.type_code,
        fields: rule.fields,
    }
}

/// The rule a request sets, checked as apply will check it, so bad input never reaches the log.
fn requested_rule(node: &Node, rule: Option<pb::DisclosureRule>) -> Result<DisclosureRule, Status> {
    let rule = rule.ok_or_else(|| field_status(Code::InvalidArgument, "rule", "required"))?;
    let rule = DisclosureRule {
        service_item: rule.service_item,
        type_code: rule.type_code.trim().to_owned(),
        fields: rule.fields.iter().map(|f| f.trim().to_owned()).collect(),
    };
    check_rule(&node.templates, &rule).map_err(|r| rule_rejection(&r))
}

/// A refusal of a rule, naming the field under `rule.`.
fn rule_rejection(r: &licstore_store::Rejection) -> Status {
    let mut prefixed = r.clone();
    prefixed.field = format!("rule.{}", r.field);
    rejection_status(&prefixed)
}

/// A service item as the API shows it.
fn item_to_pb(item: ServiceItem) -> pb::ServiceItem {
    pb::ServiceItem {
        name: item.name,
        department: item.department,
        type_codes: item.type_codes,
    }
}

/// The item a request registers, checked as apply will check it.
fn requested_item(node: &Node, item: Option<pb::ServiceItem>) -> Result<ServiceItem, Status> {
    let item = item.ok_or_else(|| field_status(Code::InvalidArgument, "item", "required"))?;
    let item = ServiceItem {
        name: item.name,
        department: item.department,
        type_codes: item.type_codes,
    };
    check_service_item(&node.templates, &item).map_err(|r| item_rejection(&r))
}

/// A refusal of a service item, naming the field under `item.`.
pub fn item_rejection(r: &Rejection) -> Status {
    let mut prefixed = r.clone();
    prefixed.field = format!("item.{}", r.field);
    rejection_status(&prefixed)
}

fn item_result(
    result: CommandResult,
    field: fn(&Rejection) -> Status,
) -> Result<ServiceItem, Status> {
    match result {
        CommandResult::ServiceItem(Ok(item)) => Ok(item),
        CommandResult::ServiceItem(Err(r)) => Err(field(&r)),
        other => Err(Status::internal(format!("unexpected result {other:?}"))),
    }
}

fn items_response(items: Vec<ServiceItem>, revision: u64) -> Response<pb::ServiceItemsResponse> {
    Response::new(pb::ServiceItemsResponse {
        items: items.into_iter().map(item_to_pb).collect(),
        revision,
    })
}

#[tonic::async_trait]
impl Policies for PoliciesApi {
    async fn set_disclosure(
        &self,
        req: Request<pb::SetDisclosureRequest>,
    ) -> Result<Response<pb::DisclosureRulesResponse>, Status> {
        let rule = requested_rule(&self.node, req.into_inner().rule)?;
        let (result, revision) = self.node.write(Command::SetDisclosure(rule)).await?;
        let stored = match result {
            CommandResult::Disclosure(Ok(rule)) => rule,
            CommandResult::Disclosure(Err(r)) => return Err(rule_rejection(&r)),
            other => return Err(Status::internal(format!("unexpected result {other:?}"))),
        };
        Ok(Response::new(pb::DisclosureRulesResponse {
            rules: vec![rule_to_pb(stored)],
            revision,
        }))
    }

    async fn list_disclosure(
        &self,
        req: Request<pb::ListDisclosureRequest>,
    ) -> Result<Response<pb::DisclosureRulesResponse>, Status> {
        let req = req.into_inner();
        self.node
            .read_barrier(consistency_of(req.consistency, 0)?)
            .await?;
        let reader = &self.node.reader;
        let internal = |e: licstore_store::StoreError| Status::internal(e.to_string());
        let revision = reader.applied_index().map_err(internal)?;
        let item = req.service_item.trim();
        let rules = reader
            .disclosure_rules()
            .map_err(internal)?
            .into_iter()
            .filter(|r| item.is_empty() || r.service_item == item)
            .map(rule_to_pb)
            .collect();
        Ok(Response::new(pb::DisclosureRulesResponse {
            rules,
            revision,
        }))
    }

    async fn put_service_item(
        &self,
        req: Request<pb::PutServiceItemRequest>,
    ) -> Result<Response<pb::ServiceItemsResponse>, Status> {
        let item = requested_item(&self.node, req.into_inner().item)?;
        let (result, revision) = self.node.write(Command::PutServiceItem(item)).await?;
        let stored = item_result(result, item_rejection)?;
        tracing::info!(item = %stored.name, types = ?stored.type_codes, "service item registered");
        Ok(items_response(vec![stored], revision))
    }

    async fn remove_service_item(
        &self,
        req: Request<pb::RemoveServiceItemRequest>,
    ) -> Result<Response<pb::ServiceItemsResponse>, Status> {
        let name =
            check_item_name("name", &req.into_inner().name).map_err(|r| rejection_status(&r))?;
        let (result, revision) = self.node.write(Command::RemoveServiceItem { name }).await?;
        let removed = item_result(result, rejection_status)?;
        tracing::info!(item = %removed.name, "service item removed");
        Ok(items_response(vec![removed], revision))
    }

    async fn list_service_items(
        &self,
        req: Request<pb::ListServiceItemsRequest>,
    ) -> Result<Response<pb::ServiceItemsResponse>, Status> {
        let req = req.into_inner();
        self.node
            .read_barrier(consistency_of(req.consistency, 0)?)
            .await?;
        let reader = &self.node.reader;
        let internal = |e: licstore_store::StoreError| Status::internal(e.to_string());
        let revision = reader.applied_index().map_err(internal)?;
        let name = req.name.trim();
        let items = match name.is_empty() {
            true => reader.service_items().map_err(internal)?,
            false => reader
                .service_item(name)
                .map_err(internal)?
                .into_iter()
                .collect(),
        };
        Ok(items_response(items, revision))
    }
}
