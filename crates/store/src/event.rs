//! The change feed: one [`Event`] per committed change to a license, stored in the same write
//! batch as the change, keyed by (revision, sequence) so the feed reads back in commit order.
//!
//! The revision of an event is the log index of the command that made it. One command may make
//! several events (an import, an expiry sweep); they share its revision and are numbered by
//! `seq`. Readers always hand out whole revisions, so "resume from revision R + 1" after the
//! last event of revision R neither repeats nor skips anything.

use licstore_model::{HolderKind, LicenseStatus, StatusOp};
use serde::{Deserialize, Serialize};

/// What happened to a license.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventOp {
    /// Issued through the API.
    Issue,
    /// Loaded by a bulk import.
    Import,
    /// Replaced by its next version (the event names the new version).
    Amend,
    /// A status operation; expiry by the sweeper is `Status(StatusOp::Expire)`.
    Status(StatusOp),
}

impl EventOp {
    /// The kebab-case name shown by the API and `licctl watch`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventOp::Issue => "issue",
            EventOp::Import => "import",
            EventOp::Amend => "amend",
            EventOp::Status(op) => op.as_str(),
        }
    }
}

/// One committed change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Log index of the command that made the change.
    pub revision: u64,
    /// Position among the events of the same revision, from 0.
    pub seq: u32,
    /// What happened.
    pub op: EventOp,
    /// Identifier of the version after the change.
    pub identifier: String,
    /// For an amendment, the identifier of the version it replaced.
    pub previous_identifier: Option<String>,
    /// Holder kind.
    pub holder_kind: HolderKind,
    /// Holder id.
    pub holder_id: String,
    /// License type code.
    pub type_code: String,
    /// Issuer code.
    pub issuer_code: String,
    /// Status before the change; `None` for a new license.
    pub old_status: Option<LicenseStatus>,
    /// Status after the change.
    pub new_status: LicenseStatus,
    /// Version number after the change.
    pub version: u16,
    /// Content digest of the version after the change.
    pub digest: [u8; 32],
}

/// Which events a watcher wants; an empty field matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Type codes.
    pub type_codes: Vec<String>,
    /// Issuer codes.
    pub issuer_codes: Vec<String>,
    /// Holders as (kind, id).
    pub holders: Vec<(HolderKind, String)>,
    /// Statuses after the change.
    pub statuses: Vec<LicenseStatus>,
}

impl EventFilter {
    /// Whether `event` passes every non-empty filter.
    pub fn matches(&self, event: &Event) -> bool {
        let holder_ok = self.holders.is_empty()
            || self
                .holders
                .iter()
                .any(|(kind, id)| *kind == event.holder_kind && *id == event.holder_id);
        holder_ok
            && (self.type_codes.is_empty() || self.type_codes.contains(&event.type_code))
            && (self.issuer_codes.is_empty() || self.issuer_codes.contains(&event.issuer_code))
            && (self.statuses.is_empty() || self.statuses.contains(&event.new_status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Event {
        Event {
            revision: 9,
            seq: 0,
            op: EventOp::Status(StatusOp::Suspend),
            identifier: "X".into(),
            previous_identifier: None,
            holder_kind: HolderKind::CitizenId,
            holder_id: "H1".into(),
            type_code: "T1".into(),
            issuer_code: "I1".into(),
            old_status: Some(LicenseStatus::Valid),
            new_status: LicenseStatus::Suspended,
            version: 1,
            digest: [0; 32],
        }
    }

    #[test]
    fn filters_match_on_every_field() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let cases = [
            (EventFilter::default(), true),
            (
                EventFilter {
                    type_codes: s(&["T1", "T2"]),
                    ..Default::default()
                },
                true,
            ),
            (
                EventFilter {
                    type_codes: s(&["T2"]),
                    ..Default::default()
                },
                false,
            ),
            (
                EventFilter {
                    issuer_codes: s(&["I1"]),
                    ..Default::default()
                },
                true,
            ),
            (
                EventFilter {
                    issuer_codes: s(&["I9"]),
                    ..Default::default()
                },
                false,
            ),
            (
                EventFilter {
                    holders: vec![(HolderKind::CitizenId, "H1".into())],
                    ..Default::default()
                },
                true,
            ),
            (
                EventFilter {
                    holders: vec![(HolderKind::Uscc, "H1".into())],
                    ..Default::default()
                },
                false,
            ),
            (
                EventFilter {
                    statuses: vec![LicenseStatus::Suspended],
                    ..Default::default()
                },
                true,
            ),
            (
                EventFilter {
                    statuses: vec![LicenseStatus::Valid],
                    ..Default::default()
                },
                false,
            ),
        ];
        for (i, (filter, want)) in cases.into_iter().enumerate() {
            assert_eq!(filter.matches(&event()), want, "case {i}: {filter:?}");
        }
    }

    #[test]
    fn op_names_follow_status_ops() {
        assert_eq!(EventOp::Status(StatusOp::Expire).as_str(), "expire");
        assert_eq!(EventOp::Amend.as_str(), "amend");
    }
}
