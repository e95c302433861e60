//! Limits against abuse: so that one noisy caller cannot starve the others.
//!
//! Three checks, all in front of the handlers (the access layer calls [`Limits::admit`] for
//! every call before it looks the caller up, so a flood of refused calls is limited too):
//!
//! - **in flight on the node** (`limits.max_in_flight`): load shedding. A call over the bound
//!   is answered at once rather than queued, so a node under overload answers quickly that it
//!   is overloaded instead of answering everybody late;
//! - **in flight per caller** (`limits.principal_max_in_flight`): one caller may hold only a
//!   share of the node's slots, so shedding falls on the caller that causes it;
//! - **rate per caller** (`limits.rate_per_s`, `limits.burst`): a token bucket. A call costs
//!   one token, a VerifyBatch one per item ([`Limits::charge`]).
//!
//! A caller is its certificate name, or `peer:<ip>` with access control off. Every caller has
//! the quota of `[limits]` unless `[limits.principals.NAME]` gives it one of its own.
//! Raft messages from the nodes and health checks are never limited.
//!
//! A refused call is RESOURCE_EXHAUSTED, with the delay after which a retry may succeed in
//! three places: the message (`retry in N ms`), the `retry-after-ms` metadata and a
//! `google.rpc.RetryInfo` detail. RESOURCE_EXHAUSTED rather than UNAVAILABLE: the call was
//! refused for the caller's load, not because the node is down, and client libraries that
//! retry UNAVAILABLE on their own would turn shedding into more load.
//!
//! Request size is bounded by tonic's decoder (`limits.max_request_bytes` on every public
//! service); [`oversize`] turns its OUT_OF_RANGE into RESOURCE_EXHAUSTED naming the key.
//!
//! The decisions ([`decide`]) are pure: the time is an argument.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tonic::Status;

/// Calls shed, by reason (`rate`, `principal_in_flight`, `node_in_flight`, `size`).
pub const SHED: &str = "licstore_requests_shed_total";
/// Calls in flight on this node that count against `limits.max_in_flight`.
pub const IN_FLIGHT: &str = "licstore_requests_in_flight";
/// Metadata key of the retry hint, in milliseconds (the client honours it).
pub const RETRY_AFTER_KEY: &str = licstore_client::RETRY_AFTER_METADATA_KEY;
/// The retry hint of a call shed for the number in flight: about one write's commit.
pub const IN_FLIGHT_RETRY: Duration = Duration::from_millis(50);
/// Callers remembered before idle ones (full bucket, nothing in flight) are forgotten.
const MAX_TRACKED_CALLERS: usize = 10_000;
/// Least time between two sweeps for idle callers.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// The caller that new callers are counted as while [`MAX_TRACKED_CALLERS`] are busy: they
/// share one quota rather than grow the table.
const OVERFLOW_CALLER: &str = "(untracked callers)";
/// Least time between two warnings about shed calls.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// One caller's allowance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    /// Calls per second it may sustain; 0: no rate limit.
    pub rate_per_s: u32,
    /// Calls it may make at once after a quiet spell (the bucket's size); at least 1.
    pub burst: u32,
    /// Calls it may have in flight on this node at once; 0: no bound of its own.
    pub max_in_flight: u32,
}

/// The `[limits]` settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitSettings {
    /// Largest request message a public service decodes, in bytes.
    pub max_request_bytes: usize,
    /// Calls in flight on the node at once; 0: no bound.
    pub max_in_flight: u32,
    /// Every caller's quota unless `principals` names it.
    pub default_quota: Quota,
    /// Quotas of named callers.
    pub principals: BTreeMap<String, Quota>,
}

impl LimitSettings {
    /// No bound at all but tonic's default request size: for tests of other things.
    pub fn unlimited() -> LimitSettings {
        LimitSettings {
            max_request_bytes: 4 << 20,
            max_in_flight: 0,
            default_quota: Quota {
                rate_per_s: 0,
                burst: 1,
                max_in_flight: 0,
            },
            principals: BTreeMap::new(),
        }
    }

    fn quota_of(&self, caller: &str) -> Quota {
        self.principals
            .get(caller)
            .copied()
            .unwrap_or(self.default_quota)
    }
}

/// Why a call was shed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShedReason {
    /// The caller spent its tokens.
    Rate,
    /// The caller has its share of calls in flight.
    PrincipalInFlight,
    /// The node has its bound of calls in flight.
    NodeInFlight,
    /// The request message is over `limits.max_request_bytes`.
    Size,
}

impl ShedReason {
    /// Every reason, for the metric's series.
    pub const ALL: [ShedReason; 4] = [
        ShedReason::Rate,
        ShedReason::PrincipalInFlight,
        ShedReason::NodeInFlight,
        ShedReason::Size,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            ShedReason::Rate => "rate",
            ShedReason::PrincipalInFlight => "principal_in_flight",
            ShedReason::NodeInFlight => "node_in_flight",
            ShedReason::Size => "size",
        }
    }
}

/// A refusal, with when to try again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shed {
    /// Which bound.
    pub reason: ShedReason,
    /// After this long a retry may succeed.
    pub retry_after: Duration,
    /// The bound, for the message.
    pub why: String,
}

impl Shed {
    /// RESOURCE_EXHAUSTED with the retry hint in the message, the metadata and a RetryInfo.
    pub fn to_status(&self) -> Status {
        let ms = retry_ms(self.retry_after);
        let message = format!("{}; retry in {ms} ms", self.why);
        retry_status(message, Duration::from_millis(ms))
    }
}

/// RESOURCE_EXHAUSTED carrying `retry_after` as `retry-after-ms` and as RetryInfo.
fn retry_status(message: String, retry_after: Duration) -> Status {
    use tonic_types::{ErrorDetails, StatusExt};
    let details = ErrorDetails::with_retry_info(Some(retry_after));
    let mut status = Status::with_error_details(tonic::Code::ResourceExhausted, message, details);
    if let Ok(value) = retry_ms(retry_after).to_string().parse() {
        status.metadata_mut().insert(RETRY_AFTER_KEY, value);
    }
    status
}

/// Whole milliseconds rounded up, at least 1: an early retry would be refused again.
fn retry_ms(d: Duration) -> u64 {
    u64::try_from(d.as_micros().div_ceil(1000))
        .unwrap_or(u64::MAX)
        .max(1)
}

/// What is remembered of one caller.
#[derive(Clone, Debug, PartialEq)]
pub struct CallerState {
    /// Tokens in the bucket at `refilled`.
    pub tokens: f64,
    /// When `tokens` was last brought up to date.
    pub refilled: Instant,
    /// Its calls in flight.
    pub in_flight: u32,
}

impl CallerState {
    /// A caller not seen before: a full bucket.
    pub fn new(quota: Quota, now: Instant) -> CallerState {
        CallerState {
            tokens: f64::from(quota.burst.max(1)),
            refilled: now,
            in_flight: 0,
        }
    }

    fn refill(&mut self, quota: Quota, now: Instant) {
        let elapsed_s = now.saturating_duration_since(self.refilled).as_secs_f64();
        let full = f64::from(quota.burst.max(1));
        self.tokens = (self.tokens + elapsed_s * f64::from(quota.rate_per_s)).min(full);
        self.refilled = now;
    }

    fn idle(&self, quota: Quota) -> bool {
        self.in_flight == 0 && self.tokens >= f64::from(quota.burst.max(1))
    }
}

/// Decides whether a call costing `cost` tokens may start, given the node's calls in flight
/// and the caller's state, which it updates (tokens taken) only when the call is admitted.
/// `entering` is false for [`Limits::charge`], which adds cost to a call already admitted.
pub fn decide(
    settings: &LimitSettings,
    quota: Quota,
    node_in_flight: u32,
    caller: &mut CallerState,
    cost: u32,
    entering: bool,
    now: Instant,
) -> Result<(), Shed> {
    if entering && settings.max_in_flight > 0 && node_in_flight >= settings.max_in_flight {
        return Err(Shed {
            reason: ShedReason::NodeInFlight,
            retry_after: IN_FLIGHT_RETRY,
            why: format!(
                "overloaded: {node_in_flight} calls in flight on this node, the bound \
                 (limits.max_in_flight) is {}",
                settings.max_in_flight
            ),
        });
    }
    if entering && quota.max_in_flight > 0 && caller.in_flight >= quota.max_in_flight {
        return Err(Shed {
            reason: ShedReason::PrincipalInFlight,
            retry_after: IN_FLIGHT_RETRY,
            why: format!(
                "{} calls of this caller in flight, its bound (max_in_flight) is {}",
                caller.in_flight, quota.max_in_flight
            ),
        });
    }
    if quota.rate_per_s == 0 {
        return Ok(());
    }
    caller.refill(quota, now);
    // A batch larger than the bucket could never pass: it takes the whole bucket instead. A
    // charge is the rest of a call whose first token was taken when it entered.
    let bucket = quota.burst.max(1);
    let cost = f64::from(cost.min(if entering { bucket } else { bucket - 1 }));
    if caller.tokens >= cost {
        caller.tokens -= cost;
        return Ok(());
    }
    // A charge refused is a call refused: its retry pays the entering token again, so the
    // hint covers that too. The token it entered with is not given back, so that refused
    // batches are not free.
    let need = if entering { cost } else { cost + 1.0 };
    let wait_s = (need - caller.tokens) / f64::from(quota.rate_per_s);
    Err(Shed {
        reason: ShedReason::Rate,
        retry_after: Duration::from_secs_f64(wait_s),
        why: format!(
            "rate limit: this caller may make {} calls per second, {} at once \
             (limits.rate_per_s, limits.burst)",
            quota.rate_per_s,
            quota.burst.max(1)
        ),
    })
}

/// Who is calling, as the limits know it: put in a request's extensions by the access layer
/// for handlers that charge more than one token ([`Limits::charge`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitKey(pub String);

/// The limits of one node and the state they keep.
pub struct Limits {
    settings: LimitSettings,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    in_flight: u32,
    callers: HashMap<String, CallerState>,
    last_warning: Option<Instant>,
    last_sweep: Option<Instant>,
}

impl Limits {
    /// Limits with `settings`, nothing in flight.
    pub fn new(settings: LimitSettings) -> Arc<Limits> {
        Arc::new(Limits {
            settings,
            state: Mutex::new(State::default()),
        })
    }

    /// The settings.
    pub fn settings(&self) -> &LimitSettings {
        &self.settings
    }

    /// Admits a call from `caller`, or sheds it. The permit counts the call in flight until
    /// it is dropped.
    pub fn admit(self: &Arc<Self>, caller: &str) -> Result<Permit, Status> {
        let counted = self.take(caller, 1, true)?;
        Ok(Permit {
            limits: self.clone(),
            caller: counted,
        })
    }

    /// Takes `cost` more tokens from `caller` for a call already admitted (a batch's items
    /// after the first), or refuses the call. All of a batch costs at most the bucket.
    pub fn charge(&self, caller: &str, cost: u32) -> Result<(), Status> {
        match cost {
            0 => Ok(()),
            _ => self.take(caller, cost, false).map(drop),
        }
    }

    /// Decides and, for a call `entering`, counts it in flight; the caller it was counted as.
    fn take(&self, caller: &str, cost: u32, entering: bool) -> Result<String, Status> {
        let now = Instant::now();
        let mut state = self.lock();
        if self.untracked(&state, caller) {
            let due = state
                .last_sweep
                .is_none_or(|at| now.saturating_duration_since(at) >= SWEEP_EVERY);
            if due {
                state.last_sweep = Some(now);
                self.forget_idle(&mut state, now);
            }
        }
        let caller = match self.untracked(&state, caller) {
            true => OVERFLOW_CALLER,
            false => caller,
        };
        let quota = self.settings.quota_of(caller);
        let node_in_flight = state.in_flight;
        let entry = state
            .callers
            .entry(caller.to_owned())
            .or_insert_with(|| CallerState::new(quota, now));
        let decided = decide(
            &self.settings,
            quota,
            node_in_flight,
            entry,
            cost,
            entering,
            now,
        );
        if let Err(shed) = decided {
            return Err(self.shed(&mut state, caller, shed, now));
        }
        if entering {
            entry.in_flight += 1;
            state.in_flight += 1;
            metrics::gauge!(IN_FLIGHT).set(f64::from(state.in_flight));
        }
        Ok(caller.to_owned())
    }

    fn shed(&self, state: &mut State, caller: &str, shed: Shed, now: Instant) -> Status {
        metrics::counter!(SHED, "reason" => shed.reason.as_str()).increment(1);
        let quiet = state
            .last_warning
            .is_none_or(|at| now.saturating_duration_since(at) >= WARN_EVERY);
        if quiet {
            state.last_warning = Some(now);
            tracing::warn!(
                caller,
                reason = shed.reason.as_str(),
                "calls shed (warned at most every {} s)",
                WARN_EVERY.as_secs()
            );
        } else {
            tracing::debug!(caller, reason = shed.reason.as_str(), "call shed");
        }
        shed.to_status()
    }

    /// Whether `caller` has no entry and the table is full; named callers always get one.
    fn untracked(&self, state: &State, caller: &str) -> bool {
        state.callers.len() >= MAX_TRACKED_CALLERS
            && !state.callers.contains_key(caller)
            && !self.settings.principals.contains_key(caller)
    }

    fn forget_idle(&self, state: &mut State, now: Instant) {
        let settings = &self.settings;
        state.callers.retain(|name, c| {
            let quota = settings.quota_of(name);
            c.refill(quota, now);
            !c.idle(quota)
        });
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state holds counters only; a panic elsewhere while it was held leaves it usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn release(&self, caller: &str) {
        let mut state = self.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
        if let Some(c) = state.callers.get_mut(caller) {
            c.in_flight = c.in_flight.saturating_sub(1);
        }
        metrics::gauge!(IN_FLIGHT).set(f64::from(state.in_flight));
    }
}

/// A call counted in flight; dropping it ends the count.
pub struct Permit {
    limits: Arc<Limits>,
    caller: String,
}

impl Permit {
    /// The caller the call was counted as (the shared overflow caller past the table's size).
    pub fn caller(&self) -> &str {
        &self.caller
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limits.release(&self.caller);
    }
}

/// The RESOURCE_EXHAUSTED that replaces tonic's OUT_OF_RANGE for a request message over
/// `limits.max_request_bytes`; `None` for any other status.
pub fn oversize(status: &Status, max_request_bytes: usize) -> Option<Status> {
    const TONIC_PREFIX: &str = "Error, decoded message length too large: found ";
    if status.code() != tonic::Code::OutOfRange {
        return None;
    }
    let rest = status.message().strip_prefix(TONIC_PREFIX)?;
    let found: u64 = rest.split(' ').next()?.parse().ok()?;
    metrics::counter!(SHED, "reason" => ShedReason::Size.as_str()).increment(1);
    Some(Status::resource_exhausted(format!(
        "request message of {found} bytes is over limits.max_request_bytes \
         ({max_request_bytes} bytes)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(max_in_flight: u32, quota: Quota) -> LimitSettings {
        LimitSettings {
            max_in_flight,
            default_quota: quota,
            ..LimitSettings::unlimited()
        }
    }

    const fn quota(rate_per_s: u32, burst: u32, max_in_flight: u32) -> Quota {
        Quota {
            rate_per_s,
            burst,
            max_in_flight,
        }
    }

    #[test]
    fn decisions() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        // (node bound, quota, node in flight, caller tokens, caller in flight, cost, at ms,
        //  shed reason or None, tokens left or retry hint in ms)
        type Case = (u32, Quota, u32, f64, u32, u32, u64, Option<ShedReason>, f64);
        use ShedReason::{NodeInFlight as Full, PrincipalInFlight as Mine, Rate};
        let cases: [Case; 11] = [
            (0, quota(0, 1, 0), 9_999, 0.0, 9_999, 1, 0, None, 0.0),
            (4, quota(0, 1, 0), 4, 1.0, 0, 1, 0, Some(Full), 50.0),
            (4, quota(0, 1, 2), 3, 1.0, 2, 1, 0, Some(Mine), 50.0),
            (4, quota(10, 5, 2), 3, 5.0, 1, 1, 0, None, 4.0),
            (0, quota(10, 5, 0), 0, 0.5, 0, 1, 0, Some(Rate), 50.0),
            // 100 ms at 10/s refills one token.
            (0, quota(10, 5, 0), 0, 0.0, 0, 1, 100, None, 0.0),
            // The bucket holds no more than the burst.
            (0, quota(10, 5, 0), 0, 4.0, 0, 1, 10_000, None, 4.0),
            (0, quota(10, 5, 0), 0, 4.0, 0, 3, 0, None, 1.0),
            (0, quota(10, 5, 0), 0, 2.0, 0, 3, 0, Some(Rate), 100.0),
            // A batch larger than the bucket costs the whole bucket.
            (0, quota(10, 5, 0), 0, 5.0, 0, 500, 0, None, 0.0),
            (0, quota(2, 4, 0), 0, 1.0, 0, 4, 0, Some(Rate), 1500.0),
        ];
        for (i, (bound, q, node, tokens, mine, cost, at, shed, expected)) in
            cases.into_iter().enumerate()
        {
            let mut caller = CallerState {
                tokens,
                refilled: t0,
                in_flight: mine,
            };
            let s = settings(bound, q);
            match decide(&s, q, node, &mut caller, cost, true, ms(at)) {
                Ok(()) => {
                    assert_eq!(shed, None, "case {i}");
                    assert!(
                        (caller.tokens - expected).abs() < 1e-6,
                        "case {i}: {caller:?}"
                    );
                }
                Err(refused) => {
                    assert_eq!(Some(refused.reason), shed, "case {i}");
                    let hint = refused.retry_after.as_secs_f64() * 1000.0;
                    assert!((hint - expected).abs() < 1e-3, "case {i}: {hint}");
                    assert_eq!(caller.tokens, tokens, "case {i}: a refusal takes no tokens");
                }
            }
        }
    }

    #[test]
    fn a_charge_ignores_in_flight_bounds() {
        let q = quota(0, 1, 1);
        let s = settings(1, q);
        let mut caller = CallerState::new(q, Instant::now());
        caller.in_flight = 1;
        let now = Instant::now();
        assert!(decide(&s, q, 1, &mut caller, 3, false, now).is_ok());
        assert!(decide(&s, q, 1, &mut caller, 1, true, now).is_err());
    }

    #[test]
    fn a_refused_charge_hints_at_the_whole_cost_of_its_retry() {
        let t0 = Instant::now();
        let q = quota(10, 20, 0);
        let s = settings(0, q);
        let mut caller = CallerState {
            tokens: 15.0,
            refilled: t0,
            in_flight: 0,
        };
        decide(&s, q, 0, &mut caller, 1, true, t0).expect("admitted");
        let refused = decide(&s, q, 0, &mut caller, 19, false, t0).expect_err("14 < 19");
        assert_eq!(caller.tokens, 14.0, "the entering token stays spent");
        assert_eq!(refused.retry_after, Duration::from_millis(600));
        let later = t0 + refused.retry_after;
        decide(&s, q, 0, &mut caller, 1, true, later).expect("the retry enters");
        decide(&s, q, 0, &mut caller, 19, false, later).expect("and its batch is paid");
    }

    #[test]
    fn busy_callers_past_the_table_share_one_quota() {
        let limits = Limits::new(settings(0, quota(0, 1, 1)));
        let held: Vec<Permit> = (0..MAX_TRACKED_CALLERS)
            .map(|i| limits.admit(&format!("ip:{i}")).expect("one each"))
            .collect();
        let first = limits
            .admit("newcomer-1")
            .expect("counted as the overflow caller");
        assert_eq!(first.caller, OVERFLOW_CALLER);
        assert!(
            limits.admit("newcomer-2").is_err(),
            "the overflow caller's one slot"
        );
        drop(held);
        drop(first);
        // Sweeps are at most one a second.
        std::thread::sleep(SWEEP_EVERY);
        let tracked = limits.admit("newcomer-3").expect("idle callers swept");
        assert_eq!(tracked.caller, "newcomer-3");
    }

    #[test]
    fn a_batch_costs_at_most_the_bucket() {
        let limits = Limits::new(settings(0, quota(1, 3, 0)));
        let _call = limits.admit("a").expect("the batch's first token");
        limits.charge("a", 499).expect("the rest, up to the bucket");
        assert!(limits.admit("a").is_err(), "the bucket is empty");
    }

    #[test]
    fn permits_count_calls_in_flight_per_caller() {
        let limits = Limits::new(settings(3, quota(0, 1, 2)));
        let a1 = limits.admit("a").expect("first");
        let _a2 = limits.admit("a").expect("second");
        let shed = limits
            .admit("a")
            .err()
            .expect("a's third is over its share");
        assert_eq!(shed.code(), tonic::Code::ResourceExhausted);
        assert!(shed.message().contains("max_in_flight"), "{shed:?}");
        let _b1 = limits.admit("b").expect("b has its own share");
        let shed = limits.admit("c").err().expect("the node is full");
        assert!(shed.message().contains("limits.max_in_flight"), "{shed:?}");
        drop(a1);
        let _c1 = limits.admit("c").expect("a slot is free again");
    }

    #[test]
    fn a_shed_call_carries_its_retry_hint_three_ways() {
        use tonic_types::StatusExt;
        let limits = Limits::new(settings(0, quota(1, 1, 0)));
        let _first = limits.admit("a").expect("a full bucket");
        let shed = limits.admit("a").err().expect("an empty bucket");
        assert_eq!(shed.code(), tonic::Code::ResourceExhausted);
        let ms: u64 = shed
            .metadata()
            .get(RETRY_AFTER_KEY)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .expect("retry-after-ms");
        assert!((900..=1000).contains(&ms), "{ms}");
        assert!(
            shed.message().contains(&format!("retry in {ms} ms")),
            "{shed:?}"
        );
        let info = shed.get_details_retry_info().expect("RetryInfo");
        let delay = info.retry_delay.expect("a delay");
        assert_eq!(u64::try_from(delay.as_millis()).ok(), Some(ms));
        // Another caller's bucket is its own; a named caller has its own quota.
        let mut named = settings(0, quota(1, 1, 0));
        named.principals.insert("bulk".into(), quota(1, 3, 0));
        let limits = Limits::new(named);
        assert!(limits.admit("b").is_ok());
        for i in 0..3 {
            assert!(limits.admit("bulk").is_ok(), "bulk call {i}");
        }
        assert!(limits.admit("bulk").is_err());
    }

    #[test]
    fn only_the_decoders_size_error_is_rewritten() {
        let tonic = Status::out_of_range(
            "Error, decoded message length too large: found 5000 bytes, the limit is: 4096 bytes",
        );
        let mapped = oversize(&tonic, 4096).expect("rewritten");
        assert_eq!(mapped.code(), tonic::Code::ResourceExhausted);
        assert!(mapped.message().contains("5000 bytes"), "{mapped:?}");
        assert!(
            mapped.message().contains("limits.max_request_bytes"),
            "{mapped:?}"
        );
        assert!(oversize(&Status::out_of_range("page_token past end"), 4096).is_none());
        assert!(oversize(&Status::invalid_argument("x"), 4096).is_none());
    }
}
