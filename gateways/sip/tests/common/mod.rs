//! The real SIP messages in tests/fixtures/sip, shared by the parsing tests and the fuzz
//! harness's corpus.

/// Every fixture, by file stem.
pub const FIXTURES: &[&str] = &[
    "register",
    "register_auth",
    "invite_sdp",
    "ack",
    "bye",
    "cancel",
    "message",
    "message_compact",
    "options",
    "info",
    "resp_100",
    "resp_180",
    "resp_200",
    "resp_401",
    "resp_487",
];

/// A fixture's bytes (empty when missing: the parsing test says which).
pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/sip/{name}.sip",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(path).unwrap_or_default()
}
