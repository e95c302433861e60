//! How often calls with no identity at all are recorded in the audit trail.
//!
//! A call with neither a usable client certificate nor a valid bearer token names no
//! principal, and anyone who reaches the port can make such calls as fast as the network
//! allows. Recording each one would let a stranger fill the replicated trail, so each source
//! gets at most one record per [`RECORD_EVERY`]; the refusals left out are counted, and the
//! next record from that source states how many. A source is an IPv4 address or an IPv6 /64
//! (one host's share of addresses). Every such refusal that reaches the access check is still
//! counted in `licstore_access_unauthenticated_total`. Decisions only: the caller supplies
//! the clock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Least time between two records of refusals from one peer address.
pub const RECORD_EVERY: Duration = Duration::from_secs(1);

/// Sources tracked at most; past it, those quiet for [`FORGET_AFTER`] are dropped (at most
/// one sweep per [`RECORD_EVERY`]), and if that is not enough, new ones share one entry.
pub const ADDRESSES_MAX: usize = 10_000;

/// How long a quiet source's entry is kept; refusals it left out are then counted in the
/// metric only.
pub const FORGET_AFTER: Duration = Duration::from_secs(60);

/// Counter: calls refused for want of any identity.
pub const UNAUTHENTICATED: &str = "licstore_access_unauthenticated_total";

/// Where refusals come from: an IPv4 address, an IPv6 /64, or (`None`) unknown or one of
/// the sources past [`ADDRESSES_MAX`], counted together.
pub type Source = Option<IpAddr>;

/// When each source last had a refusal recorded, and how many it had since.
#[derive(Debug, Default)]
pub struct AnonymousRefusals {
    /// Per source: the last record's time and the refusals left out since.
    seen: HashMap<Source, (Instant, u64)>,
    /// When the entries were last swept.
    swept: Option<Instant>,
}

/// The source a peer address counts under: an IPv6 address by its /64.
pub fn source_of(peer: Option<IpAddr>) -> Source {
    match peer? {
        // An IPv4 client of a dual-stack listener: its own address.
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => v6.to_ipv4_mapped().map(IpAddr::V4),
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            Some(IpAddr::V6(prefix.into()))
        }
        v4 => Some(v4),
    }
}

impl AnonymousRefusals {
    /// Whether the refusal of a call from `peer` at `now` is recorded: the source it counts
    /// under and the refusals from it left out since its last record, or `None` when this one
    /// is left out (and counted).
    pub fn record(&mut self, peer: Option<IpAddr>, now: Instant) -> Option<(Source, u64)> {
        let key = self.key_for(source_of(peer), now);
        match self.seen.get_mut(&key) {
            Some((last, skipped)) if now.saturating_duration_since(*last) < RECORD_EVERY => {
                *skipped += 1;
                None
            }
            Some((last, skipped)) => {
                let left_out = *skipped;
                (*last, *skipped) = (now, 0);
                Some((key, left_out))
            }
            None => {
                self.seen.insert(key, (now, 0));
                Some((key, 0))
            }
        }
    }

    /// The entry `source` is counted under: its own while there is room.
    fn key_for(&mut self, source: Source, now: Instant) -> Source {
        if self.seen.contains_key(&source) || self.seen.len() < ADDRESSES_MAX {
            return source;
        }
        let due = self
            .swept
            .is_none_or(|at| now.saturating_duration_since(at) >= RECORD_EVERY);
        if due {
            self.swept = Some(now);
            self.seen.retain(|key, (last, skipped)| {
                let quiet = now.saturating_duration_since(*last);
                // Nothing left out to report, or quiet so long that the count goes.
                let spent = (*skipped == 0 && quiet >= RECORD_EVERY) || quiet >= FORGET_AFTER;
                key.is_none() || !spent
            });
        }
        match self.seen.len() < ADDRESSES_MAX {
            true => source,
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
    fn one_record_per_source_per_interval_stating_what_was_left_out() {
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
            let got = r.record(peer, ms(at)).map(|(_, n)| n);
            assert_eq!(got, expected, "step {i}");
        }
    }

    #[test]
    fn past_the_bound_quiet_sources_go_and_new_ones_share_an_entry() {
        let t0 = Instant::now();
        let mut r = AnonymousRefusals::default();
        for n in 0..ADDRESSES_MAX as u32 {
            r.record(ip(n), t0);
        }
        assert_eq!(r.len(), ADDRESSES_MAX);
        // Within the interval, nothing can go: the newcomer shares the overflow entry.
        let late = ip(ADDRESSES_MAX as u32);
        assert_eq!(r.record(late, t0), Some((None, 0)));
        assert_eq!(r.record(ip(ADDRESSES_MAX as u32 + 1), t0), None, "shared");
        assert!(r.len() <= ADDRESSES_MAX + 1);
        // One source keeps being refused; once the interval has passed, the quiet ones go.
        r.record(ip(7), t0 + Duration::from_millis(10));
        let later = t0 + RECORD_EVERY * 2;
        assert_eq!(
            r.record(late, later),
            Some((late, 0)),
            "its own entry again"
        );
        assert!(r.len() <= 3, "{} tracked", r.len());
        assert_eq!(
            r.record(ip(7), later),
            Some((ip(7), 1)),
            "its count is kept"
        );
        // Sources that each left some out fill the table; past FORGET_AFTER they go too.
        let mut r = AnonymousRefusals::default();
        for n in 0..ADDRESSES_MAX as u32 {
            r.record(ip(n), t0);
            r.record(ip(n), t0);
        }
        let much_later = t0 + FORGET_AFTER;
        assert_eq!(r.record(late, much_later), Some((late, 0)));
        assert!(r.len() <= 2, "{} tracked", r.len());
    }

    #[test]
    fn an_ipv6_host_counts_as_its_slash_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        let other: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        let net: IpAddr = "2001:db8:1:2::".parse().expect("ip");
        assert_eq!(source_of(Some(a)), Some(net));
        assert_eq!(source_of(Some(a)), source_of(Some(b)));
        assert_ne!(source_of(Some(a)), source_of(Some(other)));
        let v4: IpAddr = "10.1.2.3".parse().expect("ip");
        assert_eq!(source_of(Some(v4)), Some(v4));
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().expect("ip");
        assert_eq!(
            source_of(Some(mapped)),
            Some(v4),
            "a dual-stack listener's IPv4 client"
        );
        let t0 = Instant::now();
        let mut r = AnonymousRefusals::default();
        assert_eq!(r.record(Some(a), t0), Some((Some(net), 0)));
        assert_eq!(r.record(Some(b), t0), None, "the same /64");
    }
}
