//! Policies: retention days, IP obfuscation, welcome text, server stream.

use crate::common::*;
use conclave_engine::*;

#[test]
fn retention_days_follow_mumble_semantics() {
    let mut w = World::new();
    assert_eq!(w.state.policy.log_days, 31);
    w.when(&user("bob"), Command::SetLogDays { days: 7 })
        .err("perm.not_admin", &["api_action_denied"]);
    let ev = w
        .when(&admin(), Command::SetLogDays { days: 7 })
        .ok(&["server_modify"]);
    assert_eq!(ev[0].stream(), StreamId::Server);
    assert_eq!(w.state.policy.log_days, 7);
    w.when(&admin(), Command::SetLogDays { days: 7 }).ok(&[]);
    w.when(&admin(), Command::SetLogDays { days: -1 })
        .ok(&["server_modify"]);
    w.when(&admin(), Command::SetLogDays { days: -2 })
        .err("input.invalid", &[]);
}

#[test]
fn ip_obfuscation_is_a_keyed_hash_and_can_be_turned_off() {
    let mut w = World::new();
    w.remote = Some("192.0.2.44:1234".into());
    w.run(&user("alice"), create_room("r"));
    let remote_of = |ev: &[Event]| match &ev[0].kind {
        EventKind::Joined { remote, .. } => remote.clone(),
        _ => None,
    };
    let hashed = remote_of(&w.run(&user("bob"), join("r", "b")));
    assert!(hashed.clone().unwrap().starts_with("h:"));
    // The key comes from the context: another key, another hash.
    let mut ctx = Context::new(user("carol"), w.now, "k");
    ctx.origin.remote_addr = w.remote.clone();
    ctx.ip_key = IpKey([9; 32]);
    let ev = decide(&w.state, &join("r", "c"), &ctx, &testing::FakeVerifier).unwrap();
    assert_ne!(remote_of(&ev), hashed);

    w.when(&admin(), Command::SetObfuscateIps { enabled: false })
        .ok(&["server_modify"]);
    let raw = remote_of(&w.run(&user("dan"), join("r", "d")));
    assert_eq!(raw.as_deref(), Some("192.0.2.44"));
}

#[test]
fn welcome_text_is_sanitized() {
    let mut w = World::new();
    w.when(
        &admin(),
        Command::SetWelcomeText {
            text: "Welcome to <i>Conclave</i>".into(),
        },
    )
    .ok(&["server_modify"]);
    assert_eq!(w.state.policy.welcome_text, "Welcome to Conclave");
}

#[test]
fn record_metadata_never_holds_the_raw_address() {
    let mut ctx = Context::new(user("bob"), t0(), "corr-1");
    ctx.origin = Origin {
        gateway: "sip".into(),
        protocol: "sip".into(),
        remote_addr: Some("192.0.2.1:5060".into()),
    };
    let meta = ctx.record_meta(&Policy::default());
    assert_eq!(meta.correlation_id, "corr-1");
    assert!(meta.remote.unwrap().starts_with("h:"));
    let open = Policy {
        obfuscate_ips: false,
        ..Policy::default()
    };
    assert_eq!(ctx.record_meta(&open).remote.as_deref(), Some("192.0.2.1"));
}
