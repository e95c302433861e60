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
use licstore_proto::v1::cluster_client::ClusterClient;
use licstore_proto::v1::licenses_client::LicensesClient;
use licstore_proto::v1::policies_client::PoliciesClient;
use tonic::transport::{Channel, Endpoint};

use crate::args::{Consistency, System, TargetArgs, WriteTo};
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
    Licstore(Pool<Channel>),
    /// etcd.
    #[cfg(feature = "etcd")]
    Etcd(Pool<etcd_client::KvClient>),
}

/// Every connection, for reads, and the ones writes use (all, or those to the leader).
#[derive(Clone)]
pub struct Pool<C> {
    reads: Vec<C>,
    writes: Vec<C>,
}

impl<C: Clone> Pool<C> {
    /// `conns[i]` is connected to `endpoints[i % endpoints.len()]`. Writes use the connections
    /// to `leader` when it is given and among the endpoints, every connection otherwise.
    pub fn new(conns: Vec<C>, endpoints: &[String], leader: Option<&str>) -> Pool<C> {
        let to_leader: Vec<C> = conns
            .iter()
            .enumerate()
            .filter(|(i, _)| leader == Some(endpoints[i % endpoints.len()].as_str()))
            .map(|(_, c)| c.clone())
            .collect();
        let writes = match to_leader.is_empty() {
            true => conns.clone(),
            false => to_leader,
        };
        Pool {
            reads: conns,
            writes,
        }
    }

    /// The read and the write connection of client `i`.
    fn pick(&self, i: usize) -> (C, C) {
        (
            self.reads[i % self.reads.len()].clone(),
            self.writes[i % self.writes.len()].clone(),
        )
    }

    /// How many connections writes use.
    pub fn write_conns(&self) -> usize {
        self.writes.len()
    }
}

/// One client's handles (boxed: an etcd client is several times the size of a tonic stub).
#[derive(Clone)]
pub enum Conn {
    /// licstore or the echo server.
    Licstore(Box<Pair<LicensesClient<Channel>>>),
    /// etcd.
    #[cfg(feature = "etcd")]
    Etcd(Box<Pair<etcd_client::KvClient>>),
}

/// A handle for reads and one for writes (often the same connection).
#[derive(Clone)]
pub struct Pair<C> {
    /// Reads.
    pub read: C,
    /// Writes.
    pub write: C,
}

impl Target {
    /// Opens `args.conns` connections, spread round-robin over the endpoints, and picks the
    /// ones writes use (`--write-to`).
    pub async fn connect(args: &TargetArgs) -> anyhow::Result<Target> {
        anyhow::ensure!(!args.endpoints.is_empty(), "--endpoints: none given");
        anyhow::ensure!(args.conns > 0, "--conns: must be at least 1");
        let target = match args.system {
            System::Licstore | System::Echo => licstore_channels(args).await?,
            #[cfg(feature = "etcd")]
            System::Etcd => etcd::connect(args).await?,
            #[cfg(not(feature = "etcd"))]
            System::Etcd => anyhow::bail!(
                "--system etcd: this licbench was built without the `etcd` feature \
                 (benches/run builds it with --features licstore-bench/etcd)"
            ),
        };
        let writes = target.write_conns();
        if args.write_to == WriteTo::Leader && writes == args.conns && args.endpoints.len() > 1 {
            eprintln!("licbench: the leader is not among --endpoints; writes use every connection");
        }
        Ok(target)
    }

    /// The handles of client `i`.
    pub fn conn(&self, i: usize) -> Conn {
        match self {
            Target::Licstore(pool) => {
                let (read, write) = pool.pick(i);
                let stub = |c: Channel| LicensesClient::new(c).max_decoding_message_size(64 << 20);
                Conn::Licstore(Box::new(Pair {
                    read: stub(read),
                    write: stub(write),
                }))
            }
            #[cfg(feature = "etcd")]
            Target::Etcd(pool) => {
                let (read, write) = pool.pick(i);
                Conn::Etcd(Box::new(Pair { read, write }))
            }
        }
    }

    fn write_conns(&self) -> usize {
        match self {
            Target::Licstore(pool) => pool.write_conns(),
            #[cfg(feature = "etcd")]
            Target::Etcd(pool) => pool.write_conns(),
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
    let leader = match args.write_to {
        WriteTo::Leader => licstore_leader(&chans[0]).await,
        WriteTo::Any => None,
    };
    if args.system == System::Licstore {
        register_bench_item(&chans[0]).await?;
    }
    Ok(Target::Licstore(Pool::new(
        chans,
        &args.endpoints,
        leader.as_deref(),
    )))
}

/// The service item licbench verifies for.
pub const BENCH_ITEM: &str = "licbench";

/// The purpose licbench states on every verification.
pub const BENCH_PURPOSE: &str = "licbench load test";

/// How many times registering [`BENCH_ITEM`] is tried while the cluster elects a leader.
const REGISTER_ATTEMPTS: u32 = 20;

/// Registers [`BENCH_ITEM`] as accepting every built-in license type, so verifications of any
/// record of the dataset are answered. A caller that may not register items (no admin role)
/// is told so and goes on: an admin must have registered the item.
async fn register_bench_item(chan: &Channel) -> anyhow::Result<()> {
    let item = pb::ServiceItem {
        name: BENCH_ITEM.into(),
        department: "licbench".into(),
        type_codes: licstore_cli::types::registry()
            .iter()
            .map(|t| t.type_code.clone())
            .collect(),
    };
    let mut policies = PoliciesClient::new(chan.clone());
    let mut last = None;
    for _ in 0..REGISTER_ATTEMPTS {
        let request = pb::PutServiceItemRequest {
            item: Some(item.clone()),
        };
        match policies.put_service_item(request).await {
            Ok(_) => return Ok(()),
            Err(s) if s.code() == tonic::Code::PermissionDenied => {
                eprintln!(
                    "licbench: not registering service item {BENCH_ITEM:?}: {}",
                    s.message()
                );
                return Ok(());
            }
            Err(s) => last = Some(s),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let last = last.map(|s| s.to_string()).unwrap_or_default();
    anyhow::bail!("register service item {BENCH_ITEM:?}: {last}")
}

/// The leader's address as the members list names it; `None` when there is no leader yet or
/// the server has no cluster service (the echo server).
async fn licstore_leader(chan: &Channel) -> Option<String> {
    let mut cluster = ClusterClient::new(chan.clone());
    let list = cluster
        .member_list(pb::MemberListRequest {})
        .await
        .ok()?
        .into_inner();
    list.members
        .into_iter()
        .find(|m| m.node_id == list.leader_id)
        .map(|m| m.addr)
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
        service_item: BENCH_ITEM.into(),
        purpose: BENCH_PURPOSE.into(),
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
            Conn::Licstore(pair) => {
                let mut req = verify_request(key);
                req.consistency = consistency_pb(c) as i32;
                req.max_staleness_ms = bound_ms;
                found(&pair.read.verify(req).await?.into_inner())
            }
            #[cfg(feature = "etcd")]
            Conn::Etcd(kv) => etcd::verify(&mut kv.read, key, c).await,
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
            Conn::Licstore(pair) => {
                let req = pb::VerifyBatchRequest {
                    items: keys.iter().map(|k| verify_request(k)).collect(),
                    consistency: consistency_pb(c) as i32,
                    max_staleness_ms: bound_ms,
                };
                let resp = pair.read.verify_batch(req).await?.into_inner();
                if resp.results.len() != keys.len() {
                    return Err(OpError("short-batch".into()));
                }
                resp.results.iter().try_for_each(found)
            }
            #[cfg(feature = "etcd")]
            Conn::Etcd(kv) => etcd::verify_batch(&mut kv.read, keys).await,
        }
    }

    /// Issues a new license.
    pub async fn issue(&mut self, record: &Prepared) -> Result<(), OpError> {
        match self {
            Conn::Licstore(pair) => {
                let req = pb::IssueRequest {
                    request_id: record.import.request_id.clone(),
                    license: Some(record.license().clone()),
                    lenient_holder_check: false,
                    seal_bundle: Vec::new(),
                };
                pair.write.issue(req).await?;
                Ok(())
            }
            #[cfg(feature = "etcd")]
            Conn::Etcd(kv) => etcd::issue(&mut kv.write, record).await,
        }
    }

    /// Suspends the license or lifts its suspension.
    pub async fn toggle_status(&mut self, slot: &mut StatusSlot) -> Result<(), OpError> {
        match self {
            Conn::Licstore(pair) => {
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
                pair.write.change_status(req).await?;
            }
            #[cfg(feature = "etcd")]
            Conn::Etcd(kv) => etcd::toggle_status(&mut kv.write, slot).await?,
        }
        slot.suspended = !slot.suspended;
        Ok(())
    }

    /// Bulk-loads records in one call.
    pub async fn import(&mut self, records: &[Prepared]) -> Result<(), OpError> {
        match self {
            Conn::Licstore(pair) => {
                let msgs: Vec<pb::ImportRecord> =
                    records.iter().map(|r| r.import.clone()).collect();
                let summary = pair
                    .write
                    .import(tokio_stream::iter(msgs))
                    .await?
                    .into_inner();
                match summary.rejected {
                    0 => Ok(()),
                    _ => Err(OpError("rejected".into())),
                }
            }
            #[cfg(feature = "etcd")]
            Conn::Etcd(kv) => etcd::import(&mut kv.write, records).await,
        }
    }

    /// Finds the license behind `key` for the `status` workload: `None` unless it is valid
    /// or suspended now.
    pub async fn status_slot(&mut self, key: &Key) -> Result<Option<StatusSlot>, OpError> {
        match self {
            Conn::Licstore(pair) => {
                let req = pb::GetRequest {
                    holder_kind: key.holder_kind,
                    holder_id: key.holder_id.clone(),
                    type_code: key.type_code.clone(),
                    consistency: pb::Consistency::Linearizable as i32,
                    max_staleness_ms: 0,
                };
                let got = pair.read.get(req).await;
                let license = match got {
                    Ok(resp) => resp.into_inner().license,
                    Err(s) if s.code() == tonic::Code::NotFound => None,
                    Err(s) => return Err(s.into()),
                };
                Ok(license.and_then(|l| slot_of(key, l.identifier, l.status, None)))
            }
            #[cfg(feature = "etcd")]
            Conn::Etcd(kv) => etcd::status_slot(&mut kv.read, key).await,
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

#[cfg(test)]
mod tests {
    use super::Pool;

    #[test]
    fn writes_use_the_connections_to_the_leader_or_else_all() {
        let endpoints: Vec<String> = ["a:1", "b:2", "c:3"].map(String::from).to_vec();
        // Connection i goes to endpoint i % 3; the pool holds the connection numbers.
        let cases: [(Option<&str>, &[usize]); 4] = [
            (Some("b:2"), &[1, 4, 7]),
            (Some("a:1"), &[0, 3, 6]),
            (Some("d:4"), &[0, 1, 2, 3, 4, 5, 6, 7]),
            (None, &[0, 1, 2, 3, 4, 5, 6, 7]),
        ];
        for (leader, want) in cases {
            let pool = Pool::new((0..8).collect(), &endpoints, leader);
            assert_eq!(pool.writes, want, "leader {leader:?}");
            assert_eq!(
                pool.reads,
                (0..8).collect::<Vec<usize>>(),
                "leader {leader:?}"
            );
            let (read, write) = pool.pick(5);
            assert_eq!(
                (read, write),
                (5, want[5 % want.len()]),
                "leader {leader:?}"
            );
        }
    }
}
