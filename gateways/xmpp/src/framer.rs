//! Cuts the server's byte stream into the stream header, whole stanzas and the stream
//! end, without parsing them: a bounded buffer and a scan that resumes where it
//! stopped, so a slow or hostile sender costs at most [`MAX_STANZA`] bytes and linear
//! time.

use crate::error::XmppError;

/// The largest stanza (or stream header) accepted; more closes the connection.
pub const MAX_STANZA: usize = 64 * 1024;

/// One unit of the server's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// The `<stream:stream …>` opening tag, as written (without its closing).
    StreamOpen(String),
    /// One complete top-level element inside the stream.
    Stanza(String),
    /// `</stream:stream>`.
    StreamClose,
}

/// Incremental framer; push bytes in, take frames out.
#[derive(Debug, Default)]
pub struct Framer {
    buf: Vec<u8>,
    /// Where scanning resumes (a tag start or text).
    pos: usize,
    /// Element depth inside the current stanza.
    depth: usize,
    /// Whether the stream header was seen.
    opened: bool,
    /// Whether a stanza has started at buffer offset 0.
    in_stanza: bool,
    /// Inside an incomplete tag starting at `pos`: where its scan resumes and the quote
    /// open there, so that a tag trickling in byte by byte is scanned once.
    partial: Option<(usize, Option<u8>)>,
}

enum Tag {
    Open,
    Close,
    SelfClosed,
    Decl,
}

impl Framer {
    /// A framer before the stream header.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes. Call [`Framer::next_frame`] until it returns `None`
    /// after each push, so that the buffer never holds more than one partial stanza.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, `None` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, XmppError> {
        loop {
            if !self.in_stanza {
                // Between frames: skip whitespace (keepalives) and drop it.
                let skip = self
                    .buf
                    .iter()
                    .take_while(|b| b.is_ascii_whitespace())
                    .count();
                self.buf.drain(..skip);
                self.pos = 0;
                match self.buf.first() {
                    None => return Ok(None),
                    Some(b'<') => {}
                    Some(_) => return Err(XmppError::Malformed("text between stanzas".into())),
                }
            }
            if self.in_stanza && self.partial.is_none() {
                // Inside a stanza, between tags: skip text up to the next tag.
                match self
                    .buf
                    .get(self.pos..)
                    .and_then(|rest| rest.iter().position(|b| *b == b'<'))
                {
                    Some(i) => self.pos += i,
                    None => {
                        self.pos = self.buf.len();
                        return self.incomplete();
                    }
                }
            }
            let Some((kind, end)) = self.scan_tag(self.pos)? else {
                return self.incomplete();
            };
            if !self.opened {
                match kind {
                    Tag::Decl => {
                        self.buf.drain(..end);
                        continue;
                    }
                    Tag::Open => {
                        let head = self.take(end)?;
                        if !head.starts_with("<stream:stream") {
                            return Err(XmppError::BadStreamHeader(
                                "the stream does not open with <stream:stream>".into(),
                            ));
                        }
                        self.opened = true;
                        return Ok(Some(Frame::StreamOpen(head)));
                    }
                    Tag::Close | Tag::SelfClosed => {
                        return Err(XmppError::BadStreamHeader("no stream header".into()))
                    }
                }
            }
            match kind {
                Tag::Decl => {
                    return Err(XmppError::Malformed(
                        "comment, processing instruction or DTD in the stream".into(),
                    ))
                }
                Tag::Close if self.depth == 0 => {
                    let tag = self.take(end)?;
                    if tag.split_whitespace().collect::<String>() != "</stream:stream>" {
                        return Err(XmppError::Malformed(format!("unexpected {tag}")));
                    }
                    return Ok(Some(Frame::StreamClose));
                }
                Tag::Close => self.depth -= 1,
                Tag::Open => self.depth += 1,
                Tag::SelfClosed => {}
            }
            self.in_stanza = true;
            self.pos = end;
            if end > MAX_STANZA {
                return Err(XmppError::StanzaTooLarge { limit: MAX_STANZA });
            }
            if self.depth == 0 {
                self.in_stanza = false;
                let stanza = self.take(end)?;
                self.pos = 0;
                return Ok(Some(Frame::Stanza(stanza)));
            }
        }
    }

    fn incomplete(&self) -> Result<Option<Frame>, XmppError> {
        if self.buf.len() > MAX_STANZA {
            return Err(XmppError::StanzaTooLarge { limit: MAX_STANZA });
        }
        Ok(None)
    }

    /// Removes the first `end` bytes as text.
    fn take(&mut self, end: usize) -> Result<String, XmppError> {
        let bytes: Vec<u8> = self.buf.drain(..end).collect();
        String::from_utf8(bytes).map_err(|_| XmppError::Malformed("invalid UTF-8".into()))
    }

    /// The tag starting at `at` (which holds `<`): its kind and the offset just past it,
    /// `None` when it is not complete yet. Quoted attribute values may hold `>`.
    fn scan_tag(&mut self, at: usize) -> Result<Option<(Tag, usize)>, XmppError> {
        let (resume, quote) = self.partial.take().unwrap_or((at + 1, None));
        self.scan_from(at, resume, quote)
    }

    fn scan_from(
        &mut self,
        at: usize,
        resume: usize,
        mut quote: Option<u8>,
    ) -> Result<Option<(Tag, usize)>, XmppError> {
        let buf = &self.buf;
        if buf.get(at) != Some(&b'<') {
            return Err(XmppError::Malformed("expected a tag".into()));
        }
        let Some(&second) = buf.get(at + 1) else {
            return Ok(None);
        };
        if second == b'?' || second == b'!' {
            // Declarations, comments, CDATA: only the XML declaration before the header
            // is expected; find its end plainly (`>`), the caller refuses the others.
            return Ok(buf
                .get(at..)
                .and_then(|rest| rest.iter().position(|b| *b == b'>'))
                .map(|i| (Tag::Decl, at + i + 1)));
        }
        let mut i = resume.max(at + 1);
        while let Some(&b) = buf.get(i) {
            match quote {
                Some(q) if b == q => quote = None,
                Some(_) => {}
                None if b == b'"' || b == b'\'' => quote = Some(b),
                None if b == b'<' => return Err(XmppError::Malformed("'<' inside a tag".into())),
                None if b == b'>' => {
                    let kind = if second == b'/' {
                        Tag::Close
                    } else if i > at + 1 && buf.get(i - 1) == Some(&b'/') {
                        Tag::SelfClosed
                    } else {
                        Tag::Open
                    };
                    return Ok(Some((kind, i + 1)));
                }
                None => {}
            }
            i += 1;
        }
        self.partial = Some((i, quote));
        Ok(None)
    }
}
