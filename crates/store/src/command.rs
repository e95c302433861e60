//! Replicated commands and their results.
//!
//! A command is validated against the clock and the templates by the server before it is
//! proposed; applying it only checks what depends on the replicated state (existence,
//! uniqueness, status transitions), so every replica reaches the same result.

use std::fmt;

use licstore_model::{Date, License, LicenseStatus, NewLicense, StatusOp};
use serde::{Deserialize, Serialize};

use crate::policies::DisclosureRule;
use crate::principals::Principal;
use crate::service_items::ServiceItem;

/// One license to create: a new issue or an imported historic record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportItem {
    /// Idempotency key; empty disables deduplication by request.
    pub request_id: String,
    /// Identifier of historic stock; `None` lets the store generate one.
    pub identifier: Option<String>,
    /// The license content, already validated.
    pub license: NewLicense,
    /// The holder id passed only in lenient mode.
    pub legacy_checksum: bool,
    /// Initial status (historic stock may arrive suspended, revoked, ...).
    pub status: LicenseStatus,
    /// Reason recorded with the initial status.
    pub status_reason: Option<String>,
    /// The issuing authority's seal bundle (`licstore-seal`), empty for none. Its signature
    /// was verified before proposing; applying checks everything else (see `seal_keys`).
    // TODO(upgrade): commands, results and events are bincode without a version tag, so
    // entries written before this field (or `serial_derived`) existed no longer decode, and
    // a request sealed before `serial_derived` kept its derived serial in its fingerprint, and
    // nodes of older builds refuse version 2 seal payloads on apply; a rolling upgrade across
    // these changes needs a versioned command encoding and a cluster-wide feature switch.
    pub seal: Vec<u8>,
    /// True when the serving node set `license.serial` itself ([`ImportItem::derive_serial`]).
    /// A derived serial stays out of the request's fingerprint: the same request, retried
    /// after its issuer registered a key, is sealed under a derived serial and is still the
    /// same request.
    pub serial_derived: bool,
}

/// Characters of a derived serial after its four-digit year.
pub const DERIVED_SERIAL_CHARS: usize = 12;

impl ImportItem {
    /// Sets `license.serial` to one derived from the request's fingerprint (request id and
    /// content), so a retry of the same request gets the same identifier, and a different
    /// record, even under a reused request id, gets another. Only for an item with neither
    /// identifier nor serial; returns whether it derived one.
    pub fn derive_serial(&mut self) -> Result<bool, crate::StoreError> {
        if self.identifier.is_some() || self.license.serial.is_some() {
            return Ok(false);
        }
        const DIGITS: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let mut hasher = blake3::Hasher::new_derive_key("licstore derived license serial v2");
        hasher.update(&self.fingerprint()?);
        let mut serial = format!("{:04}", self.license.issue_date.year());
        let mut reader = hasher.finalize_xof();
        while serial.len() < 4 + DERIVED_SERIAL_CHARS {
            let mut byte = [0u8; 1];
            reader.fill(&mut byte);
            // 252 = 7 × 36: drawing below it keeps every character equally likely.
            if byte[0] < 252 {
                serial.push(char::from(DIGITS[usize::from(byte[0] % 36)]));
            }
        }
        self.license.serial = Some(serial);
        self.serial_derived = true;
        Ok(true)
    }

    /// A digest of what the request asks for, to tell a retry from a reused request id. It
    /// leaves out the seal (a retry is signed afresh: new time, new salts) and a derived
    /// serial.
    pub fn fingerprint(&self) -> Result<[u8; 32], crate::StoreError> {
        let blanked;
        let license = match self.serial_derived {
            true => {
                blanked = NewLicense {
                    serial: None,
                    ..self.license.clone()
                };
                &blanked
            }
            false => &self.license,
        };
        let request = (
            &self.request_id,
            &self.identifier,
            license,
            self.legacy_checksum,
            self.status,
            &self.status_reason,
        );
        Ok(*blake3::hash(&crate::codec::encode("request", &request)?).as_bytes())
    }
}

/// A state-machine command, carried in one Raft log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Issue one license.
    Issue(ImportItem),
    /// Replace the current version of a license with the next version.
    Amend {
        /// Idempotency key.
        request_id: String,
        /// Identifier of the version being replaced.
        identifier: String,
        /// Content of the new version, already validated.
        license: NewLicense,
        /// Seal bundle of the new version, as for [`ImportItem::seal`].
        seal: Vec<u8>,
    },
    /// Apply a status operation to the current version of a license.
    ChangeStatus {
        /// Idempotency key.
        request_id: String,
        /// Identifier of the license.
        identifier: String,
        /// The operation.
        op: StatusOp,
        /// Reason, required for [`StatusOp::Other`].
        reason: Option<String>,
    },
    /// Create many licenses; each item succeeds or fails on its own.
    Import(Vec<ImportItem>),
    /// Mark expired the listed licenses whose validity ended before `as_of`. Proposed by the
    /// leader's sweeper; a license that is no longer current, live or lapsed is skipped, so a
    /// sweep that races with a renewal or a status change does no harm.
    Expire {
        /// The leader's date when it proposed the sweep.
        as_of: Date,
        /// Identifiers of current versions found lapsed in the expiry index.
        identifiers: Vec<String>,
    },
    /// Drop change-feed events below `revision`.
    Compact {
        /// The new oldest retained revision; at most the command's own log index.
        revision: u64,
    },
    /// Changes nothing: an entry that takes the write path (log, replication, fsync, apply)
    /// without data, for `licctl check perf`.
    Probe {
        /// Bytes that make the entry the size of a real write.
        payload: Vec<u8>,
    },
    /// Register the first active seal key of an authority.
    RegisterKey {
        /// Authority code (the issuer code its licenses carry).
        authority: String,
        /// `licstore-seal` public key encoding.
        public_key: Vec<u8>,
        /// First instant the key may sign, ms since the Unix epoch.
        valid_from_ms: u64,
    },
    /// Replace an authority's active key: the old one stops signing at `at_ms` and stays
    /// valid for what it signed before.
    RotateKey {
        /// Authority code.
        authority: String,
        /// `licstore-seal` public key encoding of the new key.
        new_public_key: Vec<u8>,
        /// The handover instant, ms since the Unix epoch.
        at_ms: u64,
    },
    /// Void a key's signatures made at or after `revoked_from_ms`.
    RevokeKey {
        /// Id of the key.
        key_id: [u8; 16],
        /// First instant whose signatures are void, ms since the Unix epoch.
        revoked_from_ms: u64,
    },
    /// Set the fields a service item sees of a license type when it verifies one; no fields
    /// removes the rule (see `policies`).
    SetDisclosure(DisclosureRule),
    /// Import another store's signed trust list under a pinned root (see `trust_anchors`).
    ImportTrustList {
        /// `licstore-seal` trust file: the root public key and the signed list.
        trust_file: Vec<u8>,
        /// Id of the root key the operator trusts; the list must be signed under it.
        root_key_id: [u8; 16],
    },
    /// Register a principal or replace the one of the same name (see `principals`).
    PutPrincipal(Principal),
    /// Remove a principal.
    RemovePrincipal {
        /// Its name.
        name: String,
    },
    /// Register a service item or replace the one of the same name (see `service_items`).
    PutServiceItem(ServiceItem),
    /// Remove a service item and its disclosure rules.
    RemoveServiceItem {
        /// Its name.
        name: String,
    },
    /// Append journal events of one node to the audit trail (see `audit`).
    AppendAudit {
        /// Events in the audit record encoding, in journal order.
        events: Vec<Vec<u8>>,
    },
    /// Remove the oldest audit records through `through_seq`, at most
    /// [`crate::audit::AUDIT_TRIM_MAX`] per command, keep the last removed record's hash as
    /// the checkpoint the rest of the chain links to, and record the trim in the trail.
    TrimAudit {
        /// The last record to remove.
        through_seq: u64,
        /// The trim's own record (audit record encoding, seq 0): who asked, when, on which
        /// node; applying it fills in what was removed.
        event: Vec<u8>,
    },
    // New variants go last: the log stores a command by its variant's position.
    /// Refuse the bearer token `jti` from now on (see `revoked_tokens`).
    RevokeToken {
        /// The token's id.
        jti: String,
        /// Its expiry, seconds since the Unix epoch: the revocation is kept until then.
        expires_at_s: u64,
    },
    /// Forget revocations of tokens whose kept expiry is before `expired_before_s` (the
    /// leader's clock, less a margin), among those the leader names.
    ForgetRevokedTokens {
        /// Their ids.
        jtis: Vec<String>,
        /// Only revocations kept until before this second are forgotten.
        expired_before_s: u64,
    },
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Issue(item) => write!(f, "issue({})", item.license.type_code),
            Command::Amend { identifier, .. } => write!(f, "amend({identifier})"),
            Command::ChangeStatus { identifier, op, .. } => {
                write!(f, "change-status({identifier}, {})", op.as_str())
            }
            Command::Import(items) => write!(f, "import({} items)", items.len()),
            Command::Expire { as_of, identifiers } => {
                write!(f, "expire({} as of {as_of})", identifiers.len())
            }
            Command::Compact { revision } => write!(f, "compact({revision})"),
            Command::Probe { payload } => write!(f, "probe({} bytes)", payload.len()),
            Command::RegisterKey { authority, .. } => write!(f, "register-key({authority})"),
            Command::RotateKey { authority, .. } => write!(f, "rotate-key({authority})"),
            Command::RevokeKey { .. } => write!(f, "revoke-key"),
            Command::SetDisclosure(rule) => write!(f, "set-disclosure({})", rule.service_item),
            Command::ImportTrustList { trust_file, .. } => {
                write!(f, "import-trust-list({} bytes)", trust_file.len())
            }
            Command::PutPrincipal(p) => write!(f, "put-principal({})", p.name),
            Command::RemovePrincipal { name } => write!(f, "remove-principal({name})"),
            Command::PutServiceItem(item) => write!(f, "put-service-item({})", item.name),
            Command::RemoveServiceItem { name } => write!(f, "remove-service-item({name})"),
            Command::AppendAudit { events } => write!(f, "append-audit({} events)", events.len()),
            Command::TrimAudit { through_seq, .. } => write!(f, "trim-audit({through_seq})"),
            Command::RevokeToken { .. } => write!(f, "revoke-token"),
            Command::ForgetRevokedTokens { jtis, .. } => {
                write!(f, "forget-revoked-tokens({} ids)", jtis.len())
            }
        }
    }
}

/// The gRPC-independent class of a refused command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RejectCode {
    /// The input itself is wrong.
    InvalidArgument,
    /// The input is fine but the current state forbids it.
    FailedPrecondition,
    /// The license does not exist.
    NotFound,
    /// The license already exists.
    AlreadyExists,
}

/// Why a command was refused, naming the field at fault.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// The class of the refusal.
    pub code: RejectCode,
    /// The request field at fault, e.g. `identifier` or `face.name`.
    pub field: String,
    /// A human-readable reason.
    pub message: String,
}

impl Rejection {
    /// Builds a rejection.
    pub fn new(code: RejectCode, field: &str, message: impl Into<String>) -> Self {
        Rejection {
            code,
            field: field.to_string(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// A successful write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteOutcome {
    /// The record as stored.
    pub license: License,
    /// Log index at which the write was applied.
    pub revision: u64,
    /// True when the request id had been applied before and this is the stored result.
    pub duplicate: bool,
}

/// The result of one command.
// Results live for one response; boxing the large variant would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResult {
    /// Blank and membership entries have no result.
    #[default]
    None,
    /// Result of an issue, amend or status change.
    Write(Result<WriteOutcome, Rejection>),
    /// Per-item results of an import, in input order.
    Import(Vec<Result<WriteOutcome, Rejection>>),
    /// Identifiers an expiry sweep marked expired.
    Expired(Vec<String>),
    /// The compaction revision after a compact command, or why it was refused.
    Compacted(Result<u64, Rejection>),
    /// A probe was applied (and changed nothing).
    Probed,
    /// The key records a key command wrote (`licstore-seal` encoding; for a rotation the old
    /// key's then the new key's), or why it was refused.
    SealKeys(Result<Vec<Vec<u8>>, Rejection>),
    /// The disclosure rule as stored (fields sorted; none when removed), or why it was refused.
    Disclosure(Result<DisclosureRule, Rejection>),
    /// What a trust list import changed, or why it was refused.
    TrustImport(Result<crate::TrustImport, Rejection>),
    /// The principal as stored (or as removed), or why the command was refused.
    Principal(Result<Principal, Rejection>),
    /// The service item as stored (or as removed), or why the command was refused.
    ServiceItem(Result<ServiceItem, Rejection>),
    /// What an audit batch added to the trail, or why it was refused.
    Audit(Result<crate::audit::AuditAppended, Rejection>),
    /// Where the audit trail starts after a trim, or why the trim was refused.
    AuditTrim(Result<crate::audit::AuditTrimmed, Rejection>),
    /// The revocation as kept, or why it was refused.
    TokenRevoked(Result<crate::revoked_tokens::RevokedToken, Rejection>),
    /// How many revocations were forgotten.
    RevocationsForgotten(u64),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The log keeps a command as its variant's position: those already written must never
    /// move, so new variants go last.
    #[test]
    fn command_variants_keep_their_positions() {
        let cases = [
            (Command::Probe { payload: vec![] }, 6),
            (Command::AppendAudit { events: vec![] }, 16),
            (
                Command::TrimAudit {
                    through_seq: 1,
                    event: vec![],
                },
                17,
            ),
            (
                Command::RevokeToken {
                    jti: "j".into(),
                    expires_at_s: 1,
                },
                18,
            ),
            (
                Command::ForgetRevokedTokens {
                    jtis: vec![],
                    expired_before_s: 1,
                },
                19,
            ),
        ];
        for (cmd, position) in cases {
            let bytes = crate::codec::encode("command", &cmd).expect("encode");
            assert_eq!(bytes[0], position, "{cmd}");
        }
    }
    use licstore_model::{Date, Holder, HolderKind, Identifier, Issuer};

    fn item(request_id: &str, license_number: &str) -> ImportItem {
        let day = Date::new(2026, 1, 2).unwrap();
        ImportItem {
            request_id: request_id.into(),
            identifier: None,
            license: NewLicense {
                type_code: "11100000000013338W032".into(),
                holder: Holder {
                    kind: HolderKind::CitizenId,
                    id: "11010519491231002X".into(),
                    name: "n".into(),
                    legacy_checksum: false,
                },
                license_number: license_number.into(),
                issuer: Issuer {
                    code: "11310000002420436Y".into(),
                    name: "i".into(),
                },
                issue_date: day,
                valid_from: day,
                valid_until: None,
                region_code: "310115".into(),
                face: Default::default(),
                serial: None,
            },
            legacy_checksum: false,
            status: LicenseStatus::Valid,
            status_reason: None,
            seal: Vec::new(),
            serial_derived: false,
        }
    }

    fn derived(mut item: ImportItem) -> ImportItem {
        assert!(item.derive_serial().unwrap());
        item
    }

    #[test]
    fn derived_serials_follow_the_whole_request() {
        let a = derived(item("r1", "1"));
        let serial = a.license.serial.clone().unwrap();
        assert_eq!(serial.len(), 4 + DERIVED_SERIAL_CHARS);
        assert!(serial.starts_with("2026"));
        Identifier::generate(&a.license.type_code, &a.license.issuer.code, &serial, 1).unwrap();
        let cases = [
            ("same request", item("r1", "1"), true),
            ("other request id", item("r2", "1"), false),
            ("same request id, other content", item("r1", "2"), false),
        ];
        for (name, other, same) in cases {
            let other = derived(other);
            assert_eq!(
                other.license.serial.as_ref() == Some(&serial),
                same,
                "{name}"
            );
        }
    }

    #[test]
    fn a_derived_serial_stays_out_of_the_fingerprint() {
        let plain = item("r1", "1");
        let sealed = derived(item("r1", "1"));
        assert_eq!(plain.fingerprint().unwrap(), sealed.fingerprint().unwrap());
        let mut given = item("r1", "1");
        given.license.serial = sealed.license.serial.clone();
        assert_ne!(plain.fingerprint().unwrap(), given.fingerprint().unwrap());
        let mut again = sealed.clone();
        assert!(!again.derive_serial().unwrap(), "a serial is derived once");
        assert_eq!(again, sealed);
    }
}
