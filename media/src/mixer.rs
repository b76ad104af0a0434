//! The sans-IO media core across conferences: routes legs to their conference, runs
//! every conference on each tick, and keeps node-wide counters (closed conferences
//! included). The tokio shell (`node`) owns one behind a mutex.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::conference::{
    BridgeInput, Channel, Conference, CoreCounters, Direction, LegId, LegMap, LegParams, Output,
};

pub struct MediaCore {
    conferences: HashMap<String, Conference>,
    legs: LegMap<String>,
    hold_music: Option<Arc<[i16]>>,
    ntp_anchor: (Instant, u64),
    retired: CoreCounters,
}

impl MediaCore {
    pub fn new(hold_music: Option<Arc<[i16]>>, ntp_anchor: (Instant, u64)) -> Self {
        MediaCore {
            conferences: HashMap::new(),
            legs: LegMap::default(),
            hold_music,
            ntp_anchor,
            retired: CoreCounters::default(),
        }
    }

    pub fn leg_count(&self) -> usize {
        self.legs.len()
    }

    pub fn conference_count(&self) -> usize {
        self.conferences.len()
    }

    pub fn has_leg(&self, id: LegId) -> bool {
        self.legs.contains_key(&id)
    }

    /// Adds a leg to `conference`, creating it on first use.
    pub fn add_leg(&mut self, conference: &str, id: LegId, params: LegParams, now: Instant) {
        self.remove_leg(id);
        let anchor = self.ntp_anchor;
        let music = self.hold_music.clone();
        self.conferences
            .entry(conference.to_owned())
            .or_insert_with(|| Conference::new(music, anchor, "conclave-media"))
            .add_leg(id, params, now);
        self.legs.insert(id, conference.to_owned());
    }

    /// Removes a leg; an emptied conference is dropped. Returns whether it existed.
    pub fn remove_leg(&mut self, id: LegId) -> bool {
        let Some(name) = self.legs.remove(&id) else {
            return false;
        };
        if let Some(conf) = self.conferences.get_mut(&name) {
            conf.remove_leg(id);
            if conf.is_empty() {
                if let Some(conf) = self.conferences.remove(&name) {
                    self.retired.add(&conf.counters());
                }
            }
        }
        true
    }

    /// Hands the bridge's input to `conference` for the next tick; false if it has
    /// no SIP legs (the bridge then mixes nothing into it).
    pub fn bridge(&mut self, conference: &str, input: BridgeInput) -> bool {
        match self.conferences.get_mut(conference) {
            Some(conf) => {
                conf.bridge(input);
                true
            }
            None => false,
        }
    }

    /// The conference `id` belongs to.
    pub fn conference_of(&self, id: LegId) -> Option<&str> {
        self.legs.get(&id).map(String::as_str)
    }

    fn conf_of(&mut self, id: LegId) -> Option<&mut Conference> {
        let name = self.legs.get(&id)?;
        self.conferences.get_mut(name)
    }

    pub fn set_remote(&mut self, id: LegId, rtp: SocketAddr, rtcp: Option<SocketAddr>) -> bool {
        self.conf_of(id)
            .is_some_and(|c| c.set_remote(id, rtp, rtcp))
    }

    pub fn set_muted(&mut self, id: LegId, muted: bool) -> bool {
        self.conf_of(id).is_some_and(|c| c.set_muted(id, muted))
    }

    pub fn set_direction(&mut self, id: LegId, direction: Direction, now: Instant) -> bool {
        self.conf_of(id)
            .is_some_and(|c| c.set_direction(id, direction, now))
    }

    pub fn receive(
        &mut self,
        id: LegId,
        channel: Channel,
        source: SocketAddr,
        data: &[u8],
        now: Instant,
        sink: &mut dyn FnMut(Output<'_>),
    ) {
        if let Some(c) = self.conf_of(id) {
            c.receive(id, channel, source, data, now, sink);
        }
    }

    /// One 20 ms frame for every conference.
    pub fn tick(&mut self, now: Instant, sink: &mut dyn FnMut(Output<'_>)) {
        for c in self.conferences.values_mut() {
            c.tick(now, sink);
        }
    }

    /// Node-wide counters.
    pub fn counters(&self) -> CoreCounters {
        let mut total = self.retired;
        for c in self.conferences.values() {
            total.add(&c.counters());
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::g711::G711;
    use std::time::Duration;

    fn params() -> LegParams {
        LegParams::random(
            G711::Pcmu,
            0,
            None,
            Duration::from_millis(40),
            Duration::from_secs(30),
        )
    }

    #[test]
    fn conferences_come_and_go_with_their_legs() {
        let t0 = Instant::now();
        let mut core = MediaCore::new(None, (t0, 0));
        core.add_leg("a", LegId(1), params(), t0);
        core.add_leg("a", LegId(2), params(), t0);
        core.add_leg("b", LegId(3), params(), t0);
        assert_eq!((core.leg_count(), core.conference_count()), (3, 2));
        assert!(core.remove_leg(LegId(3)));
        assert!(!core.remove_leg(LegId(3)));
        assert_eq!((core.leg_count(), core.conference_count()), (2, 1));
        assert!(!core.set_muted(LegId(3), true));
        assert!(core.set_muted(LegId(1), true));
    }

    #[test]
    fn conferences_are_mixed_separately() {
        // given two legs in different conferences, when one talks, the other hears nothing
        let t0 = Instant::now();
        let mut core = MediaCore::new(None, (t0, 0));
        let a: SocketAddr = "127.0.0.1:4000"
            .parse()
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 4000)));
        let b = SocketAddr::from(([127, 0, 0, 1], 4002));
        core.add_leg("a", LegId(1), params(), t0);
        core.add_leg("b", LegId(2), params(), t0);
        core.set_remote(LegId(1), a, None);
        core.set_remote(LegId(2), b, None);
        let mut buf = [0u8; 172];
        let loud = [0x80u8; 160]; // μ-law near full scale
        let mut silent_for_b = true;
        for f in 0..10u32 {
            let now = t0 + Duration::from_millis(20) * f;
            let h = crate::rtp::RtpHeader {
                marker: false,
                payload_type: 0,
                sequence: f as u16,
                timestamp: f * 160,
                ssrc: 1,
            };
            if let Ok(n) = h.write(&loud, &mut buf) {
                core.receive(
                    LegId(1),
                    Channel::Rtp,
                    a,
                    buf.get(..n).unwrap_or(&[]),
                    now,
                    &mut |_| {},
                );
            }
            core.tick(now, &mut |o| {
                if let Output::Transmit {
                    leg: LegId(2),
                    channel: Channel::Rtp,
                    data,
                    ..
                } = o
                {
                    silent_for_b &= data.get(12..).is_some_and(|p| p.iter().all(|&c| c == 0xFF));
                }
            });
        }
        assert!(silent_for_b);
        assert!(core.counters().packets_in == 10);
    }
}
