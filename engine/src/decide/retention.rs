//! Retention and erasure (operator only): the `content_purge` fact that is journaled
//! before personal content is removed from the journal's side store.

use super::{Cx, Decision};
use crate::event::EventKind;
use crate::ids::Principal;
use crate::rejection::Rejection;
use chrono::{DateTime, Utc};

fn invalid(field: &'static str, reason: &str) -> Rejection {
    Rejection::InvalidInput {
        field,
        reason: reason.into(),
    }
}

pub(super) fn record_purge(
    cx: &Cx<'_>,
    subject: &Option<Principal>,
    before: &Option<DateTime<Utc>>,
    records: u64,
    up_to_seq: u64,
) -> Decision {
    cx.require_operator()?;
    match (subject, before) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(invalid(
                "subject",
                "exactly one of subject (erasure) and before (retention) is needed",
            )
            .into())
        }
        (None, Some(t)) if *t > cx.ctx.now => {
            return Err(invalid("before", "a retention cut-off cannot be in the future").into())
        }
        _ => {}
    }
    // A purge of nothing is not a fact worth journaling; the service never asks for one.
    if records == 0 {
        return Err(invalid("records", "at least one record").into());
    }
    if up_to_seq == 0 || records > up_to_seq {
        return Err(invalid(
            "up_to_seq",
            "must cover the records purged (at least `records`)",
        )
        .into());
    }
    Ok(vec![cx.event(EventKind::ContentPurged {
        subject: subject.clone(),
        before: *before,
        records,
        up_to_seq,
    })])
}
