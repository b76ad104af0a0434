//! Room recordings over XMPP, asked for as Jitsi Meet clients do: Jibri's IQ
//! (`<jibri xmlns='http://jitsi.org/protocol/jibri' action='start|stop'
//! recording_mode='file'/>`), sent here to the room's bare JID (Jitsi sends it to the
//! focus; a Conclave room is its own focus). The engine decides (moderators start and
//! stop); every occupant learns of it from the committed event (`events.rs`).

use std::collections::VecDeque;

use conclave_engine::ids::{Address, RoomName};
use conclave_engine::Command;

use super::{stanzas, Muc, Pending};
use crate::xml::Element;

pub const NS_JIBRI: &str = "http://jitsi.org/protocol/jibri";

/// A Jibri IQ to a room.
pub fn iq(muc: &mut Muc, iq: &Element, q: &Element, room: &RoomName, actor: Address) {
    if iq.get_attr("type") != Some("set") {
        muc.send(stanzas::error_reply(iq, "modify", "bad-request", None));
        return;
    }
    let mode = q.get_attr("recording_mode").unwrap_or("file");
    if mode != "file" {
        // Live streaming (Jibri's `stream` mode) is not something Conclave does.
        muc.send(stanzas::error_reply(
            iq,
            "cancel",
            "feature-not-implemented",
            Some("only recording_mode 'file' is supported"),
        ));
        return;
    }
    let command = match q.get_attr("action") {
        Some("start") => Command::StartRecording {
            room: room.clone(),
            video: false,
        },
        Some("stop") => Command::StopRecording { room: room.clone() },
        _ => {
            muc.send(stanzas::error_reply(
                iq,
                "modify",
                "bad-request",
                Some("action must be 'start' or 'stop'"),
            ));
            return;
        }
    };
    let pending = Pending::Chain {
        stanza: iq.clone(),
        actor: actor.clone(),
        rest: VecDeque::new(),
    };
    muc.exec(actor, command, pending);
}
