//! Access control over real TLS: a node that requires client certificates, principals
//! registered through the Access service, and every RPC called with every role's certificate.
//! A call is allowed when it is answered with anything but PERMISSION_DENIED; a denied call
//! names the missing right. Certificates from another CA, expired ones and those of a removed
//! principal are refused; an issuer writes only its own issuer codes and license types, and a
//! verifier verifies only for its own service items. Limits against abuse: a caller over its
//! rate, its share of calls in flight or the request size is told RESOURCE_EXHAUSTED with a
//! retry hint, and other callers are not held back.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{issuer_code, resident_card, Cluster};
use licstore_proto::v1 as pb;
use licstore_proto::v1::access_client::AccessClient;
use licstore_proto::v1::audit_client::AuditClient;
use licstore_proto::v1::cluster_client::ClusterClient;
use licstore_proto::v1::licenses_client::LicensesClient;
use licstore_proto::v1::policies_client::PoliciesClient;
use licstore_proto::v1::seals_client::SealsClient;
use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType,
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic::Code;

const NODE: &str = "licstore-node";
const ADMIN: &str = "ops-admin";
const ISSUER: &str = "pudong-police";
const VERIFIER: &str = "pudong-counter";
const AUDITOR: &str = "city-audit";
const STRANGER: &str = "stranger";
/// The service item the verifier principal verifies for; it accepts resident ID cards.
const COUNTER_ITEM: &str = "户口迁移";
/// A registered service item the verifier does not verify for.
const OTHER_ITEM: &str = "婚姻登记档案查询";

/// A CA that signs certificates with a common name, as PEM strings.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new() -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().expect("ca key");
        let cert = params.self_signed(&key).expect("ca cert");
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// (certificate, key) for `cn`; `expired` dates it in the past.
    fn leaf(&self, cn: &str, expired: bool) -> (String, String) {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.subject_alt_names = vec![SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST))];
        if expired {
            params.not_before = date_time_ymd(2020, 1, 1);
            params.not_after = date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("signed");
        (cert.pem(), key.serialize_pem())
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write pem");
    path
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A channel to `addr` presenting `(cert, key)` and trusting `ca_pem`.
async fn channel(addr: &str, ca_pem: &str, id: &(String, String)) -> Result<Channel, String> {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .identity(Identity::from_pem(&id.0, &id.1))
        .domain_name("127.0.0.1");
    Channel::from_shared(format!("https://{addr}"))
        .map_err(|e| e.to_string())?
        .tls_config(tls)
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .map_err(|e| format!("{e:?}"))
}

/// Calls `path` with an empty request message: every method's request then holds defaults,
/// which the allowed ones refuse as bad input or answer harmlessly. A stream that stays open
/// (Watch) was let in: after a few seconds the call counts as answered.
async fn call_empty(ch: &Channel, path: &'static str) -> Result<(), tonic::Status> {
    match tokio::time::timeout(Duration::from_secs(5), call_empty_once(ch, path)).await {
        Ok(answered) => answered,
        Err(_) => Ok(()),
    }
}

async fn call_empty_once(ch: &Channel, path: &'static str) -> Result<(), tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(ch.clone());
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let mut req = tonic::Request::new(());
    req.set_timeout(Duration::from_secs(3));
    let path = http::uri::PathAndQuery::from_static(path);
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    grpc.unary(req, path, codec).await.map(|_| ())
}

/// Every RPC with the roles allowed it, as the issue states them ("node" for the cluster's
/// own certificates, "any" for every certificate from the CA).
const MATRIX: &[(&str, &[&str])] = &[
    ("/licstore.v1.Licenses/Issue", &["issuer"]),
    ("/licstore.v1.Licenses/Amend", &["issuer"]),
    ("/licstore.v1.Licenses/ChangeStatus", &["issuer"]),
    ("/licstore.v1.Licenses/Import", &["issuer"]),
    ("/licstore.v1.Licenses/Get", &["issuer"]),
    ("/licstore.v1.Licenses/GetByIdentifier", &["issuer"]),
    ("/licstore.v1.Licenses/ListByHolder", &["issuer"]),
    ("/licstore.v1.Licenses/Query", &["issuer"]),
    ("/licstore.v1.Licenses/Watch", &["issuer"]),
    ("/licstore.v1.Licenses/Verify", &["verifier"]),
    ("/licstore.v1.Licenses/VerifyBatch", &["verifier"]),
    ("/licstore.v1.Seals/RegisterKey", &["issuer", "admin"]),
    ("/licstore.v1.Seals/RotateKey", &["issuer", "admin"]),
    ("/licstore.v1.Seals/RevokeKey", &["issuer", "admin"]),
    (
        "/licstore.v1.Seals/ListKeys",
        &["issuer", "verifier", "auditor", "admin"],
    ),
    ("/licstore.v1.Seals/ExportLicense", &["issuer"]),
    ("/licstore.v1.Seals/Present", &["issuer"]),
    (
        "/licstore.v1.Seals/GetStatusList",
        &["issuer", "verifier", "auditor", "admin"],
    ),
    ("/licstore.v1.Seals/ImportTrustList", &["admin"]),
    (
        "/licstore.v1.Seals/ListTrustLists",
        &["issuer", "verifier", "auditor", "admin"],
    ),
    ("/licstore.v1.Policies/SetDisclosure", &["admin"]),
    (
        "/licstore.v1.Policies/ListDisclosure",
        &["verifier", "auditor", "admin"],
    ),
    ("/licstore.v1.Policies/PutServiceItem", &["admin"]),
    ("/licstore.v1.Policies/RemoveServiceItem", &["admin"]),
    (
        "/licstore.v1.Policies/ListServiceItems",
        &["verifier", "auditor", "admin"],
    ),
    (
        "/licstore.v1.Cluster/Status",
        &["issuer", "verifier", "auditor", "admin", "node"],
    ),
    (
        "/licstore.v1.Cluster/MemberList",
        &["issuer", "verifier", "auditor", "admin", "node"],
    ),
    ("/licstore.v1.Cluster/AddLearner", &["admin"]),
    ("/licstore.v1.Cluster/Promote", &["admin"]),
    ("/licstore.v1.Cluster/RemoveMember", &["admin"]),
    (
        "/licstore.v1.Cluster/StateDigest",
        &["issuer", "verifier", "auditor", "admin", "node"],
    ),
    (
        "/licstore.v1.Cluster/Check",
        &["issuer", "verifier", "auditor", "admin", "node"],
    ),
    ("/licstore.v1.Cluster/Compact", &["admin"]),
    ("/licstore.v1.Cluster/TransferLeader", &["admin"]),
    ("/licstore.v1.Cluster/Snapshot", &["admin"]),
    ("/licstore.v1.Cluster/Probe", &["admin"]),
    ("/licstore.v1.Access/WhoAmI", &["any"]),
    ("/licstore.v1.Access/PutPrincipal", &["admin"]),
    ("/licstore.v1.Access/RemovePrincipal", &["admin"]),
    ("/licstore.v1.Access/ListPrincipals", &["auditor", "admin"]),
    ("/licstore.v1.Access/RevokeToken", &["admin"]),
    ("/licstore.v1.Audit/ListAudit", &["auditor"]),
    ("/licstore.v1.Audit/TrimAudit", &["admin"]),
    ("/licstore.v1.raft.Raft/AppendEntries", &["node"]),
    ("/licstore.v1.raft.Raft/StreamAppend", &["node"]),
    ("/licstore.v1.raft.Raft/InstallSnapshot", &["node"]),
    ("/licstore.v1.raft.Raft/Vote", &["node"]),
    ("/licstore.v1.raft.Raft/PreVote", &["node"]),
    ("/licstore.v1.raft.Raft/TransferLeader", &["node"]),
    ("/licstore.v1.raft.Raft/ReadIndex", &["node"]),
    ("/licstore.v1.raft.Raft/Forward", &["node"]),
    ("/grpc.health.v1.Health/Check", &["any"]),
    ("/grpc.health.v1.Health/Watch", &["any"]),
    (
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        &["any"],
    ),
];

/// Whether an answer shows the call was let in and served: not refused by the access layer,
/// and not lost for want of a route or of the caller it hands on.
fn served(got: &Result<(), tonic::Status>) -> bool {
    match got {
        Ok(()) => true,
        Err(s) => {
            let refused = [
                Code::PermissionDenied,
                Code::Unauthenticated,
                Code::Unimplemented,
            ];
            !refused.contains(&s.code()) && !s.message().contains("no caller")
        }
    }
}

fn principal(name: &str, role: &str) -> pb::Principal {
    let mut p = pb::Principal {
        name: name.into(),
        roles: vec![role.into()],
        ..Default::default()
    };
    match role {
        "issuer" => {
            p.issuer_codes = vec![issuer_code()];
            p.type_codes = vec!["resident-id-card".into()];
        }
        "verifier" => p.service_items = vec![COUNTER_ITEM.into()],
        _ => {}
    }
    p
}

async fn put(admin: &Channel, p: pb::Principal) {
    AccessClient::new(admin.clone())
        .put_principal(pb::PutPrincipalRequest { principal: Some(p) })
        .await
        .expect("admin registers a principal");
}

/// Waits until the node answers the admin with a leader.
async fn admin_channel(addr: &str, ca: &Ca, admin: &(String, String)) -> Channel {
    let deadline = Instant::now() + common::WAIT;
    loop {
        if let Ok(ch) = channel(addr, &ca.pem, admin).await {
            let status = ClusterClient::new(ch.clone())
                .status(pb::StatusRequest {})
                .await;
            let node = status.ok().and_then(|s| s.into_inner().node);
            if node.is_some_and(|n| n.has_leader) {
                return ch;
            }
        }
        assert!(Instant::now() < deadline, "no leader over TLS in time");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One node with TLS and access control on, and a channel of its configured admin.
struct Secured {
    _dir: tempfile::TempDir,
    cluster: Cluster,
    addr: String,
    admin: Channel,
}

impl Secured {
    async fn start(ca: &Ca) -> Secured {
        Secured::start_with(ca, |_| Vec::new()).await
    }

    /// With more arguments, made from the node's own directory.
    async fn start_with(ca: &Ca, more: impl FnOnce(&Path) -> Vec<String>) -> Secured {
        let dir = tempfile::tempdir().expect("tempdir");
        let (node_cert, node_key) = ca.leaf(NODE, false);
        let ca_file = write(dir.path(), "ca.crt", &ca.pem);
        let node_cert = write(dir.path(), "node.crt", &node_cert);
        let node_key = write(dir.path(), "node.key", &node_key);
        let more = more(dir.path());
        let mut args = vec![
            "--tls-cert-file",
            s(&node_cert),
            "--tls-key-file",
            s(&node_key),
            "--tls-client-ca-file",
            s(&ca_file),
            "--tls-peer-ca-file",
            s(&ca_file),
            "--node-name",
            NODE,
            "--admin-name",
            ADMIN,
        ];
        args.extend(more.iter().map(String::as_str));
        let cluster = Cluster::start(1, &args);
        let addr = cluster.endpoints()[0].clone();
        let admin = admin_channel(&addr, ca, &ca.leaf(ADMIN, false)).await;
        for item in [COUNTER_ITEM, OTHER_ITEM] {
            PoliciesClient::new(admin.clone())
                .put_service_item(pb::PutServiceItemRequest {
                    item: Some(pb::ServiceItem {
                        name: item.into(),
                        department: "市公安局".into(),
                        type_codes: vec!["resident-id-card".into()],
                    }),
                })
                .await
                .expect("admin registers a service item");
        }
        Secured {
            _dir: dir,
            cluster,
            addr,
            admin,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_by_every_role_over_tls() {
    let ca = Ca::new();
    let secured = Secured::start(&ca).await;
    let (addr, admin) = (secured.addr.clone(), secured.admin.clone());
    for (name, role) in [
        (ISSUER, "issuer"),
        (VERIFIER, "verifier"),
        (AUDITOR, "auditor"),
    ] {
        put(&admin, principal(name, role)).await;
    }
    let mut callers = Vec::new();
    for (cn, role) in [
        (ISSUER, "issuer"),
        (VERIFIER, "verifier"),
        (AUDITOR, "auditor"),
        (ADMIN, "admin"),
        (NODE, "node"),
        (STRANGER, "stranger"),
    ] {
        let ch = channel(&addr, &ca.pem, &ca.leaf(cn, false))
            .await
            .expect(cn);
        callers.push((role, ch));
    }
    let mut failures = Vec::new();
    for (path, allowed) in MATRIX {
        for (role, ch) in &callers {
            let want = allowed.contains(role) || allowed.contains(&"any");
            let got = call_empty(ch, path).await;
            match (&got, want) {
                (_, true) if !served(&got) => {
                    failures.push(format!("{path} as {role}: not served: {got:?}"));
                }
                (Err(s), false) if s.code() == Code::PermissionDenied => {
                    if !s.message().contains("missing right") {
                        failures.push(format!("{path} as {role}: unnamed right: {s:?}"));
                    }
                }
                (_, false) => failures.push(format!("{path} as {role}: not denied: {got:?}")),
                (_, true) => {}
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Every refusal is in the audit trail, under the refused caller's name.
    let auditor = &callers
        .iter()
        .find(|(r, _)| *r == "auditor")
        .expect("auditor")
        .1;
    let deadline = Instant::now() + common::WAIT;
    loop {
        let trail = AuditClient::new(auditor.clone())
            .list_audit(pb::ListAuditRequest {
                limit: 10_000,
                ..Default::default()
            })
            .await
            .expect("the auditor reads the trail")
            .into_inner();
        let refused = |caller: &str, action: &str| {
            trail.records.iter().any(|r| {
                r.caller == caller && r.action == action && r.outcome == "permission_denied"
            })
        };
        if refused(STRANGER, "Licenses/Verify") && refused(VERIFIER, "Licenses/Issue") {
            break;
        }
        assert!(Instant::now() < deadline, "refusals not in the trail");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_ca_expired_and_removed_certificates_are_refused() {
    let ca = Ca::new();
    let secured = Secured::start(&ca).await;
    let (addr, admin) = (secured.addr.clone(), secured.admin.clone());

    // An admin's name on a certificate from another CA: the handshake fails.
    let other = Ca::new();
    let forged = other.leaf(ADMIN, false);
    let refused = match channel(&addr, &ca.pem, &forged).await {
        Err(_) => true,
        Ok(ch) => call_empty(&ch, "/licstore.v1.Access/WhoAmI").await.is_err(),
    };
    assert!(refused, "a certificate from another CA must be refused");
    // An expired certificate of a registered principal: refused too.
    put(&admin, principal(ISSUER, "issuer")).await;
    let expired = ca.leaf(ISSUER, true);
    let refused = match channel(&addr, &ca.pem, &expired).await {
        Err(_) => true,
        Ok(ch) => call_empty(&ch, "/licstore.v1.Access/WhoAmI").await.is_err(),
    };
    assert!(refused, "an expired certificate must be refused");

    // A removed principal's certificate is refused from the next call on.
    put(&admin, principal(VERIFIER, "verifier")).await;
    let verifier = channel(&addr, &ca.pem, &ca.leaf(VERIFIER, false))
        .await
        .expect("verifier");
    let before = call_empty(&verifier, "/licstore.v1.Seals/ListKeys").await;
    assert!(before.is_ok(), "{before:?}");
    AccessClient::new(admin.clone())
        .remove_principal(pb::RemovePrincipalRequest {
            name: VERIFIER.into(),
        })
        .await
        .expect("remove");
    let after = call_empty(&verifier, "/licstore.v1.Seals/ListKeys")
        .await
        .expect_err("removed");
    assert_eq!(after.code(), Code::PermissionDenied, "{after:?}");
    assert!(
        after.message().contains("not a registered principal"),
        "{after:?}"
    );
    let who = AccessClient::new(verifier.clone())
        .who_am_i(pb::WhoAmIRequest {})
        .await
        .expect("whoami needs only a certificate")
        .into_inner();
    assert_eq!(who.name, VERIFIER);
    assert!(who.roles.is_empty() && who.access_control, "{who:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuers_and_verifiers_act_only_within_their_scope() {
    let ca = Ca::new();
    let secured = Secured::start(&ca).await;
    let (addr, admin) = (secured.addr.clone(), secured.admin.clone());
    put(&admin, principal(ISSUER, "issuer")).await;
    let mut elsewhere = principal("jingan-police", "issuer");
    elsewhere.issuer_codes = vec!["11310000002421999X".into()];
    put(&admin, elsewhere).await;
    let mut other_type = principal("pudong-births", "issuer");
    other_type.type_codes = vec!["birth-medical-certificate".into()];
    put(&admin, other_type).await;

    let ours = channel(&addr, &ca.pem, &ca.leaf(ISSUER, false))
        .await
        .expect("ours");
    let issued = LicensesClient::new(ours.clone())
        .issue(pb::IssueRequest {
            request_id: "scope-1".into(),
            license: Some(resident_card(1)),
            lenient_holder_check: false,
            seal_bundle: Vec::new(),
        })
        .await
        .expect("an issuer writes its own code and type")
        .into_inner()
        .license
        .expect("the stored license");

    // (certificate name, what the refusal must name)
    for (cn, field) in [
        ("jingan-police", "license.issuer.code"),
        ("pudong-births", "license.type_code"),
    ] {
        let ch = channel(&addr, &ca.pem, &ca.leaf(cn, false))
            .await
            .expect(cn);
        let refused = LicensesClient::new(ch.clone())
            .issue(pb::IssueRequest {
                request_id: format!("scope-{cn}"),
                license: Some(resident_card(2)),
                lenient_holder_check: false,
                seal_bundle: Vec::new(),
            })
            .await
            .expect_err(cn);
        assert_eq!(refused.code(), Code::PermissionDenied, "{cn}: {refused:?}");
        assert!(refused.message().starts_with(field), "{cn}: {refused:?}");
        let refused = LicensesClient::new(ch.clone())
            .change_status(pb::ChangeStatusRequest {
                request_id: format!("scope-status-{cn}"),
                identifier: issued.identifier.clone(),
                op: pb::StatusOp::Suspend as i32,
                reason: "test".into(),
            })
            .await
            .expect_err(cn);
        assert_eq!(refused.code(), Code::PermissionDenied, "{cn}: {refused:?}");
        assert!(
            refused.message().starts_with("identifier"),
            "{cn}: {refused:?}"
        );
        let refused = LicensesClient::new(ch.clone())
            .amend(pb::AmendRequest {
                request_id: format!("scope-amend-{cn}"),
                identifier: issued.identifier.clone(),
                license: Some(resident_card(1)),
                seal_bundle: Vec::new(),
            })
            .await
            .expect_err(cn);
        assert_eq!(refused.code(), Code::PermissionDenied, "{cn}: {refused:?}");
        assert!(
            refused.message().starts_with("identifier"),
            "{cn}: {refused:?}"
        );
        // An import goes on, with the record out of scope rejected by name.
        let record = pb::ImportRecord {
            request_id: format!("scope-import-{cn}"),
            license: Some(resident_card(3)),
            ..Default::default()
        };
        let summary = LicensesClient::new(ch)
            .import(tokio_stream::iter(vec![record]))
            .await
            .expect(cn)
            .into_inner();
        assert_eq!(
            (summary.imported, summary.rejected),
            (0, 1),
            "{cn}: {summary:?}"
        );
        assert_eq!(summary.rejections[0].field, field, "{cn}: {summary:?}");
    }
    // Seal keys: an issuer manages its own authority's only. The key is empty: a request the
    // scope lets through fails on it instead.
    let register = |authority: String| pb::RegisterKeyRequest {
        authority,
        public_key: Vec::new(),
        valid_from_ms: 0,
    };
    let mut seals = SealsClient::new(ours.clone());
    let other = seals
        .register_key(register("11310000002421999X".into()))
        .await
        .expect_err("another authority");
    assert_eq!(other.code(), Code::PermissionDenied, "{other:?}");
    assert!(other.message().starts_with("authority"), "{other:?}");
    let own = seals
        .register_key(register(issuer_code()))
        .await
        .expect_err("an empty key");
    assert_eq!(own.code(), Code::InvalidArgument, "{own:?}");

    // A verifier verifies for its own service items only.
    put(&admin, principal(VERIFIER, "verifier")).await;
    let counter = channel(&addr, &ca.pem, &ca.leaf(VERIFIER, false))
        .await
        .expect("verifier");
    let verify = |item: &str, type_code: &str| pb::VerifyRequest {
        holder_kind: pb::HolderKind::CitizenId as i32,
        holder_id: resident_card(1).holder.expect("holder").id,
        type_code: type_code.into(),
        service_item: item.into(),
        purpose: "scope test".into(),
        ..Default::default()
    };
    let verdict = LicensesClient::new(counter.clone())
        .verify(verify(COUNTER_ITEM, "resident-id-card"))
        .await
        .expect("its own item")
        .into_inner();
    assert_eq!(verdict.verdict, pb::Verdict::Valid as i32, "{verdict:?}");
    let other = LicensesClient::new(counter.clone())
        .verify(verify(OTHER_ITEM, "resident-id-card"))
        .await
        .expect_err("another item");
    assert_eq!(other.code(), Code::PermissionDenied, "{other:?}");
    assert!(other.message().starts_with("service_item"), "{other:?}");
    // Its own item, but a license type the item does not accept.
    let unaccepted = LicensesClient::new(counter)
        .verify(verify(COUNTER_ITEM, "birth-medical-certificate"))
        .await
        .expect_err("a type the item does not accept");
    assert_eq!(
        unaccepted.code(),
        Code::FailedPrecondition,
        "{unaccepted:?}"
    );
    assert!(
        unaccepted.message().starts_with("type_code"),
        "{unaccepted:?}"
    );
    LicensesClient::new(ours)
        .change_status(pb::ChangeStatusRequest {
            request_id: "scope-status-ours".into(),
            identifier: issued.identifier,
            op: pb::StatusOp::Suspend as i32,
            reason: "test".into(),
        })
        .await
        .expect("the issuer changes its own license");
}

/// A verifier held to 1 call per second with a burst of 3, an issuer held to 1 call in flight,
/// and requests of at most 64 KiB.
const LIMITS_TOML: &str = "[limits]\n\
    [limits.principals.pudong-counter]\nrate_per_s = 1\nburst = 3\n\
    [limits.principals.pudong-police]\nmax_in_flight = 1\n";

/// The retry hint of a shed call, checked to be the same in the metadata, the message and
/// the RetryInfo detail.
fn retry_hint_ms(shed: &tonic::Status) -> u64 {
    use tonic_types::StatusExt;
    assert_eq!(shed.code(), Code::ResourceExhausted, "{shed:?}");
    let ms: u64 = shed
        .metadata()
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no retry-after-ms: {shed:?}"));
    assert!(
        shed.message().contains(&format!("retry in {ms} ms")),
        "{shed:?}"
    );
    let info = shed.get_details_retry_info().expect("a RetryInfo detail");
    let delay = info.retry_delay.expect("a retry delay");
    assert_eq!(u64::try_from(delay.as_millis()).ok(), Some(ms), "{shed:?}");
    ms
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_noisy_caller_is_told_to_retry_and_others_are_served() {
    let ca = Ca::new();
    let secured = Secured::start_with(&ca, |dir| {
        let file = write(dir, "limits.toml", LIMITS_TOML);
        let file = s(&file).to_owned();
        vec![
            "--config".into(),
            file,
            "--max-request-bytes".into(),
            "65536".into(),
        ]
    })
    .await;
    let (addr, admin) = (secured.addr.clone(), secured.admin.clone());
    put(&admin, principal(VERIFIER, "verifier")).await;
    put(&admin, principal("pudong-kiosk", "verifier")).await;
    put(&admin, principal(ISSUER, "issuer")).await;
    let noisy = channel(&addr, &ca.pem, &ca.leaf(VERIFIER, false))
        .await
        .expect("noisy verifier");
    let quiet = channel(&addr, &ca.pem, &ca.leaf("pudong-kiosk", false))
        .await
        .expect("quiet verifier");

    // Rate: 12 calls in a row from a caller allowed 3 at once and 1 more per second.
    let started = Instant::now();
    let mut served = 0u64;
    let mut hints = Vec::new();
    for _ in 0..12 {
        match LicensesClient::new(noisy.clone())
            .verify(common::verify_card(1, COUNTER_ITEM))
            .await
        {
            Ok(_) => served += 1,
            Err(shed) => hints.push(retry_hint_ms(&shed)),
        }
    }
    let refills = started.elapsed().as_secs() + 1;
    assert!(served >= 3, "the burst is served: {served}");
    assert!(
        served <= 3 + refills,
        "{served} served in {refills} s at 1 per second"
    );
    assert!(!hints.is_empty(), "calls over the rate are shed");
    assert!(hints.iter().all(|ms| (1..=1000).contains(ms)), "{hints:?}");
    // Another caller is not held back, and the noisy one is served again after its hint.
    for _ in 0..6 {
        LicensesClient::new(quiet.clone())
            .verify(common::verify_card(1, COUNTER_ITEM))
            .await
            .expect("another verifier is served");
    }
    tokio::time::sleep(Duration::from_millis(3_100)).await;
    // A batch costs one token per item: 5 items take the refilled bucket of 3 whole.
    let batch = pb::VerifyBatchRequest {
        items: (1..=5)
            .map(|n| common::verify_card(n, COUNTER_ITEM))
            .collect(),
        ..Default::default()
    };
    let paid = Instant::now();
    LicensesClient::new(noisy.clone())
        .verify_batch(batch)
        .await
        .expect("a batch after the bucket refilled");
    let next = LicensesClient::new(noisy.clone())
        .verify(common::verify_card(1, COUNTER_ITEM))
        .await;
    match next {
        Err(shed) => assert!(retry_hint_ms(&shed) <= 1000, "{shed:?}"),
        // Served only if a token came due meanwhile (a slow machine).
        Ok(_) => assert!(
            paid.elapsed() >= Duration::from_millis(900),
            "the batch took the bucket"
        ),
    }

    // In flight: an issuer allowed one call at a time sends 48 at once.
    let issuer = channel(&addr, &ca.pem, &ca.leaf(ISSUER, false))
        .await
        .expect("issuer");
    let calls = (0..48u32).map(|n| {
        let mut client = LicensesClient::new(issuer.clone());
        async move {
            client
                .issue(pb::IssueRequest {
                    request_id: format!("limits-{n}"),
                    license: Some(resident_card(100 + n)),
                    lenient_holder_check: false,
                    seal_bundle: Vec::new(),
                })
                .await
        }
    });
    let answers = futures::future::join_all(calls).await;
    let mut shed = 0;
    for answer in &answers {
        match answer {
            Ok(_) => {}
            Err(status) => {
                assert!(status.message().contains("max_in_flight"), "{status:?}");
                retry_hint_ms(status);
                shed += 1;
            }
        }
    }
    assert!(
        shed > 0,
        "48 calls at once from a caller allowed one in flight"
    );
    assert!(shed < answers.len(), "some of them were served");

    // Size: a request over limits.max_request_bytes, unary and in a stream.
    let mut big = common::verify_card(1, COUNTER_ITEM);
    big.purpose = "x".repeat(100_000);
    let refused = LicensesClient::new(quiet.clone())
        .verify(big)
        .await
        .expect_err("a request of 100 kB");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().contains("limits.max_request_bytes"),
        "{refused:?}"
    );
    let mut card = resident_card(500);
    card.face.insert("note".into(), "x".repeat(100_000));
    let record = pb::ImportRecord {
        request_id: "limits-import".into(),
        license: Some(card),
        ..Default::default()
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = LicensesClient::new(issuer.clone())
        .import(tokio_stream::iter(vec![record]))
        .await
        .expect_err("an import record of 100 kB");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().contains("limits.max_request_bytes"),
        "{refused:?}"
    );

    // The metrics count every kind of shedding.
    let scrape = common::scrape(&secured.cluster.node(1).metrics_addr).await;
    for reason in ["rate", "principal_in_flight", "size"] {
        let label = format!("reason=\"{reason}\"");
        let n = common::total(&scrape, "licstore_requests_shed_total", &[label.as_str()]);
        assert!(n >= 1.0, "{reason}: {n}");
    }
}
