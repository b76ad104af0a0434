//! A real nats-server for tests: started on a free loopback port with JetStream and a
//! store directory, killed by PID when dropped, restartable on the same port and store.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use conclave_engine::service::{Engine, EngineConfig, Outcome, Request};
use conclave_engine::{Actor, Command as Cmd, Origin};

pub struct NatsServer {
    child: Option<Child>,
    pub port: u16,
    pub store: PathBuf,
    bin: PathBuf,
    /// A configuration file to run with (`-c`) instead of `-js -sd <store>`.
    config: Option<PathBuf>,
}

/// The nats-server binary, if installed (scripts/test installs the Debian package).
pub fn binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("NATS_SERVER_BIN") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl NatsServer {
    /// Starts a server, or returns `None` (after saying why) if nats-server is absent.
    pub fn start(store: &Path) -> Option<NatsServer> {
        let Some(bin) = binary() else {
            eprintln!("SKIPPED: nats-server is not installed (apt-get install nats-server)");
            return None;
        };
        let mut s = NatsServer {
            child: None,
            port: free_port(),
            store: store.to_path_buf(),
            bin,
            config: None,
        };
        s.spawn();
        Some(s)
    }

    /// Starts a server with this configuration file text (written to `dir`), or
    /// returns `None` if nats-server is absent.
    pub fn start_with_config(dir: &Path, config: &str) -> Option<NatsServer> {
        let Some(bin) = binary() else {
            eprintln!("SKIPPED: nats-server is not installed (apt-get install nats-server)");
            return None;
        };
        let path = dir.join("nats-server.conf");
        std::fs::write(&path, config).unwrap();
        let mut s = NatsServer {
            child: None,
            port: free_port(),
            store: dir.to_path_buf(),
            bin,
            config: Some(path),
        };
        s.spawn();
        Some(s)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let mut command = Command::new(&self.bin);
        match &self.config {
            Some(file) => command.arg("-c").arg(file),
            None => command.args(["-js", "-sd"]).arg(&self.store),
        };
        let child = command
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        self.wait_ready();
    }

    /// Ready when it answers with its INFO line.
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(s) = TcpStream::connect(("127.0.0.1", self.port)) {
                s.set_read_timeout(Some(Duration::from_secs(2))).ok();
                let mut line = String::new();
                if BufReader::new(s).read_line(&mut line).is_ok() && line.starts_with("INFO") {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the server (SIGKILL by PID) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and store.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn open_engine(dir: &Path) -> Engine {
    Engine::open(EngineConfig::new(dir)).unwrap()
}

pub fn cmd(v: serde_json::Value) -> Cmd {
    serde_json::from_value(v).unwrap()
}

/// Executes a command as the operator through the "test" gateway.
pub async fn exec(engine: &Engine, v: serde_json::Value) -> Outcome {
    exec_as(engine, Actor::Admin, v).await
}

/// Executes a command as `actor` through the "test" gateway.
pub async fn exec_as(engine: &Engine, actor: Actor, v: serde_json::Value) -> Outcome {
    let origin = Origin {
        gateway: "test".into(),
        protocol: "test".into(),
        remote_addr: None,
    };
    engine
        .execute(Request::new(cmd(v), actor, origin))
        .await
        .unwrap()
}

pub fn person(addr: &str) -> Actor {
    Actor::Identity(conclave_engine::Address::parse(addr).unwrap())
}

/// A scripted meeting in `room`: create, two joins, a chat line, a mute, a kick, a leave.
pub async fn meeting(engine: &Engine, room: &str, tag: &str) {
    use serde_json::json;
    exec(
        engine,
        json!({"create_room": {"room": room, "private": false, "owner": "sip:alice@example.org"}}),
    )
    .await;
    for who in ["alice", "bob"] {
        exec_as(
            engine,
            person(&format!("sip:{who}@example.org")),
            json!({"join": {"room": room, "session": format!("{tag}-{who}"), "credentials": {}}}),
        )
        .await;
    }
    exec_as(
        engine,
        person("sip:alice@example.org"),
        json!({"post_message": {"room": room, "body": "hello"}}),
    )
    .await;
    exec(engine, json!({"destroy_room": {"room": room}})).await;
}

/// Waits until `f` holds, up to `secs`.
pub async fn eventually(secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "condition not met in {secs}s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
