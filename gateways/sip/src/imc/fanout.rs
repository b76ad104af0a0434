//! What IMC tells a room's SIP members about committed events, whoever caused them
//! (SIP, web, NATS, XMPP): one pure function from an event to notices, and the chat line
//! a posted message becomes. Deciding who exactly receives a notice is the
//! [`super::Roster`]'s job (it knows the members as they were before the event).

use conclave_engine::model::{BanScope, RoomChange};
use conclave_engine::{
    Address, DenyReason, Event, EventKind, Principal, RoleVia, RoomName, Scheme,
};

use super::notice;
use super::Addressing;

/// Who receives a notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipients {
    /// Every IM member of the room (SIP identities holding [`super::im_session`]) as it
    /// was before the event, except the event's actor, who hears from `Imc::handle`.
    Members,
    /// One identity (an invitee), whether in the room or not.
    One(Address),
    /// The IM sessions a person held in the room before the event (a kicked or banned
    /// person: the event names them as a principal, maybe an account).
    Person(Principal),
}

/// One notice about a room's event: sent as a `MESSAGE` from the room's URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventNotice {
    /// The room (the notice comes from [`Addressing::room_uri`]).
    pub room: RoomName,
    /// To whom.
    pub recipients: Recipients,
    /// The text.
    pub body: String,
}

/// A chat message as SIP members receive it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatLine {
    /// The room (the line comes from its URI).
    pub room: RoomName,
    /// The identity that posted it: not sent its own line back.
    pub sender: Address,
    /// `<user@host>: text`.
    pub body: String,
}

/// The notices IMC sends about `event`; empty for events SIP members are not told about
/// (chat lines are [`chat_line`]'s).
pub fn notices_for(event: &Event, addressing: &Addressing) -> Vec<EventNotice> {
    use EventKind as E;
    let members = |room: &RoomName, body: String| EventNotice {
        room: room.clone(),
        recipients: Recipients::Members,
        body,
    };
    let person = |room: &RoomName, p: &Principal, body: &str| EventNotice {
        room: room.clone(),
        recipients: Recipients::Person(p.clone()),
        body: body.to_owned(),
    };
    match &event.kind {
        E::Joined { room, address, .. } => {
            vec![members(room, notice::joined(&notice::who(address)))]
        }
        E::Left {
            room,
            principal,
            reason,
            ..
        } => vec![members(
            room,
            notice::left(&notice::principal(principal), *reason),
        )],
        // Kamailio tells the room about attempts to enter a private room; here about
        // every refused entry but the usual "which password?" step of a client.
        E::JoinDenied {
            room,
            address,
            reason,
            ..
        } if *reason != DenyReason::PasswordRequired => {
            vec![members(room, notice::attempted(&notice::who(address)))]
        }
        E::Kicked { room, subject, .. } => vec![
            members(room, notice::removed(&notice::principal(subject))),
            person(room, subject, notice::YOU_REMOVED),
        ],
        E::Banned {
            scope: BanScope::Room(room),
            subject,
            ..
        }
        | E::AddressBanned {
            scope: BanScope::Room(room),
            subject: Some(subject),
            ..
        } => vec![
            members(room, notice::banned(&notice::principal(subject))),
            person(room, subject, notice::YOU_BANNED),
        ],
        E::RoomDeleted { room, .. } => vec![members(room, notice::ROOM_DESTROYED.to_owned())],
        E::RoomExpired { room, .. } => vec![members(room, notice::ROOM_EXPIRED.to_owned())],
        E::InvitationIssued { room, invitee, .. } if invitee.scheme() == Scheme::Sip => {
            vec![EventNotice {
                room: room.clone(),
                recipients: Recipients::One(invitee.clone()),
                body: notice::invites_you(
                    &notice::actor(&event.actor),
                    &addressing.room_uri(room),
                    addressing.command_char,
                ),
            }]
        }
        E::InvitationAnswered {
            room,
            accepted: false,
            by,
            ..
        } => vec![members(room, notice::declined(&notice::principal(by)))],
        // An accepted invitation's membership is told by the join that follows.
        E::RoleChanged {
            room,
            subject,
            to,
            via,
            ..
        } if *via != RoleVia::Invitation => {
            vec![members(
                room,
                notice::role(&notice::principal(subject), *to),
            )]
        }
        E::RoomModified { room, change } => {
            let what = match change {
                RoomChange::Private(true) => "private (by invitation only)",
                RoomChange::Private(false) => "public",
                RoomChange::Locked(true) => "locked",
                RoomChange::Locked(false) => "unlocked",
                RoomChange::ModeratedChat(true) => "moderated (only moderators may write)",
                RoomChange::ModeratedChat(false) => "open to everyone's messages",
                _ => return Vec::new(),
            };
            vec![members(room, notice::room_setting(what))]
        }
        E::RecordingStarted { room, .. } => {
            vec![members(room, notice::RECORDING_STARTED.to_owned())]
        }
        E::RecordingStopped { room, .. } => {
            vec![members(room, notice::RECORDING_STOPPED.to_owned())]
        }
        _ => Vec::new(),
    }
}

/// The line SIP members receive for a posted chat message; `None` for other events and
/// for a message whose content was purged.
pub fn chat_line(event: &Event) -> Option<ChatLine> {
    let EventKind::MessagePosted {
        room,
        address,
        body: Some(body),
        ..
    } = &event.kind
    else {
        return None;
    };
    Some(ChatLine {
        room: room.clone(),
        sender: address.clone(),
        body: notice::chat(&notice::who(address), body),
    })
}
