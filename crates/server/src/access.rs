//! Access control: who is calling, and whether its roles allow the RPC it calls.
//!
//! With TLS on, every caller presents a client certificate from the client CA (the handshake
//! refuses the rest). Its name ([`cert_name`]) is looked up among the principals the store
//! holds (`licstore_store::principals`), replicated through Raft. [`AccessLayer`] wraps every
//! route: it finds the right an RPC needs ([`right_of`]), decides ([`decide`]) and either
//! answers PERMISSION_DENIED naming the missing right or hands the call on with a [`Caller`]
//! in its extensions, where handlers read the caller's scope.
//!
//! Two sets of names come from the configuration rather than the store, since they are needed
//! before anything is replicated: `[access] node_names`, the certificates of the nodes
//! (Raft traffic), and `admin_names`, who may register the first principals.
//!
//! A caller may instead present a signed bearer token (`authorization: Bearer …`) when the
//! node has token keys (`[access] token_key_files`); the client certificate is then optional.
//! A token's caller is named `token:<sub>` ([`TOKEN_NAME_PREFIX`]), a namespace no certificate
//! may use, so a token never passes for a certificate (nor for a node) and the other way
//! round. With a token present, the token names the caller, whatever certificate came with it.
//!
//! With `--insecure` there are no certificates and access control is off: every caller may
//! call everything, which the start-up warning says.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use licstore_store::{Principal, Role};
use rustls::pki_types::CertificateDer;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::Status;

use crate::node::Node;
use crate::refusals::{AnonymousRefusals, UNAUTHENTICATED};

/// What an RPC needs; each is granted to some roles (see [`Right::roles`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Right {
    /// Issue, amend, change status, import.
    LicenseWrite,
    /// Read whole licenses: get, list, query, watch, export, present.
    LicenseRead,
    /// Verify and VerifyBatch.
    LicenseVerify,
    /// Seal keys, status lists and trust lists, read.
    SealRead,
    /// Register, rotate and revoke seal keys.
    SealManage,
    /// Import trust lists.
    TrustManage,
    /// Read service items and disclosure rules.
    PolicyRead,
    /// Register and remove service items, set disclosure rules.
    PolicyManage,
    /// Cluster status, members, digests and checks.
    ClusterRead,
    /// Membership changes, compaction, leader transfer, snapshots, probes.
    ClusterManage,
    /// List principals.
    PrincipalRead,
    /// Register and remove principals.
    PrincipalManage,
    /// Read the audit trail.
    AuditRead,
    /// Trim the oldest records of the audit trail.
    AuditManage,
    /// Raft messages between nodes.
    Raft,
    /// Health, reflection and WhoAmI: any holder of a client certificate.
    Public,
}

/// The RPCs of each right, by gRPC path (`/package.Service/Method`).
const RULES: &[(&str, Right)] = &[
    ("/licstore.v1.Licenses/Issue", Right::LicenseWrite),
    ("/licstore.v1.Licenses/Amend", Right::LicenseWrite),
    ("/licstore.v1.Licenses/ChangeStatus", Right::LicenseWrite),
    ("/licstore.v1.Licenses/Import", Right::LicenseWrite),
    ("/licstore.v1.Licenses/Get", Right::LicenseRead),
    ("/licstore.v1.Licenses/GetByIdentifier", Right::LicenseRead),
    ("/licstore.v1.Licenses/ListByHolder", Right::LicenseRead),
    ("/licstore.v1.Licenses/Query", Right::LicenseRead),
    ("/licstore.v1.Licenses/Watch", Right::LicenseRead),
    ("/licstore.v1.Licenses/Verify", Right::LicenseVerify),
    ("/licstore.v1.Licenses/VerifyBatch", Right::LicenseVerify),
    ("/licstore.v1.Seals/RegisterKey", Right::SealManage),
    ("/licstore.v1.Seals/RotateKey", Right::SealManage),
    ("/licstore.v1.Seals/RevokeKey", Right::SealManage),
    ("/licstore.v1.Seals/ListKeys", Right::SealRead),
    ("/licstore.v1.Seals/ExportLicense", Right::LicenseRead),
    ("/licstore.v1.Seals/Present", Right::LicenseRead),
    ("/licstore.v1.Seals/GetStatusList", Right::SealRead),
    ("/licstore.v1.Seals/ImportTrustList", Right::TrustManage),
    ("/licstore.v1.Seals/ListTrustLists", Right::SealRead),
    ("/licstore.v1.Policies/SetDisclosure", Right::PolicyManage),
    ("/licstore.v1.Policies/ListDisclosure", Right::PolicyRead),
    ("/licstore.v1.Policies/PutServiceItem", Right::PolicyManage),
    (
        "/licstore.v1.Policies/RemoveServiceItem",
        Right::PolicyManage,
    ),
    ("/licstore.v1.Policies/ListServiceItems", Right::PolicyRead),
    ("/licstore.v1.Cluster/Status", Right::ClusterRead),
    ("/licstore.v1.Cluster/MemberList", Right::ClusterRead),
    ("/licstore.v1.Cluster/AddLearner", Right::ClusterManage),
    ("/licstore.v1.Cluster/Promote", Right::ClusterManage),
    ("/licstore.v1.Cluster/RemoveMember", Right::ClusterManage),
    ("/licstore.v1.Cluster/StateDigest", Right::ClusterRead),
    ("/licstore.v1.Cluster/Check", Right::ClusterRead),
    ("/licstore.v1.Cluster/Compact", Right::ClusterManage),
    ("/licstore.v1.Cluster/TransferLeader", Right::ClusterManage),
    ("/licstore.v1.Cluster/Snapshot", Right::ClusterManage),
    ("/licstore.v1.Cluster/Probe", Right::ClusterManage),
    ("/licstore.v1.Access/WhoAmI", Right::Public),
    ("/licstore.v1.Access/PutPrincipal", Right::PrincipalManage),
    (
        "/licstore.v1.Access/RemovePrincipal",
        Right::PrincipalManage,
    ),
    ("/licstore.v1.Access/ListPrincipals", Right::PrincipalRead),
    ("/licstore.v1.Access/RevokeToken", Right::PrincipalManage),
    ("/licstore.v1.Audit/ListAudit", Right::AuditRead),
    ("/licstore.v1.Audit/TrimAudit", Right::AuditManage),
];

/// Service prefixes whose every method has one right.
const SERVICE_RULES: &[(&str, Right)] = &[
    ("/licstore.v1.raft.Raft/", Right::Raft),
    ("/grpc.health.v1.Health/", Right::Public),
    ("/grpc.reflection.v1.ServerReflection/", Right::Public),
    ("/grpc.reflection.v1alpha.ServerReflection/", Right::Public),
];

/// The right a gRPC path needs; `None` for a path no service serves.
pub fn right_of(path: &str) -> Option<Right> {
    RULES
        .iter()
        .find(|(p, _)| *p == path)
        .or_else(|| SERVICE_RULES.iter().find(|(p, _)| path.starts_with(p)))
        .map(|(_, right)| *right)
}

/// Every path with its own rule, for tests that walk the table.
pub fn rule_paths() -> impl Iterator<Item = (&'static str, Right)> {
    RULES.iter().copied()
}

impl Right {
    /// The name a refusal gives.
    pub fn as_str(self) -> &'static str {
        match self {
            Right::LicenseWrite => "license.write",
            Right::LicenseRead => "license.read",
            Right::LicenseVerify => "license.verify",
            Right::SealRead => "seal.read",
            Right::SealManage => "seal.manage",
            Right::TrustManage => "trust.manage",
            Right::PolicyRead => "policy.read",
            Right::PolicyManage => "policy.manage",
            Right::ClusterRead => "cluster.read",
            Right::ClusterManage => "cluster.manage",
            Right::AuditRead => "audit.read",
            Right::AuditManage => "audit.manage",
            Right::PrincipalRead => "principal.read",
            Right::PrincipalManage => "principal.manage",
            Right::Raft => "raft",
            Right::Public => "public",
        }
    }

    /// The roles granted this right. Nodes hold [`Right::Raft`] and [`Right::ClusterRead`];
    /// [`Right::Public`] needs only a certificate.
    pub fn roles(self) -> &'static [Role] {
        use Role::{Admin, Auditor, Issuer, Verifier};
        match self {
            Right::LicenseWrite | Right::LicenseRead => &[Issuer],
            Right::LicenseVerify => &[Verifier],
            Right::SealRead | Right::ClusterRead => &[Issuer, Verifier, Auditor, Admin],
            Right::SealManage => &[Issuer, Admin],
            Right::PolicyRead => &[Verifier, Auditor, Admin],
            Right::PrincipalRead => &[Auditor, Admin],
            Right::AuditRead => &[Auditor],
            Right::TrustManage
            | Right::PolicyManage
            | Right::ClusterManage
            | Right::PrincipalManage
            | Right::AuditManage => &[Admin],
            Right::Raft | Right::Public => &[],
        }
    }

    fn for_nodes(self) -> bool {
        matches!(self, Right::Raft | Right::ClusterRead | Right::Public)
    }
}

/// Who a call comes from, as the handlers see it (in the request's extensions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The certificate's name; empty with access control off.
    pub name: String,
    /// Roles from the store and from `[access] admin_names`.
    pub roles: Vec<Role>,
    /// The stored principal, with its issuer code, types and service items.
    pub principal: Option<Principal>,
    /// Named in `[access] node_names`.
    pub node: bool,
    /// Access control is off (`--insecure`): every right is granted.
    pub unrestricted: bool,
}

impl Caller {
    /// The caller with access control off.
    pub fn unrestricted() -> Caller {
        Caller {
            name: String::new(),
            roles: Role::ALL.to_vec(),
            principal: None,
            node: false,
            unrestricted: true,
        }
    }

    /// Whether it holds `role`.
    pub fn has(&self, role: Role) -> bool {
        self.unrestricted || self.roles.contains(&role)
    }

    /// The caller the access layer put in a request's extensions.
    pub fn of<T>(req: &tonic::Request<T>) -> Result<Caller, Status> {
        req.extensions()
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| Status::internal("no caller: the access layer is missing"))
    }

    /// Whether it may write a license of `type_code` issued under `issuer_code`: an issuer
    /// registered for both. `prefix` is the license's path in the request, for the field a
    /// refusal names.
    pub fn may_write(
        &self,
        prefix: &str,
        issuer_code: &str,
        type_code: &str,
    ) -> Result<(), Status> {
        match self.write_refusal(issuer_code, type_code) {
            None => Ok(()),
            Some((WriteScope::Type, why)) => Err(scope_denied(&format!("{prefix}type_code"), why)),
            Some((WriteScope::Issuer, why)) => {
                Err(scope_denied(&format!("{prefix}issuer.code"), why))
            }
        }
    }

    /// Whether it may verify for `service_item`: a verifier registered for it.
    pub fn may_verify_for(&self, service_item: &str) -> Result<(), Status> {
        if self.unrestricted {
            return Ok(());
        }
        let items = self
            .principal
            .as_ref()
            .filter(|p| p.has(Role::Verifier))
            .map(|p| p.service_items.as_slice())
            .unwrap_or(&[]);
        if items.iter().any(|i| i == service_item) {
            return Ok(());
        }
        let why = format!(
            "principal {:?} is not registered for this service item; it verifies for {}",
            self.name,
            if items.is_empty() {
                "none".to_owned()
            } else {
                items.join(" | ")
            }
        );
        Err(scope_denied("service_item", why))
    }

    /// Whether it may manage the seal keys of `authority`: an admin any, an issuer those of its
    /// own issuer codes. `field` names the request field a refusal points at.
    pub fn may_manage_keys(&self, field: &str, authority: &str) -> Result<(), Status> {
        if self.has(Role::Admin) {
            return Ok(());
        }
        let principal = self.principal.as_ref().filter(|p| p.has(Role::Issuer));
        if principal.is_some_and(|p| p.covers_issuer(authority)) {
            return Ok(());
        }
        let codes = principal.map(|p| p.issuer_codes.as_slice()).unwrap_or(&[]);
        let why = format!(
            "principal {:?} may manage the seal keys of its own issuer codes only ({}), not \
             {authority:?}",
            self.name,
            codes.join(", ")
        );
        Err(scope_denied(field, why))
    }

    /// Why the caller may not write a license of `type_code` under `issuer_code`, if not.
    pub fn write_refusal(
        &self,
        issuer_code: &str,
        type_code: &str,
    ) -> Option<(WriteScope, String)> {
        if self.unrestricted {
            return None;
        }
        let name = &self.name;
        let Some(p) = self.principal.as_ref().filter(|p| p.has(Role::Issuer)) else {
            let why = format!("principal {name:?} is not a registered issuer");
            return Some((WriteScope::Issuer, why));
        };
        if !p.covers_type(type_code) {
            let why = format!(
                "principal {name:?} may not write license type {type_code}; it may write {}",
                p.type_codes.join(", ")
            );
            return Some((WriteScope::Type, why));
        }
        if !p.covers_issuer(issuer_code) {
            let why = format!(
                "principal {name:?} may not write for issuer {issuer_code:?}; it may write for {}",
                p.issuer_codes.join(", ")
            );
            return Some((WriteScope::Issuer, why));
        }
        None
    }
}

/// Which part of an issuer's scope a write falls outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteScope {
    /// The license type.
    Type,
    /// The issuer code.
    Issuer,
}

/// PERMISSION_DENIED on a field of the request.
fn scope_denied(field: &str, why: String) -> Status {
    crate::convert::field_status(tonic::Code::PermissionDenied, field, why)
}

/// Names the configuration grants rights to, and whether access control is on at all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessPolicy {
    /// Off only with `--insecure`.
    pub enabled: bool,
    /// Certificate names that are admins whatever the store holds.
    pub admin_names: BTreeSet<String>,
    /// Certificate names of the cluster's nodes.
    pub node_names: BTreeSet<String>,
    /// Public keys whose bearer tokens name callers (`access.token_key_files`).
    pub token_key_files: Vec<std::path::PathBuf>,
    /// The audience a token must name.
    pub token_audience: String,
}

/// Decides a call: the caller it is, or why it is refused. Pure: `stored` is the principal the
/// store holds under `name`, read by the caller of this function.
pub fn decide(
    policy: &AccessPolicy,
    name: &str,
    stored: Option<Principal>,
    right: Right,
) -> Result<Caller, Status> {
    let node = policy.node_names.contains(name);
    let mut roles = stored.as_ref().map(|p| p.roles.clone()).unwrap_or_default();
    if policy.admin_names.contains(name) && !roles.contains(&Role::Admin) {
        roles.push(Role::Admin);
        roles.sort();
    }
    let caller = Caller {
        name: name.to_owned(),
        roles,
        principal: stored,
        node,
        unrestricted: false,
    };
    let granted = right == Right::Public
        || (node && right.for_nodes())
        || right.roles().iter().any(|r| caller.roles.contains(r));
    if granted {
        return Ok(caller);
    }
    Err(denial(&caller, right))
}

fn denial(caller: &Caller, right: Right) -> Status {
    let name = &caller.name;
    if caller.roles.is_empty() && !caller.node {
        return Status::permission_denied(format!(
            "missing right {}: certificate name {name:?} is not a registered principal",
            right.as_str()
        ));
    }
    let names = |roles: &[Role]| -> String {
        let list: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        if list.is_empty() {
            "none".to_owned()
        } else {
            list.join(", ")
        }
    };
    let held_by = match right {
        Right::Raft => "cluster nodes (access.node_names)".to_owned(),
        _ => format!("roles {}", names(right.roles())),
    };
    Status::permission_denied(format!(
        "missing right {}, held by {held_by}; principal {name:?} has roles {}",
        right.as_str(),
        names(&caller.roles)
    ))
}

/// The name a client certificate stands for: its subject's common name as it is; without a
/// common name, its first subject alternative name tagged with its kind (`dns:`, `uri:`,
/// `email:`, `ip:`, in that order of preference), so a SAN can never pass for a common name.
/// `None` for a certificate that does not parse, whose common name is not a readable string
/// (rather than falling back to a SAN), or that has neither.
pub fn cert_name(der: &[u8]) -> Option<String> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    if let Some(attribute) = cert.subject().iter_common_name().next() {
        let cn = attribute.as_str().ok()?.trim();
        return (!cn.is_empty()).then(|| cn.to_owned());
    }
    let san = cert.subject_alternative_name().ok()??;
    let names = &san.value.general_names;
    let tagged = |g: &GeneralName, kind: &str| -> Option<String> {
        match (g, kind) {
            (GeneralName::DNSName(n), "dns") => Some(format!("dns:{n}")),
            (GeneralName::URI(n), "uri") => Some(format!("uri:{n}")),
            (GeneralName::RFC822Name(n), "email") => Some(format!("email:{n}")),
            (GeneralName::IPAddress(b), "ip") => ip_text(b).map(|ip| format!("ip:{ip}")),
            _ => None,
        }
    };
    ["dns", "uri", "email", "ip"]
        .iter()
        .find_map(|kind| names.iter().find_map(|g| tagged(g, kind)))
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes)
            .ok()
            .map(|b| std::net::Ipv4Addr::from(b).to_string()),
        16 => <[u8; 16]>::try_from(bytes)
            .ok()
            .map(|b| std::net::Ipv6Addr::from(b).to_string()),
        _ => None,
    }
}

/// What names a caller that holds a bearer token: `token:` and the token's `sub`.
pub const TOKEN_NAME_PREFIX: &str = "token:";
/// Clock difference allowed when checking a token's times, in seconds.
pub const TOKEN_LEEWAY_S: u64 = 60;

/// The tower layer that checks every call (see the module docs).
#[derive(Clone)]
pub struct AccessLayer {
    node: Arc<Node>,
    policy: Arc<AccessPolicy>,
    /// Keys of `access.token_key_files`; empty: bearer tokens are refused.
    token_keys: Arc<Vec<licstore_seal::token::TokenKey>>,
    /// Which refusals of calls with no identity are recorded.
    anonymous: Arc<Mutex<AnonymousRefusals>>,
}

impl AccessLayer {
    /// A layer deciding with `policy` over the principals `node` has applied; `token_keys`
    /// verify bearer tokens.
    pub fn new(
        node: Arc<Node>,
        policy: AccessPolicy,
        token_keys: Vec<licstore_seal::token::TokenKey>,
    ) -> Self {
        AccessLayer {
            node,
            policy: Arc::new(policy),
            token_keys: Arc::new(token_keys),
            anonymous: Arc::default(),
        }
    }

    /// The caller's name: from its bearer token when it sends one, else from its certificate.
    fn caller_name(
        &self,
        certs: Option<Arc<Vec<CertificateDer<'static>>>>,
        authorization: Option<&http::HeaderValue>,
    ) -> Result<String, Status> {
        let Some(value) = authorization else {
            return certificate_name(certs);
        };
        let token = bearer_token(value)?;
        if self.token_keys.is_empty() {
            let why = "bearer token: this node accepts none (no access.token_key_files)";
            return Err(Status::unauthenticated(why));
        }
        let now_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let audience = &self.policy.token_audience;
        let claims = licstore_seal::token::verify_token(
            token,
            &self.token_keys,
            audience,
            now_s,
            TOKEN_LEEWAY_S,
        )
        .map_err(|e| Status::unauthenticated(e.to_string()))?;
        if let Some(jti) = &claims.jti {
            let revoked =
                self.node.reader.token_revoked(jti).map_err(|e| {
                    Status::unavailable(format!("revoked tokens cannot be read: {e}"))
                })?;
            if revoked {
                let why = format!("claims.jti: token {jti} is revoked");
                return Err(Status::unauthenticated(why));
            }
        }
        Ok(format!("{TOKEN_NAME_PREFIX}{}", claims.sub))
    }
}

/// The token of an `authorization: Bearer <token>` header.
fn bearer_token(value: &http::HeaderValue) -> Result<&str, Status> {
    let text = value
        .to_str()
        .map_err(|_| Status::unauthenticated("authorization: not visible ASCII"))?;
    match text.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Ok(token.trim()),
        _ => Err(Status::unauthenticated(
            "authorization: only \"Bearer <token>\" is accepted",
        )),
    }
}

impl<S> tower::Layer<S> for AccessLayer {
    type Service = Access<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Access {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`AccessLayer`] wraps around the routes.
#[derive(Clone)]
pub struct Access<S> {
    inner: S,
    layer: AccessLayer,
}

type Body = tonic::body::Body;

impl<S, B> tower::Service<http::Request<B>> for Access<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        // The readied service serves this call; a fresh clone waits for the next one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        // What the decision needs is taken now: the request body need not be shareable.
        let path = req.uri().path().to_owned();
        let tls = req.extensions().get::<TlsConnectInfo<TcpConnectInfo>>();
        let certs = tls.and_then(|info| info.peer_certs());
        let tcp = tls
            .map(|info| info.get_ref())
            .or_else(|| req.extensions().get::<TcpConnectInfo>());
        let peer_ip = tcp.and_then(|info| info.remote_addr()).map(|a| a.ip());
        let authorization = req.headers().get(http::header::AUTHORIZATION).cloned();
        Box::pin(async move {
            let name = layer
                .policy
                .enabled
                .then(|| layer.caller_name(certs, authorization.as_ref()));
            let key = match &name {
                Some(Ok(name)) => name.clone(),
                _ => peer_ip.map_or_else(|| "peer:unknown".to_owned(), |ip| format!("peer:{ip}")),
            };
            // Limits come before the decision, so refused calls (each audited) are limited too.
            let permit = match layer.limited(&path, &name) {
                false => None,
                true => match layer.node.limits.admit(&key) {
                    Ok(permit) => Some(permit),
                    Err(shed) => return Ok(shed.into_http()),
                },
            };
            match layer.check(&path, name) {
                Ok(caller) => {
                    if let Err(stalled) = layer.node.audit.admit(&path) {
                        return Ok(stalled.into_http());
                    }
                    req.extensions_mut().insert(caller);
                    // Charged further as the caller it was counted as.
                    let key = permit.as_ref().map_or(key, |p| p.caller().to_owned());
                    req.extensions_mut().insert(crate::limits::LimitKey(key));
                    let Some(permit) = permit else {
                        return inner.call(req).await;
                    };
                    // The handler runs on a task that holds the permit: a client that gives up
                    // (a deadline, a reset stream) does not free the slot while work goes on.
                    let call = inner.call(req);
                    let handled = tokio::spawn(async move {
                        let response = call.await;
                        drop(permit);
                        response
                    });
                    match handled.await {
                        Ok(response) => Ok(layer.oversize(&path, response?)),
                        Err(e) => {
                            tracing::error!(path, error = %e, "handler failed");
                            Ok(Status::internal("the handler failed").into_http())
                        }
                    }
                }
                Err((name, status)) => {
                    let refused = layer.refuse(&path, name, peer_ip, status).await;
                    Ok(refused.into_http())
                }
            }
        })
    }
}

/// The name of the client certificate presented, or why there is none to go by.
fn certificate_name(certs: Option<Arc<Vec<CertificateDer<'static>>>>) -> Result<String, Status> {
    let Some(first) = certs.as_ref().and_then(|c| c.first()) else {
        return Err(Status::unauthenticated("no client certificate"));
    };
    let name = cert_name(first.as_ref()).ok_or_else(|| {
        let why = "the client certificate has neither a common name nor a usable SAN";
        Status::unauthenticated(why)
    })?;
    if name.starts_with(TOKEN_NAME_PREFIX) {
        let why = format!("the client certificate's name {name:?} is kept for bearer tokens");
        return Err(Status::unauthenticated(why));
    }
    Ok(name)
}

impl AccessLayer {
    /// Whether a call to `path` from the certificate `name` (`None` with access control off)
    /// counts against the limits: everything but health checks and Raft traffic from nodes.
    fn limited(&self, path: &str, name: &Option<Result<String, Status>>) -> bool {
        if path.starts_with("/grpc.health.v1.Health/") {
            return false;
        }
        if right_of(path) != Some(Right::Raft) {
            return true;
        }
        match name {
            None => false,
            Some(Ok(name)) => !self.policy.node_names.contains(name),
            Some(Err(_)) => true,
        }
    }

    /// The response, with a request over `limits.max_request_bytes` answered
    /// RESOURCE_EXHAUSTED (see [`crate::limits::oversize`]); Raft's own bound is not that one.
    fn oversize(&self, path: &str, response: http::Response<Body>) -> http::Response<Body> {
        if right_of(path) == Some(Right::Raft) {
            return response;
        }
        let max = self.node.limits.settings().max_request_bytes;
        match Status::from_header_map(response.headers())
            .and_then(|status| crate::limits::oversize(&status, max))
        {
            Some(mapped) => mapped.into_http(),
            None => response,
        }
    }

    /// Decides a call to `path` from the certificate `name` (`None` with access control off).
    /// One point read of the principal, from the block cache in the common case.
    fn check(
        &self,
        path: &str,
        name: Option<Result<String, Status>>,
    ) -> Result<Caller, (Option<String>, Status)> {
        let Some(name) = name else {
            return Ok(Caller::unrestricted());
        };
        let Some(right) = right_of(path) else {
            return Err((None, Status::unimplemented(format!("no method {path}"))));
        };
        let name = name.map_err(|status| (None, status))?;
        // Raft messages from a node need no lookup: they are the bulk of a node's calls.
        let node_call = right == Right::Raft && self.policy.node_names.contains(&name);
        let stored = match node_call {
            true => None,
            false => self
                .node
                .reader
                .principal(&name)
                .map_err(|e| (Some(name.clone()), Status::internal(e.to_string())))?,
        };
        let decided = decide(&self.policy, &name, stored, right);
        if let Err(status) = &decided {
            tracing::info!(principal = %name, path, reason = status.message(), "call refused");
        }
        decided.map_err(|status| (Some(name), status))
    }

    /// The answer to a refused call: a refusal for want of a right or of a certificate is
    /// recorded in the audit trail first, and the call is answered UNAVAILABLE if it cannot be.
    /// A call with no identity at all (`name` none) is recorded at most once a second per
    /// peer address, the next record counting those left out (see [`crate::refusals`]).
    async fn refuse(
        &self,
        path: &str,
        name: Option<String>,
        peer_ip: Option<IpAddr>,
        status: Status,
    ) -> Status {
        let audited = [tonic::Code::PermissionDenied, tonic::Code::Unauthenticated];
        if !audited.contains(&status.code()) {
            return status;
        }
        let mut detail = status.message().to_owned();
        if name.is_none() {
            metrics::counter!(UNAUTHENTICATED).increment(1);
            let now = std::time::Instant::now();
            let recorded = match self.anonymous.lock() {
                Ok(mut anonymous) => anonymous.record(peer_ip, now),
                Err(poisoned) => poisoned.into_inner().record(peer_ip, now),
            };
            let Some((source, left_out)) = recorded else {
                return status;
            };
            let from = match source {
                Some(IpAddr::V6(net)) => format!("{net}/64"),
                Some(v4) => v4.to_string(),
                None => "unknown or overflow addresses".to_owned(),
            };
            detail = format!("from {from} ({left_out} more since its last record): {detail}");
        }
        let event = licstore_model::audit::AuditEvent {
            caller: name.unwrap_or_default(),
            action: crate::audit::action_of(path),
            outcome: crate::audit::code_outcome(&status),
            detail: crate::audit::bounded(&detail),
            ..Default::default()
        };
        match self.node.audit.record(vec![event]).await {
            Ok(()) => status,
            Err(unrecorded) => unrecorded,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(name: &str, roles: &[Role]) -> Principal {
        Principal {
            name: name.into(),
            roles: roles.to_vec(),
            issuer_codes: Vec::new(),
            type_codes: Vec::new(),
            service_items: Vec::new(),
        }
    }

    #[test]
    fn every_rule_path_is_decided_and_unknown_paths_are_not() {
        for (path, right) in rule_paths() {
            assert_eq!(right_of(path), Some(right), "{path}");
        }
        assert_eq!(right_of("/licstore.v1.raft.Raft/Vote"), Some(Right::Raft));
        assert_eq!(right_of("/licstore.v1.Licenses/Nope"), None);
        assert_eq!(right_of("/licstore.v1.Licenses/IssueX"), None);
    }

    #[test]
    fn every_method_the_node_serves_has_a_rule() {
        use prost::Message;
        let mut files = Vec::new();
        for set in [
            licstore_proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
        ] {
            let set = prost_types::FileDescriptorSet::decode(set).expect("descriptor set");
            files.extend(set.file);
        }
        let mut methods = 0;
        for file in &files {
            for service in &file.service {
                let full = format!("{}.{}", file.package(), service.name());
                for method in &service.method {
                    let path = format!("/{full}/{}", method.name());
                    assert!(right_of(&path).is_some(), "{path} has no rule");
                    methods += 1;
                }
            }
        }
        assert!(methods > 40, "only {methods} methods found");
        let reflection = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
        assert_eq!(right_of(reflection), Some(Right::Public));
    }

    #[test]
    fn decisions() {
        let policy = AccessPolicy {
            enabled: true,
            admin_names: ["root".to_owned()].into(),
            node_names: ["node".to_owned()].into(),
            ..AccessPolicy::default()
        };
        let issuer = Some(principal("iss", &[Role::Issuer]));
        let verifier = Some(principal("ver", &[Role::Verifier]));
        // (name, stored, right, allowed, what a refusal must name)
        let cases: [(&str, Option<Principal>, Right, bool, &str); 12] = [
            ("iss", issuer.clone(), Right::LicenseWrite, true, ""),
            (
                "iss",
                issuer.clone(),
                Right::LicenseVerify,
                false,
                "license.verify",
            ),
            (
                "iss",
                issuer.clone(),
                Right::PrincipalManage,
                false,
                "roles admin",
            ),
            ("ver", verifier.clone(), Right::LicenseVerify, true, ""),
            (
                "ver",
                verifier.clone(),
                Right::LicenseRead,
                false,
                "has roles verifier",
            ),
            ("ver", verifier, Right::Raft, false, "node_names"),
            ("root", None, Right::PrincipalManage, true, ""),
            ("root", None, Right::LicenseWrite, false, "license.write"),
            ("node", None, Right::Raft, true, ""),
            ("node", None, Right::LicenseRead, false, "license.read"),
            ("stranger", None, Right::Public, true, ""),
            (
                "stranger",
                None,
                Right::ClusterRead,
                false,
                "not a registered principal",
            ),
        ];
        for (name, stored, right, allowed, names) in cases {
            match decide(&policy, name, stored, right) {
                Ok(caller) => {
                    assert!(allowed, "{name} {right:?} was allowed");
                    assert_eq!(caller.name, name);
                }
                Err(status) => {
                    assert!(!allowed, "{name} {right:?}: {status:?}");
                    assert_eq!(status.code(), tonic::Code::PermissionDenied);
                    assert!(status.message().contains(names), "{status:?}");
                }
            }
        }
    }

    #[test]
    fn certificate_names() {
        use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};
        let key = KeyPair::generate().expect("key");
        let der =
            |params: CertificateParams| params.self_signed(&key).expect("cert").der().to_vec();
        let mut with_cn = CertificateParams::new(vec!["a.example".to_owned()]).expect("params");
        with_cn
            .distinguished_name
            .push(DnType::CommonName, "pudong-police");
        assert_eq!(cert_name(&der(with_cn)).as_deref(), Some("pudong-police"));
        // rcgen gives a certificate a common name unless told otherwise.
        let mut dns = CertificateParams::new(vec!["a.example".to_owned()]).expect("params");
        dns.distinguished_name = DistinguishedName::new();
        assert_eq!(cert_name(&der(dns)).as_deref(), Some("dns:a.example"));
        let mut ip = CertificateParams::new(Vec::<String>::new()).expect("params");
        ip.distinguished_name = DistinguishedName::new();
        ip.subject_alt_names = vec![SanType::IpAddress([127, 0, 0, 1].into())];
        assert_eq!(cert_name(&der(ip)).as_deref(), Some("ip:127.0.0.1"));
        let mut blank = CertificateParams::new(vec!["a.example".to_owned()]).expect("params");
        blank.distinguished_name = DistinguishedName::new();
        blank.distinguished_name.push(DnType::CommonName, " ");
        assert_eq!(
            cert_name(&der(blank)),
            None,
            "a blank common name names nobody"
        );
        assert_eq!(cert_name(b"not a certificate"), None);
        // A certificate may not take a bearer token's name.
        let mut posing = CertificateParams::new(Vec::<String>::new()).expect("params");
        posing.distinguished_name = DistinguishedName::new();
        posing
            .distinguished_name
            .push(DnType::CommonName, "token:ops");
        let chain = Some(Arc::new(vec![CertificateDer::from(der(posing))]));
        let refused = certificate_name(chain).expect_err("a token: name");
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);
        assert!(
            refused.message().contains("kept for bearer tokens"),
            "{refused:?}"
        );
    }
}
