//! One call of each workload against a system under test.
//!
//! licstore and the echo server speak the licstore API ([`Conn::Licstore`]); etcd is driven
//! through its KV API (module `etcd`, feature `etcd`), storing each record, encoded as the same
//! protobuf `ImportRecord` licstore imports, under `lic/<kind>/<holder>/<type>`. What each
//! etcd call does is the cheapest etcd equivalent of the licstore call, so the comparison
//! favours etcd where they differ:
//!
//! | licstore | etcd |
//! |---|---|
//! | `Verify` (verdict computed by the server) | `Range` of the key; the client decodes the value |
//! | `VerifyBatch` | one `Txn` of `Range`s |
//! | `Issue` (validated, identifier assigned, six indexes, an event) | `Txn`: put if absent |
//! | `ChangeStatus` (transition checked) | `Put` of the changed value, read beforehand |
//! | `Import` stream | one `Txn` of `Put`s |

#[cfg(feature = "etcd")]
pub mod etcd;

use std::time::Duration;

use licstore_client::TlsOptions;
use licstore_proto::v1 as pb;
use licstore_proto::v1::licenses_client::LicensesClient;
use tonic::transport::{Channel, Endpoint};

use crate::args::{Consistency, System, TargetArgs};
use crate::dataset::{Key, Prepared};

/// Why a call failed: a gRPC code name, `timeout`, `not-found` (a loaded key missing) or
/// `rejected` (an import record refused).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct OpError(pub String);

impl From<tonic::Status> for OpError {
    fn from(s: tonic::Status) -> OpError {
        OpError(format!("{:?}", s.code()).to_uppercase())
    }
}

/// A license whose status the `status` workload toggles.
#[derive(Clone, Debug)]
pub struct StatusSlot {
    /// Holder and type.
    pub key: Key,
    /// The identifier (licstore).
    pub identifier: String,
    /// The stored value (etcd), kept current by the client.
    pub value: Option<pb::ImportRecord>,
    /// Whether the license is suspended now.
    pub suspended: bool,
}

/// Connections to the system under test; [`Target::conn`] hands each client one of them.
#[derive(Clone)]
pub enum Target {
    /// licstore or the echo server.
    Licstore(Vec<Channel>),
    /// etcd.
    #[cfg(feature = "etcd")]
    Etcd(Vec<etcd_client::KvClient>),
}

/// One client's handle.
#[derive(Clone)]
pub enum Conn {
    /// licstore or the echo server.
    Licstore(LicensesClient<Channel>),
    /// etcd (boxed: its client is several times the size of a tonic stub).
    #[cfg(feature = "etcd")]
    Etcd(Box<etcd_client::KvClient>),
}

impl Target {
    /// Opens `args.conns` connections, spread round-robin over the endpoints.
    pub async fn connect(args: &TargetArgs) -> anyhow::Result<Target> {
        anyhow::ensure!(!args.endpoints.is_empty(), "--endpoints: none given");
        anyhow::ensure!(args.conns > 0, "--conns: must be at least 1");
        match args.system {
            System::Licstore | System::Echo => licstore_channels(args).await,
            #[cfg(feature = "etcd")]
            System::Etcd => etcd::connect(args).await,
            #[cfg(not(feature = "etcd"))]
            System::Etcd => anyhow::bail!(
                "--system etcd: this licbench was built without the `etcd` feature \
                 (benches/run builds it with --features licstore-bench/etcd)"
            ),
        }
    }

    /// The handle of client `i`.
    pub fn conn(&self, i: usize) -> Conn {
        match self {
            Target::Licstore(chans) => Conn::Licstore(
                LicensesClient::new(chans[i % chans.len()].clone())
                    .max_decoding_message_size(64 << 20),
            ),
            #[cfg(feature = "etcd")]
            Target::Etcd(clients) => Conn::Etcd(Box::new(clients[i % clients.len()].clone())),
        }
    }
}

async fn licstore_channels(args: &TargetArgs) -> anyhow::Result<Target> {
    let tls = TlsOptions::from_files(
        args.cacert.as_deref(),
        args.cert.as_deref(),
        args.key.as_deref(),
    )?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut chans = Vec::with_capacity(args.conns);
    for i in 0..args.conns {
        let addr = &args.endpoints[i % args.endpoints.len()];
        let mut ep = Endpoint::from_shared(format!("{scheme}://{addr}"))?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_millis(args.timeout_ms))
            .tcp_nodelay(true);
        if let Some(tls) = &tls {
            ep = ep.tls_config(tls.client_config())?;
        }
        let chan = ep
            .connect()
            .await
            .map_err(|e| anyhow::anyhow!("connect to {addr}: {e}"))?;
        chans.push(chan);
    }
    Ok(Target::Licstore(chans))
}

/// The proto consistency level and bound.
pub fn consistency_pb(c: Consistency) -> pb::Consistency {
    match c {
        Consistency::Linearizable => pb::Consistency::Linearizable,
        Consistency::BoundedStaleness => pb::Consistency::BoundedStaleness,
        Consistency::Serializable => pb::Consistency::Serializable,
    }
}

fn verify_request(key: &Key) -> pb::VerifyRequest {
    pb::VerifyRequest {
        holder_kind: key.holder_kind,
        holder_id: key.holder_id.clone(),
        type_code: key.type_code.clone(),
        service_item: "licbench".into(),
        ..Default::default()
    }
}

fn found(resp: &pb::VerifyResponse) -> Result<(), OpError> {
    match resp.verdict == pb::Verdict::NotFound as i32 {
        true => Err(OpError("not-found".into())),
        false => Ok(()),
    }
}

impl Conn {
    /// One verification of a loaded key.
    pub async fn verify(
        &mut self,
        key: &Key,
        c: Consistency,
        bound_ms: u32,
    ) -> Result<(), OpError> {
        match self {
            Conn::Licstore(client) => {
                let mut req = verify_request(key);
                req.consistency = consistency_pb(c) as i32;
                req.max_staleness_ms = bound_ms;
                found(&client.verify(req).await?.into_inner())
            }
            #[cfg(feature = "etcd")]
            Conn::Etcd(kv) => etcd::verify(kv, key, c).await,
        }
    }

    /// Verifications of several loaded keys in one call.
    pub async fn verify_batch(
        &mut self,
        keys: &[&Key],
        c: Consistency,
        bound_ms: u32,
    ) -> Result<(), OpError> {
        match self {
            Conn::Licstore(client) => {
                let req = pb::VerifyBatchRequest {
                    items: keys.iter().map(|k| verify_request(k)).collect(),
                    consistency: consistency_pb(c) as i32,
                    max_staleness_ms: bound_ms,
                };
                let resp = client.verify_batch(req).await?.into_inner();
                if resp.results.len() != keys.len() {
                    return Err(OpError("short-batch".into()));
                }
                resp.results.iter().try_for_each(found)
            }
            #[cfg(feature = "etcd")]
            Conn::Etcd(kv) => etcd::verify_batch(kv, keys).await,
        }
    }

    /// Issues a new license.
    pub async fn issue(&mut self, record: &Prepared) -> Result<(), OpError> {
        match self {
            Conn::Licstore(client) => {
                let req = pb::IssueRequest {
                    request_id: record.import.request_id.clone(),
                    license: Some(record.license().clone()),
                    lenient_holder_check: false,
                };
                client.issue(req).await?;
                Ok(())
            }
            #[cfg(feature = "etcd")]
            Conn::Etcd(kv) => etcd::issue(kv, record).await,
        }
    }

    /// Suspends the license or lifts its suspension.
    pub async fn toggle_status(&mut self, slot: &mut StatusSlot) -> Result<(), OpError> {
        match self {
            Conn::Licstore(client) => {
                let op = match slot.suspended {
                    true => pb::StatusOp::LiftSuspension,
                    false => pb::StatusOp::Suspend,
                };
                let req = pb::ChangeStatusRequest {
                    request_id: licstore_client::new_request_id(),
                    identifier: slot.identifier.clone(),
                    op: op as i32,
                    reason: String::new(),
                };
                client.change_status(req).await?;
            }
            #[cfg(feature = "etcd")]
            Conn::Etcd(kv) => etcd::toggle_status(kv, slot).await?,
        }
        slot.suspended = !slot.suspended;
        Ok(())
    }

    /// Bulk-loads records in one call.
    pub async fn import(&mut self, records: &[Prepared]) -> Result<(), OpError> {
        match self {
            Conn::Licstore(client) => {
                let msgs: Vec<pb::ImportRecord> =
                    records.iter().map(|r| r.import.clone()).collect();
                let summary = client.import(tokio_stream::iter(msgs)).await?.into_inner();
                match summary.rejected {
                    0 => Ok(()),
                    _ => Err(OpError("rejected".into())),
                }
            }
            #[cfg(feature = "etcd")]
            Conn::Etcd(kv) => etcd::import(kv, records).await,
        }
    }

    /// Finds the license behind `key` for the `status` workload: `None` unless it is valid
    /// or suspended now.
    pub async fn status_slot(&mut self, key: &Key) -> Result<Option<StatusSlot>, OpError> {
        match self {
            Conn::Licstore(client) => {
                let req = pb::GetRequest {
                    holder_kind: key.holder_kind,
                    holder_id: key.holder_id.clone(),
                    type_code: key.type_code.clone(),
                    consistency: pb::Consistency::Linearizable as i32,
                    max_staleness_ms: 0,
                };
                let got = client.get(req).await;
                let license = match got {
                    Ok(resp) => resp.into_inner().license,
                    Err(s) if s.code() == tonic::Code::NotFound => None,
                    Err(s) => return Err(s.into()),
                };
                Ok(license.and_then(|l| slot_of(key, l.identifier, l.status, None)))
            }
            #[cfg(feature = "etcd")]
            Conn::Etcd(kv) => etcd::status_slot(kv, key).await,
        }
    }
}

/// A slot for a license in `status`, if that status can be toggled.
pub fn slot_of(
    key: &Key,
    identifier: String,
    status: i32,
    value: Option<pb::ImportRecord>,
) -> Option<StatusSlot> {
    let suspended = match pb::LicenseStatus::try_from(status) {
        Ok(pb::LicenseStatus::Valid) => false,
        Ok(pb::LicenseStatus::Suspended) => true,
        _ => return None,
    };
    Some(StatusSlot {
        key: key.clone(),
        identifier,
        value,
        suspended,
    })
}
