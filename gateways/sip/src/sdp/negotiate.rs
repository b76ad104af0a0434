//! RFC 3264 offer/answer for one G.711 audio stream plus telephone-event (RFC 4733).

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use super::parse::{parse, Connection, MediaDescription, SessionDescription};
use super::{Codec, Direction, LocalMedia, Negotiated, SdpError};

/// The telephone-event payload type of our own offers.
pub const TELEPHONE_EVENT_PT: u8 = 101;

/// Our packetisation time: the mixer runs at 20 ms.
const PTIME_MS: u32 = 20;

/// Answers an offer: the first usable RTP/AVP audio stream gets the offerer's first
/// codec among `prefer`, telephone-event if offered, and the mirrored direction; every
/// other m-line is rejected with port 0, so the answer has the offer's m-lines in order
/// (RFC 3264 §6).
pub fn answer(
    offer: &str,
    local: &LocalMedia,
    prefer: &[Codec],
) -> Result<(String, Negotiated), SdpError> {
    let sd = parse(offer)?;
    let (index, codec, payload_type) = choose_stream(&sd, prefer)?;
    let m = sd.media.get(index).ok_or(SdpError::NoAudio)?;
    let negotiated = negotiated(&sd, m, codec, payload_type, local)?;

    let mut out = session_header(local);
    for (i, other) in sd.media.iter().enumerate() {
        if i == index {
            audio_section(
                &mut out,
                local.port,
                &[(codec, payload_type)],
                negotiated.telephone_event,
                negotiated.remote_direction.mirror(),
            );
        } else {
            line(
                &mut out,
                format_args!(
                    "m={} 0 {} {}",
                    other.media,
                    other.proto,
                    other.formats.join(" ")
                ),
            );
        }
    }
    Ok((out, negotiated))
}

/// An offer of our own, for an INVITE that came without one (the offer goes in our
/// 200, the answer comes in the ACK). An empty `codecs` offers PCMU and PCMA.
pub fn offer(local: &LocalMedia, codecs: &[Codec]) -> String {
    let mut chosen: Vec<(Codec, u8)> = Vec::with_capacity(2);
    let codecs = if codecs.is_empty() {
        &[Codec::Pcmu, Codec::Pcma][..]
    } else {
        codecs
    };
    for c in codecs {
        if !chosen.iter().any(|(k, _)| k == c) {
            chosen.push((*c, c.static_payload_type()));
        }
    }
    let mut out = session_header(local);
    audio_section(
        &mut out,
        local.port,
        &chosen,
        Some(TELEPHONE_EVENT_PT),
        Direction::SendRecv,
    );
    out
}

/// Reads the answer to an [`offer`] of ours: its first m-line must be our audio stream,
/// accepted (port other than 0) over RTP/AVP with PCMU or PCMA. `our_offer` is what we
/// announced: an answer in the other address family is refused.
pub fn accept_answer(answer: &str, our_offer: &LocalMedia) -> Result<Negotiated, SdpError> {
    let sd = parse(answer)?;
    let m = sd.media.first().ok_or(SdpError::NoAudio)?;
    if m.media != "audio" {
        return Err(SdpError::NoAudio);
    }
    if m.port == 0 {
        // the answerer rejected our only stream
        return Err(SdpError::NoCommonCodec);
    }
    if !m.proto.eq_ignore_ascii_case("RTP/AVP") {
        return Err(SdpError::UnsupportedProfile);
    }
    let (codec, payload_type) =
        first_codec(m, &[Codec::Pcmu, Codec::Pcma]).ok_or(SdpError::NoCommonCodec)?;
    negotiated(&sd, m, codec, payload_type, our_offer)
}

/// The index, codec and payload type of the audio stream to accept.
fn choose_stream(
    sd: &SessionDescription,
    prefer: &[Codec],
) -> Result<(usize, Codec, u8), SdpError> {
    let mut any_audio = false;
    let mut any_avp = false;
    for (i, m) in sd.media.iter().enumerate() {
        if m.media != "audio" || m.port == 0 {
            continue;
        }
        any_audio = true;
        if !m.proto.eq_ignore_ascii_case("RTP/AVP") {
            continue;
        }
        any_avp = true;
        if let Some((codec, pt)) = first_codec(m, prefer) {
            return Ok((i, codec, pt));
        }
    }
    Err(match (any_audio, any_avp) {
        (false, _) => SdpError::NoAudio,
        (true, false) => SdpError::UnsupportedProfile,
        (true, true) => SdpError::NoCommonCodec,
    })
}

/// The first of the stream's formats, in its order, that is one of `ours`.
fn first_codec(m: &MediaDescription, ours: &[Codec]) -> Option<(Codec, u8)> {
    m.formats.iter().find_map(|f| {
        let pt = f.parse::<u8>().ok().filter(|pt| *pt <= 127)?;
        let codec = codec_of(m, pt)?;
        ours.contains(&codec).then_some((codec, pt))
    })
}

/// The G.711 codec a payload type stands for: the static 0 and 8, or an 8 kHz mono
/// rtpmap named PCMU or PCMA.
fn codec_of(m: &MediaDescription, pt: u8) -> Option<Codec> {
    match pt {
        0 => return Some(Codec::Pcmu),
        8 => return Some(Codec::Pcma),
        _ => {}
    }
    let r = m.rtpmap(pt)?;
    if r.clock_rate != 8000 || r.channels.is_some_and(|c| c != 1) {
        return None;
    }
    [Codec::Pcmu, Codec::Pcma]
        .into_iter()
        .find(|c| r.encoding.eq_ignore_ascii_case(c.encoding_name()))
}

/// The stream's telephone-event/8000 payload type, in its format order.
fn telephone_event(m: &MediaDescription) -> Option<u8> {
    m.formats.iter().find_map(|f| {
        let pt = f.parse::<u8>().ok()?;
        let r = m.rtpmap(pt)?;
        (r.encoding.eq_ignore_ascii_case("telephone-event") && r.clock_rate == 8000).then_some(pt)
    })
}

/// The remote side's addresses and direction for the chosen stream.
fn negotiated(
    sd: &SessionDescription,
    m: &MediaDescription,
    codec: Codec,
    payload_type: u8,
    local: &LocalMedia,
) -> Result<Negotiated, SdpError> {
    let ip = match m.connection.as_ref().or(sd.connection.as_ref()) {
        Some(Connection::Ip(ip)) => *ip,
        Some(Connection::Host(_)) => {
            return Err(SdpError::Malformed("c= is a host name, not an IP address"))
        }
        None => return Err(SdpError::Malformed("no c= line for the audio stream")),
    };
    let on_hold = ip.is_unspecified();
    if !on_hold && ip.is_ipv4() != local.address.is_ipv4() {
        return Err(SdpError::AddressFamily);
    }
    let mut direction = m.direction.or(sd.direction).unwrap_or(Direction::SendRecv);
    if on_hold {
        // RFC 2543 hold: the remote side cannot receive, so it at most sends
        direction = match direction {
            Direction::SendRecv | Direction::SendOnly => Direction::SendOnly,
            Direction::RecvOnly | Direction::Inactive => Direction::Inactive,
        };
    }
    let remote_rtp = (!on_hold && m.port != 0).then_some(SocketAddr::new(ip, m.port));
    let remote_rtcp = remote_rtp.and_then(|rtp| match m.rtcp {
        Some(r) => Some(SocketAddr::new(r.address.unwrap_or(ip), r.port)),
        None => rtp.port().checked_add(1).map(|p| SocketAddr::new(ip, p)),
    });
    let telephone_event = telephone_event(m).filter(|te| *te != payload_type);
    Ok(Negotiated {
        codec,
        payload_type,
        telephone_event,
        remote_rtp,
        remote_rtcp,
        remote_direction: direction,
        ptime: m.ptime,
    })
}

/// `v=`, `o=`, `s=`, `c=` and `t=` of our SDP.
fn session_header(local: &LocalMedia) -> String {
    let mut out = String::with_capacity(320);
    let (family, addr) = family_and_address(local.address);
    line(&mut out, format_args!("v=0"));
    line(
        &mut out,
        format_args!(
            "o=conclave {} {} IN {family} {addr}",
            local.session_id, local.session_version
        ),
    );
    line(&mut out, format_args!("s=conclave"));
    line(&mut out, format_args!("c=IN {family} {addr}"));
    line(&mut out, format_args!("t=0 0"));
    out
}

/// Our audio m-line and its attributes.
fn audio_section(
    out: &mut String,
    port: u16,
    codecs: &[(Codec, u8)],
    telephone_event: Option<u8>,
    direction: Direction,
) {
    let mut formats = String::new();
    for (_, pt) in codecs {
        let _ = write!(formats, " {pt}");
    }
    if let Some(te) = telephone_event {
        let _ = write!(formats, " {te}");
    }
    line(out, format_args!("m=audio {port} RTP/AVP{formats}"));
    for (codec, pt) in codecs {
        line(
            out,
            format_args!("a=rtpmap:{pt} {}/8000", codec.encoding_name()),
        );
    }
    if let Some(te) = telephone_event {
        line(out, format_args!("a=rtpmap:{te} telephone-event/8000"));
        line(out, format_args!("a=fmtp:{te} 0-16"));
    }
    line(out, format_args!("a=ptime:{PTIME_MS}"));
    line(out, format_args!("a={}", direction.attribute()));
}

fn family_and_address(ip: IpAddr) -> (&'static str, String) {
    match ip {
        IpAddr::V4(v4) => ("IP4", v4.to_string()),
        IpAddr::V6(v6) => ("IP6", v6.to_string()),
    }
}

fn line(out: &mut String, args: std::fmt::Arguments<'_>) {
    let _ = out.write_fmt(args);
    out.push_str("\r\n");
}
