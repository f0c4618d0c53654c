// The page: wires the microphone, the speaker and the WebSocket to the conversation view.
//
// Reads top to bottom: constants, settings, state, audio in, audio out (including barge-in and truncate),
// server events, the conversation view, controls, start-up. The wire protocol is /v1/realtime as described
// in the project README (a Realtime API subset plus s2s.* events); this file is its only browser client.
// `window.s2s` exposes counters and recent events for the browser tests and for anyone curious.

import { AudioEngine } from "./audio.js";
import { RealtimeClient } from "./client.js";

// ---- constants ----
const SETTINGS_KEY = "s2s.settings"; // localStorage: the switches below, as JSON
const USER_ID_KEY = "s2s.user_id"; // localStorage: the user id sent as session.s2s.user_id
const WIRE_RATES_HZ = [24000, 16000]; // what the page may ask for; the server's default is 24000
// what the server accepts as session.s2s.user_id: not "anon-" first (anonymous sessions' ids start so)
const USER_ID_PATTERN = /^(?!anon-)[\w.@:-]{1,128}$/;
const OUTBOX_MS = 3000; // audio held while the session is not ready yet (first connect, a session.update in flight)
const PTT_PREROLL_MS = 200; // audio from just before the talk button went down, so the first syllable survives
const PTT_TAIL_MS = 120; // keep sending this long after release, then commit: the last syllable survives
// A press shorter than this is a slip, not speech: a key or button tap lasts about 100 ms, while a press to
// say even one short word lasts longer (the word, and the reaction before and after it). Until a press has
// lasted this long the page sends nothing and only ducks the bot, so a tap neither cuts the bot off nor
// leaves an empty turn; once it has, the bot is cut and the audio since just before the press is sent.
const PTT_MIN_HOLD_MS = 250;
const PTT_DUCK_GAIN = 0.25; // the bot's volume while a press is not yet a talk (-12 dB): it yields at once, audibly
// The server refuses a push-to-talk commit of under 100 ms of audio (input_audio_buffer_commit_empty). It counts
// after resampling to 16 kHz, and from 24 kHz its resampler (soxr, which works in blocks) holds back up to 37 ms
// of what came; so the page commits a turn only when at least this much audio went out since the buffer was last
// cleared or committed, and clears it otherwise (a press cut short by Mute can leave less, or none).
const PTT_MIN_COMMIT_MS = 150;
const PTT_SENDS_RESPONSE_CREATE = false; // the server answers a commit itself (it judges first); see README
const STOP_TIMEOUT_MS = 500; // give up waiting for the playback worklet's answer to a stop
const SESSION_UPDATE_TIMEOUT_MS = 3000; // stop holding audio if session.updated never comes
const EVENTS_KEPT = 400; // recent events kept in window.s2s for tests and debugging
const METER_FLOOR_DB = -60; // the level meter's empty and full points, dBFS
const METER_CEIL_DB = -6;

const STATE_LABEL = { listening: "Listening", processing: "Thinking…", speaking: "Speaking" };
const CUT_LABEL = {
  "barge-in": "you cut in",
  turn_detected: "you cut in",
  client_cancelled: "stopped",
  stop: "stopped",
  "push-to-talk": "you cut in",
  typed: "you cut in",
  error: "failed",
  blocked: "blocked",
};
const METRIC_LABELS = [
  // [s2s.metrics field, short label, what it measures]
  ["endpoint", "endpoint", "silence waited before the turn ended"],
  ["asr", "asr", "speech recognition still to wait once the turn ended (0: done during the silence)"],
  ["judge", "judge", "deciding how to respond, still to wait once the turn ended (about 0: decided during the silence)"],
  ["llm_first_token", "llm", "language model, to its first token"],
  ["tts_first_audio", "tts", "speech synthesis, to its first audio"],
];

// ---- settings (persisted; null means "whatever the server is configured with") ----
const DEFAULT_SETTINGS = {
  echoCancellation: true,
  noiseSuppression: true,
  autoGainControl: true,
  rate: 24000,
  ptt: false,
  silenceMs: null,
  voice: null,
  proactive: null,
};

function loadSettings() {
  let saved = {};
  try {
    saved = JSON.parse(localStorage.getItem(SETTINGS_KEY) || "{}") || {};
  } catch {
    saved = {};
  }
  const s = { ...DEFAULT_SETTINGS };
  for (const k of Object.keys(DEFAULT_SETTINGS)) if (k in saved) s[k] = saved[k];
  if (!WIRE_RATES_HZ.includes(s.rate)) s.rate = DEFAULT_SETTINGS.rate;
  return s;
}

function saveSettings() {
  try {
    localStorage.setItem(SETTINGS_KEY, JSON.stringify(S.settings));
    localStorage.setItem(USER_ID_KEY, S.userId);
  } catch {
    // private mode or storage full: settings live for this visit only
  }
}

function loadUserId() {
  let id = null;
  try {
    id = localStorage.getItem(USER_ID_KEY);
  } catch {
    id = null;
  }
  if (id) return id;
  const bytes = crypto.getRandomValues(new Uint8Array(4)); // randomUUID needs a secure context; this does not
  return "user-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// ---- state ----
const S = {
  settings: loadSettings(),
  userId: loadUserId(),
  conn: "disconnected", // disconnected | connecting | connected | reconnecting | blocked
  sessionReady: false, // session.created seen on this socket
  updatesPending: new Map(), // event_id -> timer, for session.update not yet answered
  server: { inRate: 24000, outRate: 24000, vadOn: true, turnDetection: null, voice: null, proactive: null, maxMessageBytes: null },
  strategies: new Map(), // name -> {label, speaks, ...}: the server's strategy table (session.s2s.strategy_table)
  serverDefaults: null, // {silenceMs, voice, proactive} as session.created gave them: what "server defaults" restores
  serverState: null, // listening | processing | speaking, from s2s.state
  muted: false,
  micWanted: false, // the user connected with the microphone; a block closes it, the next session reopens it
  pttHeld: false,
  pttSending: false, // held for PTT_MIN_HOLD_MS or longer (a talk, audio flowing), or in the tail after release
  pttStartedAt: 0,
  outbox: [], // capture frames, and the buffer events sent after them, waiting for the session to be ready (in order)
  bufferMs: 0, // audio sent since the last input_audio_buffer.clear or .commit went out, ms (for PTT_MIN_COMMIT_MS)
  preroll: [], // the last PTT_PREROLL_MS of frames while push-to-talk is idle, and all since a press not yet a talk
  activeResponseId: null,
  cutResponses: new Set(), // responses whose audio the user stopped: later deltas are dropped
  truncatedItems: new Set(),
  ownCancels: new Set(), // event_ids of response.cancel sent: "nothing to cancel" is then no news
  responseRates: new Map(), // response id -> the output rate when it started (its deltas carry none)
  itemAudio: new Map(), // bot item_id -> {responseId, wireSamples, rate}
  pendingJudgement: null,
  framesSent: 0,
  audioSentMs: 0, // microphone audio sent, in ms at the wire rate
  inputLevel: 0,
  events: [], // recent server events (audio payloads left out)
  sent: [], // recent client events other than audio appends
  truncates: [], // every conversation.item.truncate sent
};

const $ = (id) => document.getElementById(id);
const ui = {
  conn: $("conn"),
  connText: $("conn-text"),
  connect: $("connect"),
  notices: $("notices"),
  log: $("log"),
  empty: $("empty"),
  orb: $("orb"),
  state: $("state"),
  meter: $("meter"),
  meterFill: $("meter-fill"),
  mute: $("mute"),
  talk: $("talk"),
  stop: $("stop"),
  ptt: $("ptt"),
  composer: $("composer"),
  message: $("message"),
  send: $("send"),
  hint: $("hint"),
  settings: $("settings"),
  settingsOpen: $("settings-open"),
  settingsStatus: $("settings-status"),
  setUser: $("set-user"),
  setSilence: $("set-silence"),
  setSilenceOut: $("set-silence-out"),
  setProactive: $("set-proactive"),
  setVoice: $("set-voice"),
  setAec: $("set-aec"),
  setNs: $("set-ns"),
  setAgc: $("set-agc"),
  setRate: $("set-rate"),
  setReset: $("set-reset"),
};

const audio = new AudioEngine({ onFrame, onProgress });
const wsUrl = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/realtime`;
// A server started with S2S_AUTH_TOKEN: open the page as http://host:8765/#token=TOKEN (a fragment never
// leaves the browser, so the token is not in any request line or server log).
const token = new URLSearchParams(location.hash.slice(1)).get("token") || "";
const client = new RealtimeClient(wsUrl, { onEvent, onStatus, token });

function send(event) {
  const id = client.send(event);
  if (id && event.type !== "input_audio_buffer.append") {
    remember(S.sent, { t: Math.round(performance.now()), ...event });
  }
  return id;
}

/** Append to a bounded list (array) or set: the oldest entries go first. */
function remember(list, entry) {
  if (list instanceof Set) {
    list.add(entry);
    if (list.size > EVENTS_KEPT) list.delete(list.values().next().value);
    return;
  }
  list.push(entry);
  if (list.length > EVENTS_KEPT) list.splice(0, list.length - EVENTS_KEPT);
}

// ---- session ----
/** The session.update body; `restore` also sends the server's own defaults for settings the page left alone. */
function sessionPayload({ restore = false } = {}) {
  const s = S.settings;
  const d = restore && S.serverDefaults ? S.serverDefaults : {};
  const input = { format: { type: "audio/pcm", rate: s.rate } };
  // turn_detection only when it changes: the server restarts its turn detector on every one it gets,
  // which would cut short an utterance in progress
  const wantVad = !s.ptt;
  const known = S.server.turnDetection && typeof S.server.turnDetection === "object" ? S.server.turnDetection : {};
  const silenceMs = s.silenceMs ?? d.silenceMs ?? null;
  const silenceChanged = silenceMs != null && silenceMs !== known.silence_duration_ms;
  if (wantVad !== S.server.vadOn || (wantVad && silenceChanged)) {
    input.turn_detection = wantVad ? { ...known, type: "server_vad" } : null;
    if (wantVad && silenceMs != null) input.turn_detection.silence_duration_ms = silenceMs;
  }
  const output = { format: { type: "audio/pcm", rate: s.rate } };
  const voice = s.voice ?? d.voice;
  if (voice != null && (s.voice || restore)) output.voice = voice;
  const ext = { user_id: S.userId };
  const proactive = s.proactive ?? d.proactive;
  if (proactive != null) ext.proactive = proactive;
  return { audio: { input, output }, s2s: ext };
}

function sendSessionUpdate(options, { queued = false } = {}) {
  if (!client.isOpen || !S.sessionReady) return;
  if (!queued && S.outbox.some((entry) => !isFrame(entry))) {
    // a commit or clear waits in the outbox behind audio: the update goes after it, as it came (push-to-talk
    // switched off mid-press commits before the update that turns the server's VAD on, which would drop the turn)
    S.outbox.push({ update: options || {} });
    return;
  }
  audio.setInputRate(S.settings.rate);
  const id = send({ type: "session.update", session: sessionPayload(options) });
  if (!id) return;
  // audio waits in the outbox until the server confirms (a rate change must not straddle frames)
  const timer = setTimeout(() => settleUpdate(id), SESSION_UPDATE_TIMEOUT_MS);
  S.updatesPending.set(id, timer);
}

function settleUpdate(id) {
  if (id == null) {
    // session.updated names no event: it answers the oldest update in flight
    id = S.updatesPending.keys().next().value;
  }
  const timer = S.updatesPending.get(id);
  if (timer === undefined) return;
  clearTimeout(timer);
  S.updatesPending.delete(id);
  if (S.updatesPending.size === 0) flushOutbox();
}

function readServerSession(session) {
  if (!session || typeof session !== "object") return;
  const input = session.audio?.input;
  const output = session.audio?.output;
  if (input?.format?.rate) S.server.inRate = input.format.rate;
  if (output?.format?.rate) S.server.outRate = output.format.rate;
  if (input && "turn_detection" in input) {
    S.server.vadOn = input.turn_detection !== null;
    if (input.turn_detection) S.server.turnDetection = input.turn_detection;
  }
  if (output?.voice) S.server.voice = output.voice;
  if (session.s2s && typeof session.s2s.proactive === "boolean") S.server.proactive = session.s2s.proactive;
  if (Number.isFinite(session.s2s?.max_message_bytes)) S.server.maxMessageBytes = session.s2s.max_message_bytes;
  if (Array.isArray(session.s2s?.strategy_table)) {
    S.strategies = new Map(session.s2s.strategy_table.map((row) => [row.name, row]));
  }
  fillSettingsForm();
}

function audioReady() {
  return client.isOpen && S.sessionReady && S.updatesPending.size === 0;
}

// ---- audio in ----
function onFrame(frame) {
  updateMeter(frame.rms);
  if (S.muted || !client.wanted) return;
  if (S.settings.ptt && !S.pttSending) {
    S.preroll.push(frame);
    if (S.pttHeld) return; // a press that is not a talk yet: its audio is kept whole until it is one (pttTalk)
    const keep = Math.ceil(PTT_PREROLL_MS / frameMs(frame));
    if (S.preroll.length > keep) S.preroll.splice(0, S.preroll.length - keep);
    return;
  }
  queueFrame(frame);
}

function frameMs(frame) {
  return (frame.pcm.byteLength / 2 / frame.rate) * 1000;
}

function queueFrame(frame) {
  flushOutbox();
  if (audioReady() && !S.outbox.length) {
    sendFrame(frame);
    return;
  }
  if (S.conn !== "connecting" && S.conn !== "connected") return; // nobody to send it to soon
  S.outbox.push(frame);
  const keep = Math.ceil(OUTBOX_MS / frameMs(frame));
  let frames = S.outbox.filter(isFrame).length;
  for (let i = 0; frames > keep && i < S.outbox.length; ) {
    if (isFrame(S.outbox[i])) {
      S.outbox.splice(i, 1); // the oldest audio goes; the buffer events queued between frames stay
      frames--;
    } else i++;
  }
}

function isFrame(entry) {
  return entry.pcm !== undefined; // else {event}: a clear or commit, or {update}: a session.update (sendSessionUpdate)
}

/**
 * Send an input_audio_buffer.clear or .commit after the audio queued before it: while audio waits in the outbox
 * (a session.update not answered yet), so does the event, or a commit would reach the server ahead of the end of
 * its own turn's audio.
 */
function sendBufferEvent(event) {
  if (audioReady() && !S.outbox.length) sendBufferEventNow(event);
  else if (S.conn === "connecting" || S.conn === "connected") S.outbox.push({ event });
}

function sendBufferEventNow(event) {
  // a commit of less than the server takes (a press that Mute cut short, its audio dropped) is a clear instead
  const take = event.type !== "input_audio_buffer.commit" || S.bufferMs >= PTT_MIN_COMMIT_MS;
  if (send(take ? event : { type: "input_audio_buffer.clear" })) S.bufferMs = 0;
  if (take && event.type === "input_audio_buffer.commit" && PTT_SENDS_RESPONSE_CREATE) send({ type: "response.create" });
}

/** Send what waits in the outbox, in order, until it is empty or a session.update sent from it is unanswered. */
function flushOutbox() {
  while (S.outbox.length && audioReady()) {
    const entry = S.outbox.shift();
    if (isFrame(entry)) sendFrame(entry);
    else if (entry.update) sendSessionUpdate(entry.update, { queued: true });
    else sendBufferEventNow(entry.event);
  }
}

function sendFrame(frame) {
  if (frame.rate !== S.server.inRate) return; // made before a rate change the server now expects
  if (send({ type: "input_audio_buffer.append", audio: bytesToBase64(new Uint8Array(frame.pcm)) })) {
    S.framesSent++;
    S.audioSentMs += frameMs(frame);
    S.bufferMs += frameMs(frame);
  }
}

function bytesToBase64(bytes) {
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}

function base64ToPcm16(b64) {
  const bin = atob(b64);
  const n = bin.length & ~1;
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i++) bytes[i] = bin.charCodeAt(i);
  return new Int16Array(bytes.buffer);
}

let meterShown = 0;
let meterAriaAt = 0;
function updateMeter(rms) {
  const db = rms > 0 ? 20 * Math.log10(rms) : -120;
  const target = S.muted ? 0 : Math.min(1, Math.max(0, (db - METER_FLOOR_DB) / (METER_CEIL_DB - METER_FLOOR_DB)));
  meterShown = target > meterShown ? target : meterShown * 0.85 + target * 0.15; // fast attack, slow release
  S.inputLevel = meterShown;
  ui.meterFill.style.transform = `scaleX(${meterShown.toFixed(3)})`;
  const now = performance.now();
  if (now - meterAriaAt > 500) {
    meterAriaAt = now;
    ui.meter.setAttribute("aria-valuenow", String(Math.round(meterShown * 100)));
  }
}

async function openMic() {
  if (!navigator.mediaDevices?.getUserMedia) {
    notify("warn", "No microphone here", "The browser only allows the microphone on https or localhost. You can still type.");
    return false;
  }
  try {
    audio.setInputRate(S.settings.rate);
    await audio.openMic({
      echoCancellation: S.settings.echoCancellation,
      noiseSuppression: S.settings.noiseSuppression,
      autoGainControl: S.settings.autoGainControl,
    });
    audio.setMuted(S.muted);
    return true;
  } catch (err) {
    const why =
      err && err.name === "NotAllowedError"
        ? "Microphone access was refused. Allow it in the site settings to talk; you can still type."
        : err && err.name === "NotFoundError"
          ? "No microphone was found. You can still type."
          : `The microphone could not be opened (${err && err.message ? err.message : err}). You can still type.`;
    notify("warn", "Microphone unavailable", why);
    return false;
  } finally {
    render();
  }
}

// ---- audio out ----
function onProgress(p) {
  ui.orb.style.setProperty("--lvl", Math.min(1, p.level * 4).toFixed(3));
  render();
}

function isPlaying() {
  return audio.bufferedFrames > 0;
}

function botActive() {
  return isPlaying() || S.activeResponseId !== null || S.serverState === "processing";
}

function hasAudio(responseId) {
  for (const a of S.itemAudio.values()) if (a.responseId === responseId && a.wireSamples > 0) return true;
  return false;
}

/**
 * Stop the bot's voice now and tell the server how much of each item the user actually heard.
 * reason: "barge-in" (speech_started), "stop" (the button or Esc), "cancelled" (response.done), ...
 * cancel: also send response.cancel for a response still being generated (the stop button, Esc).
 * cut: the server cancels the response by itself (typed text, push-to-talk audio): drop what follows.
 */
async function stopBot(reason, { cancel = false, cut = false } = {}) {
  const active = S.activeResponseId;
  if (active && (cancel || cut || hasAudio(active))) {
    remember(S.cutResponses, active); // its remaining deltas are not for this user any more
    if (cancel) {
      const id = send({ type: "response.cancel" });
      if (id) remember(S.ownCancels, id);
    }
  }
  else if (!active && cancel && S.serverState === "processing") {
    const id = send({ type: "response.cancel" }); // a turn still being heard or judged: no reply starts
    if (id) remember(S.ownCancels, id);
  }
  let stopped = { items: [] };
  if (isPlaying()) {
    stopped = await Promise.race([
      audio.stopPlayback(reason),
      new Promise((resolve) => setTimeout(() => resolve(null), STOP_TIMEOUT_MS)),
    ]);
    if (!stopped) return;
  }
  for (const it of stopped.items) {
    const info = S.itemAudio.get(it.itemId);
    const responseId = it.responseId || (info && info.responseId);
    truncateItem(it.itemId, responseId, Math.floor((it.playedFrames / audio.sampleRate) * 1000), reason);
  }
  if (active && S.cutResponses.has(active)) {
    // the reply paused between clauses when it was cut: all its audio so far was heard
    for (const [itemId, info] of S.itemAudio) {
      if (info.responseId === active && info.wireSamples > 0 && !S.truncatedItems.has(itemId)) {
        truncateItem(itemId, active, Math.floor((info.wireSamples / info.rate) * 1000), reason);
      }
    }
    markCut(active, reason);
  }
  render();
}

/** Tell the server how much of an assistant item was heard (once per item), and show it. */
function truncateItem(itemId, responseId, audioEndMs, reason) {
  if (responseId) remember(S.cutResponses, responseId);
  if (!S.truncatedItems.has(itemId) && client.isOpen) {
    remember(S.truncatedItems, itemId);
    send({ type: "conversation.item.truncate", item_id: itemId, content_index: 0, audio_end_ms: audioEndMs });
    remember(S.truncates, { itemId, audioEndMs, reason, t: Math.round(performance.now()) });
  }
  if (responseId) markCut(responseId, reason);
}

function onAudioDelta(e) {
  if (!e.delta || S.cutResponses.has(e.response_id)) return;
  const pcm = base64ToPcm16(e.delta);
  const itemId = e.item_id;
  let info = S.itemAudio.get(itemId);
  if (!info) {
    info = { responseId: e.response_id, wireSamples: 0, rate: S.responseRates.get(e.response_id) ?? S.server.outRate };
    S.itemAudio.set(itemId, info);
    if (S.itemAudio.size > 64) S.itemAudio.delete(S.itemAudio.keys().next().value);
  }
  info.wireSamples += pcm.length;
  audio.enqueue(itemId, e.response_id, pcm, info.rate);
  const bot = botTurn(e.response_id);
  if (bot) bot.el.classList.remove("waiting");
}

// ---- server events ----
function onEvent(e) {
  remember(S.events, summarize(e));
  switch (e.type) {
    case "session.created":
      S.sessionReady = true;
      client.markHealthy();
      clearBlockedNotice();
      readServerSession(e.session);
      S.serverDefaults = { silenceMs: S.server.turnDetection?.silence_duration_ms, voice: S.server.voice || "", proactive: S.server.proactive };
      setConn("connected");
      sendSessionUpdate();
      flushOutbox();
      if (S.micWanted && !audio.micOpen) openMic();
      break;
    case "session.updated":
      readServerSession(e.session);
      settleUpdate(null);
      break;
    case "input_audio_buffer.speech_started":
      // a barge-in: the bot is audible, or its reply has started and more of it may still come
      if (isPlaying() || (S.activeResponseId && hasAudio(S.activeResponseId))) stopBot("barge-in");
      userTurn(e.item_id, { create: true }).el.classList.add("listening");
      break;
    case "input_audio_buffer.speech_stopped":
    case "input_audio_buffer.committed": {
      const t = userTurn(e.item_id, { create: e.type === "input_audio_buffer.committed" });
      if (t) t.el.classList.add("listening");
      break;
    }
    case "conversation.item.input_audio_transcription.delta": {
      const t = userTurn(e.item_id, { create: true });
      t.partial.textContent += e.delta || "";
      scrollToEnd();
      break;
    }
    case "conversation.item.input_audio_transcription.completed": {
      const t = userTurn(e.item_id, { create: true });
      t.final.textContent = (e.transcript || "").trim();
      t.partial.textContent = "";
      t.el.classList.remove("listening");
      if (!t.final.textContent) {
        t.final.textContent = "(nothing recognised)";
        t.el.classList.add("faint");
      }
      scrollToEnd();
      break;
    }
    case "input_audio_buffer.cleared": {
      // the server dropped the speech in progress (a change of the turn detection): its bubble will get no words
      const t = e.item_id ? userTurn(e.item_id) : null;
      if (t && !t.final.textContent) t.el.remove();
      break;
    }
    case "conversation.item.input_audio_transcription.failed": {
      const t = userTurn(e.item_id, { create: true }); // no words will come: the bubble stops listening
      t.partial.textContent = "";
      t.el.classList.remove("listening");
      t.el.classList.add("faint");
      t.final.textContent = "(not recognised: speech recognition failed)";
      break;
    }
    case "conversation.item.added":
      onItemAdded(e.item);
      break;
    case "response.created":
      onResponseCreated(e.response || {});
      break;
    case "response.output_audio.delta":
      onAudioDelta(e);
      break;
    case "response.output_audio.done":
      audio.finishItem(e.item_id, e.response_id);
      break;
    case "response.output_audio_transcript.delta":
      onTranscriptDelta(e);
      break;
    case "response.output_audio_transcript.done": {
      const bot = botTurn(e.response_id);
      if (bot && !bot.text.textContent && e.transcript && !S.cutResponses.has(e.response_id)) bot.text.textContent = e.transcript;
      break;
    }
    case "response.done":
      onResponseDone(e.response || {});
      break;
    case "conversation.item.truncated":
      onTruncated(e);
      break;
    case "s2s.state":
      S.serverState = e.state;
      if (e.state === "listening" && S.pendingJudgement && !S.activeResponseId) {
        const j = S.pendingJudgement;
        S.pendingJudgement = null;
        judgementNote({ action: j.action, reason: j.reason, item_id: j.itemId });
      }
      break;
    case "s2s.judgement":
      onJudgement(e);
      break;
    case "s2s.metrics":
      onMetrics(e);
      break;
    case "s2s.blocked":
      onBlocked(e);
      break;
    case "error":
      onError(e.error || {});
      break;
    default:
      break; // other Realtime events carry nothing this page shows
  }
  render();
}

function summarize(e) {
  const out = { t: Math.round(performance.now()), type: e.type };
  for (const [k, v] of Object.entries(e)) {
    if (k === "type") continue;
    out[k] = k === "delta" && e.type === "response.output_audio.delta" ? `<${v.length} b64 chars>` : v;
  }
  return out;
}

function onStatus(status, detail) {
  if (status === "connecting") {
    S.sessionReady = false;
    S.outbox = [];
    S.bufferMs = 0; // a new session's buffer is empty
    setConn(S.conn === "reconnecting" ? "reconnecting" : "connecting");
  } else if (status === "open") {
    // connected for real once session.created arrives
  } else if (status === "closed") {
    S.sessionReady = false;
    for (const timer of S.updatesPending.values()) clearTimeout(timer);
    S.updatesPending.clear();
    S.outbox = [];
    S.serverState = null;
    if (S.activeResponseId) markCut(S.activeResponseId, "error", "connection lost");
    S.activeResponseId = null;
    S.pendingJudgement = null;
    if (isPlaying()) audio.stopPlayback("disconnected");
    if (S.pttHeld || S.pttSending) pttReset();
    if (!client.wanted && S.conn !== "blocked") setConn("disconnected");
  } else if (status === "reconnecting") {
    setConn("reconnecting", `Reconnecting in ${Math.max(1, Math.round(detail.delayMs / 1000))} s…`);
  } else if (status === "held") {
    setConn("blocked");
  }
  render();
}

function onItemAdded(item) {
  if (!item || item.role !== "user") return;
  const typed = (item.content || []).some((c) => c && c.type === "input_text");
  if (typed) {
    // the typed message we showed when sending it: give it its server id
    const pending = ui.log.querySelector(".turn.user.typed:not([data-item-id])");
    if (pending && item.id) pending.dataset.itemId = item.id;
  } else if (item.id) {
    userTurn(item.id, { create: true });
  }
}

function onResponseCreated(response) {
  const id = response.id;
  if (!id) return;
  S.activeResponseId = id;
  S.responseRates.set(id, S.server.outRate); // the server keeps a reply's rate from its start to its end
  if (S.responseRates.size > 64) S.responseRates.delete(S.responseRates.keys().next().value);
  const strategy = response.metadata?.strategy || "reply";
  const bot = botTurn(id, { create: true });
  setChip(bot.chip, strategy, S.strategies.get(strategy)?.label || strategy);
  const reason = response.metadata?.reason || (S.pendingJudgement && S.pendingJudgement.reason);
  if (reason) bot.reason.textContent = reason;
  S.pendingJudgement = null;
}

function onTranscriptDelta(e) {
  if (!e.delta || S.cutResponses.has(e.response_id)) return;
  const bot = botTurn(e.response_id, { create: true });
  const span = document.createElement("span");
  const lead = e.delta.length - e.delta.trimStart().length;
  if (lead) bot.text.append(e.delta.slice(0, lead)); // the space between clauses is never struck through
  span.textContent = e.delta.slice(lead);
  // where in the item's audio this text starts: the audio received so far (text leads its audio)
  const info = S.itemAudio.get(e.item_id);
  span.dataset.item = e.item_id || "";
  span.dataset.atMs = String(info ? Math.round((info.wireSamples / info.rate) * 1000) : 0);
  bot.text.append(span);
  bot.el.classList.remove("waiting");
  scrollToEnd();
}

function onResponseDone(response) {
  const id = response.id;
  const status = response.status;
  if (status === "cancelled") {
    const reason = response.status_details?.reason || "cancelled";
    if (id && !S.cutResponses.has(id)) {
      remember(S.cutResponses, id);
      if (isPlaying() || hasAudio(id)) stopBot(reason); // silence what is queued, truncate to what was heard
    }
    if (id) markCut(id, reason);
  } else if (status === "failed") {
    if (id) markCut(id, "error", "failed");
  }
  const bot = id && botTurn(id);
  if (bot) {
    bot.el.classList.remove("waiting");
    if (!bot.text.textContent && status === "completed") bot.el.classList.add("faint");
  }
  if (S.activeResponseId === id) S.activeResponseId = null;
}

function onJudgement(e) {
  const strategy = S.strategies.get(e.action);
  if (!strategy?.speaks) {
    judgementNote(e, strategy); // silence, block, or "none" (keep listening): no reply starts
    return;
  }
  // a strategy that speaks: the reason belongs to the bot turn this decision starts
  S.pendingJudgement = { action: e.action, reason: e.reason || "", itemId: e.item_id };
}

/** A decision that started no reply, shown as a quiet line under the user's turn. */
function judgementNote(j, strategy) {
  const chipText = j.action;
  const label = strategy?.label || (j.action === "none" ? "Kept listening" : `Decided: ${j.action}`);
  const note = document.createElement("p");
  note.className = "note judgement";
  const chip = document.createElement("span");
  chip.className = "chip";
  chip.textContent = chipText;
  note.append(chip, `${label}${j.reason ? ": " + j.reason : ""}`);
  const t = userTurn(j.item_id);
  if (t) t.el.append(note);
  else appendToLog(note);
  scrollToEnd();
}

function onMetrics(e) {
  let target = (e.response_id && botTurn(e.response_id)) || null;
  if (!target) {
    const bots = ui.log.querySelectorAll(".turn.bot");
    const lastBot = bots[bots.length - 1];
    target = lastBot ? turnParts(lastBot) : null;
  }
  if (!target) return;
  const line = target.metrics;
  line.textContent = "";
  const fmt = (v) => (typeof v === "number" && Number.isFinite(v) ? `${Math.round(v)}` : "–");
  if (typeof e.voice_to_voice !== "number") {
    line.hidden = true; // no audio was sent (cancelled or failed first): no latency to show
    return;
  }
  const typed = typeof e.endpoint !== "number"; // a typed turn: no voice to count from
  const total = document.createElement("b");
  total.textContent = `${fmt(e.voice_to_voice)} ms`;
  line.append(total, typed ? " to the first sound" : " voice→voice");
  for (const [k, label, meaning] of METRIC_LABELS) {
    if (typeof e[k] !== "number") continue;
    const part = document.createElement("span");
    part.title = `${meaning}: ${fmt(e[k])} ms`;
    part.textContent = `${label} ${fmt(e[k])}`;
    line.append(" · ", part);
  }
  line.title = "milliseconds from the end of your voice to the first sound of the reply, then per stage";
  line.hidden = false;
  line.setAttribute("aria-label", `Latency: ${fmt(e.voice_to_voice)} milliseconds ${typed ? "to the first sound" : "voice to voice"}`);
}

let blockedNotice = null;
function onBlocked(e) {
  const untilMs = e.until ? Date.parse(e.until) : NaN;
  const permanent = e.permanent === true || !Number.isFinite(untilMs);
  client.holdUntil(permanent ? Infinity : untilMs);
  const until = new Date(untilMs);
  const sameDay = !permanent && until.toDateString() === new Date().toDateString();
  const at = permanent
    ? ""
    : sameDay
      ? until.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
      : until.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
  const when = permanent ? "This user id is blocked." : `You can talk again at ${at}.`;
  clearBlockedNotice();
  blockedNotice = notify("blocked", "The agent has stopped talking with you", `${when}${e.reason ? " Reason: " + e.reason : ""}`, {
    sticky: true,
  });
  setConn("blocked");
  audio.closeMic(); // nothing will be sent: the microphone goes off until the user connects again
  updateMeter(0);
}

function clearBlockedNotice() {
  if (blockedNotice) removeNotice(blockedNotice);
  blockedNotice = null;
}

function onError(err) {
  if (err.event_id && S.updatesPending.has(err.event_id)) settleUpdate(err.event_id);
  if (err.code === "response_cancel_not_active" && S.ownCancels.has(err.event_id)) return; // it had just ended
  const code = err.code || err.type || "error";
  if (code === "idle_timeout" || code === "session_expired") {
    // the server closes the session on purpose: reconnecting at once would only start the clock again
    disconnect();
    notify("warn", code === "idle_timeout" ? "Disconnected after a while without activity" : "The session reached its time limit",
      " Press Connect to talk again.");
    return;
  }
  notify("error", `Server error: ${code}`, err.message || "");
  console.warn("s2s server error", err); // a warning, not an error: the session goes on
}

// ---- the conversation view ----
// The log follows new words while the reader is at the bottom; scrolling up to reread stops that.
let stickToEnd = true;
ui.log.addEventListener("scroll", () => {
  stickToEnd = nearEnd();
});

// the log also shrinks when a notice appears or the window resizes: stay at the bottom then too
new ResizeObserver(() => {
  if (stickToEnd) ui.log.scrollTop = ui.log.scrollHeight;
}).observe(ui.log);

function appendToLog(el) {
  ui.empty.hidden = true;
  ui.log.append(el);
  scrollToEnd();
}

function nearEnd() {
  return ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 120;
}

let scrollQueued = false;
function scrollToEnd(force = false) {
  if (force) stickToEnd = true;
  if (!stickToEnd || scrollQueued) return;
  scrollQueued = true;
  requestAnimationFrame(() => {
    scrollQueued = false;
    ui.log.scrollTop = ui.log.scrollHeight;
  });
}

function turnParts(el) {
  return {
    el,
    final: el.querySelector(".final"),
    partial: el.querySelector(".partial"),
    chip: el.querySelector(".chip"),
    reason: el.querySelector(".reason"),
    text: el.querySelector(".bubble .text"),
    metrics: el.querySelector(".metrics"),
  };
}

function findTurn(kind, key, value) {
  if (!value) return null;
  for (const el of ui.log.querySelectorAll(`.turn.${kind}`)) if (el.dataset[key] === value) return turnParts(el);
  return null;
}

function userTurn(itemId, { create = false } = {}) {
  const found = findTurn("user", "itemId", itemId);
  if (found || !create) return found;
  const el = $("tpl-user").content.firstElementChild.cloneNode(true);
  if (itemId) el.dataset.itemId = itemId;
  el.setAttribute("aria-label", "You said");
  appendToLog(el);
  return turnParts(el);
}

function botTurn(responseId, { create = false } = {}) {
  const found = findTurn("bot", "responseId", responseId);
  if (found || !create) return found;
  const el = $("tpl-bot").content.firstElementChild.cloneNode(true);
  el.dataset.responseId = responseId;
  el.classList.add("waiting");
  el.setAttribute("aria-label", "Agent said");
  appendToLog(el);
  return turnParts(el);
}

function setChip(chip, strategy, label) {
  chip.dataset.strategy = strategy;
  chip.textContent = label;
}

/** Show that the user did not hear all of a bot turn with a short mark (the words past the cut are dimmed
 * when the server answers the truncate: onTruncated). */
function markCut(responseId, reason, label) {
  const bot = botTurn(responseId);
  if (!bot) return;
  bot.el.classList.remove("waiting");
  if (bot.el.querySelector(".cut-mark")) return;
  const mark = document.createElement("span");
  mark.className = "cut-mark";
  mark.textContent = ` — ${label || CUT_LABEL[reason] || "cut off"}`;
  bot.text.append(mark);
}

/**
 * The server's answer to a truncate carries the item's transcript as the user heard it (the server's rule:
 * PlaybackClock.text_until). Each transcript delta is a clause span; the heard text is a prefix of those
 * clauses joined as the deltas join them (a space, none after Chinese), so every span past it is unheard
 * and the one it ends in is split there.
 */
function onTruncated(e) {
  if (typeof e.transcript !== "string") return;
  const spans = [...document.querySelectorAll(".turn.bot .text span[data-at-ms]")].filter((s) => s.dataset.item === e.item_id);
  let heard = e.transcript;
  for (const span of spans) {
    if (span.querySelector(".unheard") || span.classList.contains("unheard")) continue; // marked already
    const text = span.textContent;
    if (heard.length >= text.length && heard.startsWith(text)) {
      heard = heard.slice(text.length).trimStart();
    } else if (heard && text.startsWith(heard)) {
      splitHeard(span, heard.length);
      heard = "";
    } else {
      span.classList.add("unheard");
      heard = "";
    }
  }
}

function splitHeard(span, cutAt) {
  const text = span.textContent;
  while (cutAt < text.length && /\s/.test(text[cutAt])) cutAt++; // the space before the cut stays plain
  if (cutAt >= text.length) return;
  const rest = document.createElement("span");
  rest.className = "unheard";
  rest.textContent = text.slice(cutAt);
  span.textContent = text.slice(0, cutAt);
  span.append(rest);
}

function notify(kind, title, body, { sticky = false } = {}) {
  const box = document.createElement("div");
  box.className = `notice notice-${kind}`;
  box.setAttribute("role", kind === "blocked" ? "alert" : "status");
  const p = document.createElement("p");
  const strong = document.createElement("strong");
  strong.textContent = title;
  p.append(strong, body);
  const close = document.createElement("button");
  close.type = "button";
  close.className = "btn btn-quiet notice-close";
  close.setAttribute("aria-label", "Dismiss");
  close.textContent = "×";
  close.addEventListener("click", () => removeNotice(box));
  box.append(p, close);
  ui.notices.append(box);
  const others = ui.notices.querySelectorAll(".notice:not(.notice-blocked)");
  if (others.length > 3) removeNotice(others[0]);
  if (!sticky) setTimeout(() => removeNotice(box), 12000);
  return box;
}

/** Remove a notice; keyboard focus in it (on its Dismiss button) goes to the next notice, else the conversation. */
function removeNotice(box) {
  if (box.contains(document.activeElement)) {
    const next = box.nextElementSibling || box.previousElementSibling;
    (next?.querySelector(".notice-close") || ui.log).focus();
  }
  box.remove();
}

function setConn(conn, text) {
  S.conn = conn;
  ui.conn.dataset.conn = conn;
  ui.connText.textContent =
    text ||
    { disconnected: "Not connected", connecting: "Connecting…", connected: "Connected", reconnecting: "Reconnecting…", blocked: "Blocked" }[
      conn
    ];
}

// one place that makes the controls agree with the state
function render() {
  const wanted = client.wanted;
  ui.connect.textContent = wanted ? "Disconnect" : "Connect";
  ui.connect.classList.toggle("btn-primary", !wanted);
  const live = S.conn === "connected";
  setUsable(ui.mute, audio.micOpen);
  // Mute and the talk button are toggle buttons: one name each, their state in aria-pressed alone (a name that
  // changed too, "Unmute", was read out beside the pressed state: twice over, or contradicting it)
  ui.mute.setAttribute("aria-pressed", String(S.muted));
  ui.meter.classList.toggle("muted", S.muted);
  setUsable(ui.stop, live && botActive());
  setUsable(ui.message, live);
  setUsable(ui.send, live);
  ui.ptt.checked = S.settings.ptt;
  ui.talk.hidden = !S.settings.ptt;
  setUsable(ui.talk, live && audio.micOpen);
  ui.talk.setAttribute("aria-pressed", String(S.pttHeld)); // held: its pressed style shows it (style.css)
  ui.hint.textContent = S.settings.ptt ? "Hold Space or the talk button to speak · Esc stops the agent" : "Esc stops the agent";

  let state = "idle";
  let label = { disconnected: "Idle", connecting: "Connecting", reconnecting: "Waiting for the server", blocked: "Blocked" }[S.conn];
  if (live) {
    state = isPlaying() ? "speaking" : S.serverState || "listening";
    label = STATE_LABEL[state] || "Connected";
    if (S.settings.ptt && state === "listening") label = S.pttHeld ? "Listening" : "Ready — hold to talk";
  }
  if (S.muted && live) label += " · mic muted";
  if (ui.orb.dataset.state !== state) ui.orb.dataset.state = state;
  if (ui.state.textContent !== label) ui.state.textContent = label;
}

/**
 * Enable or disable a control, except under the keyboard: a focused control that is disabled drops focus to
 * <body>, and a keyboard user loses their place (Stop, pressed, would disable itself; the message box would
 * on a reconnect). A focused control is marked aria-disabled instead: it looks and reads disabled, ignores
 * activation (`unusable`; an input turns read-only), and is disabled for real once focus leaves it.
 */
function setUsable(el, usable) {
  const keep = !usable && document.activeElement === el;
  if (el.disabled !== (!usable && !keep)) el.disabled = !usable && !keep;
  if (keep !== (el.getAttribute("aria-disabled") === "true")) {
    if (keep) el.setAttribute("aria-disabled", "true");
    else el.removeAttribute("aria-disabled");
    if (el instanceof HTMLInputElement) el.readOnly = keep;
  }
}

function unusable(el) {
  return el.disabled || el.getAttribute("aria-disabled") === "true";
}

document.addEventListener("focusout", (ev) => {
  if (ev.target.getAttribute?.("aria-disabled") === "true") setTimeout(render); // once focus has moved on
});

// ---- controls ----
async function connect() {
  clearBlockedNotice();
  client.holdUntil(0);
  try {
    await audio.ensureContext();
  } catch (err) {
    notify("error", "Audio could not start", String(err && err.message ? err.message : err));
  }
  client.connect();
  render();
  if (!audio.micOpen) S.micWanted = await openMic();
}

function disconnect() {
  S.micWanted = false;
  client.disconnect();
  pttReset();
  audio.closeMic();
  updateMeter(0);
  setConn("disconnected");
  render();
}

ui.connect.addEventListener("click", () => (client.wanted ? disconnect() : connect()));

ui.mute.addEventListener("click", () => {
  if (unusable(ui.mute)) return;
  S.muted = !S.muted;
  audio.setMuted(S.muted);
  if (S.muted) {
    // muted: no audio leaves the page from now on, not even what waits in the outbox (its buffer events stay);
    // a push-to-talk press ends here, as a release without its tail: a talk commits what went out (a clear
    // instead when too little did), a press that was not a talk yet is a slip
    S.outbox = S.outbox.filter((entry) => !isFrame(entry));
    S.preroll = [];
    pttEndNow();
  }
  updateMeter(0);
  render();
});

ui.stop.addEventListener("click", () => {
  if (!unusable(ui.stop)) stopBot("stop", { cancel: true });
});

ui.composer.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const text = ui.message.value.trim();
  if (!text || !client.isOpen || unusable(ui.send)) return;
  const item = { type: "conversation.item.create", item: { type: "message", role: "user", content: [{ type: "input_text", text }] } };
  // The server closes the socket on a message over its limit (1009): say so and keep the words in the composer.
  // 64 bytes spare for the event_id the client adds.
  const bytes = new TextEncoder().encode(JSON.stringify(item)).length + 64;
  if (S.server.maxMessageBytes && bytes > S.server.maxMessageBytes) {
    const kib = (n) => Math.ceil(n / 1024).toLocaleString();
    notify("warn", "That message is too long to send", ` It is ${kib(bytes)} KiB; the server takes ${kib(S.server.maxMessageBytes)} KiB at most. Shorten it, or send it in parts.`);
    return;
  }
  ui.message.value = "";
  if (botActive()) await stopBot("typed", { cut: true }); // the server cuts the reply off when the text arrives
  send(item);
  send({ type: "response.create" });
  const t = userTurn(null, { create: true });
  t.el.classList.add("typed");
  t.final.textContent = text;
  scrollToEnd(true);
});

// push-to-talk
ui.ptt.addEventListener("change", () => {
  const on = ui.ptt.checked; // read first: ending a press renders, and render sets the switch from S.settings
  // Switched off mid-press: the press ends as a release would, but at once, before the session.update that
  // turns the server's VAD on (which drops an uncommitted push-to-talk buffer, so a commit after it would fail)
  if (!on) pttEndNow();
  S.settings.ptt = on;
  S.preroll = [];
  saveSettings();
  sendSessionUpdate();
  render();
});

// A press goes through two steps. Down: the bot is ducked at once (it yields audibly) and nothing is sent.
// Held for PTT_MIN_HOLD_MS (pttTalk): it is a talk; the bot is cut and the audio since PTT_PREROLL_MS before the
// press goes out, then the rest live. Released before that, it was a slip: the bot comes back to full volume
// as if nothing happened. The server never sees a slip: its first audio would cut the bot (a barge-in) and its
// commit would be an empty turn.
let pttHoldTimer = null;
let pttTailTimer = null;
function pttDown() {
  if (!S.settings.ptt || S.pttHeld || !audioReady() || !audio.micOpen) return;
  if (S.muted) {
    notify("warn", "The microphone is muted", " Press Mute again to talk.");
    return;
  }
  if (S.pttSending) pttCommit(); // pressed again within the last release's tail: that turn is sent now
  S.pttHeld = true;
  S.pttStartedAt = performance.now();
  if (botActive()) audio.setDucked(true, PTT_DUCK_GAIN);
  pttHoldTimer = setTimeout(pttTalk, PTT_MIN_HOLD_MS);
  render();
}

/** The press has lasted PTT_MIN_HOLD_MS: it is a talk. */
function pttTalk() {
  clearTimeout(pttHoldTimer);
  if (!S.pttHeld || S.pttSending) return;
  S.pttSending = true;
  if (botActive()) {
    // the server would cut the reply off at the first audio anyway; the page stops it and says what was heard
    stopBot("push-to-talk", { cut: true }).finally(() => audio.setDucked(false));
  } else {
    audio.setDucked(false);
  }
  sendBufferEvent({ type: "input_audio_buffer.clear" });
  const pre = S.preroll;
  S.preroll = [];
  for (const f of pre) queueFrame(f);
  render();
}

/** The talk button or Space is released: after PTT_TAIL_MS more audio (`tail`), the turn is committed. */
function pttUp({ tail = true } = {}) {
  if (!S.pttHeld) return;
  // the hold timer may be late on a busy machine: a press that lasted long enough counts however it ends
  if (!S.pttSending && performance.now() - S.pttStartedAt >= PTT_MIN_HOLD_MS) pttTalk();
  clearTimeout(pttHoldTimer);
  S.pttHeld = false;
  if (!S.pttSending) {
    audio.setDucked(false); // a slip: nothing was sent, and the bot goes on at full volume
    render();
    return;
  }
  render();
  if (tail) pttTailTimer = setTimeout(pttCommit, PTT_TAIL_MS);
  else pttCommit();
}

function pttCommit() {
  clearTimeout(pttTailTimer);
  S.pttSending = false;
  flushOutbox();
  sendBufferEvent({ type: "input_audio_buffer.commit" }); // after the audio still queued, if any
  render();
}

/** End a press, or the tail after one, now: what was said is committed without waiting for the tail. */
function pttEndNow() {
  pttUp({ tail: false });
  if (S.pttSending) pttCommit(); // released already, its tail still running
}

function pttReset() {
  clearTimeout(pttHoldTimer);
  clearTimeout(pttTailTimer);
  S.pttHeld = S.pttSending = false;
  S.preroll = [];
  audio.setDucked(false);
}

ui.talk.addEventListener("pointerdown", (ev) => {
  if (ev.button !== 0) return;
  ui.talk.setPointerCapture(ev.pointerId);
  pttDown();
});
for (const type of ["pointerup", "pointercancel", "lostpointercapture"]) ui.talk.addEventListener(type, () => pttUp());
ui.talk.addEventListener("click", (ev) => {
  // Enter (a click with detail 0) toggles, for people who cannot hold a key
  if (ev.detail !== 0) return;
  if (S.pttHeld) pttUp();
  else pttDown();
});
ui.talk.addEventListener("contextmenu", (ev) => ev.preventDefault());

function typingTarget(el) {
  return !!(el && el.closest && el.closest("input, textarea, select, [contenteditable], dialog"));
}

// Space held to talk owns its key repeats and its release wherever focus goes meanwhile: a click on the
// push-to-talk switch focuses the switch, and a repeat there would otherwise toggle it back on release
let spaceTalking = false;
function spaceIsTalk(ev) {
  return ev.code === "Space" && (spaceTalking || (S.settings.ptt && !typingTarget(ev.target)));
}

document.addEventListener("keydown", (ev) => {
  if (ev.key === "Escape" && !ui.settings.open && botActive()) {
    ev.preventDefault();
    stopBot("stop", { cancel: true });
  } else if (spaceIsTalk(ev)) {
    ev.preventDefault(); // no page scroll, no button click, no switch toggled
    if (!ev.repeat) {
      spaceTalking = true;
      pttDown();
    }
  }
});
document.addEventListener("keyup", (ev) => {
  if (spaceIsTalk(ev)) {
    ev.preventDefault();
    spaceTalking = false;
    pttUp();
  }
});
window.addEventListener("blur", () => {
  spaceTalking = false; // the key's release goes to another window
  pttUp();
});
window.addEventListener("online", () => client.retrySoon());
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") client.retrySoon();
});

// settings
/**
 * Show the settings in the form. The server's answers (session.updated) refresh the form while it is
 * open, so a field the user is editing right now is left alone: it would otherwise lose their typing.
 */
function fillSettingsForm() {
  const s = S.settings;
  const editing = document.activeElement;
  const put = (el, prop, value) => {
    if (el !== editing) el[prop] = value;
  };
  put(ui.setUser, "value", S.userId);
  const silence = s.silenceMs ?? S.server.turnDetection?.silence_duration_ms; // unknown before connecting
  if (ui.setSilence !== editing) {
    if (silence !== undefined) ui.setSilence.value = String(silence);
    ui.setSilenceOut.textContent = silence !== undefined ? `${silence} ms` : "server default";
  }
  put(ui.setProactive, "checked", s.proactive ?? S.server.proactive ?? true);
  put(ui.setVoice, "value", s.voice || "");
  ui.setVoice.placeholder = S.server.voice ? `server default (${S.server.voice})` : "server default";
  put(ui.setAec, "checked", s.echoCancellation);
  put(ui.setNs, "checked", s.noiseSuppression);
  put(ui.setAgc, "checked", s.autoGainControl);
  put(ui.setRate, "value", String(s.rate));
}

function settingsChanged(what, { session = true, mic = false, restore = false } = {}) {
  saveSettings();
  if (session) sendSessionUpdate({ restore });
  if (mic && audio.micOpen) openMic();
  ui.settingsStatus.textContent = `${what} saved${session && client.isOpen ? " and sent" : ""}.`;
}

ui.settingsOpen.addEventListener("click", () => {
  fillSettingsForm();
  ui.settingsStatus.textContent = "";
  ui.settings.showModal();
});
ui.setUser.addEventListener("change", () => {
  const id = ui.setUser.value.trim();
  if (!USER_ID_PATTERN.test(id)) {
    ui.settingsStatus.textContent =
      "A user id is 1 to 128 letters, digits or . @ : - _, not starting with anon- (kept the old one).";
    ui.setUser.value = S.userId;
    return;
  }
  S.userId = id;
  settingsChanged("User id");
});
ui.setSilence.addEventListener("input", () => {
  ui.setSilenceOut.textContent = `${ui.setSilence.value} ms`;
});
ui.setSilence.addEventListener("change", () => {
  S.settings.silenceMs = Number(ui.setSilence.value);
  settingsChanged("Pause length");
});
ui.setProactive.addEventListener("change", () => {
  S.settings.proactive = ui.setProactive.checked;
  settingsChanged("Proactivity");
});
ui.setVoice.addEventListener("change", () => {
  S.settings.voice = ui.setVoice.value.trim() || null;
  settingsChanged("Voice");
});
for (const [el, key] of [
  [ui.setAec, "echoCancellation"],
  [ui.setNs, "noiseSuppression"],
  [ui.setAgc, "autoGainControl"],
]) {
  el.addEventListener("change", () => {
    S.settings[key] = el.checked;
    settingsChanged("Microphone setting", { session: false, mic: true });
  });
}
ui.setRate.addEventListener("change", () => {
  S.settings.rate = Number(ui.setRate.value);
  settingsChanged("Audio rate");
});
ui.setReset.addEventListener("click", () => {
  const ptt = S.settings.ptt;
  S.settings = { ...DEFAULT_SETTINGS, ptt };
  fillSettingsForm();
  settingsChanged("Defaults", { mic: true, restore: true });
});

// ---- start-up ----
window.s2s = {
  get connection() {
    return S.conn;
  },
  get state() {
    return S.serverState;
  },
  get sampleRate() {
    return audio.sampleRate;
  },
  /** bot audio frames rendered to the speaker so far, at the AudioContext rate */
  get playedSamples() {
    return audio.progress.playedFrames;
  },
  get playedMs() {
    return audio.sampleRate ? (audio.progress.playedFrames / audio.sampleRate) * 1000 : 0;
  },
  get bufferedSamples() {
    return audio.bufferedFrames;
  },
  get framesSent() {
    return S.framesSent;
  },
  get audioSentMs() {
    return S.audioSentMs;
  },
  get inputLevel() {
    return S.inputLevel;
  },
  /** the bot's voice is lowered: a push-to-talk press that is not a talk yet */
  get ducked() {
    return audio.ducked;
  },
  get micOpen() {
    return audio.micOpen;
  },
  get settings() {
    return { ...S.settings, userId: S.userId };
  },
  events: S.events,
  sent: S.sent,
  truncates: S.truncates,
};

fillSettingsForm();
saveSettings(); // the user id sticks from the first visit
render();
