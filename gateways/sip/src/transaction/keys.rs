//! Reading the transaction keys out of a message.

use rsip::prelude::{ToTypedHeader, UntypedHeader};
use rsip::{Header, Headers, Method};

use super::types::{ClientKey, ServerKey};
use crate::wire::{cseq, tag_of, top_via, MAGIC_COOKIE};

/// The fields the layer matches and indexes on.
#[derive(Debug, Clone)]
pub(crate) struct Info {
    pub branch: String,
    pub sent_by: String,
    pub cseq: u32,
    pub cseq_method: &'static str,
    pub call_id: String,
    pub from_tag: Option<String>,
    pub to_tag: Option<String>,
    pub max_forwards: Option<u32>,
}

/// A method's name as a `'static` key part.
pub(crate) fn method_name(method: Method) -> &'static str {
    match method {
        Method::Ack => "ACK",
        Method::Bye => "BYE",
        Method::Cancel => "CANCEL",
        Method::Info => "INFO",
        Method::Invite => "INVITE",
        Method::Message => "MESSAGE",
        Method::Notify => "NOTIFY",
        Method::Options => "OPTIONS",
        Method::PRack => "PRACK",
        Method::Publish => "PUBLISH",
        Method::Refer => "REFER",
        Method::Register => "REGISTER",
        Method::Subscribe => "SUBSCRIBE",
        Method::Update => "UPDATE",
    }
}

fn name_of(raw: &[u8]) -> Option<&'static str> {
    let s = std::str::from_utf8(raw).ok()?;
    let method: Method = s.parse().ok()?;
    let name = method_name(method);
    (name == s).then_some(name)
}

/// Reads the keys; `None` when the top Via, CSeq or Call-ID cannot be read.
pub(crate) fn info(headers: &Headers) -> Option<Info> {
    let mut via = None;
    let mut cseq_value = None;
    let mut call_id = None;
    let mut from = None;
    let mut to = None;
    let mut max_forwards = None;
    for h in headers.iter() {
        match h {
            Header::Via(v) if via.is_none() => via = Some(v.value()),
            Header::CSeq(v) if cseq_value.is_none() => cseq_value = Some(v.value()),
            Header::CallId(v) if call_id.is_none() => call_id = Some(v.value()),
            Header::From(v) if from.is_none() => from = Some(v.value()),
            Header::To(v) if to.is_none() => to = Some(v.value()),
            Header::MaxForwards(v) if max_forwards.is_none() => {
                max_forwards = v.value().trim().parse::<u32>().ok()
            }
            _ => {}
        }
    }
    let top = std::str::from_utf8(top_via(via?.as_bytes())).ok()?;
    let typed = rsip::headers::Via::new(top).typed().ok()?;
    let branch = typed.branch()?.to_string();
    if branch.is_empty() {
        return None;
    }
    let sent_by = typed.uri.host_with_port.to_string().to_ascii_lowercase();
    let (seq, method) = cseq(cseq_value?.as_bytes())?;
    Some(Info {
        branch,
        sent_by,
        cseq: seq,
        cseq_method: name_of(method)?,
        call_id: call_id?.to_string(),
        from_tag: from.and_then(tag_of).map(str::to_string),
        to_tag: to.and_then(tag_of).map(str::to_string),
        max_forwards,
    })
}

impl Info {
    /// The server key for a request of `method` (ACK maps to INVITE).
    pub fn server_key(&self, method: &'static str) -> ServerKey {
        let method = if method == "ACK" { "INVITE" } else { method };
        let legacy = (!self.branch.starts_with(MAGIC_COOKIE)).then(|| {
            (
                self.call_id.clone(),
                self.cseq,
                self.from_tag.clone().unwrap_or_default(),
            )
        });
        ServerKey {
            branch: self.branch.clone(),
            sent_by: self.sent_by.clone(),
            method,
            legacy,
        }
    }

    /// The client key of a response (branch and CSeq method).
    pub fn client_key(&self) -> ClientKey {
        ClientKey {
            branch: self.branch.clone(),
            method: self.cseq_method,
        }
    }
}
