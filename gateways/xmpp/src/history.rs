//! XEP-0045 §7.2.14 discussion history, sans-IO: the `<history/>` a joining client
//! puts in its presence (`maxchars`, `maxstanzas`, `seconds`, `since`), the choice of
//! messages it asks for among the room's last ones ([`crate::archive::recent`]), and
//! each rendered as the room sends it, with an XEP-0203 `<delay/>` stamped by the room
//! and the XEP-0359 stanza id that is also its archive id.
//!
//! Bounded: at most [`HISTORY_LENGTH`] messages are ever sent on join, the default too
//! (as prosody and ejabberd do); more is the archive's (XEP-0313). A client's limits
//! only narrow that. Values that do not parse (`maxstanzas='many'`, a negative number, a
//! `since` that is not an XEP-0082 date) are ignored, as if absent: a join is never
//! refused for its history request.

use chrono::{DateTime, TimeDelta, Utc};
use conclave_engine::ids::Address;

use crate::archive::ArchivedMessage;
use crate::core::{NS_COMPONENT, NS_MUC};
use crate::mam::{stamp, NS_DELAY};
use crate::xml::Element;

/// Most messages sent on join, and the number sent when the client does not say.
pub const HISTORY_LENGTH: usize = 20;
/// XEP-0359 unique and stable stanza ids.
pub const NS_STANZA_ID: &str = "urn:xmpp:sid:0";

/// What a joining client asked for; every limit applies (their intersection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HistoryRequest {
    /// Most characters of history, counted over the complete stanzas as sent.
    pub max_chars: Option<usize>,
    /// Most messages.
    pub max_stanzas: Option<usize>,
    /// Only messages of the last this many seconds.
    pub seconds: Option<u64>,
    /// Only messages after this time.
    pub since: Option<DateTime<Utc>>,
}

impl HistoryRequest {
    /// The request in the `<x xmlns='http://jabber.org/protocol/muc'/>` of a join
    /// presence (none, or no `<history/>`: the default).
    pub fn parse(muc_x: Option<&Element>) -> Self {
        let Some(history) = muc_x.and_then(|x| x.get_child("history", NS_MUC)) else {
            return HistoryRequest::default();
        };
        let number = |name: &str| history.get_attr(name).and_then(|v| v.trim().parse().ok());
        HistoryRequest {
            max_chars: number("maxchars"),
            max_stanzas: number("maxstanzas"),
            seconds: history
                .get_attr("seconds")
                .and_then(|v| v.trim().parse().ok()),
            since: history
                .get_attr("since")
                .and_then(|v| DateTime::parse_from_rfc3339(v.trim()).ok())
                .map(|t| t.with_timezone(&Utc)),
        }
    }

    /// How many of the room's last messages to read: what to pass to
    /// [`crate::archive::recent`] (0 when the client wants none).
    pub fn stanza_limit(&self) -> usize {
        if self.max_chars == Some(0) {
            return 0;
        }
        self.max_stanzas
            .unwrap_or(HISTORY_LENGTH)
            .min(HISTORY_LENGTH)
    }

    /// The messages (the room's last ones, oldest first) that `since`, `seconds` and
    /// `maxstanzas` let through at `now`: the newest of them, oldest first.
    pub fn select<'a>(
        &self,
        messages: &'a [ArchivedMessage],
        now: DateTime<Utc>,
    ) -> &'a [ArchivedMessage] {
        let limit = self.stanza_limit();
        let after_seconds = self.seconds.map(|s| {
            let s = i64::try_from(s).unwrap_or(i64::MAX);
            TimeDelta::try_seconds(s)
                .and_then(|d| now.checked_sub_signed(d))
                .unwrap_or(DateTime::<Utc>::MIN_UTC)
        });
        let wanted = |m: &ArchivedMessage| {
            self.since.is_none_or(|since| m.at > since)
                && after_seconds.is_none_or(|from| m.at >= from)
        };
        // The messages are in time order: the wanted ones are a suffix.
        let first = messages
            .iter()
            .rposition(|m| !wanted(m))
            .map_or(0, |i| i + 1);
        let wanted = &messages[first..];
        &wanted[wanted.len().saturating_sub(limit)..]
    }

    /// The history stanzas to send `to` (the occupant's full JID) on joining
    /// `room_jid`: the selected messages rendered ([`message`]), then cut to
    /// `maxchars` from the newest back.
    pub fn render(
        &self,
        messages: &[ArchivedMessage],
        now: DateTime<Utc>,
        room_jid: &str,
        to: &str,
        nick: impl Fn(&Address) -> String,
    ) -> Vec<Element> {
        let mut out = Vec::new();
        let mut chars = 0usize;
        for m in self.select(messages, now).iter().rev() {
            let stanza = message(room_jid, to, m, &nick);
            if let Some(max) = self.max_chars {
                chars = chars.saturating_add(stanza.to_xml(NS_COMPONENT).chars().count());
                if chars > max {
                    break;
                }
            }
            out.push(stanza);
        }
        out.reverse();
        out
    }
}

/// One history message as the room sends it (XEP-0045 Example 37): from the author's
/// occupant JID (`room_jid/nick`), with `<delay from=room_jid stamp=…/>` and the
/// stanza id that is its archive id.
pub fn message(
    room_jid: &str,
    to: &str,
    m: &ArchivedMessage,
    nick: impl Fn(&Address) -> String,
) -> Element {
    Element::new("message", NS_COMPONENT)
        .attr("from", &format!("{room_jid}/{}", nick(&m.from)))
        .attr("to", to)
        .attr("type", "groupchat")
        .attr("id", &m.id)
        .child(Element::new("body", NS_COMPONENT).text(&m.body))
        .child(
            Element::new("delay", NS_DELAY)
                .attr("from", room_jid)
                .attr("stamp", &stamp(&m.at)),
        )
        .child(
            Element::new("stanza-id", NS_STANZA_ID)
                .attr("id", &m.id)
                .attr("by", room_jid),
        )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::xml::parse_element;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn join(history: &str) -> HistoryRequest {
        let presence = parse_element(
            &format!(
                "<presence from='hag66@shakespeare.lit/pda' id='n13mt3l' to='coven@chat.shakespeare.lit/thirdwitch'>\
                 <x xmlns='http://jabber.org/protocol/muc'>{history}</x></presence>"
            ),
            NS_COMPONENT,
            &[],
        )
        .unwrap();
        HistoryRequest::parse(presence.get_child("x", NS_MUC))
    }

    /// Twenty-five messages, one a minute from 2002-10-13T23:30:00Z, `m0`…`m24`.
    fn messages() -> Vec<ArchivedMessage> {
        let t = at("2002-10-13T23:30:00Z");
        (0..25)
            .map(|i| ArchivedMessage {
                seq: 100 + i,
                id: format!("m{i}"),
                at: t + TimeDelta::minutes(i as i64),
                from: Address::parse("xmpp:firstwitch@shakespeare.lit").unwrap(),
                body: "Thrice the brinded cat hath mew'd.".into(),
            })
            .collect()
    }

    fn ids(ms: &[ArchivedMessage]) -> Vec<&str> {
        ms.iter().map(|m| m.id.as_str()).collect()
    }

    fn now() -> DateTime<Utc> {
        at("2002-10-14T00:00:00Z")
    }

    #[test]
    fn the_xep_history_requests_parse() {
        // Examples 39-42.
        assert_eq!(join("<history maxchars='65000'/>").max_chars, Some(65000));
        assert_eq!(join("<history maxstanzas='20'/>").max_stanzas, Some(20));
        assert_eq!(join("<history seconds='180'/>").seconds, Some(180));
        assert_eq!(
            join("<history since='1970-01-01T00:00:00Z'/>").since,
            Some(at("1970-01-01T00:00:00Z"))
        );
        // Example 43 (no history).
        assert_eq!(join("<history maxchars='0'/>").stanza_limit(), 0);
        // Without history: the default.
        assert_eq!(join(""), HistoryRequest::default());
        assert_eq!(HistoryRequest::parse(None).stanza_limit(), HISTORY_LENGTH);
        // Nonsense is ignored.
        let r = join("<history maxchars='-1' maxstanzas='many' seconds='1e9' since='yesterday'/>");
        assert_eq!(r, HistoryRequest::default());
        let r = join("<history maxstanzas='99999999999999999999999'/>");
        assert_eq!(r.max_stanzas, None);
    }

    #[test]
    fn at_most_the_room_history_length_is_sent() {
        let all = messages();
        assert_eq!(ids(join("").select(&all, now())), ids(&all[5..]));
        assert_eq!(
            join("<history maxstanzas='1000'/>").stanza_limit(),
            HISTORY_LENGTH
        );
        assert_eq!(
            ids(join("<history maxstanzas='3'/>").select(&all, now())),
            ["m22", "m23", "m24"]
        );
        assert!(join("<history maxstanzas='0'/>")
            .select(&all, now())
            .is_empty());
        assert!(join("<history maxchars='0'/>")
            .select(&all, now())
            .is_empty());
        assert!(join("").select(&[], now()).is_empty());
    }

    #[test]
    fn seconds_and_since_bound_by_time() {
        let all = messages();
        // The last three minutes before midnight: m22 (23:52)… no, 23:57 onwards.
        let got = join("<history seconds='180'/>").select(&all, now());
        assert_eq!(ids(got), Vec::<&str>::new());
        let late = at("2002-10-13T23:56:00Z");
        let got = join("<history seconds='180'/>").select(&all, late);
        assert_eq!(ids(got), ["m23", "m24"]);
        // Since is strictly after.
        let got = join("<history since='2002-10-13T23:52:00Z'/>").select(&all, now());
        assert_eq!(ids(got), ["m23", "m24"]);
        // Every limit applies.
        let got =
            join("<history since='2002-10-13T23:40:00Z' maxstanzas='2'/>").select(&all, now());
        assert_eq!(ids(got), ["m23", "m24"]);
        let got = join("<history seconds='18446744073709551615'/>").select(&all, now());
        assert_eq!(got.len(), HISTORY_LENGTH);
    }

    #[test]
    fn a_history_message_is_delayed_by_the_room() {
        // XEP-0045 Example 37, with Conclave's id and stanza id.
        let m = ArchivedMessage {
            seq: 1,
            id: "162BEBB1-F6DB-4D9A-9BD8-CFDCC801A0B2".into(),
            at: at("2002-10-13T23:58:37Z"),
            from: Address::parse("xmpp:firstwitch@shakespeare.lit").unwrap(),
            body: "Thrice the brinded cat hath mew'd.".into(),
        };
        let el = message(
            "coven@chat.shakespeare.lit",
            "hecate@shakespeare.lit/broom",
            &m,
            |a: &Address| a.local().to_owned(),
        );
        assert_eq!(
            el.to_xml(NS_COMPONENT),
            "<message from='coven@chat.shakespeare.lit/firstwitch' to='hecate@shakespeare.lit/broom' \
             type='groupchat' id='162BEBB1-F6DB-4D9A-9BD8-CFDCC801A0B2'>\
             <body>Thrice the brinded cat hath mew&apos;d.</body>\
             <delay xmlns='urn:xmpp:delay' from='coven@chat.shakespeare.lit' stamp='2002-10-13T23:58:37Z'/>\
             <stanza-id xmlns='urn:xmpp:sid:0' id='162BEBB1-F6DB-4D9A-9BD8-CFDCC801A0B2' by='coven@chat.shakespeare.lit'/>\
             </message>"
        );
    }

    #[test]
    fn maxchars_counts_the_stanzas_from_the_newest() {
        let all = messages();
        let nick = |_: &Address| "firstwitch".to_owned();
        let one = message("coven@chat.shakespeare.lit", "h@s/b", &all[24], nick)
            .to_xml(NS_COMPONENT)
            .chars()
            .count();
        let render = |max: usize| {
            HistoryRequest {
                max_chars: Some(max),
                ..HistoryRequest::default()
            }
            .render(&all, now(), "coven@chat.shakespeare.lit", "h@s/b", nick)
        };
        assert!(render(one - 1).is_empty());
        let got = render(one);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].get_attr("id"), Some("m24"));
        let got = render(2 * one + 1);
        let got: Vec<&str> = got.iter().filter_map(|e| e.get_attr("id")).collect();
        assert_eq!(got, ["m23", "m24"]);
        // Without maxchars: the selection, oldest first.
        let got = HistoryRequest::default().render(&all, now(), "r@c", "h@s/b", nick);
        assert_eq!(got.len(), HISTORY_LENGTH);
        assert_eq!(got[0].get_attr("id"), Some("m5"));
    }
}
