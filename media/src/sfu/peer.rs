//! One participant's peer connection: codecs (Opus, VP8 with REMB feedback),
//! interceptors (NACK both ways, RTCP reports, TWCC receiver, simulcast RID/MID
//! extensions, keyframe requests and REMB to us, simulcast layers kept out of our
//! reports: `rid_reports.rs`), the socket from the
//! port range, and the event handler that feeds the SFU.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};

use rtc::interceptor::Slot;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8};
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    register_default_interceptors, MediaEngine, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCConfigurationBuilder, RTCPeerConnectionIceEvent,
    RTCPeerConnectionState, Registry, SettingEngineBuilder,
};

use super::error::{webrtc as stack, SfuError};
use super::keyframe::{KeyframeRequests, SLOT};
use super::{candidates, rid_reports};
use super::{Inner, ParticipantId, SfuSignal};

fn feedback(typ: &str, parameter: &str) -> RTCPFeedback {
    RTCPFeedback {
        typ: typ.to_owned(),
        parameter: parameter.to_owned(),
    }
}

/// Opus as every participant negotiates it (the bridge's local tracks use it too).
pub(crate) fn opus() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

/// Only Opus and VP8, so every publisher sends what every subscriber can take
/// (forwarding never transcodes).
fn media_engine() -> Result<MediaEngine, SfuError> {
    let mut engine = MediaEngine::default();
    engine
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: opus(),
                payload_type: 111,
            },
            RtpCodecKind::Audio,
        )
        .map_err(stack)?;
    engine
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: RTCRtpCodec {
                    mime_type: MIME_TYPE_VP8.to_owned(),
                    clock_rate: 90_000,
                    channels: 0,
                    sdp_fmtp_line: String::new(),
                    // goog-remb: subscribers report their bandwidth estimate, which
                    // picks their simulcast layer.
                    rtcp_feedback: vec![
                        feedback("ccm", "fir"),
                        feedback("nack", "pli"),
                        feedback("goog-remb", ""),
                    ],
                },
                payload_type: 96,
            },
            RtpCodecKind::Video,
        )
        .map_err(stack)?;
    // RFC 6464 audio levels from publishers feed the dominant-speaker detector, and
    // go on to subscribers under their id. The RID/MID extensions simulcast needs are
    // registered by `register_default_interceptors`.
    engine
        .register_header_extension(
            RTCRtpHeaderExtensionCapability {
                uri: super::negotiate::AUDIO_LEVEL_URI.to_owned(),
            },
            RtpCodecKind::Audio,
            None,
        )
        .map_err(stack)?;
    Ok(engine)
}

pub(crate) async fn build(
    addr: SocketAddr,
    loopback_only: bool,
    handler: Arc<dyn PeerConnectionEventHandler>,
) -> Result<Arc<dyn PeerConnection>, SfuError> {
    let mut engine = media_engine()?;
    let registry = register_default_interceptors(Registry::new(), &mut engine)
        .map_err(stack)?
        .with(Slot::from(SLOT), KeyframeRequests::default())
        .with(
            Slot::from(rid_reports::SLOT),
            rid_reports::KeepRid::default(),
        );
    let settings = SettingEngineBuilder::new()
        .with_include_loopback_candidate(loopback_only)
        .build();
    let pc = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(engine)
        .with_setting_engine(settings)
        .with_interceptor_registry(registry)
        .with_handler(handler)
        .with_udp_addrs(vec![addr])
        .build()
        .await
        .map_err(stack)?;
    Ok(Arc::new(pc))
}

/// Events of one participant's connection, handed to the SFU by participant id (the
/// handler exists before the participant record does). Anything that calls back into
/// the peer connection runs on its own task, never in the driver's callback.
pub(crate) struct PeerEvents {
    pub(crate) sfu: Weak<Inner>,
    pub(crate) participant: ParticipantId,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for PeerEvents {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        let Some(inner) = self.sfu.upgrade() else {
            return;
        };
        let Some(p) = inner.participant(&self.participant) else {
            return;
        };
        for c in candidates::outgoing(&event.candidate, &inner.config.announce) {
            // The gateway drains its channel; a closed one means it has gone.
            let _ = p.signals.send(SfuSignal::Candidate(c)).await;
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let Some(inner) = self.sfu.upgrade() else {
            return;
        };
        let Some(p) = inner.participant(&self.participant) else {
            return;
        };
        p.set_state(state);
        match state {
            RTCPeerConnectionState::Connected => {
                tokio::spawn(super::negotiate::connected(inner, p));
            }
            RTCPeerConnectionState::Failed => {
                let id = self.participant.clone();
                tokio::spawn(async move {
                    let _ = p.signals.send(SfuSignal::Closed).await;
                    super::Sfu { inner }.disconnect(&id).await;
                });
            }
            _ => {}
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let Some(inner) = self.sfu.upgrade() else {
            return;
        };
        let Some(p) = inner.participant(&self.participant) else {
            return;
        };
        tokio::spawn(super::negotiate::published(inner, p, track));
    }
}
