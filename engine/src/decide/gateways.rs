//! Refusals a gateway made on its own (a SIP INVITE with no common codec, a REGISTER
//! interval too brief, a failed digest answer), journaled through the engine's denial
//! path so that they are audited like the engine's own and throttled like them.

use super::{Cx, Decision};
use crate::event::EventKind;
use crate::ids::RoomName;
use crate::rejection::{Rejected, Rejection};

/// Always a refusal, carrying the `api_action_denied` to journal: in the room's stream
/// when the room exists, else the server's (a name nobody holds is not journaled, so a
/// stranger cannot write arbitrary room names into the journal).
///
/// Any actor: the gateway acts as the identity it refused (the `From` of a refused
/// INVITE), with the remote address in the origin, which is what the denial throttle
/// keys repeats on. The action and code were checked at the command boundary.
pub(super) fn record_refusal(
    cx: &Cx<'_>,
    room: Option<&RoomName>,
    action: &str,
    code: &str,
) -> Decision {
    let room = room.filter(|r| cx.state.rooms.contains_key(*r)).cloned();
    Err(Rejected {
        rejection: Rejection::GatewayRefused {
            action: action.to_owned(),
            code: code.to_owned(),
        },
        record: vec![cx.event(EventKind::ActionDenied {
            room,
            action: action.to_owned(),
            subject: None,
            code: code.to_owned(),
        })],
    })
}
