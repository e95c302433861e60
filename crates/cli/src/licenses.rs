//! The license commands: `issue`, `amend`, `status`, `get`, `get-id`, `list`, `verify`.
//!
//! Every write carries a request id (`--request-id`, or a fresh one from
//! [`licstore_client::new_request_id`]) and goes through [`licstore_client::Client::retrying`],
//! so a write whose answer was lost is repeated on another endpoint and applied once. Reads
//! retry the same way; `--serializable` lets any replica answer from its local state.

use std::io::Read;
use std::path::Path;

use anyhow::Context;
use licstore_client::new_request_id;
use licstore_model::{citizen_id_check_char, uscc_check_char, Date, HolderKind};
use licstore_proto::v1 as pb;
use licstore_proto::v1::licenses_client::LicensesClient;

use crate::args::{
    AmendArgs, GetArgs, GetIdArgs, HolderArgs, IssueArgs, KindArg, LicenseFlags, ListArgs,
    StatusArgs, VerifyArgs,
};
use crate::dataset::LicenseInput;
use crate::exit::usage;
use crate::output::emit;
use crate::view::{GetView, ListView, VerifyView, WriteView};
use crate::{convert, types, Ctx};

/// `licctl issue`.
pub async fn issue(ctx: &Ctx, args: IssueArgs) -> anyhow::Result<()> {
    let base = read_base(&args.license)?.unwrap_or_default();
    let mut content = apply_flags(base, &args.license)?;
    if args.license.file.is_none() {
        fill_issue_defaults(&mut content, &args.license, today())?;
    }
    let mut license = content.to_proto().map_err(|e| usage(e.to_string()))?;
    let seal_bundle = match &args.seal_key {
        // The holder-id check outcome is the server's; a lenient request is sealed as strict.
        Some(path) => crate::seals::seal_issue_request(
            &mut license,
            false,
            &crate::seals::read_secret_key(path)?,
            crate::seals::now_ms(),
        )?,
        None => Vec::new(),
    };
    let request = pb::IssueRequest {
        request_id: args.request_id.unwrap_or_else(new_request_id),
        license: Some(license),
        lenient_holder_check: args.lenient,
        seal_bundle,
    };
    let mut client = ctx.client()?;
    let response = client
        .retrying(|ch| {
            let request = request.clone();
            async move { LicensesClient::new(ch).issue(request).await }
        })
        .await?;
    emit(ctx.output, &WriteView::new(&request.request_id, &response))
}

/// `licctl amend`.
pub async fn amend(ctx: &Ctx, args: AmendArgs) -> anyhow::Result<()> {
    let mut client = ctx.client()?;
    let base = match read_base(&args.license)? {
        Some(base) => base,
        None => current_content(&mut client, &args.identifier).await?,
    };
    let content = apply_flags(base, &args.license)?;
    let request = pb::AmendRequest {
        request_id: args.request_id.unwrap_or_else(new_request_id),
        identifier: args.identifier,
        license: Some(content.to_proto().map_err(|e| usage(e.to_string()))?),
        seal_bundle: Vec::new(),
    };
    let response = client
        .retrying(|ch| {
            let request = request.clone();
            async move { LicensesClient::new(ch).amend(request).await }
        })
        .await?;
    emit(ctx.output, &WriteView::new(&request.request_id, &response))
}

async fn current_content(
    client: &mut licstore_client::Client,
    identifier: &str,
) -> anyhow::Result<LicenseInput> {
    let request = pb::GetByIdentifierRequest {
        identifier: identifier.to_owned(),
        consistency: convert::consistency(false),
        max_staleness_ms: 0,
    };
    let response = client
        .retrying(|ch| {
            let request = request.clone();
            async move { LicensesClient::new(ch).get_by_identifier(request).await }
        })
        .await
        .context("fetch the current version")?;
    let license = response.license.context("the server returned no license")?;
    Ok(LicenseInput::from_license(&license))
}

/// `licctl status`.
pub async fn change_status(ctx: &Ctx, args: StatusArgs) -> anyhow::Result<()> {
    let op = convert::status_op_to_proto(args.op.into());
    if op == pb::StatusOp::Other && args.reason.trim().is_empty() {
        return Err(usage("the other operation needs --reason"));
    }
    let request = pb::ChangeStatusRequest {
        request_id: args.request_id.unwrap_or_else(new_request_id),
        identifier: args.identifier,
        op: op as i32,
        reason: args.reason,
    };
    let mut client = ctx.client()?;
    let response = client
        .retrying(|ch| {
            let request = request.clone();
            async move { LicensesClient::new(ch).change_status(request).await }
        })
        .await?;
    emit(ctx.output, &WriteView::new(&request.request_id, &response))
}

/// `licctl get`.
pub async fn get(ctx: &Ctx, args: GetArgs) -> anyhow::Result<()> {
    let kind = holder_kind(&args.holder, Some(&args.type_code))?;
    let request = pb::GetRequest {
        holder_kind: convert::holder_kind_to_proto(kind) as i32,
        holder_id: args.holder.holder.clone(),
        type_code: types::resolve(&args.type_code),
        consistency: convert::consistency(args.serializable),
        max_staleness_ms: 0,
    };
    let mut client = ctx.client()?;
    let response = client
        .retrying(|ch| {
            let request = request.clone();
            async move { LicensesClient::new(ch).get(request).await }
        })
        .await?;
    emit(ctx.output, &GetView::from(&response))
}

/// `licctl get-id`.
pub async fn get_by_identifier(ctx: &Ctx, args: GetIdArgs) -> anyhow::Result<()> {
    let request = pb::GetByIdentifierRequest {
        identifier: args.identifier,
        consistency: convert::consistency(args.serializable),
        max_staleness_ms: 0,
    };
    let mut client = ctx.client()?;
    let response = client
        .retrying(|ch| {
            let request = request.clone();
            async move { LicensesClient::new(ch).get_by_identifier(request).await }
        })
        .await?;
    emit(ctx.output, &GetView::from(&response))
}

/// `licctl list`.
pub async fn list(ctx: &Ctx, args: ListArgs) -> anyhow::Result<()> {
    let mut client = ctx.client()?;
    let response = list_by_holder(&mut client, &args.holder, args.serializable).await?;
    emit(ctx.output, &ListView::from(&response))
}

/// ListByHolder for the holder named by `holder`.
pub async fn list_by_holder(
    client: &mut licstore_client::Client,
    holder: &HolderArgs,
    serializable: bool,
) -> anyhow::Result<pb::ListByHolderResponse> {
    let kind = holder_kind(holder, None)?;
    let request = pb::ListByHolderRequest {
        holder_kind: convert::holder_kind_to_proto(kind) as i32,
        holder_id: holder.holder.clone(),
        consistency: convert::consistency(serializable),
        max_staleness_ms: 0,
    };
    let response = client
        .retrying(|ch| {
            let request = request.clone();
            async move { LicensesClient::new(ch).list_by_holder(request).await }
        })
        .await?;
    Ok(response)
}

/// `licctl verify`.
pub async fn verify(ctx: &Ctx, args: VerifyArgs) -> anyhow::Result<()> {
    let kind = holder_kind(&args.holder, Some(&args.type_code))?;
    let mut client = ctx.client()?;
    let request = pb::VerifyRequest {
        holder_kind: convert::holder_kind_to_proto(kind) as i32,
        holder_id: args.holder.holder.clone(),
        type_code: types::resolve(&args.type_code),
        service_item: args.service_item,
        consistency: convert::consistency(args.serializable),
        max_staleness_ms: 0,
        purpose: args.purpose,
    };
    let response = call_verify(&mut client, request).await?;
    emit(ctx.output, &VerifyView::from(&response))
}

/// One Verify call, retried.
pub async fn call_verify(
    client: &mut licstore_client::Client,
    request: pb::VerifyRequest,
) -> anyhow::Result<pb::VerifyResponse> {
    let response = client
        .retrying(|ch| {
            let request = request.clone();
            async move { LicensesClient::new(ch).verify(request).await }
        })
        .await?;
    Ok(response)
}

/// The holder kind: the flag, else the type's holder kind, else a guess from the check
/// character of the id.
pub fn holder_kind(holder: &HolderArgs, type_name: Option<&str>) -> anyhow::Result<HolderKind> {
    if let Some(kind) = holder.holder_kind {
        return Ok(kind.into());
    }
    if let Some(template) = type_name.and_then(types::find) {
        return Ok(template.holder_kind);
    }
    guess_holder_kind(&holder.holder).ok_or_else(|| usage(unknown_kind_message(&holder.holder)))
}

/// Why an id is neither kind, as each validator sees it.
fn unknown_kind_message(id: &str) -> String {
    use licstore_model::{validate_holder_id, CheckMode, Date};
    let now_secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let today = Date::from_unix_secs(now_secs + 8 * 3600);
    let reason = |kind| match validate_holder_id(kind, id, CheckMode::Strict, today) {
        Ok(_) => "valid".to_owned(),
        Err(e) => e.to_string(),
    };
    format!(
        "holder id {id:?} is neither a valid citizen ID number ({}) nor a valid unified social \
         credit code ({}); fix it or pass --holder-kind",
        reason(HolderKind::CitizenId),
        reason(HolderKind::Uscc)
    )
}

/// `CitizenId` when the id's GB 11643 check character matches, `Uscc` when its GB 32100 one
/// does, `None` otherwise.
pub fn guess_holder_kind(id: &str) -> Option<HolderKind> {
    let (first17, last) = (id.get(..17)?, id.get(17..)?);
    let last = last.chars().next().filter(|_| last.len() == 1)?;
    if citizen_id_check_char(first17).ok() == Some(last) {
        return Some(HolderKind::CitizenId);
    }
    if uscc_check_char(first17).ok() == Some(last) {
        return Some(HolderKind::Uscc);
    }
    None
}

/// The license content from `--file`, if given.
fn read_base(flags: &LicenseFlags) -> anyhow::Result<Option<LicenseInput>> {
    let Some(path) = &flags.file else {
        return Ok(None);
    };
    let text = read_text(path)?;
    let content = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a NewLicense JSON object", path.display()))?;
    Ok(Some(content))
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    let mut text = String::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("read stdin")?;
    } else {
        text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    }
    Ok(text)
}

/// `base` with every given flag applied. `--face key=` removes a face field.
pub fn apply_flags(mut base: LicenseInput, flags: &LicenseFlags) -> anyhow::Result<LicenseInput> {
    let set = |target: &mut String, value: &Option<String>| {
        if let Some(v) = value {
            *target = v.clone();
        }
    };
    if let Some(t) = &flags.type_code {
        base.type_code = types::resolve(t);
    }
    set(&mut base.holder.id, &flags.holder_id);
    set(&mut base.holder.name, &flags.holder_name);
    set(&mut base.license_number, &flags.license_number);
    set(&mut base.issuer.code, &flags.issuer_code);
    set(&mut base.issuer.name, &flags.issuer_name);
    set(&mut base.issue_date, &flags.issue_date);
    set(&mut base.valid_from, &flags.valid_from);
    set(
        &mut base.valid_until,
        &flags.valid_until.as_ref().map(|v| long_term_as_empty(v)),
    );
    set(&mut base.region_code, &flags.region_code);
    set(&mut base.serial, &flags.serial);
    base.holder.kind = resolved_kind(flags.holder_kind, &base)?;
    for (key, value) in &flags.face {
        match value.is_empty() {
            true => base.face.remove(key),
            false => base.face.insert(key.clone(), value.clone()),
        };
    }
    Ok(base)
}

fn resolved_kind(flag: Option<KindArg>, base: &LicenseInput) -> anyhow::Result<String> {
    if let Some(kind) = flag {
        return Ok(HolderKind::from(kind).as_str().to_owned());
    }
    if !base.holder.kind.is_empty() {
        return Ok(base.holder.kind.clone());
    }
    match types::find(&base.type_code) {
        Some(t) => Ok(t.holder_kind.as_str().to_owned()),
        None => Err(usage(
            "pass --holder-kind (the license type is not a built-in one)",
        )),
    }
}

fn long_term_as_empty(value: &str) -> String {
    match value.trim() {
        "long-term" | "长期" => String::new(),
        other => other.to_owned(),
    }
}

/// Issue date today, validity from the issue date for the type's default period.
pub fn fill_issue_defaults(
    content: &mut LicenseInput,
    flags: &LicenseFlags,
    today: Date,
) -> anyhow::Result<()> {
    if content.issue_date.is_empty() {
        content.issue_date = today.to_string();
    }
    if content.valid_from.is_empty() {
        content.valid_from = content.issue_date.clone();
    }
    let years = types::find(&content.type_code).and_then(|t| t.default_validity_years);
    if let (None, Some(years)) = (&flags.valid_until, years) {
        let from =
            Date::parse(&content.valid_from).map_err(|e| usage(format!("--valid-from: {e}")))?;
        content.valid_until = from
            .add_years(years)
            .map_err(|e| usage(e.to_string()))?
            .to_string();
    }
    Ok(())
}

/// Today's UTC date.
pub fn today() -> Date {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Date::from_unix_secs(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_kind_is_guessed_from_check_characters() {
        let cases = [
            ("11010519491231002X", Some(HolderKind::CitizenId)),
            ("310115198506120042", Some(HolderKind::CitizenId)),
            ("91110000600037341L", Some(HolderKind::Uscc)),
            ("110105194912310021", None),
            ("short", None),
            ("王芳王芳王芳王芳王芳王芳", None),
        ];
        for (id, want) in cases {
            assert_eq!(guess_holder_kind(id), want, "{id}");
        }
    }

    #[test]
    fn flags_override_and_defaults_fill() {
        let flags = LicenseFlags {
            type_code: Some("resident-id-card".into()),
            holder_id: Some("310115198506120042".into()),
            face: vec![
                ("name".into(), "王芳".into()),
                ("gone".into(), String::new()),
            ],
            ..LicenseFlags::default()
        };
        let mut base = LicenseInput::default();
        base.face.insert("gone".into(), "x".into());
        let mut content = apply_flags(base, &flags).expect("applies");
        let today = Date::new(2024, 2, 29).expect("date");
        fill_issue_defaults(&mut content, &flags, today).expect("defaults");
        assert_eq!(content.type_code, types::resolve("resident-id-card"));
        assert_eq!(content.holder.kind, "citizen_id");
        assert_eq!(content.issue_date, "2024-02-29");
        assert_eq!(content.valid_from, "2024-02-29");
        assert_eq!(content.valid_until, "2034-02-28");
        assert_eq!(content.face.len(), 1);
    }

    #[test]
    fn long_term_spellings() {
        for (input, want) in [
            ("long-term", ""),
            ("长期", ""),
            ("2030-01-01", "2030-01-01"),
        ] {
            assert_eq!(long_term_as_empty(input), want);
        }
    }
}

#[cfg(test)]
mod unknown_kind_tests {
    use super::unknown_kind_message;

    #[test]
    fn names_why_each_kind_fails() {
        let table = [
            ("310115198808080421", "expected 9"),
            ("91310115MA1K3YJ12H", "unified social credit code"),
            ("short", "citizen ID number"),
        ];
        for (id, want) in table {
            let msg = unknown_kind_message(id);
            assert!(msg.contains(want), "{id}: {msg}");
            assert!(msg.contains("--holder-kind"), "{id}: {msg}");
        }
    }
}
