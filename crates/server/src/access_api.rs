//! The `Access` service: who the caller is, and the principals the store knows.
//!
//! Principals are replicated commands (`licstore_store::principals`); this module checks
//! requests, proposes them and lists what the replica has applied. Who may call each method is
//! decided before the call gets here, by [`crate::access::AccessLayer`].

use std::sync::Arc;

use licstore_proto::v1 as pb;
use licstore_proto::v1::access_server::Access;
use licstore_store::principals::{check_principal, check_principal_name};
use licstore_store::{Command, CommandResult, Principal, Rejection, Role};
use tonic::{Code, Request, Response, Status};

use crate::access::Caller;
use crate::api::consistency_of;
use crate::convert::{field_status, rejection_status};
use crate::node::Node;

/// The `Access` service.
pub struct AccessApi {
    node: Arc<Node>,
}

impl AccessApi {
    /// A service over `node`.
    pub fn new(node: Arc<Node>) -> Self {
        AccessApi { node }
    }
}

/// A principal as the API shows it.
pub fn principal_to_pb(p: Principal) -> pb::Principal {
    pb::Principal {
        name: p.name,
        roles: p.roles.iter().map(|r| r.as_str().to_owned()).collect(),
        issuer_codes: p.issuer_codes,
        type_codes: p.type_codes,
        service_items: p.service_items,
    }
}

/// The principal a request registers, checked as apply will check it, so bad input never
/// reaches the log.
fn requested_principal(node: &Node, given: Option<pb::Principal>) -> Result<Principal, Status> {
    let given =
        given.ok_or_else(|| field_status(Code::InvalidArgument, "principal", "required"))?;
    let mut roles = Vec::with_capacity(given.roles.len());
    for (i, name) in given.roles.iter().enumerate() {
        let role = Role::parse(name.trim()).ok_or_else(|| {
            let why = format!("{name:?} is not a role: issuer, verifier, auditor or admin");
            field_status(Code::InvalidArgument, &format!("principal.roles[{i}]"), why)
        })?;
        roles.push(role);
    }
    let principal = Principal {
        name: given.name,
        roles,
        issuer_codes: given.issuer_codes,
        type_codes: given.type_codes,
        service_items: given.service_items,
    };
    check_principal(&node.templates, &principal).map_err(|r| principal_rejection(&r))
}

/// A refusal of a principal, naming the field under `principal.`.
pub fn principal_rejection(r: &Rejection) -> Status {
    let mut prefixed = r.clone();
    prefixed.field = format!("principal.{}", r.field);
    rejection_status(&prefixed)
}

fn principal_result(
    result: CommandResult,
    field: fn(&Rejection) -> Status,
) -> Result<Principal, Status> {
    match result {
        CommandResult::Principal(Ok(p)) => Ok(p),
        CommandResult::Principal(Err(r)) => Err(field(&r)),
        other => Err(Status::internal(format!("unexpected result {other:?}"))),
    }
}

#[tonic::async_trait]
impl Access for AccessApi {
    async fn who_am_i(
        &self,
        req: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::WhoAmIResponse>, Status> {
        let caller = Caller::of(&req)?;
        Ok(Response::new(pb::WhoAmIResponse {
            name: caller.name,
            roles: caller.roles.iter().map(|r| r.as_str().to_owned()).collect(),
            node: caller.node,
            access_control: !caller.unrestricted,
            principal: caller.principal.map(principal_to_pb),
        }))
    }

    async fn put_principal(
        &self,
        req: Request<pb::PutPrincipalRequest>,
    ) -> Result<Response<pb::PrincipalsResponse>, Status> {
        let principal = requested_principal(&self.node, req.into_inner().principal)?;
        let (result, revision) = self.node.write(Command::PutPrincipal(principal)).await?;
        let stored = principal_result(result, principal_rejection)?;
        tracing::info!(principal = %stored.name, roles = ?stored.roles, "principal registered");
        Ok(Response::new(pb::PrincipalsResponse {
            principals: vec![principal_to_pb(stored)],
            revision,
        }))
    }

    async fn remove_principal(
        &self,
        req: Request<pb::RemovePrincipalRequest>,
    ) -> Result<Response<pb::PrincipalsResponse>, Status> {
        let name =
            check_principal_name(&req.into_inner().name).map_err(|r| rejection_status(&r))?;
        let (result, revision) = self.node.write(Command::RemovePrincipal { name }).await?;
        let removed = principal_result(result, rejection_status)?;
        tracing::info!(principal = %removed.name, "principal removed");
        Ok(Response::new(pb::PrincipalsResponse {
            principals: vec![principal_to_pb(removed)],
            revision,
        }))
    }

    async fn revoke_token(
        &self,
        req: Request<pb::RevokeTokenRequest>,
    ) -> Result<Response<pb::RevokeTokenResponse>, Status> {
        let req = req.into_inner();
        // No token this store accepts lasts longer, and the revocation must not outlive the
        // leader's sweep forever.
        let latest_s = crate::sealing::now_ms() / 1000
            + licstore_seal::token::MAX_TTL_S
            + crate::access::TOKEN_LEEWAY_S;
        if req.expires_at_s > latest_s {
            let why = format!(
                "{}: more than a week ahead, past any token",
                req.expires_at_s
            );
            return Err(field_status(Code::InvalidArgument, "expires_at_s", why));
        }
        let cmd = Command::RevokeToken {
            jti: req.jti,
            expires_at_s: req.expires_at_s,
        };
        crate::api::revalidate(&cmd, &self.node.templates)?;
        match self.node.write(cmd).await? {
            (CommandResult::TokenRevoked(Ok(kept)), revision) => {
                tracing::info!(jti = %kept.jti, expires_at_s = kept.expires_at_s, "token revoked");
                Ok(Response::new(pb::RevokeTokenResponse {
                    jti: kept.jti,
                    expires_at_s: kept.expires_at_s,
                    revision,
                }))
            }
            (CommandResult::TokenRevoked(Err(r)), _) => Err(rejection_status(&r)),
            (other, _) => Err(Status::internal(format!("unexpected result {other:?}"))),
        }
    }

    async fn list_principals(
        &self,
        req: Request<pb::ListPrincipalsRequest>,
    ) -> Result<Response<pb::PrincipalsResponse>, Status> {
        let req = req.into_inner();
        self.node
            .read_barrier(consistency_of(req.consistency, 0)?)
            .await?;
        let reader = &self.node.reader;
        let internal = |e: licstore_store::StoreError| Status::internal(e.to_string());
        let revision = reader.applied_index().map_err(internal)?;
        let name = req.name.trim();
        let principals = reader
            .principals()
            .map_err(internal)?
            .into_iter()
            .filter(|p| name.is_empty() || p.name == name)
            .map(principal_to_pb)
            .collect();
        Ok(Response::new(pb::PrincipalsResponse {
            principals,
            revision,
        }))
    }
}
