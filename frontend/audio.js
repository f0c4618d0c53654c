// Audio in and out of the page: one AudioContext, a capture worklet (mic -> wire-rate PCM16 frames) and a
// playback worklet (bot audio, gapless, with a played-frames count). No protocol knowledge lives here.

import { Resampler, pcm16ToFloat } from "./resampler.js";

const FRAME_MS = 20; // capture frame length sent in each input_audio_buffer.append (the brief allows 20-40)
const DUCK_TIME_CONSTANT_S = 0.01; // how fast the bot's volume follows setDucked: quick, yet without a click

export class AudioEngine {
  /**
   * @param {object} handlers
   * @param {(frame: {rate: number, pcm: ArrayBuffer, rms: number, peak: number}) => void} handlers.onFrame
   * @param {(p: object) => void} handlers.onProgress  playback progress from the worklet
   */
  constructor({ onFrame, onProgress }) {
    this.onFrame = onFrame;
    this.onProgress = onProgress;
    this.ctx = null;
    this.loading = null; // the promise that loads the worklets, once
    this.playbackNode = null;
    this.duckNode = null; // a gain between playback and the speaker: setDucked lowers the bot without stopping it
    this.ducked = false;
    this.captureNode = null;
    this.micStream = null;
    this.micSource = null;
    this.wireRate = 24000;
    this.resamplers = new Map(); // itemId -> Resampler (wire rate -> context rate), one per bot item
    this.stopPromise = null; // the answer to stops in flight
    this.resolveStop = null;
    this.progress = { playedFrames: 0, queuedFrames: 0, itemId: null, itemPlayedFrames: 0, level: 0 };
    this.sentFrames = 0; // frames handed to the playback worklet, context rate
  }

  get sampleRate() {
    return this.ctx ? this.ctx.sampleRate : 0;
  }

  get micOpen() {
    return this.micStream !== null;
  }

  /** Frames posted to the worklet and not yet played (as of the last progress report). */
  get bufferedFrames() {
    return Math.max(0, this.sentFrames - this.progress.playedFrames);
  }

  /** Create and resume the context; call from a user gesture the first time (autoplay policy). */
  async ensureContext() {
    if (!this.loading) {
      this.ctx = new AudioContext({ latencyHint: "interactive" });
      this.loading = (async () => {
        await this.ctx.audioWorklet.addModule("capture-worklet.js");
        await this.ctx.audioWorklet.addModule("playback-worklet.js");
        this.playbackNode = new AudioWorkletNode(this.ctx, "s2s-playback", {
          numberOfInputs: 0,
          numberOfOutputs: 1,
          outputChannelCount: [1],
        });
        this.playbackNode.port.onmessage = (e) => this.onPlaybackMessage(e.data);
        this.duckNode = new GainNode(this.ctx);
        this.playbackNode.connect(this.duckNode).connect(this.ctx.destination);
      })();
    }
    await this.loading; // a second Connect while the worklets load waits for the same load
    if (this.ctx.state !== "running") await this.ctx.resume();
  }

  /**
   * Open the microphone with the given processing switches and start posting frames at `wireRate`.
   * @param {{echoCancellation: boolean, noiseSuppression: boolean, autoGainControl: boolean}} processing
   */
  async openMic(processing) {
    await this.ensureContext();
    this.closeMic();
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: {
        channelCount: 1,
        echoCancellation: processing.echoCancellation,
        noiseSuppression: processing.noiseSuppression,
        autoGainControl: processing.autoGainControl,
      },
    });
    this.micStream = stream;
    this.micSource = this.ctx.createMediaStreamSource(stream);
    // no outputs: Chrome pulls a worklet without outputs on every render quantum like a destination
    this.captureNode = new AudioWorkletNode(this.ctx, "s2s-capture", {
      numberOfInputs: 1,
      numberOfOutputs: 0,
      processorOptions: { wireRate: this.wireRate, frameMs: FRAME_MS },
    });
    this.captureNode.port.onmessage = (e) => {
      if (e.data.type === "frame") this.onFrame(e.data);
    };
    this.micSource.connect(this.captureNode);
    const track = stream.getAudioTracks()[0];
    return track ? track.label : "";
  }

  closeMic() {
    if (this.micSource) this.micSource.disconnect();
    if (this.captureNode) {
      this.captureNode.port.onmessage = null;
      this.captureNode.disconnect();
    }
    if (this.micStream) for (const t of this.micStream.getTracks()) t.stop();
    this.micStream = this.micSource = this.captureNode = null;
  }

  /** A muted track delivers silence, so the meter drops too; the page also stops sending. */
  setMuted(muted) {
    if (this.micStream) for (const t of this.micStream.getAudioTracks()) t.enabled = !muted;
  }

  /** Capture frames from now on are made at this rate (each frame says its rate). */
  setInputRate(rateHz) {
    this.wireRate = rateHz;
    if (this.captureNode) this.captureNode.port.postMessage({ type: "config", wireRate: rateHz });
  }

  /**
   * Queue one chunk of bot audio (PCM16 at `rateHz`) for gapless playback.
   * @returns {number} the chunk's length in context-rate frames
   */
  enqueue(itemId, responseId, pcm16, rateHz) {
    if (!this.playbackNode) return 0;
    let r = this.resamplers.get(itemId);
    if (!r || r.fromHz !== rateHz) {
      r = new Resampler(rateHz, this.ctx.sampleRate);
      this.resamplers.set(itemId, r);
      if (this.resamplers.size > 8) this.resamplers.delete(this.resamplers.keys().next().value);
    }
    const samples = r.process(pcm16ToFloat(pcm16));
    this.post(itemId, responseId, samples);
    return samples.length;
  }

  /** The item's audio is complete: push out the resampler's last few look-ahead samples. */
  finishItem(itemId, responseId) {
    const r = this.resamplers.get(itemId);
    if (!r) return;
    this.resamplers.delete(itemId);
    if (!r.passthrough) this.post(itemId, responseId, r.process(new Float32Array(r.halfWidth + 1)));
  }

  post(itemId, responseId, samples) {
    if (samples.length === 0) return;
    this.sentFrames += samples.length;
    this.playbackNode.port.postMessage({ type: "chunk", itemId, responseId, samples }, [samples.buffer]);
  }

  /** Lower the bot's voice to `gain` (it goes on playing, and counting as played), or bring it back to full. */
  setDucked(ducked, gain) {
    this.ducked = ducked;
    if (!this.duckNode) return;
    const g = this.duckNode.gain;
    g.cancelScheduledValues(this.ctx.currentTime);
    g.setTargetAtTime(ducked ? gain : 1, this.ctx.currentTime, DUCK_TIME_CONSTANT_S);
  }

  /**
   * Stop playback within one render quantum.
   * @returns {Promise<{items: {itemId: string, responseId: string|null, playedFrames: number}[], playedFrames: number}>}
   */
  stopPlayback(reason) {
    if (!this.playbackNode) return Promise.resolve({ items: [], playedFrames: 0, droppedFrames: 0 });
    this.resamplers.clear();
    this.playbackNode.port.postMessage({ type: "stop", reason });
    // stops posted before the worklet answers merge into one answer there, so they share one promise here
    if (!this.stopPromise) {
      this.stopPromise = new Promise((resolve) => {
        this.resolveStop = resolve;
      });
    }
    return this.stopPromise;
  }

  onPlaybackMessage(m) {
    if (m.type === "progress") {
      this.progress = m;
      this.onProgress(m);
    } else if (m.type === "stopped") {
      this.sentFrames -= m.droppedFrames;
      this.progress = { ...this.progress, playedFrames: m.playedFrames, queuedFrames: 0, level: 0 };
      this.onProgress(this.progress);
      const resolve = this.resolveStop;
      this.stopPromise = this.resolveStop = null;
      if (resolve) resolve(m);
    }
  }
}
