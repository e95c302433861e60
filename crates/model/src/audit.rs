//! Audit records: who used which license, for what, with what outcome; chained by BLAKE3.
//!
//! A node records an [`AuditEvent`] for every verification, license read, export and write it
//! answers, and for every call it refuses, before it answers. The events are replicated in
//! batches; applying a batch numbers each event and links it to the record before it, which
//! makes an [`AuditRecord`]. Anyone holding the records can check the chain with
//! [`check_chain`]: altering, dropping or reordering a stored record breaks a link.
//!
//! # Format, version 1
//!
//! Integers little-endian; strings are a `u32` byte length and UTF-8 bytes (as in
//! [`crate::canonical`]).
//!
//! | # | field          | encoding                                               |
//! |---|----------------|--------------------------------------------------------|
//! | 0 | format version | `u8` = 1                                               |
//! | 1 | seq            | `u64`, the record's position in the trail, from 1      |
//! | 2 | prev           | 32 bytes: [`record_hash`] of record `seq - 1`, or zeros |
//! | 3 | time_ms        | `u64`, the node's clock, ms since the Unix epoch       |
//! | 4 | node_id        | `u64`, the node that answered the call                 |
//! | 5 | journal        | `u64`, that node's journal id                           |
//! | 6 | journal_seq    | `u64`, the event's position in that journal            |
//! | 7 | caller         | string: the certificate's name; empty without TLS      |
//! | 8 | roles          | string: the caller's roles, comma-separated            |
//! | 9 | action         | string: the RPC, `Service/Method`                      |
//! | 10 | outcome       | string: a verdict, `ok` or a refusal's gRPC code name  |
//! | 11 | detail        | string: why a call was refused, or what a bulk call did |
//! | 12 | service_item  | string                                                 |
//! | 13 | purpose       | string                                                 |
//! | 14 | holder_kind   | `u8`: 0 none, 1 citizen ID, 2 USCC                      |
//! | 15 | holder_id     | string                                                 |
//! | 16 | type_code     | string                                                 |
//! | 17 | identifier    | string                                                 |
//! | 18 | revision      | `u64`: the revision read or written; 0 for none        |

use crate::canonical::{Reader, Writer};
use crate::{HolderKind, ModelError};

const FORMAT_VERSION: u8 = 1;

/// BLAKE3 key-derivation context of [`record_hash`].
const HASH_CONTEXT: &str = "licstore 2026 audit record v1";

/// What one node records about one call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditEvent {
    /// The node's clock when it answered, ms since the Unix epoch.
    pub time_ms: u64,
    /// The node that answered.
    pub node_id: u64,
    /// The id of that node's journal (a new one after its data is wiped).
    pub journal: u64,
    /// The event's position in that journal, from 1.
    pub journal_seq: u64,
    /// The caller's certificate name; empty with access control off.
    pub caller: String,
    /// The caller's roles, comma-separated.
    pub roles: String,
    /// The RPC, `Service/Method`.
    pub action: String,
    /// A verdict (`valid`, `not_found`, ...), `ok`, or a refusal's gRPC code in snake case.
    pub outcome: String,
    /// Why a call was refused, or what a bulk call did.
    pub detail: String,
    /// The service item a verification named.
    pub service_item: String,
    /// The purpose a verification stated.
    pub purpose: String,
    /// The holder's kind, when the call named a holder.
    pub holder_kind: Option<HolderKind>,
    /// The holder's id.
    pub holder_id: String,
    /// The license type code.
    pub type_code: String,
    /// The license identifier, when one is known.
    pub identifier: String,
    /// The revision read or written; 0 for none.
    pub revision: u64,
}

/// An event with its place in the trail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    /// Position in the trail, from 1.
    pub seq: u64,
    /// [`record_hash`] of the record before; zeros for the first.
    pub prev: [u8; 32],
    /// What happened.
    pub event: AuditEvent,
}

/// The encoding of `record` (the module header's format).
pub fn encode_record(record: &AuditRecord) -> Vec<u8> {
    let e = &record.event;
    let mut w = Writer(Vec::with_capacity(256));
    w.u8(FORMAT_VERSION);
    w.u64(record.seq);
    w.0.extend_from_slice(&record.prev);
    for n in [e.time_ms, e.node_id, e.journal, e.journal_seq] {
        w.u64(n);
    }
    for s in [&e.caller, &e.roles, &e.action, &e.outcome, &e.detail] {
        w.string(s);
    }
    w.string(&e.service_item);
    w.string(&e.purpose);
    w.u8(holder_tag(e.holder_kind));
    for s in [&e.holder_id, &e.type_code, &e.identifier] {
        w.string(s);
    }
    w.u64(e.revision);
    w.0
}

/// Decodes a record, refusing trailing bytes.
pub fn decode_record(bytes: &[u8]) -> Result<AuditRecord, ModelError> {
    let mut r = Reader::new(bytes);
    let version = r.u8("format version")?;
    if version != FORMAT_VERSION {
        return Err(r.error("format version", format!("unknown version {version}")));
    }
    let seq = r.u64("seq")?;
    let prev = r.array("prev")?;
    let event = AuditEvent {
        time_ms: r.u64("time_ms")?,
        node_id: r.u64("node_id")?,
        journal: r.u64("journal")?,
        journal_seq: r.u64("journal_seq")?,
        caller: r.string("caller")?,
        roles: r.string("roles")?,
        action: r.string("action")?,
        outcome: r.string("outcome")?,
        detail: r.string("detail")?,
        service_item: r.string("service_item")?,
        purpose: r.string("purpose")?,
        holder_kind: read_holder_kind(&mut r)?,
        holder_id: r.string("holder_id")?,
        type_code: r.string("type_code")?,
        identifier: r.string("identifier")?,
        revision: r.u64("revision")?,
    };
    r.finish()?;
    Ok(AuditRecord { seq, prev, event })
}

/// The hash that links the next record to the one encoded as `bytes`.
pub fn record_hash(bytes: &[u8]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_derive_key(HASH_CONTEXT);
    hasher.update(bytes);
    *hasher.finalize().as_bytes()
}

fn holder_tag(kind: Option<HolderKind>) -> u8 {
    match kind {
        None => 0,
        Some(HolderKind::CitizenId) => 1,
        Some(HolderKind::Uscc) => 2,
    }
}

fn read_holder_kind(r: &mut Reader<'_>) -> Result<Option<HolderKind>, ModelError> {
    match r.u8("holder_kind")? {
        0 => Ok(None),
        1 => Ok(Some(HolderKind::CitizenId)),
        2 => Ok(Some(HolderKind::Uscc)),
        tag => Err(r.error("holder_kind", format!("unknown tag {tag}"))),
    }
}

/// The action of the record a trim of the trail leaves (`Audit/TrimAudit`).
pub const TRIM_ACTION: &str = "Audit/TrimAudit";

/// What a trim removed: records `1..=through_seq` (those before already gone); `hash` is
/// [`record_hash`] of record `through_seq`, the checkpoint the rest of the chain links to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trim {
    /// The last record removed.
    pub through_seq: u64,
    /// Its hash.
    pub hash: [u8; 32],
    /// How many records this trim removed.
    pub records: u64,
}

impl Trim {
    /// The `detail` of a trim's record: `through=N hash=HEX records=K`.
    pub fn detail(&self) -> String {
        let hex: String = self.hash.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "through={} hash={hex} records={}",
            self.through_seq, self.records
        )
    }

    /// The trim a record stands for, if it is one: made when the trim was applied (journal
    /// position 0, which no served call has), action [`TRIM_ACTION`], outcome `ok`, and a
    /// detail [`Trim::detail`] wrote.
    pub fn of_record(record: &AuditRecord) -> Option<Trim> {
        let e = &record.event;
        if e.journal_seq != 0 || e.action != TRIM_ACTION || e.outcome != "ok" {
            return None;
        }
        let mut through_seq = None;
        let mut hash = None;
        let mut records = None;
        for part in e.detail.split(' ') {
            match part.split_once('=')? {
                ("through", v) => through_seq = v.parse().ok(),
                ("hash", v) => hash = parse_hash(v),
                ("records", v) => records = v.parse().ok(),
                _ => return None,
            }
        }
        Some(Trim {
            through_seq: through_seq?,
            hash: hash?,
            records: records?,
        })
    }
}

fn parse_hash(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Where a chain stops holding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokenLink {
    /// The position (from 1) of the first record that does not follow from the ones before.
    pub seq: u64,
    /// What is wrong with it.
    pub reason: String,
}

/// The state of a chain check: feed records in order with [`ChainCheck::next`].
#[derive(Clone, Debug)]
pub struct ChainCheck {
    expected_seq: u64,
    prev: [u8; 32],
}

impl ChainCheck {
    /// A check of a trail from its first record.
    pub fn from_start() -> ChainCheck {
        ChainCheck {
            expected_seq: 1,
            prev: [0; 32],
        }
    }

    /// A check that continues after the record at `seq` whose hash is `hash`.
    pub fn after(seq: u64, hash: [u8; 32]) -> ChainCheck {
        ChainCheck {
            // Saturating: a position past every real one breaks at the next record.
            expected_seq: seq.saturating_add(1),
            prev: hash,
        }
    }

    /// Checks the next stored record's bytes: it must decode, hold the next position and link
    /// to the record before. Returns the record.
    pub fn next(&mut self, bytes: &[u8]) -> Result<AuditRecord, BrokenLink> {
        let seq = self.expected_seq;
        let broken = |reason: String| BrokenLink { seq, reason };
        let record = decode_record(bytes).map_err(|e| broken(format!("does not decode: {e}")))?;
        if record.seq != seq {
            return Err(broken(format!("holds position {}", record.seq)));
        }
        if record.prev != self.prev {
            return Err(broken(
                "its link does not match the record before: one of the two was altered".into(),
            ));
        }
        self.prev = record_hash(bytes);
        self.expected_seq = self.expected_seq.saturating_add(1);
        Ok(record)
    }

    /// The hash of the last record checked (zeros before the first).
    pub fn head(&self) -> [u8; 32] {
        self.prev
    }

    /// How many records have been checked, counting those before [`ChainCheck::after`].
    pub fn checked(&self) -> u64 {
        self.expected_seq - 1
    }
}

/// Checks a whole trail, from its first record; returns the head hash and the record count.
pub fn check_chain<'a>(
    records: impl IntoIterator<Item = &'a [u8]>,
) -> Result<([u8; 32], u64), BrokenLink> {
    let mut check = ChainCheck::from_start();
    for bytes in records {
        check.next(bytes)?;
    }
    Ok((check.head(), check.checked()))
}

#[cfg(test)]
mod tests;
