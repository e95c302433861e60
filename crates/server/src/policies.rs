//! The `Policies` service: which fields each service item sees when it verifies a license.
//!
//! Rules are replicated commands (`licstore_store::policies`); this module checks requests,
//! proposes them and lists what the replica has applied.

use std::sync::Arc;

use licstore_proto::v1 as pb;
use licstore_proto::v1::policies_server::Policies;
use licstore_store::policies::check_rule;
use licstore_store::{Command, CommandResult, DisclosureRule};
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
}
