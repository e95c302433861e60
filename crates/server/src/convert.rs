//! Conversions between the protobuf API and the domain model, and the mapping of domain and
//! storage refusals onto gRPC status codes. Every refusal names the request field at fault.

use licstore_model::{
    Date, Holder, HolderKind, Issuer, License, LicenseStatus, ModelError, NewLicense, StatusOp,
};
use licstore_proto::v1 as pb;
use licstore_store::{RejectCode, Rejection};
use tonic::{Code, Status};

/// Metadata key naming the request field an error is about.
pub const FIELD_METADATA_KEY: &str = "licstore-field";

/// `INVALID_ARGUMENT` (or another code) for `field`, with the field in the message and metadata.
pub fn field_status(code: Code, field: &str, reason: impl std::fmt::Display) -> Status {
    let mut status = Status::new(code, format!("{field}: {reason}"));
    // Header values must be visible ASCII; other characters of a field name are escaped.
    let ascii: String = field.escape_default().collect();
    if let Ok(v) = ascii.parse() {
        status.metadata_mut().insert(FIELD_METADATA_KEY, v);
    }
    status
}

/// The same refusal with its field prefixed (e.g. `items[3].`), in message and metadata.
pub fn prefixed(status: &Status, prefix: &str) -> Status {
    let field = status
        .metadata()
        .get(FIELD_METADATA_KEY)
        .and_then(|v| v.to_str().ok());
    match field {
        Some(field) => {
            let reason = status
                .message()
                .strip_prefix(&format!("{field}: "))
                .unwrap_or(status.message());
            field_status(status.code(), &format!("{prefix}{field}"), reason)
        }
        None => Status::new(status.code(), format!("{prefix}: {}", status.message())),
    }
}

/// Prefixes every field named by `e` with `prefix` (e.g. `license.`).
pub fn model_status(e: &ModelError, prefix: &str) -> Status {
    match e {
        ModelError::InvalidField { field, reason } => {
            field_status(Code::InvalidArgument, &format!("{prefix}{field}"), reason)
        }
        ModelError::UnknownLicenseType { type_code } => field_status(
            Code::InvalidArgument,
            &format!("{prefix}type_code"),
            format!("unknown license type {type_code:?}"),
        ),
        ModelError::IllegalTransition { .. } => field_status(Code::FailedPrecondition, "op", e),
        ModelError::Decode { .. } => Status::internal(e.to_string()),
    }
}

/// The gRPC status for a refusal by the state machine.
pub fn rejection_status(r: &Rejection) -> Status {
    let code = match r.code {
        RejectCode::InvalidArgument => Code::InvalidArgument,
        RejectCode::FailedPrecondition => Code::FailedPrecondition,
        RejectCode::NotFound => Code::NotFound,
        RejectCode::AlreadyExists => Code::AlreadyExists,
    };
    field_status(code, &r.field, &r.message)
}

/// A required string field.
pub fn required<'a>(field: &str, value: &'a str) -> Result<&'a str, Status> {
    if value.trim().is_empty() {
        return Err(field_status(Code::InvalidArgument, field, "required"));
    }
    Ok(value)
}

/// Holder kind from the API enum.
pub fn holder_kind(field: &str, kind: i32) -> Result<HolderKind, Status> {
    match pb::HolderKind::try_from(kind) {
        Ok(pb::HolderKind::CitizenId) => Ok(HolderKind::CitizenId),
        Ok(pb::HolderKind::Uscc) => Ok(HolderKind::Uscc),
        _ => Err(field_status(
            Code::InvalidArgument,
            field,
            "must be CITIZEN_ID or USCC",
        )),
    }
}

fn holder_kind_to_pb(kind: HolderKind) -> pb::HolderKind {
    match kind {
        HolderKind::CitizenId => pb::HolderKind::CitizenId,
        HolderKind::Uscc => pb::HolderKind::Uscc,
    }
}

fn date(field: &str, s: &str) -> Result<Date, Status> {
    Date::parse(required(field, s)?)
        .map_err(|e| field_status(Code::InvalidArgument, field, strip(&e)))
}

fn optional_date(field: &str, s: &str) -> Result<Option<Date>, Status> {
    if s.trim().is_empty() {
        return Ok(None);
    }
    date(field, s).map(Some)
}

/// The reason of a model error without its own field prefix.
fn strip(e: &ModelError) -> String {
    match e {
        ModelError::InvalidField { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}

/// A `NewLicense` from the API; `prefix` is the request path to it (e.g. `license.`).
/// Structural checks only; the domain rules run in [`licstore_model::validate_new_license`].
pub fn new_license(p: Option<&pb::NewLicense>, prefix: &str) -> Result<NewLicense, Status> {
    let p = p.ok_or_else(|| {
        field_status(
            Code::InvalidArgument,
            prefix.trim_end_matches('.'),
            "required",
        )
    })?;
    let f = |name: &str| format!("{prefix}{name}");
    let holder = p
        .holder
        .as_ref()
        .ok_or_else(|| field_status(Code::InvalidArgument, &f("holder"), "required"))?;
    let issuer = p
        .issuer
        .as_ref()
        .ok_or_else(|| field_status(Code::InvalidArgument, &f("issuer"), "required"))?;
    Ok(NewLicense {
        type_code: required(&f("type_code"), &p.type_code)?.to_string(),
        holder: Holder {
            kind: holder_kind(&f("holder.kind"), holder.kind)?,
            id: holder.id.clone(),
            name: holder.name.clone(),
            legacy_checksum: false,
        },
        license_number: p.license_number.clone(),
        issuer: Issuer {
            code: issuer.code.clone(),
            name: issuer.name.clone(),
        },
        issue_date: date(&f("issue_date"), &p.issue_date)?,
        valid_from: date(&f("valid_from"), &p.valid_from)?,
        valid_until: optional_date(&f("valid_until"), &p.valid_until)?,
        region_code: p.region_code.clone(),
        face: p.face.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        serial: (!p.serial.is_empty()).then(|| p.serial.clone()),
    })
}

/// A status from the API enum; `UNSPECIFIED` means valid.
pub fn status_from_pb(field: &str, s: i32) -> Result<LicenseStatus, Status> {
    Ok(match pb::LicenseStatus::try_from(s) {
        Ok(pb::LicenseStatus::Unspecified | pb::LicenseStatus::Valid) => LicenseStatus::Valid,
        Ok(pb::LicenseStatus::Suspended) => LicenseStatus::Suspended,
        Ok(pb::LicenseStatus::Revoked) => LicenseStatus::Revoked,
        Ok(pb::LicenseStatus::Cancelled) => LicenseStatus::Cancelled,
        Ok(pb::LicenseStatus::Expired) => LicenseStatus::Expired,
        Ok(pb::LicenseStatus::TransferredOut) => LicenseStatus::TransferredOut,
        Ok(pb::LicenseStatus::RevokedAsPenalty) => LicenseStatus::RevokedAsPenalty,
        Ok(pb::LicenseStatus::Other) => LicenseStatus::Other,
        Err(_) => {
            return Err(field_status(
                Code::InvalidArgument,
                field,
                format!("unknown status {s}"),
            ))
        }
    })
}

/// A status from the API enum where `UNSPECIFIED` is not a status, as in filters.
pub fn status_from_pb_strict(field: &str, s: i32) -> Result<LicenseStatus, Status> {
    if s == pb::LicenseStatus::Unspecified as i32 {
        return Err(field_status(
            Code::InvalidArgument,
            field,
            "unspecified status",
        ));
    }
    status_from_pb(field, s)
}

/// The API form of a change-feed event.
pub fn event_to_pb(e: &licstore_store::Event) -> pb::Event {
    use licstore_store::EventOp;
    let op = match e.op {
        EventOp::Issue => pb::EventOp::Issue,
        EventOp::Import => pb::EventOp::Import,
        EventOp::Amend => pb::EventOp::Amend,
        EventOp::Status(StatusOp::Suspend) => pb::EventOp::Suspend,
        EventOp::Status(StatusOp::LiftSuspension) => pb::EventOp::LiftSuspension,
        EventOp::Status(StatusOp::Revoke) => pb::EventOp::Revoke,
        EventOp::Status(StatusOp::Cancel) => pb::EventOp::Cancel,
        EventOp::Status(StatusOp::Expire) => pb::EventOp::Expire,
        EventOp::Status(StatusOp::TransferOut) => pb::EventOp::TransferOut,
        EventOp::Status(StatusOp::RevokeAsPenalty) => pb::EventOp::RevokeAsPenalty,
        EventOp::Status(StatusOp::Other) => pb::EventOp::Other,
    };
    pb::Event {
        revision: e.revision,
        seq: e.seq,
        op: op as i32,
        identifier: e.identifier.clone(),
        previous_identifier: e.previous_identifier.clone().unwrap_or_default(),
        holder: Some(pb::HolderRef {
            kind: holder_kind_to_pb(e.holder_kind) as i32,
            id: e.holder_id.clone(),
        }),
        type_code: e.type_code.clone(),
        issuer_code: e.issuer_code.clone(),
        old_status: e
            .old_status
            .map(|s| status_to_pb(s) as i32)
            .unwrap_or_default(),
        new_status: status_to_pb(e.new_status) as i32,
        version: e.version.into(),
        digest: hex(&e.digest),
    }
}

/// The API enum of a status.
pub fn status_to_pb(s: LicenseStatus) -> pb::LicenseStatus {
    match s {
        LicenseStatus::Valid => pb::LicenseStatus::Valid,
        LicenseStatus::Suspended => pb::LicenseStatus::Suspended,
        LicenseStatus::Revoked => pb::LicenseStatus::Revoked,
        LicenseStatus::Cancelled => pb::LicenseStatus::Cancelled,
        LicenseStatus::Expired => pb::LicenseStatus::Expired,
        LicenseStatus::TransferredOut => pb::LicenseStatus::TransferredOut,
        LicenseStatus::RevokedAsPenalty => pb::LicenseStatus::RevokedAsPenalty,
        LicenseStatus::Other => pb::LicenseStatus::Other,
    }
}

/// A status operation from the API enum.
pub fn status_op(op: i32) -> Result<StatusOp, Status> {
    Ok(match pb::StatusOp::try_from(op) {
        Ok(pb::StatusOp::Suspend) => StatusOp::Suspend,
        Ok(pb::StatusOp::LiftSuspension) => StatusOp::LiftSuspension,
        Ok(pb::StatusOp::Revoke) => StatusOp::Revoke,
        Ok(pb::StatusOp::Cancel) => StatusOp::Cancel,
        Ok(pb::StatusOp::Expire) => StatusOp::Expire,
        Ok(pb::StatusOp::TransferOut) => StatusOp::TransferOut,
        Ok(pb::StatusOp::RevokeAsPenalty) => StatusOp::RevokeAsPenalty,
        Ok(pb::StatusOp::Other) => StatusOp::Other,
        _ => {
            return Err(field_status(
                Code::InvalidArgument,
                "op",
                format!("unknown or unspecified op {op}"),
            ))
        }
    })
}

/// The API form of a stored record.
pub fn license_to_pb(l: &License) -> pb::License {
    pb::License {
        identifier: l.identifier.clone(),
        type_code: l.type_code.clone(),
        holder: Some(pb::Holder {
            kind: holder_kind_to_pb(l.holder.kind) as i32,
            id: l.holder.id.clone(),
            name: l.holder.name.clone(),
            legacy_checksum: l.holder.legacy_checksum,
        }),
        license_number: l.license_number.clone(),
        issuer: Some(pb::Issuer {
            code: l.issuer.code.clone(),
            name: l.issuer.name.clone(),
        }),
        issue_date: l.issue_date.to_string(),
        valid_from: l.valid_from.to_string(),
        valid_until: l.valid_until.map(|d| d.to_string()).unwrap_or_default(),
        region_code: l.region_code.clone(),
        face: l.face.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        status: status_to_pb(l.status) as i32,
        status_reason: l.status_reason.clone().unwrap_or_default(),
        version: u32::from(l.version),
        replaces: l.replaces.clone().unwrap_or_default(),
        superseded_by: l.superseded_by.clone().unwrap_or_default(),
        revision: l.revision,
        digest: hex(&l.digest),
        seal: seal_to_pb(&l.seal),
    }
}

/// The API form of a record's seal bundle; `None` for an unsealed record.
pub fn seal_to_pb(bundle: &[u8]) -> Option<pb::LicenseSeal> {
    if bundle.is_empty() {
        return None;
    }
    // Stored bundles were checked on apply; one that no longer decodes is shown bare.
    let decoded = licstore_seal::SealBundle::from_bytes(bundle).ok();
    let payload = decoded.as_ref().map(|b| &b.payload);
    Some(pb::LicenseSeal {
        suite: payload
            .map(|p| p.suite.name().to_owned())
            .unwrap_or_default(),
        key_id: payload.map(|p| p.key_id.to_string()).unwrap_or_default(),
        authority: payload.map(|p| p.authority.clone()).unwrap_or_default(),
        signed_at_ms: payload.map_or(0, |p| p.signed_at_ms),
        bundle: bundle.to_vec(),
    })
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_kinds_map_or_name_the_field() {
        let table = [
            (
                pb::HolderKind::CitizenId as i32,
                Some(HolderKind::CitizenId),
            ),
            (pb::HolderKind::Uscc as i32, Some(HolderKind::Uscc)),
            (pb::HolderKind::Unspecified as i32, None),
            (42, None),
        ];
        for (raw, want) in table {
            match (holder_kind("holder.kind", raw), want) {
                (Ok(k), Some(w)) => assert_eq!(k, w),
                (Err(s), None) => {
                    assert!(s.message().starts_with("holder.kind:"), "{}", s.message())
                }
                (got, want) => panic!("{raw}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn status_round_trips_through_the_api_enum() {
        let all = [
            LicenseStatus::Valid,
            LicenseStatus::Suspended,
            LicenseStatus::Revoked,
            LicenseStatus::Cancelled,
            LicenseStatus::Expired,
            LicenseStatus::TransferredOut,
            LicenseStatus::RevokedAsPenalty,
            LicenseStatus::Other,
        ];
        for s in all {
            assert_eq!(
                status_from_pb("status", status_to_pb(s) as i32).ok(),
                Some(s)
            );
        }
        assert!(status_from_pb("status", 55).is_err());
    }

    #[test]
    fn bad_dates_name_their_field() {
        let mut p = pb::NewLicense {
            type_code: "t".into(),
            holder: Some(pb::Holder {
                kind: 1,
                id: "x".into(),
                name: "n".into(),
                legacy_checksum: false,
            }),
            issuer: Some(pb::Issuer {
                code: "c".into(),
                name: "n".into(),
            }),
            issue_date: "2023-02-29".into(),
            valid_from: "2023-01-01".into(),
            ..Default::default()
        };
        let err = new_license(Some(&p), "license.").expect_err("no such date");
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(
            err.message().starts_with("license.issue_date:"),
            "{}",
            err.message()
        );
        p.issue_date = "2023-02-28".into();
        p.valid_until = "2023-13-01".into();
        let err = new_license(Some(&p), "license.").expect_err("no such month");
        assert!(
            err.message().starts_with("license.valid_until:"),
            "{}",
            err.message()
        );
    }
}
