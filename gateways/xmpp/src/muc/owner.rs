//! `muc#owner` (XEP-0045 §10): the configuration form, instant rooms, cancelling a new
//! room, and destroying one. The form maps to the engine's room configuration
//! ([`crate::roomconfig`]); submitting it, or accepting the defaults, unlocks a room
//! created here.

use std::collections::VecDeque;

use conclave_engine::access::Rank;
use conclave_engine::ids::{Address, RoomName};
use conclave_engine::{Command, Secret};

use super::stanzas::{self, NS_MUC_OWNER};
use super::{Ctx, Muc, Pending};
use crate::xml::Element;

const NS_DATA: &str = "jabber:x:data";

/// A `muc#owner` IQ.
pub fn iq(muc: &mut Muc, iq: &Element, q: &Element, room: &RoomName, actor: Address, cx: &Ctx<'_>) {
    let Some(r) = cx.state.rooms.get(room) else {
        muc.send(stanzas::error_reply(iq, "cancel", "item-not-found", None));
        return;
    };
    let rank = cx
        .state
        .rank_in(room, r, &cx.state.principal_of(&actor), cx.now);
    if rank < Rank::Owner {
        muc.send(stanzas::error_reply(
            iq,
            "auth",
            "forbidden",
            Some("only owners configure the room"),
        ));
        return;
    }
    if iq.get_attr("type") == Some("get") {
        muc.send(
            stanzas::iq_result(iq).child(crate::roomconfig::render_query(room.as_str(), &r.config)),
        );
        return;
    }
    if let Some(d) = q.get_child("destroy", NS_MUC_OWNER) {
        let reason = d
            .get_child("reason", NS_MUC_OWNER)
            .map(Element::text_content)
            .filter(|t| !t.trim().is_empty());
        let alt = d.get_attr("jid").map(str::to_owned);
        muc.destroying.insert(room.clone(), (reason, alt));
        let pending = Pending::Chain {
            stanza: iq.clone(),
            actor: actor.clone(),
            rest: VecDeque::new(),
        };
        muc.exec(actor, Command::DestroyRoom { room: room.clone() }, pending);
        return;
    }
    let Some(x) = q.get_child("x", NS_DATA) else {
        muc.send(stanzas::error_reply(iq, "modify", "bad-request", None));
        return;
    };
    match x.get_attr("type") {
        Some("cancel") => {
            // §10.1.3: cancelling the first configuration destroys the new room.
            if muc.awaiting_config.remove(room) {
                let pending = Pending::Chain {
                    stanza: iq.clone(),
                    actor: actor.clone(),
                    rest: VecDeque::new(),
                };
                muc.exec(actor, Command::DestroyRoom { room: room.clone() }, pending);
            } else {
                muc.send(stanzas::iq_result(iq));
            }
        }
        Some("submit") => {
            let submission = match crate::roomconfig::parse_submission(x, &r.config) {
                Ok(s) => s,
                Err(e) => {
                    muc.send(stanzas::error_reply(
                        iq,
                        "modify",
                        e.condition(),
                        Some(&e.to_string()),
                    ));
                    return;
                }
            };
            let mut commands: VecDeque<(Command, Option<Secret>)> = VecDeque::new();
            let changes = submission.changes;
            let mut password = None;
            // Clearing is among the changes already; setting needs the hash.
            if let Some(Some(p)) = submission.new_password {
                password = Some(Secret::new(p));
            }
            if !changes.is_empty() || password.is_some() {
                commands.push_back((
                    Command::ConfigureRoom {
                        room: room.clone(),
                        changes,
                    },
                    password,
                ));
            }
            if muc.awaiting_config.remove(room) {
                commands.push_back((Command::UnlockRoom { room: room.clone() }, None));
            }
            let Some((first, password)) = commands.pop_front() else {
                muc.send(stanzas::iq_result(iq));
                return;
            };
            let pending = Pending::Chain {
                stanza: iq.clone(),
                actor: actor.clone(),
                rest: commands,
            };
            muc.exec_with(actor, first, password, None, pending);
        }
        _ => muc.send(stanzas::error_reply(iq, "modify", "bad-request", None)),
    }
}
