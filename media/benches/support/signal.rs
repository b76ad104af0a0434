//! Joining the SFU across the two processes of a benchmark. The parent's half: the SFU
//! answers the child's offer, and its candidates and offers go to the child; the
//! child's answers to those offers go back to the SFU. The child's half: a synthetic
//! client offers (candidates inline), then applies whatever the parent relays.

use std::sync::Arc;

use conclave_media::{Sfu, SfuSignal};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use webrtc::peer_connection::RTCSessionDescription;

use crate::common::{Client, GUARD};
use crate::wire::{self, emit, id, op, Link};

/// Parent: hands every `server_answer` line of the child to the SFU (`bench` names
/// the benchmark in what a refused answer prints).
pub fn answer_server_offers(
    sfu: &Sfu,
    mut unsolicited: mpsc::UnboundedReceiver<Value>,
    bench: &'static str,
) {
    let sfu = sfu.clone();
    tokio::spawn(async move {
        while let Some(v) = unsolicited.recv().await {
            if op(&v) != "server_answer" {
                continue;
            }
            let (sfu, who) = (sfu.clone(), id(&v).to_owned());
            let sdp = v["sdp"].as_str().unwrap_or("").to_owned();
            tokio::spawn(async move {
                match sfu.answer(&who, sdp).await {
                    // A late answer at teardown, after the SFU let the client go.
                    Err(e) if e.code() == "sfu.unknown_participant" => {}
                    Err(e) => eprintln!("{bench} bench: answer of {who} refused: {e}"),
                    Ok(()) => {}
                }
            });
        }
    });
}

/// Parent: the client `request["id"]` joins `room`. The child makes it on `request`
/// and replies `offer`; the SFU's answer, candidates and later offers are relayed to
/// it. Returns once the child reports the connection up (`connected`).
pub async fn join(sfu: &Sfu, link: &Arc<Link>, room: &str, request: Value) {
    let who = id(&request).to_owned();
    let (tx, mut rx) = mpsc::channel(256);
    sfu.connect(room, &who, tx).await.unwrap();
    let offer = link.request(request, "offer", GUARD).await.unwrap();
    let answer = sfu
        .offer(&who, offer["sdp"].as_str().unwrap_or("").to_owned())
        .await
        .unwrap();
    let connected = link.expect("connected", &who);
    link.send(&json!({"op": "answer", "id": who, "sdp": answer}))
        .unwrap();
    let (link2, who2) = (link.clone(), who.clone());
    tokio::spawn(async move {
        while let Some(signal) = rx.recv().await {
            let msg = match signal {
                SfuSignal::Candidate(init) => json!({"op": "candidate", "id": who2, "init": init}),
                SfuSignal::Offer(sdp) => json!({"op": "server_offer", "id": who2, "sdp": sdp}),
                SfuSignal::DominantSpeaker(_) => continue,
                SfuSignal::Closed => break,
            };
            if link2.send(&msg).is_err() {
                break;
            }
        }
    });
    wire::wait(connected, "connected", GUARD).await.unwrap();
}

fn err(e: &dyn std::fmt::Display) -> String {
    e.to_string()
}

/// Child: `c` offers what it was given to send, once its candidates are gathered (they
/// go inline), as an `offer` line for `who`.
pub async fn offer(c: &Client, who: &str) -> Result<(), String> {
    let offer = c.pc.create_offer(None).await.map_err(|e| err(&e))?;
    c.pc.set_local_description(offer)
        .await
        .map_err(|e| err(&e))?;
    let mut gathered = c.gathered.clone();
    tokio::time::timeout(GUARD, gathered.wait_for(|g| *g))
        .await
        .map_err(|e| err(&e))?
        .map_err(|e| err(&e))?;
    let offer =
        c.pc.local_description()
            .await
            .ok_or("no local description")?;
    emit(&json!({"op": "offer", "id": who, "sdp": offer.sdp}));
    Ok(())
}

/// Child: whether a client (its `connected` flag) came up within the guard; if so, a
/// `connected` line for `who`.
pub async fn connected(mut connected: watch::Receiver<bool>, who: &str) -> bool {
    let up = tokio::time::timeout(GUARD, connected.wait_for(|c| *c))
        .await
        .is_ok_and(|r| r.is_ok());
    if up {
        emit(&json!({"op": "connected", "id": who}));
    }
    up
}

/// Child: applies what the parent relays for `c` until `inbox` closes: the SFU's
/// answer, its candidates, and its offers (answered with a `server_answer` line).
pub async fn follow(
    c: &Client,
    who: &str,
    inbox: &mut mpsc::UnboundedReceiver<Value>,
) -> Result<(), String> {
    while let Some(m) = inbox.recv().await {
        match op(&m) {
            "answer" => {
                let sdp = m["sdp"].as_str().unwrap_or("").to_owned();
                let answer = RTCSessionDescription::answer(sdp).map_err(|e| err(&e))?;
                c.pc.set_remote_description(answer)
                    .await
                    .map_err(|e| err(&e))?;
            }
            "candidate" => {
                if let Ok(init) = serde_json::from_value(m["init"].clone()) {
                    c.pc.add_ice_candidate(init).await.map_err(|e| err(&e))?;
                }
            }
            "server_offer" => {
                let sdp = m["sdp"].as_str().unwrap_or("").to_owned();
                let offer = RTCSessionDescription::offer(sdp).map_err(|e| err(&e))?;
                c.pc.set_remote_description(offer)
                    .await
                    .map_err(|e| err(&e))?;
                let answer = c.pc.create_answer(None).await.map_err(|e| err(&e))?;
                c.pc.set_local_description(answer.clone())
                    .await
                    .map_err(|e| err(&e))?;
                emit(&json!({"op": "server_answer", "id": who, "sdp": answer.sdp}));
            }
            _ => {}
        }
    }
    let _ = c.pc.close().await;
    Ok(())
}
