//! Keeps browsers naming their simulcast layers (RID header extension) on every packet.
//!
//! A simulcast layer's SSRC is not in the SDP: the webrtc crate learns it from the
//! RID/MID header extensions of its packets. But every renegotiation (`start_rtp` in the
//! `rtc` core 0.21) resets a simulcast receiver's SSRCs to "unknown", and Chromium stops
//! sending MID/RID on an SSRC once an RTCP report block acknowledged it; from then on a
//! renegotiation (someone joining the room) silently drops that publisher's video.
//! So this interceptor, between the receiver-report generator and the wire, notes the
//! SSRCs whose packets carry a RID and leaves their report blocks out of our receiver
//! and sender reports: the browser keeps tagging them (a few bytes per packet) and the
//! crate can map them again after any renegotiation. Loss and RTT for those streams
//! reach the browser through transport-wide congestion control feedback instead.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

use rtc::interceptor::{Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::sender_report::SenderReport;
use rtc::sansio::Protocol;

/// Between the receiver-report generator (10 000) and RFC 8888 (9 000): it sees the
/// reports on their way out and the media on its way in.
pub(crate) const SLOT: usize = 9_500;

const RID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";

#[derive(Default)]
pub(crate) struct KeepRid {
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
    /// The RID extension id negotiated for each remote stream.
    rid_ids: HashMap<u32, u8>,
    /// Remote SSRCs seen with a RID: never acknowledged in our reports.
    simulcast: HashSet<u32>,
}

impl KeepRid {
    /// `packet` without the report blocks of simulcast layers (a copy only if it has any).
    fn strip(&self, packet: &dyn rtc::rtcp::Packet) -> Option<Box<dyn rtc::rtcp::Packet>> {
        let any = packet.as_any();
        let keep =
            |r: &rtc::rtcp::reception_report::ReceptionReport| !self.simulcast.contains(&r.ssrc);
        if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
            if rr.reports.iter().all(keep) {
                return None;
            }
            let mut rr = rr.clone();
            rr.reports.retain(keep);
            return Some(Box::new(rr));
        }
        if let Some(sr) = any.downcast_ref::<SenderReport>() {
            if sr.reports.iter().all(keep) {
                return None;
            }
            let mut sr = sr.clone();
            sr.reports.retain(keep);
            return Some(Box::new(sr));
        }
        None
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for KeepRid {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtp(p) = &msg.message.packet {
            let ssrc = p.header.ssrc;
            if let Some(id) = self.rid_ids.get(&ssrc) {
                if !self.simulcast.contains(&ssrc) && p.header.get_extension(*id).is_some() {
                    self.simulcast.insert(ssrc);
                }
            }
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if !self.simulcast.is_empty() {
            if let Packet::Rtcp(packets) = &mut msg.message.packet {
                for p in packets.iter_mut() {
                    if let Some(stripped) = self.strip(p.as_ref()) {
                        *p = stripped;
                    }
                }
            }
        }
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front()
    }
}

impl Interceptor for KeepRid {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, info: &StreamInfo) {
        if let Some(id) = info
            .rtp_header_extensions
            .iter()
            .find(|e| e.uri == RID_URI)
            .and_then(|e| u8::try_from(e.id).ok())
        {
            self.rid_ids.insert(info.ssrc, id);
        }
    }
    fn unbind_remote_stream(&mut self, info: &StreamInfo) {
        self.rid_ids.remove(&info.ssrc);
        self.simulcast.remove(&info.ssrc);
    }
}
