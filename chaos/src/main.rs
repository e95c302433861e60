//! `licchaos`: the one command that gives a verdict on licstore under faults.
//!
//! - `licchaos run --scenario NAME|FILE [--seed N] [--duration-s S] [--out DIR] [--keep]`:
//!   one run; prints every option the seed derives, writes `<out>/<scenario>-<seed>/` with
//!   `report.md`, `report.json`, `history.jsonl`, `final.json`, `watch.json` (and the node
//!   logs and data when the verdict is not PASS).
//! - `licchaos suite [--scenarios a,b,...] [--quick] [--seed N] [--duration-s S]`: runs the
//!   scenarios one after the other and writes `<out>/summary.md` and `summary.json`.
//! - `licchaos check HISTORY.jsonl [--final FINAL.json] [--watch WATCH.json]`: the checkers
//!   again on a saved history.
//! - `licchaos list`: the built-in scenarios.
//!
//! Exit code 0 only when every verdict is the expected one (PASS, or FAIL for a negative
//! control such as `negative-drop`); 1 otherwise, and 2 for usage errors.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use licstore_chaos::check::{Budget, Verdict};
use licstore_chaos::report::{self, SummaryRow};
use licstore_chaos::runner::{self, analysis, RunOptions};
use licstore_chaos::scenario::Scenario;
use licstore_chaos::workload::watch::WatchStream;
use licstore_chaos::workload::FinalRead;

/// Total length of each scenario with `suite --quick`.
const QUICK_TOTAL_S: u64 = 12;

#[derive(Parser)]
#[command(
    name = "licchaos",
    version,
    about = "Seeded fault injection against licstored, \
    with history checkers and a verdict. PASS means no violation observed, never proof."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one scenario with one seed.
    Run(RunArgs),
    /// Run several scenarios and write a summary.
    Suite(SuiteArgs),
    /// Re-run the checkers on a saved history.
    Check(CheckArgs),
    /// List the built-in scenarios.
    List,
}

#[derive(Args)]
struct Common {
    /// The seed every random choice derives from (default: random, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Total length of the before, during and after phases, in seconds.
    #[arg(long)]
    duration_s: Option<u64>,
    /// Where run directories go.
    #[arg(long, default_value = "target/chaos")]
    out: PathBuf,
    /// Keep node logs and data even when the verdict is PASS.
    #[arg(long)]
    keep: bool,
    /// Use loopback ports instead of network namespaces.
    #[arg(long)]
    loopback: bool,
    /// Run the nodes in plain text (`licstored --insecure`) instead of mutual TLS.
    #[arg(long)]
    insecure: bool,
    /// Use this licstored for every scenario (a scenario naming `faulty` still gets the
    /// faulty build).
    #[arg(long)]
    binary: Option<PathBuf>,
}

#[derive(Args)]
struct RunArgs {
    /// A built-in scenario name or a scenario file.
    #[arg(long)]
    scenario: String,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct SuiteArgs {
    /// Comma-separated scenario names or files (default: every built-in scenario).
    #[arg(long, value_delimiter = ',')]
    scenarios: Vec<String>,
    /// Short runs ({QUICK_TOTAL_S} s each) unless --duration-s says otherwise.
    #[arg(long)]
    quick: bool,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct CheckArgs {
    /// history.jsonl of a run.
    history: PathBuf,
    /// final.json of the same run (the final read); without it lost writes are not checked.
    #[arg(long = "final")]
    final_read: Option<PathBuf>,
    /// watch.json of the same run.
    #[arg(long)]
    watch: Option<PathBuf>,
    /// Wall-time budget of the linearizability search, in seconds.
    #[arg(long, default_value_t = 120)]
    time_limit_s: u64,
}

/// SIGINT/SIGTERM: the first asks the run to stop (nodes killed, namespaces removed, the
/// history kept); a second one exits at once.
extern "C" fn on_signal(_: libc::c_int) {
    if runner::interrupted() {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(130) };
    }
    runner::interrupt();
}

fn install_signal_handlers() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only touches an atomic or calls _exit.
        unsafe { libc::signal(sig, handler) };
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    install_signal_handlers();
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Suite(args) => suite(args),
        Command::Check(args) => check(args),
        Command::List => list(),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("licchaos: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A seed from the clock when none is given.
fn seed_or_random(seed: Option<u64>) -> u64 {
    seed.unwrap_or_else(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        now ^ u64::from(std::process::id()).rotate_left(32)
    })
}

/// The run options for one scenario, with the flags a replay needs.
fn options(
    scenario: Scenario,
    arg: &str,
    seed: u64,
    common: &Common,
    total_s: Option<u64>,
) -> RunOptions {
    let mut extra = Vec::new();
    let scenario = match total_s {
        Some(s) => {
            extra.push(format!("--duration-s {s}"));
            scenario.with_total_duration(s * 1000)
        }
        None => scenario,
    };
    if common.loopback {
        extra.push("--loopback".into());
    }
    let mut scenario = scenario;
    if common.insecure {
        extra.push("--insecure".into());
        scenario.cluster.tls = false;
    }
    if let Some(b) = &common.binary {
        extra.push(format!("--binary {}", b.display()));
    }
    let mut opts = RunOptions::new(scenario, seed, &common.out);
    opts.keep = common.keep;
    opts.namespaces = !common.loopback;
    if opts.scenario.server.binary != "faulty" {
        opts.binary.clone_from(&common.binary);
    }
    opts.replay = runner::replay_command(arg, seed, &extra);
    opts
}

fn run(args: RunArgs) -> anyhow::Result<bool> {
    let scenario = Scenario::find(&args.scenario)?;
    let seed = seed_or_random(args.common.seed);
    let opts = options(
        scenario,
        &args.scenario,
        seed,
        &args.common,
        args.common.duration_s,
    );
    let report = runner::run(&opts)?;
    println!("{}", report::render_run(&report));
    Ok(report.as_expected)
}

fn suite(args: SuiteArgs) -> anyhow::Result<bool> {
    let names: Vec<String> = if args.scenarios.is_empty() {
        Scenario::built_in()?.into_iter().map(|s| s.name).collect()
    } else {
        args.scenarios.clone()
    };
    let scenarios = names
        .iter()
        .map(|n| Scenario::find(n).map(|s| (n.clone(), s)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let seed = seed_or_random(args.common.seed);
    let total_s = args
        .common
        .duration_s
        .or(args.quick.then_some(QUICK_TOTAL_S));
    eprintln!("licchaos suite: {} scenarios, seed {seed}", scenarios.len());
    let mut rows = Vec::new();
    let mut timelines = Vec::new();
    for (arg, scenario) in scenarios {
        let opts = options(scenario, &arg, seed, &args.common, total_s);
        match runner::run(&opts) {
            Ok(r) => {
                timelines.push((r.scenario.name.clone(), report::timeline_lines(&r)));
                rows.push(SummaryRow::of(&r));
            }
            Err(e) => {
                eprintln!("licchaos: {}: {e:#}", opts.scenario.name);
                let row = SummaryRow::error(&opts.scenario, seed, opts.replay, format!("{e:#}"));
                rows.push(row);
            }
        }
        report::write_summary(&args.common.out, &rows, &timelines)?;
        if runner::interrupted() {
            eprintln!("licchaos suite: interrupted");
            break;
        }
    }
    let md = report::write_summary(&args.common.out, &rows, &timelines)?;
    println!("{}", report::render_summary(&rows, &timelines));
    eprintln!("licchaos suite: summary in {}", md.display());
    Ok(rows.iter().all(|r| r.as_expected))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    serde_json::from_str(&text).with_context(|| path.display().to_string())
}

fn check(args: CheckArgs) -> anyhow::Result<bool> {
    let file =
        std::fs::File::open(&args.history).with_context(|| args.history.display().to_string())?;
    let history = licstore_chaos::history::read_jsonl(std::io::BufReader::new(file))?;
    let finals = match &args.final_read {
        Some(p) => analysis::node_states(&read_json::<FinalRead>(p)?),
        None => Vec::new(),
    };
    let streams = match &args.watch {
        Some(p) => Some(analysis::watch_streams(&read_json::<Vec<WatchStream>>(p)?)),
        None => None,
    };
    let budget = Budget {
        time_limit: std::time::Duration::from_secs(args.time_limit_s),
        ..Budget::default()
    };
    let checks = analysis::run_checkers(&history, &finals, streams.as_deref(), &budget);
    print_checks(&history, &checks, args.final_read.is_some());
    Ok(checks.verdict == Verdict::Pass)
}

fn print_checks(history: &[licstore_chaos::history::Op], c: &analysis::Checks, finals: bool) {
    let l = &c.linear.summary;
    println!("ops: {}", history.len());
    println!(
        "linearizability: keys {} valid {} invalid {} unknown {} ({} ms)",
        l.keys_checked, l.valid, l.invalid, l.unknown, l.elapsed_ms
    );
    if !finals {
        println!("lost writes: not checked (no --final)");
    }
    let lost = &c.lost;
    println!(
        "lost writes {} {:?}, stale reads {}, phantom reads {}, divergent keys {}",
        lost.lost_writes.count,
        lost.lost_writes
            .examples
            .iter()
            .map(|w| w.op_id)
            .take(10)
            .collect::<Vec<_>>(),
        lost.stale_reads.count,
        lost.phantom_reads.count,
        lost.divergent_keys.count
    );
    if let Some(w) = &c.watch {
        println!("watch: {} events, {} violations", w.events, w.violations());
    }
    match &c.verdict {
        Verdict::Pass => println!("verdict: PASS (no violation observed; not a proof)"),
        Verdict::Fail { reasons } | Verdict::Unknown { reasons } => {
            println!("verdict: {}", c.verdict.label());
            for r in reasons {
                println!("  - {r}");
            }
        }
    }
}

fn list() -> anyhow::Result<bool> {
    for s in Scenario::built_in()? {
        let faults: Vec<&str> = s.nemesis.iter().map(|n| n.name()).collect();
        println!(
            "{:<18} expect {:<4} {} voters  {:<60} faults {faults:?}",
            s.name,
            s.expect.label(),
            s.cluster.voters,
            s.description
        );
    }
    Ok(true)
}
