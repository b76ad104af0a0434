//! Moderation: mute, pause video, kick, ban/unban at every scope, hands,
//! moderators-only chat. Non-moderators get typed rejections, journaled as
//! `api_action_denied`.

use crate::common::*;
use conclave_engine::*;

fn meeting() -> World {
    let mut w = World::new();
    w.run(&user("chair"), create_room("m"));
    w.run(&user("chair"), grant("m", who("mod"), Role::Moderator));
    for (u, s) in [("chair", "c"), ("mod", "mo"), ("bob", "b"), ("carol", "ca")] {
        w.run(&user(u), join("m", s));
    }
    w
}

fn mute(subject: Principal) -> Command {
    Command::MuteAudio {
        room: room("m"),
        subject,
    }
}

fn unmute(subject: Principal) -> Command {
    Command::UnmuteAudio {
        room: room("m"),
        subject,
    }
}

#[test]
fn server_enforced_mute_and_self_mute() {
    let mut w = meeting();
    let r = w
        .when(&user("bob"), mute(who("carol")))
        .err("perm.not_moderator", &["api_action_denied"]);
    assert!(matches!(
        &r.record[0].kind,
        EventKind::ActionDenied { action, subject: Some(s), code, .. }
            if action == "mute_audio" && *s == who("carol") && code == "perm.not_moderator"
    ));
    let ev = w.when(&user("mod"), mute(who("bob"))).ok(&["audio_mute"]);
    assert!(matches!(
        ev[0].kind,
        EventKind::AudioMuted {
            by_moderator: true,
            ..
        }
    ));
    assert_eq!(ev[0].actor, user("mod"));
    // Bob cannot lift a moderator's mute himself.
    w.when(&user("bob"), unmute(who("bob")))
        .err("perm.not_moderator", &["api_action_denied"]);
    w.when(&user("mod"), unmute(who("bob")))
        .ok(&["audio_unmute"]);
    // Self-mute and self-unmute; moderators never force a microphone open.
    w.when(&user("carol"), mute(who("carol")))
        .ok(&["audio_mute"]);
    w.when(&user("mod"), unmute(who("carol"))).ok(&[]);
    w.when(&user("carol"), unmute(who("carol")))
        .ok(&["audio_unmute"]);
    // Moderators do not outrank the owner.
    w.when(&user("mod"), mute(who("chair")))
        .err("perm.outranked", &["api_action_denied"]);
    w.when(&user("mod"), mute(who("ghost")))
        .err("membership.not_member", &[]);
}

#[test]
fn pause_and_resume_video() {
    let mut w = meeting();
    let pause = Command::PauseVideo {
        room: room("m"),
        subject: who("bob"),
    };
    w.when(&user("chair"), pause.clone()).ok(&["video_pause"]);
    w.when(&user("chair"), pause).ok(&[]);
    w.when(
        &user("chair"),
        Command::ResumeVideo {
            room: room("m"),
            subject: who("bob"),
        },
    )
    .ok(&["video_resume"]);
}

#[test]
fn kick_removes_every_session() {
    let mut w = meeting();
    w.run(&user("bob"), join("m", "b-phone"));
    w.when(&user("carol"), kick("m", who("bob")))
        .err("perm.not_moderator", &["api_action_denied"]);
    let ev = w
        .when(
            &user("mod"),
            Command::Kick {
                room: room("m"),
                subject: who("bob"),
                reason: Some("noise".into()),
            },
        )
        .ok(&["peer_kick"]);
    assert!(matches!(&ev[0].kind, EventKind::Kicked { reason: Some(r), .. } if r == "noise"));
    assert!(!w.members("m").contains(&who("bob")));
    w.when(&user("mod"), kick("m", who("bob")))
        .err("membership.not_member", &[]);
    w.when(&user("mod"), kick("m", who("chair")))
        .err("perm.outranked", &["api_action_denied"]);
    // Kicked is not banned: bob may come back.
    w.when(&user("bob"), join("m", "b2")).ok(&["room_join"]);
}

#[test]
fn timed_room_ban_is_lifted_lazily_or_by_tick() {
    let mut w = meeting();
    let until = w.now + chrono::Duration::seconds(600);
    w.when(
        &user("mod"),
        Command::Ban {
            scope: BanScope::Room(room("m")),
            subject: who("bob"),
            reason: Some("abuse".into()),
            until: Some(until),
        },
    )
    .ok(&["ban"]);
    assert!(!w.members("m").contains(&who("bob")));
    let r = w
        .when(&user("bob"), join("m", "b2"))
        .err("membership.banned", &["join_denied"]);
    assert_eq!(r.rejection, Rejection::Banned { until: Some(until) });
    w.advance(601);
    // The first join after expiry lifts the ban itself.
    w.when(&user("bob"), join("m", "b2"))
        .ok(&["unban", "room_join"]);

    w.run(
        &user("mod"),
        Command::Ban {
            scope: BanScope::Room(room("m")),
            subject: who("carol"),
            reason: None,
            until: Some(w.now + chrono::Duration::seconds(5)),
        },
    );
    w.advance(5);
    assert_eq!(types(&w.tick()), ["unban"]);
    w.assert_replays(Policy::default());
}

#[test]
fn server_ban_is_operator_only_and_applies_everywhere() {
    let mut w = meeting();
    w.run(&user("dan"), create_room("other"));
    w.run(&user("bob"), join("other", "b-other"));
    let ban = Command::Ban {
        scope: BanScope::Server,
        subject: who("bob"),
        reason: None,
        until: None,
    };
    w.when(&user("chair"), ban.clone())
        .err("perm.not_admin", &["api_action_denied"]);
    let ev = w.when(&admin(), ban).ok(&["ban"]);
    assert_eq!(ev[0].stream(), StreamId::Server);
    assert!(!w.members("m").contains(&who("bob")));
    assert!(!w.members("other").contains(&who("bob")));
    w.when(&user("bob"), join("other", "again"))
        .err("membership.banned", &["join_denied"]);
    w.when(&user("bob"), create_room("mine"))
        .err("membership.banned", &[]);
    let unban = Command::Unban {
        scope: BanScope::Server,
        subject: who("bob"),
    };
    w.when(&admin(), unban.clone()).ok(&["unban"]);
    w.when(&admin(), unban).err("ban.not_found", &[]);
    w.when(&user("bob"), join("other", "again"))
        .ok(&["room_join"]);
}

#[test]
fn ban_rejects_past_expiry_and_long_reasons() {
    let mut w = meeting();
    w.when(
        &user("mod"),
        Command::Ban {
            scope: BanScope::Room(room("m")),
            subject: who("bob"),
            reason: None,
            until: Some(w.now),
        },
    )
    .err("input.invalid", &[]);
    w.when(
        &user("mod"),
        Command::Ban {
            scope: BanScope::Room(room("m")),
            subject: who("bob"),
            reason: Some("x".repeat(501)),
            until: None,
        },
    )
    .err("input.invalid", &[]);
}

#[test]
fn hands() {
    let mut w = meeting();
    let raise = Command::RaiseHand { room: room("m") };
    w.when(&user("bob"), raise.clone()).ok(&["hand_raise"]);
    w.when(&user("bob"), raise.clone()).ok(&[]);
    w.when(&user("carol"), raise).ok(&["hand_raise"]);
    w.when(
        &user("carol"),
        Command::LowerHand {
            room: room("m"),
            subject: Some(who("bob")),
        },
    )
    .err("perm.not_moderator", &["api_action_denied"]);
    w.when(
        &user("mod"),
        Command::LowerHand {
            room: room("m"),
            subject: Some(who("bob")),
        },
    )
    .ok(&["hand_lower"]);
    w.when(
        &user("carol"),
        Command::LowerHand {
            room: room("m"),
            subject: None,
        },
    )
    .ok(&["hand_lower"]);
    w.when(&user("outsider"), Command::RaiseHand { room: room("m") })
        .err("membership.not_member", &[]);
}

#[test]
fn moderators_only_chat_toggle() {
    let mut w = meeting();
    let toggle = |enabled| Command::SetModeratedChat {
        room: room("m"),
        enabled,
    };
    w.when(&user("bob"), toggle(true))
        .err("perm.not_moderator", &["api_action_denied"]);
    w.when(&user("mod"), toggle(true)).ok(&["room_modify"]);
    w.when(&user("bob"), post("m", "hello"))
        .err("perm.chat_moderated", &["api_action_denied"]);
    w.when(&user("mod"), post("m", "hello"))
        .ok(&["chat_message"]);
    w.when(&user("mod"), toggle(false)).ok(&["room_modify"]);
    w.when(&user("bob"), post("m", "hello"))
        .ok(&["chat_message"]);
}
