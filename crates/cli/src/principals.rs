//! `licctl principal` and `licctl whoami`: the callers a store knows and what they may do.
//!
//! A principal is named by its client certificate (common name, else first SAN) and holds
//! roles; an issuer is bound to issuer codes and license types, a verifier to service items.

use licstore_proto::v1 as pb;
use licstore_proto::v1::access_client::AccessClient;
use serde::Serialize;

use crate::args::PrincipalCommand;
use crate::disclosure::split_names;
use crate::output::{emit, Render, Table};
use crate::Ctx;

/// Runs one `licctl principal` command.
pub async fn run(ctx: &Ctx, command: PrincipalCommand) -> anyhow::Result<()> {
    let mut client = ctx.client()?;
    let response = match command {
        PrincipalCommand::Put {
            name,
            roles,
            issuer_codes,
            type_codes,
            service_items,
        } => {
            let request = pb::PutPrincipalRequest {
                principal: Some(pb::Principal {
                    name,
                    roles: split_names(&roles),
                    issuer_codes: split_names(&issuer_codes),
                    type_codes: split_names(&type_codes)
                        .iter()
                        .map(|t| crate::types::resolve(t))
                        .collect(),
                    service_items,
                }),
            };
            client
                .retrying(|ch| {
                    let request = request.clone();
                    async move { AccessClient::new(ch).put_principal(request).await }
                })
                .await?
        }
        PrincipalCommand::Remove { name } => {
            let request = pb::RemovePrincipalRequest { name };
            client
                .retrying(|ch| {
                    let request = request.clone();
                    async move { AccessClient::new(ch).remove_principal(request).await }
                })
                .await?
        }
        PrincipalCommand::List { name } => {
            let request = pb::ListPrincipalsRequest {
                consistency: 0,
                name: name.unwrap_or_default(),
            };
            client
                .retrying(|ch| {
                    let request = request.clone();
                    async move { AccessClient::new(ch).list_principals(request).await }
                })
                .await?
        }
    };
    emit(ctx.output, &PrincipalsView::of(&response))
}

/// `licctl whoami`.
pub async fn whoami(ctx: &Ctx) -> anyhow::Result<()> {
    let mut client = ctx.client()?;
    let r = client
        .retrying(|ch| async move { AccessClient::new(ch).who_am_i(pb::WhoAmIRequest {}).await })
        .await?;
    let view = WhoAmIView {
        name: r.name,
        roles: r.roles,
        node: r.node,
        access_control: r.access_control,
        principal: r.principal.map(|p| PrincipalLine::of(&p)),
    };
    emit(ctx.output, &view)
}

/// Principals as printed.
#[derive(Clone, Debug, Serialize)]
pub struct PrincipalsView {
    pub principals: Vec<PrincipalLine>,
    pub revision: u64,
}

/// One principal as printed.
#[derive(Clone, Debug, Serialize)]
pub struct PrincipalLine {
    pub name: String,
    pub roles: Vec<String>,
    pub issuer_codes: Vec<String>,
    pub type_codes: Vec<String>,
    pub service_items: Vec<String>,
}

impl PrincipalLine {
    fn of(p: &pb::Principal) -> PrincipalLine {
        PrincipalLine {
            name: p.name.clone(),
            roles: p.roles.clone(),
            issuer_codes: p.issuer_codes.clone(),
            type_codes: p.type_codes.clone(),
            service_items: p.service_items.clone(),
        }
    }

    fn scope(&self) -> String {
        let mut parts = Vec::new();
        if !self.issuer_codes.is_empty() {
            parts.push(format!("issuer codes {}", self.issuer_codes.join(",")));
        }
        if !self.type_codes.is_empty() {
            parts.push(format!("types {}", self.type_codes.join(",")));
        }
        if !self.service_items.is_empty() {
            parts.push(format!("items {}", self.service_items.join(" | ")));
        }
        parts.join("; ")
    }
}

impl PrincipalsView {
    fn of(r: &pb::PrincipalsResponse) -> PrincipalsView {
        PrincipalsView {
            principals: r.principals.iter().map(PrincipalLine::of).collect(),
            revision: r.revision,
        }
    }
}

impl Render for PrincipalsView {
    fn table(&self) -> Table {
        let mut t = Table::new(&["NAME", "ROLES", "SCOPE"]);
        for p in &self.principals {
            t.row([p.name.clone(), p.roles.join(","), p.scope()]);
        }
        t
    }
}

/// What `licctl whoami` prints.
#[derive(Clone, Debug, Serialize)]
pub struct WhoAmIView {
    pub name: String,
    pub roles: Vec<String>,
    pub node: bool,
    pub access_control: bool,
    pub principal: Option<PrincipalLine>,
}

impl Render for WhoAmIView {
    fn table(&self) -> Table {
        let mut t = Table::key_value();
        t.pair("name", self.name.clone());
        t.pair("roles", self.roles.join(","));
        t.pair("node", self.node.to_string());
        t.pair("access control", self.access_control.to_string());
        if let Some(p) = &self.principal {
            t.pair("scope", p.scope());
        }
        t
    }
}
