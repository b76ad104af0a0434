//! What the two processes of a two-process benchmark (`bridge`, `sfu`) share: CPU
//! clocks read from /proc, and the JSON-lines link between the measuring parent and its
//! clients child.
//!
//! The parent (what is measured: the SFU, the media node) re-executes its own binary
//! with the bench's role variable set to [`ROLE_CLIENTS`]; the child (the synthetic
//! clients) reads commands on stdin and answers on stdout, one JSON object per line,
//! each with an `op` and an `id`. Replies are matched to their request by
//! `"<op>:<id>"`. The clients' CPU (SRTP, codecs, sockets) is then not the parent's.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

/// The value of a bench's role variable in its clients child.
pub const ROLE_CLIENTS: &str = "clients";

/// True in the clients child of a bench whose role variable is `var`.
pub fn is_clients(var: &str) -> bool {
    std::env::var(var).as_deref() == Ok(ROLE_CLIENTS)
}

/// Clock ticks per second of the utime/stime fields (USER_HZ, 100 on Linux).
const TICKS: f64 = 100.0;

/// User + system CPU seconds of `/proc/<what>/stat` (`self`: the process,
/// `thread-self`: the calling thread).
fn cpu(what: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{what}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // After ")": state is field 3, utime 14, stime 15 (1-based) → indices 11, 12.
    (tick(11) + tick(12)) / TICKS
}

/// CPU seconds of this whole process.
pub fn process_cpu() -> f64 {
    cpu("self")
}

/// CPU seconds of the calling thread only.
pub fn thread_cpu() -> f64 {
    cpu("thread-self")
}

/// CPU seconds of process `pid` (the clients child, to show how loaded it was).
pub fn pid_cpu(pid: u32) -> f64 {
    cpu(&pid.to_string())
}

/// One line out: a JSON object and a newline (stdout is line-buffered).
pub fn emit(v: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

pub fn op(v: &Value) -> &str {
    v["op"].as_str().unwrap_or("")
}

pub fn id(v: &Value) -> &str {
    v["id"].as_str().unwrap_or("")
}

/// Every line of stdin, parsed, on a channel (a reader thread: stdin blocks).
pub fn stdin_lines() -> mpsc::UnboundedReceiver<Value> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { return };
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                if tx.send(v).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>>;

/// The parent's end: the child process, its stdin, and who waits for which reply.
/// Lines that nobody waits for go to `unsolicited`.
pub struct Link {
    stdin: Mutex<Option<ChildStdin>>,
    child: Mutex<Child>,
    waiters: Waiters,
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("bench.spawn: {0}")]
    Spawn(#[from] std::io::Error),
    #[error("bench.timeout: no {0} from the clients process")]
    Timeout(String),
    #[error("bench.closed: the clients process went away")]
    Closed,
}

impl LinkError {
    pub fn code(&self) -> &'static str {
        match self {
            LinkError::Spawn(_) => "bench.spawn",
            LinkError::Timeout(_) => "bench.timeout",
            LinkError::Closed => "bench.closed",
        }
    }
}

impl Link {
    /// Starts the clients process: this binary again, with `role_var` set to
    /// [`ROLE_CLIENTS`].
    pub fn spawn(role_var: &str) -> Result<(Arc<Link>, mpsc::UnboundedReceiver<Value>), LinkError> {
        let mut child = Command::new(std::env::current_exe()?)
            .env(role_var, ROLE_CLIENTS)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().ok_or(LinkError::Closed)?;
        let stdin = child.stdin.take();
        let waiters: Waiters = Arc::default();
        let (tx, unsolicited) = mpsc::unbounded_channel();
        let w = waiters.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let Ok(v) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                let key = format!("{}:{}", op(&v), id(&v));
                let waiter = w.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
                match waiter {
                    Some(waiter) => {
                        let _ = waiter.send(v);
                    }
                    None => {
                        if tx.send(v).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Ok((
            Arc::new(Link {
                stdin: Mutex::new(stdin),
                child: Mutex::new(child),
                waiters,
            }),
            unsolicited,
        ))
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.lock().unwrap_or_else(|e| e.into_inner()).id()
    }

    /// Registers interest in the reply `"<op>:<id>"` (before sending what causes it).
    pub fn expect(&self, op: &str, id: &str) -> oneshot::Receiver<Value> {
        let (tx, rx) = oneshot::channel();
        self.waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(format!("{op}:{id}"), tx);
        rx
    }

    pub fn send(&self, v: &Value) -> Result<(), LinkError> {
        let mut stdin = self.stdin.lock().unwrap_or_else(|e| e.into_inner());
        let s = stdin.as_mut().ok_or(LinkError::Closed)?;
        writeln!(s, "{v}").map_err(|_| LinkError::Closed)?;
        s.flush().map_err(|_| LinkError::Closed)
    }

    /// Sends `v` and waits for its reply `"<op>:<id of v>"`.
    pub async fn request(
        &self,
        v: Value,
        reply: &str,
        within: Duration,
    ) -> Result<Value, LinkError> {
        let rx = self.expect(reply, id(&v));
        self.send(&v)?;
        wait(rx, reply, within).await
    }

    /// Closes the child's stdin (it exits on EOF) and reaps it.
    pub fn close(&self) {
        self.stdin.lock().unwrap_or_else(|e| e.into_inner()).take();
        let _ = self.child.lock().unwrap_or_else(|e| e.into_inner()).wait();
    }
}

/// A registered reply, within a deadline.
pub async fn wait(
    rx: oneshot::Receiver<Value>,
    what: &str,
    within: Duration,
) -> Result<Value, LinkError> {
    match tokio::time::timeout(within, rx).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(_)) => Err(LinkError::Closed),
        Err(_) => Err(LinkError::Timeout(what.to_owned())),
    }
}

/// A status request's reply fields, for the parent's readiness polls.
pub fn status_request() -> Value {
    json!({"op": "status", "id": ""})
}
