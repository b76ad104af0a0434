//! XEP-0313 message archive management (`urn:xmpp:mam:2`) of a room, sans-IO: the
//! query IQ parsed into a [`MamQuery`] (the form's `with`, `start` and `end`, and the
//! XEP-0059 result set: `max`, `after`, `before`), and the answers rendered: one
//! `<message><result><forwarded>…` per archived message, then the `<fin/>` IQ result.
//! Reading the archive is [`crate::archive::query`].
//!
//! Only the fields every server must support are: `before-id`, `after-id`, `ids`
//! (`urn:xmpp:mam:2#extended`) and any other field are refused with
//! `feature-not-implemented`, as the XEP asks for unknown fields; so is RSM `<index/>`.
//! A `with` is a sender's bare JID, matched against the address the message was posted
//! with (`xmpp:local@domain`).

use chrono::{DateTime, SecondsFormat, Timelike, Utc};
use conclave_engine::ids::Address;
use thiserror::Error;

use crate::archive::{ArchivedMessage, MamPage};
use crate::core::NS_COMPONENT;
use crate::dataform::{self, DataForm, Field, FieldType, FormError, FormType};
use crate::xml::Element;

/// The archive namespace (query, result, fin).
pub const NS_MAM: &str = "urn:xmpp:mam:2";
/// XEP-0059 result set management.
pub const NS_RSM: &str = "http://jabber.org/protocol/rsm";
/// XEP-0297 stanza forwarding.
pub const NS_FORWARD: &str = "urn:xmpp:forward:0";
/// XEP-0203 delayed delivery.
pub const NS_DELAY: &str = "urn:xmpp:delay";
/// The namespace of forwarded stanzas.
pub const NS_CLIENT: &str = "jabber:client";
/// Page size when the query does not say.
pub const DEFAULT_MAX: usize = 50;
/// Largest page: a bigger `max` is served as this many (RSM lets the server limit).
pub const MAX_PAGE: usize = 100;
/// Longest `queryid`, `after` or `before`, in bytes (archive ids are far shorter).
pub const MAX_ID_BYTES: usize = 256;

/// A parsed archive query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MamQuery {
    /// The client's `queryid`, echoed in every result.
    pub query_id: Option<String>,
    /// Only messages posted by this identity (the bare JID as an `xmpp:` address).
    pub with: Option<Address>,
    /// Only messages at or after this time.
    pub start: Option<DateTime<Utc>>,
    /// Only messages at or before this time.
    pub end: Option<DateTime<Utc>>,
    /// Page size, at most [`MAX_PAGE`]; 0 asks only for the count.
    pub max: usize,
    /// The page after this archive id.
    pub after: Option<String>,
    /// The page before this archive id; `Some("")` (an empty `<before/>`) is the last
    /// page.
    pub before: Option<String>,
}

impl Default for MamQuery {
    fn default() -> Self {
        MamQuery {
            query_id: None,
            with: None,
            start: None,
            end: None,
            max: DEFAULT_MAX,
            after: None,
            before: None,
        }
    }
}

/// Why a query was refused. `code()` strings are stable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MamError {
    /// No `<query xmlns='urn:xmpp:mam:2'/>`.
    #[error("not an archive query")]
    NotAQuery,
    /// The data form is malformed.
    #[error(transparent)]
    Form(#[from] FormError),
    /// A form that is not submitted, or of another `FORM_TYPE`.
    #[error("not an archive query form: {0}")]
    WrongForm(String),
    /// A form field this archive does not know.
    #[error("unsupported query field {0:?}")]
    UnsupportedField(String),
    /// A `with` that is not a bare or full JID of a user.
    #[error("bad with: {0:?}")]
    BadWith(String),
    /// A `start` or `end` that is not an XEP-0082 date and time.
    #[error("bad {var}: {value:?}")]
    BadTime {
        /// `start` or `end`.
        var: &'static str,
        /// The value (cut short).
        value: String,
    },
    /// A malformed result set request.
    #[error("bad result set: {0}")]
    BadSet(&'static str),
    /// RSM `<index/>`: not supported.
    #[error("paging by index is not supported")]
    IndexUnsupported,
}

impl MamError {
    /// A stable code for logs and tests.
    pub fn code(&self) -> &'static str {
        match self {
            MamError::NotAQuery => "mam.not_a_query",
            MamError::Form(e) => e.code(),
            MamError::WrongForm(_) => "mam.wrong_form",
            MamError::UnsupportedField(_) => "mam.unsupported_field",
            MamError::BadWith(_) => "mam.bad_with",
            MamError::BadTime { .. } => "mam.bad_time",
            MamError::BadSet(_) => "mam.bad_set",
            MamError::IndexUnsupported => "mam.index_unsupported",
        }
    }

    /// The XMPP stanza error condition.
    pub fn condition(&self) -> &'static str {
        match self {
            MamError::UnsupportedField(_) | MamError::IndexUnsupported => "feature-not-implemented",
            _ => "bad-request",
        }
    }
}

fn cut(s: &str) -> String {
    s.chars().take(64).collect()
}

fn bounded_id(s: String) -> Result<String, MamError> {
    if s.len() > MAX_ID_BYTES {
        return Err(MamError::BadSet("an id is too long"));
    }
    Ok(s)
}

/// Parses an archive query: the `<iq/>` or its `<query xmlns='urn:xmpp:mam:2'/>`.
pub fn parse_query(el: &Element) -> Result<MamQuery, MamError> {
    let query = if el.name == "query" && el.ns == NS_MAM {
        el
    } else {
        el.get_child("query", NS_MAM).ok_or(MamError::NotAQuery)?
    };
    let mut q = MamQuery {
        query_id: match query.get_attr("queryid") {
            Some(id) if id.len() > MAX_ID_BYTES => {
                return Err(MamError::BadSet("the queryid is too long"))
            }
            id => id.map(str::to_owned),
        },
        ..MamQuery::default()
    };
    if let Some(x) = query.get_child("x", dataform::NS_DATA) {
        read_form(&dataform::parse(x)?, &mut q)?;
    }
    if let Some(set) = query.get_child("set", NS_RSM) {
        read_set(set, &mut q)?;
    }
    Ok(q)
}

fn read_form(form: &DataForm, q: &mut MamQuery) -> Result<(), MamError> {
    if form.kind != FormType::Submit {
        return Err(MamError::WrongForm(format!("type {}", form.kind.as_str())));
    }
    if let Some(t) = &form.form_type {
        if t != NS_MAM {
            return Err(MamError::WrongForm(cut(t)));
        }
    }
    for field in &form.fields {
        match field.var.as_deref() {
            Some("with" | "start" | "end") | None => {}
            Some(other) => return Err(MamError::UnsupportedField(cut(other))),
        }
    }
    if let Some(jid) = form.value("with")? {
        q.with = Some(bare_address(jid)?);
    }
    q.start = time(form, "start")?;
    q.end = time(form, "end")?;
    Ok(())
}

/// The `xmpp:` address of a JID's bare part.
pub fn bare_address(jid: &str) -> Result<Address, MamError> {
    let jid = jid.trim();
    let bare = jid.split_once('/').map_or(jid, |(bare, _)| bare);
    if !bare.contains('@') {
        return Err(MamError::BadWith(cut(jid)));
    }
    Address::parse(&format!("xmpp:{bare}")).map_err(|_| MamError::BadWith(cut(jid)))
}

fn time(form: &DataForm, var: &'static str) -> Result<Option<DateTime<Utc>>, MamError> {
    match form.value(var)? {
        None => Ok(None),
        Some(v) => DateTime::parse_from_rfc3339(v.trim())
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| MamError::BadTime { var, value: cut(v) }),
    }
}

fn read_set(set: &Element, q: &mut MamQuery) -> Result<(), MamError> {
    for child in set.elements().filter(|e| e.ns == NS_RSM) {
        match child.name.as_str() {
            "max" => {
                let n: usize = child
                    .text_content()
                    .trim()
                    .parse()
                    .map_err(|_| MamError::BadSet("max is not a number"))?;
                q.max = n.min(MAX_PAGE);
            }
            "after" => {
                let id = child.text_content();
                if id.is_empty() {
                    return Err(MamError::BadSet("an empty after"));
                }
                q.after = Some(bounded_id(id)?);
            }
            "before" => q.before = Some(bounded_id(child.text_content())?),
            "index" => return Err(MamError::IndexUnsupported),
            _ => {}
        }
    }
    Ok(())
}

/// An XEP-0082 date and time: whole seconds, or milliseconds when there are any.
pub fn stamp(at: &DateTime<Utc>) -> String {
    let format = if at.nanosecond() == 0 {
        SecondsFormat::Secs
    } else {
        SecondsFormat::Millis
    };
    at.to_rfc3339_opts(format, true)
}

/// The `<query/>` answering a form request (`<iq type='get'><query/></iq>`): the
/// fields this archive supports.
pub fn query_form() -> Element {
    let mut form = DataForm::new(FormType::Form);
    form.form_type = Some(NS_MAM.into());
    form.fields = vec![
        Field::new("with", FieldType::JidSingle),
        Field::new("start", FieldType::TextSingle),
        Field::new("end", FieldType::TextSingle),
    ];
    Element::new("query", NS_MAM).child(form.to_element())
}

/// One result: the archived message forwarded to `to` (the querier's full JID) from the
/// room's archive `room_jid`, as the room sent it, `from` the author's occupant JID
/// (`room_jid/nick`, the nickname from `nick`).
pub fn result_message(
    to: &str,
    room_jid: &str,
    query_id: Option<&str>,
    message: &ArchivedMessage,
    nick: impl Fn(&Address) -> String,
) -> Element {
    let mut result = Element::new("result", NS_MAM);
    if let Some(q) = query_id {
        result.set_attr("queryid", q);
    }
    result.set_attr("id", &message.id);
    let inner = Element::new("message", NS_CLIENT)
        .attr("from", &format!("{room_jid}/{}", nick(&message.from)))
        .attr("type", "groupchat")
        .attr("id", &message.id)
        .child(Element::new("body", NS_CLIENT).text(&message.body));
    let forwarded = Element::new("forwarded", NS_FORWARD)
        .child(Element::new("delay", NS_DELAY).attr("stamp", &stamp(&message.at)))
        .child(inner);
    Element::new("message", NS_COMPONENT)
        .attr("from", room_jid)
        .attr("to", to)
        .child(result.child(forwarded))
}

/// The IQ result that ends the query `iq` (sent after the results): `<fin/>` with
/// `complete='true'` on the last page, and the page's first and last ids (and the
/// count, when known).
pub fn fin(iq: &Element, page: &MamPage) -> Element {
    let out = crate::muc::stanzas::iq_result(iq);
    let mut set = Element::new("set", NS_RSM);
    if let Some(first) = &page.first {
        set = set.child(Element::new("first", NS_RSM).text(first));
    }
    if let Some(last) = &page.last {
        set = set.child(Element::new("last", NS_RSM).text(last));
    }
    if let Some(count) = page.count {
        set = set.child(Element::new("count", NS_RSM).text(&count.to_string()));
    }
    let mut fin = Element::new("fin", NS_MAM);
    if page.complete {
        fin.set_attr("complete", "true");
    }
    out.child(fin.child(set))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::xml::parse_element;

    fn el(xml: &str) -> Element {
        parse_element(xml, NS_COMPONENT, &[]).unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn addr(s: &str) -> Address {
        Address::parse(s).unwrap()
    }

    #[test]
    fn the_xep_queries_parse() {
        // XEP-0313 "A user queries their archive for messages".
        let q = parse_query(&el(
            "<iq type='set' id='juliet1'><query xmlns='urn:xmpp:mam:2' queryid='f27'/></iq>",
        ))
        .unwrap();
        assert_eq!(
            q,
            MamQuery {
                query_id: Some("f27".into()),
                ..MamQuery::default()
            }
        );
        // "Querying for all messages to/from a particular JID".
        let q = parse_query(&el(
            "<iq type='set' id='juliet1'><query xmlns='urn:xmpp:mam:2'>\
            <x xmlns='jabber:x:data' type='submit'>\
            <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>\
            <field var='with'><value>juliet@capulet.lit</value></field>\
            </x></query></iq>",
        ))
        .unwrap();
        assert_eq!(q.with, Some(addr("xmpp:juliet@capulet.lit")));
        // "Querying the archive for all messages in a certain timespan".
        let q = parse_query(&el(
            "<iq type='set' id='juliet1'><query xmlns='urn:xmpp:mam:2'>\
            <x xmlns='jabber:x:data' type='submit'>\
            <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>\
            <field var='start'><value>2010-06-07T00:00:00Z</value></field>\
            <field var='end'><value>2010-07-07T13:23:54Z</value></field>\
            </x></query></iq>",
        ))
        .unwrap();
        assert_eq!(q.start, Some(at("2010-06-07T00:00:00Z")));
        assert_eq!(q.end, Some(at("2010-07-07T13:23:54Z")));
        // "A page query using Result Set Management".
        let q = parse_query(&el("<iq type='set' id='q29303'><query xmlns='urn:xmpp:mam:2'>\
            <x xmlns='jabber:x:data' type='submit'>\
            <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>\
            <field var='start'><value>2010-08-07T00:00:00Z</value></field>\
            </x>\
            <set xmlns='http://jabber.org/protocol/rsm'><max>10</max><after>09af3-cc343-b409f</after></set>\
            </query></iq>")).unwrap();
        assert_eq!(q.max, 10);
        assert_eq!(q.after.as_deref(), Some("09af3-cc343-b409f"));
        assert_eq!(q.before, None);
        // "A request for the last page in an archive".
        let q = parse_query(&el(
            "<iq type='set' id='q29303'><query xmlns='urn:xmpp:mam:2'>\
            <set xmlns='http://jabber.org/protocol/rsm'><max>10</max><before/></set>\
            </query></iq>",
        ))
        .unwrap();
        assert_eq!(q.before.as_deref(), Some(""));
        // The query element alone parses too.
        assert!(parse_query(&el("<query xmlns='urn:xmpp:mam:2'/>")).is_ok());
    }

    #[test]
    fn with_is_a_bare_jid_and_times_take_offsets() {
        assert_eq!(
            bare_address("Juliet@Capulet.lit/balcony"),
            Ok(addr("xmpp:juliet@capulet.lit"))
        );
        assert_eq!(
            bare_address("capulet.lit").unwrap_err().code(),
            "mam.bad_with"
        );
        assert_eq!(
            bare_address("a b@capulet.lit").unwrap_err().code(),
            "mam.bad_with"
        );
        let q = parse_query(&el(
            "<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='submit'>\
            <field var='start'><value>2010-06-07T02:00:00.250+02:00</value></field></x></query>",
        ))
        .unwrap();
        assert_eq!(q.start, Some(at("2010-06-07T00:00:00.250Z")));
    }

    #[test]
    fn bad_queries_are_refused_with_a_condition() {
        let form = |fields: &str| {
            format!("<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='submit'>{fields}</x></query>")
        };
        let set = |inner: &str| {
            format!("<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'>{inner}</set></query>")
        };
        let long = "a".repeat(MAX_ID_BYTES + 1);
        let cases = [
            (
                "<iq type='set'><query xmlns='urn:xmpp:mam:1'/></iq>".to_owned(),
                "mam.not_a_query",
                "bad-request",
            ),
            (
                form("<field var='after-id'><value>x</value></field>"),
                "mam.unsupported_field",
                "feature-not-implemented",
            ),
            (
                form("<field var='ids'><value>x</value></field>"),
                "mam.unsupported_field",
                "feature-not-implemented",
            ),
            (
                form("<field var='FORM_TYPE'><value>urn:xmpp:mam:1</value></field>"),
                "mam.wrong_form",
                "bad-request",
            ),
            (
                form("<field var='with'><value>capulet.lit</value></field>"),
                "mam.bad_with",
                "bad-request",
            ),
            (
                form("<field var='start'><value>yesterday</value></field>"),
                "mam.bad_time",
                "bad-request",
            ),
            (
                form("<field var='end'><value>2010-07-07</value></field>"),
                "mam.bad_time",
                "bad-request",
            ),
            (
                form("<field var='with'><value>a@b</value><value>c@d</value></field>"),
                "form.multiple_values",
                "bad-request",
            ),
            (
                "<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='form'/></query>"
                    .to_owned(),
                "mam.wrong_form",
                "bad-request",
            ),
            (set("<max>ten</max>"), "mam.bad_set", "bad-request"),
            (set("<max>-1</max>"), "mam.bad_set", "bad-request"),
            (set("<after/>"), "mam.bad_set", "bad-request"),
            (
                set(&format!("<before>{long}</before>")),
                "mam.bad_set",
                "bad-request",
            ),
            (
                set("<index>3</index>"),
                "mam.index_unsupported",
                "feature-not-implemented",
            ),
            (
                format!("<query xmlns='urn:xmpp:mam:2' queryid='{long}'/>"),
                "mam.bad_set",
                "bad-request",
            ),
        ];
        for (xml, code, condition) in cases {
            let err = parse_query(&el(&xml)).unwrap_err();
            assert_eq!((err.code(), err.condition()), (code, condition), "{xml}");
        }
    }

    #[test]
    fn max_is_capped() {
        let q = parse_query(&el("<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><max>100000</max></set></query>")).unwrap();
        assert_eq!(q.max, MAX_PAGE);
        let q = parse_query(&el("<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><max>0</max></set></query>")).unwrap();
        assert_eq!(q.max, 0);
    }

    fn message() -> ArchivedMessage {
        ArchivedMessage {
            seq: 7,
            id: "28482-98726-73623".into(),
            at: at("2010-07-10T23:08:25Z"),
            from: addr("xmpp:witch@shakespeare.lit"),
            body: "Hail to thee".into(),
        }
    }

    #[test]
    fn a_result_is_the_forwarded_groupchat_message() {
        let m = message();
        let out = result_message(
            "juliet@capulet.lit/chamber",
            "coven@chat.shakespeare.lit",
            Some("f27"),
            &m,
            |a: &Address| a.local().to_owned(),
        );
        assert_eq!(
            out.to_xml(NS_COMPONENT),
            "<message from='coven@chat.shakespeare.lit' to='juliet@capulet.lit/chamber'>\
             <result xmlns='urn:xmpp:mam:2' queryid='f27' id='28482-98726-73623'>\
             <forwarded xmlns='urn:xmpp:forward:0'>\
             <delay xmlns='urn:xmpp:delay' stamp='2010-07-10T23:08:25Z'/>\
             <message xmlns='jabber:client' from='coven@chat.shakespeare.lit/witch' type='groupchat' id='28482-98726-73623'>\
             <body>Hail to thee</body></message></forwarded></result></message>"
        );
        // Without a queryid there is none; bodies are escaped.
        let mut m = m;
        m.body = "a <b> & 'c'".into();
        let xml =
            result_message("j@c/x", "r@c", None, &m, |_: &Address| "n".into()).to_xml(NS_COMPONENT);
        assert!(!xml.contains("queryid"));
        assert!(
            xml.contains("<body>a &lt;b&gt; &amp; &apos;c&apos;</body>"),
            "{xml}"
        );
        // What is sent parses back.
        assert!(parse_element(&xml, NS_COMPONENT, &[]).is_ok());
    }

    #[test]
    fn fin_ends_the_query() {
        let iq = el("<iq type='set' id='juliet1' from='juliet@capulet.lit/chamber' to='coven@chat.shakespeare.lit'><query xmlns='urn:xmpp:mam:2'/></iq>");
        let page = MamPage {
            messages: vec![],
            complete: true,
            first: Some("28482-98726-73623".into()),
            last: Some("09af3-cc343-b409f".into()),
            count: Some(16),
        };
        assert_eq!(
            fin(&iq, &page).to_xml(NS_COMPONENT),
            "<iq type='result' from='coven@chat.shakespeare.lit' to='juliet@capulet.lit/chamber' id='juliet1'>\
             <fin xmlns='urn:xmpp:mam:2' complete='true'>\
             <set xmlns='http://jabber.org/protocol/rsm'>\
             <first>28482-98726-73623</first><last>09af3-cc343-b409f</last><count>16</count>\
             </set></fin></iq>"
        );
        let empty = MamPage {
            messages: vec![],
            complete: false,
            first: None,
            last: None,
            count: None,
        };
        assert_eq!(
            fin(&iq, &empty).to_xml(NS_COMPONENT),
            "<iq type='result' from='coven@chat.shakespeare.lit' to='juliet@capulet.lit/chamber' id='juliet1'>\
             <fin xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'/></fin></iq>"
        );
    }

    #[test]
    fn the_form_request_lists_the_mandatory_fields() {
        let q = query_form();
        let form = dataform::parse(q.get_child("x", dataform::NS_DATA).unwrap()).unwrap();
        assert_eq!(form.form_type.as_deref(), Some(NS_MAM));
        let vars: Vec<(&str, FieldType)> = form
            .fields
            .iter()
            .map(|f| (f.var.as_deref().unwrap_or(""), f.kind))
            .collect();
        assert_eq!(
            vars,
            [
                ("with", FieldType::JidSingle),
                ("start", FieldType::TextSingle),
                ("end", FieldType::TextSingle)
            ]
        );
    }

    #[test]
    fn stamps_are_xep_0082() {
        assert_eq!(stamp(&at("2002-10-13T23:58:37Z")), "2002-10-13T23:58:37Z");
        assert_eq!(
            stamp(&at("2002-10-13T23:58:37.123456Z")),
            "2002-10-13T23:58:37.123Z"
        );
    }
}
