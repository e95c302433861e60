//! Column families and key layouts. Pure functions, no I/O.
//!
//! | CF          | key                                          | value                          |
//! |-------------|----------------------------------------------|--------------------------------|
//! | `raft_log`  | log index, u64 big-endian                    | bincode `Entry`                |
//! | `raft_meta` | `vote`, `committed`, `last_purged`           | bincode                        |
//! | `current`   | holder key + type code + `\0` + instance     | canonical `License`            |
//! | `ident`     | identifier of a current version              | `current` key                  |
//! | `history`   | identifier of a superseded version           | canonical `License`            |
//! | `serials`   | type code + `\0` + issuer code               | next serial, u64 big-endian    |
//! | `requests`  | client request id                            | bincode `CommandResult`        |
//! | `sm_meta`   | `last_applied`, `membership`, `installing`   | bincode                        |
//! | `index`     | index tag + fields + identifier (see below)  | bincode `IndexSummary`         |
//! | `events`    | revision u64 BE + sequence u32 BE            | bincode `Event`                |
//! | `sm_vars`   | `compacted`                                  | u64 big-endian                 |
//! | `req_revs`  | revision u64 BE + client request id          | empty                          |
//! | `seal_keys` | `k` + key id (16 bytes)                      | `licstore-seal` `KeyRecord`    |
//! |             | `a` + authority code                         | id of its active key; empty    |
//! |             |                                              | after its revocation           |
//! |             | `t` + root key id (16 bytes)                 | bincode `TrustAnchor`          |
//! |             | `f` + authority code                         | root key id it is trusted by   |
//! | `policies`  | `d` + service item + `\0` + type code        | bincode field names            |
//! | `status_lists` | entries, list bookkeeping, bit chunks (see `status_lists`) |             |
//!
//! Secondary indexes share the `index` family, one tag byte each, over current versions only:
//!
//! | tag | key after the tag                                   | holds                          |
//! |-----|-----------------------------------------------------|--------------------------------|
//! | `t` | type + `\0` + license number + `\0` + identifier    | every current version          |
//! | `s` | status code + type + `\0` + identifier              | every current version          |
//! | `i` | issuer code + `\0` + type + `\0` + identifier        | every current version          |
//! | `g` | region code (6 digits) + type + `\0` + identifier   | every current version          |
//! | `e` | valid-until `YYYYMMDD` + `\0` + identifier          | valid or suspended, dated      |
//! | `r` | revision u64 BE + identifier                        | every current version          |
//!
//! The holder key is the GB/T 36903 holder-kind code, `:`, the holder id and `\0`, so all
//! licenses of a holder share one prefix and one holder never prefixes another.

use licstore_model::HolderKind;

/// Raft log entries.
pub const CF_RAFT_LOG: &str = "raft_log";
/// Vote, committed log id, last purged log id.
pub const CF_RAFT_META: &str = "raft_meta";
/// Current version of every license, keyed by holder and type.
pub const CF_CURRENT: &str = "current";
/// Identifier index of current versions.
pub const CF_IDENT: &str = "ident";
/// Superseded versions, keyed by identifier.
pub const CF_HISTORY: &str = "history";
/// Serial counters per (type, issuer).
pub const CF_SERIALS: &str = "serials";
/// Results of applied client requests, for exactly-once retries.
pub const CF_REQUESTS: &str = "requests";
/// State-machine metadata.
pub const CF_SM_META: &str = "sm_meta";
/// Secondary indexes of current versions.
pub const CF_INDEX: &str = "index";
/// The change feed: one event per committed change, in revision order.
pub const CF_EVENTS: &str = "events";
/// Replicated scalars, such as the change feed's compaction revision.
pub const CF_SM_VARS: &str = "sm_vars";
/// Stored request results by the revision that stored them, so compaction can expire them.
pub const CF_REQ_REVS: &str = "req_revs";
/// The registry of seal keys: key records by id, and each authority's active key.
pub const CF_SEAL_KEYS: &str = "seal_keys";
/// Replicated rules: the fields each service item sees of each license type (`d` keys), the
/// service items with the types they accept (`i` keys), and the principals with their roles
/// (`p` keys).
pub const CF_POLICIES: &str = "policies";
/// Status-list positions and bits of sealed licenses.
pub const CF_STATUS_LISTS: &str = "status_lists";
/// The replicated audit trail: chained records, the holder index, journal high waters.
pub const CF_AUDIT: &str = "audit";
/// This node's journal of audit events not yet in the trail; never replicated.
pub const CF_AUDIT_JOURNAL: &str = "audit_journal";

/// Column families of the replicated state machine, in snapshot order. Their position in this
/// list is the column-family tag in snapshot files, so new families are only ever appended.
pub const SM_DATA_CFS: [&str; 13] = [
    CF_CURRENT,
    CF_IDENT,
    CF_HISTORY,
    CF_SERIALS,
    CF_REQUESTS,
    CF_INDEX,
    CF_EVENTS,
    CF_SM_VARS,
    CF_REQ_REVS,
    CF_SEAL_KEYS,
    CF_POLICIES,
    CF_STATUS_LISTS,
    CF_AUDIT,
];

/// Every column family of the database.
pub const ALL_CFS: [&str; 17] = [
    CF_RAFT_LOG,
    CF_RAFT_META,
    CF_CURRENT,
    CF_IDENT,
    CF_HISTORY,
    CF_SERIALS,
    CF_REQUESTS,
    CF_SM_META,
    CF_INDEX,
    CF_EVENTS,
    CF_SM_VARS,
    CF_REQ_REVS,
    CF_SEAL_KEYS,
    CF_POLICIES,
    CF_STATUS_LISTS,
    CF_AUDIT,
    CF_AUDIT_JOURNAL,
];

/// `sm_meta` key of the last applied log id.
pub const META_LAST_APPLIED: &[u8] = b"last_applied";
/// `sm_meta` key of the last applied membership.
pub const META_MEMBERSHIP: &[u8] = b"membership";
/// `sm_meta` key present while a snapshot install is in progress.
pub const META_INSTALLING: &[u8] = b"installing";
/// `sm_vars` key of the change feed's compaction revision: events below it are gone.
pub const VAR_COMPACTED: &[u8] = b"compacted";
/// `raft_meta` key of the vote.
pub const META_VOTE: &[u8] = b"vote";
/// `raft_meta` key of the committed log id.
pub const META_COMMITTED: &[u8] = b"committed";
/// `raft_meta` key of the last purged log id.
pub const META_LAST_PURGED: &[u8] = b"last_purged";

/// Key of a log entry.
pub fn log_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// Decodes a log key; `None` when it is not 8 bytes.
pub fn log_index(key: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = key.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

/// Prefix shared by every license of one holder.
pub fn holder_prefix(kind: HolderKind, holder_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(4 + holder_id.len() + 1);
    key.extend_from_slice(kind.as_code().as_bytes());
    key.push(b':');
    key.extend_from_slice(holder_id.as_bytes());
    key.push(0);
    key
}

/// Prefix shared by every instance of one license type held by one holder.
pub fn holder_type_prefix(kind: HolderKind, holder_id: &str, type_code: &str) -> Vec<u8> {
    let mut key = holder_prefix(kind, holder_id);
    key.extend_from_slice(type_code.as_bytes());
    key.push(0);
    key
}

/// Key of the current version of a license. `instance` is empty for types a holder may hold
/// only once, and the identifier's serial for types a holder may hold several times.
pub fn current_key(kind: HolderKind, holder_id: &str, type_code: &str, instance: &str) -> Vec<u8> {
    let mut key = holder_type_prefix(kind, holder_id, type_code);
    key.extend_from_slice(instance.as_bytes());
    key
}

/// Key of a serial counter.
pub fn serial_key(type_code: &str, issuer_code: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(type_code.len() + 1 + issuer_code.len());
    key.extend_from_slice(type_code.as_bytes());
    key.push(0);
    key.extend_from_slice(issuer_code.as_bytes());
    key
}

/// Key of an event: its revision, then its position among the events of that revision.
pub fn event_key(revision: u64, seq: u32) -> [u8; 12] {
    let mut key = [0u8; 12];
    key[..8].copy_from_slice(&revision.to_be_bytes());
    key[8..].copy_from_slice(&seq.to_be_bytes());
    key
}

/// Key of a stored request result in `req_revs`.
pub fn req_rev_key(revision: u64, request_id: &str) -> Vec<u8> {
    let mut key = revision.to_be_bytes().to_vec();
    key.extend_from_slice(request_id.as_bytes());
    key
}

/// Decodes an event key into (revision, sequence); `None` when it is not 12 bytes.
pub fn event_key_parts(key: &[u8]) -> Option<(u64, u32)> {
    let revision: [u8; 8] = key.get(..8)?.try_into().ok()?;
    let seq: [u8; 4] = key.get(8..)?.try_into().ok()?;
    Some((u64::from_be_bytes(revision), u32::from_be_bytes(seq)))
}

/// A one-byte tag followed by `rest`: the layout of every `seal_keys` key.
fn tagged(tag: u8, rest: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + rest.len());
    key.push(tag);
    key.extend_from_slice(rest);
    key
}

/// `seal_keys` key of a key record.
pub fn seal_key_record_key(key_id: &[u8; 16]) -> Vec<u8> {
    tagged(b'k', key_id)
}

/// `seal_keys` key naming an authority's active key.
pub fn seal_active_key(authority: &str) -> Vec<u8> {
    tagged(b'a', authority.as_bytes())
}

/// `seal_keys` key of the trust list imported under a root key.
pub fn trust_anchor_key(root_key_id: &[u8; 16]) -> Vec<u8> {
    tagged(b't', root_key_id)
}

/// `seal_keys` key naming the root an authority is trusted through.
pub fn trusted_authority_key(authority: &str) -> Vec<u8> {
    tagged(b'f', authority.as_bytes())
}

/// `policies` key of the disclosure rule of a service item for a license type.
pub fn disclosure_rule_key(service_item: &str, type_code: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + service_item.len() + type_code.len());
    key.push(b'd');
    key.extend_from_slice(service_item.as_bytes());
    key.push(0);
    key.extend_from_slice(type_code.as_bytes());
    key
}

/// `policies` key of a principal.
pub fn principal_key(name: &str) -> Vec<u8> {
    tagged(b'p', name.as_bytes())
}

/// The `policies` keys of every principal: `[from, to)`.
pub fn principal_range() -> (Vec<u8>, Vec<u8>) {
    (vec![b'p'], vec![b'p' + 1])
}

/// `policies` key of a revoked bearer token.
pub fn revoked_token_key(jti: &str) -> Vec<u8> {
    tagged(b'x', jti.as_bytes())
}

/// `policies` key of a service item.
pub fn service_item_key(name: &str) -> Vec<u8> {
    tagged(b'i', name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keys_sort_numerically() {
        let cases = [(0u64, 1u64), (9, 10), (255, 256), (u64::MAX - 1, u64::MAX)];
        for (a, b) in cases {
            assert!(log_key(a) < log_key(b), "{a} < {b}");
            assert_eq!(log_index(&log_key(a)), Some(a));
        }
        assert_eq!(log_index(b"short"), None);
    }

    #[test]
    fn holder_prefix_does_not_prefix_another_holder() {
        let a = holder_prefix(HolderKind::CitizenId, "31011519850612004");
        let b = current_key(HolderKind::CitizenId, "310115198506120042", "T", "");
        assert!(!b.starts_with(&a));
        let own = current_key(HolderKind::CitizenId, "31011519850612004", "T", "");
        assert!(own.starts_with(&a));
    }

    #[test]
    fn event_keys_sort_by_revision_then_sequence() {
        let ordered = [
            (1u64, 0u32),
            (1, 1),
            (1, 300),
            (2, 0),
            (256, 0),
            (u64::MAX, 0),
        ];
        for pair in ordered.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            assert!(event_key(a.0, a.1) < event_key(b.0, b.1), "{a:?} < {b:?}");
            assert_eq!(event_key_parts(&event_key(a.0, a.1)), Some(a));
        }
        assert_eq!(event_key_parts(b"short"), None);
    }

    #[test]
    fn holder_kinds_do_not_share_prefixes() {
        let a = holder_prefix(HolderKind::CitizenId, "X");
        let b = holder_prefix(HolderKind::Uscc, "X");
        assert_ne!(a, b);
    }
}
