//! `licctl keys`, `export` and `verify-offline`: seal keys, and licenses that
//! are checked with no server at all.
//!
//! `verify-offline` decides from two files only: the exported license (record, seal bundle,
//! the store's key chain) and a trust file. The trust list must verify under the root key the
//! caller pins (`--root-key-id`, required), must hold the sealing key, and that key's record,
//! not the one the export brings along, judges the signing time. The signature is checked over the
//! payload, and the payload against the record's issued content and every field.

use std::path::Path;

use anyhow::Context;
use licstore_model::{
    build_license, canonical, Date, Holder, HolderKind, Identifier, Issuer, License, NewLicense,
    TemplateRegistry,
};
use licstore_proto::v1 as pb;
use licstore_proto::v1::seals_client::SealsClient;
use licstore_seal::{
    encode_key_file, judge, parse_key_file, ExportDocument, KeyId, PublicKey, SealBundle,
    SecretKey, Suite, TrustFile, TrustList, SM2_DEFAULT_DIST_ID,
};
use serde::Serialize;

use crate::args::{ExportArgs, KeysCommand, VerifyOfflineArgs};
use crate::exit::{reported, usage, FAILURE};
use crate::output::{emit, Render, Table};
use crate::Ctx;

/// Runs one `licctl keys` command.
pub async fn keys(ctx: &Ctx, command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Generate {
            suite,
            dist_id,
            out,
        } => generate(ctx, &suite, dist_id.as_deref(), &out),
        KeysCommand::Register {
            authority,
            key_file,
            valid_from_ms,
        } => {
            let public_key = read_public_key(&key_file)?.to_bytes();
            let request = pb::RegisterKeyRequest {
                authority,
                public_key,
                valid_from_ms,
            };
            let r = call(ctx, |mut c| {
                let request = request.clone();
                async move { c.register_key(request).await }
            })
            .await?;
            emit(ctx.output, &KeysView::of(&r))
        }
        KeysCommand::Rotate {
            authority,
            new_key_file,
            at_ms,
        } => {
            let new_public_key = read_public_key(&new_key_file)?.to_bytes();
            let request = pb::RotateKeyRequest {
                authority,
                new_public_key,
                at_ms,
            };
            let r = call(ctx, |mut c| {
                let request = request.clone();
                async move { c.rotate_key(request).await }
            })
            .await?;
            emit(ctx.output, &KeysView::of(&r))
        }
        KeysCommand::Revoke { key_id, from_ms } => {
            let request = pb::RevokeKeyRequest {
                key_id,
                revoked_from_ms: from_ms,
            };
            let r = call(ctx, |mut c| {
                let request = request.clone();
                async move { c.revoke_key(request).await }
            })
            .await?;
            emit(ctx.output, &KeysView::of(&r))
        }
        KeysCommand::List => {
            let r = call(ctx, |mut c| async move {
                c.list_keys(pb::ListKeysRequest::default()).await
            })
            .await?;
            emit(ctx.output, &KeysView::of(&r))
        }
    }
}

/// Registers the public key of `path` for `authority`, valid from now; the same key already
/// active for it is fine.
pub async fn register_key(ctx: &Ctx, authority: String, path: &Path) -> anyhow::Result<()> {
    let public_key = read_public_key(path)?;
    let request = pb::RegisterKeyRequest {
        authority: authority.clone(),
        public_key: public_key.to_bytes(),
        valid_from_ms: 0,
    };
    let registered = call(ctx, |mut c| {
        let request = request.clone();
        async move { c.register_key(request).await }
    })
    .await;
    if registered.is_ok() {
        return Ok(());
    }
    let listed = call(ctx, |mut c| async move {
        c.list_keys(pb::ListKeysRequest::default()).await
    })
    .await?;
    let key_id = public_key.key_id().to_string();
    let already = listed
        .keys
        .iter()
        .any(|k| k.active && k.authority == authority && k.key_id == key_id);
    registered
        .map(drop)
        .or_else(|e| if already { Ok(()) } else { Err(e) })
}

pub(crate) async fn call<T, F, Fut>(ctx: &Ctx, f: F) -> anyhow::Result<T>
where
    F: Fn(SealsClient<licstore_client::Transport>) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let mut client = ctx.client()?;
    Ok(client
        .retrying(|ch| f(SealsClient::new(ch).max_decoding_message_size(64 << 20)))
        .await?)
}

fn generate(ctx: &Ctx, suite: &str, dist_id: Option<&str>, out: &Path) -> anyhow::Result<()> {
    let suite = Suite::from_name(suite)
        .ok_or_else(|| usage(format!("--suite {suite}: ed25519 or sm2-sm3")))?;
    let mut seed = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut seed);
    // The seed is the secret key itself; it lives only in the file written below.
    let key = match suite {
        Suite::Ed25519 => SecretKey::ed25519_from_seed(&seed),
        Suite::Sm2Sm3 => SecretKey::sm2_from_seed(&seed, dist_id.unwrap_or(SM2_DEFAULT_DIST_ID))
            .map_err(|e| usage(format!("--dist-id: {e}")))?,
    };
    write_private(out, encode_key_file(&key).as_bytes())?;
    let public = key.public_key();
    let pub_path = public_path(out);
    std::fs::write(&pub_path, hex(&public.to_bytes()) + "\n")
        .with_context(|| format!("write {}", pub_path.display()))?;
    emit(
        ctx.output,
        &GeneratedView {
            key_id: key.key_id().to_string(),
            suite: suite.name().to_owned(),
            secret_key_file: out.display().to_string(),
            public_key_file: pub_path.display().to_string(),
        },
    )
}

/// `FILE.pub` beside a secret key file.
fn public_path(secret: &Path) -> std::path::PathBuf {
    let mut name = secret.as_os_str().to_owned();
    name.push(".pub");
    name.into()
}

/// Creates `path` readable by its owner only, refusing to overwrite.
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("create {}", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

/// A public key from a secret key file or a `.pub` file (hex of the public key encoding).
fn read_public_key(path: &Path) -> anyhow::Result<PublicKey> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    if text.trim_start().starts_with("-----BEGIN") {
        let key = parse_key_file(&text).map_err(|e| usage(format!("{}: {e}", path.display())))?;
        return Ok(key.public_key());
    }
    let bytes = unhex(text.trim()).map_err(|e| usage(format!("{}: {e}", path.display())))?;
    PublicKey::from_bytes(&bytes).map_err(|e| usage(format!("{}: {e}", path.display())))
}

/// Reads a secret key file (`--seal-key`, `--root-key`).
pub fn read_secret_key(path: &Path) -> anyhow::Result<SecretKey> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    parse_key_file(&text).map_err(|e| usage(format!("{}: {e}", path.display())))
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

/// Lowercase hex digits of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of a string of hex digits.
pub(crate) fn unhex(text: &str) -> Result<Vec<u8>, String> {
    if !text.len().is_multiple_of(2) {
        return Err("odd number of hex digits".into());
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(text.get(i..i + 2).unwrap_or("zz"), 16)
                .map_err(|_| format!("not hex at character {i}"))
        })
        .collect()
}

/// The model form of an issue request's license, as the server will store it: type given as
/// a template key is resolved, the holder id uppercased.
pub fn model_license(new: &pb::NewLicense) -> anyhow::Result<NewLicense> {
    let bad = |field: &str, e: &dyn std::fmt::Display| usage(format!("license.{field}: {e}"));
    let templates = TemplateRegistry::builtin();
    let template = templates
        .get(&new.type_code)
        .map_err(|e| bad("type_code", &e))?;
    let holder = new.holder.clone().unwrap_or_default();
    let kind = match pb::HolderKind::try_from(holder.kind) {
        Ok(pb::HolderKind::CitizenId) => HolderKind::CitizenId,
        Ok(pb::HolderKind::Uscc) => HolderKind::Uscc,
        _ => return Err(bad("holder.kind", &"citizen id or uscc")),
    };
    let issuer = new.issuer.clone().unwrap_or_default();
    let date = |field: &str, text: &str| Date::parse(text).map_err(|e| bad(field, &e));
    Ok(NewLicense {
        type_code: template.type_code.clone(),
        holder: Holder {
            kind,
            id: holder.id.trim().to_uppercase(),
            name: holder.name,
            legacy_checksum: false,
        },
        license_number: new.license_number.clone(),
        issuer: Issuer {
            code: issuer.code,
            name: issuer.name,
        },
        issue_date: date("issue_date", &new.issue_date)?,
        valid_from: date("valid_from", &new.valid_from)?,
        valid_until: match new.valid_until.as_str() {
            "" => None,
            text => Some(date("valid_until", text)?),
        },
        region_code: new.region_code.clone(),
        face: new
            .face
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        serial: Some(new.serial.clone()).filter(|s| !s.is_empty()),
    })
}

/// Seals an issue request's license as the issuing department's own system would: draws a
/// serial when none is given (the seal covers the identifier), then seals the record the
/// store will build. `legacy_checksum` is what lenient holder checking will record.
pub fn seal_issue_request(
    new: &mut pb::NewLicense,
    legacy_checksum: bool,
    key: &SecretKey,
    signed_at_ms: u64,
) -> anyhow::Result<Vec<u8>> {
    if new.serial.is_empty() {
        new.serial = random_serial(new);
    }
    let model = model_license(new)?;
    let serial = model.serial.clone().unwrap_or_default();
    let id = Identifier::generate(&model.type_code, &model.issuer.code, &serial, 1)
        .map_err(|e| usage(format!("license.serial: {e}")))?;
    let license = build_license(model, id, legacy_checksum);
    let bundle = SealBundle::for_license(
        key,
        &license.issuer.code,
        signed_at_ms,
        canonical::issued_digest(&license),
        &license.disclosable_fields(),
        &mut rand::rng(),
    )?;
    Ok(bundle.to_bytes())
}

/// The issue year (or `0000`) and 12 random characters of `0-9A-Z`.
fn random_serial(new: &pb::NewLicense) -> String {
    const DIGITS: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let year = new.issue_date.get(..4).unwrap_or("0000");
    let mut rng = rand::rng();
    let tail: String = (0..12)
        .map(|_| char::from(DIGITS[rand::Rng::random_range(&mut rng, 0..36)]))
        .collect();
    format!("{year}{tail}")
}

/// `licctl export IDENTIFIER --out FILE`.
pub async fn export(ctx: &Ctx, args: ExportArgs) -> anyhow::Result<()> {
    let request = pb::ExportLicenseRequest {
        identifier: args.identifier,
        consistency: 0,
    };
    let r = call(ctx, |mut c| {
        let request = request.clone();
        async move { c.export_license(request).await }
    })
    .await?;
    let doc = ExportDocument::from_bytes(&r.document)?;
    let license = canonical::decode(&doc.record)?;
    let out = &args.out;
    let bytes = if args.as_import {
        let mut line = serde_json::to_vec(&crate::dataset::Record::of_license(&license))?;
        line.push(b'\n');
        line
    } else {
        r.document.clone()
    };
    std::fs::write(out, &bytes).with_context(|| format!("write {}", out.display()))?;
    emit(
        ctx.output,
        &ExportView {
            file: out.display().to_string(),
            identifier: license.identifier,
            keys: doc.keys.len(),
            bytes: bytes.len(),
            status_entry: doc.status_entry.is_some(),
        },
    )
}

/// `licctl verify-offline`: exits non-zero unless the seal holds under the trust list.
pub fn verify_offline_cmd(ctx: &Ctx, args: VerifyOfflineArgs) -> anyhow::Result<()> {
    let (doc, trust, pin) = offline_inputs(&args.file, &args.trust, &args.root_key_id)?;
    let max_age_ms = args.max_list_age_s.saturating_mul(1000);
    let inputs = crate::status_lists::ListInputs {
        files: &args.status_lists,
        not_before_ms: now_ms().saturating_sub(max_age_ms),
    };
    let report = verify_offline(&doc, &trust, pin, &inputs);
    emit(ctx.output, &report)?;
    if report.valid {
        Ok(())
    } else {
        Err(reported(FAILURE, format!("not valid: {}", report.reason)))
    }
}

/// What an offline check reads: the document, the trust file and the pinned root key id.
pub fn offline_inputs(
    file: &Path,
    trust: &Path,
    root_key_id: &str,
) -> anyhow::Result<(Vec<u8>, Vec<u8>, KeyId)> {
    let doc = std::fs::read(file).with_context(|| format!("read {}", file.display()))?;
    let trust = std::fs::read(trust).with_context(|| format!("read {}", trust.display()))?;
    let pin = root_key_id
        .trim()
        .parse::<KeyId>()
        .map_err(|e| usage(format!("--root-key-id: {e}")))?;
    Ok((doc, trust, pin))
}

/// The outcome of an offline check.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct OfflineReport {
    /// True when the seal holds under the trust list.
    pub valid: bool,
    /// What decided it.
    pub reason: String,
    pub identifier: String,
    pub authority: String,
    pub key_id: String,
    pub signed_at_ms: u64,
    /// The key's verdict on the signing time, from the trust list.
    pub key_verdict: String,
    pub root_key_id: String,
    /// The status the record had when exported; the seal does not cover it.
    pub status_at_export: String,
    /// One line per status list checked (`--status-list`).
    pub status_lists: Vec<String>,
}

/// Checks an exported license against a trust file; see the module header.
pub fn verify_offline(
    doc: &[u8],
    trust: &[u8],
    pin: KeyId,
    status_lists: &crate::status_lists::ListInputs<'_>,
) -> OfflineReport {
    let mut report = OfflineReport::default();
    match check(doc, trust, pin, status_lists, &mut report) {
        Ok(()) => {
            report.valid = true;
            report.reason = "seal verified under the trust list".into();
        }
        Err(reason) => report.reason = reason,
    }
    report
}

fn check(
    doc: &[u8],
    trust: &[u8],
    pin: KeyId,
    status_lists: &crate::status_lists::ListInputs<'_>,
    report: &mut OfflineReport,
) -> Result<(), String> {
    let doc = ExportDocument::from_bytes(doc).map_err(|e| format!("export file: {e}"))?;
    let license: License =
        canonical::decode_verified(&doc.record).map_err(|e| format!("record: {e}"))?;
    report.identifier = license.identifier.clone();
    report.status_at_export = license.status.as_str().to_owned();
    let bundle = SealBundle::from_bytes(&license.seal).map_err(|e| format!("seal: {e}"))?;
    report.authority = bundle.payload.authority.clone();
    report.key_id = bundle.payload.key_id.to_string();
    report.signed_at_ms = bundle.payload.signed_at_ms;
    report.root_key_id = TrustFile::from_bytes(trust)
        .map(|f| f.root.key_id().to_string())
        .unwrap_or_default();
    let list = open_pinned_trust(trust, pin)?;
    let record = list
        .find(&bundle.payload.key_id)
        .ok_or_else(|| format!("key {} is not in the trust list", bundle.payload.key_id))?;
    if record.authority != license.issuer.code {
        return Err(format!(
            "the trust list has key {} for {}, not for the issuer {}",
            record.key_id, record.authority, license.issuer.code
        ));
    }
    let fields = license.disclosable_fields();
    let issued = canonical::issued_digest(&license);
    bundle
        .check_against(&record.public_key, &license.issuer.code, &issued, &fields)
        .map_err(|e| format!("seal: {e}"))?;
    let verdict = judge(record, bundle.payload.signed_at_ms);
    report.key_verdict = verdict.to_string();
    if !verdict.accepts() {
        return Err(format!("key {}: {verdict}", record.key_id));
    }
    let entry = doc.status_entry.as_ref();
    report.status_lists = crate::status_lists::check_lists(&license, entry, &list, status_lists)?;
    Ok(())
}

/// The trust list of a trust file, verified under its root, which must be the pinned one.
pub fn open_pinned_trust(trust: &[u8], pin: KeyId) -> Result<TrustList, String> {
    let file = TrustFile::from_bytes(trust).map_err(|e| format!("trust file: {e}"))?;
    if pin != file.root.key_id() {
        return Err(format!(
            "trust list is signed by root {}, not {pin}",
            file.root.key_id()
        ));
    }
    file.open().map_err(|e| format!("trust list: {e}"))
}

impl Render for OfflineReport {
    fn table(&self) -> Table {
        let mut t = Table::key_value();
        let rows = [
            ("valid", self.valid.to_string()),
            ("reason", self.reason.clone()),
            ("identifier", self.identifier.clone()),
            ("authority", self.authority.clone()),
            ("key id", self.key_id.clone()),
            ("signed at (ms)", self.signed_at_ms.to_string()),
            ("key verdict", self.key_verdict.clone()),
            ("trust root", self.root_key_id.clone()),
            ("status at export", self.status_at_export.clone()),
            ("status lists", self.status_lists.join("; ")),
        ];
        for (k, v) in rows {
            t.row([k.to_owned(), v]);
        }
        t
    }
}

/// Keys as printed.
#[derive(Clone, Debug, Serialize)]
pub struct KeysView {
    pub keys: Vec<KeyLine>,
    pub revision: u64,
}

/// One key as printed.
#[derive(Clone, Debug, Serialize)]
pub struct KeyLine {
    pub key_id: String,
    pub authority: String,
    pub suite: String,
    pub active: bool,
    pub valid_from_ms: u64,
    pub valid_until_ms: u64,
    pub revoked_from_ms: u64,
    pub replaced_by: String,
    /// Root key id of the imported trust list that vouches for the key; empty for own keys.
    pub trusted_via: String,
}

impl KeysView {
    fn of(r: &pb::SealKeysResponse) -> KeysView {
        KeysView {
            keys: r
                .keys
                .iter()
                .map(|k| KeyLine {
                    key_id: k.key_id.clone(),
                    authority: k.authority.clone(),
                    suite: k.suite.clone(),
                    active: k.active,
                    valid_from_ms: k.valid_from_ms,
                    valid_until_ms: k.valid_until_ms,
                    revoked_from_ms: k.revoked_from_ms,
                    replaced_by: k.replaced_by.clone(),
                    trusted_via: k.trusted_via.clone(),
                })
                .collect(),
            revision: r.revision,
        }
    }
}

impl Render for KeysView {
    fn table(&self) -> Table {
        let mut t = Table::new(&[
            "KEY ID",
            "AUTHORITY",
            "SUITE",
            "ACTIVE",
            "FROM MS",
            "UNTIL MS",
            "REVOKED MS",
            "VIA ROOT",
        ]);
        let ms = |v: u64| {
            if v == 0 {
                "-".to_owned()
            } else {
                v.to_string()
            }
        };
        for k in &self.keys {
            t.row([
                k.key_id.clone(),
                k.authority.clone(),
                k.suite.clone(),
                k.active.to_string(),
                ms(k.valid_from_ms),
                ms(k.valid_until_ms),
                ms(k.revoked_from_ms),
                match k.trusted_via.get(..8) {
                    Some(short) => format!("{short}…"),
                    None => "-".to_owned(),
                },
            ]);
        }
        t
    }
}

/// What `licctl keys generate` prints.
#[derive(Clone, Debug, Serialize)]
pub struct GeneratedView {
    pub key_id: String,
    pub suite: String,
    pub secret_key_file: String,
    pub public_key_file: String,
}

impl Render for GeneratedView {
    fn table(&self) -> Table {
        let mut t = Table::key_value();
        t.row(["key id".to_owned(), self.key_id.clone()]);
        t.row(["suite".to_owned(), self.suite.clone()]);
        t.row(["secret key file".to_owned(), self.secret_key_file.clone()]);
        t.row(["public key file".to_owned(), self.public_key_file.clone()]);
        t
    }
}

/// What `licctl export` prints.
#[derive(Clone, Debug, Serialize)]
pub struct ExportView {
    pub file: String,
    pub identifier: String,
    pub keys: usize,
    pub bytes: usize,
    /// Whether the export carries a signed status entry (needed by `--status-list`).
    pub status_entry: bool,
}

impl Render for ExportView {
    fn table(&self) -> Table {
        let mut t = Table::key_value();
        t.row(["file".to_owned(), self.file.clone()]);
        t.row(["identifier".to_owned(), self.identifier.clone()]);
        t.row(["key records".to_owned(), self.keys.to_string()]);
        t.row(["bytes".to_owned(), self.bytes.to_string()]);
        let entry = if self.status_entry { "signed" } else { "none" };
        t.row(["status entry".to_owned(), entry.to_owned()]);
        t
    }
}
