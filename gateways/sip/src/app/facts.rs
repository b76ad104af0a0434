//! What the gateway reads from a request, read once: who sends it, what it names, and
//! the headers its handlers need.
//!
//! The wire layer already checked that the mandatory headers are there and parse;
//! anything else that is missing or unreadable here is a `400` with a reason, never a
//! panic.

use conclave_engine::ids::Address;
use rsip::message::HeadersExt;
use rsip::prelude::{ToTypedHeader, UntypedHeader};

/// The facts of one request.
#[derive(Debug, Clone)]
pub struct Facts {
    pub method: rsip::Method,
    /// The Request-URI's user part (empty when it has none) and host.
    pub ruri_user: String,
    pub ruri_host: String,
    /// The sender: the From URI as an identity (`sip:user@host`, no port or parameters).
    pub from: Address,
    /// The From header as sent (for the To of requests we send back in a dialog).
    pub from_header: String,
    pub from_tag: Option<String>,
    pub to_header: String,
    pub to_tag: Option<String>,
    pub call_id: String,
    pub cseq: u32,
    /// The media type of the body, lowercased, without parameters.
    pub content_type: Option<String>,
    /// The first Contact's URI (`<...>` stripped), if any.
    pub contact: Option<String>,
    /// Option tags of `Require`.
    pub require: Vec<String>,
    /// Option tags of `Supported`.
    pub supported: Vec<String>,
    /// `Record-Route` values in order (a UAS's route set, RFC 3261 §12.1.1).
    pub record_route: Vec<String>,
}

/// Why facts could not be read (a `400 Bad Request` with this text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FactsError(pub String);

impl Facts {
    pub fn read(req: &rsip::Request) -> Result<Facts, FactsError> {
        let bad = |what: &str| FactsError(what.to_owned());
        let from_h = req.from_header().map_err(|_| bad("missing From"))?;
        let from = from_h.typed().map_err(|_| bad("unreadable From"))?;
        let to_h = req.to_header().map_err(|_| bad("missing To"))?;
        let to = to_h.typed().map_err(|_| bad("unreadable To"))?;
        let call_id = req
            .call_id_header()
            .map_err(|_| bad("missing Call-ID"))?
            .value()
            .trim()
            .to_owned();
        let cseq = req
            .cseq_header()
            .map_err(|_| bad("missing CSeq"))?
            .typed()
            .map_err(|_| bad("unreadable CSeq"))?
            .seq;
        let identity = identity_of(&from.uri).ok_or_else(|| bad("From is not a sip: user"))?;
        let from_tag = from.tag().map(|t| t.value().to_owned());
        let to_tag = to.tag().map(|t| t.value().to_owned());
        let ruri_user = req.uri.user().unwrap_or_default().to_owned();
        let ruri_host = host_string(&req.uri);
        let mut content_type = None;
        let mut contact = None;
        let mut require = Vec::new();
        let mut supported = Vec::new();
        let mut record_route = Vec::new();
        for h in req.headers.iter() {
            let (name, value) = split_header(h);
            match name.to_ascii_lowercase().as_str() {
                "content-type" | "c" => {
                    content_type = Some(
                        value
                            .split(';')
                            .next()
                            .unwrap_or_default()
                            .trim()
                            .to_ascii_lowercase(),
                    )
                }
                "contact" | "m" if contact.is_none() => contact = Some(contact_uri(&value)),
                "require" => require.extend(tags(&value)),
                "supported" | "k" => supported.extend(tags(&value)),
                "record-route" => record_route.extend(
                    value
                        .split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty()),
                ),
                _ => {}
            }
        }
        Ok(Facts {
            method: req.method,
            ruri_user,
            ruri_host,
            from: identity,
            from_header: from_h.value().to_owned(),
            from_tag,
            to_header: to_h.value().to_owned(),
            to_tag,
            call_id,
            cseq,
            content_type,
            contact,
            require,
            supported,
            record_route,
        })
    }

    /// The body as text, if it is UTF-8.
    pub fn text(req: &rsip::Request) -> Option<&str> {
        std::str::from_utf8(&req.body).ok()
    }
}

/// The values of every header called `name` (or its compact form), in order.
pub fn header_values(headers: &rsip::Headers, name: &str, compact: Option<&str>) -> Vec<String> {
    headers
        .iter()
        .filter_map(|h| {
            let (n, v) = split_header(h);
            let hit =
                n.eq_ignore_ascii_case(name) || compact.is_some_and(|c| n.eq_ignore_ascii_case(c));
            hit.then_some(v)
        })
        .collect()
}

/// A header's name and value, whatever rsip made of it.
pub fn split_header(h: &rsip::Header) -> (String, String) {
    let text = h.to_string();
    match text.split_once(':') {
        Some((n, v)) => (n.trim().to_owned(), v.trim().to_owned()),
        None => (text.trim().to_owned(), String::new()),
    }
}

/// `sip:user@host` for a URI with a user part; `None` otherwise (or not a valid
/// identity).
pub fn identity_of(uri: &rsip::Uri) -> Option<Address> {
    let user = uri.user()?;
    if user.is_empty() {
        return None;
    }
    let host = host_string(uri);
    Address::parse(&format!("sip:{user}@{host}")).ok()
}

/// The host of a URI as text (IPv6 without brackets, lowercased).
pub fn host_string(uri: &rsip::Uri) -> String {
    uri.host()
        .to_string()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

/// The URI inside a Contact or route value (`"Bob" <sip:b@h;transport=tcp>;expires=60`
/// gives `sip:b@h;transport=tcp`).
pub fn contact_uri(value: &str) -> String {
    match (value.find('<'), value.find('>')) {
        (Some(a), Some(b)) if a < b => value[a + 1..b].trim().to_owned(),
        _ => value
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned(),
    }
}

fn tags(value: &str) -> impl Iterator<Item = String> + '_ {
    value
        .split(',')
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
}
