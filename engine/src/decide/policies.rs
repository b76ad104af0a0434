//! Server policies changed at run time (operator only): server password, retention,
//! IP obfuscation, welcome text.

use super::{check_hash, check_text, Cx, Decision};
use crate::command::Command;
use crate::event::EventKind;
use crate::model::PolicyChange;
use crate::rejection::Rejection;
use crate::text::TextKind;

pub(super) fn decide(cx: &Cx<'_>, cmd: &Command) -> Decision {
    cx.require_operator()?;
    let policy = &cx.state.policy;
    use Command as C;
    let change = match cmd {
        C::SetServerPassword { hash } => {
            if let Some(h) = hash {
                check_hash("hash", h)?;
            }
            if &policy.server_password_hash == hash {
                return Ok(vec![]);
            }
            PolicyChange::ServerPassword(hash.clone())
        }
        C::SetLogDays { days } => {
            if *days < -1 {
                return Err(Rejection::InvalidInput {
                    field: "days",
                    reason: "must be -1 (keep none), 0 (keep forever) or a number of days".into(),
                }
                .into());
            }
            if policy.log_days == *days {
                return Ok(vec![]);
            }
            PolicyChange::LogDays(*days)
        }
        C::SetObfuscateIps { enabled } => {
            if policy.obfuscate_ips == *enabled {
                return Ok(vec![]);
            }
            PolicyChange::ObfuscateIps(*enabled)
        }
        C::SetWelcomeText { text } => {
            check_text(
                "text",
                Some(text),
                policy.text_message_length,
                TextKind::Body,
            )?;
            let text = if policy.allow_html {
                text.clone()
            } else {
                super::strip_html(text)
            };
            if policy.welcome_text == text {
                return Ok(vec![]);
            }
            PolicyChange::WelcomeText(text)
        }
        _ => return Ok(vec![]),
    };
    Ok(vec![cx.event(EventKind::PolicyChanged { change })])
}
