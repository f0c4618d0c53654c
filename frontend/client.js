// The WebSocket to /v1/realtime: JSON events in and out, and reconnection with backoff when the socket
// drops without the user asking (a server restart, a network blip). No audio or UI knowledge lives here.

const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000]; // delay before reconnect attempt 1, 2, ...; then the last
const JITTER = 0.2; // +-20 % so many pages do not reconnect in lockstep after a restart
const MAX_BUFFERED_BYTES = 1 << 20; // above this the socket is congested: audio frames are dropped, not queued

export class RealtimeClient {
  /**
   * @param {string} url ws(s)://host:port/v1/realtime
   * @param {object} handlers
   * @param {(event: object) => void} handlers.onEvent   each server event, parsed
   * @param {(status: string, detail?: object) => void} handlers.onStatus
   *   "connecting" | "open" | "reconnecting" ({delayMs, attempt, code}) | "closed" ({code, reason}) | "held" ({untilMs})
   * @param {string} [handlers.token] the server's S2S_AUTH_TOKEN, if it has one: a browser cannot set
   *   headers, so it goes as the subprotocol `openai-insecure-api-key.TOKEN`, beside `realtime`
   */
  constructor(url, { onEvent, onStatus, token = "" }) {
    this.url = url;
    this.token = token;
    this.onEvent = onEvent;
    this.onStatus = onStatus;
    this.ws = null;
    this.wanted = false; // the user wants a connection (Connect pressed, Disconnect not)
    this.attempt = 0;
    this.timer = null;
    this.heldUntil = 0; // epoch ms before which no reconnect happens (s2s.blocked with `until`)
    this.nextEventId = 1;
  }

  get isOpen() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  connect() {
    this.wanted = true;
    this.clearTimer();
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) return;
    this.onStatus("connecting");
    const ws = new WebSocket(this.url, this.token ? ["realtime", `openai-insecure-api-key.${this.token}`] : undefined);
    this.ws = ws;
    ws.onopen = () => {
      if (ws === this.ws) this.onStatus("open");
    };
    ws.onmessage = (e) => {
      if (ws !== this.ws || typeof e.data !== "string") return;
      let event;
      try {
        event = JSON.parse(e.data);
      } catch {
        return; // not ours to crash on; the server only sends JSON
      }
      if (event && typeof event.type === "string") this.onEvent(event);
    };
    ws.onclose = (e) => {
      if (ws !== this.ws) return;
      this.ws = null;
      this.onStatus("closed", { code: e.code, reason: e.reason });
      if (this.wanted) this.scheduleReconnect(e.code);
    };
    // onerror is always followed by onclose, which decides what to do
  }

  /** The session is up: the next drop starts the backoff from the beginning again. */
  markHealthy() {
    this.attempt = 0;
  }

  disconnect() {
    this.wanted = false;
    this.clearTimer();
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close(1000, "client disconnect");
    }
    this.onStatus("closed", { code: 1000, reason: "client disconnect" });
  }

  /** Do not reconnect before `untilMs` (epoch ms); Infinity means never, until the user presses Connect. */
  holdUntil(untilMs) {
    this.heldUntil = untilMs;
  }

  scheduleReconnect(code) {
    this.clearTimer();
    const now = Date.now();
    if (this.heldUntil > now) {
      if (!Number.isFinite(this.heldUntil)) {
        this.wanted = false; // blocked for good: only the user's Connect tries again
        this.onStatus("held", { untilMs: Infinity });
        return;
      }
      this.onStatus("held", { untilMs: this.heldUntil });
      // setTimeout overflows past 2^31 ms (24.8 days): wait in steps of at most an hour
      const waitMs = Math.min(this.heldUntil - now + 250, 3600 * 1000);
      this.timer = setTimeout(() => (this.heldUntil > Date.now() ? this.scheduleReconnect(code) : this.connect()), waitMs);
      return;
    }
    const base = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    const delayMs = Math.round(base * (1 + JITTER * (2 * Math.random() - 1)));
    this.attempt++;
    this.onStatus("reconnecting", { delayMs, attempt: this.attempt, code });
    this.timer = setTimeout(() => this.connect(), delayMs);
  }

  /** Try now rather than at the end of the backoff (the browser came back online, the tab came back). */
  retrySoon() {
    if (this.wanted && !this.ws && this.heldUntil <= Date.now()) this.connect();
  }

  clearTimer() {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  /**
   * Send a client event; returns its event_id, or null when the socket is not open.
   * Audio appends carry no event_id (50 a second) and are dropped rather than queued when congested.
   */
  send(event) {
    if (!this.isOpen) return null;
    const isAudio = event.type === "input_audio_buffer.append";
    if (isAudio && this.ws.bufferedAmount > MAX_BUFFERED_BYTES) return null;
    let id = event.event_id || null;
    if (!isAudio && !id) {
      id = `evt_page_${this.nextEventId++}`;
      event = { event_id: id, ...event };
    }
    this.ws.send(JSON.stringify(event));
    return id || "sent";
  }
}
