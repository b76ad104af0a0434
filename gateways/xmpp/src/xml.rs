//! A small owned element tree for stanzas: parsed from one framed stanza with
//! quick-xml, written back with escaping. Namespaces are resolved to URIs on parse
//! (prefixes are not kept), which is all the core needs to match payloads.

use std::fmt::Write as _;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use crate::error::XmppError;

/// Deepest nesting accepted in a stanza; real stanzas stay under ten.
pub const MAX_DEPTH: usize = 32;

/// An element with its namespace URI, attributes (unprefixed names only; namespace
/// declarations dropped) and children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// Local name.
    pub name: String,
    /// Namespace URI.
    pub ns: String,
    /// Attributes in document order.
    pub attrs: Vec<(String, String)>,
    /// Child nodes.
    pub children: Vec<Node>,
}

/// A child: an element or text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A child element.
    Element(Element),
    /// Character data (unescaped).
    Text(String),
}

impl Element {
    /// An empty element.
    pub fn new(name: &str, ns: &str) -> Self {
        Element {
            name: name.to_owned(),
            ns: ns.to_owned(),
            attrs: Vec::new(),
            children: Vec::new(),
        }
    }

    /// Builder: sets an attribute.
    pub fn attr(mut self, key: &str, value: &str) -> Self {
        self.set_attr(key, value);
        self
    }

    /// Builder: adds a child element.
    pub fn child(mut self, child: Element) -> Self {
        self.children.push(Node::Element(child));
        self
    }

    /// Builder: adds text (nothing for an empty string, which would not survive a
    /// round trip through XML).
    pub fn text(mut self, text: &str) -> Self {
        if !text.is_empty() {
            self.children.push(Node::Text(text.to_owned()));
        }
        self
    }

    /// Sets or replaces an attribute.
    pub fn set_attr(&mut self, key: &str, value: &str) {
        match self.attrs.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value.to_owned(),
            None => self.attrs.push((key.to_owned(), value.to_owned())),
        }
    }

    /// An attribute's value.
    pub fn get_attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Child elements.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// The first child element with this name and namespace.
    pub fn get_child(&self, name: &str, ns: &str) -> Option<&Element> {
        self.elements().find(|e| e.name == name && e.ns == ns)
    }

    /// All text directly inside.
    pub fn text_content(&self) -> String {
        let mut s = String::new();
        for n in &self.children {
            if let Node::Text(t) = n {
                s.push_str(t);
            }
        }
        s
    }

    /// Serializes the element; `parent_ns` is the namespace in scope, so that an
    /// `xmlns` is written only where it changes (stanzas inherit the stream's).
    pub fn to_xml(&self, parent_ns: &str) -> String {
        let mut out = String::new();
        self.write(&mut out, parent_ns);
        out
    }

    fn write(&self, out: &mut String, parent_ns: &str) {
        out.push('<');
        out.push_str(&self.name);
        if self.ns != parent_ns {
            let _ = write!(out, " xmlns='{}'", escape(&self.ns));
        }
        for (k, v) in &self.attrs {
            let _ = write!(out, " {}='{}'", k, escape(v));
        }
        if self.children.is_empty() {
            out.push_str("/>");
            return;
        }
        out.push('>');
        for n in &self.children {
            match n {
                Node::Element(e) => e.write(out, &self.ns),
                Node::Text(t) => out.push_str(&escape(t)),
            }
        }
        out.push_str("</");
        out.push_str(&self.name);
        out.push('>');
    }
}

/// Escapes text and attribute values (quotes both kinds, so either quoting works).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            // Line ends a parser normalizes (to `\n`) or that attribute values fold
            // (to a space) travel as references, so text comes back as it was sent.
            '\r' => out.push_str("&#xD;"),
            '\n' => out.push_str("&#xA;"),
            '\t' => out.push_str("&#x9;"),
            '\u{85}' => out.push_str("&#x85;"),
            '\u{2028}' => out.push_str("&#x2028;"),
            c => out.push(c),
        }
    }
    out
}

/// The namespace declarations of one open element.
struct Scope {
    default: Option<String>,
    prefixes: Vec<(String, String)>,
}

/// Parses one stanza (exactly one root element); `stream_ns` is the default namespace
/// the stream declared and `stream_prefixes` its prefix declarations (`stream`).
pub fn parse_element(
    text: &str,
    stream_ns: &str,
    stream_prefixes: &[(String, String)],
) -> Result<Element, XmppError> {
    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(false);
    let mut scopes: Vec<Scope> = vec![Scope {
        default: Some(stream_ns.to_owned()),
        prefixes: stream_prefixes.to_vec(),
    }];
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| XmppError::Malformed(e.to_string()))?;
        match event {
            Event::Start(_) | Event::Empty(_) if root.is_some() => {
                return Err(XmppError::Malformed("more than one root element".into()));
            }
            Event::Start(s) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(XmppError::TooDeep(MAX_DEPTH));
                }
                let (el, scope) = open(&s, &scopes)?;
                scopes.push(scope);
                stack.push(el);
            }
            Event::Empty(s) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(XmppError::TooDeep(MAX_DEPTH));
                }
                let (el, _) = open(&s, &scopes)?;
                finish(el, &mut stack, &mut root);
            }
            Event::End(_) => {
                let el = stack
                    .pop()
                    .ok_or_else(|| XmppError::Malformed("unbalanced end tag".into()))?;
                scopes.pop();
                finish(el, &mut stack, &mut root);
            }
            Event::Text(t) => {
                let s = t
                    .xml_content()
                    .map_err(|e| XmppError::Malformed(e.to_string()))?;
                push_text(&mut stack, &s)?;
            }
            Event::CData(c) => {
                let s = c
                    .decode()
                    .map_err(|e| XmppError::Malformed(e.to_string()))?;
                push_text(&mut stack, &s)?;
            }
            Event::GeneralRef(r) => {
                let s = if r.is_char_ref() {
                    r.resolve_char_ref()
                        .map_err(|e| XmppError::Malformed(e.to_string()))?
                        .map(String::from)
                } else {
                    let name = r
                        .decode()
                        .map_err(|e| XmppError::Malformed(e.to_string()))?;
                    quick_xml::escape::resolve_predefined_entity(&name).map(str::to_owned)
                };
                let s = s.ok_or_else(|| XmppError::Malformed("unknown entity".into()))?;
                push_text(&mut stack, &s)?;
            }
            // RFC 6120 §11.1: no comments, processing instructions or DTDs in a stream.
            Event::Comment(_) | Event::PI(_) | Event::DocType(_) | Event::Decl(_) => {
                return Err(XmppError::Malformed(
                    "comment, processing instruction or DTD in a stanza".into(),
                ));
            }
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(XmppError::Malformed("unclosed element".into()));
    }
    root.ok_or_else(|| XmppError::Malformed("no element".into()))
}

fn finish(el: Element, stack: &mut [Element], root: &mut Option<Element>) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(Node::Element(el)),
        None => *root = Some(el),
    }
}

fn push_text(stack: &mut [Element], s: &str) -> Result<(), XmppError> {
    match stack.last_mut() {
        Some(parent) => {
            if let Some(Node::Text(t)) = parent.children.last_mut() {
                t.push_str(s);
            } else {
                parent.children.push(Node::Text(s.to_owned()));
            }
            Ok(())
        }
        None if s.trim().is_empty() => Ok(()),
        None => Err(XmppError::Malformed("text outside the stanza".into())),
    }
}

fn open(s: &BytesStart<'_>, scopes: &[Scope]) -> Result<(Element, Scope), XmppError> {
    let bad = |e: &dyn std::fmt::Display| XmppError::Malformed(e.to_string());
    let qname = std::str::from_utf8(s.name().as_ref())
        .map_err(|e| bad(&e))?
        .to_owned();
    let mut scope = Scope {
        default: None,
        prefixes: Vec::new(),
    };
    let mut attrs = Vec::new();
    for a in s.attributes() {
        let a = a.map_err(|e| bad(&e))?;
        let key = std::str::from_utf8(a.key.as_ref())
            .map_err(|e| bad(&e))?
            .to_owned();
        let value = a
            .decode_and_unescape_value(s.decoder())
            .map_err(|e| bad(&e))?
            .into_owned();
        if key == "xmlns" {
            scope.default = Some(value);
        } else if let Some(p) = key.strip_prefix("xmlns:") {
            scope.prefixes.push((p.to_owned(), value));
        } else if !key.contains(':') {
            attrs.push((key, value));
        }
        // Prefixed attributes (xml:lang and extensions) are not needed by the core.
    }
    let lookup_prefix = |p: &str| -> Option<String> {
        scope
            .prefixes
            .iter()
            .chain(scopes.iter().rev().flat_map(|s| s.prefixes.iter()))
            .find(|(k, _)| k == p)
            .map(|(_, v)| v.clone())
    };
    let (name, ns) = match qname.split_once(':') {
        Some((prefix, local)) => {
            let ns = lookup_prefix(prefix)
                .ok_or_else(|| XmppError::Malformed(format!("unbound prefix {prefix:?}")))?;
            (local.to_owned(), ns)
        }
        None => {
            let ns = scope
                .default
                .clone()
                .or_else(|| scopes.iter().rev().find_map(|s| s.default.clone()))
                .unwrap_or_default();
            (qname, ns)
        }
    };
    Ok((
        Element {
            name,
            ns,
            attrs,
            children: Vec::new(),
        },
        scope,
    ))
}
