//! Keeping the gateway's sessions alive while it still holds them.
//!
//! A session's lease (the engine's `policy.session_lease_secs`) is shorter than a
//! registration (up to `max_expires`) or a call: the gateway renews, every quarter lease,
//! each call's session and the IM sessions of every identity with a live binding. The
//! engine journals a renewal only once half the lease is spent, so this costs a record
//! per session per half lease at most. What the gateway stops holding (a hung-up call, an
//! expired binding) is no longer renewed and ends with its lease, journaled, even if the
//! gateway itself is gone.

use std::sync::Arc;
use std::time::Duration;

use conclave_engine::ids::{Address, RoomName, SessionId};
use conclave_engine::Command;

use super::calls::Phase;
use super::{lock, App};
use crate::imc::im_session;

/// Renews for the server's life.
pub async fn run(app: Arc<App>) {
    loop {
        let lease = app.handle.engine().read(|s| s.policy.session_lease_secs);
        let every = if lease == 0 {
            // No leases now; look again later (an operator may turn them on).
            Duration::from_secs(60)
        } else {
            Duration::from_secs(u64::from(lease / 4).max(1))
        };
        tokio::time::sleep(every).await;
        if lease == 0 {
            continue;
        }
        for (who, room, session) in held_sessions(&app) {
            let cmd = Command::RenewSession { room, session };
            if let Err(e) = app.execute(&who, None, "", cmd).await {
                tracing::debug!(identity = %who, error = %e, "SIP session renewal refused");
            }
        }
    }
}

/// Every session the gateway holds now: its calls' and its registered IM members'.
fn held_sessions(app: &App) -> Vec<(Address, RoomName, SessionId)> {
    let mut held: Vec<(Address, RoomName, SessionId)> = lock(&app.calls)
        .all()
        .filter(|c| c.phase != Phase::Proceeding && !c.room.as_str().is_empty())
        .map(|c| (c.who.clone(), c.room.clone(), c.session.clone()))
        .collect();
    let im: Vec<(Address, RoomName)> = app.handle.engine().read(|s| {
        s.rooms
            .iter()
            .flat_map(|(name, room)| {
                room.members.values().flat_map(move |m| {
                    m.sessions
                        .iter()
                        .filter(|(id, p)| p.gateway == "sip" && *id == &im_session(&p.address))
                        .map(move |(_, p)| (p.address.clone(), name.clone()))
                })
            })
            .collect()
    });
    let now = app.now();
    let registrar = lock(&app.registrar);
    for (who, room) in im {
        if registrar.is_registered(now, &who) {
            let session = im_session(&who);
            held.push((who, room, session));
        }
    }
    held
}
