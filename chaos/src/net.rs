//! The network a chaos run's nodes talk over, and the network faults.
//!
//! # Namespace mode (`namespaces: true`)
//!
//! Used when the runner is root and `ip netns add` and `nft` work. One run makes, all named
//! `lcx-<pid>-<seq>-…` and deleted again on drop:
//! - a hub namespace (`…-hub`) holding a bridge `br0`;
//! - one namespace per node slot (`…-n<id>`), with a veth `eth0` to the bridge, address
//!   `10.213.0.<10+id>/24`, loopback up; the node serves clients and Raft on port 7001 and
//!   metrics on 9201 there;
//! - a client namespace (`…-cl`) with `10.213.0.2/24` (the runner's clients) and one more
//!   address per node slot, `10.213.0.<100+id>`, from which the proxies of that node's
//!   outgoing peer links connect.
//!
//! Nothing is added to the root namespace: the veth pairs are created inside the hub
//! namespace and their other ends moved straight into the node and client namespaces.
//!
//! Each node namespace has an nftables table `ip lcx` with three chains: `nat_out` (output
//! `dnat` of peer links to their proxies), `fin` and `fout` (filter, where the faults go).
//! Faults: [`Net::block`] (drop every packet from one node to another, one-way: in the
//! sender's `fout` by the connection-tracking original tuple, so it also catches connections
//! that go through a proxy), [`Net::partition`] (groups; a node in no group is a bridge that
//! sees every side), [`Net::isolate`], [`Net::cut_clients`], packet loss on a node or a
//! directed link (`numgen random mod 100 < N drop`). [`Net::heal`] flushes the filter chains
//! and sets every proxy back to pass.
//!
//! With `peer_proxies`, node i's connections to node j's `ip:7001` are redirected by a `dnat`
//! rule in node i's namespace to the proxy of link i→j (listening on `10.213.0.<100+i>:
//! <20000+j>` in the client namespace), which connects on to node j from `10.213.0.<100+i>`.
//! Delay, blackhole and connection resets of a link then go through [`crate::proxy`]. The
//! rules are in place before the nodes start, so every peer connection is proxied (a `dnat`
//! added later would only catch new connections). Client proxies (client → node j) listen on
//! `10.213.0.2:<21000+j>`.
//!
//! The runner's own clients must run inside the client namespace: see [`ClientNs`].
//!
//! # Loopback fallback (`namespaces: false`)
//!
//! When namespaces cannot be made (not root, no `ip`/`nft`), every node listens on
//! `127.0.0.1:<free port>` but advertises (`--addr`) the address of its *ingress proxy*, so
//! every peer and client connection to node j goes through proxy j. The proxy names the
//! node that opened each connection by looking up the connecting socket in `/proc/net/tcp`
//! and the nodes' `/proc/<pid>/fd` (pids registered by the cluster), so per-link faults
//! still work at connection level: [`Net::block`] blackholes one direction of the
//! connections between two nodes, partitions and delays work the same way.
//!
//! What the fallback cannot do: packet loss (no nft: [`Net::loss_node`] and
//! [`Net::loss_link`] return [`NetError::Unsupported`]); a blocked direction holds bytes in
//! the proxy instead of dropping packets (TCP sees a stalled stream, never retransmits or
//! resets, and held bytes are delivered after the heal); connections the proxy cannot
//! attribute to a node (e.g. a node that was just restarted and not yet registered) are
//! treated as client connections; the node's metrics endpoint is not proxied.

use std::collections::BTreeMap;
use std::fs::File;
use std::future::Future;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::proxy::{Classifier, Dir, Mode, Proxy, ProxyOptions};

/// Prefix of every network namespace this module creates.
pub const NS_PREFIX: &str = "lcx-";
/// The node port (client API and Raft) in namespace mode.
pub const NODE_PORT: u16 = 7001;
/// The metrics port in namespace mode.
pub const METRICS_PORT: u16 = 9201;
/// The runner's address in the client namespace.
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 213, 0, 2);
/// Most node slots one net holds.
pub const MAX_SLOTS: u64 = 60;
/// Longest time one `ip` or `nft` command may take.
const CMD_WAIT: Duration = Duration::from_secs(10);

/// Errors of the network layer.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("not possible in this mode: {0}")]
    Unsupported(String),
    #[error("{0}")]
    Failed(String),
    #[error("no node slot {0}")]
    NoSlot(u64),
}

pub type NetResult<T> = Result<T, NetError>;

/// How the net is made.
#[derive(Clone, Debug)]
pub struct NetOptions {
    /// Node ids `1..=slots` get an address (room for nodes added by membership changes).
    pub slots: u64,
    /// Try network namespaces; `false` forces the loopback fallback.
    pub namespaces: bool,
    /// Namespace mode: send peer links through proxies (needed for link delay, blackhole and
    /// connection resets).
    pub peer_proxies: bool,
    /// Seed of the proxies' delay jitter.
    pub seed: u64,
}

impl Default for NetOptions {
    fn default() -> Self {
        NetOptions {
            slots: 5,
            namespaces: true,
            peer_proxies: true,
            seed: 0,
        }
    }
}

/// Where one node slot lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeAddr {
    pub id: u64,
    /// `ip:port` peers and clients use (`--addr`).
    pub addr: String,
    /// `ip:port` the node listens on (`--listen-addr`), when it differs from `addr`.
    pub listen: Option<String>,
    /// `ip:port` of the metrics endpoint.
    pub metrics: String,
    /// The node's network namespace (namespace mode).
    pub netns: Option<String>,
}

/// Handle on the client network namespace: runs client code inside it.
#[derive(Clone, Debug)]
pub struct ClientNs {
    netns: Option<String>,
}

impl ClientNs {
    /// Moves the calling thread into the client namespace (no-op in the fallback). Sockets
    /// the thread creates afterwards, and threads it starts, belong to that namespace.
    pub fn enter(&self) -> std::io::Result<()> {
        match &self.netns {
            Some(ns) => enter_netns(ns),
            None => Ok(()),
        }
    }

    /// Runs `f` on a new thread inside the client namespace and returns its result.
    pub fn run<F, R>(&self, f: F) -> R
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        std::thread::scope(|s| {
            let handle = s.spawn(|| {
                self.enter().expect("enter the client network namespace");
                f()
            });
            match handle.join() {
                Ok(r) => r,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// Runs a future to completion on a current-thread tokio runtime on a new thread inside
    /// the client namespace.
    pub fn block_on<F: Future + Send>(&self, fut: F) -> F::Output
    where
        F::Output: Send,
    {
        self.run(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime")
                .block_on(fut)
        })
    }

    /// Builds a multi-thread tokio runtime whose threads are inside the client namespace.
    /// Spawn work on it (`rt.spawn`) rather than passing it to `block_on`, which would poll
    /// the future on the calling thread.
    pub fn runtime(&self, workers: usize) -> std::io::Result<tokio::runtime::Runtime> {
        self.run(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers.max(1))
                .enable_all()
                .build()
        })
    }
}

/// Moves the calling thread into the named network namespace.
pub fn enter_netns(name: &str) -> std::io::Result<()> {
    let f = File::open(netns_path(name))?;
    // SAFETY: setns on a valid descriptor affects only the calling thread.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// `/run/netns/<name>`.
pub fn netns_path(name: &str) -> PathBuf {
    PathBuf::from("/run/netns").join(name)
}

/// pid → node id of the running node processes, kept by the cluster; the fallback's
/// proxies use it to tell which node opened a connection.
#[derive(Clone, Default, Debug)]
pub struct PidRegistry(Arc<Mutex<BTreeMap<u32, u64>>>);

impl PidRegistry {
    pub fn register(&self, pid: u32, node: u64) {
        lock(&self.0).insert(pid, node);
    }
    pub fn unregister(&self, pid: u32) {
        lock(&self.0).remove(&pid);
    }
    fn snapshot(&self) -> Vec<(u32, u64)> {
        lock(&self.0).iter().map(|(p, n)| (*p, *n)).collect()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The fault rules of one node namespace, rewritten whole on each change.
#[derive(Clone, Debug, Default)]
struct Rules {
    fin: Vec<String>,
    fout: Vec<String>,
}

/// The network of one run.
pub struct Net {
    /// Whether namespace mode is in use; `false`: loopback fallback.
    pub namespaces: bool,
    /// Why namespace mode is not in use (fallback only).
    pub fallback_reason: Option<String>,
    prefix: String,
    peer_proxies: bool,
    nodes: BTreeMap<u64, NodeAddr>,
    /// Namespaces created, in creation order (deleted in reverse).
    created: Vec<String>,
    client_netns: Option<String>,
    rules: BTreeMap<u64, Rules>,
    /// Namespace mode: link (from, to) → proxy of from's connections to to.
    peer: BTreeMap<(u64, u64), Proxy>,
    /// Client → node proxies (namespace mode) or each node's ingress proxy (fallback).
    ingress: BTreeMap<u64, Proxy>,
    registry: PidRegistry,
    rt: Option<tokio::runtime::Runtime>,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

impl Net {
    /// Makes the net: namespace mode when possible (and asked for), else the fallback.
    pub fn new(opts: NetOptions) -> NetResult<Net> {
        if opts.slots == 0 || opts.slots > MAX_SLOTS {
            return Err(NetError::Failed(format!(
                "slots must be 1..={MAX_SLOTS}, not {}",
                opts.slots
            )));
        }
        let pid = std::process::id();
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("{NS_PREFIX}{pid}-{seq}");
        let reason = if !opts.namespaces {
            Some("namespaces not asked for".to_string())
        } else {
            namespace_blocker()
        };
        match reason {
            None => {
                sweep_orphans();
                match Net::with_namespaces(&prefix, &opts) {
                    Ok(net) => Ok(net),
                    Err(e) => {
                        // Whatever was made was deleted by the failed net's drop.
                        Net::fallback(&prefix, &opts, format!("namespace setup failed: {e}"))
                    }
                }
            }
            Some(why) => Net::fallback(&prefix, &opts, why),
        }
    }

    fn empty(prefix: &str, opts: &NetOptions, namespaces: bool) -> Net {
        Net {
            namespaces,
            fallback_reason: None,
            prefix: prefix.to_string(),
            peer_proxies: opts.peer_proxies && namespaces,
            nodes: BTreeMap::new(),
            created: Vec::new(),
            client_netns: None,
            rules: BTreeMap::new(),
            peer: BTreeMap::new(),
            ingress: BTreeMap::new(),
            registry: PidRegistry::default(),
            rt: None,
        }
    }

    fn with_namespaces(prefix: &str, opts: &NetOptions) -> NetResult<Net> {
        let mut net = Net::empty(prefix, opts, true);
        let hub = format!("{prefix}-hub");
        let client = format!("{prefix}-cl");
        net.add_ns(&hub)?;
        ip(&["-n", &hub, "link", "set", "lo", "up"])?;
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &hub, "link", "set", "br0", "up"])?;
        net.add_ns(&client)?;
        net.attach(&hub, &client, "vcl", CLIENT_IP)?;
        net.client_netns = Some(client.clone());
        for id in 1..=opts.slots {
            let ns = format!("{prefix}-n{id}");
            net.add_ns(&ns)?;
            net.attach(&hub, &ns, &format!("vn{id}"), node_ip(id))?;
            ip(&[
                "-n",
                &client,
                "addr",
                "add",
                &format!("{}/24", proxy_src_ip(id)),
                "dev",
                "eth0",
            ])?;
            net.nodes.insert(
                id,
                NodeAddr {
                    id,
                    addr: format!("{}:{NODE_PORT}", node_ip(id)),
                    listen: None,
                    metrics: format!("{}:{METRICS_PORT}", node_ip(id)),
                    netns: Some(ns),
                },
            );
            net.rules.insert(id, Rules::default());
        }
        let ns = ClientNs {
            netns: Some(client),
        };
        let rt = ns
            .runtime(2)
            .map_err(|e| NetError::Failed(format!("proxy runtime: {e}")))?;
        net.rt = Some(rt);
        let handle = net.handle();
        for to in 1..=opts.slots {
            let upstream = SocketAddr::new(IpAddr::V4(node_ip(to)), NODE_PORT);
            let client_proxy = Proxy::start(
                &handle,
                ProxyOptions {
                    listen: SocketAddr::new(IpAddr::V4(CLIENT_IP), 21000 + to as u16),
                    upstream,
                    bind_src: Some(IpAddr::V4(CLIENT_IP)),
                    classifier: None,
                    seed: opts.seed ^ (to << 32),
                },
            )
            .map_err(|e| NetError::Failed(format!("client proxy {to}: {e}")))?;
            net.ingress.insert(to, client_proxy);
            if !net.peer_proxies {
                continue;
            }
            for from in (1..=opts.slots).filter(|f| *f != to) {
                let p = Proxy::start(
                    &handle,
                    ProxyOptions {
                        listen: SocketAddr::new(IpAddr::V4(proxy_src_ip(from)), 20000 + to as u16),
                        upstream,
                        bind_src: Some(IpAddr::V4(proxy_src_ip(from))),
                        classifier: None,
                        seed: opts.seed ^ (from << 40) ^ (to << 32),
                    },
                )
                .map_err(|e| NetError::Failed(format!("peer proxy {from}->{to}: {e}")))?;
                net.peer.insert((from, to), p);
            }
        }
        for id in 1..=opts.slots {
            net.init_table(id)?;
        }
        Ok(net)
    }

    fn fallback(prefix: &str, opts: &NetOptions, why: String) -> NetResult<Net> {
        let mut net = Net::empty(prefix, opts, false);
        net.fallback_reason = Some(why);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| NetError::Failed(format!("proxy runtime: {e}")))?;
        net.rt = Some(rt);
        let handle = net.handle();
        for id in 1..=opts.slots {
            let listen = format!("127.0.0.1:{}", free_port()?);
            let upstream: SocketAddr = listen.parse().expect("loopback address");
            let registry = net.registry.clone();
            let classifier: Classifier = Arc::new(move |peer| classify(peer, &registry));
            let proxy = Proxy::start(
                &handle,
                ProxyOptions {
                    listen: "127.0.0.1:0".parse().expect("loopback"),
                    upstream,
                    bind_src: None,
                    classifier: Some(classifier),
                    seed: opts.seed ^ (id << 32),
                },
            )
            .map_err(|e| NetError::Failed(format!("ingress proxy {id}: {e}")))?;
            net.nodes.insert(
                id,
                NodeAddr {
                    id,
                    addr: proxy.listen_addr().to_string(),
                    listen: Some(listen),
                    metrics: format!("127.0.0.1:{}", free_port()?),
                    netns: None,
                },
            );
            net.ingress.insert(id, proxy);
        }
        Ok(net)
    }

    fn handle(&self) -> tokio::runtime::Handle {
        self.rt.as_ref().expect("proxy runtime").handle().clone()
    }

    fn add_ns(&mut self, name: &str) -> NetResult<()> {
        if netns_path(name).exists() {
            return Err(NetError::Failed(format!("namespace {name} exists already")));
        }
        ip(&["netns", "add", name])?;
        self.created.push(name.to_string());
        ip(&["-n", name, "link", "set", "lo", "up"])
    }

    /// A veth from the hub's bridge (end `hub_end`) to `ns` (end `eth0`, address `addr/24`).
    fn attach(&self, hub: &str, ns: &str, hub_end: &str, addr: Ipv4Addr) -> NetResult<()> {
        ip(&[
            "-n", hub, "link", "add", hub_end, "type", "veth", "peer", "name", "eth0", "netns", ns,
        ])?;
        ip(&["-n", hub, "link", "set", hub_end, "master", "br0", "up"])?;
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", ns, "link", "set", "eth0", "up"])
    }

    fn init_table(&self, id: u64) -> NetResult<()> {
        let mut script = String::from(
            "table ip lcx {\n\
             \tchain nat_out { type nat hook output priority -100; policy accept; }\n\
             \tchain fin { type filter hook input priority 0; policy accept; }\n\
             \tchain fout { type filter hook output priority 0; policy accept; }\n\
             }\n",
        );
        if self.peer_proxies {
            for to in self.nodes.keys().filter(|t| **t != id) {
                script.push_str(&format!(
                    "add rule ip lcx nat_out ip daddr {} tcp dport {NODE_PORT} dnat to {}:{}\n",
                    node_ip(*to),
                    proxy_src_ip(id),
                    20000 + *to as u16
                ));
            }
        }
        self.nft(id, &script)?;
        self.apply(id)
    }

    /// Rewrites node `id`'s filter chains from its rule lists, in one nft transaction.
    fn apply(&self, id: u64) -> NetResult<()> {
        let rules = self.rules.get(&id).ok_or(NetError::NoSlot(id))?;
        let mut script = String::from(
            "flush chain ip lcx fin\nflush chain ip lcx fout\n\
             add rule ip lcx fin iifname \"lo\" accept\n\
             add rule ip lcx fout oifname \"lo\" accept\n",
        );
        for r in &rules.fin {
            script.push_str(&format!("add rule ip lcx fin {r}\n"));
        }
        for r in &rules.fout {
            script.push_str(&format!("add rule ip lcx fout {r}\n"));
        }
        self.nft(id, &script)
    }

    fn nft(&self, id: u64, script: &str) -> NetResult<()> {
        let ns = self.netns_of(id).ok_or(NetError::NoSlot(id))?;
        run_cmd(
            Command::new("ip").args(["netns", "exec", ns, "nft", "-f", "-"]),
            Some(script),
        )
        .map(drop)
    }

    /// The nft ruleset of one node namespace, for reports and debugging.
    pub fn ruleset(&self, id: u64) -> NetResult<String> {
        let ns = self.netns_of(id).ok_or(NetError::NoSlot(id))?;
        run_cmd(
            Command::new("ip").args(["netns", "exec", ns, "nft", "list", "table", "ip", "lcx"]),
            None,
        )
    }

    /// Prefix of this net's namespaces (`lcx-<pid>-<seq>`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Node slot ids.
    pub fn slots(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    /// Addresses of one node slot.
    pub fn node(&self, id: u64) -> NetResult<&NodeAddr> {
        self.nodes.get(&id).ok_or(NetError::NoSlot(id))
    }

    /// The node's network namespace (namespace mode).
    pub fn netns_of(&self, id: u64) -> Option<&str> {
        self.nodes.get(&id).and_then(|n| n.netns.as_deref())
    }

    /// Where the runner's clients run.
    pub fn client_ns(&self) -> ClientNs {
        ClientNs {
            netns: self.client_netns.clone(),
        }
    }

    /// The registry the cluster keeps its pids in (fallback proxies read it).
    pub fn pid_registry(&self) -> PidRegistry {
        self.registry.clone()
    }

    /// The address through which clients reach node `id` via a proxy whose faults are
    /// [`Net::client_link`]'s (namespace mode: the client proxy; fallback: the node's
    /// ingress proxy, which is also its advertised address).
    pub fn client_proxy_addr(&self, id: u64) -> NetResult<String> {
        self.ingress
            .get(&id)
            .map(|p| p.listen_addr().to_string())
            .ok_or(NetError::NoSlot(id))
    }

    /// The proxy of node `from`'s connections to node `to` (namespace mode with peer
    /// proxies).
    pub fn peer_proxy(&self, from: u64, to: u64) -> Option<&Proxy> {
        self.peer.get(&(from, to))
    }

    /// The client proxy (namespace mode) or ingress proxy (fallback) of node `id`.
    pub fn ingress_proxy(&self, id: u64) -> Option<&Proxy> {
        self.ingress.get(&id)
    }

    fn check(&self, id: u64) -> NetResult<()> {
        self.nodes
            .contains_key(&id)
            .then_some(())
            .ok_or(NetError::NoSlot(id))
    }

    /// Proxy-level mode for every byte node `from` sends to node `to`, on connections
    /// either of them opened.
    fn set_link_mode(&self, from: u64, to: u64, mode: Mode) -> NetResult<()> {
        self.check(from)?;
        self.check(to)?;
        if self.namespaces {
            if !self.peer_proxies {
                return Err(NetError::Unsupported(
                    "link proxies are off (peer_proxies: false)".into(),
                ));
            }
            if let Some(p) = self.peer.get(&(from, to)) {
                p.set(Dir::Up, mode);
            }
            if let Some(p) = self.peer.get(&(to, from)) {
                p.set(Dir::Down, mode);
            }
        } else {
            self.ingress[&to].set_source(from, Dir::Up, mode);
            self.ingress[&from].set_source(to, Dir::Down, mode);
        }
        Ok(())
    }

    /// Drops everything node `from` sends to node `to` (one-way). Namespace mode: nft drop
    /// in `from`'s namespace; fallback: the proxies hold those bytes.
    pub fn block(&mut self, from: u64, to: u64) -> NetResult<()> {
        self.check(from)?;
        self.check(to)?;
        if from == to {
            return Ok(());
        }
        if !self.namespaces {
            return self.set_link_mode(from, to, Mode::Blackhole);
        }
        let r = self.rules.get_mut(&from).ok_or(NetError::NoSlot(from))?;
        r.fout.extend(link_rules(to, ""));
        self.apply(from)
    }

    /// Cuts every link between nodes of different groups, both ways. A node in no group is
    /// untouched: with groups `[[1],[3]]` node 2 still talks to both (a bridge).
    pub fn partition(&mut self, groups: &[Vec<u64>]) -> NetResult<()> {
        for (gi, a) in groups.iter().enumerate() {
            for (gj, b) in groups.iter().enumerate() {
                if gi == gj {
                    continue;
                }
                for x in a {
                    for y in b {
                        self.block(*x, *y)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Cuts node `id` from every other node slot, both ways (clients still reach it).
    pub fn isolate(&mut self, id: u64) -> NetResult<()> {
        let others: Vec<u64> = self.slots().into_iter().filter(|n| *n != id).collect();
        self.partition(&[vec![id], others])
    }

    /// Cuts the runner's clients from node `id`, both ways.
    pub fn cut_clients(&mut self, id: u64) -> NetResult<()> {
        self.check(id)?;
        if !self.namespaces {
            self.ingress[&id].set_source(0, Dir::Both, Mode::Blackhole);
            return Ok(());
        }
        let r = self.rules.get_mut(&id).ok_or(NetError::NoSlot(id))?;
        r.fin.push(format!("ip saddr {CLIENT_IP} counter drop"));
        r.fout.push(format!("ip daddr {CLIENT_IP} counter drop"));
        self.apply(id)
    }

    /// Drops `percent`% of the packets node `id` sends or receives (not loopback).
    pub fn loss_node(&mut self, id: u64, percent: u8) -> NetResult<()> {
        self.check(id)?;
        if !self.namespaces {
            return Err(NetError::Unsupported("packet loss needs namespaces".into()));
        }
        let p = percent.min(100);
        let r = self.rules.get_mut(&id).ok_or(NetError::NoSlot(id))?;
        r.fin
            .push(format!("numgen random mod 100 < {p} counter drop"));
        r.fout
            .push(format!("numgen random mod 100 < {p} counter drop"));
        self.apply(id)
    }

    /// Drops `percent`% of the packets node `from` sends to node `to`.
    pub fn loss_link(&mut self, from: u64, to: u64, percent: u8) -> NetResult<()> {
        self.check(from)?;
        self.check(to)?;
        if !self.namespaces {
            return Err(NetError::Unsupported("packet loss needs namespaces".into()));
        }
        let p = percent.min(100);
        let r = self.rules.get_mut(&from).ok_or(NetError::NoSlot(from))?;
        r.fout
            .extend(link_rules(to, &format!("numgen random mod 100 < {p} ")));
        self.apply(from)
    }

    /// Delays every chunk node `from` sends to node `to` by `base ± jitter` (proxies).
    pub fn delay_link(
        &mut self,
        from: u64,
        to: u64,
        base: Duration,
        jitter: Duration,
    ) -> NetResult<()> {
        self.set_link_mode(from, to, Mode::Delay { base, jitter })
    }

    /// Holds everything node `from` sends to node `to` in the proxies (a blackhole: the
    /// connection stays open, nothing arrives).
    pub fn blackhole_link(&mut self, from: u64, to: u64) -> NetResult<()> {
        self.set_link_mode(from, to, Mode::Blackhole)
    }

    /// Closes the open connections between two nodes (both directions of opening).
    pub fn close_link(&mut self, a: u64, b: u64) -> NetResult<()> {
        self.check(a)?;
        self.check(b)?;
        if self.namespaces {
            for key in [(a, b), (b, a)] {
                if let Some(p) = self.peer.get(&key) {
                    p.close_all();
                }
            }
            if !self.peer_proxies {
                return Err(NetError::Unsupported("link proxies are off".into()));
            }
        } else {
            self.ingress[&b].close_source(a);
            self.ingress[&a].close_source(b);
        }
        Ok(())
    }

    /// Sets the mode of the client link to node `id` (see [`Net::client_proxy_addr`]).
    pub fn client_link(&mut self, id: u64, dir: Dir, mode: Mode) -> NetResult<()> {
        self.check(id)?;
        let p = &self.ingress[&id];
        if self.namespaces {
            p.set(dir, mode);
        } else {
            p.set_source(0, dir, mode);
        }
        Ok(())
    }

    /// Removes every fault: flushes the filter chains, sets every proxy to pass.
    pub fn heal(&mut self) -> NetResult<()> {
        let mut first_err = None;
        let ids: Vec<u64> = self.rules.keys().copied().collect();
        for id in ids {
            if let Some(r) = self.rules.get_mut(&id) {
                *r = Rules::default();
            }
            if let Err(e) = self.apply(id) {
                first_err.get_or_insert(e);
            }
        }
        for p in self.peer.values().chain(self.ingress.values()) {
            p.heal();
        }
        first_err.map_or(Ok(()), Err)
    }
}

/// Rules in node x's `fout` that drop what x sends to node `to`, on connections x opened
/// (original direction, original destination `to`, before any dnat) and on connections
/// `to` opened (reply direction; `to` connects from its own address, or from its proxy
/// source address when peer links are proxied). `extra` goes before the verdict.
fn link_rules(to: u64, extra: &str) -> Vec<String> {
    vec![
        format!(
            "ct direction original ct original ip daddr {} {extra}counter drop",
            node_ip(to)
        ),
        format!(
            "ct direction reply ct original ip saddr {{ {}, {} }} {extra}counter drop",
            node_ip(to),
            proxy_src_ip(to)
        ),
    ]
}

/// Node `id`'s address in namespace mode.
pub fn node_ip(id: u64) -> Ipv4Addr {
    Ipv4Addr::new(10, 213, 0, 10 + id as u8)
}

/// The address node `id`'s peer-link proxies connect from, in the client namespace.
pub fn proxy_src_ip(id: u64) -> Ipv4Addr {
    Ipv4Addr::new(10, 213, 0, 100 + id as u8)
}

impl Drop for Net {
    fn drop(&mut self) {
        self.peer.clear();
        self.ingress.clear();
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
        for ns in self.created.iter().rev() {
            let _ = ip(&["netns", "del", ns]);
        }
        self.created.clear();
    }
}

/// Why namespace mode cannot be used here, or `None` when it can.
fn namespace_blocker() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root".into());
    }
    for tool in ["ip", "nft"] {
        if !on_path(tool) {
            return Some(format!("`{tool}` not found (run chaos/setup.sh)"));
        }
    }
    None
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

/// Deletes namespaces named `lcx-<pid>-…` whose creating process is gone (a run that was
/// killed before its drop could run), after killing the `licstored` processes that run inside
/// them (that run's nodes, orphaned with it). Only this module's prefix, only dead creators,
/// only processes whose executable is a `licstored`.
pub fn sweep_orphans() -> Vec<String> {
    let mut removed = Vec::new();
    for name in list_netns(NS_PREFIX) {
        let pid = name[NS_PREFIX.len()..]
            .split('-')
            .next()
            .and_then(|p| p.parse::<u32>().ok());
        let Some(pid) = pid else { continue };
        if PathBuf::from(format!("/proc/{pid}")).exists() {
            continue;
        }
        kill_orphaned_nodes(&name);
        if ip(&["netns", "del", &name]).is_ok() {
            removed.push(name);
        }
    }
    removed
}

/// SIGKILLs the `licstored` processes inside namespace `name` (see [`sweep_orphans`]).
fn kill_orphaned_nodes(name: &str) {
    let Ok(pids) = run_cmd(Command::new("ip").args(["netns", "pids", name]), None) else {
        return;
    };
    for pid in pids
        .split_whitespace()
        .filter_map(|p| p.parse::<i32>().ok())
    {
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
        let is_node = exe
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("licstored"));
        if is_node {
            // SAFETY: kill(2) has no memory preconditions; the pid was just read from the
            // namespace and names a licstored executable.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// Network namespaces whose name starts with `prefix`.
pub fn list_netns(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

fn ip(args: &[&str]) -> NetResult<()> {
    run_cmd(Command::new("ip").args(args), None).map(drop)
}

/// Runs a command with optional stdin, bounded by [`CMD_WAIT`]; its stdout on success.
pub(crate) fn run_cmd(cmd: &mut Command, stdin: Option<&str>) -> NetResult<String> {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| NetError::Failed(format!("{what}: {e}")))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .map_err(|e| NetError::Failed(format!("{what}: stdin: {e}")))?;
    }
    let deadline = Instant::now() + CMD_WAIT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(NetError::Failed(format!("{what}: timed out")));
            }
            Err(e) => return Err(NetError::Failed(format!("{what}: {e}"))),
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| NetError::Failed(format!("{what}: {e}")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(NetError::Failed(format!(
            "{what}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// A free TCP port on 127.0.0.1 (fallback).
fn free_port() -> NetResult<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| NetError::Failed(format!("free port: {e}")))
}

/// Fallback: which registered node owns the socket at `peer` that is connected to the
/// proxy; 0 when none does (a client). Reads `/proc/net/tcp` for the socket's inode, then
/// the registered pids' descriptors.
fn classify(peer: SocketAddr, registry: &PidRegistry) -> u64 {
    let Some(inode) = socket_inode(peer) else {
        return 0;
    };
    let needle = format!("socket:[{inode}]");
    for (pid, node) in registry.snapshot() {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.take(100_000).flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == needle.as_str()) {
                return node;
            }
        }
    }
    0
}

/// The inode of the IPv4 TCP socket whose local address is `local`.
fn socket_inode(local: SocketAddr) -> Option<u64> {
    let SocketAddr::V4(v4) = local else {
        return None;
    };
    let want = format!(
        "{:08X}:{:04X}",
        u32::from_le_bytes(v4.ip().octets()),
        v4.port()
    );
    let text = std::fs::read_to_string("/proc/net/tcp").ok()?;
    text.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.len() > 9 && f[1] == want)
            .then(|| f[9].parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(node_ip(1).to_string(), "10.213.0.11");
        assert_eq!(proxy_src_ip(3).to_string(), "10.213.0.103");
        let r = link_rules(2, "");
        assert!(r[0].contains("daddr 10.213.0.12 counter drop"), "{r:?}");
        assert!(r[1].contains("{ 10.213.0.12, 10.213.0.102 }"), "{r:?}");
    }

    #[test]
    fn inode_of_a_loopback_socket() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let inode = socket_inode(c.local_addr().unwrap());
        assert!(inode.is_some_and(|i| i > 0), "{inode:?}");
    }
}
