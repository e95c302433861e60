//! Test helpers shared by the checkers' tests: terse op constructors and a generator of
//! random histories of a real (simulated) register, which are linearizable by construction.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::history::{Op, OpKind, Outcome};

/// One op; `done: None` with an Ok or Fail outcome is a malformed record.
#[allow(clippy::too_many_arguments)]
pub fn op(
    id: u64,
    client: u64,
    key: &str,
    kind: OpKind,
    value: Option<&str>,
    outcome: Outcome,
    invoke_ns: u64,
    done: Option<u64>,
) -> Op {
    Op {
        id,
        client,
        key: key.to_string(),
        kind,
        value: value.map(str::to_string),
        revision: None,
        node: None,
        invoke_ns,
        complete_ns: if outcome == Outcome::Unknown {
            None
        } else {
            done
        },
        outcome,
        error: None,
    }
}

/// An Ok write of `value` on key `k`.
pub fn w(id: u64, key: &str, value: &str, invoke_ns: u64, done_ns: u64) -> Op {
    op(
        id,
        id,
        key,
        OpKind::Write,
        Some(value),
        Outcome::Ok,
        invoke_ns,
        Some(done_ns),
    )
}

/// An Ok create of `value` on key `k`.
pub fn c(id: u64, key: &str, value: &str, invoke_ns: u64, done_ns: u64) -> Op {
    op(
        id,
        id,
        key,
        OpKind::Create,
        Some(value),
        Outcome::Ok,
        invoke_ns,
        Some(done_ns),
    )
}

/// An Ok read that returned `value` (`None`: absent).
pub fn r(id: u64, key: &str, value: Option<&str>, invoke_ns: u64, done_ns: u64) -> Op {
    op(
        id,
        id,
        key,
        OpKind::Read,
        value,
        Outcome::Ok,
        invoke_ns,
        Some(done_ns),
    )
}

/// A write with an unknown outcome.
pub fn wu(id: u64, key: &str, value: &str, invoke_ns: u64) -> Op {
    op(
        id,
        id,
        key,
        OpKind::Write,
        Some(value),
        Outcome::Unknown,
        invoke_ns,
        None,
    )
}

/// A failed write.
pub fn wf(id: u64, key: &str, value: &str, invoke_ns: u64, done_ns: u64) -> Op {
    op(
        id,
        id,
        key,
        OpKind::Write,
        Some(value),
        Outcome::Fail,
        invoke_ns,
        Some(done_ns),
    )
}

/// Sets revisions on ops, in order.
pub fn with_revision(mut o: Op, revision: u64) -> Op {
    o.revision = Some(revision);
    o
}

/// A linearizable history of one register `key`: `clients` clients issue `ops` ops, each
/// taking effect at a random instant inside its interval. The first write is a `Create`;
/// about 2% of writes are unknown (half of those never take effect) and 2% fail.
pub fn random_register_history(seed: u64, key: &str, clients: u64, ops: usize) -> Vec<Op> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut free_at_ns = vec![0u64; clients as usize];
    // (linearization point, op): the point is None for ops that never take effect.
    let mut planned: Vec<(Option<u64>, Op)> = Vec::with_capacity(ops);
    for n in 0..ops {
        let client = rng.random_range(0..clients);
        let invoke_ns = free_at_ns[client as usize] + rng.random_range(0..2_000);
        let done_ns = invoke_ns + rng.random_range(1..20_000);
        free_at_ns[client as usize] = done_ns;
        let point = Some(rng.random_range(invoke_ns..=done_ns));
        let is_read = rng.random_bool(0.5);
        let fate = rng.random_range(0..100);
        let (kind, value) = if is_read {
            (OpKind::Read, None)
        } else {
            (OpKind::Write, Some(format!("v{n}")))
        };
        let (outcome, point) = match fate {
            0..=1 if !is_read => (Outcome::Unknown, point.filter(|_| rng.random_bool(0.5))),
            2..=3 => (Outcome::Fail, None),
            _ => (Outcome::Ok, point),
        };
        let mut o = op(
            0,
            client,
            key,
            kind,
            None,
            outcome,
            invoke_ns,
            Some(done_ns),
        );
        o.value = value;
        planned.push((point, o));
    }
    simulate(&mut planned);
    let mut out: Vec<Op> = planned.into_iter().map(|(_, o)| o).collect();
    out.sort_by_key(|o| (o.invoke_ns, o.client));
    for (id, o) in out.iter_mut().enumerate() {
        o.id = id as u64;
    }
    out
}

/// Applies the planned ops in linearization order: reads see the register, the first write
/// to take effect becomes a `Create`.
fn simulate(planned: &mut [(Option<u64>, Op)]) {
    let mut order: Vec<usize> = (0..planned.len())
        .filter(|&i| planned[i].0.is_some())
        .collect();
    order.sort_by_key(|&i| (planned[i].0, i));
    let mut register: Option<String> = None;
    for i in order {
        let o = &mut planned[i].1;
        if o.kind == OpKind::Read {
            o.value = register.clone();
        } else {
            if register.is_none() {
                o.kind = OpKind::Create;
            }
            register = o.value.clone();
        }
    }
}
