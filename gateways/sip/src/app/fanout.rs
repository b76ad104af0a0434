//! What the room's SIP members learn from the committed feed, whoever caused it: chat
//! lines (from the web, XMPP, NATS or another SIP member) and IMC notices as MESSAGEs
//! from the room's URI, and, for callers, the media consequences (a mute, a kick).
//!
//! Driven by the committed event feed only, so a message reaches SIP members exactly
//! when it is in the journal, and never one that was refused. Who receives what is the
//! IMC [`Roster`]'s: it knows the IM members as they were before each event (a destroyed
//! room's members are gone from the engine's state by the time the event is read).

use std::sync::Arc;

use conclave_engine::ids::RoomName;
use conclave_engine::service::FeedFilter;
use conclave_engine::EventKind;

use super::{call, deliver, App};
use crate::imc::{chat_line, Roster};

/// Follows the feed from now on for the server's life.
pub async fn run(app: Arc<App>) {
    let engine = app.handle.engine().clone();
    let mut sub = app.handle.subscribe(engine.head() + 1, FeedFilter::all());
    let mut roster = engine.read(Roster::from_state);
    loop {
        let ev = match sub.next().await {
            Ok(ev) => ev,
            Err(e) => {
                tracing::info!(error = %e, "SIP fan-out stopped");
                return;
            }
        };
        if let Some(line) = chat_line(&ev.event) {
            let from_uri = app.config.addressing.room_uri(&line.room);
            for member in roster.members(&line.room) {
                if *member != line.sender {
                    deliver::spawn_message(&app, member, &from_uri, line.body.clone());
                }
            }
        }
        let (notices, rebuild) = roster.deliveries(&ev.event, &app.config.addressing);
        for n in notices {
            deliver::spawn_message(&app, &n.to, &n.from_uri, n.body);
        }
        if rebuild {
            roster = engine.read(Roster::from_state);
        }
        if may_affect_calls(&ev.event.kind) {
            if let Some(name) = ev.record.stream.strip_prefix("room:") {
                call::reconcile(&app, &RoomName::from_stored(name.to_owned())).await;
            }
        }
    }
}

/// Whether an event may end a call's session or change its mute: everything but the
/// room's chatter (chat lines, renewals, denials, hands, invitations, knocks, the
/// subject), so a busy chat does not re-read every call's state for each line. A new
/// kind of event is reconciled until it is listed here.
fn may_affect_calls(kind: &EventKind) -> bool {
    use EventKind as E;
    !matches!(
        kind,
        E::MessagePosted { .. }
            | E::SessionRenewed { .. }
            | E::JoinDenied { .. }
            | E::ActionDenied { .. }
            | E::HandRaised { .. }
            | E::HandLowered { .. }
            | E::InvitationIssued { .. }
            | E::InvitationAnswered { .. }
            | E::InvitationInvalidated { .. }
            | E::Knocked { .. }
            | E::KnockRejected { .. }
            | E::VideoPaused { .. }
            | E::VideoResumed { .. }
            | E::SubjectChanged { .. }
    )
}
