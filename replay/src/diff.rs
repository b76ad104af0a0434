//! What changed in a room between two moments, as a list of changes.
//!
//! Computed from two reconstructed views rather than from the events in between, so it
//! reports net changes (someone who joined and left again in between is not listed) and
//! agrees with `replay state` at both ends by construction.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::view::{BanView, RoomView};

/// One change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// The room came into existence.
    RoomCreated,
    /// The room was deleted or expired.
    RoomRemoved,
    /// A session appeared.
    Joined {
        principal: String,
        session: String,
        address: String,
        protocol: String,
    },
    /// A session went away.
    Left {
        principal: String,
        session: String,
        address: String,
        protocol: String,
    },
    /// An affiliation changed (`None` = no affiliation).
    RoleChanged {
        principal: String,
        from: Option<String>,
        to: Option<String>,
    },
    /// Audio state of a present person changed (`open`, `self`, `moderator`).
    AudioChanged {
        principal: String,
        from: String,
        to: String,
    },
    /// Video state of a present person changed.
    VideoChanged {
        principal: String,
        from: String,
        to: String,
    },
    /// A ban now applies.
    Banned {
        scope: String,
        subject: String,
        by: String,
        reason: Option<String>,
        until: Option<String>,
    },
    /// A ban no longer applies.
    Unbanned { scope: String, subject: String },
    /// A new invitation.
    InvitationIssued {
        id: String,
        invitee: String,
        state: String,
    },
    /// An invitation changed state (accepted, used, expired, ...).
    InvitationState {
        id: String,
        invitee: String,
        from: String,
        to: String,
    },
    /// Someone started waiting in the lobby.
    Knocked { principal: String, address: String },
    /// Someone left the lobby (admitted, rejected, or gone).
    LobbyLeft { principal: String },
    /// A configuration field changed.
    Config {
        field: String,
        from: serde_json::Value,
        to: serde_json::Value,
    },
    /// A per-account moderator was added or removed (Jami rendezvous rooms).
    AccountModerator { principal: String, added: bool },
}

/// The changes in one room between two moments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomDiff {
    pub room: String,
    pub from_seq: u64,
    pub to_seq: u64,
    pub from_at: Option<String>,
    pub to_at: Option<String>,
    pub changes: Vec<Change>,
}

fn sessions(v: Option<&RoomView>) -> BTreeMap<(String, String), (String, String)> {
    v.map(|v| {
        v.members
            .iter()
            .flat_map(|m| {
                m.sessions.iter().map(move |s| {
                    (
                        (m.principal.clone(), s.session.clone()),
                        (s.address.clone(), s.protocol.clone()),
                    )
                })
            })
            .collect()
    })
    .unwrap_or_default()
}

fn ban_key(b: &BanView) -> (String, String) {
    (b.scope.clone(), b.subject.clone())
}

/// Changes from `a` (earlier; `None` = room absent) to `b` (later).
pub fn diff_rooms(a: Option<&RoomView>, b: Option<&RoomView>) -> Vec<Change> {
    let mut out = Vec::new();
    match (a, b) {
        (None, Some(_)) => out.push(Change::RoomCreated),
        (Some(_), None) => out.push(Change::RoomRemoved),
        _ => {}
    }
    // Presence.
    let (sa, sb) = (sessions(a), sessions(b));
    for ((p, s), (addr, proto)) in &sa {
        if !sb.contains_key(&(p.clone(), s.clone())) {
            out.push(Change::Left {
                principal: p.clone(),
                session: s.clone(),
                address: addr.clone(),
                protocol: proto.clone(),
            });
        }
    }
    for ((p, s), (addr, proto)) in &sb {
        if !sa.contains_key(&(p.clone(), s.clone())) {
            out.push(Change::Joined {
                principal: p.clone(),
                session: s.clone(),
                address: addr.clone(),
                protocol: proto.clone(),
            });
        }
    }
    // Roles.
    let empty = BTreeMap::new();
    let ra = a.map_or(&empty, |v| &v.affiliations);
    let rb = b.map_or(&empty, |v| &v.affiliations);
    let people: BTreeSet<&String> = ra.keys().chain(rb.keys()).collect();
    for p in people {
        let (from, to) = (ra.get(p), rb.get(p));
        if from != to {
            out.push(Change::RoleChanged {
                principal: p.clone(),
                from: from.cloned(),
                to: to.cloned(),
            });
        }
    }
    // Media state of people present at both ends.
    if let (Some(a), Some(b)) = (a, b) {
        for mb in &b.members {
            if let Some(ma) = a.members.iter().find(|m| m.principal == mb.principal) {
                if ma.audio != mb.audio {
                    out.push(Change::AudioChanged {
                        principal: mb.principal.clone(),
                        from: ma.audio.clone(),
                        to: mb.audio.clone(),
                    });
                }
                if ma.video != mb.video {
                    out.push(Change::VideoChanged {
                        principal: mb.principal.clone(),
                        from: ma.video.clone(),
                        to: mb.video.clone(),
                    });
                }
            }
        }
    }
    // Bans.
    let ba: BTreeMap<_, _> = a
        .map(|v| v.bans.iter().map(|b| (ban_key(b), b)).collect())
        .unwrap_or_default();
    let bb: BTreeMap<_, _> = b
        .map(|v| v.bans.iter().map(|b| (ban_key(b), b)).collect())
        .unwrap_or_default();
    for (k, ban) in &bb {
        if ba.get(k) != Some(ban) {
            out.push(Change::Banned {
                scope: ban.scope.clone(),
                subject: ban.subject.clone(),
                by: ban.by.clone(),
                reason: ban.reason.clone(),
                until: ban.until.clone(),
            });
        }
    }
    for k in ba.keys() {
        if !bb.contains_key(k) {
            out.push(Change::Unbanned {
                scope: k.0.clone(),
                subject: k.1.clone(),
            });
        }
    }
    // Invitations.
    let ia: BTreeMap<_, _> = a
        .map(|v| v.invitations.iter().map(|i| (&i.id, i)).collect())
        .unwrap_or_default();
    for inv in b.map(|v| v.invitations.as_slice()).unwrap_or_default() {
        match ia.get(&inv.id) {
            None => out.push(Change::InvitationIssued {
                id: inv.id.clone(),
                invitee: inv.invitee.clone(),
                state: inv.state.clone(),
            }),
            Some(old) if old.state != inv.state => out.push(Change::InvitationState {
                id: inv.id.clone(),
                invitee: inv.invitee.clone(),
                from: old.state.clone(),
                to: inv.state.clone(),
            }),
            Some(_) => {}
        }
    }
    // Lobby.
    let la: BTreeSet<&String> = a
        .map(|v| v.lobby.iter().map(|k| &k.principal).collect())
        .unwrap_or_default();
    let lb: BTreeSet<&String> = b
        .map(|v| v.lobby.iter().map(|k| &k.principal).collect())
        .unwrap_or_default();
    for k in b.map(|v| v.lobby.as_slice()).unwrap_or_default() {
        if !la.contains(&k.principal) {
            out.push(Change::Knocked {
                principal: k.principal.clone(),
                address: k.address.clone(),
            });
        }
    }
    for p in la.difference(&lb) {
        out.push(Change::LobbyLeft {
            principal: (*p).clone(),
        });
    }
    // Configuration, field by field.
    if let (Some(a), Some(b)) = (a, b) {
        if let (Ok(serde_json::Value::Object(ca)), Ok(serde_json::Value::Object(cb))) = (
            serde_json::to_value(&a.config),
            serde_json::to_value(&b.config),
        ) {
            for (field, to) in &cb {
                let from = ca.get(field).cloned().unwrap_or(serde_json::Value::Null);
                if &from != to {
                    out.push(Change::Config {
                        field: field.clone(),
                        from,
                        to: to.clone(),
                    });
                }
            }
        }
        let ma: BTreeSet<&String> = a.account_moderators.iter().collect();
        let mb: BTreeSet<&String> = b.account_moderators.iter().collect();
        for p in mb.difference(&ma) {
            out.push(Change::AccountModerator {
                principal: (*p).clone(),
                added: true,
            });
        }
        for p in ma.difference(&mb) {
            out.push(Change::AccountModerator {
                principal: (*p).clone(),
                added: false,
            });
        }
    }
    out
}

/// The diff of one room between two sequence numbers.
pub fn room_diff(
    journal: &conclave_journal::Journal,
    index: &crate::ReplayIndex,
    room: &conclave_engine::RoomName,
    from_seq: u64,
    to_seq: u64,
) -> crate::Result<RoomDiff> {
    let a = index.room_at(journal, room, from_seq)?;
    let b = index.room_at(journal, room, to_seq)?;
    Ok(RoomDiff {
        room: room.to_string(),
        from_seq,
        to_seq,
        from_at: index.time_of(from_seq).map(crate::fmt_time),
        to_at: index.time_of(to_seq).map(crate::fmt_time),
        changes: diff_rooms(a.as_ref(), b.as_ref()),
    })
}
