//! The texts IMC sends: Kamailio's `*** ...` notices (its imc module's wording where it
//! has one), the member list, the help text, and how people and refusals are named.
//! Everything a stranger typed is clipped and stripped of control characters before it
//! is echoed, so a notice never carries more than a line of someone else's input.

use conclave_engine::service::EngineError;
use conclave_engine::{Actor, Address, LeaveReason, Principal, Rejection, Role, Scheme};

use super::command::ImcError;

/// Longest piece of someone's input echoed in a notice, in characters.
const CLIP: usize = 64;

/// Longest SIP reason phrase we send, in characters.
const REASON_MAX: usize = 120;

/// Members listed by `#list` at most; the rest are counted.
pub const LIST_MAX: usize = 50;

/// Input as it may be echoed: at most [`CLIP`] characters, controls replaced by `?`.
pub fn clip(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(CLIP)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.chars().nth(CLIP).is_some() {
        out.push('…');
    }
    out
}

/// A text as a SIP reason phrase: one line of printable characters, bounded.
pub fn reason_phrase(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(REASON_MAX)
        .collect()
}

/// How a person is named in notices: `user@host` for SIP, XMPP and email identities
/// (Kamailio writes the URI without `sip:`), the name for web guests.
pub fn who(a: &Address) -> String {
    match (a.scheme(), a.domain()) {
        (Scheme::Web, _) | (_, None) => a.local().to_owned(),
        (_, Some(d)) => format!("{}@{d}", a.local()),
    }
}

/// A principal: its identity, or its account id.
pub fn principal(p: &Principal) -> String {
    match p {
        Principal::Address(a) => who(a),
        Principal::Account(id) => id.to_string(),
    }
}

/// Who acted, for "<x> invites you".
pub fn actor(a: &Actor) -> String {
    match a {
        Actor::Identity(a) => who(a),
        Actor::Admin => "the administrator".into(),
        Actor::Service(s) => s.clone(),
    }
}

pub const ROOM_CREATED: &str = "*** Room was created";
pub const ROOM_DESTROYED: &str = "*** Room has been destroyed";
pub const ROOM_EXPIRED: &str = "*** Room has been closed after a time without activity";
pub const YOU_JOINED: &str = "*** You have joined the room";
pub const YOU_LEFT: &str = "*** You have left the room";
pub const YOU_REMOVED: &str = "*** You have been removed from the room";
pub const YOU_BANNED: &str = "*** You have been banned from the room";
pub const YOU_DECLINED: &str = "*** You have declined the invitation";
/// Every member is told, as Jitsi's "this meeting is being recorded".
pub const RECORDING_STARTED: &str = "*** This room is being recorded";
pub const RECORDING_STOPPED: &str = "*** The recording has stopped";

pub fn joined(name: &str) -> String {
    format!("*** <{name}> has joined the room")
}

pub fn left(name: &str, reason: LeaveReason) -> String {
    match reason {
        LeaveReason::Left => format!("*** <{name}> has left the room"),
        LeaveReason::Disconnected | LeaveReason::LeaseExpired | LeaveReason::GatewayRestarted => {
            format!("*** <{name}> has left the room (connection lost)")
        }
    }
}

pub fn attempted(name: &str) -> String {
    format!("*** <{name}> attempted to join the room")
}

pub fn removed(name: &str) -> String {
    format!("*** <{name}> has been removed from the room")
}

pub fn banned(name: &str) -> String {
    format!("*** <{name}> has been banned from the room")
}

pub fn declined(name: &str) -> String {
    format!("*** <{name}> has declined the invitation")
}

pub fn invitation_sent(name: &str) -> String {
    format!("*** <{name}> has been invited to the room")
}

pub fn already_in(name: &str) -> String {
    format!("*** <{name}> is in the room already")
}

pub fn role(name: &str, to: Option<Role>) -> String {
    match to {
        Some(r) => format!("*** <{name}> is now {}", r.as_str()),
        None => format!("*** <{name}> no longer has a role in the room"),
    }
}

pub fn room_setting(what: &str) -> String {
    format!("*** The room is now {what}")
}

/// Kamailio's invitation, with where to answer: the room's URI.
pub fn invites_you(inviter: &str, room_uri: &str, c: char) -> String {
    format!(
        "*** <{inviter}> invites you to join the room {room_uri} \
         (send '{c}accept' or '{c}deny' to {room_uri})"
    )
}

/// A chat line as members see it (Kamailio's `<user@host>: text`).
pub fn chat(name: &str, body: &str) -> String {
    format!("<{name}>: {body}")
}

/// The answer to a chat line sent to the manager.
pub fn manager_hint(c: char) -> String {
    format!(
        "*** This is the conference manager: it takes commands only \
         (send '{c}help' for the list)"
    )
}

/// `#list`: Kamailio's `Members:` list, owners marked `*` and moderators `~`.
pub fn members(list: &[(String, Option<Role>)], more: usize) -> String {
    let mut out = String::from("*** Members:");
    for (name, role) in list {
        let mark = match role {
            Some(Role::Owner) => "*",
            Some(Role::Moderator) => "~",
            _ => "",
        };
        out.push('\n');
        out.push_str(mark);
        out.push_str(name);
    }
    if more > 0 {
        out.push_str(&format!("\n... and {more} more"));
    }
    out
}

/// `#help`: Kamailio's help text with the configured command character.
pub fn help(c: char) -> String {
    [
        "*** Commands:".to_owned(),
        format!("{c}create <room> [private] - create a conference room"),
        format!("{c}join [<room>] - join a conference room"),
        format!("{c}invite <user> [<room>] - invite a user to a conference room"),
        format!("{c}accept [<room>] - accept an invitation"),
        format!("{c}deny [<room>] - decline an invitation"),
        format!("{c}remove <user> [<room>] - remove a user from a conference room"),
        format!("{c}list [<room>] - list the members of a conference room"),
        format!("{c}exit [<room>] - leave a conference room"),
        format!("{c}destroy [<room>] - destroy a conference room"),
        format!("{c}record [<room>] - start recording a conference room (moderators)"),
        format!("{c}stoprecord [<room>] - stop recording a conference room (moderators)"),
        format!("{c}help - this text"),
        "Sent to a room's address, commands act on that room; sent to the manager, \
         they name the room."
            .to_owned(),
    ]
    .join("\n")
}

/// The notice for a command that could not be run.
pub fn imc_error(e: &ImcError, c: char) -> String {
    match e {
        ImcError::UnknownCommand(name) => {
            format!("*** Invalid command '{name}' (send '{c}help' for help)")
        }
        ImcError::Usage(u) => format!("*** Usage: {c}{u}"),
        ImcError::InvalidRoom(r) => format!("*** Invalid room '{r}'"),
        ImcError::InvalidUser(u) => format!("*** Invalid user '{u}'"),
        ImcError::NoRoom => format!(
            "*** Name the room, or send the command to the room's address \
             (send '{c}help' for help)"
        ),
        ImcError::NotACommand => manager_hint(c),
    }
}

/// The notice for a refusal answered with one ([`conclave_engine::ImcOutcome::Notice`]):
/// Kamailio's wording where it has one, else the refusal's own text.
pub fn refusal(e: &EngineError) -> String {
    let EngineError::Rejected { rejection, .. } = e else {
        return format!("*** {}", reason_phrase(e.mapping().sip.reason()));
    };
    let text = match rejection {
        Rejection::RoomExists(_) => "Room already exists".to_owned(),
        Rejection::NotInvited => {
            "Private rooms are by invitation only. The room's members have been notified."
                .to_owned()
        }
        Rejection::SessionExists => "You are in the room already".to_owned(),
        Rejection::SessionNotFound => "You are not in the room".to_owned(),
        Rejection::NotOwner => "Only the room's owner may do this".to_owned(),
        Rejection::NotModerator => "Only the room's owner or moderators may do this".to_owned(),
        Rejection::Outranked => "You cannot act on someone of equal or higher rank".to_owned(),
        Rejection::InvitationNotFound => "You have no pending invitation to this room".to_owned(),
        Rejection::Banned { .. } => format!("You are {rejection}"),
        other => upper_first(&reason_phrase(&other.to_string())),
    };
    format!("*** {text}")
}

fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn clips_hostile_input() {
        assert_eq!(clip("a\r\nb"), "a??b");
        assert_eq!(clip(&"x".repeat(100)).chars().count(), CLIP + 1);
        assert_eq!(reason_phrase("bad\r\nVia: x"), "badVia: x");
    }

    #[test]
    fn names_people_as_kamailio_does() {
        assert_eq!(who(&Address::parse("sip:bob@x.org").unwrap()), "bob@x.org");
        assert_eq!(who(&Address::parse("web:ana").unwrap()), "ana");
    }

    #[test]
    fn member_list_marks_owners() {
        let list = vec![("a@x".into(), Some(Role::Owner)), ("b@x".into(), None)];
        assert_eq!(members(&list, 2), "*** Members:\n*a@x\nb@x\n... and 2 more");
    }

    #[test]
    fn help_uses_the_configured_char() {
        assert!(help('!').contains("!create <room> [private]"));
        assert!(!help('!').contains('#'));
    }
}
