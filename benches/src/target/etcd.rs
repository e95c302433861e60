//! The etcd side of each call (see the table in [`crate::target`]). Values are the protobuf
//! `ImportRecord` of the record, so etcd stores the same bytes licstore is sent.

use etcd_client::{Client, Compare, CompareOp, GetOptions, KvClient, Txn, TxnOp, TxnOpResponse};
use licstore_proto::v1 as pb;
use prost::Message;

use super::{slot_of, OpError, Pool, StatusSlot, Target};
use crate::args::{Consistency, TargetArgs, WriteTo};
use crate::dataset::{Key, Prepared};

fn err(e: etcd_client::Error) -> OpError {
    match e {
        etcd_client::Error::GRpcStatus(s) => s.into(),
        _ => OpError("TRANSPORT".into()),
    }
}

/// One etcd client per connection, each bound to one endpoint (round-robin); writes go as
/// `--write-to` says.
pub async fn connect(args: &TargetArgs) -> anyhow::Result<Target> {
    let mut clients = Vec::with_capacity(args.conns);
    let mut leader = None;
    for i in 0..args.conns {
        let ep = format!("http://{}", args.endpoints[i % args.endpoints.len()]);
        let opts = etcd_client::ConnectOptions::new()
            .with_timeout(std::time::Duration::from_millis(args.timeout_ms))
            .with_connect_timeout(std::time::Duration::from_secs(2));
        let mut client = Client::connect([ep.as_str()], Some(opts))
            .await
            .map_err(|e| anyhow::anyhow!("connect to etcd at {ep}: {e}"))?;
        if i == 0 && args.write_to == WriteTo::Leader {
            leader = leader_endpoint(&mut client).await;
        }
        clients.push(client.kv_client());
    }
    Ok(Target::Etcd(Pool::new(
        clients,
        &args.endpoints,
        leader.as_deref(),
    )))
}

/// The leader's first client URL without its scheme (`host:port`), as `--endpoints` names
/// members; `None` when etcd cannot tell.
async fn leader_endpoint(client: &mut Client) -> Option<String> {
    let leader = client.status().await.ok()?.leader();
    let members = client.member_list().await.ok()?;
    let member = members.members().iter().find(|m| m.id() == leader)?;
    let url = member.client_urls().first()?;
    Some(
        url.split_once("://")
            .map_or(url.as_str(), |(_, rest)| rest)
            .to_string(),
    )
}

fn get_options(c: Consistency) -> Option<GetOptions> {
    match c {
        // etcd has no bounded staleness: its nearest level is serializable.
        Consistency::Serializable | Consistency::BoundedStaleness => {
            Some(GetOptions::new().with_serializable())
        }
        Consistency::Linearizable => None,
    }
}

/// Decodes the value and computes the verdict client-side, as an etcd user would.
fn check_value(value: &[u8]) -> Result<pb::ImportRecord, OpError> {
    pb::ImportRecord::decode(value).map_err(|_| OpError("bad-value".into()))
}

/// `Range` of one key.
pub async fn verify(kv: &mut KvClient, key: &Key, c: Consistency) -> Result<(), OpError> {
    let resp = kv.get(key.etcd_key(), get_options(c)).await.map_err(err)?;
    match resp.kvs().first() {
        Some(found) => check_value(found.value()).map(|_| ()),
        None => Err(OpError("not-found".into())),
    }
}

/// One `Txn` of `Range`s.
pub async fn verify_batch(kv: &mut KvClient, keys: &[&Key]) -> Result<(), OpError> {
    let ops: Vec<TxnOp> = keys
        .iter()
        .map(|k| TxnOp::get(k.etcd_key(), None))
        .collect();
    let resp = kv.txn(Txn::new().and_then(ops)).await.map_err(err)?;
    for op in resp.op_responses() {
        let TxnOpResponse::Get(got) = op else {
            return Err(OpError("bad-txn".into()));
        };
        match got.kvs().first() {
            Some(found) => check_value(found.value())?,
            None => return Err(OpError("not-found".into())),
        };
    }
    Ok(())
}

/// `Txn`: put if the key has never been created.
pub async fn issue(kv: &mut KvClient, record: &Prepared) -> Result<(), OpError> {
    let key = record.key.etcd_key();
    let txn = Txn::new()
        .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
        .and_then([TxnOp::put(key, record.import.encode_to_vec(), None)]);
    match kv.txn(txn).await.map_err(err)?.succeeded() {
        true => Ok(()),
        false => Err(OpError("ALREADY_EXISTS".into())),
    }
}

/// `Put` of the value with its status flipped.
pub async fn toggle_status(kv: &mut KvClient, slot: &mut StatusSlot) -> Result<(), OpError> {
    let value = slot.value.as_mut().ok_or(OpError("no-value".into()))?;
    value.status = match slot.suspended {
        true => pb::LicenseStatus::Valid as i32,
        false => pb::LicenseStatus::Suspended as i32,
    };
    kv.put(slot.key.etcd_key(), value.encode_to_vec(), None)
        .await
        .map_err(err)?;
    Ok(())
}

/// One `Txn` of `Put`s (etcd must allow that many operations: `--max-txn-ops`).
pub async fn import(kv: &mut KvClient, records: &[Prepared]) -> Result<(), OpError> {
    let ops: Vec<TxnOp> = records
        .iter()
        .map(|r| TxnOp::put(r.key.etcd_key(), r.import.encode_to_vec(), None))
        .collect();
    kv.txn(Txn::new().and_then(ops)).await.map_err(err)?;
    Ok(())
}

/// Reads the stored value for the `status` workload.
pub async fn status_slot(kv: &mut KvClient, key: &Key) -> Result<Option<StatusSlot>, OpError> {
    let resp = kv.get(key.etcd_key(), None).await.map_err(err)?;
    let Some(found) = resp.kvs().first() else {
        return Ok(None);
    };
    let value = check_value(found.value())?;
    let status = value.status;
    Ok(slot_of(key, String::new(), status, Some(value)))
}
