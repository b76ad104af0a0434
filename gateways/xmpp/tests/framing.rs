//! Framing and parsing of what the server sends: bounded, and never a panic on
//! hostile bytes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use conclave_gateway_xmpp::core::{Core, NS_COMPONENT};
use conclave_gateway_xmpp::framer::{Frame, Framer, MAX_STANZA};
use conclave_gateway_xmpp::xml::{parse_element, MAX_DEPTH};
use proptest::prelude::*;

const HEAD: &str = "<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:component:accept' from='conference.localhost' id='abc'>";

fn frames(input: &[u8], chunk: usize) -> Result<Vec<Frame>, String> {
    let mut f = Framer::new();
    let mut out = Vec::new();
    for piece in input.chunks(chunk.max(1)) {
        f.push(piece);
        while let Some(frame) = f.next_frame().map_err(|e| e.code().to_owned())? {
            out.push(frame);
        }
    }
    Ok(out)
}

#[test]
fn the_stream_is_cut_into_header_stanzas_and_end_whatever_the_chunking() {
    let body = "<handshake/> \n<iq type='get' id='1' from='a@b/c' to='conference.localhost'><query xmlns='http://jabber.org/protocol/disco#info' note='a>b'/></iq>\n<message from='a@b' to='r@conference.localhost'><body>x &amp; y &lt;z&gt; 🙂</body></message></stream:stream>";
    let input = format!("{HEAD}{body}");
    let expected = frames(input.as_bytes(), input.len()).unwrap();
    assert_eq!(expected.len(), 5);
    assert!(matches!(&expected[0], Frame::StreamOpen(h) if h.contains("id='abc'")));
    assert_eq!(expected[1], Frame::Stanza("<handshake/>".into()));
    assert_eq!(expected[4], Frame::StreamClose);
    for chunk in [1, 2, 3, 7, 64] {
        assert_eq!(
            frames(input.as_bytes(), chunk).unwrap(),
            expected,
            "chunk {chunk}"
        );
    }
    let Frame::Stanza(m) = &expected[3] else {
        panic!()
    };
    let el = parse_element(m, NS_COMPONENT, &[]).unwrap();
    assert_eq!(el.elements().next().unwrap().text_content(), "x & y <z> 🙂");
}

#[test]
fn a_stanza_over_64_kib_is_refused() {
    let big = format!(
        "{HEAD}<message from='a@b' to='c@d'><body>{}</body></message>",
        "x".repeat(MAX_STANZA)
    );
    assert_eq!(
        frames(big.as_bytes(), 4096).unwrap_err(),
        "xmpp.stanza_too_large"
    );
    // Even when it never closes, and even as one push.
    let open = format!("{HEAD}<message>{}", "y".repeat(MAX_STANZA + 10));
    assert_eq!(
        frames(open.as_bytes(), open.len()).unwrap_err(),
        "xmpp.stanza_too_large"
    );
    // Just under passes.
    let fits = format!(
        "{HEAD}<message from='a@b' to='c@d'><body>{}</body></message>",
        "x".repeat(MAX_STANZA - 200)
    );
    assert_eq!(frames(fits.as_bytes(), 1000).unwrap().len(), 2);
}

#[test]
fn hostile_streams_are_errors_not_panics() {
    for bad in [
        "hello",
        "<?xml version='1.0'?></stream:stream>",
        "<foo>",
        &format!("{HEAD}text outside"),
        &format!("{HEAD}<!-- comment -->"),
        &format!("{HEAD}<iq><!DOCTYPE x></iq>"),
        &format!("{HEAD}</wrong>"),
        &format!("{HEAD}<a <b>"),
    ] {
        assert!(frames(bad.as_bytes(), 3).is_err(), "{bad}");
    }
}

#[test]
fn parsing_refuses_what_xmpp_forbids_and_deep_nesting() {
    for bad in [
        "<iq><a></b></iq>",
        "<iq>&unknown;</iq>",
        "<iq><!-- c --></iq>",
        "<iq/><iq/>",
        "<p:iq/>",
        "<iq a='1' a='2'/>",
        "",
    ] {
        assert!(parse_element(bad, NS_COMPONENT, &[]).is_err(), "{bad}");
    }
    let deep = format!(
        "{}{}",
        "<a>".repeat(MAX_DEPTH + 1),
        "</a>".repeat(MAX_DEPTH + 1)
    );
    assert_eq!(
        parse_element(&deep, NS_COMPONENT, &[]).unwrap_err().code(),
        "xmpp.too_deep"
    );
    // Prefixes resolve to namespaces.
    let el = parse_element(
        "<iq xmlns:d='http://jabber.org/protocol/disco#info'><d:query/></iq>",
        NS_COMPONENT,
        &[],
    )
    .unwrap();
    assert_eq!(
        el.elements().next().unwrap().ns,
        "http://jabber.org/protocol/disco#info"
    );
}

const SEEDS: &[&str] = &[
    "<iq type='get' id='1' from='a@localhost/r' to='conference.localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
    "<iq type='get' id='2' from='a@localhost/r' to='conference.localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>",
    "<presence from='a@localhost/r' to='room@conference.localhost/nick'><x xmlns='http://jabber.org/protocol/muc'><password>p</password></x></presence>",
    "<message type='groupchat' from='a@localhost/r' to='room@conference.localhost'><body>hi &amp; bye</body></message>",
];

fn mutate(seed: &str, edits: &[(usize, u8)]) -> Vec<u8> {
    let mut b = seed.as_bytes().to_vec();
    for (i, byte) in edits {
        if b.is_empty() {
            break;
        }
        let at = i % b.len();
        match byte % 3 {
            0 => b[at] = *byte,
            1 => {
                b.remove(at);
            }
            _ => b.insert(at, *byte),
        }
    }
    b
}

fn drive(bytes: &[u8], chunk: usize) {
    let core = Core::new("conference.localhost");
    let mut f = Framer::new();
    f.push(HEAD.as_bytes());
    let _ = f.next_frame();
    for piece in bytes.chunks(chunk.max(1)) {
        f.push(piece);
        loop {
            match f.next_frame() {
                Ok(Some(Frame::Stanza(s))) => {
                    if let Ok(el) = parse_element(&s, NS_COMPONENT, &[]) {
                        for out in core.handle(&el, Vec::new) {
                            // What we send parses back.
                            parse_element(&out.to_xml(NS_COMPONENT), NS_COMPONENT, &[])
                                .expect("our own output parses");
                        }
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048), chunk in 1usize..64) {
        drive(&bytes, chunk);
        let _ = parse_element(&String::from_utf8_lossy(&bytes), NS_COMPONENT, &[]);
    }

    #[test]
    fn mutated_stanzas_never_panic(
        seed in 0..SEEDS.len(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..12),
        chunk in 1usize..64,
    ) {
        let bytes = mutate(SEEDS[seed], &edits);
        drive(&bytes, chunk);
        let _ = parse_element(&String::from_utf8_lossy(&bytes), NS_COMPONENT, &[]);
    }

    #[test]
    fn arbitrary_text_in_attributes_round_trips(id in "\\PC{0,40}", body in "\\PC{0,80}") {
        let core = Core::new("conference.localhost");
        let el = conclave_gateway_xmpp::xml::Element::new("message", NS_COMPONENT)
            .attr("id", &id)
            .attr("from", "a@localhost/r")
            .attr("to", "room@conference.localhost")
            .child(conclave_gateway_xmpp::xml::Element::new("body", NS_COMPONENT).text(&body));
        let back = parse_element(&el.to_xml(NS_COMPONENT), NS_COMPONENT, &[]).unwrap();
        prop_assert_eq!(&back, &el);
        let out = core.handle(&back, Vec::new);
        prop_assert_eq!(out.len(), 1);
        prop_assert_eq!(out[0].get_attr("id"), Some(id.as_str()));
    }
}
