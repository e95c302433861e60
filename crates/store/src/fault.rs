//! Deliberate faults for the chaos suite's negative control, compiled only with the
//! `fault-injection` feature and never in a release meant for use.
//!
//! `LICSTORE_FAULT_DROP_AMEND_EVERY=N` (read once, at the first apply): an `Amend` at a log
//! index divisible by `N` is decided as usual, and its result goes back to the client, but
//! its changes are thrown away. Every replica drops the same entries, so replicas still agree
//! with each other: what the suite must notice is an acknowledged write that is not there.

use std::sync::OnceLock;

use crate::Command;

/// Environment variable that turns the fault on.
pub const DROP_AMEND_EVERY_ENV: &str = "LICSTORE_FAULT_DROP_AMEND_EVERY";

/// The `N` of [`DROP_AMEND_EVERY_ENV`]; `None` when unset, empty, zero or not a number.
pub fn drop_amend_every() -> Option<u64> {
    static EVERY: OnceLock<Option<u64>> = OnceLock::new();
    *EVERY.get_or_init(|| {
        let every = std::env::var(DROP_AMEND_EVERY_ENV).ok()?.parse().ok()?;
        (every > 0).then_some(every)
    })
}

/// Whether the command at log index `index` is acknowledged without being stored.
pub(crate) fn drops(every: Option<u64>, index: u64, cmd: &Command) -> bool {
    drops_at(every, index, matches!(cmd, Command::Amend { .. }))
}

fn drops_at(every: Option<u64>, index: u64, is_amend: bool) -> bool {
    is_amend && every.is_some_and(|n| index.is_multiple_of(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_amends_at_multiples_are_dropped() {
        let cases = [
            (Some(3), 9, true, true),
            (Some(3), 10, true, false),
            (None, 9, true, false),
            (Some(3), 9, false, false),
            (Some(1), 1, true, true),
        ];
        for (every, index, is_amend, dropped) in cases {
            assert_eq!(
                drops_at(every, index, is_amend),
                dropped,
                "{every:?} {index}"
            );
        }
    }
}
