//! Chat: post a message to a room. Bodies are personal content: the codec stores them in
//! the journal's content side store so retention can purge them.

use super::{Cx, Decision, Rank};
use crate::event::EventKind;
use crate::ids::{MessageId, RoomName};
use crate::rejection::Rejection;

pub(super) fn post(cx: &Cx<'_>, name: &RoomName, body: &str) -> Decision {
    let policy = &cx.state.policy;
    let r = cx.room(name)?;
    let (address, me) = cx.person()?;
    if !r.members.contains_key(&me) {
        return Err(Rejection::NotMember.into());
    }
    let rank = cx.actor_rank(name, r);
    if rank <= Rank::Visitor {
        return Err(Rejection::VisitorCannotPost.into());
    }
    if r.config.moderated_chat && rank < Rank::Moderator {
        return Err(Rejection::ChatModerated.into());
    }
    // Mumble text-message-length: the limit applies to what was sent.
    let len = body.chars().count();
    if len > policy.text_message_length as usize {
        return Err(Rejection::MessageTooLong {
            len: u32::try_from(len).unwrap_or(u32::MAX),
            max: policy.text_message_length,
        }
        .into());
    }
    let clean = if policy.allow_html {
        body.to_owned()
    } else {
        strip_html(body)
    };
    if clean.trim().is_empty() {
        return Err(Rejection::MessageEmpty.into());
    }
    let html_stripped = clean != body;
    Ok(vec![cx.event(EventKind::MessagePosted {
        room: name.clone(),
        message: MessageId::from_stored(cx.ctx.ids.derive("message", 0)),
        from: me,
        address: address.clone(),
        body: Some(clean),
        html_stripped,
    })])
}

/// Remove HTML tags (Mumble `allow-html` off). A `<` starts a tag only when followed by
/// a letter, `/`, `!` or `?`, so "a < b" survives; `<script>` and `<style>` lose their
/// contents too; an unterminated tag is dropped. Entities are left as written: clients
/// show the text as plain text.
pub fn strip_html(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('<') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let starts_tag = after
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, '/' | '!' | '?'));
        if !starts_tag {
            out.push('<');
            rest = after;
            continue;
        }
        let Some(end) = after.find('>') else {
            rest = "";
            break;
        };
        let tag = &after[..end];
        rest = &after[end + 1..];
        let tag_name: String = tag
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        if tag_name == "script" || tag_name == "style" {
            let close = format!("</{tag_name}");
            match rest.to_ascii_lowercase().find(&close) {
                Some(i) => {
                    let tail = &rest[i..];
                    rest = tail.find('>').map_or("", |j| &tail[j + 1..]);
                }
                None => rest = "",
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::strip_html;

    #[test]
    fn strips_tags_keeps_text() {
        assert_eq!(strip_html("<b>hi</b> there"), "hi there");
        assert_eq!(strip_html("a < b and c > d"), "a < b and c > d");
        assert_eq!(strip_html("x<script>alert(1)</script>y"), "xy");
        assert_eq!(strip_html("x<STYLE>p{}</style >y"), "xy");
        assert_eq!(strip_html("open <a href='x"), "open ");
        assert_eq!(strip_html("é<i>ü</i>"), "éü");
        assert_eq!(strip_html("<"), "<");
    }
}
