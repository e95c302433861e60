//! Runs a workload: `--clients` tasks, each with one call outstanding, in a closed loop or at
//! a fixed arrival rate. In the open loop every call has an intended start on a fixed
//! schedule and its latency is measured from that start, so a server stall delays the calls
//! queued behind it and shows in the figures instead of lowering the rate unnoticed
//! (coordinated omission).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::task::JoinHandle;

use crate::args::{LoadArgs, RunArgs, Workload};
use crate::dataset::{self, Key, Prepared};
use crate::keys::Chooser;
use crate::results::{histogram, RunResult};
use crate::target::{Conn, OpError, StatusSlot, Target};

/// How long after the end of the window an open-loop client that fell behind its schedule
/// goes on sending. An overloaded system would otherwise stretch a run to the offered calls
/// divided by its capacity.
const LATE_GRACE: Duration = Duration::from_secs(1);
/// The highest offered rate accepted, in calls per second.
const MAX_RATE: f64 = 10_000_000.0;
/// The largest dataset the keys are regenerated for.
const MAX_RECORDS: u64 = 100_000_000;

/// What every client of a run shares.
struct Plan {
    args: RunArgs,
    keys: Vec<Key>,
    chooser: Chooser,
    /// Calls are recorded from here on (after the warm-up).
    measure_from: Instant,
    /// No call starts after this (duration mode).
    stop_at: Option<Instant>,
    /// Calls started so far (total mode).
    started: AtomicU64,
    /// Pre-generated import batches, taken in order.
    batches: std::sync::Mutex<Vec<Vec<Prepared>>>,
}

/// What one client measured.
struct Tally {
    latency_us: Histogram<u64>,
    ok: u64,
    errors: BTreeMap<String, u64>,
    first_start: Option<Instant>,
    last_done: Option<Instant>,
}

/// `licbench run`.
pub async fn run_workload(a: &RunArgs) -> anyhow::Result<()> {
    anyhow::ensure!(a.clients > 0, "--clients: must be at least 1");
    anyhow::ensure!(a.batch > 0, "--batch: must be at least 1");
    check_args(a)?;
    // Checked before connecting: a wrong PID fails at once.
    crate::cpu::cpu_time(&a.server_pids)?;
    let target = Target::connect(&a.target).await?;
    let keys = load_keys(a).await?;
    let slots = match a.workload {
        Workload::Status | Workload::CityDay => prepare_slots(&target, &keys, a).await?,
        _ => Vec::new(),
    };
    let batches = import_batches(a).await?;
    let chooser = Chooser::new(a.key_dist, keys.len() as u64, a.zipf_s);
    let start = Instant::now();
    let warmup = match a.total {
        Some(_) => Duration::ZERO,
        None => Duration::from_secs_f64(a.warmup_secs.max(0.0)),
    };
    let measure_from = start + warmup;
    let plan = Arc::new(Plan {
        args: a.clone(),
        keys,
        chooser,
        measure_from,
        stop_at: match a.total {
            Some(_) => None,
            None => Some(measure_from + Duration::from_secs_f64(a.duration_secs.max(0.0))),
        },
        started: AtomicU64::new(0),
        batches: std::sync::Mutex::new(batches),
    });
    let mut own_slots: Vec<Vec<StatusSlot>> = vec![Vec::new(); a.clients];
    for (j, slot) in slots.into_iter().enumerate() {
        own_slots[j % a.clients].push(slot);
    }
    let cpu_at_start = cpu_when(a.server_pids.clone(), measure_from);
    let mut tasks = Vec::with_capacity(a.clients);
    for (i, slots) in own_slots.into_iter().enumerate() {
        let plan = plan.clone();
        let conn = target.conn(i);
        tasks.push(tokio::spawn(client(i, conn, plan, slots, start)));
    }
    let mut tallies = Vec::with_capacity(tasks.len());
    for t in tasks {
        tallies.push(t.await.context("client task")??);
    }
    let cpu_at_end = cpu_when(a.server_pids.clone(), Instant::now());
    let mut result = merge(a, tallies, measure_from);
    if let (Some(from), Some(to)) = (cpu_at_start.await??, cpu_at_end.await??) {
        let items = result.ok * result.items_per_call as u64;
        result.server_cpu_us_per_item = crate::cpu::us_per_item(to.saturating_sub(from), items);
    }
    println!("{}", result.summary());
    if let Some(path) = &a.json_out {
        result
            .append_to(path)
            .with_context(|| format!("--json-out {}", path.display()))?;
    }
    anyhow::ensure!(
        result.ok > 0,
        "no call succeeded ({} failed): is the system up and loaded with --records {}?",
        result.failed(),
        a.data.records
    );
    Ok(())
}

/// The servers' CPU time read once `at` comes; `None` without PIDs.
fn cpu_when(pids: Vec<u32>, at: Instant) -> JoinHandle<anyhow::Result<Option<Duration>>> {
    tokio::spawn(async move {
        if pids.is_empty() {
            return Ok(None);
        }
        tokio::time::sleep_until(at.into()).await;
        crate::cpu::cpu_time(&pids).map(Some)
    })
}

/// The checks that need no server, done before connecting.
fn check_args(a: &RunArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        a.rate >= 0.0 && a.rate <= MAX_RATE,
        "--rate: must be 0 (closed loop) or up to {MAX_RATE} calls/s"
    );
    anyhow::ensure!(
        a.total.is_some() || a.duration_secs > 0.0,
        "--duration-secs: must be positive"
    );
    anyhow::ensure!(a.target.timeout_ms > 0, "--timeout-ms: must be positive");
    anyhow::ensure!(
        a.zipf_s > 0.0 && a.zipf_s.is_finite(),
        "--zipf-s: must be positive"
    );
    anyhow::ensure!(
        a.data.records <= MAX_RECORDS,
        "--records: at most {MAX_RECORDS}"
    );
    anyhow::ensure!(
        a.workload != Workload::Import || a.total.is_some(),
        "--workload import needs --total (calls of --batch records, generated before the run)"
    );
    Ok(())
}

async fn load_keys(a: &RunArgs) -> anyhow::Result<Vec<Key>> {
    if !matches!(
        a.workload,
        Workload::Verify | Workload::VerifyBatch | Workload::Status | Workload::CityDay
    ) {
        return Ok(Vec::new());
    }
    anyhow::ensure!(
        a.data.records > 0,
        "--records: this workload reads loaded keys"
    );
    let (seed, n) = (a.data.seed, a.data.records);
    tokio::task::spawn_blocking(move || dataset::keys(seed, n)).await?
}

/// Import batches are generated before the clock starts, so generating records costs the
/// measured window nothing; that needs a known number of calls.
async fn import_batches(a: &RunArgs) -> anyhow::Result<Vec<Vec<Prepared>>> {
    if a.workload != Workload::Import {
        return Ok(Vec::new());
    }
    let calls = a.total.context("--workload import needs --total")?;
    let (seed, run_id, batch) = (a.data.seed, a.run_id, a.batch);
    tokio::task::spawn_blocking(move || {
        let mut fresh = dataset::fresh(seed, run_id)?;
        let mut out = Vec::with_capacity(calls as usize);
        for _ in 0..calls {
            out.push(fresh.by_ref().take(batch).collect());
        }
        out.reverse();
        Ok(out)
    })
    .await?
}

/// Finds `--status-keys` licenses that are valid or suspended now, spread over the dataset.
async fn prepare_slots(
    target: &Target,
    keys: &[Key],
    a: &RunArgs,
) -> anyhow::Result<Vec<StatusSlot>> {
    let mut conn = target.conn(0);
    let mut out = Vec::new();
    let step = (keys.len() / a.status_keys.max(1)).max(1);
    let mut i = 0;
    while out.len() < a.status_keys && i < keys.len() {
        let slot = conn
            .status_slot(&keys[i])
            .await
            .map_err(|e| anyhow::anyhow!("reading {} for status: {}", keys[i].holder_id, e.0))?;
        out.extend(slot);
        i += step;
        if i >= keys.len() && step > 1 && out.len() < a.status_keys {
            break;
        }
    }
    anyhow::ensure!(
        !out.is_empty(),
        "no valid or suspended license among the loaded keys: is the dataset loaded?"
    );
    Ok(out)
}

/// One client: calls until the plan says stop.
async fn client(
    i: usize,
    mut conn: Conn,
    plan: Arc<Plan>,
    mut slots: Vec<StatusSlot>,
    start: Instant,
) -> anyhow::Result<Tally> {
    let a = &plan.args;
    let mut rng = ChaCha8Rng::seed_from_u64(a.data.seed ^ (i as u64).wrapping_mul(0x9E37_79B9));
    let mut fresh = match a.workload {
        Workload::Issue | Workload::CityDay => Some(dataset::fresh(
            a.data.seed,
            a.run_id.wrapping_mul(1_000_003).wrapping_add(i as u64),
        )?),
        _ => None,
    };
    let interval = (a.rate > 0.0).then(|| Duration::from_secs_f64(a.clients as f64 / a.rate));
    let mut next =
        start + interval.map_or(Duration::ZERO, |d| d.mul_f64(i as f64 / a.clients as f64));
    let mut tally = Tally {
        latency_us: histogram(),
        ok: 0,
        errors: BTreeMap::new(),
        first_start: None,
        last_done: None,
    };
    let mut slot_at = 0;
    loop {
        let intended = match interval {
            Some(d) => {
                tokio::time::sleep_until(next.into()).await;
                let t = next;
                next += d;
                t
            }
            None => Instant::now(),
        };
        if plan.stop_at.is_some_and(|stop| intended >= stop) {
            break;
        }
        if let (Some(every), Some(stop)) = (interval, plan.stop_at) {
            if Instant::now() > stop + LATE_GRACE {
                // Too far behind the schedule: the calls still due are counted, not sent.
                let due = stop.duration_since(intended).as_secs_f64() / every.as_secs_f64();
                let due = due.ceil().min(u64::MAX as f64 / 2.0) as u64;
                *tally.errors.entry("unsent".into()).or_default() += due;
                break;
            }
        }
        if let Some(total) = a.total {
            if plan.started.fetch_add(1, Ordering::Relaxed) >= total {
                break;
            }
        }
        let outcome = match a.workload {
            Workload::Verify => verify(&mut conn, &plan, &mut rng).await,
            Workload::VerifyBatch => {
                let picked: Vec<&Key> = (0..a.batch)
                    .map(|_| &plan.keys[plan.chooser.next(&mut rng)])
                    .collect();
                conn.verify_batch(&picked, a.consistency, a.max_staleness_ms)
                    .await
            }
            Workload::Issue => issue(&mut conn, fresh.as_mut()).await,
            Workload::Status => toggle(&mut conn, &mut slots, &mut slot_at).await,
            Workload::Import => {
                let batch = plan.batches.lock().expect("batches").pop();
                match batch {
                    Some(b) => conn.import(&b).await,
                    None => break,
                }
            }
            Workload::Load => anyhow::bail!("--workload load: use `licbench load`"),
            Workload::CityDay => match rng.random_range(0..100) {
                0..95 => verify(&mut conn, &plan, &mut rng).await,
                95..99 => toggle(&mut conn, &mut slots, &mut slot_at).await,
                _ => issue(&mut conn, fresh.as_mut()).await,
            },
        };
        let done = Instant::now();
        if intended < plan.measure_from {
            continue;
        }
        tally.first_start.get_or_insert(intended);
        tally.last_done = Some(done);
        match outcome {
            Ok(()) => {
                let us = done.duration_since(intended).as_micros().max(1) as u64;
                tally.latency_us.saturating_record(us);
                tally.ok += 1;
            }
            Err(OpError(code)) => *tally.errors.entry(code).or_default() += 1,
        }
    }
    Ok(tally)
}

async fn verify(conn: &mut Conn, plan: &Plan, rng: &mut ChaCha8Rng) -> Result<(), OpError> {
    let key = &plan.keys[plan.chooser.next(rng)];
    let a = &plan.args;
    conn.verify(key, a.consistency, a.max_staleness_ms).await
}

async fn issue(
    conn: &mut Conn,
    fresh: Option<&mut impl Iterator<Item = Prepared>>,
) -> Result<(), OpError> {
    let record = fresh
        .and_then(|f| f.next())
        .ok_or(OpError("no-record".into()))?;
    conn.issue(&record).await
}

async fn toggle(conn: &mut Conn, slots: &mut [StatusSlot], at: &mut usize) -> Result<(), OpError> {
    if slots.is_empty() {
        return Err(OpError("no-slot".into()));
    }
    *at = (*at + 1) % slots.len();
    conn.toggle_status(&mut slots[*at]).await
}

fn merge(a: &RunArgs, tallies: Vec<Tally>, measure_from: Instant) -> RunResult {
    let mut h = histogram();
    let mut errors = BTreeMap::new();
    let mut ok = 0;
    let mut last = measure_from;
    let mut first = None::<Instant>;
    for t in tallies {
        h.add(&t.latency_us).expect("same histogram bounds");
        ok += t.ok;
        for (code, n) in t.errors {
            *errors.entry(code).or_default() += n;
        }
        if let Some(d) = t.last_done {
            last = last.max(d);
        }
        if let Some(s) = t.first_start {
            first = Some(first.map_or(s, |f: Instant| f.min(s)));
        }
    }
    let elapsed = last
        .duration_since(first.unwrap_or(measure_from))
        .as_secs_f64()
        .max(1e-9);
    let items = match a.workload {
        Workload::VerifyBatch | Workload::Import => a.batch,
        _ => 1,
    };
    let mut r = RunResult {
        system: a.target.system,
        label: a.label.clone(),
        workload: a.workload,
        clients: a.clients,
        conns: a.target.conns,
        consistency: a.consistency,
        key_dist: a.key_dist,
        records: a.data.records,
        rate: a.rate,
        items_per_call: items,
        ok,
        errors,
        elapsed_secs: elapsed,
        calls_per_sec: ok as f64 / elapsed,
        items_per_sec: (ok * items as u64) as f64 / elapsed,
        ..RunResult::empty()
    };
    r.set_latency(&h);
    r
}

/// `licbench load`: the dataset through the bulk path, generated while it is sent.
pub async fn load(a: &LoadArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        a.streams > 0 && a.batch > 0,
        "--streams and --batch: at least 1"
    );
    let target = Target::connect(&a.target).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<Prepared>>(a.streams * 2);
    let (seed, n, batch) = (a.data.seed, a.data.records, a.batch);
    let producer = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let mut records = dataset::records(seed)?.take(n as usize);
        loop {
            let chunk: Vec<Prepared> = records.by_ref().take(batch).collect::<Result<_, _>>()?;
            if chunk.is_empty() || tx.blocking_send(chunk).is_err() {
                return Ok(());
            }
        }
    });
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..a.streams {
        let (rx, mut conn) = (rx.clone(), target.conn(i));
        tasks.push(tokio::spawn(async move {
            let mut tally = (histogram(), 0u64, BTreeMap::<String, u64>::new());
            loop {
                let Some(chunk) = rx.lock().await.recv().await else {
                    return tally;
                };
                let t = Instant::now();
                match conn.import(&chunk).await {
                    Ok(()) => {
                        tally
                            .0
                            .saturating_record(t.elapsed().as_micros().max(1) as u64);
                        tally.1 += chunk.len() as u64;
                    }
                    Err(OpError(code)) => *tally.2.entry(code).or_default() += 1,
                }
            }
        }));
    }
    let mut h = histogram();
    let (mut loaded, mut errors) = (0u64, BTreeMap::new());
    for t in tasks {
        let (th, n, e) = t.await?;
        h.add(&th).expect("same histogram bounds");
        loaded += n;
        for (code, k) in e {
            *errors.entry(code).or_default() += k;
        }
    }
    producer.await??;
    let elapsed = start.elapsed().as_secs_f64();
    let mut r = RunResult {
        system: a.target.system,
        label: a.label.clone(),
        workload: Workload::Load,
        clients: a.streams,
        conns: a.target.conns,
        consistency: crate::args::Consistency::Linearizable,
        key_dist: crate::args::KeyDist::Uniform,
        records: 0,
        rate: 0.0,
        items_per_call: a.batch,
        ok: loaded / a.batch as u64,
        errors,
        elapsed_secs: elapsed,
        calls_per_sec: (loaded / a.batch as u64) as f64 / elapsed,
        items_per_sec: loaded as f64 / elapsed,
        ..RunResult::empty()
    };
    r.set_latency(&h);
    println!("loaded {loaded} of {n} records\n{}", r.summary());
    if let Some(path) = &a.json_out {
        r.append_to(path)?;
    }
    anyhow::ensure!(r.failed() == 0, "{} import calls failed", r.failed());
    Ok(())
}
