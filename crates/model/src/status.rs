//! License status codes and the status machine.
//!
//! Status codes follow the national platform's certificate specification: `01` valid, `02`
//! suspended (暂扣), `03` revoked / annulled (撤销), `04` cancelled (注销),
//! `05` expired (失效), `06` transferred out (办理转出), `07` revoked as a penalty (吊销),
//! `99` other (其他).
//!
//! ```text
//!           Suspend                  LiftSuspension
//!   Valid ------------> Suspended ------------------> Valid
//!     |                     |
//!     |  Revoke, Cancel, Expire, RevokeAsPenalty, Other (from either state)
//!     |  TransferOut (from Valid only)
//!     v                     v
//!   Revoked | Cancelled | Expired | TransferredOut | RevokedAsPenalty | Other   (final)
//! ```
//!
//! Suspension is the only reversible state. Every other state except `Valid` is final. A
//! suspended license cannot be transferred out (the suspension must be lifted first), but it can
//! be revoked, cancelled, expired or revoked as a penalty. An operation that is not allowed
//! returns [`ModelError::IllegalTransition`] naming the current state and the state the
//! operation leads to.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::ModelError;

/// A license's status (证书状态).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LicenseStatus {
    /// `01` 有效.
    Valid,
    /// `02` 暂扣; reversible.
    Suspended,
    /// `03` 撤销 (annulled).
    Revoked,
    /// `04` 注销.
    Cancelled,
    /// `05` 失效.
    Expired,
    /// `06` 办理转出.
    TransferredOut,
    /// `07` 吊销.
    RevokedAsPenalty,
    /// `99` 其他; a free-text reason is expected alongside.
    Other,
}

impl LicenseStatus {
    /// Every status, in code order.
    pub const ALL: [LicenseStatus; 8] = [
        LicenseStatus::Valid,
        LicenseStatus::Suspended,
        LicenseStatus::Revoked,
        LicenseStatus::Cancelled,
        LicenseStatus::Expired,
        LicenseStatus::TransferredOut,
        LicenseStatus::RevokedAsPenalty,
        LicenseStatus::Other,
    ];

    /// The two-digit national code.
    pub fn as_code(self) -> &'static str {
        match self {
            LicenseStatus::Valid => "01",
            LicenseStatus::Suspended => "02",
            LicenseStatus::Revoked => "03",
            LicenseStatus::Cancelled => "04",
            LicenseStatus::Expired => "05",
            LicenseStatus::TransferredOut => "06",
            LicenseStatus::RevokedAsPenalty => "07",
            LicenseStatus::Other => "99",
        }
    }

    /// The API name, e.g. `transferred-out`.
    pub fn as_str(self) -> &'static str {
        match self {
            LicenseStatus::Valid => "valid",
            LicenseStatus::Suspended => "suspended",
            LicenseStatus::Revoked => "revoked",
            LicenseStatus::Cancelled => "cancelled",
            LicenseStatus::Expired => "expired",
            LicenseStatus::TransferredOut => "transferred-out",
            LicenseStatus::RevokedAsPenalty => "revoked-as-penalty",
            LicenseStatus::Other => "other",
        }
    }

    /// Looks a status up by its two-digit code.
    pub fn from_code(code: &str) -> Result<LicenseStatus, ModelError> {
        LicenseStatus::ALL
            .into_iter()
            .find(|s| s.as_code() == code)
            .ok_or_else(|| unknown_status(code))
    }

    /// True for states no operation leaves.
    pub fn is_final(self) -> bool {
        !matches!(self, LicenseStatus::Valid | LicenseStatus::Suspended)
    }
}

impl FromStr for LicenseStatus {
    type Err = ModelError;

    /// Accepts the name (`suspended`) or the code (`02`).
    fn from_str(s: &str) -> Result<LicenseStatus, ModelError> {
        LicenseStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s || status.as_code() == s)
            .ok_or_else(|| unknown_status(s))
    }
}

impl fmt::Display for LicenseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn unknown_status(s: &str) -> ModelError {
    let shown: String = s.chars().take(32).collect();
    ModelError::invalid_field("status", format!("unknown status {shown:?}"))
}

/// An operation that changes a license's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StatusOp {
    /// 暂扣: Valid → Suspended.
    Suspend,
    /// 发还: Suspended → Valid.
    LiftSuspension,
    /// 撤销 → Revoked.
    Revoke,
    /// 注销 → Cancelled.
    Cancel,
    /// 失效 → Expired.
    Expire,
    /// 办理转出 → TransferredOut; only from Valid.
    TransferOut,
    /// 吊销 → RevokedAsPenalty.
    RevokeAsPenalty,
    /// 其他 → Other.
    Other,
}

impl StatusOp {
    /// Every operation.
    pub const ALL: [StatusOp; 8] = [
        StatusOp::Suspend,
        StatusOp::LiftSuspension,
        StatusOp::Revoke,
        StatusOp::Cancel,
        StatusOp::Expire,
        StatusOp::TransferOut,
        StatusOp::RevokeAsPenalty,
        StatusOp::Other,
    ];

    /// The kebab-case API name, e.g. `lift-suspension`.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusOp::Suspend => "suspend",
            StatusOp::LiftSuspension => "lift-suspension",
            StatusOp::Revoke => "revoke",
            StatusOp::Cancel => "cancel",
            StatusOp::Expire => "expire",
            StatusOp::TransferOut => "transfer-out",
            StatusOp::RevokeAsPenalty => "revoke-as-penalty",
            StatusOp::Other => "other",
        }
    }

    /// The status the operation leads to when it is allowed.
    pub fn target(self) -> LicenseStatus {
        match self {
            StatusOp::Suspend => LicenseStatus::Suspended,
            StatusOp::LiftSuspension => LicenseStatus::Valid,
            StatusOp::Revoke => LicenseStatus::Revoked,
            StatusOp::Cancel => LicenseStatus::Cancelled,
            StatusOp::Expire => LicenseStatus::Expired,
            StatusOp::TransferOut => LicenseStatus::TransferredOut,
            StatusOp::RevokeAsPenalty => LicenseStatus::RevokedAsPenalty,
            StatusOp::Other => LicenseStatus::Other,
        }
    }
}

impl FromStr for StatusOp {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<StatusOp, ModelError> {
        StatusOp::ALL
            .into_iter()
            .find(|op| op.as_str() == s)
            .ok_or_else(|| {
                let shown: String = s.chars().take(32).collect();
                ModelError::invalid_field("op", format!("unknown status operation {shown:?}"))
            })
    }
}

impl fmt::Display for StatusOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The status after applying `op` to a license in status `from`.
pub fn apply_status_op(from: LicenseStatus, op: StatusOp) -> Result<LicenseStatus, ModelError> {
    let to = op.target();
    let allowed = match from {
        LicenseStatus::Valid => op != StatusOp::LiftSuspension,
        LicenseStatus::Suspended => !matches!(op, StatusOp::Suspend | StatusOp::TransferOut),
        _ => false,
    };
    if allowed {
        Ok(to)
    } else {
        Err(ModelError::IllegalTransition { from, to })
    }
}

/// Whether a license in `status` may be amended or renewed (a new version issued).
///
/// Allowed from `Valid` and from `Expired` (renewing an expired license is routine). A suspended
/// license must have its suspension lifted first, and the other final states cannot come back:
/// both return [`ModelError::IllegalTransition`] from `status` to `Valid`, the status the new
/// version would have.
pub fn can_amend(status: LicenseStatus) -> Result<(), ModelError> {
    match status {
        LicenseStatus::Valid | LicenseStatus::Expired => Ok(()),
        from => Err(ModelError::IllegalTransition {
            from,
            to: LicenseStatus::Valid,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use LicenseStatus as S;
    use StatusOp as Op;

    /// Expected result of every (state, op) pair: the new state, or `None` for illegal.
    fn expected(from: S, op: Op) -> Option<S> {
        const TABLE: [(S, [Option<S>; 8]); 8] = {
            // Columns: Suspend, LiftSuspension, Revoke, Cancel, Expire, TransferOut,
            // RevokeAsPenalty, Other.
            const NONE: [Option<S>; 8] = [None; 8];
            [
                (
                    S::Valid,
                    [
                        Some(S::Suspended),
                        None,
                        Some(S::Revoked),
                        Some(S::Cancelled),
                        Some(S::Expired),
                        Some(S::TransferredOut),
                        Some(S::RevokedAsPenalty),
                        Some(S::Other),
                    ],
                ),
                (
                    S::Suspended,
                    [
                        None,
                        Some(S::Valid),
                        Some(S::Revoked),
                        Some(S::Cancelled),
                        Some(S::Expired),
                        None,
                        Some(S::RevokedAsPenalty),
                        Some(S::Other),
                    ],
                ),
                (S::Revoked, NONE),
                (S::Cancelled, NONE),
                (S::Expired, NONE),
                (S::TransferredOut, NONE),
                (S::RevokedAsPenalty, NONE),
                (S::Other, NONE),
            ]
        };
        let row = TABLE
            .iter()
            .find(|(state, _)| *state == from)
            .map(|(_, row)| row)?;
        let column = Op::ALL.iter().position(|o| *o == op)?;
        row[column]
    }

    #[test]
    fn every_state_op_pair() {
        for from in S::ALL {
            for op in Op::ALL {
                let result = apply_status_op(from, op);
                match expected(from, op) {
                    Some(to) => assert_eq!(result, Ok(to), "{from} {op}"),
                    None => assert_eq!(
                        result,
                        Err(ModelError::IllegalTransition {
                            from,
                            to: op.target()
                        }),
                        "{from} {op}"
                    ),
                }
            }
        }
    }

    #[test]
    fn amend_rule() {
        let cases = [
            (S::Valid, true),
            (S::Suspended, false),
            (S::Revoked, false),
            (S::Cancelled, false),
            (S::Expired, true),
            (S::TransferredOut, false),
            (S::RevokedAsPenalty, false),
            (S::Other, false),
        ];
        for (status, ok) in cases {
            assert_eq!(can_amend(status).is_ok(), ok, "{status}");
        }
    }

    #[test]
    fn names_and_codes_roundtrip() {
        for status in S::ALL {
            assert_eq!(status.as_str().parse::<S>(), Ok(status));
            assert_eq!(status.as_code().parse::<S>(), Ok(status));
            assert_eq!(S::from_code(status.as_code()), Ok(status));
            assert_eq!(
                status.is_final(),
                !matches!(status, S::Valid | S::Suspended)
            );
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
        for op in Op::ALL {
            assert_eq!(op.as_str().parse::<Op>(), Ok(op));
            let json = serde_json::to_string(&op).unwrap();
            assert_eq!(json, format!("\"{}\"", op.as_str()));
        }
        let cases = ["", "08", "Valid", "1", "transferred_out"];
        for input in cases {
            assert!(input.parse::<S>().is_err(), "{input}");
        }
        assert!(S::from_code("valid").is_err());
    }
}
