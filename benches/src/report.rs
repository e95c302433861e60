//! `licbench report`: the Markdown report and SVG plots from recorded runs.
//!
//! [`write()`] reads every run from the JSON-lines files and writes into the output directory:
//!
//! * `README.md`: a title, the preamble (machine and settings), how to read the figures, one
//!   results table per workload (a row per setting and series), the licstore/etcd ratios with
//!   a verdict, the licstore/echo ratios, the plots, and the history.
//! * `plot-<workload>-<consistency>.svg`: p99 latency against achieved throughput, for every
//!   open-loop sweep (some series run at two offered rates or more).
//! * `results.json`: every run, as one JSON array.
//!
//! A run's *series* is its label, or the system's name without one (see [`series_name`]).
//! Series are shown in the order of [`series_cmp`]. When a setting was recorded more than once
//! for a series, the last run recorded counts.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::args::{Consistency, KeyDist, ReportArgs, Workload};
use crate::results::RunResult;

/// The licstore series, compared with etcd and echo.
const LICSTORE: &str = "licstore";
/// Series whose names start with this are licstore with an option on (`licstore-sealed-sm2`,
/// `licstore-tls`), compared with plain licstore.
const VARIANT_PREFIX: &str = "licstore-";
/// The series of the no-storage echo server.
const ECHO: &str = "echo";
/// Series whose names start with this are etcd.
const ETCD: &str = "etcd";
/// The etcd series licstore is compared with when there is one.
const ETCD_BASELINE: &str = "etcd-3.5";

/// Writes `README.md`, `results.json` and the SVG plots into `a.out` (created if missing).
pub fn write(a: &ReportArgs) -> anyhow::Result<()> {
    let runs = read_runs(&a.results)?;
    let preamble = read_optional(a.preamble.as_deref())?;
    let history = read_optional(a.history.as_deref())?;
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let plots = plots(&runs);
    for p in &plots {
        write_file(&a.out.join(&p.file), &p.svg)?;
    }
    let doc = Doc {
        sources: &a.results,
        preamble,
        history,
        plots: &plots,
    };
    write_file(&a.out.join("README.md"), &markdown(&runs, &doc))?;
    let json = serde_json::to_string_pretty(&runs)? + "\n";
    write_file(&a.out.join("results.json"), &json)
}

/// The series a run belongs to: its label, or the system's kebab-case name when it has none.
pub fn series_name(r: &RunResult) -> String {
    match r.label.trim() {
        "" => kebab(&r.system),
        label => label.to_string(),
    }
}

/// The order series are shown in: `licstore`, its variants (`licstore-…`), then names
/// starting with `etcd` newest version first, then `echo`, then any other by name. Numbers in
/// names compare as numbers.
pub fn series_cmp(a: &str, b: &str) -> Ordering {
    let (ra, rb) = (series_rank(a), series_rank(b));
    let names = match ra {
        2 => natural_cmp(b, a),
        _ => natural_cmp(a, b),
    };
    ra.cmp(&rb).then(names).then_with(|| a.cmp(b))
}

/// The group of a series name in [`series_cmp`].
fn series_rank(name: &str) -> u8 {
    match name {
        LICSTORE => 0,
        n if n.starts_with(VARIANT_PREFIX) => 1,
        n if n.starts_with(ETCD) => 2,
        ECHO => 3,
        _ => 4,
    }
}

/// Compares names with their digit runs taken as numbers, so `etcd-3.10` follows `etcd-3.9`.
fn natural_cmp(a: &str, b: &str) -> Ordering {
    chunks(a).cmp(&chunks(b))
}

/// A piece of a name: a number or the text between numbers.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Chunk {
    /// A run of digits.
    Num(u64),
    /// A run of anything else.
    Text(String),
}

/// A name cut into numbers and text.
fn chunks(s: &str) -> Vec<Chunk> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        let digits = c.is_ascii_digit();
        let end = rest
            .find(|ch: char| ch.is_ascii_digit() != digits)
            .unwrap_or(rest.len());
        let (head, tail) = rest.split_at(end);
        out.push(match digits {
            true => Chunk::Num(head.parse().unwrap_or(u64::MAX)),
            false => Chunk::Text(head.to_string()),
        });
        rest = tail;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Input and output.

/// Every run in the files; none at all is an error.
fn read_runs(paths: &[PathBuf]) -> anyhow::Result<Vec<RunResult>> {
    let runs = crate::results::read_all(paths).context("cannot read the results")?;
    if runs.is_empty() {
        let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        bail!("no runs in {}", names.join(", "));
    }
    Ok(runs)
}

/// The text of an optional Markdown file.
fn read_optional(path: Option<&Path>) -> anyhow::Result<Option<String>> {
    let read = |p: &Path| {
        std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))
    };
    path.map(read).transpose()
}

/// Writes one output file.
fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// The kebab-case name of a command-line value (`verify-batch`, `bounded-staleness`).
fn kebab<T: serde::Serialize + std::fmt::Debug>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => format!("{v:?}").to_lowercase(),
    }
}

// ---------------------------------------------------------------------------------------------
// Settings and series.

/// What a results row holds fixed: everything but the series.
#[derive(Clone, Copy, Debug)]
struct Setting {
    workload: Workload,
    consistency: Consistency,
    key_dist: KeyDist,
    clients: usize,
    rate: f64,
    items_per_call: usize,
    records: u64,
}

/// [`Setting::key`]: workload, consistency, key choice, clients, rate, items per call, records.
type SettingKey = (u8, u8, u8, usize, u64, usize, u64);

/// What an echo run shares with the licstore runs it is compared with.
type EchoKey = (u8, usize, usize, u64);

impl Setting {
    /// The setting of a run.
    fn of(r: &RunResult) -> Setting {
        Setting {
            workload: r.workload,
            consistency: r.consistency,
            key_dist: r.key_dist,
            clients: r.clients,
            rate: r.rate,
            items_per_call: r.items_per_call,
            records: r.records,
        }
    }

    /// The order of rows: by workload, then the rest of the setting.
    fn key(&self) -> SettingKey {
        (
            self.workload as u8,
            self.consistency as u8,
            self.key_dist as u8,
            self.clients,
            rate_key(self.rate),
            self.items_per_call,
            self.records,
        )
    }

    /// The echo server has no storage: only workload, clients, batch and rate matter.
    fn echo_key(&self) -> EchoKey {
        (
            self.workload as u8,
            self.clients,
            self.items_per_call,
            rate_key(self.rate),
        )
    }

    /// The setting without the workload, in words.
    fn describe(&self) -> String {
        format!(
            "{}, {} keys, {} records, {} clients, {}, batch {}",
            kebab(&self.consistency),
            kebab(&self.key_dist),
            self.records,
            self.clients,
            match self.rate > 0.0 {
                true => format!("{} calls/s", trim(self.rate)),
                false => "closed loop".to_string(),
            },
            self.items_per_call,
        )
    }
}

impl PartialEq for Setting {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Setting {}

impl PartialOrd for Setting {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Setting {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

/// An offered rate in milli-calls per second, to compare and sort rates exactly.
fn rate_key(rate: f64) -> u64 {
    (rate.max(0.0) * 1000.0).round() as u64
}

/// A series name, ordered as the report shows series.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Series(String);

impl PartialOrd for Series {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Series {
    fn cmp(&self, other: &Self) -> Ordering {
        series_cmp(&self.0, &other.0)
    }
}

/// The runs of one results row: the last run of each series.
type Row<'a> = BTreeMap<Series, &'a RunResult>;

/// Every results row, by setting.
type Grid<'a> = BTreeMap<Setting, Row<'a>>;

/// The runs as results rows; a later run of the same setting and series replaces an earlier.
fn grid(runs: &[RunResult]) -> Grid<'_> {
    let mut g = Grid::new();
    for r in runs {
        g.entry(Setting::of(r))
            .or_default()
            .insert(Series(series_name(r)), r);
    }
    g
}

/// The rows of each workload, in workload order.
fn by_workload<'g, 'a>(grid: &'g Grid<'a>) -> Vec<(Workload, Vec<(&'g Setting, &'g Row<'a>)>)> {
    let mut out: Vec<(Workload, Vec<_>)> = Vec::new();
    for (s, row) in grid {
        match out.last_mut() {
            Some((w, rows)) if *w == s.workload => rows.push((s, row)),
            _ => out.push((s.workload, vec![(s, row)])),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The Markdown document.

/// What the report puts around the tables.
struct Doc<'a> {
    /// The JSON-lines files read.
    sources: &'a [PathBuf],
    /// The machine and settings, put at the top verbatim.
    preamble: Option<String>,
    /// Appended under "History" verbatim.
    history: Option<String>,
    /// The plots, already written.
    plots: &'a [Plot],
}

/// The whole `README.md`.
fn markdown(runs: &[RunResult], doc: &Doc) -> String {
    let grid = grid(runs);
    let mut out = String::from("# licstore capacity report\n\n");
    if let Some(p) = &doc.preamble {
        push_verbatim(&mut out, p);
    }
    push_reading_notes(&mut out, runs.len(), doc.sources);
    push_results(&mut out, &grid);
    push_etcd_ratios(&mut out, &grid);
    push_echo_ratios(&mut out, &grid, runs);
    push_variant_costs(&mut out, &grid);
    push_plots(&mut out, doc.plots);
    if let Some(h) = &doc.history {
        out.push_str("## History\n\n");
        push_verbatim(&mut out, h);
    }
    out
}

/// Appends a Markdown file as it is, followed by a blank line.
fn push_verbatim(out: &mut String, text: &str) {
    out.push_str(text);
    if !text.ends_with('\n') {
        out.push('\n');
    }
    out.push('\n');
}

/// How to read the figures, and where they come from.
fn push_reading_notes(out: &mut String, runs: usize, sources: &[PathBuf]) {
    let files: Vec<String> = sources
        .iter()
        .map(|p| format!("`{}`", p.display()))
        .collect();
    out.push_str(&format!(
        "## How to read these figures\n\n\
         Absolute figures come from a shared 2-core machine, so they are only comparable within \
         one run of the benchmarks: the ratios between systems measured side by side are what \
         count.\n\n\
         - {runs} runs, from {}.\n\
         - Throughput counts successful calls; items/s is calls/s times the items per call.\n\
         - Latency is in milliseconds, over successful calls. Rate \"closed\" is a closed loop \
         (each client waits for its answer); open-loop runs offer a fixed rate and measure each \
         call from its intended start, so stalls show.\n\
         - Server CPU is the user and system time of the system's processes (every member) \
         over the measured window, per successful item: the figure a capacity plan divides a \
         peak by. It includes background work such as compaction.\n\
         - Writes go to the member that led when the run started, for every system, as clients \
         that route to the leader do; reads go to every member.\n\
         - A setting recorded more than once for a series shows its last run.\n\n",
        files.join(", "),
    ));
}

/// A Markdown table under construction.
struct MdTable {
    /// Column headers, and whether the column is right-aligned.
    head: Vec<(String, bool)>,
    /// Cells, one vector per row.
    rows: Vec<Vec<String>>,
}

impl MdTable {
    /// A table with these columns.
    fn new(head: Vec<(String, bool)>) -> MdTable {
        MdTable {
            head,
            rows: Vec::new(),
        }
    }

    /// Appends the table and a blank line.
    fn push_to(&self, out: &mut String) {
        let line = |cells: Vec<&str>| format!("| {} |\n", cells.join(" | "));
        out.push_str(&line(self.head.iter().map(|(h, _)| h.as_str()).collect()));
        let rule = |right: bool| if right { "---:" } else { "---" };
        out.push_str(&line(self.head.iter().map(|(_, r)| rule(*r)).collect()));
        for row in &self.rows {
            out.push_str(&line(row.iter().map(String::as_str).collect()));
        }
        out.push('\n');
    }
}

/// A header cell list from names, right-aligned from column `right_from` on.
fn head(names: &[&str], right_from: usize) -> Vec<(String, bool)> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.to_string(), i >= right_from))
        .collect()
}

/// Text made safe for a Markdown table cell.
fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

// ---------------------------------------------------------------------------------------------
// Results tables.

/// A setting column of the results tables: its header and its cell.
type SettingColumn = (&'static str, fn(&Setting) -> String);

/// The setting columns, in order; those with one value in a workload are stated above its table.
const SETTING_COLUMNS: [SettingColumn; 6] = [
    ("consistency", |s| kebab(&s.consistency)),
    ("keys", |s| kebab(&s.key_dist)),
    ("records", |s| s.records.to_string()),
    ("clients", |s| s.clients.to_string()),
    ("rate (calls/s)", |s| fmt_rate(s.rate)),
    ("items/call", |s| s.items_per_call.to_string()),
];

/// One table per workload.
fn push_results(out: &mut String, grid: &Grid) {
    out.push_str("## Results\n\n");
    for (workload, rows) in by_workload(grid) {
        push_workload(out, workload, &rows);
    }
}

/// The table of one workload: a row per setting and series, the setting written once.
fn push_workload(out: &mut String, workload: Workload, rows: &[(&Setting, &Row)]) {
    out.push_str(&format!("### {}\n\n", kebab(&workload)));
    let (fixed, varying): (Vec<_>, Vec<_>) = SETTING_COLUMNS
        .into_iter()
        .partition(|(_, cell)| one_value(rows, *cell));
    if let Some((s, _)) = rows.first().filter(|_| !fixed.is_empty()) {
        let same: Vec<String> = fixed
            .iter()
            .map(|(h, cell)| format!("{h} {}", cell(s)))
            .collect();
        out.push_str(&format!("Every row: {}.\n\n", same.join(", ")));
    }
    let batched = rows.iter().any(|(s, _)| s.items_per_call > 1);
    let mut t = MdTable::new(figure_head(&varying, batched));
    for (s, row) in rows {
        for (i, (series, r)) in row.iter().enumerate() {
            let setting = varying
                .iter()
                .map(|(_, cell)| if i == 0 { cell(s) } else { String::new() });
            let mut cells: Vec<String> = setting.collect();
            cells.push(md_cell(&series.0));
            cells.extend(figures(r, batched));
            t.rows.push(cells);
        }
    }
    t.push_to(out);
}

/// Whether a setting column has the same value in every row.
fn one_value(rows: &[(&Setting, &Row)], cell: fn(&Setting) -> String) -> bool {
    rows.iter()
        .map(|(s, _)| cell(s))
        .collect::<BTreeSet<_>>()
        .len()
        == 1
}

/// The headers of a workload's table: the varying setting columns, the series, the figures.
fn figure_head(varying: &[SettingColumn], batched: bool) -> Vec<(String, bool)> {
    let mut names: Vec<&str> = varying.iter().map(|(h, _)| *h).collect();
    names.push("series");
    names.push("items/s");
    if batched {
        names.push("calls/s");
    }
    names.extend([
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "server CPU µs/item",
        "errors",
    ]);
    head(&names, varying.len() + 1)
}

/// The figure cells of a run; calls/s only in a table with batched rows.
fn figures(r: &RunResult, batched: bool) -> Vec<String> {
    let mut cells = vec![fmt_tp(r.items_per_sec)];
    if batched {
        cells.push(match r.items_per_call > 1 {
            true => fmt_tp(r.calls_per_sec),
            false => "–".to_string(),
        });
    }
    let latency = [r.p50_ms, r.p99_ms, r.p999_ms, r.max_ms];
    cells.extend(latency.into_iter().map(fmt_ms));
    cells.push(r.server_cpu_us_per_item.map_or("–".to_string(), fmt_ms));
    cells.push(errors_cell(r));
    cells
}

/// Failed calls: the total, and the count of each reason when there are any.
fn errors_cell(r: &RunResult) -> String {
    match r.failed() {
        0 => "0".to_string(),
        n => {
            let each: Vec<String> = r.errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            md_cell(&format!("{n} ({})", each.join(", ")))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Ratios.

/// `a / b`, when `b` is a positive number.
fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0 && a.is_finite() && b.is_finite()).then(|| a / b)
}

/// Whether licstore meets etcd: at least its throughput, at most its p99 latency, both
/// judged on the ratios as printed (two decimals). Open-loop runs of both systems achieve the
/// offered rate give or take a call, so an unrounded comparison would call noise a miss.
fn verdict(throughput: Option<f64>, p99: Option<f64>) -> &'static str {
    let printed = |r: f64| (r * 100.0).round() / 100.0;
    match (throughput, p99) {
        (Some(t), Some(p)) if printed(t) >= 1.0 && printed(p) <= 1.0 => "meets",
        _ => "misses",
    }
}

/// A ratio cell.
fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or("n/a".to_string(), |r| format!("{r:.2}"))
}

/// The etcd series licstore is compared with in a row: the first `etcd-3.5*`, else the first
/// `etcd*`, in series order (newest first).
fn etcd_baseline<'r, 'a>(row: &'r Row<'a>) -> Option<(&'r Series, &'a RunResult)> {
    let pick = |prefix: &str| row.iter().find(|(s, _)| s.0.starts_with(prefix));
    pick(ETCD_BASELINE)
        .or_else(|| pick(ETCD))
        .map(|(s, r)| (s, *r))
}

/// The licstore run of a row.
fn licstore_run<'a>(row: &Row<'a>) -> Option<&'a RunResult> {
    row.get(&Series(LICSTORE.to_string())).copied()
}

/// licstore against etcd, per setting, with the verdict.
fn push_etcd_ratios(out: &mut String, grid: &Grid) {
    out.push_str(
        "## licstore against etcd\n\n\
         Throughput ratio: licstore items/s over etcd's (higher is better). p99 ratio: licstore \
         p99 over etcd's (lower is better). A setting **meets** when the throughput ratio is at \
         least 1.00 and the p99 ratio at most 1.00, as printed, else it **misses**.\n\n",
    );
    let names = [
        "workload",
        "setting",
        "etcd series",
        "throughput ratio",
        "p99 ratio",
    ];
    let mut h = head(&names, 3);
    h.push(("verdict".to_string(), false));
    let mut t = MdTable::new(h);
    for (s, row) in grid {
        let (Some(lic), Some((etcd, base))) = (licstore_run(row), etcd_baseline(row)) else {
            continue;
        };
        let tp = ratio(lic.items_per_sec, base.items_per_sec);
        let p99 = ratio(lic.p99_ms, base.p99_ms);
        t.rows.push(vec![
            kebab(&s.workload),
            s.describe(),
            md_cell(&etcd.0),
            fmt_ratio(tp),
            fmt_ratio(p99),
            verdict(tp, p99).to_string(),
        ]);
    }
    match t.rows.is_empty() {
        true => out.push_str("No setting has both a licstore and an etcd run.\n\n"),
        false => t.push_to(out),
    }
}

/// licstore against the echo server, matched on workload, clients, items per call and rate.
fn push_echo_ratios(out: &mut String, grid: &Grid, runs: &[RunResult]) {
    out.push_str(
        "## licstore against the echo server\n\n\
         The echo server answers the licstore API without storage: the transport ceiling. Runs \
         are matched on workload, clients, items per call and rate only.\n\n",
    );
    let echo: BTreeMap<EchoKey, &RunResult> = runs
        .iter()
        .filter(|r| series_name(r) == ECHO)
        .map(|r| (Setting::of(r).echo_key(), r))
        .collect();
    let names = [
        "workload",
        "setting",
        "licstore items/s",
        "echo items/s",
        "licstore/echo",
    ];
    let mut t = MdTable::new(head(&names, 2));
    for (s, row) in grid {
        let (Some(lic), Some(e)) = (licstore_run(row), echo.get(&s.echo_key())) else {
            continue;
        };
        t.rows.push(vec![
            kebab(&s.workload),
            s.describe(),
            fmt_tp(lic.items_per_sec),
            fmt_tp(e.items_per_sec),
            fmt_ratio(ratio(lic.items_per_sec, e.items_per_sec)),
        ]);
    }
    match t.rows.is_empty() {
        true => out.push_str("No licstore run has an echo run to compare with.\n\n"),
        false => t.push_to(out),
    }
}

/// Each licstore variant against plain licstore in the same setting: what the option costs.
fn push_variant_costs(out: &mut String, grid: &Grid) {
    out.push_str(
        "## What licstore's options cost\n\n\
         Each `licstore-…` series is licstore with one option on (the sealed series: a seal \
         key for every issuing office, so every write is signed and checked and every sealed \
         license keeps a status-list position; `licstore-tls`: mutual TLS between every \
         client and node and between nodes, with access control on and the caller a \
         registered principal), run in the same setting as plain licstore. Every series, \
         plain licstore included, makes an audit record of each verification and write, \
         except `licstore-unaudited`, which is plain licstore with auditing switched off: \
         its ratios turned over are what the audit trail costs. \
         Throughput ratio: the variant's items/s over plain licstore's; p99 ratio: the \
         variant's p99 over plain licstore's; server CPU: all members together, per item.\n\n",
    );
    let names = [
        "workload",
        "setting",
        "variant",
        "items/s plain → variant",
        "throughput ratio",
        "p99 ratio",
        "server CPU µs/item plain → variant",
    ];
    let mut t = MdTable::new(head(&names, 3));
    for (s, row) in grid {
        let Some(plain) = licstore_run(row) else {
            continue;
        };
        for (series, run) in row.iter().filter(|(s, _)| s.0.starts_with(VARIANT_PREFIX)) {
            let cpu = |r: &RunResult| r.server_cpu_us_per_item.map_or("–".into(), fmt_ms);
            t.rows.push(vec![
                kebab(&s.workload),
                s.describe(),
                md_cell(&series.0),
                format!(
                    "{} → {}",
                    fmt_tp(plain.items_per_sec),
                    fmt_tp(run.items_per_sec)
                ),
                fmt_ratio(ratio(run.items_per_sec, plain.items_per_sec)),
                fmt_ratio(ratio(run.p99_ms, plain.p99_ms)),
                format!("{} → {}", cpu(plain), cpu(run)),
            ]);
        }
    }
    match t.rows.is_empty() {
        true => out.push_str("No variant run has a plain licstore run to compare with.\n\n"),
        false => t.push_to(out),
    }
}

// ---------------------------------------------------------------------------------------------
// Number formats.

/// A number with at most three decimals and no trailing zeros.
fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// An offered rate: "closed" for a closed loop.
fn fmt_rate(rate: f64) -> String {
    match rate > 0.0 {
        true => trim(rate),
        false => "closed".to_string(),
    }
}

/// A throughput.
fn fmt_tp(v: f64) -> String {
    match v >= 100.0 {
        true => format!("{v:.0}"),
        false => format!("{v:.1}"),
    }
}

/// A latency in milliseconds, to about three significant digits.
fn fmt_ms(v: f64) -> String {
    match v {
        v if v < 1.0 => format!("{v:.3}"),
        v if v < 10.0 => format!("{v:.2}"),
        v if v < 100.0 => format!("{v:.1}"),
        v => format!("{v:.0}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Plots.

/// One SVG plot.
struct Plot {
    /// File name in the output directory.
    file: String,
    /// Title, also the image's alternative text.
    title: String,
    /// The SVG document.
    svg: String,
}

/// One line of a plot: a series' open-loop runs in one setting, by offered rate.
struct Line<'a> {
    /// Legend text.
    name: String,
    /// The runs, by increasing offered rate.
    points: Vec<&'a RunResult>,
}

/// The plots section of the README.
fn push_plots(out: &mut String, plots: &[Plot]) {
    out.push_str(
        "## Throughput against latency\n\n\
         Open-loop sweeps: each point is one run at a fixed offered rate, placed at its achieved \
         throughput (x) and p99 latency (y, log scale). Where a line turns up steeply, the \
         system is saturated.\n\n",
    );
    if plots.is_empty() {
        out.push_str("No open-loop sweep (a series at two rates or more) was recorded.\n\n");
    }
    for p in plots {
        out.push_str(&format!("![{}]({})\n\n", p.title, p.file));
    }
}

/// A plot for every workload and consistency with an open-loop sweep.
fn plots(runs: &[RunResult]) -> Vec<Plot> {
    let mut groups: BTreeMap<(u8, u8), Vec<&RunResult>> = BTreeMap::new();
    for r in runs.iter().filter(|r| r.rate > 0.0) {
        groups
            .entry((r.workload as u8, r.consistency as u8))
            .or_default()
            .push(r);
    }
    groups
        .into_values()
        .filter(|g| is_sweep(g))
        .map(|g| plot(&g))
        .collect()
}

/// Whether some series ran at two offered rates or more.
fn is_sweep(runs: &[&RunResult]) -> bool {
    let mut rates: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    for r in runs {
        rates
            .entry(series_name(r))
            .or_default()
            .insert(rate_key(r.rate));
    }
    rates.values().any(|s| s.len() >= 2)
}

/// The plot of one workload and consistency (`runs` is not empty).
fn plot(runs: &[&RunResult]) -> Plot {
    let (w, c) = (kebab(&runs[0].workload), kebab(&runs[0].consistency));
    let title = format!("{w}, {c}: p99 latency against throughput (open loop)");
    let svg = svg(&title, &lines(runs));
    Plot {
        file: format!("plot-{w}-{c}.svg"),
        title,
        svg,
    }
}

/// One line per series, or per series and setting when the runs hold several settings.
fn lines<'a>(runs: &[&'a RunResult]) -> Vec<Line<'a>> {
    let mut by: BTreeMap<(Series, Setting), BTreeMap<u64, &RunResult>> = BTreeMap::new();
    for r in runs {
        let setting = Setting {
            rate: 0.0,
            ..Setting::of(r)
        };
        by.entry((Series(series_name(r)), setting))
            .or_default()
            .insert(rate_key(r.rate), r);
    }
    let settings: BTreeSet<Setting> = by.keys().map(|(_, s)| *s).collect();
    let name = |series: Series, s: &Setting| match settings.len() > 1 {
        true => format!(
            "{} ({} keys, {} clients, {} records, batch {})",
            series.0,
            kebab(&s.key_dist),
            s.clients,
            s.records,
            s.items_per_call
        ),
        false => series.0,
    };
    by.into_iter()
        .map(|((series, s), points)| Line {
            name: name(series, &s),
            points: points.into_values().collect(),
        })
        .collect()
}

/// Width of a plot.
const W: f64 = 760.0;
/// Height of a plot.
const H: f64 = 460.0;
/// Left margin (y tick labels and axis label).
const LEFT: f64 = 80.0;
/// Right margin (the legend).
const RIGHT: f64 = 220.0;
/// Top margin (the title).
const TOP: f64 = 50.0;
/// Bottom margin (x tick labels and axis label).
const BOTTOM: f64 = 60.0;
/// The smallest latency a log axis shows, in milliseconds (the histograms' 1 µs).
const MIN_MS: f64 = 0.001;
/// Line colours, in series order.
const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
];

/// A plot axis.
#[derive(Debug)]
struct Axis {
    /// The value at the start.
    lo: f64,
    /// The value at the end.
    hi: f64,
    /// Logarithmic or linear.
    log: bool,
    /// Values with a tick and a label.
    ticks: Vec<f64>,
}

impl Axis {
    /// From zero to a round value at or above `max` (at least 1), with about five ticks.
    fn linear(max: f64) -> Axis {
        let max = max.clamp(1.0, 1e12);
        let step = nice_step(max / 5.0);
        let n = (max / step).ceil() as u32;
        let ticks = (0..=n).map(|i| f64::from(i) * step).collect();
        Axis {
            lo: 0.0,
            hi: f64::from(n) * step,
            log: false,
            ticks,
        }
    }

    /// Whole decades around `min..=max` (clamped to 1 µs..1e9 ms); ticks at 1, 2 and 5 unless
    /// it spans over 3 decades.
    fn log(min: f64, max: f64) -> Axis {
        let max = max.clamp(MIN_MS, 1e9);
        let min = min.clamp(MIN_MS, max);
        let e0 = min.log10().floor() as i32;
        let e1 = (max.log10().ceil() as i32).max(e0 + 1);
        let mut ticks = Vec::new();
        for e in e0..=e1 {
            let base = 10f64.powi(e);
            ticks.push(base);
            if e1 - e0 <= 3 && e < e1 {
                ticks.extend([2.0 * base, 5.0 * base]);
            }
        }
        Axis {
            lo: 10f64.powi(e0),
            hi: 10f64.powi(e1),
            log: true,
            ticks,
        }
    }

    /// Where `v` falls, from 0 at `lo` to 1 at `hi`.
    fn frac(&self, v: f64) -> f64 {
        match self.log {
            true => (v.max(MIN_MS).log10() - self.lo.log10()) / (self.hi / self.lo).log10(),
            false => (v - self.lo) / (self.hi - self.lo),
        }
    }

    /// The x coordinate of `v` on a horizontal axis.
    fn x(&self, v: f64) -> f64 {
        LEFT + self.frac(v) * (W - LEFT - RIGHT)
    }

    /// The y coordinate of `v` on a vertical axis.
    fn y(&self, v: f64) -> f64 {
        TOP + (1.0 - self.frac(v)) * (H - TOP - BOTTOM)
    }
}

/// The round step (1, 2 or 5 times a power of ten) at or above `raw`.
fn nice_step(raw: f64) -> f64 {
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag)
}

/// A tick label: `20k` for 20000, `0.5` for 0.5.
fn fmt_tick(v: f64) -> String {
    match v {
        v if v >= 1e6 => format!("{}M", trim(v / 1e6)),
        v if v >= 1e3 => format!("{}k", trim(v / 1e3)),
        v => trim(v),
    }
}

/// Text made safe for SVG.
fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The SVG document of a plot.
fn svg(title: &str, lines: &[Line]) -> String {
    let points = || lines.iter().flat_map(|l| l.points.iter());
    let xs = Axis::linear(points().map(|r| r.items_per_sec).fold(0.0, f64::max));
    let p99s = || points().map(|r| r.p99_ms);
    let ys = Axis::log(
        p99s().fold(f64::INFINITY, f64::min),
        p99s().fold(0.0, f64::max),
    );
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" \
         viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"{W}\" height=\"{H}\" fill=\"white\"/>\n\
         <text x=\"{:.1}\" y=\"28\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n",
        W / 2.0,
        xml(title),
    );
    push_x_axis(&mut out, &xs);
    push_y_axis(&mut out, &ys);
    for (i, line) in lines.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        push_line(&mut out, line, color, &xs, &ys);
        push_legend(&mut out, i, &line.name, color);
    }
    out.push_str("</svg>\n");
    out
}

/// The horizontal axis: grid lines, tick labels, frame and label.
fn push_x_axis(out: &mut String, xs: &Axis) {
    let (top, bottom) = (TOP, H - BOTTOM);
    for &t in &xs.ticks {
        let x = xs.x(t);
        out.push_str(&format!(
            "<line x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{bottom}\" stroke=\"#e4e4e4\"/>\n\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
            bottom + 18.0,
            fmt_tick(t),
        ));
    }
    out.push_str(&format!(
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{}\" height=\"{}\" fill=\"none\" \
         stroke=\"#444\"/>\n\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">\
         achieved throughput (items/s)</text>\n",
        W - LEFT - RIGHT,
        H - TOP - BOTTOM,
        LEFT + (W - LEFT - RIGHT) / 2.0,
        H - 16.0,
    ));
}

/// The vertical axis: grid lines, tick labels and label.
fn push_y_axis(out: &mut String, ys: &Axis) {
    let (left, right) = (LEFT, W - RIGHT);
    for &t in &ys.ticks {
        let y = ys.y(t);
        out.push_str(&format!(
            "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{right}\" y2=\"{y:.1}\" stroke=\"#e4e4e4\"/>\n\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
            left - 8.0,
            y + 4.0,
            fmt_tick(t),
        ));
    }
    out.push_str(&format!(
        "<text transform=\"translate(20,{:.1}) rotate(-90)\" text-anchor=\"middle\">\
         p99 latency (ms, log scale)</text>\n",
        TOP + (H - TOP - BOTTOM) / 2.0,
    ));
}

/// One series: a polyline through its points, and a marker on each.
fn push_line(out: &mut String, line: &Line, color: &str, xs: &Axis, ys: &Axis) {
    let at = |r: &RunResult| (xs.x(r.items_per_sec), ys.y(r.p99_ms));
    let coords: Vec<String> = line
        .points
        .iter()
        .map(|r| at(r))
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect();
    out.push_str(&format!(
        "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>\n",
        coords.join(" "),
    ));
    for r in &line.points {
        let (x, y) = at(r);
        out.push_str(&format!(
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3.5\" fill=\"{color}\"><title>{}: offered \
             {} calls/s, {} items/s, p99 {} ms</title></circle>\n",
            xml(&line.name),
            trim(r.rate),
            fmt_tp(r.items_per_sec),
            fmt_ms(r.p99_ms),
        ));
    }
}

/// The legend entry of the `i`-th line.
fn push_legend(out: &mut String, i: usize, name: &str, color: &str) {
    let x = W - RIGHT + 16.0;
    let y = TOP + 12.0 + 22.0 * i as f64;
    out.push_str(&format!(
        "<line x1=\"{x:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{color}\" \
         stroke-width=\"2\"/>\n\
         <circle cx=\"{:.1}\" cy=\"{y:.1}\" r=\"3.5\" fill=\"{color}\"/>\n\
         <text x=\"{:.1}\" y=\"{:.1}\">{}</text>\n",
        x + 24.0,
        x + 12.0,
        x + 32.0,
        y + 4.0,
        xml(name),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::System;

    /// A closed-loop verify run of a series (its label), 16 clients.
    fn run(label: &str, items_per_sec: f64, p99_ms: f64) -> RunResult {
        RunResult {
            label: label.to_string(),
            clients: 16,
            records: 1000,
            ok: 100,
            items_per_sec,
            calls_per_sec: items_per_sec,
            p50_ms: p99_ms / 4.0,
            p99_ms,
            p999_ms: p99_ms * 2.0,
            max_ms: p99_ms * 3.0,
            ..RunResult::empty()
        }
    }

    /// The same run at an offered rate.
    fn at_rate(r: RunResult, rate: f64) -> RunResult {
        RunResult { rate, ..r }
    }

    /// The report of `runs`, written from a JSON-lines file: its directory and README.
    fn report(runs: &[RunResult]) -> (tempfile::TempDir, PathBuf, String) {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("runs.jsonl");
        for r in runs {
            r.append_to(&input).unwrap();
        }
        let out = dir.path().join("report");
        let args = ReportArgs {
            results: vec![input],
            out: out.clone(),
            preamble: None,
            history: None,
        };
        write(&args).unwrap();
        let md = std::fs::read_to_string(out.join("README.md")).unwrap();
        (dir, out, md)
    }

    /// The text of the README section starting with `heading`, up to the next `## `.
    fn section<'a>(md: &'a str, heading: &str) -> &'a str {
        let start = md
            .find(heading)
            .unwrap_or_else(|| panic!("no {heading:?} in\n{md}"));
        let rest = &md[start + heading.len()..];
        &rest[..rest.find("\n## ").unwrap_or(rest.len())]
    }

    /// The one line of `text` containing every one of `parts`.
    fn line_with<'a>(text: &'a str, parts: &[&str]) -> &'a str {
        let found: Vec<&str> = text
            .lines()
            .filter(|l| parts.iter().all(|p| l.contains(p)))
            .collect();
        assert_eq!(found.len(), 1, "lines with {parts:?} in\n{text}");
        found[0]
    }

    #[test]
    fn series_name_is_the_label_or_the_system() {
        let cases = [
            ("", System::Licstore, "licstore"),
            ("", System::Etcd, "etcd"),
            ("  ", System::Echo, "echo"),
            ("etcd-3.5.1", System::Etcd, "etcd-3.5.1"),
            ("echo", System::Licstore, "echo"),
        ];
        for (label, system, want) in cases {
            let r = RunResult {
                label: label.to_string(),
                system,
                ..RunResult::empty()
            };
            assert_eq!(series_name(&r), want, "label {label:?}, {system:?}");
        }
    }

    #[test]
    fn series_order_licstore_etcd_newest_first_echo_then_others() {
        let cases: [(&[&str], &[&str]); 3] = [
            (
                &[
                    "echo",
                    "etcd-3.4.23",
                    "zeta",
                    "licstore",
                    "etcd-3.5.1",
                    "alpha",
                ],
                &[
                    "licstore",
                    "etcd-3.5.1",
                    "etcd-3.4.23",
                    "echo",
                    "alpha",
                    "zeta",
                ],
            ),
            (
                &["etcd-3.9.0", "etcd-3.10.0", "etcd"],
                &["etcd-3.10.0", "etcd-3.9.0", "etcd"],
            ),
            (
                &["licstore-tls", "echo", "licstore", "other"],
                &["licstore", "licstore-tls", "echo", "other"],
            ),
        ];
        for (names, want) in cases {
            let mut got = names.to_vec();
            got.sort_by(|a, b| series_cmp(a, b));
            assert_eq!(got, want);
        }
    }

    #[test]
    fn verdict_needs_both_ratios() {
        let cases = [
            (Some(1.0), Some(1.0), "meets"),
            (Some(2.5), Some(0.3), "meets"),
            (Some(0.99), Some(0.5), "misses"),
            (Some(0.996), Some(0.5), "meets"),
            (Some(1.0), Some(1.004), "meets"),
            (Some(1.0), Some(1.006), "misses"),
            (Some(1.2), Some(1.01), "misses"),
            (None, Some(0.5), "misses"),
            (Some(1.2), None, "misses"),
        ];
        for (tp, p99, want) in cases {
            assert_eq!(verdict(tp, p99), want, "throughput {tp:?}, p99 {p99:?}");
        }
        assert_eq!(ratio(3.0, 0.0), None);
        assert_eq!(ratio(3.0, 2.0), Some(1.5));
    }

    #[test]
    fn baseline_prefers_etcd_3_5_then_any_etcd() {
        let cases: [(&[&str], Option<&str>); 5] = [
            (
                &["licstore", "etcd-3.4.23", "etcd-3.5.1"],
                Some("etcd-3.5.1"),
            ),
            (
                &["licstore", "etcd-3.6.0", "etcd-3.5.1"],
                Some("etcd-3.5.1"),
            ),
            (&["licstore", "etcd-3.4.23"], Some("etcd-3.4.23")),
            (
                &["licstore", "etcd-3.3.0", "etcd-3.4.23"],
                Some("etcd-3.4.23"),
            ),
            (&["licstore", "echo"], None),
        ];
        for (names, want) in cases {
            let runs: Vec<RunResult> = names.iter().map(|n| run(n, 1.0, 1.0)).collect();
            let row: Row = runs.iter().map(|r| (Series(series_name(r)), r)).collect();
            let got = etcd_baseline(&row).map(|(s, _)| s.0.as_str());
            assert_eq!(got, want, "{names:?}");
        }
    }

    #[test]
    fn ratio_table_says_meets_and_misses() {
        let small = |r: RunResult| r;
        let big = |r: RunResult| RunResult { clients: 64, ..r };
        let runs = [
            small(run("licstore", 2000.0, 5.0)),
            small(run("etcd-3.5.1", 1000.0, 10.0)),
            small(run("etcd-3.4.23", 5000.0, 1.0)),
            big(run("licstore", 900.0, 5.0)),
            big(run("etcd-3.5.1", 1000.0, 4.0)),
        ];
        let (_dir, _, md) = report(&runs);
        let ratios = section(&md, "## licstore against etcd");
        let meets = line_with(ratios, &["16 clients"]);
        assert!(
            meets.contains("| etcd-3.5.1 | 2.00 | 0.50 | meets |"),
            "{meets}"
        );
        let misses = line_with(ratios, &["64 clients"]);
        assert!(
            misses.contains("| etcd-3.5.1 | 0.90 | 1.25 | misses |"),
            "{misses}"
        );
    }

    #[test]
    fn variant_costs_compare_each_variant_with_plain_licstore() {
        let cpu = |r: RunResult, us: f64| RunResult {
            server_cpu_us_per_item: Some(us),
            ..r
        };
        let runs = [
            cpu(run("licstore", 2000.0, 5.0), 500.0),
            cpu(run("licstore-sealed-ed25519", 1500.0, 10.0), 850.0),
            run("licstore-sealed-sm2", 1000.0, 20.0),
            run("etcd-3.5.1", 1000.0, 10.0),
            RunResult {
                clients: 64,
                ..run("licstore-sealed-sm2", 900.0, 30.0)
            },
        ];
        let (_dir, _, md) = report(&runs);
        let costs = section(&md, "## What licstore's options cost");
        let ed = line_with(costs, &["licstore-sealed-ed25519"]);
        assert!(
            ed.ends_with("| 2000 → 1500 | 0.75 | 2.00 | 500 → 850 |"),
            "{ed}"
        );
        let sm2 = line_with(costs, &["licstore-sealed-sm2"]);
        assert!(
            sm2.contains("| 2000 → 1000 | 0.50 | 4.00 | 500 → – |"),
            "{sm2}"
        );
        assert!(!costs.contains("etcd"), "only licstore variants: {costs}");
        let (_dir, _, plain_only) = report(&[run("licstore", 2000.0, 5.0)]);
        let none = section(&plain_only, "## What licstore's options cost");
        assert!(none.contains("No variant run"), "{none}");
    }

    #[test]
    fn results_list_series_in_order_with_errors() {
        let mut failing = run("etcd-3.4.23", 800.0, 9.0);
        failing.errors = BTreeMap::from([("timeout".to_string(), 2), ("unavailable".into(), 1)]);
        let runs = [
            run("", 10.0, 1.0),
            RunResult {
                system: System::Echo,
                ..run("", 5000.0, 0.5)
            },
            failing,
            RunResult {
                server_cpu_us_per_item: Some(250.0),
                ..run("etcd-3.5.1", 1000.0, 8.0)
            },
            RunResult {
                system: System::Licstore,
                ..run("", 1200.0, 6.0)
            },
        ];
        let (_dir, _, md) = report(&runs);
        let results = section(&md, "## Results");
        assert!(results.contains("### verify\n"), "{results}");
        let order = [
            "| licstore |",
            "| etcd-3.5.1 |",
            "| etcd-3.4.23 |",
            "| echo |",
        ];
        let at: Vec<usize> = order.iter().map(|s| results.find(s).expect(s)).collect();
        assert!(
            at.windows(2).all(|w| w[0] < w[1]),
            "order {at:?} in\n{results}"
        );
        let etcd34 = line_with(results, &["| etcd-3.4.23 |"]);
        assert!(
            etcd34.ends_with("| 3 (timeout: 2, unavailable: 1) |"),
            "{etcd34}"
        );
        let etcd35 = line_with(results, &["| etcd-3.5.1 |"]);
        assert!(
            etcd35.ends_with("| 250 | 0 |"),
            "server CPU per item: {etcd35}"
        );
        // The later licstore run of the same setting replaces the first.
        let lic = line_with(results, &["| licstore |"]);
        assert!(
            lic.contains("| 1200 | 1.50 | 6.00 | 12.0 | 18.0 | – | 0 |"),
            "{lic}"
        );
        assert!(results.contains("Every row: consistency linearizable, keys uniform"));
    }

    #[test]
    fn calls_per_second_only_where_batched() {
        let batch = RunResult {
            workload: Workload::VerifyBatch,
            items_per_call: 100,
            ..run("licstore", 50_000.0, 20.0)
        };
        let batch = RunResult {
            calls_per_sec: 500.0,
            ..batch
        };
        let (_dir, _, md) = report(&[run("licstore", 900.0, 2.0), batch]);
        let verify = section(&md, "### verify\n");
        let verify = &verify[..verify.find("### ").unwrap_or(verify.len())];
        assert!(!verify.contains("calls/s |"), "{verify}");
        let batched = section(&md, "### verify-batch");
        assert!(batched.contains("| items/s | calls/s |"), "{batched}");
        assert!(batched.contains("| licstore | 50000 | 500 |"), "{batched}");
    }

    #[test]
    fn echo_ratio_ignores_storage_settings() {
        let lic = RunResult {
            key_dist: KeyDist::Zipf,
            records: 100_000,
            ..run("licstore", 500.0, 4.0)
        };
        let echo = RunResult {
            consistency: Consistency::Serializable,
            records: 0,
            ..run("echo", 1000.0, 1.0)
        };
        let other = RunResult {
            clients: 64,
            ..run("licstore", 700.0, 4.0)
        };
        let (_dir, _, md) = report(&[lic, echo, other]);
        let ratios = section(&md, "## licstore against the echo server");
        let row = line_with(ratios, &["zipf keys"]);
        assert!(row.ends_with("| 500 | 1000 | 0.50 |"), "{row}");
        assert!(!ratios.contains("64 clients"), "{ratios}");
    }

    #[test]
    fn sweep_plot_has_one_polyline_per_series() {
        let mut runs = Vec::new();
        for (rate, lic_p99, etcd_p99) in [(100.0, 2.0, 3.0), (200.0, 3.0, 8.0), (400.0, 9.0, 90.0)]
        {
            runs.push(at_rate(run("licstore", rate, lic_p99), rate));
            runs.push(at_rate(run("etcd-3.5.1", rate * 0.9, etcd_p99), rate));
        }
        runs.push(at_rate(run("echo", 100.0, 0.4), 100.0));
        // One rate only: no plot for issue.
        runs.push(RunResult {
            workload: Workload::Issue,
            ..at_rate(run("", 50.0, 5.0), 50.0)
        });
        let (_dir, out, md) = report(&runs);
        let svg = std::fs::read_to_string(out.join("plot-verify-linearizable.svg")).unwrap();
        assert_eq!(svg.matches("<polyline").count(), 3, "{svg}");
        assert_eq!(
            svg.matches("<circle").count(),
            7 + 3,
            "a marker per run, one per legend entry"
        );
        let legend: Vec<usize> = ["licstore</text>", "etcd-3.5.1</text>", "echo</text>"]
            .map(|s| svg.find(s).expect(s))
            .into();
        assert!(legend.windows(2).all(|w| w[0] < w[1]), "{svg}");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("achieved throughput (items/s)") && svg.contains("p99 latency"));
        assert!(md.contains("](plot-verify-linearizable.svg)"), "{md}");
        let files: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".svg"))
            .collect();
        assert_eq!(files, ["plot-verify-linearizable.svg"]);
    }

    #[test]
    fn preamble_history_and_json() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("runs.jsonl");
        let runs = [run("licstore", 10.0, 1.0), run("etcd-3.5.1", 9.0, 2.0)];
        runs.iter().for_each(|r| r.append_to(&input).unwrap());
        let (preamble, history) = (dir.path().join("pre.md"), dir.path().join("hist.md"));
        std::fs::write(&preamble, "Machine: 2 cores, | table-ish |\n").unwrap();
        std::fs::write(&history, "- 2024: first capacity run").unwrap();
        let out = dir.path().join("a/b");
        let args = ReportArgs {
            results: vec![input],
            out: out.clone(),
            preamble: Some(preamble),
            history: Some(history),
        };
        write(&args).unwrap();
        let md = std::fs::read_to_string(out.join("README.md")).unwrap();
        assert!(md.starts_with("# licstore capacity report\n\nMachine: 2 cores, | table-ish |\n"));
        assert!(md.contains("only comparable within one run"), "{md}");
        assert!(
            md.ends_with("## History\n\n- 2024: first capacity run\n\n"),
            "{md}"
        );
        let json = std::fs::read_to_string(out.join("results.json")).unwrap();
        assert_eq!(serde_json::from_str::<Vec<RunResult>>(&json).unwrap(), runs);
    }

    #[test]
    fn unreadable_or_empty_input_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.jsonl");
        std::fs::write(&empty, "\n\n").unwrap();
        let missing = dir.path().join("missing.jsonl");
        let preamble_missing = dir.path().join("nope.md");
        let good = dir.path().join("good.jsonl");
        run("licstore", 1.0, 1.0).append_to(&good).unwrap();
        let cases = [
            (vec![empty.clone()], None, "no runs in"),
            (vec![empty], None, "empty.jsonl"),
            (vec![missing], None, "missing.jsonl"),
            (vec![good], Some(preamble_missing), "nope.md"),
        ];
        for (results, preamble, want) in cases {
            let out = dir.path().join("out");
            let args = ReportArgs {
                results,
                out,
                preamble,
                history: None,
            };
            let err = format!("{:#}", write(&args).unwrap_err());
            assert!(err.contains(want), "{err:?} lacks {want:?}");
        }
    }

    #[test]
    fn axes_and_numbers() {
        let x = Axis::linear(1234.0);
        assert_eq!(x.ticks, [0.0, 500.0, 1000.0, 1500.0]);
        let y = Axis::log(0.8, 35.0);
        assert_eq!((y.lo, y.hi), (0.1, 100.0));
        assert!(y.ticks.contains(&1.0) && y.ticks.contains(&5.0) && y.ticks.contains(&100.0));
        assert!((y.frac(10.0) - 2.0 / 3.0).abs() < 1e-9);
        let wide = Axis::log(0.01, 5000.0);
        assert_eq!(wide.ticks.len(), 7, "{wide:?}");
        let cases = [
            (0.1234, "0.123"),
            (4.5678, "4.57"),
            (45.678, "45.7"),
            (456.78, "457"),
        ];
        for (v, want) in cases {
            assert_eq!(fmt_ms(v), want);
        }
        let ticks = [
            (0.0, "0"),
            (0.5, "0.5"),
            (20_000.0, "20k"),
            (1_500_000.0, "1.5M"),
        ];
        for (v, want) in ticks {
            assert_eq!(fmt_tick(v), want);
        }
        assert_eq!(fmt_rate(0.0), "closed");
        assert_eq!(fmt_rate(250.0), "250");
    }
}
