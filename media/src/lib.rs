//! The media node: WebRTC peers, SFU forwarding, audio mixing and recording, driven by engine decisions (not built yet).
