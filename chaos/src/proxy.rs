//! A userspace TCP proxy for one directed link, switchable at run time.
//!
//! Each [`Proxy`] listens on one address and forwards every accepted connection to one
//! upstream address. What it does to the bytes is a [`Mode`] per direction:
//! - [`Mode::Pass`]: forward as read;
//! - [`Mode::Delay`]: hold each chunk read for `base ± jitter` (uniform) before writing it;
//!   chunks stay in byte order (a chunk never overtakes the one before it, so a short delay
//!   after a long one waits for the long one);
//! - [`Mode::Blackhole`]: stop forwarding and stop reading, so the sender's socket buffers
//!   fill and it sees a silent peer, as behind a dropped-packet partition. The connection
//!   stays open; when the mode changes back, held bytes flow on.
//!
//! [`Proxy::close_all`] closes every open connection (both sockets) at once, like a reset
//! link; new connections are accepted as usual.
//!
//! "Up" is the direction from the connecting side to the upstream (requests), "down" the
//! replies. Modes can be set per source: a [`Classifier`] names the source of each accepted
//! connection (in the loopback fallback, which node opened it), and
//! [`Proxy::set_source`] sets the mode of that source's connections only.
//!
//! All proxies of a run live on one tokio runtime (the one [`crate::net::Net`] owns, whose
//! threads sit in the client network namespace when namespaces are used); sockets are created
//! on that runtime's threads so they belong to its namespace.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// What a proxy does to the bytes of one direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Forward as read.
    Pass,
    /// Hold each chunk `base ± jitter` (uniform, never below zero), keeping byte order.
    Delay { base: Duration, jitter: Duration },
    /// Hold everything: read nothing, write nothing, keep the connection open.
    Blackhole,
}

/// Which direction of a connection a mode applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dir {
    /// From the connecting side to the upstream.
    Up,
    /// From the upstream back to the connecting side.
    Down,
    /// Both.
    Both,
}

impl Dir {
    fn up(self) -> bool {
        matches!(self, Dir::Up | Dir::Both)
    }
    fn down(self) -> bool {
        matches!(self, Dir::Down | Dir::Both)
    }
}

/// Names the source of an accepted connection from its peer address; 0 means unknown.
pub type Classifier = Arc<dyn Fn(SocketAddr) -> u64 + Send + Sync>;

/// How a proxy is set up.
#[derive(Clone)]
pub struct ProxyOptions {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Where accepted connections are forwarded.
    pub upstream: SocketAddr,
    /// Local address the upstream connection is bound to (port chosen by the kernel);
    /// `None`: the kernel picks.
    pub bind_src: Option<IpAddr>,
    /// Names the source of each accepted connection; `None`: every source is 0.
    pub classifier: Option<Classifier>,
    /// Seed of the jitter of delays.
    pub seed: u64,
}

/// Counters of a proxy since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyStats {
    pub accepted: u64,
    pub open: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
}

/// The modes of the connections of one source.
struct Link {
    up: watch::Sender<Mode>,
    down: watch::Sender<Mode>,
    conns: Mutex<Vec<AbortHandle>>,
}

impl Link {
    fn new(up: Mode, down: Mode) -> Link {
        Link {
            up: watch::channel(up).0,
            down: watch::channel(down).0,
            conns: Mutex::new(Vec::new()),
        }
    }

    fn set(&self, dir: Dir, mode: Mode) {
        if dir.up() {
            self.up.send_replace(mode);
        }
        if dir.down() {
            self.down.send_replace(mode);
        }
    }

    fn close_all(&self) {
        let mut conns = lock(&self.conns);
        for c in conns.drain(..) {
            c.abort();
        }
    }
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    open: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
}

struct Shared {
    /// Modes new sources start with: the last set with [`Proxy::set`].
    default: Mutex<(Mode, Mode)>,
    links: Mutex<BTreeMap<u64, Arc<Link>>>,
    counters: Counters,
}

impl Shared {
    fn link(&self, source: u64) -> Arc<Link> {
        let mut links = lock(&self.links);
        links
            .entry(source)
            .or_insert_with(|| {
                let (up, down) = *lock(&self.default);
                Arc::new(Link::new(up, down))
            })
            .clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running proxy; stops (and closes its connections) when dropped.
pub struct Proxy {
    listen: SocketAddr,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    accept_task: AbortHandle,
}

/// Longest wait for the listener to be bound on the runtime.
const BIND_WAIT: Duration = Duration::from_secs(5);
/// Chunks held per direction before the reader waits.
const QUEUE_CHUNKS: usize = 256;
/// Bytes per read.
const CHUNK_BYTES: usize = 16 * 1024;
/// Longest wait for an upstream connection.
const CONNECT_WAIT: Duration = Duration::from_secs(3);

impl Proxy {
    /// Binds the listener on `rt` (so on that runtime's network namespace) and starts
    /// accepting. Every direction starts in [`Mode::Pass`].
    pub fn start(rt: &Handle, opts: ProxyOptions) -> std::io::Result<Proxy> {
        let (tx, rx) = std::sync::mpsc::channel();
        let listen = opts.listen;
        rt.spawn(async move {
            let _ = tx.send(TcpListener::bind(listen).await);
        });
        let listener = rx
            .recv_timeout(BIND_WAIT)
            .map_err(|_| std::io::Error::other("proxy listener not bound in time"))??;
        let listen = listener.local_addr()?;
        let shared = Arc::new(Shared {
            default: Mutex::new((Mode::Pass, Mode::Pass)),
            links: Mutex::new(BTreeMap::new()),
            counters: Counters::default(),
        });
        let accept_task = rt
            .spawn(accept_loop(listener, opts.clone(), shared.clone()))
            .abort_handle();
        Ok(Proxy {
            listen,
            upstream: opts.upstream,
            shared,
            accept_task,
        })
    }

    /// The address clients connect to.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    /// Where connections are forwarded.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// Sets the mode of `dir` for every source, now and for sources seen later.
    pub fn set(&self, dir: Dir, mode: Mode) {
        {
            let mut d = lock(&self.shared.default);
            if dir.up() {
                d.0 = mode;
            }
            if dir.down() {
                d.1 = mode;
            }
        }
        for link in lock(&self.shared.links).values() {
            link.set(dir, mode);
        }
    }

    /// Sets the mode of `dir` for the connections of one source (see [`Classifier`]).
    pub fn set_source(&self, source: u64, dir: Dir, mode: Mode) {
        self.shared.link(source).set(dir, mode);
    }

    /// Both directions back to [`Mode::Pass`] for every source.
    pub fn heal(&self) {
        self.set(Dir::Both, Mode::Pass);
    }

    /// The modes (up, down) of one source's connections.
    pub fn mode_of(&self, source: u64) -> (Mode, Mode) {
        let link = self.shared.link(source);
        let up = *link.up.borrow();
        let down = *link.down.borrow();
        (up, down)
    }

    /// Closes every open connection.
    pub fn close_all(&self) {
        for link in lock(&self.shared.links).values() {
            link.close_all();
        }
    }

    /// Closes the open connections of one source.
    pub fn close_source(&self, source: u64) {
        self.shared.link(source).close_all();
    }

    pub fn stats(&self) -> ProxyStats {
        let c = &self.shared.counters;
        ProxyStats {
            accepted: c.accepted.load(Ordering::Relaxed),
            open: c.open.load(Ordering::Relaxed),
            bytes_up: c.bytes_up.load(Ordering::Relaxed),
            bytes_down: c.bytes_down.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept_task.abort();
        self.close_all();
    }
}

async fn accept_loop(listener: TcpListener, opts: ProxyOptions, shared: Arc<Shared>) {
    let mut serial: u64 = 0;
    loop {
        let Ok((client, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        serial += 1;
        shared.counters.accepted.fetch_add(1, Ordering::Relaxed);
        let source = opts.classifier.as_ref().map_or(0, |c| c(peer));
        let link = shared.link(source);
        let seed = opts.seed ^ serial.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let task = tokio::spawn(connection(
            client,
            opts.upstream,
            opts.bind_src,
            link.up.subscribe(),
            link.down.subscribe(),
            shared.clone(),
            seed,
        ));
        let mut conns = lock(&link.conns);
        conns.retain(|c| !c.is_finished());
        conns.push(task.abort_handle());
    }
}

/// Decrements the open-connection count when the connection task ends or is aborted.
struct OpenGuard(Arc<Shared>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.counters.open.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn connection(
    client: TcpStream,
    upstream: SocketAddr,
    bind_src: Option<IpAddr>,
    mut up_mode: watch::Receiver<Mode>,
    down_mode: watch::Receiver<Mode>,
    shared: Arc<Shared>,
    seed: u64,
) {
    shared.counters.open.fetch_add(1, Ordering::Relaxed);
    let _guard = OpenGuard(shared.clone());
    // A blackholed link does not even reach the upstream until it heals.
    if wait_not_blackhole(&mut up_mode).await.is_err() {
        return;
    }
    let Ok(Ok(server)) = tokio::time::timeout(CONNECT_WAIT, connect(upstream, bind_src)).await
    else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_rd, client_wr) = client.into_split();
    let (server_rd, server_wr) = server.into_split();
    let up = pump(
        client_rd,
        server_wr,
        up_mode,
        ChaCha8Rng::seed_from_u64(seed),
        &shared.counters.bytes_up,
    );
    let down = pump(
        server_rd,
        client_wr,
        down_mode,
        ChaCha8Rng::seed_from_u64(seed ^ 1),
        &shared.counters.bytes_down,
    );
    // The first error (a reset either side) ends both directions; a clean end of one
    // direction is passed on as a half-close and the other direction goes on.
    let _ = tokio::try_join!(up, down);
}

async fn connect(upstream: SocketAddr, bind_src: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let socket = match upstream {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(ip) = bind_src {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    socket.connect(upstream).await
}

/// Returns once the mode is not [`Mode::Blackhole`]; `Err` when the proxy is gone.
async fn wait_not_blackhole(mode: &mut watch::Receiver<Mode>) -> Result<(), ()> {
    while *mode.borrow_and_update() == Mode::Blackhole {
        mode.changed().await.map_err(|_| ())?;
    }
    Ok(())
}

fn delay_of(mode: Mode, rng: &mut ChaCha8Rng) -> Duration {
    match mode {
        Mode::Delay { base, jitter } if !jitter.is_zero() => {
            let j = jitter.as_nanos().min(u64::MAX as u128) as i128;
            let offset = rng.random_range(-j..=j);
            let total = (base.as_nanos() as i128 + offset).max(0);
            Duration::from_nanos(total.min(u64::MAX as i128) as u64)
        }
        Mode::Delay { base, .. } => base,
        Mode::Pass | Mode::Blackhole => Duration::ZERO,
    }
}

/// One direction: a reader that stamps each chunk with its delivery time, and a writer that
/// writes chunks in order no earlier than their times. `None` in the queue is end of stream.
async fn pump(
    mut rd: OwnedReadHalf,
    mut wr: OwnedWriteHalf,
    mode: watch::Receiver<Mode>,
    mut rng: ChaCha8Rng,
    bytes: &AtomicU64,
) -> std::io::Result<()> {
    let (tx, mut rx) = mpsc::channel::<Option<(Instant, Vec<u8>)>>(QUEUE_CHUNKS);
    let mut read_mode = mode.clone();
    let reader = async move {
        let mut buf = vec![0u8; CHUNK_BYTES];
        loop {
            if wait_not_blackhole(&mut read_mode).await.is_err() {
                return Ok(());
            }
            let n = tokio::select! {
                r = rd.read(&mut buf) => r?,
                // A mode change interrupts the read (reads are cancel-safe) so a blackhole
                // takes effect at once.
                changed = read_mode.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    continue;
                }
            };
            if n == 0 {
                let _ = tx.send(None).await;
                return Ok(());
            }
            let current = *read_mode.borrow();
            let at = Instant::now() + delay_of(current, &mut rng);
            if tx.send(Some((at, buf[..n].to_vec()))).await.is_err() {
                return Ok(());
            }
        }
    };
    let mut write_mode = mode;
    let writer = async move {
        while let Some(item) = rx.recv().await {
            let Some((at, chunk)) = item else {
                let _ = wr.shutdown().await;
                return Ok::<(), std::io::Error>(());
            };
            tokio::time::sleep_until(at).await;
            if wait_not_blackhole(&mut write_mode).await.is_err() {
                return Ok(());
            }
            wr.write_all(&chunk).await?;
            bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        Ok(())
    };
    tokio::try_join!(reader, writer).map(|_| ())
}
