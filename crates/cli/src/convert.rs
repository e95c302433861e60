//! Mappings between the domain enums of `licstore-model` (kebab/snake names used on the
//! command line and in JSON) and the proto enums carried as `i32` on the wire.
//!
//! Unknown wire values are shown as `unknown(N)` rather than failing: a newer server may send a
//! status this build does not know.

use licstore_model::{HolderKind, LicenseStatus, StatusOp};
use licstore_proto::v1 as pb;

/// Model holder kind → proto.
pub fn holder_kind_to_proto(kind: HolderKind) -> pb::HolderKind {
    match kind {
        HolderKind::CitizenId => pb::HolderKind::CitizenId,
        HolderKind::Uscc => pb::HolderKind::Uscc,
    }
}

/// Wire holder kind → `citizen_id` / `uscc` / `unspecified`.
pub fn holder_kind_name(kind: i32) -> &'static str {
    match pb::HolderKind::try_from(kind) {
        Ok(pb::HolderKind::CitizenId) => HolderKind::CitizenId.as_str(),
        Ok(pb::HolderKind::Uscc) => HolderKind::Uscc.as_str(),
        Ok(pb::HolderKind::Unspecified) => "unspecified",
        Err(_) => "unknown",
    }
}

const STATUS_PAIRS: [(LicenseStatus, pb::LicenseStatus); 8] = [
    (LicenseStatus::Valid, pb::LicenseStatus::Valid),
    (LicenseStatus::Suspended, pb::LicenseStatus::Suspended),
    (LicenseStatus::Revoked, pb::LicenseStatus::Revoked),
    (LicenseStatus::Cancelled, pb::LicenseStatus::Cancelled),
    (LicenseStatus::Expired, pb::LicenseStatus::Expired),
    (
        LicenseStatus::TransferredOut,
        pb::LicenseStatus::TransferredOut,
    ),
    (
        LicenseStatus::RevokedAsPenalty,
        pb::LicenseStatus::RevokedAsPenalty,
    ),
    (LicenseStatus::Other, pb::LicenseStatus::Other),
];

/// Model status → proto.
pub fn status_to_proto(status: LicenseStatus) -> pb::LicenseStatus {
    STATUS_PAIRS
        .iter()
        .find(|(m, _)| *m == status)
        .map_or(pb::LicenseStatus::Unspecified, |(_, p)| *p)
}

/// Wire status → its kebab name (`valid`, `transferred-out`, ...).
pub fn status_name(status: i32) -> String {
    let found = STATUS_PAIRS.iter().find(|(_, p)| *p as i32 == status);
    match found {
        Some((m, _)) => m.as_str().to_owned(),
        None if status == 0 => "unspecified".to_owned(),
        None => format!("unknown({status})"),
    }
}

/// Model status operation → proto.
pub fn status_op_to_proto(op: StatusOp) -> pb::StatusOp {
    match op {
        StatusOp::Suspend => pb::StatusOp::Suspend,
        StatusOp::LiftSuspension => pb::StatusOp::LiftSuspension,
        StatusOp::Revoke => pb::StatusOp::Revoke,
        StatusOp::Cancel => pb::StatusOp::Cancel,
        StatusOp::Expire => pb::StatusOp::Expire,
        StatusOp::TransferOut => pb::StatusOp::TransferOut,
        StatusOp::RevokeAsPenalty => pb::StatusOp::RevokeAsPenalty,
        StatusOp::Other => pb::StatusOp::Other,
    }
}

/// Wire verdict → kebab name (`valid`, `not-found`, ...).
pub fn verdict_name(verdict: i32) -> String {
    let name = match pb::Verdict::try_from(verdict) {
        Ok(pb::Verdict::Valid) => "valid",
        Ok(pb::Verdict::Suspended) => "suspended",
        Ok(pb::Verdict::Revoked) => "revoked",
        Ok(pb::Verdict::Expired) => "expired",
        Ok(pb::Verdict::NotFound) => "not-found",
        Ok(pb::Verdict::NotValid) => "not-valid",
        Ok(pb::Verdict::Unspecified) => "unspecified",
        Err(_) => return format!("unknown({verdict})"),
    };
    name.to_owned()
}

/// The seal verdict's name; `unknown(N)` for a value this build does not know.
pub fn seal_verdict_name(verdict: i32) -> String {
    let name = match pb::SealVerdict::try_from(verdict) {
        Ok(pb::SealVerdict::Unspecified) => "unspecified",
        Ok(pb::SealVerdict::Unsealed) => "unsealed",
        Ok(pb::SealVerdict::Valid) => "valid",
        Ok(pb::SealVerdict::ValidRotated) => "valid-rotated",
        Ok(pb::SealVerdict::SignedBeforeRevocation) => "signed-before-revocation",
        Ok(pb::SealVerdict::RevokedAtSigning) => "revoked-at-signing",
        Ok(pb::SealVerdict::OutsideKeyValidity) => "outside-key-validity",
        Ok(pb::SealVerdict::UnknownKey) => "unknown-key",
        Err(_) => return format!("unknown({verdict})"),
    };
    name.to_owned()
}

/// `--serializable` → the proto consistency level.
pub fn consistency(serializable: bool) -> i32 {
    let level = match serializable {
        true => pb::Consistency::Serializable,
        false => pb::Consistency::Linearizable,
    };
    level as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_round_trip_through_the_wire() {
        for status in LicenseStatus::ALL {
            let wire = status_to_proto(status) as i32;
            assert_eq!(status_name(wire), status.as_str());
        }
        let cases = [(0, "unspecified"), (42, "unknown(42)")];
        for (wire, name) in cases {
            assert_eq!(status_name(wire), name);
        }
    }

    #[test]
    fn every_op_maps_to_a_distinct_wire_value() {
        let mut seen: Vec<i32> = StatusOp::ALL
            .iter()
            .map(|&op| status_op_to_proto(op) as i32)
            .collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), StatusOp::ALL.len());
        assert!(!seen.contains(&0));
    }

    #[test]
    fn verdicts_and_kinds() {
        let cases = [
            (pb::Verdict::Valid as i32, "valid"),
            (pb::Verdict::NotFound as i32, "not-found"),
            (pb::Verdict::NotValid as i32, "not-valid"),
            (77, "unknown(77)"),
        ];
        for (wire, name) in cases {
            assert_eq!(verdict_name(wire), name);
        }
        assert_eq!(holder_kind_name(pb::HolderKind::Uscc as i32), "uscc");
        assert_eq!(
            holder_kind_name(holder_kind_to_proto(HolderKind::CitizenId) as i32),
            "citizen_id"
        );
    }
}
