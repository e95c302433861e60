//! The command line of `licctl`, as clap derive types. Parsing only; the commands live in
//! `licenses`, `cluster`, `import`, `gen` and `verify_items`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use licstore_model::{HolderKind, StatusOp};

use crate::dataset::Format;
use crate::output::OutputFormat;

/// Default endpoints: the three-node loopback cluster.
pub const DEFAULT_ENDPOINTS: &str = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003";

/// licctl: issue, change, read and verify electronic licenses in a licstore cluster, load
/// datasets, and administer the cluster.
#[derive(Debug, Parser)]
#[command(name = "licctl", version, propagate_version = true)]
pub struct Cli {
    /// Comma-separated host:port list of licstore nodes.
    #[arg(long, global = true, env = "LICSTORE_ENDPOINTS", value_delimiter = ',',
          default_value = DEFAULT_ENDPOINTS)]
    pub endpoints: Vec<String>,
    /// Output format.
    #[arg(
        short = 'o',
        long = "output",
        global = true,
        value_enum,
        default_value_t
    )]
    pub output: OutputFormat,
    /// Per-request timeout in milliseconds [default: 10000; import: 600000;
    /// blocking add-learner: 120000].
    #[arg(long, global = true)]
    pub timeout_ms: Option<u64>,
    /// CA certificate (PEM) that the nodes' certificates chain to; connects over TLS.
    #[arg(long, global = true, env = "LICSTORE_CACERT")]
    pub cacert: Option<PathBuf>,
    /// Client certificate (PEM), for nodes that require one; needs --key and --cacert.
    #[arg(long, global = true, env = "LICSTORE_CERT")]
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, global = true, env = "LICSTORE_KEY")]
    pub key: Option<PathBuf>,
    /// A file holding a signed bearer token (`licctl token sign`) sent with every call, for
    /// nodes that accept tokens instead of a client certificate; needs --cacert.
    #[arg(long, global = true, env = "LICSTORE_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Issue a new license (Licenses.Issue).
    Issue(IssueArgs),
    /// Issue the next version of a license (Licenses.Amend). Without --file the current
    /// version is fetched and the given flags are applied to it.
    Amend(AmendArgs),
    /// Change a license's status (Licenses.ChangeStatus).
    Status(StatusArgs),
    /// Get a holder's license of one type (Licenses.Get).
    Get(GetArgs),
    /// Get a license by its identifier (Licenses.GetByIdentifier).
    GetId(GetIdArgs),
    /// List a holder's licenses (Licenses.ListByHolder).
    List(ListArgs),
    /// Check that a holder has a valid license of a type, for a service item (Licenses.Verify).
    Verify(VerifyArgs),
    /// Verify a holder for every registered service item that accepts a license of its kind
    /// (yours only, with access control on), in one VerifyBatch.
    VerifyItems(VerifyItemsArgs),
    /// Bulk-load a dataset file (Licenses.Import, in chunks).
    Import(ImportArgs),
    /// Write a synthetic dataset (no server needed).
    Gen(GenArgs),
    /// List the built-in license types (no server needed).
    Types,
    /// Per-endpoint cluster status.
    #[command(subcommand)]
    Endpoint(EndpointCommand),
    /// Cluster membership.
    #[command(subcommand)]
    Member(MemberCommand),
    /// State-machine digest of every endpoint (Cluster.StateDigest); equal digests at equal
    /// applied indexes mean equal replicas.
    Digest,
    /// Walk records and indexes on every endpoint (Cluster.Check) and report inconsistencies;
    /// `check perf` runs a fixed write load and says PASS or FAIL.
    Check(CheckArgs),
    /// Find current licenses by type, status, issuer, region, expiry or change revision
    /// (Licenses.Query); --explain shows the index used.
    Query(QueryArgs),
    /// Print change-feed events as they commit (Licenses.Watch); resumable with
    /// --from-revision, reconnects to another endpoint by itself.
    Watch(WatchArgs),
    /// Drop change-feed events below a revision (Cluster.Compact).
    Compact(CompactArgs),
    /// Backups: save a consistent copy online, check one, restore one into a new cluster.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Wait until every answering endpoint names the same leader and that leader says so.
    WaitLeader(WaitLeaderArgs),
    /// Print `ID ADDR` of the current leader; `leader transfer ID` hands leadership to a voter.
    Leader(LeaderArgs),
    /// Wait until every endpoint has the same applied index and state digest.
    WaitConverged(WaitConvergedArgs),
    /// Issue the records of a dataset file one by one (Licenses.Issue, retried), recording the
    /// identifier of every acknowledged write.
    IssueEach(IssueEachArgs),
    /// Check with linearizable reads that acknowledged writes are present.
    CheckAcked(CheckAckedArgs),
    /// Issue a resident ID card and a business license to two fixed demo holders and write
    /// their ids to a shell-sourceable file.
    DemoIssue(DemoIssueArgs),
    /// Authorities' seal keys (Seals service): generate (no server), register, rotate, revoke,
    /// list.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Write a sealed license with its authority's key records to a file
    /// (Seals.ExportLicense), for `verify-offline`.
    Export(ExportArgs),
    /// Check an exported license against a trust file, with no server; exits 1 unless valid.
    VerifyOffline(VerifyOfflineArgs),
    /// Trust lists between stores: export this one's keys signed with a root key, import
    /// another's, list the imported ones.
    #[command(subcommand)]
    Trust(TrustCommand),
    /// Signed bearer tokens, for callers without a client certificate: make a key pair,
    /// sign a token (no server).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Write a presentation of a sealed license that reveals only the named fields
    /// (Seals.Present), for `verify-presentation`.
    Present(PresentArgs),
    /// Check a presentation against a trust file, with no server, and print only the revealed
    /// fields; exits 1 unless valid.
    VerifyPresentation(VerifyPresentationArgs),
    /// What verifications disclose (Policies service): set-disclosure, list.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Signed status lists of an authority (Seals.GetStatusList), for `verify-offline`.
    #[command(subcommand)]
    StatusList(StatusListCommand),
    /// Service items and the license types they accept (Policies service): put, remove,
    /// list, load.
    #[command(subcommand)]
    Item(ItemCommand),
    /// Principals and their roles (Access service): put, remove, list.
    #[command(subcommand)]
    Principal(PrincipalCommand),
    /// The audit trail (Audit service; auditor): list, verify.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The principal the server takes this command line's certificate for (Access.WhoAmI).
    Whoami,
}

/// `licctl item ...`.
#[derive(Debug, Subcommand)]
pub enum ItemCommand {
    /// Register a service item, or replace the one of that name (Policies.PutServiceItem;
    /// admin). Replacing drops the disclosure rules of the types it no longer accepts.
    Put {
        /// The item's name, as verifications name it.
        name: String,
        /// The department that serves it.
        #[arg(long)]
        department: String,
        /// A license type it accepts (code, template key or Chinese name); repeatable, or
        /// comma-separated.
        #[arg(long = "type", required = true)]
        type_codes: Vec<String>,
    },
    /// Remove a service item and its disclosure rules (Policies.RemoveServiceItem; admin).
    Remove {
        /// Its name.
        name: String,
    },
    /// The registered service items (Policies.ListServiceItems).
    List {
        /// Only this item.
        #[arg(long)]
        name: Option<String>,
    },
    /// Register every item of a service-items table (columns
    /// license_type,department,department_item_count,service_item, as data/service-items.csv):
    /// one item per service item, with every type its rows name; unchanged items are skipped.
    Load {
        /// The CSV file.
        file: PathBuf,
    },
}

/// `licctl audit ...`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Records of the trail in order; with --holder, only those about that holder.
    List {
        #[command(flatten)]
        holder: AuditHolderArgs,
        /// The first record to show.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Most records to show (at most 10000).
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
    /// Check every endpoint's whole trail: each record must link to the one before, and trails
    /// of equal length must end in the same record. A trimmed trail is checked from its
    /// checkpoint, which the last trim's record must name. Exits 1 naming the first broken
    /// link.
    Verify {
        /// Archives written by `audit export`, oldest first: they are checked as one run of
        /// records, which must reach each node's checkpoint and agree with its records.
        #[arg(long = "archive")]
        archives: Vec<std::path::PathBuf>,
    },
    /// Write records to an archive file, checking their chain, before a trim removes them;
    /// `audit verify --archive` checks it with the trail.
    Export {
        /// The archive to create; never overwritten.
        #[arg(long)]
        out: std::path::PathBuf,
        /// The first record to write.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// The last record to write [default: the trail's last when the export starts].
        #[arg(long)]
        through: Option<u64>,
    },
    /// Remove the oldest records through --through (Audit.TrimAudit; admin). Refused while any
    /// of them is younger than the nodes' audit.trim_min_age_secs.
    Trim {
        /// The last record to remove.
        #[arg(long)]
        through: u64,
    },
}

/// The optional holder of `licctl audit list`.
#[derive(Debug, Args)]
pub struct AuditHolderArgs {
    /// Holder kind [default: guessed from the id's check character].
    #[arg(long, short = 'k', value_enum)]
    pub holder_kind: Option<KindArg>,
    /// Only records about this citizen ID number or USCC.
    #[arg(long)]
    pub holder: Option<String>,
}

/// `licctl principal ...`.
#[derive(Debug, Subcommand)]
pub enum PrincipalCommand {
    /// Register a principal, or replace the one of that name (Access.PutPrincipal; admin).
    Put {
        /// The name its client certificate carries (common name, else first SAN).
        name: String,
        /// issuer, verifier, auditor or admin; repeatable, or comma-separated.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// For an issuer: an issuer code (issuer.code) it may write; repeatable.
        #[arg(long = "issuer-code")]
        issuer_codes: Vec<String>,
        /// For an issuer: a license type (code or template key) it may write; repeatable.
        #[arg(long = "type")]
        type_codes: Vec<String>,
        /// For a verifier: a service item it verifies for; repeatable.
        #[arg(long = "service-item")]
        service_items: Vec<String>,
    },
    /// Remove a principal (Access.RemovePrincipal; admin).
    Remove {
        /// Its name.
        name: String,
    },
    /// The registered principals (Access.ListPrincipals; auditor, admin).
    List {
        /// Only this principal.
        #[arg(long)]
        name: Option<String>,
    },
}

/// `licctl present`.
#[derive(Debug, Args)]
pub struct PresentArgs {
    /// Identifier of the sealed license version.
    pub identifier: String,
    /// A field to reveal: a face field by name or an issued field under its `@` name
    /// (`@holder.name`, `@valid_until`, ...); repeatable, or comma-separated.
    #[arg(long = "field", required = true)]
    pub fields: Vec<String>,
    /// Where to write the presentation.
    #[arg(long)]
    pub out: PathBuf,
}

/// `licctl verify-presentation`.
#[derive(Debug, Args)]
pub struct VerifyPresentationArgs {
    /// A presentation written by `licctl present`.
    pub file: PathBuf,
    /// A trust file written by `licctl trust export`.
    #[arg(long)]
    pub trust: PathBuf,
    /// The id of the root key you trust (32 hex digits).
    #[arg(long)]
    pub root_key_id: String,
}

/// `licctl policy ...`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Set the fields a service item sees of a license type when it verifies one
    /// (Policies.SetDisclosure); `--remove` drops the rule, so it sees none.
    SetDisclosure {
        /// The service item, as verifications name it.
        #[arg(long)]
        service_item: String,
        /// License type code or template key.
        #[arg(long = "type")]
        type_code: String,
        /// A face field name or `@` issued field name; repeatable, or comma-separated.
        #[arg(long = "field")]
        fields: Vec<String>,
        /// Drop the rule instead (no `--field`).
        #[arg(long)]
        remove: bool,
    },
    /// The disclosure rules (Policies.ListDisclosure).
    List {
        /// Only this service item's rules.
        #[arg(long)]
        service_item: Option<String>,
    },
}

/// `licctl token ...`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make an Ed25519 key pair as PEM: the private key at OUT (mode 0600, never overwritten)
    /// and the public key beside it with the extension .pub, for access.token_key_files.
    Keygen {
        /// Where to write the private key, e.g. ops.key (the public key goes to ops.pub).
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a token for one caller and print it; the nodes name the bearer token:SUBJECT.
    Sign {
        /// The private key (PEM, PKCS #8 Ed25519, from keygen or openssl).
        #[arg(long)]
        signing_key: PathBuf,
        /// Who the bearer is (the token's sub).
        #[arg(long)]
        subject: String,
        /// Seconds the token is valid, at most a week.
        #[arg(long, default_value_t = 3600)]
        ttl_s: u64,
        /// The audience the nodes expect (access.token_audience).
        #[arg(long, default_value = "licstore")]
        audience: String,
        /// The key id in the token's header: the name of the nodes' public key file without
        /// its extension [default: the signing key file's name without its extension]; ""
        /// for none (accepted only by nodes with one token key).
        #[arg(long)]
        kid: Option<String>,
    },
    /// Refuse one token from now on, on every node, until it expires (Access.RevokeToken;
    /// admin). Name it by its file, or by --jti and --expires-at-s.
    Revoke {
        /// A file holding the token (its jti and exp are read, not trusted).
        #[arg(required_unless_present = "jti", conflicts_with_all = ["jti", "expires_at_s"])]
        file: Option<PathBuf>,
        /// The token's jti claim.
        #[arg(long, requires = "expires_at_s")]
        jti: Option<String>,
        /// The token's exp claim, seconds since the Unix epoch.
        #[arg(long)]
        expires_at_s: Option<u64>,
    },
}

/// `licctl keys ...`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a secret key file (mode 0600, never overwritten) and FILE.pub with its public key.
    Generate {
        /// `ed25519` or `sm2-sm3`.
        #[arg(long, default_value = "sm2-sm3")]
        suite: String,
        /// SM2 distinguishing id [default: 1234567812345678].
        #[arg(long)]
        dist_id: Option<String>,
        /// Where to write the secret key file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Give an authority its active key (Seals.RegisterKey).
    Register {
        /// Authority (issuer) code.
        #[arg(long)]
        authority: String,
        /// A secret key file or a `.pub` file; only the public key is sent.
        #[arg(long)]
        key_file: PathBuf,
        /// First instant the key may seal, ms since the epoch [default: now].
        #[arg(long, default_value_t = 0)]
        valid_from_ms: u64,
    },
    /// Hand an authority over to a new key (Seals.RotateKey).
    Rotate {
        /// Authority (issuer) code.
        #[arg(long)]
        authority: String,
        /// The new key: a secret key file or a `.pub` file.
        #[arg(long)]
        new_key_file: PathBuf,
        /// Handover instant, ms since the epoch [default: now].
        #[arg(long, default_value_t = 0)]
        at_ms: u64,
    },
    /// Void a key's seals from an instant on (Seals.RevokeKey).
    Revoke {
        /// Key id, 32 hex digits.
        key_id: String,
        /// First instant whose seals are void, ms since the epoch [default: now].
        #[arg(long, default_value_t = 0)]
        from_ms: u64,
    },
    /// Every registered key (Seals.ListKeys).
    List,
}

/// `licctl export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Identifier of the license version.
    pub identifier: String,
    /// Where to write the export file.
    #[arg(long)]
    pub out: PathBuf,
    /// Write the version as one `licctl import` record (JSONL, seal included) for another
    /// store instead of an export document.
    #[arg(long)]
    pub as_import: bool,
}

/// `licctl verify-offline`.
#[derive(Debug, Args)]
pub struct VerifyOfflineArgs {
    /// An export file written by `licctl export`.
    pub file: PathBuf,
    /// A trust file written by `licctl trust export`.
    #[arg(long)]
    pub trust: PathBuf,
    /// The id of the root key you trust (32 hex digits): anyone can sign a trust file with a
    /// root of their own, so the file is accepted only under this one.
    #[arg(long)]
    pub root_key_id: String,
    /// A status list of the license's authority and type (`licctl status-list get`); give
    /// one revocation and one suspension list, and the license must be clear in both.
    #[arg(long = "status-list")]
    pub status_lists: Vec<PathBuf>,
    /// Oldest status list accepted, by its signing time, in seconds before now.
    #[arg(long, default_value_t = 86_400)]
    pub max_list_age_s: u64,
}

/// `licctl status-list ...`.
#[derive(Debug, Subcommand)]
pub enum StatusListCommand {
    /// Download an authority's signed status list for a license type (Seals.GetStatusList).
    Get(StatusListGetArgs),
}

/// `licctl status-list get`.
#[derive(Debug, Args)]
pub struct StatusListGetArgs {
    /// Authority (issuer) code.
    #[arg(long)]
    pub authority: String,
    /// License type code or template key.
    #[arg(long = "type")]
    pub type_code: String,
    /// `revocation` or `suspension`.
    #[arg(long, default_value = "revocation")]
    pub purpose: String,
    /// List number (an export's status entry names it).
    #[arg(long, default_value_t = 0)]
    pub list: u32,
    /// Revision of the copy held; the list is written only when newer.
    #[arg(long, default_value_t = 0)]
    pub if_newer_than: u64,
    /// Where to write the signed list.
    #[arg(long)]
    pub out: PathBuf,
}

/// `licctl trust ...`.
#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// Sign this store's own keys (not imported ones) into a trust file with a root key held
    /// here.
    Export {
        /// The root's secret key file.
        #[arg(long)]
        root_key: PathBuf,
        /// Code of the authority issuing the list.
        #[arg(long)]
        issued_by: String,
        /// Only keys of these authorities (repeatable) [default: all].
        #[arg(long)]
        authority: Vec<String>,
        /// Where to write the trust file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Import another store's trust file, signed under the pinned root, so this store checks
    /// and judges the seals of its authorities (Seals.ImportTrustList).
    Import {
        /// A trust file written by `licctl trust export`.
        file: PathBuf,
        /// Id of the root key trusted to sign the list (32 hex digits), learned out of band.
        #[arg(long)]
        root_key_id: String,
    },
    /// The trust lists imported so far, one per root.
    List,
}

/// A holder kind on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    /// Citizen ID number (GB 11643).
    #[value(name = "citizen_id", alias = "citizen-id", alias = "111")]
    CitizenId,
    /// Unified social credit code (GB 32100).
    #[value(name = "uscc", alias = "001")]
    Uscc,
}

impl From<KindArg> for HolderKind {
    fn from(k: KindArg) -> HolderKind {
        match k {
            KindArg::CitizenId => HolderKind::CitizenId,
            KindArg::Uscc => HolderKind::Uscc,
        }
    }
}

/// A status operation on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OpArg {
    /// 暂扣: valid → suspended.
    Suspend,
    /// 发还: suspended → valid.
    LiftSuspension,
    /// 撤销 → revoked.
    Revoke,
    /// 注销 → cancelled.
    Cancel,
    /// 失效 → expired.
    Expire,
    /// 办理转出 → transferred-out.
    TransferOut,
    /// 吊销 → revoked-as-penalty.
    RevokeAsPenalty,
    /// 其他 → other (needs --reason).
    Other,
}

impl From<OpArg> for StatusOp {
    fn from(op: OpArg) -> StatusOp {
        match op {
            OpArg::Suspend => StatusOp::Suspend,
            OpArg::LiftSuspension => StatusOp::LiftSuspension,
            OpArg::Revoke => StatusOp::Revoke,
            OpArg::Cancel => StatusOp::Cancel,
            OpArg::Expire => StatusOp::Expire,
            OpArg::TransferOut => StatusOp::TransferOut,
            OpArg::RevokeAsPenalty => StatusOp::RevokeAsPenalty,
            OpArg::Other => StatusOp::Other,
        }
    }
}

/// Which holder a read is about.
#[derive(Debug, Args)]
pub struct HolderArgs {
    /// Holder kind [default: the type's holder kind, else guessed from the id's check
    /// character].
    #[arg(long, short = 'k', value_enum)]
    pub holder_kind: Option<KindArg>,
    /// Citizen ID number or USCC.
    #[arg(long)]
    pub holder: String,
}

/// The content of a license, as flags. Each flag overrides the --file (or, for amend, the
/// current version's) value.
#[derive(Debug, Default, Args)]
pub struct LicenseFlags {
    /// A NewLicense as JSON (the `license` object of the dataset format); `-` for stdin.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Type code, template key (resident-id-card) or Chinese name (居民身份证).
    #[arg(long = "type", short = 't')]
    pub type_code: Option<String>,
    /// Holder kind [default: the type's holder kind].
    #[arg(long, value_enum)]
    pub holder_kind: Option<KindArg>,
    /// Holder id: citizen ID number or USCC.
    #[arg(long = "holder")]
    pub holder_id: Option<String>,
    /// Holder name.
    #[arg(long)]
    pub holder_name: Option<String>,
    /// The number printed on the license.
    #[arg(long = "number")]
    pub license_number: Option<String>,
    /// Issuing office code (USCC or region code).
    #[arg(long)]
    pub issuer_code: Option<String>,
    /// Issuing office name.
    #[arg(long)]
    pub issuer_name: Option<String>,
    /// Issue date, YYYY-MM-DD [issue default: today].
    #[arg(long)]
    pub issue_date: Option<String>,
    /// Start of validity [issue default: the issue date].
    #[arg(long)]
    pub valid_from: Option<String>,
    /// End of validity; `long-term` or empty for none [issue default: valid-from plus the
    /// type's default validity, or long-term].
    #[arg(long)]
    pub valid_until: Option<String>,
    /// GB/T 2260 region code of the issuing jurisdiction.
    #[arg(long = "region")]
    pub region_code: Option<String>,
    /// Face field, repeatable: --face name=王芳 --face sex=女. `key=` removes a field.
    #[arg(long = "face", value_name = "KEY=VALUE", value_parser = parse_face)]
    pub face: Vec<(String, String)>,
    /// Identifier serial (assigned by the store when absent).
    #[arg(long)]
    pub serial: Option<String>,
}

/// `licctl issue`.
#[derive(Debug, Args)]
pub struct IssueArgs {
    #[command(flatten)]
    pub license: LicenseFlags,
    /// Accept a holder id whose check character does not match (flagged on the record).
    #[arg(long)]
    pub lenient: bool,
    /// Request id [default: a fresh random one].
    #[arg(long)]
    pub request_id: Option<String>,
    /// Seal the license here with this secret key file (the issuing department's own seal)
    /// instead of leaving it to the server; draws a serial when none is given.
    #[arg(long, conflicts_with = "lenient")]
    pub seal_key: Option<PathBuf>,
}

/// `licctl amend`.
#[derive(Debug, Args)]
pub struct AmendArgs {
    /// Identifier of the current version.
    pub identifier: String,
    #[command(flatten)]
    pub license: LicenseFlags,
    /// Request id [default: a fresh random one].
    #[arg(long)]
    pub request_id: Option<String>,
}

/// `licctl status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Identifier of the license.
    pub identifier: String,
    /// The operation.
    #[arg(value_enum)]
    pub op: OpArg,
    /// Reason (required with `other`).
    #[arg(long, default_value = "")]
    pub reason: String,
    /// Request id [default: a fresh random one].
    #[arg(long)]
    pub request_id: Option<String>,
}

/// `licctl get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    #[command(flatten)]
    pub holder: HolderArgs,
    /// Type code, template key or Chinese name.
    #[arg(long = "type", short = 't')]
    pub type_code: String,
    /// Serve from the local replica, possibly stale.
    #[arg(long)]
    pub serializable: bool,
}

/// `licctl get-id`.
#[derive(Debug, Args)]
pub struct GetIdArgs {
    /// GB/T 36904 identifier.
    pub identifier: String,
    /// Serve from the local replica, possibly stale.
    #[arg(long)]
    pub serializable: bool,
}

/// `licctl list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub holder: HolderArgs,
    /// Serve from the local replica, possibly stale.
    #[arg(long)]
    pub serializable: bool,
}

/// `licctl verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub holder: HolderArgs,
    /// Type code, template key or Chinese name.
    #[arg(long = "type", short = 't')]
    pub type_code: String,
    /// The service item that accepts the license instead of paper (see `licctl item list`).
    #[arg(long)]
    pub service_item: String,
    /// Why the license is checked: a case or file number, say.
    #[arg(long)]
    pub purpose: String,
    /// Serve from the local replica, possibly stale.
    #[arg(long)]
    pub serializable: bool,
}

/// `licctl verify-items`.
#[derive(Debug, Args)]
pub struct VerifyItemsArgs {
    #[command(flatten)]
    pub holder: HolderArgs,
    /// Why the licenses are checked: a case or file number, say.
    #[arg(long)]
    pub purpose: String,
    /// Serve from the local replica, possibly stale.
    #[arg(long)]
    pub serializable: bool,
}

/// A dataset encoding, or detection by file extension.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// `.csv` → csv, anything else → jsonl.
    #[default]
    Auto,
    /// One JSON object per line.
    Jsonl,
    /// Flat columns, face as a JSON string.
    Csv,
}

impl FormatArg {
    /// The concrete format for `path`.
    pub fn resolve(self, path: &std::path::Path) -> Format {
        match self {
            FormatArg::Auto => Format::from_path(path),
            FormatArg::Jsonl => Format::Jsonl,
            FormatArg::Csv => Format::Csv,
        }
    }
}

/// `licctl import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Dataset file (JSONL or CSV; see `licctl gen`).
    pub file: PathBuf,
    /// Records per Import call; a failed call repeats only its chunk.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch: u64,
    /// Write rejected records here, one JSON object per line.
    #[arg(long)]
    pub reject_file: Option<PathBuf>,
    /// File encoding.
    #[arg(long, value_enum, default_value_t)]
    pub format: FormatArg,
    /// Treat every record as lenient_holder_check = true.
    #[arg(long)]
    pub lenient: bool,
}

/// `licctl gen`.
#[derive(Debug, Args)]
pub struct GenArgs {
    /// Number of records.
    #[arg(long)]
    pub count: u64,
    /// Random seed; equal seeds and as-of dates give equal files.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output file.
    #[arg(long)]
    pub out: PathBuf,
    /// File encoding.
    #[arg(long, value_enum, default_value_t)]
    pub format: FormatArg,
    /// The date the dataset is generated "as of", YYYY-MM-DD [default: today, UTC]. Valid
    /// records are valid on it, expired ones ended before it.
    #[arg(long)]
    pub as_of: Option<String>,
}

/// `licctl wait-leader`.
#[derive(Debug, Args)]
pub struct WaitLeaderArgs {
    /// Give up after this many seconds (exit code 3).
    #[arg(long, default_value_t = 60)]
    pub timeout_s: u64,
}

/// `licctl wait-converged`.
#[derive(Debug, Args)]
pub struct WaitConvergedArgs {
    /// Give up after this many seconds (exit code 3).
    #[arg(long, default_value_t = 120)]
    pub timeout_s: u64,
}

/// `licctl issue-each`.
#[derive(Debug, Args)]
pub struct IssueEachArgs {
    /// Dataset file (JSONL or CSV, as for `import`). Records that are not valid are issued as
    /// valid: Issue sets no status.
    pub file: PathBuf,
    /// Append the identifier of every acknowledged write here, one per line.
    #[arg(long)]
    pub acked_file: Option<PathBuf>,
    /// File encoding.
    #[arg(long, value_enum, default_value_t)]
    pub format: FormatArg,
    /// Issue every record with lenient_holder_check = true.
    #[arg(long)]
    pub lenient: bool,
    /// Attempts per record, the first included (pauses double from 50 ms up to 1 s).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub attempts: u32,
}

/// `licctl check-acked`.
#[derive(Debug, Args)]
pub struct CheckAckedArgs {
    /// File of identifiers, one per line (blank lines and `#` comments are skipped).
    pub file: PathBuf,
    /// More identifiers to check.
    pub identifiers: Vec<String>,
}

/// `licctl demo-issue`.
#[derive(Debug, Args)]
pub struct DemoIssueArgs {
    /// Write DEMO_CITIZEN, DEMO_COMPANY, DEMO_CARD, DEMO_LICENSE and DEMO_CARD_ISSUER here
    /// (shell syntax).
    #[arg(long)]
    pub out: PathBuf,
    /// First register this public key (a `.pub` or secret key file) as the seal key of the
    /// ID card's issuer, so the card is sealed by a node that holds the secret key.
    #[arg(long)]
    pub seal_key: Option<PathBuf>,
}

/// `licctl endpoint ...`.
#[derive(Debug, Subcommand)]
pub enum EndpointCommand {
    /// Cluster.Status of every endpoint: id, addr, role, term, leader, last log, applied.
    Status,
    /// grpc.health.v1 liveness and readiness of every endpoint, with the call's latency.
    Health,
}

/// `licctl member ...`.
#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// List members and the leader.
    List,
    /// Add a non-voting member; waits until it has caught up unless --no-wait.
    AddLearner {
        /// Node id.
        id: u64,
        /// Its Raft/gRPC address, host:port.
        addr: String,
        /// Return once the learner is added, without waiting for it to catch up.
        #[arg(long)]
        no_wait: bool,
    },
    /// Make a learner a voter.
    Promote {
        /// Node id.
        id: u64,
    },
    /// Remove a member.
    Remove {
        /// Node id.
        id: u64,
    },
}

/// Parses `KEY=VALUE`; the value may contain `=` and may be empty.
pub fn parse_face(s: &str) -> Result<(String, String), String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))?;
    let key = key.trim();
    if key.is_empty() {
        return Err(format!("empty key in {s:?}"));
    }
    Ok((key.to_owned(), value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn face_flags() {
        let cases: [(&str, Option<(&str, &str)>); 6] = [
            ("name=王芳", Some(("name", "王芳"))),
            ("scope=a=b", Some(("scope", "a=b"))),
            ("address=", Some(("address", ""))),
            (" sex =女", Some(("sex", "女"))),
            ("noequals", None),
            ("=value", None),
        ];
        for (input, want) in cases {
            let got = parse_face(input);
            match want {
                Some((k, v)) => assert_eq!(got, Ok((k.to_owned(), v.to_owned())), "{input}"),
                None => assert!(got.is_err(), "{input}"),
            }
        }
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("licctl").chain(args.iter().copied()))
    }

    #[test]
    fn repeated_face_flags_keep_order() {
        let cli = parse(&[
            "issue",
            "--type",
            "resident-id-card",
            "--face",
            "a=1",
            "--face",
            "b=2",
        ])
        .expect("parses");
        let Command::Issue(issue) = cli.command else {
            panic!("not issue")
        };
        let want = vec![
            ("a".to_owned(), "1".to_owned()),
            ("b".to_owned(), "2".to_owned()),
        ];
        assert_eq!(issue.license.face, want);
    }

    #[test]
    fn command_lines() {
        // (arguments, parses)
        let cases: [(&[&str], bool); 24] = [
            (&["endpoint", "status"], true),
            (
                &["member", "add-learner", "4", "127.0.0.1:7004", "--no-wait"],
                true,
            ),
            (&["member", "promote", "4"], true),
            (&["status", "ID", "lift-suspension"], true),
            (
                &["status", "ID", "revoke-as-penalty", "--reason", "x"],
                true,
            ),
            (&["status", "ID", "resume"], false),
            (
                &[
                    "get",
                    "--holder-kind",
                    "citizen_id",
                    "--holder",
                    "X",
                    "--type",
                    "t",
                ],
                true,
            ),
            (
                &[
                    "get",
                    "-k",
                    "001",
                    "--holder",
                    "X",
                    "--type",
                    "t",
                    "--serializable",
                ],
                true,
            ),
            (
                &["list", "--holder-kind", "passport", "--holder", "X"],
                false,
            ),
            (&["import", "f.jsonl", "--batch", "0"], false),
            (
                &["import", "f.csv", "--format", "csv", "--reject-file", "r"],
                true,
            ),
            (
                &["gen", "--count", "10", "--seed", "7", "--out", "x.jsonl"],
                true,
            ),
            (&["-o", "json", "digest"], true),
            (&["--face", "a=b", "issue"], false),
            (&["wait-leader"], true),
            (&["wait-leader", "--timeout-s", "5"], true),
            (&["wait-leader", "--timeout-s", "-1"], false),
            (&["leader"], true),
            (&["wait-converged", "--timeout-s", "120"], true),
            (&["issue-each", "f.jsonl", "--acked-file", "a.txt"], true),
            (&["issue-each", "f.jsonl", "--attempts", "0"], false),
            (&["check-acked", "a.txt", "ID1", "ID2"], true),
            (&["check-acked"], false),
            (&["demo-issue"], false),
        ];
        for (args, ok) in cases {
            assert_eq!(parse(args).is_ok(), ok, "{args:?}");
        }
    }

    #[test]
    fn endpoints_split_on_commas() {
        let cli = parse(&["--endpoints", "127.0.0.1:1,127.0.0.1:2", "digest"]).expect("parses");
        assert_eq!(cli.endpoints, ["127.0.0.1:1", "127.0.0.1:2"]);
        let cli = parse(&["digest", "-o", "json"]).expect("parses");
        assert_eq!(cli.output, OutputFormat::Json);
    }
}

/// `licctl query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// Type code, template key or Chinese name.
    #[arg(long = "type", short = 't')]
    pub type_code: Option<String>,
    /// License number printed on the face (needs --type).
    #[arg(long)]
    pub number: Option<String>,
    /// Recorded status (valid, suspended, revoked, ...); repeat for any of several.
    #[arg(long = "status")]
    pub statuses: Vec<String>,
    /// Issuer code.
    #[arg(long)]
    pub issuer: Option<String>,
    /// GB/T 2260 region: 31 or 310000 (province), 3101 (city), 310115 (county).
    #[arg(long)]
    pub region: Option<String>,
    /// Valid or suspended licenses whose last valid day is before YYYY-MM-DD.
    #[arg(long)]
    pub expires_before: Option<String>,
    /// Licenses changed after this revision.
    #[arg(long)]
    pub changed_since: Option<u64>,
    /// Licenses per page (at most 1000).
    #[arg(long, default_value_t = 100)]
    pub page_size: u32,
    /// Continue after a previous page's cursor.
    #[arg(long)]
    pub cursor: Option<String>,
    /// Follow cursors until every page is fetched.
    #[arg(long)]
    pub all: bool,
    /// Count matches instead of listing them (no record is read).
    #[arg(long)]
    pub count: bool,
    /// Show the index used, the key ranges and the entries scanned.
    #[arg(long)]
    pub explain: bool,
    /// Serve from the local replica, possibly stale.
    #[arg(long)]
    pub serializable: bool,
}

/// `licctl watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// First revision to print; 0 prints only changes from now on.
    #[arg(long, default_value_t = 0)]
    pub from_revision: u64,
    /// Only these types (code, key or Chinese name); repeatable.
    #[arg(long = "type", short = 't')]
    pub types: Vec<String>,
    /// Only these issuer codes; repeatable.
    #[arg(long = "issuer")]
    pub issuers: Vec<String>,
    /// Only these holders, `ID` or `KIND:ID` (citizen_id, uscc); repeatable.
    #[arg(long = "holder")]
    pub holders: Vec<String>,
    /// Only changes to these statuses; repeatable.
    #[arg(long = "status")]
    pub statuses: Vec<String>,
    /// Ask for a progress notification after this many quiet milliseconds [server default
    /// 5000].
    #[arg(long, default_value_t = 0)]
    pub progress_ms: u32,
    /// Print progress notifications too.
    #[arg(long)]
    pub show_progress: bool,
    /// Stop after this many events.
    #[arg(long)]
    pub limit: Option<u64>,
    /// Stop after this many milliseconds.
    #[arg(long)]
    pub duration_ms: Option<u64>,
}

/// `licctl compact`.
#[derive(Debug, Args)]
pub struct CompactArgs {
    /// New oldest revision of the change feed.
    pub revision: u64,
}

/// `licctl leader`.
#[derive(Debug, Args)]
pub struct LeaderArgs {
    #[command(subcommand)]
    pub command: Option<LeaderCommand>,
}

/// `licctl leader ...`.
#[derive(Debug, Subcommand)]
pub enum LeaderCommand {
    /// Hand leadership to a voter and wait until it leads (Cluster.TransferLeader).
    Transfer {
        /// Node id of the voter to lead next.
        node_id: u64,
    },
}

/// `licctl snapshot ...`.
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Save a consistent copy of the whole state from the first endpoint that answers
    /// (Cluster.Snapshot); FILE appears only once it is whole and its digest checks.
    Save {
        /// Where to write the backup.
        file: PathBuf,
    },
    /// Check a backup's digest and print what it holds (no server needed).
    Status {
        /// The backup file.
        file: PathBuf,
    },
    /// Restore a backup into a new data directory as a member of a new cluster (offline, no
    /// server needed). Restore the same file on every member, with the same --init.
    Restore(RestoreArgs),
}

/// `licctl snapshot restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup file.
    pub file: PathBuf,
    /// The new data directory; must not exist or be empty.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// This member's node id in the new cluster.
    #[arg(long)]
    pub id: u64,
    /// Every member of the new cluster, `id=host:port,...` (all voters).
    #[arg(long)]
    pub init: String,
}

/// `licctl check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(subcommand)]
    pub command: Option<CheckCommand>,
}

/// `licctl check ...`.
#[derive(Debug, Subcommand)]
pub enum CheckCommand {
    /// Offer a fixed load of 1 KiB writes (Cluster.Probe, which changes no record) for a
    /// minute and judge throughput and latency: PASS (exit 0) or FAIL (exit 1).
    Perf(PerfArgs),
}

/// `licctl check perf`.
#[derive(Debug, Args)]
pub struct PerfArgs {
    /// Load profile: s = 150 writes/s from 16 clients, m = 500/64, l = 1500/128,
    /// xl = 4000/256.
    #[arg(long, value_enum, default_value_t = LoadArg::S)]
    pub load: LoadArg,
    /// Seconds of load.
    #[arg(long, default_value_t = 60)]
    pub duration_s: u64,
}

/// `--load` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LoadArg {
    S,
    M,
    L,
    Xl,
}
