//! The committed state at start-up: the newest matching checkpoint plus the journal's tail.

use conclave_journal::{Journal, ZERO_HASH};

use super::checkpoint::CheckpointStore;
use super::{from_record, Committed, EngineError};
use crate::evolve::evolve;
use crate::policy::Policy;
use crate::state::State;

/// Loads the checkpoint if it matches the journal, then replays the rest, up to the
/// journal's head or `up_to` (a read-only start stops before the first bad record, and
/// then uses no checkpoint that covers it).
pub(super) fn rebuild(
    journal: &Journal,
    checkpoints: &CheckpointStore,
    policy: &Policy,
    up_to: Option<u64>,
) -> Result<Committed, EngineError> {
    let mut committed = Committed {
        state: State::new(policy.clone()),
        head: 0,
        head_hash: ZERO_HASH,
    };
    let last = up_to.unwrap_or(u64::MAX).min(journal.head());
    if let Some(c) = checkpoints.load() {
        let matches =
            c.seq <= last && (c.seq == 0 || journal.get(c.seq)?.is_some_and(|r| r.hash == c.hash));
        if matches {
            committed = Committed {
                state: c.state,
                head: c.seq,
                head_hash: c.hash,
            };
        } else {
            tracing::warn!(
                seq = c.seq,
                "the checkpoint does not match the journal; rebuilding"
            );
        }
    }
    for record in journal.iter_range(committed.head + 1, last) {
        let record = record?;
        let event = from_record(journal, &record)?;
        evolve(&mut committed.state, &event);
        committed.head = record.seq;
        committed.head_hash = record.hash;
    }
    apply_static_policy(&mut committed.state.policy, policy);
    Ok(committed)
}

/// Configuration owns every policy field except those changed at run time by commands.
fn apply_static_policy(current: &mut Policy, configured: &Policy) {
    let runtime = (
        current.server_password_hash.take(),
        current.log_days,
        current.obfuscate_ips,
        std::mem::take(&mut current.welcome_text),
    );
    *current = configured.clone();
    current.server_password_hash = runtime.0;
    current.log_days = runtime.1;
    current.obfuscate_ips = runtime.2;
    current.welcome_text = runtime.3;
}
