//! The sans-IO core without a server: service discovery, refusals, no error loops.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use conclave_gateway_xmpp::core::{
    Core, PublicRoom, MAX_ITEMS, NS_COMPONENT, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_MUC, NS_STANZAS,
};
use conclave_gateway_xmpp::xml::{parse_element, Element};

const DOMAIN: &str = "conference.localhost";

fn stanza(xml: &str) -> Element {
    parse_element(xml, NS_COMPONENT, &[]).unwrap()
}

fn rooms(names: &[&str]) -> Vec<PublicRoom> {
    names
        .iter()
        .map(|n| PublicRoom {
            name: (*n).to_owned(),
        })
        .collect()
}

fn handle(xml: &str) -> Vec<Element> {
    Core::new(DOMAIN).handle(&stanza(xml), || rooms(&["lobby", "Team Room"]))
}

fn one(xml: &str) -> Element {
    let mut out = handle(xml);
    assert_eq!(out.len(), 1, "{xml}");
    out.remove(0)
}

fn error_condition(reply: &Element) -> (String, String, Option<String>) {
    let e = reply
        .get_child("error", NS_COMPONENT)
        .expect("an error child");
    let cond = e
        .elements()
        .find(|c| c.ns == NS_STANZAS && c.name != "text")
        .unwrap()
        .name
        .clone();
    let text = e.get_child("text", NS_STANZAS).map(|t| t.text_content());
    (e.get_attr("type").unwrap().to_owned(), cond, text)
}

#[test]
fn disco_info_names_the_conference_service_and_its_features() {
    let r = one("<iq type='get' id='i1' from='alice@localhost/pc' to='conference.localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
    assert_eq!(r.name, "iq");
    assert_eq!(r.get_attr("type"), Some("result"));
    assert_eq!(r.get_attr("id"), Some("i1"));
    assert_eq!(r.get_attr("from"), Some(DOMAIN));
    assert_eq!(r.get_attr("to"), Some("alice@localhost/pc"));
    let q = r.get_child("query", NS_DISCO_INFO).unwrap();
    let id = q.get_child("identity", NS_DISCO_INFO).unwrap();
    assert_eq!(id.get_attr("category"), Some("conference"));
    assert_eq!(id.get_attr("type"), Some("text"));
    assert_eq!(id.get_attr("name"), Some("Conclave rooms"));
    let features: Vec<_> = q
        .elements()
        .filter(|e| e.name == "feature")
        .filter_map(|e| e.get_attr("var"))
        .collect();
    assert_eq!(features, vec![NS_DISCO_INFO, NS_DISCO_ITEMS, NS_MUC]);
    // And it serializes as a stanza of the component stream, the payload namespaced.
    let xml = r.to_xml(NS_COMPONENT);
    assert!(xml.starts_with("<iq type='result'"), "{xml}");
    assert!(
        xml.contains("<query xmlns='http://jabber.org/protocol/disco#info'>"),
        "{xml}"
    );
}

#[test]
fn disco_items_lists_the_public_rooms_given() {
    let r = one("<iq type='get' id='i2' from='alice@localhost/pc' to='Conference.Localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>");
    assert_eq!(r.get_attr("type"), Some("result"));
    let q = r.get_child("query", NS_DISCO_ITEMS).unwrap();
    let items: Vec<_> = q
        .elements()
        .map(|e| (e.get_attr("jid").unwrap(), e.get_attr("name").unwrap()))
        .collect();
    assert_eq!(
        items,
        vec![
            ("lobby@conference.localhost", "lobby"),
            ("team\\20room@conference.localhost", "Team Room"),
        ]
    );
}

#[test]
fn disco_items_is_bounded_and_reads_rooms_only_when_asked() {
    let many: Vec<PublicRoom> = (0..MAX_ITEMS + 10)
        .map(|i| PublicRoom {
            name: format!("r{i}"),
        })
        .collect();
    let core = Core::new(DOMAIN);
    let q = stanza("<iq type='get' id='x' from='a@localhost/r' to='conference.localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>");
    let out = core.handle(&q, || many.clone());
    let n = out[0]
        .get_child("query", NS_DISCO_ITEMS)
        .unwrap()
        .elements()
        .count();
    assert_eq!(n, MAX_ITEMS);
    let info = stanza("<iq type='get' id='y' from='a@localhost/r' to='conference.localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
    let out = core.handle(&info, || panic!("rooms read for disco#info"));
    assert_eq!(out.len(), 1);
}

#[test]
fn other_iqs_get_service_unavailable() {
    for xml in [
        // disco#info of a room: XEP-0045, next slice.
        "<iq type='get' id='a' from='u@localhost/r' to='lobby@conference.localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
        // A set of a disco query.
        "<iq type='set' id='b' from='u@localhost/r' to='conference.localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
        // Other payloads.
        "<iq type='get' id='c' from='u@localhost/r' to='conference.localhost'><ping xmlns='urn:xmpp:ping'/></iq>",
        "<iq type='get' id='d' from='u@localhost/r' to='conference.localhost'><query xmlns='jabber:iq:version'/></iq>",
        // A node is not served.
        "<iq type='get' id='e' from='u@localhost/r' to='conference.localhost'><query xmlns='http://jabber.org/protocol/disco#items' node='x'/></iq>",
        // No payload, two payloads.
        "<iq type='get' id='f' from='u@localhost/r' to='conference.localhost'/>",
        "<iq type='get' id='g' from='u@localhost/r' to='conference.localhost'><query xmlns='http://jabber.org/protocol/disco#info'/><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
    ] {
        let r = one(xml);
        assert_eq!(r.name, "iq");
        assert_eq!(r.get_attr("type"), Some("error"), "{xml}");
        assert_eq!(r.get_attr("to"), Some("u@localhost/r"));
        assert!(r.get_attr("id").is_some());
        let (kind, cond, _) = error_condition(&r);
        assert_eq!((kind.as_str(), cond.as_str()), ("cancel", "service-unavailable"), "{xml}");
    }
    let r = one("<iq type='weird' id='h' from='u@localhost/r' to='conference.localhost'/>");
    assert_eq!(error_condition(&r).1, "bad-request");
}

#[test]
fn messages_and_presence_to_the_service_itself_are_refused_visibly() {
    for (xml, kind) in [
        (
            "<presence from='u@localhost/r' to='conference.localhost'/>",
            "presence",
        ),
        (
            "<message from='u@localhost/r' to='conference.localhost'><body>hi</body></message>",
            "message",
        ),
    ] {
        let r = one(xml);
        assert_eq!(r.name, kind);
        assert_eq!(r.get_attr("type"), Some("error"));
        assert_eq!(r.get_attr("to"), Some("u@localhost/r"));
        let (t, cond, text) = error_condition(&r);
        assert_eq!(t, "cancel");
        assert_eq!(cond, "service-unavailable");
        assert_eq!(text, None);
    }
}

#[test]
fn errors_and_results_are_never_answered() {
    for xml in [
        "<iq type='result' id='a' from='u@localhost/r' to='conference.localhost'/>",
        "<iq type='error' id='a' from='u@localhost/r' to='conference.localhost'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
        "<message type='error' from='u@localhost/r' to='lobby@conference.localhost'/>",
        "<presence type='error' from='u@localhost/r' to='lobby@conference.localhost/n'/>",
        // Without addresses there is no one to answer.
        "<iq type='get' id='a' to='conference.localhost'/>",
        "<message to='lobby@conference.localhost'/>",
        // Not a stanza, or not of the stream's namespace.
        "<foo from='a' to='b'/>",
        "<iq xmlns='jabber:client' type='get' id='a' from='u@localhost' to='conference.localhost'/>",
    ] {
        assert!(handle(xml).is_empty(), "{xml}");
    }
}

#[test]
fn an_answer_to_our_error_is_itself_ignored() {
    // Feed every reply back as if it came from the other side: nothing bounces forever.
    let core = Core::new(DOMAIN);
    let first = stanza("<message id='m' from='u@localhost/r' to='lobby@conference.localhost'><body>x</body></message>");
    let replies = core.handle(&first, Vec::new);
    for r in replies {
        let back = stanza(&r.to_xml(NS_COMPONENT));
        assert!(core.handle(&back, Vec::new).is_empty());
    }
}

#[test]
fn names_with_markup_are_escaped_in_the_output() {
    let core = Core::new(DOMAIN);
    let q = stanza("<iq type='get' id='&lt;i&apos;d&gt;' from='a@localhost/r' to='conference.localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>");
    let out = core.handle(&q, || rooms(&["a<b>&'\"c@d/e"]));
    let xml = out[0].to_xml(NS_COMPONENT);
    let back = stanza(&xml);
    assert_eq!(back.get_attr("id"), Some("<i'd>"));
    let item = back
        .get_child("query", NS_DISCO_ITEMS)
        .unwrap()
        .elements()
        .next()
        .unwrap()
        .clone();
    assert_eq!(item.get_attr("name"), Some("a<b>&'\"c@d/e"));
    assert_eq!(
        item.get_attr("jid"),
        Some("a\\3cb\\3e\\26\\27\\22c\\40d\\2fe@conference.localhost")
    );
}
