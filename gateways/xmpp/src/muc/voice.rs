//! Voice requests (XEP-0045 §7.13, §8.6) as Conclave's raised hands: a visitor asking
//! for voice raises their hand; the room's XMPP moderators get the request form
//! whenever a visitor's hand goes up, whatever protocol raised it; a moderator who
//! approves gives voice (`GrantRole Member`) and lowers the hand.

use conclave_engine::access::Rank;
use conclave_engine::ids::{Address, Principal, RoomName};
use conclave_engine::{Command, Role};

use super::stanzas;
use super::{roster, Ctx, Muc, Pending};
use crate::core::NS_COMPONENT;
use crate::dataform::{self, DataForm, Field, FieldType, FormType};
use crate::xml::Element;

/// The voice request form type.
pub const NS_REQUEST: &str = "http://jabber.org/protocol/muc#request";

/// A message to the room carrying a `muc#request` form: a request, or an approval.
/// `false` when the form is not one (the caller goes on with the message).
pub fn message(
    muc: &mut Muc,
    el: &Element,
    room: &RoomName,
    actor: &Address,
    cx: &Ctx<'_>,
) -> bool {
    let Some(x) = el.get_child("x", dataform::NS_DATA) else {
        return false;
    };
    let Ok(form) = dataform::parse(x) else {
        return false;
    };
    if form.form_type.as_deref() != Some(NS_REQUEST) {
        return false;
    }
    let approval = form.field("muc#request_allow").is_some();
    if !approval {
        // A request: only an occupant asks, for the participant role.
        if form.value("muc#role").ok().flatten() != Some("participant") {
            muc.send(stanzas::error_reply(el, "modify", "bad-request", None));
            return true;
        }
        muc.exec(
            actor.clone(),
            Command::RaiseHand { room: room.clone() },
            Pending::Notify { stanza: el.clone() },
        );
        return true;
    }
    if form.bool_value("muc#request_allow").ok().flatten() != Some(true) {
        // Denied or skipped: the hand stays up for someone else to answer.
        return true;
    }
    let Some(nick) = form.value("muc#roomnick").ok().flatten() else {
        muc.send(stanzas::error_reply(el, "modify", "bad-request", None));
        return true;
    };
    let subject = muc
        .occupants
        .room(room)
        .and_then(|r| r.by_nick(nick))
        .map(|o| cx.state.principal_of(&o.address))
        .or_else(|| {
            muc.others
                .get(room)
                .and_then(|o| o.iter().find(|(_, n)| n.as_str() == nick))
                .map(|(p, _)| p.clone())
        });
    let Some(subject) = subject else {
        muc.send(stanzas::error_reply(el, "cancel", "item-not-found", None));
        return true;
    };
    let rest = std::collections::VecDeque::from([(
        Command::LowerHand {
            room: room.clone(),
            subject: Some(subject.clone()),
        },
        None,
    )]);
    muc.exec(
        actor.clone(),
        Command::GrantRole {
            room: room.clone(),
            subject,
            role: Role::Member,
        },
        Pending::Chain {
            stanza: el.clone(),
            actor: actor.clone(),
            rest,
        },
    );
    true
}

/// A hand went up: if it is a visitor's, every XMPP moderator of the room gets the
/// voice request form (§8.6).
pub fn hand_raised(muc: &mut Muc, room: &RoomName, who: &Principal, cx: &Ctx<'_>) {
    let Some(r) = cx.state.rooms.get(room) else {
        return;
    };
    if cx.state.rank_in(room, r, who, cx.now) != Rank::Visitor {
        return;
    }
    let nick = muc
        .occupants
        .room(room)
        .and_then(|o| o.iter().find(|o| &cx.state.principal_of(&o.address) == who))
        .map(|o| (o.nick.clone(), Some(o.jid.clone())))
        .or_else(|| {
            muc.others
                .get(room)
                .and_then(|o| o.get(who))
                .map(|n| (n.clone(), None))
        });
    let Some((nick, jid)) = nick else {
        return;
    };
    let mut form = DataForm::new(FormType::Form);
    form.form_type = Some(NS_REQUEST.into());
    form.title = Some("Voice request".into());
    form.instructions = Some(
        "To approve this request for voice, select the \"Grant voice to this person?\" \
         checkbox and click OK. To skip this request, click the cancel button."
            .into(),
    );
    form.fields.push(
        Field::new("muc#role", FieldType::ListSingle)
            .label("Requested role")
            .value("participant"),
    );
    if let Some(j) = &jid {
        form.fields.push(
            Field::new("muc#jid", FieldType::JidSingle)
                .label("User ID")
                .value(j),
        );
    }
    form.fields.push(
        Field::new("muc#roomnick", FieldType::TextSingle)
            .label("Room Nickname")
            .value(&nick),
    );
    form.fields.push(
        Field::new("muc#request_allow", FieldType::Boolean)
            .label("Grant voice to this person?")
            .value("false"),
    );
    let x = form.to_element();
    let room_jid = muc.room_jid(room);
    let moderators: Vec<String> = muc
        .occupants
        .room(room)
        .map(|o| {
            o.iter()
                .filter(|o| {
                    let p = cx.state.principal_of(&o.address);
                    roster::standing(cx, room, r, &p).0 >= Rank::Moderator
                })
                .map(|o| o.jid.clone())
                .collect()
        })
        .unwrap_or_default();
    for to in moderators {
        muc.send(
            Element::new("message", NS_COMPONENT)
                .attr("from", &room_jid)
                .attr("to", &to)
                .child(x.clone()),
        );
    }
}
