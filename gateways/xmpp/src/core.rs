//! The sans-IO component core for stanzas addressed to the component domain itself: a
//! parsed stanza in, the stanzas to send out. No sockets, no clock, no engine: the
//! public room list is handed in as data, so every behaviour is tested without a
//! server.
//!
//! It answers service discovery (the service and its public rooms); rooms and
//! occupants (JIDs with a localpart) are [`crate::muc`]'s. Messages and presence to the
//! service get `service-unavailable`; stanzas of type `error` (and IQ `result`) are
//! never answered, so two entities can never bounce errors at each other forever.

use crate::muc::stanzas::error_reply;
use crate::xml::Element;

/// The component stream's namespace: stanzas inherit it.
pub const NS_COMPONENT: &str = "jabber:component:accept";
/// XEP-0030 info.
pub const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
/// XEP-0030 items.
pub const NS_DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
/// XEP-0045.
pub const NS_MUC: &str = "http://jabber.org/protocol/muc";
/// RFC 6120 stanza error conditions.
pub const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
/// Most rooms listed in one disco#items answer: keeps the answer far under the stanza
/// bounds of servers (XEP-0059 paging would lift it; not built yet).
pub const MAX_ITEMS: usize = 500;

/// A room as disco#items shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicRoom {
    /// The Conclave room name (any text the engine allows).
    pub name: String,
}

/// What the core needs to know about itself.
#[derive(Debug, Clone)]
pub struct Core {
    domain: String,
    service_name: String,
}

impl Core {
    /// A core serving `domain` (lowercased, as JID domains compare).
    pub fn new(domain: &str) -> Self {
        Core {
            domain: domain.to_ascii_lowercase(),
            service_name: "Conclave rooms".into(),
        }
    }

    /// The component domain.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Answers one inbound stanza. `rooms` is called only for a disco#items query to
    /// the domain, so that the caller reads the engine only when it is needed.
    pub fn handle(
        &self,
        stanza: &Element,
        rooms: impl FnOnce() -> Vec<PublicRoom>,
    ) -> Vec<Element> {
        if stanza.ns != NS_COMPONENT {
            return Vec::new();
        }
        let kind = stanza.get_attr("type").unwrap_or("");
        // Without both addresses there is no one to answer (the server always sets them).
        let (Some(from), Some(to)) = (stanza.get_attr("from"), stanza.get_attr("to")) else {
            return Vec::new();
        };
        match stanza.name.as_str() {
            "iq" => match kind {
                "result" | "error" => Vec::new(),
                "get" | "set" => vec![self.iq(stanza, kind, from, to, rooms)],
                _ => vec![error_reply(stanza, "modify", "bad-request", None)],
            },
            "message" | "presence" if kind == "error" => Vec::new(),
            // Rooms are addressed by room JIDs (the MUC core's); the service itself
            // takes no messages or presence.
            "message" | "presence" => {
                vec![error_reply(stanza, "cancel", "service-unavailable", None)]
            }
            _ => Vec::new(),
        }
    }

    fn iq(
        &self,
        stanza: &Element,
        kind: &str,
        from: &str,
        to: &str,
        rooms: impl FnOnce() -> Vec<PublicRoom>,
    ) -> Element {
        let to_domain = to.eq_ignore_ascii_case(&self.domain);
        let payloads: Vec<&Element> = stanza.elements().collect();
        let query = match payloads.as_slice() {
            [only] if kind == "get" && to_domain && only.name == "query" => Some(*only),
            _ => None,
        };
        match query {
            Some(q) if q.ns == NS_DISCO_INFO && q.get_attr("node").is_none() => {
                let query = Element::new("query", NS_DISCO_INFO)
                    .child(
                        Element::new("identity", NS_DISCO_INFO)
                            .attr("category", "conference")
                            .attr("type", "text")
                            .attr("name", &self.service_name),
                    )
                    .child(feature(NS_DISCO_INFO))
                    .child(feature(NS_DISCO_ITEMS))
                    .child(feature(NS_MUC));
                result(stanza, from, to).child(query)
            }
            Some(q) if q.ns == NS_DISCO_ITEMS && q.get_attr("node").is_none() => {
                let mut query = Element::new("query", NS_DISCO_ITEMS);
                for room in rooms().into_iter().take(MAX_ITEMS) {
                    let jid = format!("{}@{}", escape_node(&room.name), self.domain);
                    query = query.child(
                        Element::new("item", NS_DISCO_ITEMS)
                            .attr("jid", &jid)
                            .attr("name", &room.name),
                    );
                }
                result(stanza, from, to).child(query)
            }
            _ => error_reply(stanza, "cancel", "service-unavailable", None),
        }
    }
}

fn feature(var: &str) -> Element {
    Element::new("feature", NS_DISCO_INFO).attr("var", var)
}

fn result(stanza: &Element, from: &str, to: &str) -> Element {
    let mut out = Element::new("iq", NS_COMPONENT)
        .attr("type", "result")
        .attr("from", to)
        .attr("to", from);
    if let Some(id) = stanza.get_attr("id") {
        out.set_attr("id", id);
    }
    out
}

/// XEP-0106 JID escaping of a room name as a localpart; names are also lowercased,
/// as servers fold localparts, so that the JID a client uses is the one listed.
pub fn escape_node(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            ' ' => out.push_str("\\20"),
            '"' => out.push_str("\\22"),
            '&' => out.push_str("\\26"),
            '\'' => out.push_str("\\27"),
            '/' => out.push_str("\\2f"),
            ':' => out.push_str("\\3a"),
            '<' => out.push_str("\\3c"),
            '>' => out.push_str("\\3e"),
            '@' => out.push_str("\\40"),
            '\\' => out.push_str("\\5c"),
            c => out.extend(c.to_lowercase()),
        }
    }
    out
}
