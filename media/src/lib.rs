//! The media node: G.711 audio mixing for SIP calls (RTP, jitter buffer, RTCP, RFC 4733 DTMF); later WebRTC forwarding (being built).
