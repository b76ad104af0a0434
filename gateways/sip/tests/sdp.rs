//! SDP offer/answer against real phones' offers, and hostile bodies.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use conclave_gateway_sip::sdp::{
    accept_answer, answer, body_text, offer, parse, Codec, Direction, LocalMedia, SdpError,
    MAX_SDP_BYTES,
};
use proptest::prelude::*;

const BOTH: &[Codec] = &[Codec::Pcmu, Codec::Pcma];

fn local() -> LocalMedia {
    LocalMedia {
        address: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)),
        port: 40000,
        session_id: 77,
        session_version: 1,
    }
}

fn crlf(s: &str) -> String {
    s.lines()
        .map(|l| format!("{}\r\n", l.trim_start()))
        .collect()
}

fn addr(s: &str) -> Option<SocketAddr> {
    Some(s.parse().unwrap())
}

fn m_lines(sdp: &str) -> Vec<&str> {
    sdp.lines().filter(|l| l.starts_with("m=")).collect()
}

fn has_line(sdp: &str, line: &str) -> bool {
    sdp.split("\r\n").any(|l| l == line)
}

const LINPHONE: &str = "v=0
    o=alice 2417 1254 IN IP4 192.168.1.20
    s=Talk
    c=IN IP4 192.168.1.20
    t=0 0
    a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics
    a=record:off
    m=audio 7078 RTP/AVP 96 97 98 0 8 18 101 99 100
    a=rtpmap:96 opus/48000/2
    a=fmtp:96 useinbandfec=1
    a=rtpmap:97 speex/16000
    a=fmtp:97 vbr=on
    a=rtpmap:98 speex/8000
    a=fmtp:98 vbr=on
    a=fmtp:18 annexb=yes
    a=rtpmap:101 telephone-event/48000
    a=rtpmap:99 telephone-event/16000
    a=rtpmap:100 telephone-event/8000
    a=rtcp-fb:* trr-int 1000
    a=rtcp-fb:* ccm tmmbr
    m=video 9078 RTP/AVP 96 97
    a=rtpmap:96 VP8/90000
    a=rtpmap:97 H264/90000
    a=fmtp:97 profile-level-id=42801F
    a=rtcp-fb:* trr-int 1000
    a=rtcp-fb:96 nack pli";

const ZOIPER: &str = "v=0
    o=Z 0 240498 IN IP4 192.168.0.10
    s=Z
    c=IN IP4 192.168.0.10
    t=0 0
    m=audio 8000 RTP/AVP 106 9 98 101 0 8 3
    a=rtpmap:106 opus/48000/2
    a=fmtp:106 sprop-maxcapturerate=16000; minptime=20; useinbandfec=1
    a=rtpmap:98 telephone-event/48000
    a=fmtp:98 0-16
    a=rtpmap:101 telephone-event/8000
    a=fmtp:101 0-16
    a=ptime:20
    a=sendrecv
    a=rtcp-mux";

const BRIA: &str = "v=0
    o=- 1618912345 3 IN IP4 10.0.0.5
    s=Bria 6 release 6.5.0 stamp 106734
    c=IN IP4 10.0.0.5
    b=AS:2064
    t=0 0
    m=audio 64228 RTP/AVP 9 8 0 101
    a=rtpmap:101 telephone-event/8000
    a=fmtp:101 0-15
    a=sendrecv";

/// SIPp's default uac offer, `[media_ip]` and `[media_port]` filled in.
const SIPP: &str = "v=0
    o=user1 53655765 2353687637 IN IP4 127.0.0.1
    s=-
    c=IN IP4 127.0.0.1
    t=0 0
    m=audio 6000 RTP/AVP 0
    a=rtpmap:0 PCMU/8000";

const WEBRTC: &str = "v=0
    o=- 4611731400430051336 2 IN IP4 127.0.0.1
    s=-
    t=0 0
    a=group:BUNDLE 0
    a=extmap-allow-mixed
    a=msid-semantic: WMS
    m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126
    c=IN IP4 0.0.0.0
    a=rtcp:9 IN IP4 0.0.0.0
    a=ice-ufrag:Xk3m
    a=ice-pwd:0aZ6xyvZ9Qx1TgbJx5G2fGqP
    a=ice-options:trickle
    a=fingerprint:sha-256 6B:8B:5D:EA:59:04:20:23:29:C8:87:1C:CC:87:32:BE:DD:8C:66:A5:8E:50:55:EA:8C:D3:B6:5C:09:5E:D6:BC
    a=setup:actpass
    a=mid:0
    a=sendrecv
    a=rtcp-mux
    a=rtpmap:111 opus/48000/2
    a=rtcp-fb:111 transport-cc
    a=fmtp:111 minptime=10;useinbandfec=1
    a=rtpmap:63 red/48000/2
    a=rtpmap:9 G722/8000
    a=rtpmap:0 PCMU/8000
    a=rtpmap:8 PCMA/8000
    a=rtpmap:13 CN/8000
    a=rtpmap:110 telephone-event/48000
    a=rtpmap:126 telephone-event/8000";

#[test]
fn linphone_offer_gets_pcmu_and_the_8k_telephone_event_and_video_rejected() {
    // given Linphone's audio+video offer with telephone-event at 48k, 16k and 8k
    // when answered
    let (sdp, n) = answer(&crlf(LINPHONE), &local(), BOTH).unwrap();
    // then PCMU (first of ours in its order), pt 100 for telephone-event/8000
    assert_eq!(n.codec, Codec::Pcmu);
    assert_eq!(n.payload_type, 0);
    assert_eq!(n.telephone_event, Some(100));
    assert_eq!(n.remote_rtp, addr("192.168.1.20:7078"));
    assert_eq!(n.remote_rtcp, addr("192.168.1.20:7079"));
    assert_eq!(n.remote_direction, Direction::SendRecv);
    // and the video stream is rejected in place
    assert_eq!(
        m_lines(&sdp),
        ["m=audio 40000 RTP/AVP 0 100", "m=video 0 RTP/AVP 96 97"]
    );
    assert!(has_line(&sdp, "a=rtpmap:100 telephone-event/8000"));
    assert!(has_line(&sdp, "a=fmtp:100 0-16"));
    assert!(has_line(&sdp, "a=sendrecv"));
}

#[test]
fn zoiper_offer_gets_pcmu_with_telephone_event_101() {
    let (sdp, n) = answer(&crlf(ZOIPER), &local(), BOTH).unwrap();
    assert_eq!((n.codec, n.payload_type), (Codec::Pcmu, 0));
    assert_eq!(n.telephone_event, Some(101));
    assert_eq!(n.ptime, Some(20));
    assert_eq!(m_lines(&sdp), ["m=audio 40000 RTP/AVP 0 101"]);
}

#[test]
fn bria_offer_gets_pcma_because_the_offerer_lists_it_first() {
    // given an offer listing PCMA before PCMU, and our preference PCMU then PCMA
    let (sdp, n) = answer(&crlf(BRIA), &local(), BOTH).unwrap();
    // then the offerer's order decides
    assert_eq!((n.codec, n.payload_type), (Codec::Pcma, 8));
    assert!(has_line(&sdp, "a=rtpmap:8 PCMA/8000"));
}

#[test]
fn prefer_limits_the_codecs_we_accept() {
    // given we only speak PCMU
    let (_, n) = answer(&crlf(BRIA), &local(), &[Codec::Pcmu]).unwrap();
    assert_eq!(n.codec, Codec::Pcmu);
}

#[test]
fn sipp_default_offer_gets_this_exact_answer() {
    let (sdp, n) = answer(&crlf(SIPP), &local(), BOTH).unwrap();
    assert_eq!(
        sdp,
        "v=0\r\no=conclave 77 1 IN IP4 203.0.113.7\r\ns=conclave\r\nc=IN IP4 203.0.113.7\r\n\
         t=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\n\
         a=sendrecv\r\n"
    );
    assert_eq!(n.telephone_event, None);
    assert_eq!(n.remote_rtp, addr("127.0.0.1:6000"));
}

#[test]
fn webrtc_offer_is_refused_as_unsupported_profile() {
    let err = answer(&crlf(WEBRTC), &local(), BOTH).unwrap_err();
    assert_eq!(err, SdpError::UnsupportedProfile);
    assert_eq!(err.code(), "sdp.unsupported_profile");
    assert_eq!(err.sip_status(), 488);
}

#[test]
fn srtp_offer_is_refused_but_an_rtp_avp_alternative_is_taken() {
    // given SDES-SRTP alone
    let savp = crlf(&SIPP.replace("RTP/AVP", "RTP/SAVP"));
    assert_eq!(
        answer(&savp, &local(), BOTH).unwrap_err(),
        SdpError::UnsupportedProfile
    );
    // given SRTP first and plain RTP second (best-effort SRTP phones)
    let both = format!("{savp}m=audio 6002 RTP/AVP 8\r\n");
    let (sdp, n) = answer(&both, &local(), BOTH).unwrap();
    assert_eq!(n.remote_rtp, addr("127.0.0.1:6002"));
    assert_eq!(
        m_lines(&sdp),
        ["m=audio 0 RTP/SAVP 0", "m=audio 40000 RTP/AVP 8"]
    );
}

#[test]
fn hold_reoffer_with_sendonly_is_answered_recvonly() {
    // given Linphone's re-INVITE putting us on hold, and our next session version
    let hold = crlf(
        &LINPHONE
            .replace("1254", "1255")
            .replace("a=record:off", "a=record:off\na=sendonly"),
    );
    let mut ours = local();
    ours.session_version = 2;
    let (sdp, n) = answer(&hold, &ours, BOTH).unwrap();
    assert_eq!(n.remote_direction, Direction::SendOnly);
    assert!(has_line(&sdp, "a=recvonly"));
    assert!(has_line(&sdp, "o=conclave 77 2 IN IP4 203.0.113.7"));
    // and the phone's address stays known (it keeps sending, e.g. its own music)
    assert_eq!(n.remote_rtp, addr("192.168.1.20:7078"));
    assert_eq!(
        parse(&hold).unwrap().origin.unwrap().session_version,
        "1255"
    );
}

#[test]
fn rfc2543_hold_with_zero_address_has_no_remote_and_is_answered_recvonly() {
    let hold = crlf(&SIPP.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0"));
    let (sdp, n) = answer(&hold, &local(), BOTH).unwrap();
    assert_eq!(n.remote_rtp, None);
    assert_eq!(n.remote_rtcp, None);
    assert_eq!(n.remote_direction, Direction::SendOnly);
    assert!(has_line(&sdp, "a=recvonly"));
}

#[test]
fn inactive_and_recvonly_offers_are_mirrored() {
    for (offered, answered) in [("inactive", "a=inactive"), ("recvonly", "a=sendonly")] {
        let sdp = crlf(&format!("{SIPP}\na={offered}"));
        let (out, _) = answer(&sdp, &local(), BOTH).unwrap();
        assert!(has_line(&out, answered), "{offered}");
    }
}

#[test]
fn session_level_direction_applies_when_the_media_has_none() {
    let sdp = crlf(&SIPP.replace("t=0 0", "t=0 0\na=sendonly"));
    let (_, n) = answer(&sdp, &local(), BOTH).unwrap();
    assert_eq!(n.remote_direction, Direction::SendOnly);
}

#[test]
fn g729_only_offer_has_no_common_codec() {
    let sdp = crlf(
        "v=0
        o=- 1 1 IN IP4 10.1.1.1
        s=-
        c=IN IP4 10.1.1.1
        t=0 0
        m=audio 5004 RTP/AVP 18 101
        a=rtpmap:18 G729/8000
        a=rtpmap:101 telephone-event/8000",
    );
    let err = answer(&sdp, &local(), BOTH).unwrap_err();
    assert_eq!(err, SdpError::NoCommonCodec);
    assert_eq!((err.code(), err.sip_status()), ("sdp.no_common_codec", 488));
}

#[test]
fn dynamic_telephone_event_96_is_kept_with_its_payload_type() {
    let sdp = crlf(
        "v=0
        o=- 1 1 IN IP4 10.1.1.1
        s=-
        c=IN IP4 10.1.1.1
        t=0 0
        m=audio 5004 RTP/AVP 8 96
        a=rtpmap:8 PCMA/8000
        a=rtpmap:96 telephone-event/8000
        a=fmtp:96 0-15",
    );
    let (out, n) = answer(&sdp, &local(), BOTH).unwrap();
    assert_eq!(n.telephone_event, Some(96));
    assert_eq!(m_lines(&out), ["m=audio 40000 RTP/AVP 8 96"]);
    assert!(has_line(&out, "a=fmtp:96 0-16"));
}

#[test]
fn dynamic_payload_type_for_pcmu_is_used() {
    let sdp = crlf(
        &SIPP
            .replace("RTP/AVP 0", "RTP/AVP 97")
            .replace("rtpmap:0", "rtpmap:97"),
    );
    let (out, n) = answer(&sdp, &local(), BOTH).unwrap();
    assert_eq!((n.codec, n.payload_type), (Codec::Pcmu, 97));
    assert!(has_line(&out, "a=rtpmap:97 PCMU/8000"));
}

#[test]
fn rtcp_attribute_gives_the_rtcp_address() {
    let sdp = crlf(&format!("{SIPP}\na=rtcp:53020 IN IP4 126.16.64.4"));
    let (_, n) = answer(&sdp, &local(), BOTH).unwrap();
    assert_eq!(n.remote_rtcp, addr("126.16.64.4:53020"));
    let sdp = crlf(&format!("{SIPP}\na=rtcp:53020"));
    assert_eq!(
        answer(&sdp, &local(), BOTH).unwrap().1.remote_rtcp,
        addr("127.0.0.1:53020")
    );
}

#[test]
fn rtp_on_the_last_port_has_no_rtcp_port() {
    let sdp = crlf(&SIPP.replace("6000", "65535"));
    let (_, n) = answer(&sdp, &local(), BOTH).unwrap();
    assert_eq!(n.remote_rtp, addr("127.0.0.1:65535"));
    assert_eq!(n.remote_rtcp, None);
}

#[test]
fn ipv6_offer_and_ipv6_media_node_use_ip6() {
    let sdp = crlf(&SIPP.replace("IN IP4 127.0.0.1", "IN IP6 2001:db8::5"));
    let mut ours = local();
    ours.address = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
    let (out, n) = answer(&sdp, &ours, BOTH).unwrap();
    assert_eq!(n.remote_rtp, addr("[2001:db8::5]:6000"));
    assert!(has_line(&out, "c=IN IP6 2001:db8::1"));
    assert!(has_line(&out, "o=conclave 77 1 IN IP6 2001:db8::1"));
}

#[test]
fn other_address_family_is_refused() {
    let sdp = crlf(&SIPP.replace("c=IN IP4 127.0.0.1", "c=IN IP6 ::1"));
    let err = answer(&sdp, &local(), BOTH).unwrap_err();
    assert_eq!((err.code(), err.sip_status()), ("sdp.address_family", 488));
}

#[test]
fn no_audio_stream_and_disabled_audio_are_no_audio() {
    let video = crlf(&SIPP.replace("m=audio", "m=video"));
    assert_eq!(
        answer(&video, &local(), BOTH).unwrap_err(),
        SdpError::NoAudio
    );
    let disabled = crlf(&SIPP.replace("6000", "0"));
    let err = answer(&disabled, &local(), BOTH).unwrap_err();
    assert_eq!(err.code(), "sdp.no_audio");
    let bare = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\n";
    assert_eq!(answer(bare, &local(), BOTH).unwrap_err(), SdpError::NoAudio);
}

#[test]
fn media_level_connection_overrides_the_session_one() {
    let sdp = crlf(&format!("{SIPP}\nc=IN IP4 10.9.9.9"));
    let (_, n) = answer(&sdp, &local(), BOTH).unwrap();
    assert_eq!(n.remote_rtp, addr("10.9.9.9:6000"));
}

#[test]
fn missing_or_unusable_connection_is_malformed() {
    let none = crlf(&SIPP.replace("c=IN IP4 127.0.0.1\n", ""));
    assert_eq!(
        answer(&none, &local(), BOTH).unwrap_err().code(),
        "sdp.malformed"
    );
    let host = crlf(&SIPP.replace("c=IN IP4 127.0.0.1", "c=IN IP4 pbx.example.com"));
    assert_eq!(answer(&host, &local(), BOTH).unwrap_err().sip_status(), 400);
}

#[test]
fn lf_only_line_endings_are_read() {
    let lf: String = SIPP.lines().map(|l| format!("{}\n", l.trim())).collect();
    assert_eq!(answer(&lf, &local(), BOTH).unwrap().1.codec, Codec::Pcmu);
}

#[test]
fn out_of_range_port_is_malformed() {
    let sdp = crlf(&SIPP.replace("6000", "70000"));
    let err = answer(&sdp, &local(), BOTH).unwrap_err();
    assert_eq!(
        err,
        SdpError::Malformed("m= port is not a number from 0 to 65535")
    );
}

#[test]
fn a_hundred_m_lines_are_answered_one_for_one() {
    let mut sdp = crlf(SIPP);
    for i in 0..100 {
        sdp.push_str(&format!(
            "m=video {} RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n",
            7000 + i
        ));
    }
    let (out, n) = answer(&sdp, &local(), BOTH).unwrap();
    assert_eq!(n.codec, Codec::Pcmu);
    let m = m_lines(&out);
    assert_eq!(m.len(), 101);
    assert!(m.iter().skip(1).all(|l| *l == "m=video 0 RTP/AVP 96"));
}

#[test]
fn absurd_payload_types_are_skipped() {
    let sdp = crlf(&SIPP.replace("RTP/AVP 0", "RTP/AVP 300 -1 abc 128 0"))
        + "a=rtpmap:300 PCMU/8000\r\na=rtpmap:abc PCMA\r\n";
    let (_, n) = answer(&sdp, &local(), BOTH).unwrap();
    assert_eq!(n.payload_type, 0);
}

#[test]
fn huge_sdp_is_too_large() {
    let big = format!("{}{}", crlf(SIPP), "a=x:y\r\n".repeat(MAX_SDP_BYTES / 7));
    let err = answer(&big, &local(), BOTH).unwrap_err();
    assert_eq!(err.code(), "sdp.too_large");
    assert_eq!(
        body_text(big.as_bytes()).unwrap_err().code(),
        "sdp.too_large"
    );
}

#[test]
fn non_utf8_body_is_malformed() {
    let mut body = crlf(SIPP).into_bytes();
    body.extend_from_slice(&[0xff, 0xfe, b'\r', b'\n']);
    assert_eq!(body_text(&body).unwrap_err().code(), "sdp.malformed");
    assert!(body_text(crlf(SIPP).as_bytes()).is_ok());
}

#[test]
fn garbage_and_control_characters_are_malformed() {
    for bad in [
        "",
        "hello",
        "v=1\r\n",
        "o=- 1 1 IN IP4 1.2.3.4\r\nv=0\r\n",
        "v=0\r\nm=audio\r\n",
        "v=0\r\nm=audio 5000 RTP/AVP\r\n",
        "v=0\r\nX=1\r\n",
        "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5000 RTP/AVP 0 \rinjected\r\n",
        "v=0\r\nc=IN IP9 1.2.3.4\r\n",
        "v=0\r\nc=IN IP4 ::1\r\n",
    ] {
        let err = answer(bad, &local(), BOTH).unwrap_err();
        assert_eq!(err.code(), "sdp.malformed", "{bad:?}");
    }
}

#[test]
fn our_offer_round_trips_through_a_remote_answer() {
    // given our offer for an INVITE that came without SDP
    let ours = local();
    let o = offer(&ours, &[Codec::Pcma, Codec::Pcmu, Codec::Pcma]);
    assert_eq!(m_lines(&o), ["m=audio 40000 RTP/AVP 8 0 101"]);
    assert!(has_line(&o, "a=fmtp:101 0-16"));
    // when a phone answers it (our own answerer stands in for the phone)
    let phone = LocalMedia {
        address: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)),
        port: 5062,
        session_id: 5,
        session_version: 5,
    };
    let (ans, _) = answer(&o, &phone, &[Codec::Pcmu, Codec::Pcma]).unwrap();
    // then we read the codec, telephone-event and address from the answer
    let n = accept_answer(&ans, &ours).unwrap();
    assert_eq!((n.codec, n.payload_type), (Codec::Pcma, 8));
    assert_eq!(n.telephone_event, Some(101));
    assert_eq!(n.remote_rtp, addr("10.0.0.9:5062"));
    assert_eq!(n.ptime, Some(20));
}

#[test]
fn empty_codec_list_offers_both() {
    assert_eq!(
        m_lines(&offer(&local(), &[])),
        ["m=audio 40000 RTP/AVP 0 8 101"]
    );
}

#[test]
fn rejected_or_unusable_answers_are_refused() {
    let ours = local();
    let rejected = crlf(&SIPP.replace("6000", "0"));
    assert_eq!(
        accept_answer(&rejected, &ours).unwrap_err(),
        SdpError::NoCommonCodec
    );
    let srtp = crlf(&SIPP.replace("RTP/AVP", "RTP/SAVP"));
    assert_eq!(
        accept_answer(&srtp, &ours).unwrap_err(),
        SdpError::UnsupportedProfile
    );
    let g729 = crlf(&SIPP.replace("RTP/AVP 0", "RTP/AVP 18"));
    assert_eq!(
        accept_answer(&g729, &ours).unwrap_err(),
        SdpError::NoCommonCodec
    );
    let v6 = crlf(&SIPP.replace("IN IP4 127.0.0.1", "IN IP6 ::1"));
    assert_eq!(
        accept_answer(&v6, &ours).unwrap_err(),
        SdpError::AddressFamily
    );
    assert_eq!(
        accept_answer("v=0\r\n", &ours).unwrap_err(),
        SdpError::NoAudio
    );
}

fn real_offers() -> Vec<String> {
    [LINPHONE, ZOIPER, BRIA, SIPP, WEBRTC]
        .iter()
        .map(|s| crlf(s))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(text) = body_text(&body) {
            let _ = answer(text, &local(), BOTH);
            let _ = accept_answer(text, &local());
        }
    }

    #[test]
    fn mutated_real_offers_never_panic(
        which in 0usize..5,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = real_offers().swap_remove(which).into_bytes();
        for (at, b) in edits {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        let text = String::from_utf8_lossy(&bytes);
        if let Ok((out, _)) = answer(&text, &local(), BOTH) {
            // whatever we answer is itself SDP we can read
            prop_assert!(parse(&out).is_ok());
        }
        let _ = accept_answer(&text, &local());
    }
}
