// Conclave's browser client: plain JavaScript, no build step (docs/page.md).
// Joins through the REST API, then one WebSocket carries the room's committed events,
// chat and moderation commands, and the media signalling (SDP and trickle ICE) with the
// media plane. Perfect negotiation: this client is the polite peer.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const room = decodeURIComponent(location.pathname.replace(/^\/r\//, ''));
  const roomPath = '/rooms/' + encodeURIComponent(room);
  // An email invitation's link (`/r/<room>?invitation=<secret>`): the secret is the
  // single-use credential of the first join. Taken out of the address bar at once so
  // that it is not bookmarked, shared or kept in the history.
  let invitationSecret = new URLSearchParams(location.search).get('invitation') || undefined;
  // (window.history: `history` below is this page's chat history loader.)
  if (invitationSecret) window.history.replaceState(null, '', location.pathname);
  const S = {
    token: null, identity: null, session: null, principal: null, role: null,
    ws: null, pc: null, media: false, iceServers: [], local: null,
    screen: null, screenSender: null, makingOffer: false,
    details: null, nextId: 1, pending: new Map(), seen: new Set(),
    lobby: false, audioOn: true, videoOn: true, hand: false, refreshTimer: null,
    recordingEvents: 0,
  };
  // Exposed for tests and debugging.
  window.conclave = S;

  const status = (text) => { $('status').textContent = text; };
  const MODERATORS = new Set(['moderator', 'owner']);
  const PROTOCOLS = { web: 'browser', sip: 'SIP', xmpp: 'XMPP', nats: 'NATS' };

  async function api(method, path, body, token) {
    const headers = { 'content-type': 'application/json' };
    const t = token === undefined ? S.token : token;
    if (t) headers.authorization = 'Bearer ' + t;
    const r = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try { data = await r.json(); } catch (_) { /* not JSON */ }
    if (!r.ok) {
      const err = (data && data.error) || {};
      const e = new Error(err.message || r.statusText);
      e.code = err.code || 'http.' + r.status;
      throw e;
    }
    return data;
  }

  const identityOf = (name) => {
    const n = name.trim();
    return n.includes(':') ? n : 'web:' + n;
  };

  // ---------- joining ----------

  async function join(ev) {
    ev.preventDefault();
    const identity = identityOf($('name').value);
    const password = $('password').value || undefined;
    const keyName = 'conclave.guest_key.' + identity;
    const guestKey = localStorage.getItem(keyName) || undefined;
    $('join-error').textContent = '';
    $('join-button').disabled = true;
    try {
      let a;
      try {
        a = await api('POST', roomPath + '/join',
          { as: identity, password, guest_key: guestKey, invitation_secret: invitationSecret }, null);
        invitationSecret = undefined; // used: single use
      } catch (e) {
        if (e.code === 'room.not_found') {
          // A new room: create it (its creator owns it), then join with the creator's token.
          const c = await api('POST', '/rooms', { room, as: identity, password, guest_key: guestKey }, null);
          if (c.guest_key) localStorage.setItem(keyName, c.guest_key);
          a = await api('POST', roomPath + '/join', {}, c.token);
        } else if (e.code === 'room.lobby') {
          a = await api('POST', roomPath + '/knock', { as: identity, guest_key: guestKey }, null);
          S.lobby = true;
        } else {
          throw e;
        }
      }
      if (a.guest_key) localStorage.setItem(keyName, a.guest_key);
      Object.assign(S, { token: a.token, identity: a.identity, session: a.session, role: a.role });
      enter();
    } catch (e) {
      $('join-error').textContent = `${e.message} (${e.code})`;
      $('join-button').disabled = false;
    }
  }

  function enter() {
    $('join').hidden = true;
    $('conference').hidden = false;
    $('me').textContent = S.identity;
    $('my-role').textContent = S.lobby ? 'waiting in the lobby' : (S.role || 'participant');
    status(S.lobby ? 'Waiting for a moderator to admit you.' : 'Joined.');
    connect();
    if (!S.lobby) {
      refresh();
      history();
      recordingNow();
    }
  }

  // "This meeting is being recorded", as every participant must be told: from the
  // committed recording events, and at entry from the room's `active` recording (unless
  // an event came meanwhile: it is newer than the answer).
  function setRecording(on) {
    S.recordingEvents += 1;
    $('recording').hidden = !on;
    document.body.dataset.recording = String(on);
  }

  async function recordingNow() {
    const seen = S.recordingEvents;
    let l;
    try { l = await api('GET', roomPath + '/recordings'); } catch (e) { return; }
    if (S.recordingEvents === seen && l) setRecording(!!l.active);
  }

  // An admission from the lobby joins the waiting session itself (the knock's token now
  // holds a place in the room; a second join would knock again): a fresh socket brings
  // the media configuration for a participant.
  function admitted() {
    S.lobby = false;
    if (S.ws) { const ws = S.ws; S.ws = null; ws.close(); }
    enter();
  }

  // ---------- the socket ----------

  function connect() {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const url = `${proto}//${location.host}${roomPath}/ws?signalling=true&access_token=${encodeURIComponent(S.token)}`;
    const ws = new WebSocket(url);
    S.ws = ws;
    ws.onmessage = (m) => {
      let v;
      try { v = JSON.parse(m.data); } catch (_) { return; }
      onMessage(v);
    };
    ws.onclose = (e) => {
      if (S.ws !== ws) return;
      S.ws = null;
      closeMedia();
      status(e.code === 4001 ? 'Your session has ended (left, kicked or banned).' : 'Disconnected.');
      document.body.dataset.ended = String(e.code);
      for (const b of document.querySelectorAll('#conference button, #chat-form input')) b.disabled = true;
    };
  }

  function send(v) {
    if (S.ws && S.ws.readyState === WebSocket.OPEN) S.ws.send(JSON.stringify(v));
  }

  // A chat or moderation command over the socket; resolves with its result.
  function command(type, fields) {
    const id = 'c' + (S.nextId++);
    return new Promise((resolve, reject) => {
      S.pending.set(id, { resolve, reject });
      send(Object.assign({ type, id }, fields || {}));
    });
  }

  function onMessage(v) {
    if (v.event_type) { onEvent(v); return; }
    switch (v.type) {
      case 'media.config':
        S.iceServers = v.ice_servers || [];
        S.media = !!v.enabled;
        $('media-state').textContent = v.enabled ? ''
          : 'Audio and video are not available on this server; chat and moderation work.';
        if (v.enabled && !S.lobby) startMedia();
        break;
      case 'media.answer': describe('answer', v.sdp); break;
      case 'media.offer': describe('offer', v.sdp); break;
      case 'media.candidate':
        if (S.pc && v.candidate) S.pc.addIceCandidate(v.candidate).catch((e) => console.warn('candidate', e));
        break;
      case 'media.closed': closeMedia(); break;
      case 'media.dominant_speaker': markSpeaker(v.session); break;
      case 'result':
      case 'error': settle(v); break;
      case 'revoked': status('Your session has ended.'); break;
      default: break;
    }
  }

  function settle(v) {
    const p = v.id && S.pending.get(v.id);
    if (p) {
      S.pending.delete(v.id);
      if (v.type === 'result') p.resolve(v);
      else p.reject(Object.assign(new Error(v.message), { code: v.code }));
    } else if (v.type === 'error') {
      status(`Error: ${v.message} (${v.code})`);
    }
  }

  const run = (type, fields) => command(type, fields)
    .catch((e) => { status(`${type}: ${e.message} (${e.code})`); throw e; });

  // ---------- events ----------

  function onEvent(v) {
    const d = (v.event && v.event.data) || {};
    if (S.seen.has(v.seq)) return;
    S.seen.add(v.seq);
    switch (v.event_type) {
      case 'chat_message': addChat(d.from, d.body, v.at); return;
      case 'room_leave': if (d.session) removeTile(d.session); break;
      case 'lobby_admit': if (S.lobby && d.principal === S.identity) { admitted(); return; } break;
      case 'recording_started': setRecording(true); break;
      case 'recording_stopped': setRecording(false); break;
      default: break;
    }
    if (!S.lobby) scheduleRefresh();
  }

  function scheduleRefresh() {
    clearTimeout(S.refreshTimer);
    S.refreshTimer = setTimeout(refresh, 100);
  }

  async function refresh() {
    let d;
    try { d = await api('GET', roomPath); } catch (e) { return; }
    S.details = d;
    const present = d.present || [];
    const mine = present.find((m) => (m.sessions || []).some((s) => s.session === S.session));
    if (mine) {
      S.principal = mine.principal;
      S.role = mine.role;
      S.hand = !!mine.hand_raised;
      // The server's state wins: a moderator's mute is kept whatever this page does.
      setAudio(mine.audio === 'open', false);
      setVideo(mine.video === 'open', false);
      $('hand').setAttribute('aria-pressed', String(S.hand));
      $('hand').textContent = S.hand ? 'Lower hand' : 'Raise hand';
    }
    $('my-role').textContent = S.role || 'participant';
    renderParticipants(present);
    const mod = MODERATORS.has(S.role);
    $('moderation').hidden = !mod;
    $('lock').textContent = d.locked ? 'Unlock room' : 'Lock room';
    if (mod) refreshLobby();
    for (const [session, tile] of tilesBySession()) labelTile(tile, session);
  }

  function protocolOf(m) {
    const gws = new Set((m.sessions || []).map((s) => PROTOCOLS[s.gateway] || s.gateway));
    return [...gws].join(', ');
  }

  function button(label, onClick) {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = label;
    b.addEventListener('click', onClick);
    return b;
  }

  function renderParticipants(present) {
    const ul = $('participants');
    ul.replaceChildren();
    const mod = MODERATORS.has(S.role);
    for (const m of present) {
      const li = document.createElement('li');
      li.dataset.principal = m.principal;
      const who = document.createElement('span');
      who.className = 'who';
      who.textContent = m.principal;
      const facts = [m.role || 'no role', protocolOf(m)];
      if (m.audio !== 'open') facts.push(m.audio === 'moderator' ? 'muted by a moderator' : 'muted');
      if (m.video !== 'open') facts.push(m.video === 'moderator' ? 'video paused by a moderator' : 'video off');
      if (m.hand_raised) facts.push('hand raised');
      const info = document.createElement('span');
      info.className = 'facts';
      info.textContent = ' (' + facts.filter(Boolean).join('; ') + ')';
      li.append(who, info);
      if (mod && m.principal !== S.principal) {
        const acts = document.createElement('span');
        acts.className = 'actions';
        const subject = m.principal;
        const name = (label) => `${label} ${subject}`;
        const add = (label, type, fields) => {
          const b = button(label, () => run(type, Object.assign({ subject }, fields || {})).catch(() => {}));
          b.setAttribute('aria-label', name(label));
          acts.append(b);
        };
        if (m.audio === 'open') add('Mute', 'mute'); else add('Unmute', 'unmute');
        // Video controls only for who can send video (a browser): a phone has none.
        const video = (m.sessions || []).some((x) => x.gateway === 'web');
        if (video || m.video !== 'open') {
          if (m.video === 'open') add('Pause video', 'pause_video'); else add('Resume video', 'resume_video');
        }
        if (m.hand_raised) add('Lower hand', 'lower_hand');
        if (!MODERATORS.has(m.role)) add('Promote', 'role', { role: 'moderator' });
        add('Kick', 'kick');
        add('Ban', 'ban');
        li.append(' ', acts);
      }
      ul.append(li);
    }
  }

  async function refreshLobby() {
    let l;
    try { l = await api('GET', roomPath + '/lobby'); } catch (e) { return; }
    const ul = $('lobby');
    ul.replaceChildren();
    for (const k of l.lobby || []) {
      const li = document.createElement('li');
      li.append(k.principal + ' ');
      const admit = button('Admit', () => run('admit', { subject: k.principal }).catch(() => {}));
      admit.setAttribute('aria-label', 'Admit ' + k.principal);
      const reject = button('Turn away', () => run('reject', { subject: k.principal }).catch(() => {}));
      reject.setAttribute('aria-label', 'Turn away ' + k.principal);
      li.append(admit, ' ', reject);
      ul.append(li);
    }
    if (!ul.children.length) {
      const li = document.createElement('li');
      li.textContent = 'Nobody is waiting.';
      ul.append(li);
    }
  }

  // ---------- chat ----------

  function addChat(from, body, at) {
    const li = document.createElement('li');
    const f = document.createElement('span');
    f.className = 'from';
    f.textContent = from + ': ';
    const b = document.createElement('span');
    b.className = 'body';
    b.textContent = body == null ? '[removed]' : body;
    li.append(f, b);
    if (at) li.title = at;
    const ol = $('messages');
    ol.append(li);
    ol.scrollTop = ol.scrollHeight;
  }

  async function history() {
    let h;
    try { h = await api('GET', roomPath + '/messages?limit=50'); } catch (e) { return; }
    for (const m of h.messages || []) {
      if (S.seen.has(m.seq)) continue;
      S.seen.add(m.seq);
      addChat(m.from, m.body, m.at);
    }
  }

  async function sendChat(ev) {
    ev.preventDefault();
    const input = $('chat-input');
    const body = input.value;
    if (!body.trim()) return;
    try {
      await run('chat', { body });
      input.value = '';
    } catch (_) { /* shown in the status line */ }
  }

  // ---------- media ----------

  async function startMedia() {
    if (S.pc) return;
    try {
      S.local = await navigator.mediaDevices.getUserMedia({ audio: true, video: CAMERA });
    } catch (e) {
      status('No camera or microphone: ' + e.message);
      S.local = new MediaStream();
    }
    $('local-video').srcObject = S.local;
    const pc = new RTCPeerConnection({ iceServers: S.iceServers });
    S.pc = pc;
    pc.onnegotiationneeded = async () => {
      try {
        S.makingOffer = true;
        await pc.setLocalDescription();
        send({ type: 'media.offer', sdp: pc.localDescription.sdp });
      } catch (e) {
        console.warn('offer', e);
      } finally {
        S.makingOffer = false;
      }
    };
    pc.onicecandidate = (e) => {
      if (e.candidate) send({ type: 'media.candidate', candidate: e.candidate.toJSON() });
    };
    pc.ontrack = (e) => {
      const stream = e.streams[0];
      if (stream) remoteTile(stream, e.track);
    };
    pc.onconnectionstatechange = () => {
      $('media-state').textContent = 'Media: ' + pc.connectionState;
    };
    for (const t of S.local.getTracks()) publishTrack(pc, t, S.local);
    applyLocal();
  }

  // ---------- simulcast (docs/page.md) ----------

  // The camera in HD, so that all three simulcast layers have pixels to carry.
  const CAMERA = { width: { ideal: 1280 }, height: { ideal: 720 } };
  // Lowest first: a quarter, half and full resolution. The SFU forwards one per viewer.
  const SIMULCAST = [
    { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150000 },
    { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500000 },
    { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 1500000 },
  ];

  // Publishes a local track; the camera as simulcast where the browser takes it, a
  // single encoding where addTransceiver with sendEncodings throws.
  function publishTrack(pc, track, stream) {
    if (track.kind === 'video') {
      try {
        pc.addTransceiver(track, { direction: 'sendrecv', streams: [stream], sendEncodings: SIMULCAST });
        return;
      } catch (e) {
        console.warn('simulcast refused, one encoding', e);
      }
    }
    pc.addTrack(track, stream);
  }

  // The id the SFU gave a received track: its a=msid in the server's offer (a browser
  // may name the receiving track otherwise).
  function forwardedTrackId(track) {
    const pc = S.pc;
    const t = pc && pc.getTransceivers().find((x) => x.receiver.track === track);
    const sdp = (pc && pc.remoteDescription && pc.remoteDescription.sdp) || '';
    if (!t || t.mid === null) return track.id;
    for (const section of sdp.split('\nm=').slice(1)) {
      if (!section.split(/\r?\n/).includes('a=mid:' + t.mid)) continue;
      const m = section.match(/a=msid:\S+ (\S+)/);
      if (m) return m[1];
    }
    return track.id;
  }

  // Tells the SFU the most we want of a received video: 'q' (small) or 'f'. `pin`: an
  // explicit choice that the automatic one below leaves alone.
  function setLayer(track, max, pin) {
    const id = typeof track === 'string' ? track : forwardedTrackId(track);
    if (pin) S.layerPins.add(id);
    if (S.layers.get(id) === max) return;
    S.layers.set(id, max);
    send({ type: 'media.layer', track: id, max });
  }

  // Small tiles get the 'q' layer: with more than four remote cameras, every one but the
  // dominant speaker's. Screen shares and everything else get 'f'.
  function preferLayers() {
    if (!S.pc) return;
    // Camera tiles only: a phone's tile is audio (no <video>), a share is its own tile.
    const cameras = tilesBySession().filter(([, t]) => !t.dataset.track && t.querySelector('video'));
    const crowded = cameras.length > 4;
    for (const [session, tile] of tilesBySession()) {
      const video = tile.querySelector('video');
      const stream = video && video.srcObject;
      const small = crowded && !tile.dataset.track && session !== S.speaker;
      for (const track of stream ? stream.getVideoTracks() : []) {
        const id = forwardedTrackId(track);
        if (!S.layerPins.has(id)) setLayer(id, small ? 'q' : 'f');
      }
    }
  }
  S.layers = new Map();
  S.layerPins = new Set();
  S.setLayer = setLayer;

  // Perfect negotiation, polite side: a server offer that collides with ours wins (the
  // browser rolls ours back); an answer to an offer that was rolled back is dropped.
  async function describe(type, sdp) {
    const pc = S.pc;
    if (!pc) return;
    try {
      if (type === 'answer' && pc.signalingState !== 'have-local-offer') return;
      await pc.setRemoteDescription({ type, sdp });
      if (type === 'offer') {
        await pc.setLocalDescription();
        send({ type: 'media.answer', sdp: pc.localDescription.sdp });
      }
    } catch (e) {
      console.warn('negotiation', e);
    }
  }

  function closeMedia() {
    if (S.pc) { S.pc.close(); S.pc = null; }
    // The camera, microphone and screen go off with the connection.
    stopScreen();
    if (S.local) for (const t of S.local.getTracks()) t.stop();
    for (const [session] of tilesBySession()) removeTile(session);
  }

  function tilesBySession() {
    return [...document.querySelectorAll('#tiles .tile[data-session]')].map((t) => [t.dataset.session, t]);
  }

  // The SFU's dominant speaker (RFC 6464 audio levels): its tile is outlined.
  function markSpeaker(session) {
    for (const [id, tile] of tilesBySession()) tile.classList.toggle('speaking', id === session);
    S.speaker = session;
    preferLayers();
  }

  // A remote stream's id is its publisher's session id. Its tile plays the stream (audio
  // and its first video track); any further video track of the same publisher (a screen
  // share) gets a tile of its own, keyed by the track. A publisher that is not a browser
  // (a SIP caller bridged in by the media node: one audio track, no video) gets an
  // audio-only tile that plays through an <audio> element.
  function remoteTile(stream, track) {
    const session = stream.id;
    const extra = track && track.kind === 'video' && stream.getVideoTracks().length > 1
      && stream.getVideoTracks()[0] !== track;
    const sel = `#tiles .tile[data-session="${CSS.escape(session)}"]`
      + (extra ? `[data-track="${CSS.escape(track.id)}"]` : ':not([data-track])');
    let tile = document.querySelector(sel);
    if (!tile) {
      tile = document.createElement('figure');
      tile.className = 'tile';
      tile.dataset.session = session;
      if (extra) tile.dataset.track = track.id;
      tile.append(document.createElement('figcaption'));
      $('tiles').append(tile);
    }
    tileMedia(tile, extra ? new MediaStream([track]) : stream);
    stream.onremovetrack = (e) => {
      const t = document.querySelector(`#tiles .tile[data-track="${CSS.escape(e.track.id)}"]`);
      if (t) t.remove();
      if (!stream.getTracks().length) removeTile(session);
      else for (const own of tilesOf(session)) if (!own.dataset.track) tileMedia(own, stream);
    };
    labelTile(tile, session);
    preferLayers();
  }

  const tilesOf = (session) => document.querySelectorAll(`#tiles .tile[data-session="${CSS.escape(session)}"]`);

  // The session's entry in the room details: its principal and its gateway (web, sip...).
  function sessionInfo(session) {
    const present = (S.details && S.details.present) || [];
    for (const m of present) {
      const s = (m.sessions || []).find((x) => x.session === session);
      if (s) return { member: m, gateway: s.gateway };
    }
    return { member: null, gateway: null };
  }

  // Audio-only when the stream carries no video and its publisher is known not to be a
  // browser: a browser's tile keeps its <video> while its video track is on the way.
  function audioOnly(tile, stream) {
    if (tile.dataset.track || stream.getVideoTracks().length) return false;
    const { gateway } = sessionInfo(tile.dataset.session);
    return !!gateway && gateway !== 'web';
  }

  // Puts the right element in the tile (<video>, or <audio> with a placeholder picture for
  // an audio-only publisher) and plays `stream` in it.
  function tileMedia(tile, stream) {
    const want = audioOnly(tile, stream) ? 'AUDIO' : 'VIDEO';
    let el = tile.querySelector('video, audio');
    if (!el || el.tagName !== want) {
      const next = document.createElement(want.toLowerCase());
      next.autoplay = true;
      if (want === 'VIDEO') {
        next.playsInline = true;
        next.muted = !!tile.dataset.track;
      }
      const old = tile.querySelector('.voice');
      if (old) old.remove();
      if (el) el.replaceWith(next); else tile.prepend(next);
      if (want === 'AUDIO') {
        const voice = document.createElement('div');
        voice.className = 'voice';
        voice.setAttribute('aria-hidden', 'true');
        voice.textContent = '\u260E';
        next.after(voice);
      }
      el = next;
    }
    tile.classList.toggle('audio-only', want === 'AUDIO');
    if (el.srcObject !== stream) el.srcObject = stream;
  }

  // Caption: who (principal), a protocol badge for what is not a browser, and the state a
  // phone cannot show by itself (muted, hand raised), in words.
  function labelTile(tile, session) {
    const { member: m, gateway } = sessionInfo(session);
    const el = tile.querySelector('video, audio');
    if (el && el.srcObject && !tile.dataset.track) tileMedia(tile, el.srcObject);
    const media = tile.querySelector('video, audio');
    const who = (m ? m.principal : session) + (tile.dataset.track ? ' (screen)' : '');
    const cap = tile.querySelector('figcaption');
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = who;
    cap.replaceChildren(name);
    if (gateway && gateway !== 'web') {
      tile.dataset.protocol = gateway;
      const badge = document.createElement('span');
      badge.className = 'badge';
      badge.textContent = (gateway === 'sip' ? '\u260E ' : '') + (PROTOCOLS[gateway] || gateway);
      cap.append(' ', badge);
    }
    const facts = [];
    if (m && m.audio !== 'open' && !tile.dataset.track) facts.push(m.audio === 'moderator' ? 'muted by a moderator' : 'muted');
    if (m && m.hand_raised && !tile.dataset.track) facts.push('hand raised');
    tile.dataset.hand = String(!!(m && m.hand_raised));
    if (facts.length) {
      const st = document.createElement('span');
      st.className = 'state';
      st.textContent = facts.join(', ');
      cap.append(' ', st);
    }
    if (media) media.setAttribute('aria-label', (media.tagName === 'AUDIO' ? 'Audio of ' : 'Video of ') + who);
  }

  function removeTile(session) {
    for (const t of tilesOf(session)) t.remove();
  }

  function applyLocal() {
    if (!S.local) return;
    for (const t of S.local.getAudioTracks()) t.enabled = S.audioOn;
    for (const t of S.local.getVideoTracks()) t.enabled = S.videoOn;
  }

  function setAudio(on, tell) {
    S.audioOn = on;
    $('mute').setAttribute('aria-pressed', String(!on));
    $('mute').textContent = on ? 'Mute' : 'Unmute';
    applyLocal();
    if (tell) return run(on ? 'unmute' : 'mute', { subject: S.principal || S.identity });
    return Promise.resolve();
  }

  function setVideo(on, tell) {
    S.videoOn = on;
    $('camera').setAttribute('aria-pressed', String(!on));
    $('camera').textContent = on ? 'Stop camera' : 'Start camera';
    applyLocal();
    if (tell) return run(on ? 'resume_video' : 'pause_video', { subject: S.principal || S.identity });
    return Promise.resolve();
  }

  async function toggleScreen() {
    if (S.screen) { stopScreen(); return; }
    if (!S.pc) { status('Screen sharing needs media.'); return; }
    try {
      const s = await navigator.mediaDevices.getDisplayMedia({ video: true });
      const track = s.getVideoTracks()[0];
      S.screen = s;
      // A transceiver of its own: addTrack would reuse one the server offered to send us
      // someone else's video, and the server does not take publications on those.
      S.screenSender = S.pc.addTransceiver(track, { direction: 'sendonly', streams: [s] }).sender;
      track.onended = stopScreen;
      $('screen').setAttribute('aria-pressed', 'true');
      $('screen').textContent = 'Stop sharing';
    } catch (e) {
      status('Screen sharing: ' + e.message);
    }
  }

  function stopScreen() {
    if (!S.screen) return;
    for (const t of S.screen.getTracks()) t.stop();
    if (S.pc && S.screenSender) S.pc.removeTrack(S.screenSender);
    S.screen = null;
    S.screenSender = null;
    $('screen').setAttribute('aria-pressed', 'false');
    $('screen').textContent = 'Share screen';
  }

  // ---------- wiring ----------

  document.addEventListener('DOMContentLoaded', () => {
    $('room-name').textContent = room;
    document.title = 'Conclave: ' + room;
    $('join-form').addEventListener('submit', join);
    $('chat-form').addEventListener('submit', sendChat);
    $('mute').addEventListener('click', () => setAudio(!S.audioOn, true).catch(() => setAudio(!S.audioOn, false)));
    $('camera').addEventListener('click', () => setVideo(!S.videoOn, true).catch(() => setVideo(!S.videoOn, false)));
    $('screen').addEventListener('click', toggleScreen);
    $('hand').addEventListener('click', () => run(S.hand ? 'lower_hand' : 'raise_hand', {}).catch(() => {}));
    $('lock').addEventListener('click', () => run(S.details && S.details.locked ? 'unlock' : 'lock', {}).catch(() => {}));
    $('leave').addEventListener('click', () => run('leave', {}).catch(() => {}));
  });
})();
