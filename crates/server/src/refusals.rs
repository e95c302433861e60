//! How often calls with no identity at all are recorded in the audit trail.
//!
//! A call with neither a usable client certificate nor a valid bearer token names no
//! principal, and anyone who reaches the port can make such calls as fast as the network
//! allows. Recording each one would let a stranger fill the replicated trail, so each peer
//! address gets at most one record per [`RECORD_EVERY`]; the refusals left out are counted,
//! and the next record from that address states how many. Every such refusal is still counted
//! in `licstore_access_unauthenticated_total`. Decisions only: the caller supplies the clock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Least time between two records of refusals from one peer address.
pub const RECORD_EVERY: Duration = Duration::from_secs(1);

/// Addresses tracked at most; past it, the addresses not seen for [`RECORD_EVERY`] are
/// dropped, and if that is not enough, new ones share one entry.
pub const ADDRESSES_MAX: usize = 10_000;

/// Counter: calls refused for want of any identity.
pub const UNAUTHENTICATED: &str = "licstore_access_unauthenticated_total";

/// When each peer address last had a refusal recorded, and how many it had since.
#[derive(Debug, Default)]
pub struct AnonymousRefusals {
    /// Per address (`None`: unknown, or the shared overflow entry): the last record's time
    /// and the refusals left out since.
    seen: HashMap<Option<IpAddr>, (Instant, u64)>,
}

impl AnonymousRefusals {
    /// Whether the refusal of a call from `peer` at `now` is recorded: `Some(n)` with the `n`
    /// refusals from that address left out since its last record, or `None` when this one is
    /// left out (and counted).
    pub fn record(&mut self, peer: Option<IpAddr>, now: Instant) -> Option<u64> {
        let key = self.key_for(peer, now);
        match self.seen.get_mut(&key) {
            Some((last, skipped)) if now.saturating_duration_since(*last) < RECORD_EVERY => {
                *skipped += 1;
                None
            }
            Some((last, skipped)) => {
                let left_out = *skipped;
                (*last, *skipped) = (now, 0);
                Some(left_out)
            }
            None => {
                self.seen.insert(key, (now, 0));
                Some(0)
            }
        }
    }

    /// The entry `peer` is counted under: its own while there is room.
    fn key_for(&mut self, peer: Option<IpAddr>, now: Instant) -> Option<IpAddr> {
        if self.seen.contains_key(&peer) || self.seen.len() < ADDRESSES_MAX {
            return peer;
        }
        // An address quiet for a whole interval has nothing left out to report.
        self.seen.retain(|key, (last, skipped)| {
            key.is_none() || *skipped > 0 || now.saturating_duration_since(*last) < RECORD_EVERY
        });
        match self.seen.len() < ADDRESSES_MAX {
            true => peer,
            false => None,
        }
    }

    /// Addresses tracked.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no address is tracked.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> Option<IpAddr> {
        Some(IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n)))
    }

    #[test]
    fn one_record_per_address_per_interval_stating_what_was_left_out() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut r = AnonymousRefusals::default();
        // (peer, at ms, expected)
        let steps = [
            (ip(1), 0, Some(0)),
            (ip(1), 10, None),
            (ip(1), 999, None),
            (ip(2), 500, Some(0)),
            (ip(1), 1000, Some(2)),
            (ip(1), 1200, None),
            (ip(1), 5000, Some(1)),
            (ip(1), 9000, Some(0)),
            (None, 9000, Some(0)),
            (None, 9001, None),
        ];
        for (i, (peer, at, expected)) in steps.into_iter().enumerate() {
            assert_eq!(r.record(peer, ms(at)), expected, "step {i}");
        }
    }

    #[test]
    fn past_the_bound_quiet_addresses_go_and_new_ones_share_an_entry() {
        let t0 = Instant::now();
        let mut r = AnonymousRefusals::default();
        for n in 0..ADDRESSES_MAX as u32 {
            r.record(ip(n), t0);
        }
        assert_eq!(r.len(), ADDRESSES_MAX);
        // Within the interval, nothing can go: the newcomer shares the overflow entry.
        let late = ip(ADDRESSES_MAX as u32);
        assert_eq!(r.record(late, t0), Some(0));
        assert_eq!(r.record(ip(ADDRESSES_MAX as u32 + 1), t0), None, "shared");
        assert!(r.len() <= ADDRESSES_MAX + 1);
        // One address keeps being refused; once the interval has passed, the quiet ones go.
        r.record(ip(7), t0 + Duration::from_millis(10));
        let later = t0 + RECORD_EVERY * 2;
        assert_eq!(r.record(late, later), Some(0), "its own entry again");
        assert!(r.len() <= 3, "{} tracked", r.len());
        assert_eq!(
            r.record(ip(7), later),
            Some(1),
            "what it had left out is kept"
        );
    }
}
