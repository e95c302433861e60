//! What a run's seed decides before anything starts, TigerBeetle-VOPR style: every random
//! choice of the run comes from one ChaCha8 generator seeded with the run seed, and every
//! derived option is printed at the start ([`describe`]) so a run can be replayed from
//! `--scenario` and `--seed` alone.
//!
//! Streams of the seed's generator: 0 gives the per-part seeds ([`Derived`]), 1 the fault
//! schedule. The nemesis draws its targets from its own generator (seeded with
//! `nemesis_seed`) while the run goes on, so its choices also depend on what the cluster
//! looks like then (who leads); the schedule does not.
//!
//! **Schedule** ([`schedule`]): times are milliseconds from the start of the fault phase.
//! The first injection is at `first_after_ms`; a fault is healed `heal_after_min_ms ..=
//! heal_after_max_ms` after its injection (uniform), never after the phase ends; the next
//! injection is `interval_ms ± interval_jitter_ms` after the previous one, and at least
//! `min_gap_ms` after the previous heal, so faults never overlap. No injection starts at or
//! after the end of the phase.

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::scenario::{FaultTiming, Scenario};

/// Most faults one schedule holds.
const MAX_FAULTS: usize = 10_000;

/// One planned fault, in milliseconds from the start of the fault phase.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FaultSlot {
    pub inject_at_ms: u64,
    pub heal_at_ms: u64,
}

/// Everything the seed decides up front.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Derived {
    pub seed: u64,
    /// Seeds of the register, set and import workloads (their node and key choices).
    pub register_seed: u64,
    pub set_seed: u64,
    pub import_seed: u64,
    /// Seed of the link proxies' delay jitter.
    pub net_seed: u64,
    /// Seed of the nemesis's target choices.
    pub nemesis_seed: u64,
    pub schedule: Vec<FaultSlot>,
}

/// The options `seed` gives `scenario`.
pub fn derive(scenario: &Scenario, seed: u64) -> Derived {
    let mut parts = ChaCha8Rng::seed_from_u64(seed);
    let mut timing = ChaCha8Rng::seed_from_u64(seed);
    timing.set_stream(1);
    let schedule = if scenario.nemesis.is_empty() {
        Vec::new()
    } else {
        schedule(&scenario.faults, scenario.phases.during_ms, &mut timing)
    };
    Derived {
        seed,
        register_seed: parts.next_u64(),
        set_seed: parts.next_u64(),
        import_seed: parts.next_u64(),
        net_seed: parts.next_u64(),
        nemesis_seed: parts.next_u64(),
        schedule,
    }
}

/// The fault plan over a fault phase of `during_ms`; see the module doc.
pub fn schedule(timing: &FaultTiming, during_ms: u64, rng: &mut ChaCha8Rng) -> Vec<FaultSlot> {
    let mut out = Vec::new();
    let mut inject_at_ms = timing.first_after_ms;
    while inject_at_ms < during_ms && out.len() < MAX_FAULTS {
        let lasts_ms = rng.random_range(timing.heal_after_min_ms..=timing.heal_after_max_ms);
        let heal_at_ms = (inject_at_ms + lasts_ms).min(during_ms);
        out.push(FaultSlot {
            inject_at_ms,
            heal_at_ms,
        });
        let jitter = timing.interval_jitter_ms;
        let interval_ms = timing.interval_ms - jitter + rng.random_range(0..=2 * jitter);
        inject_at_ms = (inject_at_ms + interval_ms).max(heal_at_ms + timing.min_gap_ms);
    }
    out
}

/// The lines printed at the start of a run: every option, derived or given.
pub fn describe(scenario: &Scenario, d: &Derived, binary: &str, replay: &str) -> Vec<String> {
    let c = &scenario.cluster;
    let p = &scenario.phases;
    let w = &scenario.workload;
    let nemesis: Vec<&str> = scenario.nemesis.iter().map(|n| n.name()).collect();
    let mut lines = vec![
        format!("licchaos: scenario {} seed {}", scenario.name, d.seed),
        format!("  replay: {replay}"),
        format!("  expect: {}", scenario.expect.label()),
        format!(
            "  seeds: register {} set {} import {} net {} nemesis {}",
            d.register_seed, d.set_seed, d.import_seed, d.net_seed, d.nemesis_seed
        ),
        format!(
            "  cluster: {} voters + {} spare slots, heartbeat {} ms, election {}..{} ms",
            c.voters, c.spare_slots, c.heartbeat_ms, c.election_min_ms, c.election_max_ms
        ),
        format!("  binary: {binary} env {:?}", scenario.server.env),
        format!(
            "  phases: before {} ms, during {} ms, after {} ms; recovery deadline {} ms",
            p.before_ms, p.during_ms, p.after_ms, scenario.check.recovery_deadline_ms
        ),
        format!(
            "  workload: register {} clients x {} keys (reads {}), set {} clients x {} per \
             {} ms, import {} records per {} ms, watchers {}, placement {:?}, timeout {} ms",
            w.register_clients,
            w.register_keys,
            w.read_fraction,
            w.set_clients,
            w.set_batch,
            w.set_pause_ms,
            w.import_records,
            w.import_every_ms,
            if w.watchers { "on" } else { "off" },
            w.placement,
            w.request_timeout_ms
        ),
        format!("  nemesis: {nemesis:?}"),
    ];
    for (i, s) in d.schedule.iter().enumerate() {
        lines.push(format!(
            "  fault #{}: inject at +{} ms, heal at +{} ms (from the fault phase start)",
            i + 1,
            s.inject_at_ms,
            s.heal_at_ms
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_derives_the_same_options_and_another_seed_others() {
        let s = Scenario::find("kill-leader").expect("kill-leader");
        let a = derive(&s, 42);
        assert_eq!(a, derive(&s, 42));
        let b = derive(&s, 43);
        assert_ne!(a.register_seed, b.register_seed);
        assert_ne!(a.schedule, b.schedule);
    }

    #[test]
    fn faults_do_not_overlap_and_end_within_the_phase() {
        let timing = FaultTiming::default();
        for seed in 0..50 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let plan = schedule(&timing, 40_000, &mut rng);
            assert!(plan.len() >= 5, "{plan:?}");
            for w in plan.windows(2) {
                assert!(w[1].inject_at_ms >= w[0].heal_at_ms + timing.min_gap_ms);
            }
            for slot in &plan {
                assert!(slot.inject_at_ms < 40_000 && slot.heal_at_ms <= 40_000);
                let lasts = slot.heal_at_ms - slot.inject_at_ms;
                assert!(lasts <= timing.heal_after_max_ms, "{slot:?}");
            }
        }
    }

    #[test]
    fn no_nemesis_means_no_schedule() {
        let s = Scenario::find("control").expect("control");
        assert!(derive(&s, 1).schedule.is_empty());
        let text = describe(&s, &derive(&s, 1), "licstored", "licchaos run").join("\n");
        assert!(text.contains("seed 1") && text.contains("replay: licchaos run"));
    }
}
