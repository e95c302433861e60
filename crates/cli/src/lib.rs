//! licctl, the licstore command line, as a library: the binary (`main.rs`) only parses the
//! arguments and calls [`run`].
//!
//! Map:
//!
//! * [`args`]: the clap command line.
//! * [`licenses`], [`cluster`], [`import`], [`verify_items`]: the commands that talk to a
//!   cluster, through [`licstore_client::Client`].
//! * [`waits`]: `wait-leader`, `leader` and `wait-converged`, which poll every endpoint.
//! * [`acked`]: `issue-each` (one Issue per record, acknowledged identifiers kept) and
//!   `check-acked` (linearizable reads of them).
//! * [`demo`]: `demo-issue`, the demo script's two fixed holders and licenses.
//! * [`gen`]: the synthetic dataset generator (`licctl gen`), offline.
//! * [`tokens`]: `token keygen` and `token sign`, bearer tokens for callers without a
//!   certificate, offline.
//! * [`dataset`]: the JSONL/CSV record format shared by `gen` and `import`.
//! * [`view`], [`output`]: serde mirrors of the proto responses and their table/JSON output.
//! * [`convert`], [`types`]: enum mappings and license-type name resolution.
//! * [`exit`]: exit codes and the `error: <CODE>: <message>` line.
//!
//! Invariant: nothing here listens on a port; every connection goes to `--endpoints`.

pub mod acked;
pub mod args;
pub mod audit;
pub mod audit_archive;
pub mod check;
pub mod cluster;
pub mod convert;
pub mod dataset;
pub mod demo;
pub mod disclosure;
pub mod exit;
pub mod feed;
pub mod gen;
pub mod import;
pub mod licenses;
pub mod output;
pub mod perf;
pub mod principals;
pub mod seals;
pub mod service_items;
pub mod snapshot;
pub mod status_lists;
pub mod tokens;
pub mod trust;
pub mod types;
pub mod verify_items;
pub mod view;
pub mod waits;

use std::time::Duration;

use anyhow::Context;
use licstore_client::Client;
use licstore_model::Date;

use crate::args::StatusListCommand;
use crate::args::{CheckCommand, Cli, Command, EndpointCommand, GenArgs, LeaderCommand};
use crate::dataset::RecordWriter;
use crate::output::{emit, OutputFormat, Render, Table};

/// Per-request timeout when neither `--timeout-ms` nor a command default applies.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;

/// What every command needs from the global flags.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// `host:port` of each node, in the order given.
    pub endpoints: Vec<String>,
    /// Output format.
    pub output: OutputFormat,
    /// `--timeout-ms`, if given.
    pub timeout_ms: Option<u64>,
    /// TLS from `--cacert`, `--cert` and `--key`; `None`: plain text.
    pub tls: Option<licstore_client::TlsOptions>,
}

impl Ctx {
    /// The global flags, with empty endpoint entries dropped.
    pub fn new(cli: &Cli) -> anyhow::Result<Ctx> {
        let endpoints = cli
            .endpoints
            .iter()
            .map(|e| e.trim().to_owned())
            .filter(|e| !e.is_empty())
            .collect();
        let tls = licstore_client::TlsOptions::from_files(
            cli.cacert.as_deref(),
            cli.cert.as_deref(),
            cli.key.as_deref(),
        )
        .map_err(|e| exit::usage(e.to_string()))?;
        let tls = match (tls, &cli.token_file) {
            (tls, None) => tls,
            (Some(tls), Some(path)) => Some(
                tls.with_token_file(path)
                    .map_err(|e| exit::usage(e.to_string()))?,
            ),
            (None, Some(_)) => {
                let why = "--token-file needs --cacert: a bearer token is sent over TLS only";
                return Err(exit::usage(why.to_string()));
            }
        };
        Ok(Ctx {
            endpoints,
            output: cli.output,
            timeout_ms: cli.timeout_ms,
            tls,
        })
    }

    /// A client with the default timeout.
    pub fn client(&self) -> anyhow::Result<Client> {
        self.client_with_default(None)
    }

    /// A client whose timeout is `--timeout-ms`, else `default_ms`, else
    /// [`DEFAULT_TIMEOUT_MS`].
    pub fn client_with_default(&self, default_ms: Option<u64>) -> anyhow::Result<Client> {
        let ms = self.timeout_ms.or(default_ms).unwrap_or(DEFAULT_TIMEOUT_MS);
        self.client_for(&self.endpoints, Duration::from_millis(ms))
    }

    /// A client for `endpoints` with this command line's TLS settings.
    pub fn client_for(&self, endpoints: &[String], timeout: Duration) -> anyhow::Result<Client> {
        Ok(Client::with_tls(endpoints, timeout, self.tls.as_ref())?)
    }
}

/// Runs one parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let ctx = Ctx::new(&cli)?;
    match cli.command {
        Command::Issue(a) => licenses::issue(&ctx, a).await,
        Command::Amend(a) => licenses::amend(&ctx, a).await,
        Command::Status(a) => licenses::change_status(&ctx, a).await,
        Command::Get(a) => licenses::get(&ctx, a).await,
        Command::GetId(a) => licenses::get_by_identifier(&ctx, a).await,
        Command::List(a) => licenses::list(&ctx, a).await,
        Command::Verify(a) => licenses::verify(&ctx, a).await,
        Command::VerifyItems(a) => verify_items::run(&ctx, a).await,
        Command::Import(a) => import::run(&ctx, a).await,
        Command::Gen(a) => generate(&ctx, a),
        Command::Types => emit(ctx.output, &TypesView::builtin()),
        Command::Endpoint(EndpointCommand::Status) => cluster::endpoint_status(&ctx).await,
        Command::Endpoint(EndpointCommand::Health) => cluster::endpoint_health(&ctx).await,
        Command::Member(m) => cluster::member(&ctx, m).await,
        Command::Digest => cluster::digest(&ctx).await,
        Command::Check(a) => match a.command {
            None => check::check(&ctx).await,
            Some(CheckCommand::Perf(p)) => perf::run(&ctx, p).await,
        },
        Command::Query(a) => feed::query(&ctx, a).await,
        Command::Watch(a) => feed::watch(&ctx, a).await,
        Command::Compact(a) => feed::compact(&ctx, a).await,
        Command::Snapshot(c) => snapshot::run(&ctx, c).await,
        Command::WaitLeader(a) => waits::wait_leader(&ctx, a).await,
        Command::Leader(a) => match a.command {
            None => waits::leader(&ctx).await,
            Some(LeaderCommand::Transfer { node_id }) => {
                cluster::transfer_leader(&ctx, node_id).await
            }
        },
        Command::WaitConverged(a) => waits::wait_converged(&ctx, a).await,
        Command::IssueEach(a) => acked::issue_each(&ctx, a).await,
        Command::CheckAcked(a) => acked::check_acked(&ctx, a).await,
        Command::DemoIssue(a) => demo::run(&ctx, a).await,
        Command::Keys(c) => seals::keys(&ctx, c).await,
        Command::Export(a) => seals::export(&ctx, a).await,
        Command::VerifyOffline(a) => seals::verify_offline_cmd(&ctx, a),
        Command::Trust(c) => trust::run(&ctx, c).await,
        Command::Token(args::TokenCommand::Revoke {
            file,
            jti,
            expires_at_s,
        }) => tokens::revoke(&ctx, file, jti, expires_at_s).await,
        Command::Token(c) => tokens::run(&ctx, c),
        Command::Present(a) => disclosure::present(&ctx, a).await,
        Command::VerifyPresentation(a) => disclosure::verify_presentation_cmd(&ctx, a),
        Command::Policy(c) => disclosure::policy(&ctx, c).await,
        Command::StatusList(StatusListCommand::Get(a)) => status_lists::get(&ctx, a).await,
        Command::Item(c) => service_items::run(&ctx, c).await,
        Command::Audit(c) => audit::run(&ctx, c).await,
        Command::Principal(c) => principals::run(&ctx, c).await,
        Command::Whoami => principals::whoami(&ctx).await,
    }
}

/// `licctl gen`.
fn generate(ctx: &Ctx, args: GenArgs) -> anyhow::Result<()> {
    let as_of = match &args.as_of {
        Some(text) => Date::parse(text).map_err(|e| exit::usage(format!("--as-of: {e}")))?,
        None => licenses::today(),
    };
    let format = args.format.resolve(&args.out);
    let mut generator = gen::Generator::new(args.seed, as_of)?;
    let mut writer = RecordWriter::create(&args.out, format)?;
    let mut report = gen::GenReport::new(args.out.display().to_string(), args.seed, as_of);
    gen::write_dataset(&mut generator, args.count, &mut writer, &mut report)?;
    writer
        .finish()
        .with_context(|| format!("write {}", args.out.display()))?;
    emit(ctx.output, &report)
}

/// `licctl types`: the built-in templates.
#[derive(Debug, serde::Serialize)]
pub struct TypesView(pub Vec<TypeRow>);

/// One built-in license type.
#[derive(Debug, serde::Serialize)]
pub struct TypeRow {
    pub type_code: String,
    pub key: String,
    pub name: String,
    pub holder_kind: String,
    pub multiple_per_holder: bool,
    /// `None` for long-term.
    pub default_validity_years: Option<u16>,
    pub fields: Vec<String>,
}

impl TypesView {
    fn builtin() -> TypesView {
        let rows = types::registry()
            .iter()
            .map(|t| TypeRow {
                type_code: t.type_code.clone(),
                key: t.key.clone(),
                name: t.name.clone(),
                holder_kind: t.holder_kind.as_str().to_owned(),
                multiple_per_holder: t.multiple_per_holder,
                default_validity_years: t.default_validity_years,
                fields: t.fields.iter().map(|f| f.name.clone()).collect(),
            })
            .collect();
        TypesView(rows)
    }
}

impl Render for TypesView {
    fn table(&self) -> Table {
        let mut t = Table::new(&["type code", "key", "name", "holder", "validity"]);
        for r in &self.0 {
            let validity = match r.default_validity_years {
                None => "long-term".to_owned(),
                Some(1) => "1 year".to_owned(),
                Some(y) => format!("{y} years"),
            };
            t.row([
                r.type_code.clone(),
                r.key.clone(),
                r.name.clone(),
                r.holder_kind.clone(),
                validity,
            ]);
        }
        t
    }
}
