//! Building the stanzas XEP-0045 sends: occupant presences with their `muc#user` item
//! and status codes, room messages, and errors with the right condition and type.

use conclave_engine::protocol::XmppError as Mapped;

use crate::core::{NS_COMPONENT, NS_STANZAS};
use crate::xml::Element;

/// XEP-0045 user namespace.
pub const NS_MUC_USER: &str = "http://jabber.org/protocol/muc#user";
/// XEP-0045 admin namespace.
pub const NS_MUC_ADMIN: &str = "http://jabber.org/protocol/muc#admin";
/// XEP-0045 owner namespace.
pub const NS_MUC_OWNER: &str = "http://jabber.org/protocol/muc#owner";
/// XEP-0203 delayed delivery.
pub const NS_DELAY: &str = "urn:xmpp:delay";
/// XEP-0359 stanza ids.
pub const NS_SID: &str = "urn:xmpp:sid:0";

/// Status codes (XEP-0045 §15.6).
pub mod status {
    /// Real JIDs are shown to every occupant.
    pub const NON_ANONYMOUS: u16 = 100;
    /// This presence is about you.
    pub const SELF: u16 = 110;
    /// The room is logged (Conclave journals every message).
    pub const LOGGED: u16 = 170;
    /// A new room was created.
    pub const CREATED: u16 = 201;
    /// Banned.
    pub const BANNED: u16 = 301;
    /// New nickname.
    pub const NICK_CHANGED: u16 = 303;
    /// Kicked.
    pub const KICKED: u16 = 307;
    /// Removed because the room became members-only (or affiliation lost).
    pub const REMOVED_AFFILIATION: u16 = 321;
    /// Removed: the service is shutting down or the session ended otherwise.
    pub const SHUTDOWN: u16 = 332;
    /// Removed: a technical reason (the client bounced).
    pub const TECHNICAL: u16 = 333;
}

/// What an occupant presence says about one occupant.
#[derive(Debug, Clone, Default)]
pub struct ItemView<'a> {
    /// `owner`, `admin`, `member`, `outcast`, `none`.
    pub affiliation: &'a str,
    /// `moderator`, `participant`, `visitor`, `none`.
    pub role: &'a str,
    /// The real JID, when the recipient may see it.
    pub jid: Option<&'a str>,
    /// The new nickname (303).
    pub nick: Option<&'a str>,
    /// Why (kicks, bans).
    pub reason: Option<&'a str>,
    /// Who did it (kicks, bans): the actor's nickname.
    pub actor: Option<&'a str>,
}

/// `<presence from to [type]>` with a `muc#user` item and status codes.
pub fn occupant_presence(
    from: &str,
    to: &str,
    unavailable: bool,
    item: &ItemView<'_>,
    codes: &[u16],
    extra: &[Element],
) -> Element {
    let mut p = Element::new("presence", NS_COMPONENT)
        .attr("from", from)
        .attr("to", to);
    if unavailable {
        p.set_attr("type", "unavailable");
    }
    for e in extra {
        p = p.child(e.clone());
    }
    let mut it = Element::new("item", NS_MUC_USER)
        .attr("affiliation", item.affiliation)
        .attr("role", item.role);
    if let Some(j) = item.jid {
        it.set_attr("jid", j);
    }
    if let Some(n) = item.nick {
        it.set_attr("nick", n);
    }
    if let Some(a) = item.actor {
        it = it.child(Element::new("actor", NS_MUC_USER).attr("nick", a));
    }
    if let Some(r) = item.reason {
        it = it.child(Element::new("reason", NS_MUC_USER).text(r));
    }
    let mut x = Element::new("x", NS_MUC_USER).child(it);
    for c in codes {
        x = x.child(Element::new("status", NS_MUC_USER).attr("code", &c.to_string()));
    }
    p.child(x)
}

/// A `type='groupchat'` message.
pub fn groupchat(from: &str, to: &str, id: Option<&str>) -> Element {
    let mut m = Element::new("message", NS_COMPONENT)
        .attr("type", "groupchat")
        .attr("from", from)
        .attr("to", to);
    if let Some(i) = id {
        m.set_attr("id", i);
    }
    m
}

/// A `<body>`.
pub fn body(text: &str) -> Element {
    Element::new("body", NS_COMPONENT).text(text)
}

/// The error answer to `stanza` (RFC 6120 §8.3): same kind and id, addresses swapped.
/// For a refused join the original `<x xmlns=muc>` goes back too, as XEP-0045 shows.
pub fn error_reply(stanza: &Element, kind: &str, condition: &str, text: Option<&str>) -> Element {
    let mut out = Element::new(&stanza.name, NS_COMPONENT).attr("type", "error");
    if let Some(to) = stanza.get_attr("to") {
        out.set_attr("from", to);
    }
    if let Some(from) = stanza.get_attr("from") {
        out.set_attr("to", from);
    }
    if let Some(id) = stanza.get_attr("id") {
        out.set_attr("id", id);
    }
    if stanza.name == "presence" {
        if let Some(x) = stanza.get_child("x", crate::core::NS_MUC) {
            let mut x = x.clone();
            // Never echo a password back.
            x.children
                .retain(|c| !matches!(c, crate::xml::Node::Element(e) if e.name == "password"));
            out = out.child(x);
        }
    }
    let mut error = Element::new("error", NS_COMPONENT)
        .attr("type", kind)
        .child(Element::new(condition, NS_STANZAS));
    if let Some(t) = text {
        error = error.child(Element::new("text", NS_STANZAS).text(t));
    }
    out.child(error)
}

/// Whether an error stanza from a client's address says the client is not there (its
/// server answered for a resource that is gone, or could not deliver): the conditions
/// RFC 6120 §8.3.3 gives for an absent recipient or an unreachable server.
pub fn says_gone(el: &Element) -> bool {
    let Some(error) = el.get_child("error", NS_COMPONENT) else {
        return false;
    };
    error.elements().any(|c| {
        c.ns == NS_STANZAS
            && matches!(
                c.name.as_str(),
                "service-unavailable"
                    | "recipient-unavailable"
                    | "item-not-found"
                    | "remote-server-not-found"
                    | "remote-server-timeout"
                    | "gone"
            )
    })
}

/// An error answer with an engine mapping's condition and type.
pub fn mapped_error(stanza: &Element, mapped: Mapped, text: Option<&str>) -> Element {
    error_reply(
        stanza,
        mapped.kind.as_str(),
        mapped.condition.as_str(),
        text,
    )
}

/// An empty `type='result'` answer to an IQ.
pub fn iq_result(iq: &Element) -> Element {
    let mut out = Element::new("iq", NS_COMPONENT).attr("type", "result");
    if let Some(to) = iq.get_attr("to") {
        out.set_attr("from", to);
    }
    if let Some(from) = iq.get_attr("from") {
        out.set_attr("to", from);
    }
    if let Some(id) = iq.get_attr("id") {
        out.set_attr("id", id);
    }
    out
}

/// `<delay xmlns='urn:xmpp:delay' from stamp/>`.
pub fn delay(from: &str, at: chrono::DateTime<chrono::Utc>) -> Element {
    Element::new("delay", NS_DELAY).attr("from", from).attr(
        "stamp",
        &at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_occupant_presence_carries_item_and_codes() {
        let p = occupant_presence(
            "r@c/n",
            "u@l/x",
            false,
            &ItemView {
                affiliation: "owner",
                role: "moderator",
                jid: Some("u@l/x"),
                ..ItemView::default()
            },
            &[110, 201],
            &[],
        );
        let x = p.get_child("x", NS_MUC_USER);
        assert!(x.is_some());
        let xml = p.to_xml(NS_COMPONENT);
        assert!(xml.contains("affiliation=\"owner\"") || xml.contains("affiliation='owner'"));
        assert!(xml.contains("110") && xml.contains("201"));
    }

    #[test]
    fn a_refused_join_echoes_the_muc_element_but_never_the_password() {
        let join = Element::new("presence", NS_COMPONENT)
            .attr("from", "u@l/x")
            .attr("to", "r@c/n")
            .child(
                Element::new("x", crate::core::NS_MUC)
                    .child(Element::new("password", crate::core::NS_MUC).text("hunter2")),
            );
        let e = error_reply(&join, "auth", "not-authorized", None);
        let xml = e.to_xml(NS_COMPONENT);
        assert!(!xml.contains("hunter2"));
        assert!(xml.contains("not-authorized"));
        assert_eq!(e.get_attr("to"), Some("u@l/x"));
    }
}
