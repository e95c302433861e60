//! Plain serde structs mirroring the proto responses, for `-o json` and the tables.
//!
//! prost messages do not implement serde, so each response is copied into a struct here. Enums
//! become their kebab/snake names (`"status": "suspended"`, `"kind": "citizen_id"`), maps
//! become sorted objects, and absent sub-messages become `null`.

use std::collections::BTreeMap;

use licstore_model::region;
use licstore_proto::v1 as pb;
use serde::Serialize;

use crate::convert;
use crate::output::{or_dash, Render, Table};
use crate::types;

/// A stored license.
#[derive(Clone, Debug, Serialize)]
pub struct LicenseView {
    pub identifier: String,
    pub type_code: String,
    pub holder: HolderView,
    pub license_number: String,
    pub issuer: IssuerView,
    pub issue_date: String,
    pub valid_from: String,
    /// Empty for long-term.
    pub valid_until: String,
    pub region_code: String,
    pub face: BTreeMap<String, String>,
    pub status: String,
    pub status_reason: String,
    pub version: u32,
    pub replaces: String,
    pub superseded_by: String,
    pub revision: u64,
    pub digest: String,
    /// `suite key-id signed-at-ms` of the seal; empty when unsealed.
    pub seal: String,
}

/// A license holder.
#[derive(Clone, Debug, Serialize)]
pub struct HolderView {
    pub kind: String,
    pub id: String,
    pub name: String,
    pub legacy_checksum: bool,
}

/// An issuing office.
#[derive(Clone, Debug, Serialize)]
pub struct IssuerView {
    pub code: String,
    pub name: String,
}

impl From<&pb::License> for LicenseView {
    fn from(l: &pb::License) -> LicenseView {
        let holder = l.holder.clone().unwrap_or_default();
        let issuer = l.issuer.clone().unwrap_or_default();
        LicenseView {
            identifier: l.identifier.clone(),
            type_code: l.type_code.clone(),
            holder: HolderView {
                kind: convert::holder_kind_name(holder.kind).to_owned(),
                id: holder.id,
                name: holder.name,
                legacy_checksum: holder.legacy_checksum,
            },
            license_number: l.license_number.clone(),
            issuer: IssuerView {
                code: issuer.code,
                name: issuer.name,
            },
            issue_date: l.issue_date.clone(),
            valid_from: l.valid_from.clone(),
            valid_until: l.valid_until.clone(),
            region_code: l.region_code.clone(),
            face: l.face.clone().into_iter().collect(),
            status: convert::status_name(l.status),
            status_reason: l.status_reason.clone(),
            version: l.version,
            replaces: l.replaces.clone(),
            superseded_by: l.superseded_by.clone(),
            revision: l.revision,
            digest: l.digest.clone(),
            seal: l
                .seal
                .as_ref()
                .map(|s| format!("{} {} {}", s.suite, s.key_id, s.signed_at_ms))
                .unwrap_or_default(),
        }
    }
}

/// `type_code (模板名)` when the code is a built-in template.
fn type_label(type_code: &str) -> String {
    match types::find(type_code) {
        Some(t) => format!("{type_code} ({})", t.name),
        None => type_code.to_owned(),
    }
}

fn region_label(code: &str) -> String {
    match region::region_name(code) {
        Some(name) => format!("{code} ({name})"),
        None => or_dash(code),
    }
}

impl LicenseView {
    /// Appends the FIELD / VALUE rows of this license to `t`.
    pub fn add_rows(&self, t: &mut Table) {
        let h = &self.holder;
        let legacy = if h.legacy_checksum {
            " [legacy checksum]"
        } else {
            ""
        };
        t.pair("identifier", or_dash(&self.identifier));
        t.pair("type", type_label(&self.type_code));
        t.pair("holder", format!("{} {} {}{legacy}", h.kind, h.id, h.name));
        t.pair("license number", or_dash(&self.license_number));
        t.pair(
            "issuer",
            format!("{} {}", self.issuer.code, self.issuer.name),
        );
        t.pair("issue date", or_dash(&self.issue_date));
        t.pair(
            "valid",
            format!("{} .. {}", self.valid_from, self.until_label()),
        );
        t.pair("region", region_label(&self.region_code));
        t.pair("status", self.status_label());
        t.pair("version", self.version.to_string());
        t.pair("replaces", or_dash(&self.replaces));
        t.pair("superseded by", or_dash(&self.superseded_by));
        t.pair("revision", self.revision.to_string());
        t.pair("digest", or_dash(&self.digest));
        t.pair("seal", or_dash(&self.seal));
        for (k, v) in &self.face {
            t.pair(&format!("face.{k}"), v.clone());
        }
    }

    fn until_label(&self) -> String {
        if self.valid_until.is_empty() {
            "long-term".to_owned()
        } else {
            self.valid_until.clone()
        }
    }

    fn status_label(&self) -> String {
        if self.status_reason.is_empty() {
            self.status.clone()
        } else {
            format!("{} ({})", self.status, self.status_reason)
        }
    }
}

/// The answer to Issue, Amend and ChangeStatus, plus the request id that was sent (not part of
/// the proto response; printed so a lost answer can be retried by hand with `--request-id`).
#[derive(Clone, Debug, Serialize)]
pub struct WriteView {
    pub request_id: String,
    pub license: Option<LicenseView>,
    pub revision: u64,
    pub duplicate: bool,
}

impl WriteView {
    /// The view of `r`, the answer to the write with `request_id`.
    pub fn new(request_id: &str, r: &pb::WriteResponse) -> WriteView {
        WriteView {
            request_id: request_id.to_owned(),
            license: r.license.as_ref().map(LicenseView::from),
            revision: r.revision,
            duplicate: r.duplicate,
        }
    }
}

impl Render for WriteView {
    fn table(&self) -> Table {
        let mut t = Table::key_value();
        if let Some(l) = &self.license {
            l.add_rows(&mut t);
        }
        t.pair("applied at", self.revision.to_string());
        t.pair("request id", self.request_id.clone());
        if self.duplicate {
            t.pair(
                "duplicate",
                "yes: this request id was already applied; stored result shown",
            );
        }
        t
    }
}

/// The answer to Get and GetByIdentifier.
#[derive(Clone, Debug, Serialize)]
pub struct GetView {
    pub license: Option<LicenseView>,
    pub read_revision: u64,
}

impl From<&pb::GetResponse> for GetView {
    fn from(r: &pb::GetResponse) -> GetView {
        GetView {
            license: r.license.as_ref().map(LicenseView::from),
            read_revision: r.read_revision,
        }
    }
}

impl Render for GetView {
    fn table(&self) -> Table {
        let mut t = Table::key_value();
        if let Some(l) = &self.license {
            l.add_rows(&mut t);
        }
        t.pair("read revision", self.read_revision.to_string());
        t
    }
}

/// The answer to ListByHolder.
#[derive(Clone, Debug, Serialize)]
pub struct ListView {
    pub licenses: Vec<LicenseView>,
    pub read_revision: u64,
}

impl From<&pb::ListByHolderResponse> for ListView {
    fn from(r: &pb::ListByHolderResponse) -> ListView {
        ListView {
            licenses: r.licenses.iter().map(LicenseView::from).collect(),
            read_revision: r.read_revision,
        }
    }
}

impl Render for ListView {
    fn table(&self) -> Table {
        let headers = [
            "identifier",
            "type",
            "number",
            "status",
            "valid until",
            "version",
        ];
        let mut t = Table::new(&headers);
        for l in &self.licenses {
            t.row([
                l.identifier.clone(),
                types::display_name(&l.type_code),
                l.license_number.clone(),
                l.status_label(),
                l.until_label(),
                l.version.to_string(),
            ]);
        }
        t
    }
}

/// The answer to Verify.
#[derive(Clone, Debug, Serialize)]
pub struct VerifyView {
    pub valid: bool,
    pub verdict: String,
    pub status: String,
    pub identifier: String,
    pub revision: u64,
    pub digest: String,
    pub read_revision: u64,
    /// The seal's verdict under the key registry.
    pub seal: String,
    /// The fields the service item is entitled to see.
    pub fields: std::collections::BTreeMap<String, String>,
}

impl From<&pb::VerifyResponse> for VerifyView {
    fn from(r: &pb::VerifyResponse) -> VerifyView {
        VerifyView {
            valid: r.valid,
            verdict: convert::verdict_name(r.verdict),
            status: convert::status_name(r.status),
            identifier: r.identifier.clone(),
            revision: r.revision,
            digest: r.digest.clone(),
            read_revision: r.read_revision,
            seal: convert::seal_verdict_name(r.seal),
            fields: r.fields.clone().into_iter().collect(),
        }
    }
}

impl Render for VerifyView {
    fn table(&self) -> Table {
        let mut t = Table::key_value();
        t.pair("valid", if self.valid { "yes" } else { "no" });
        t.pair("verdict", self.verdict.clone());
        t.pair("status", self.status.clone());
        t.pair("identifier", or_dash(&self.identifier));
        t.pair("revision", self.revision.to_string());
        t.pair("digest", or_dash(&self.digest));
        t.pair("read revision", self.read_revision.to_string());
        t.pair("seal", self.seal.clone());
        for (name, value) in &self.fields {
            t.pair(&format!("field {name}"), value.clone());
        }
        t
    }
}

/// One cluster member.
#[derive(Clone, Debug, Serialize)]
pub struct MemberView {
    pub node_id: u64,
    pub addr: String,
    pub voter: bool,
}

/// The answer to MemberList, AddLearner, Promote and RemoveMember.
#[derive(Clone, Debug, Serialize)]
pub struct MembersView {
    pub members: Vec<MemberView>,
    pub leader_id: u64,
}

impl From<&pb::MemberListResponse> for MembersView {
    fn from(r: &pb::MemberListResponse) -> MembersView {
        let members = r
            .members
            .iter()
            .map(|m| MemberView {
                node_id: m.node_id,
                addr: m.addr.clone(),
                voter: m.voter,
            })
            .collect();
        MembersView {
            members,
            leader_id: r.leader_id,
        }
    }
}

impl Render for MembersView {
    fn table(&self) -> Table {
        let mut t = Table::new(&["id", "addr", "role", "leader"]);
        for m in &self.members {
            let role = if m.voter { "voter" } else { "learner" };
            let leader = if m.node_id == self.leader_id { "*" } else { "" };
            t.row([
                m.node_id.to_string(),
                m.addr.clone(),
                role.to_owned(),
                leader.to_owned(),
            ]);
        }
        t
    }
}

/// Cluster.Status of one endpoint, or why it could not be asked.
#[derive(Clone, Debug, Default, Serialize)]
pub struct NodeView {
    /// The endpoint asked, as given on the command line.
    pub endpoint: String,
    /// Set when the call failed; the other fields are then zero.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub node_id: u64,
    pub addr: String,
    pub role: String,
    pub term: u64,
    pub leader_id: u64,
    pub has_leader: bool,
    pub last_log_index: u64,
    pub applied_index: u64,
    pub snapshot_index: u64,
    pub purged_index: u64,
    /// Oldest revision still in the change feed.
    pub compacted_revision: u64,
    /// Matched log index per member; known on the leader only.
    pub replication: BTreeMap<u64, u64>,
}

impl NodeView {
    /// The view of a successful answer.
    pub fn new(endpoint: &str, r: &pb::StatusResponse) -> NodeView {
        let n = r.node.clone().unwrap_or_default();
        NodeView {
            endpoint: endpoint.to_owned(),
            error: None,
            node_id: n.node_id,
            addr: n.addr,
            role: n.role,
            term: n.term,
            leader_id: n.leader_id,
            has_leader: n.has_leader,
            last_log_index: n.last_log_index,
            applied_index: n.applied_index,
            snapshot_index: n.snapshot_index,
            purged_index: n.purged_index,
            compacted_revision: n.compacted_revision,
            replication: r.replication.clone().into_iter().collect(),
        }
    }
}

/// `licctl endpoint status`: one row per endpoint.
#[derive(Clone, Debug, Serialize)]
pub struct EndpointsView(pub Vec<NodeView>);

impl Render for EndpointsView {
    fn table(&self) -> Table {
        let headers = [
            "endpoint",
            "id",
            "addr",
            "role",
            "term",
            "leader",
            "last log",
            "applied",
            "compacted",
        ];
        let mut t = Table::new(&headers);
        for n in &self.0 {
            if let Some(e) = &n.error {
                t.row([
                    n.endpoint.clone(),
                    "-".into(),
                    "-".into(),
                    format!("error: {e}"),
                ]);
                continue;
            }
            let leader = if n.has_leader {
                n.leader_id.to_string()
            } else {
                "none".to_owned()
            };
            t.row([
                n.endpoint.clone(),
                n.node_id.to_string(),
                n.addr.clone(),
                n.role.clone(),
                n.term.to_string(),
                leader,
                n.last_log_index.to_string(),
                n.applied_index.to_string(),
                n.compacted_revision.to_string(),
            ]);
        }
        t
    }
}

/// StateDigest of one endpoint.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DigestView {
    pub endpoint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub applied_index: u64,
    pub digest: String,
    pub records: u64,
}

/// `licctl digest`: one row per endpoint.
#[derive(Clone, Debug, Serialize)]
pub struct DigestsView(pub Vec<DigestView>);

impl Render for DigestsView {
    fn table(&self) -> Table {
        let mut t = Table::new(&["endpoint", "applied", "records", "digest"]);
        for d in &self.0 {
            match &d.error {
                Some(e) => t.row([
                    d.endpoint.clone(),
                    "-".into(),
                    "-".into(),
                    format!("error: {e}"),
                ]),
                None => t.row([
                    d.endpoint.clone(),
                    d.applied_index.to_string(),
                    d.records.to_string(),
                    d.digest.clone(),
                ]),
            }
        }
        t
    }
}
