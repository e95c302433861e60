//! The crate's single error type.
//!
//! Every validation failure names the field it concerns, using the same dotted names as the
//! public gRPC API (`holder.id`, `face.birth_date`, `identifier.serial`, ...), so a caller can
//! hand the error straight back to the client that sent the bad value.

use crate::status::LicenseStatus;

/// Everything that can go wrong in the license domain.
///
/// Messages are lowercase, carry no trailing period and name the values involved.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// A field holds a value the domain rules reject.
    #[error("{field}: {reason}")]
    InvalidField {
        /// Dotted field name, e.g. `holder.id` or `face.sex`.
        field: String,
        /// Why the value was rejected.
        reason: String,
    },
    /// No license template has this type code or key.
    #[error("type_code: unknown license type {type_code:?}")]
    UnknownLicenseType {
        /// The type code or key that was looked up.
        type_code: String,
    },
    /// A status change the national status machine does not allow.
    #[error("status: illegal transition from {from} to {to}")]
    IllegalTransition {
        /// The current status.
        from: LicenseStatus,
        /// The status the operation would lead to.
        to: LicenseStatus,
    },
    /// Bytes that are not a canonical license record.
    #[error("decode {field}: {reason}")]
    Decode {
        /// The record field being decoded when the bytes ran out or made no sense.
        field: String,
        /// What was wrong, including the byte offset.
        reason: String,
    },
}

impl ModelError {
    /// Builds an [`ModelError::InvalidField`].
    pub fn invalid_field(field: impl Into<String>, reason: impl Into<String>) -> ModelError {
        ModelError::InvalidField {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The field this error is about, in API naming.
    pub fn field(&self) -> Option<&str> {
        match self {
            ModelError::InvalidField { field, .. } | ModelError::Decode { field, .. } => {
                Some(field)
            }
            ModelError::UnknownLicenseType { .. } => Some("type_code"),
            ModelError::IllegalTransition { .. } => Some("status"),
        }
    }

    /// Renames the field of an `InvalidField` error; other variants pass through unchanged.
    ///
    /// Used when a shared validator (a date, a USCC) is applied to a specific API field.
    pub fn with_field(self, field: impl Into<String>) -> ModelError {
        match self {
            ModelError::InvalidField { reason, .. } => ModelError::InvalidField {
                field: field.into(),
                reason,
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_field_name_the_field() {
        let cases = [
            (
                ModelError::invalid_field("holder.id", "bad"),
                "holder.id: bad",
                Some("holder.id"),
            ),
            (
                ModelError::UnknownLicenseType {
                    type_code: "x".into(),
                },
                "type_code: unknown license type \"x\"",
                Some("type_code"),
            ),
            (
                ModelError::IllegalTransition {
                    from: LicenseStatus::Revoked,
                    to: LicenseStatus::Valid,
                },
                "status: illegal transition from revoked to valid",
                Some("status"),
            ),
            (
                ModelError::Decode {
                    field: "face".into(),
                    reason: "truncated".into(),
                },
                "decode face: truncated",
                Some("face"),
            ),
        ];
        for (error, display, field) in cases {
            assert_eq!(error.to_string(), display);
            assert_eq!(error.field(), field);
        }
    }

    #[test]
    fn with_field_renames_only_invalid_field() {
        let renamed = ModelError::invalid_field("date", "bad").with_field("issue_date");
        assert_eq!(renamed.field(), Some("issue_date"));
        let kept = ModelError::UnknownLicenseType {
            type_code: "x".into(),
        }
        .with_field("other");
        assert_eq!(kept.field(), Some("type_code"));
    }
}
