//! The register workload: K keys (licenses), each a register whose value is the marker in the
//! face field [`MARKER_FIELD`](super::MARKER_FIELD).
//!
//! - *Setup* issues every key once (a `Create` op, value `h<holder number>-a<attempt>`). A
//!   create that fails or is unknown is followed by a recorded read; while the key is still
//!   absent, setup issues it again (a new op, new marker, new request id) until its deadline.
//! - *Clients* `first_client..first_client + clients` each run one operation at a time until
//!   the [`Stop`] or `max_ops_per_client`. Per op, from a ChaCha8 generator seeded with the
//!   run seed on stream `client`: a key, a node (see [`Placement`]) and read or write.
//!   - A read is a linearizable `Get` by holder and type: `Ok` with the marker and the record's
//!     revision, or `Ok` with value `None` on NOT_FOUND.
//!   - A write is an `Amend` of the identifier the client last saw for the key, with a fresh
//!     marker `c<client>-<n>`: effectively compare-and-set on the version, since a superseded
//!     identifier is refused (FAILED_PRECONDITION, a `Fail`). After any failed or unknown
//!     write the client refreshes its identifier with a (recorded) read.
//!   - A client that knows no identifier for the key, or whose last seen version is at
//!     `max_version` (identifier versions end at 999), reads instead of writing. Only the holder
//!     of the current identifier can amend, so no key's version passes `max_version + 1`.
//!
//! After an error a client pauses `error_pause_ms` so a dead node does not flood the history.

use std::sync::Arc;
use std::time::{Duration, Instant};

use licstore_proto::v1 as pb;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tonic::Code;

use super::license::{marker_of, Key, LicenseFactory};
use super::{call, request, NodeAddr, Nodes, Placement, Stop, DEFAULT_REQUEST_TIMEOUT_MS};
use crate::history::{OpKind, Outcome};
use crate::recorder::{Invocation, Recorder};

/// Settings of the register workload.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RegisterConfig {
    /// Number of keys K.
    pub keys: usize,
    /// Number of concurrent sequential clients C.
    pub clients: usize,
    /// Client id of the first client (setup runs as this client too).
    pub first_client: u64,
    /// Holder number of key 0; keys use `holder_base..holder_base + keys`.
    pub holder_base: u64,
    /// The run seed.
    pub seed: u64,
    /// Probability that an operation is a read.
    pub read_fraction: f64,
    pub placement: Placement,
    pub request_timeout_ms: u64,
    /// Pause after an operation that did not succeed.
    pub error_pause_ms: u64,
    /// Operations per client at most; `None`: until the stop.
    pub max_ops_per_client: Option<u64>,
    /// No amendment of a version at or above this one (identifier versions end at 999).
    pub max_version: u32,
    /// How long setup may take.
    pub setup_timeout_ms: u64,
}

impl Default for RegisterConfig {
    fn default() -> Self {
        RegisterConfig {
            keys: 5,
            clients: 4,
            first_client: 0,
            holder_base: 0,
            seed: 0,
            read_fraction: 0.5,
            placement: Placement::Any,
            request_timeout_ms: DEFAULT_REQUEST_TIMEOUT_MS,
            error_pause_ms: 50,
            max_ops_per_client: None,
            max_version: 990,
            setup_timeout_ms: 30_000,
        }
    }
}

/// What the clients did.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RegisterReport {
    /// Key names, index = key number.
    pub keys: Vec<String>,
    /// Operations per client, in client order.
    pub ops_per_client: Vec<u64>,
}

/// The identifier and version a client last saw for a key.
#[derive(Clone, Debug)]
struct Seen {
    identifier: String,
    version: u32,
}

impl Seen {
    fn of(license: &pb::License) -> Self {
        Seen {
            identifier: license.identifier.clone(),
            version: license.version,
        }
    }
}

/// A set-up register workload, ready to [`RegisterWorkload::run`].
#[derive(Clone, Debug)]
pub struct RegisterWorkload {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cfg: RegisterConfig,
    nodes: Nodes,
    factory: LicenseFactory,
    keys: Vec<Key>,
    /// What setup saw, each client's starting point.
    initial: Vec<Option<Seen>>,
}

/// One client's view while it runs.
struct Client<'a> {
    inner: &'a Inner,
    rec: &'a Recorder,
    id: u64,
    seen: Vec<Option<Seen>>,
    rng: ChaCha8Rng,
    writes: u64,
}

impl RegisterWorkload {
    /// Issues every key (see the module doc); fails on a bad config or when a key could not be
    /// created or found within the setup timeout.
    pub async fn setup(
        cfg: RegisterConfig,
        nodes: &[NodeAddr],
        rec: &Recorder,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(cfg.keys > 0 && cfg.clients > 0, "need keys and clients");
        anyhow::ensure!(
            (0.0..=1.0).contains(&cfg.read_fraction),
            "read_fraction not in 0..=1"
        );
        let factory = LicenseFactory::new()?;
        let keys = (0..cfg.keys as u64)
            .map(|i| factory.key(cfg.holder_base + i))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut inner = Inner {
            nodes: Nodes::new(nodes)?,
            initial: vec![None; keys.len()],
            cfg,
            factory,
            keys,
        };
        let deadline = Instant::now() + Duration::from_millis(inner.cfg.setup_timeout_ms);
        let mut client = Client::new(&inner, rec, 0);
        for k in 0..inner.keys.len() {
            client.create_until(k, deadline).await?;
        }
        inner.initial = client.seen;
        Ok(RegisterWorkload {
            inner: Arc::new(inner),
        })
    }

    /// The keys, index = key number.
    pub fn keys(&self) -> &[Key] {
        &self.inner.keys
    }

    /// Runs the clients until `stop` (or their op limit) and waits for all of them.
    pub async fn run(&self, rec: &Recorder, stop: &Stop) -> RegisterReport {
        let mut tasks = tokio::task::JoinSet::new();
        for c in 0..self.inner.cfg.clients {
            let (inner, rec, stop) = (self.inner.clone(), rec.clone(), stop.clone());
            tasks.spawn(async move { (c, Client::new(&inner, &rec, c).run(&stop).await) });
        }
        let mut ops_per_client = vec![0; self.inner.cfg.clients];
        while let Some(done) = tasks.join_next().await {
            // A panicked client has no count to report; its recorded ops stay in the history.
            if let Ok((c, ops)) = done {
                ops_per_client[c] = ops;
            }
        }
        RegisterReport {
            keys: self.inner.keys.iter().map(Key::name).collect(),
            ops_per_client,
        }
    }
}

impl<'a> Client<'a> {
    fn new(inner: &'a Inner, rec: &'a Recorder, index: usize) -> Self {
        let id = inner.cfg.first_client + index as u64;
        let mut rng = ChaCha8Rng::seed_from_u64(inner.cfg.seed);
        rng.set_stream(id);
        Client {
            inner,
            rec,
            id,
            seen: inner.initial.clone(),
            rng,
            writes: 0,
        }
    }

    /// Operations until the stop or the limit; returns how many.
    async fn run(mut self, stop: &Stop) -> u64 {
        let limit = self.inner.cfg.max_ops_per_client.unwrap_or(u64::MAX);
        let mut ops = 0;
        while ops < limit && !stop.stopped() {
            let k = self.rng.random_range(0..self.inner.keys.len());
            let node = self.pick_node();
            let read = self.rng.random_bool(self.inner.cfg.read_fraction);
            let (done, outcome) = self.step(k, node, read).await;
            ops += done;
            if outcome != Outcome::Ok {
                stop.sleep(Duration::from_millis(self.inner.cfg.error_pause_ms))
                    .await;
            }
        }
        ops
    }

    /// One chosen operation and, after a write that did not succeed, the refreshing read.
    async fn step(&mut self, k: usize, node: usize, read: bool) -> (u64, Outcome) {
        let max_version = self.inner.cfg.max_version;
        let writable = self.seen[k]
            .as_ref()
            .is_some_and(|s| s.version < max_version);
        if read || !writable {
            return (1, self.read(k, node).await);
        }
        let outcome = self.write(k, node).await;
        if outcome == Outcome::Ok {
            return (1, outcome);
        }
        self.read(k, node).await;
        (2, outcome)
    }

    fn pick_node(&mut self) -> usize {
        match self.inner.cfg.placement {
            Placement::Pinned => self.id as usize,
            Placement::Any => self.rng.random_range(0..self.inner.nodes.len()),
        }
    }

    fn invoke(&self, k: usize, node: usize, kind: OpKind, value: Option<String>) -> u64 {
        self.rec.invoke(Invocation {
            client: self.id,
            key: self.inner.keys[k].name(),
            kind,
            value,
            node: Some(self.inner.nodes.id(node)),
        })
    }

    /// A linearizable read of key `k`; updates what the client saw.
    async fn read(&mut self, k: usize, node: usize) -> Outcome {
        let op = self.invoke(k, node, OpKind::Read, None);
        let timeout_ms = self.inner.cfg.request_timeout_ms;
        let req = request(self.inner.keys[k].get_request(), timeout_ms);
        let mut stub = self.inner.nodes.licenses(node);
        match call(timeout_ms, stub.get(req)).await {
            Ok(resp) => {
                let license = resp.license.as_ref();
                let revision = license.map(|l| l.revision);
                self.rec.ok_read(op, license.and_then(marker_of), revision);
                self.seen[k] = license.map(Seen::of);
                Outcome::Ok
            }
            Err(status) if status.code() == Code::NotFound => {
                self.rec.ok_read(op, None, None);
                self.seen[k] = None;
                Outcome::Ok
            }
            Err(status) => self.rec.error(op, &status),
        }
    }

    /// An amendment of the identifier last seen for key `k` to a fresh marker.
    async fn write(&mut self, k: usize, node: usize) -> Outcome {
        let Some(seen) = self.seen[k].clone() else {
            return Outcome::Fail;
        };
        self.writes += 1;
        let marker = format!("c{}-{}", self.id, self.writes);
        let op = self.invoke(k, node, OpKind::Write, Some(marker.clone()));
        let timeout_ms = self.inner.cfg.request_timeout_ms;
        let amend = pb::AmendRequest {
            request_id: licstore_client::new_request_id(),
            identifier: seen.identifier,
            license: Some(self.inner.factory.license(&self.inner.keys[k], &marker)),
            seal_bundle: Vec::new(),
        };
        let mut stub = self.inner.nodes.licenses(node);
        match call(timeout_ms, stub.amend(request(amend, timeout_ms))).await {
            Ok(resp) => {
                self.rec.ok_write(op, Some(resp.revision));
                self.seen[k] = resp.license.as_ref().map(Seen::of);
                Outcome::Ok
            }
            Err(status) => {
                self.seen[k] = None;
                self.rec.error(op, &status)
            }
        }
    }

    /// Setup of key `k`: issue, and after a miss read, until it exists or `deadline`.
    async fn create_until(&mut self, k: usize, deadline: Instant) -> anyhow::Result<()> {
        let holder = self.inner.cfg.holder_base + k as u64;
        let pause = Duration::from_millis(self.inner.cfg.error_pause_ms.max(50));
        for attempt in 0usize.. {
            let node = attempt % self.inner.nodes.len();
            let marker = format!("h{holder}-a{attempt}");
            if self.create(k, node, marker).await == Outcome::Ok {
                return Ok(());
            }
            if self.read(k, node).await == Outcome::Ok && self.seen[k].is_some() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(pause).await;
        }
        let key = self.inner.keys[k].name();
        anyhow::bail!("register setup: {key} not created within the setup timeout")
    }

    /// One `Issue` of key `k` with `marker`.
    async fn create(&mut self, k: usize, node: usize, marker: String) -> Outcome {
        let op = self.invoke(k, node, OpKind::Create, Some(marker.clone()));
        let timeout_ms = self.inner.cfg.request_timeout_ms;
        let issue = pb::IssueRequest {
            request_id: licstore_client::new_request_id(),
            license: Some(self.inner.factory.license(&self.inner.keys[k], &marker)),
            lenient_holder_check: false,
            seal_bundle: Vec::new(),
        };
        let mut stub = self.inner.nodes.licenses(node);
        match call(timeout_ms, stub.issue(request(issue, timeout_ms))).await {
            Ok(resp) => {
                self.rec.ok_write(op, Some(resp.revision));
                self.seen[k] = resp.license.as_ref().map(Seen::of);
                Outcome::Ok
            }
            Err(status) => self.rec.error(op, &status),
        }
    }
}
