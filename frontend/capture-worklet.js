// AudioWorklet: microphone (context rate, 44.1 or 48 kHz) -> wire rate -> PCM16 frames for the page.
//
// Runs on the audio thread. Every `frameMs` of resampled audio it posts
//   {type: "frame", rate, pcm: ArrayBuffer (Int16 LE), rms, peak}
// and the page base64-encodes `pcm` into `input_audio_buffer.append`. `rate` travels with each frame so
// the page can drop frames made at a rate the server no longer expects. Messages in:
//   {type: "config", wireRate?, frameMs?}   change the output (restarts the resampler)

import { Resampler } from "./resampler.js";

class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = options.processorOptions || {};
    this.configure(opts.wireRate || 24000, opts.frameMs || 20);
    this.port.onmessage = (e) => {
      const m = e.data;
      if (m.type === "config") this.configure(m.wireRate || this.wireRate, m.frameMs || this.frameMs);
    };
  }

  configure(wireRate, frameMs) {
    this.wireRate = wireRate;
    this.frameMs = frameMs;
    this.resampler = new Resampler(sampleRate, wireRate); // sampleRate: AudioWorkletGlobalScope's context rate
    this.scratch = new Float32Array(this.resampler.maxOutput(1024));
    this.frameLength = Math.round((wireRate * frameMs) / 1000);
    this.frame = new Int16Array(this.frameLength);
    this.filled = 0;
    this.sumSquares = 0;
    this.peak = 0;
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true; // nothing connected yet
    let mono = channels[0];
    if (channels.length > 1) {
      // fold extra channels down (the fake device and some headsets are stereo)
      mono = new Float32Array(mono.length);
      for (const ch of channels) for (let i = 0; i < ch.length; i++) mono[i] += ch[i] / channels.length;
    }
    if (mono.length > 1024) this.scratch = new Float32Array(this.resampler.maxOutput(mono.length));
    const out = this.resampler.process(mono, this.scratch);
    for (let i = 0; i < out.length; i++) {
      const s = out[i] < -1 ? -1 : out[i] > 1 ? 1 : out[i];
      this.frame[this.filled++] = s < 0 ? s * 32768 : s * 32767;
      this.sumSquares += s * s;
      const a = s < 0 ? -s : s;
      if (a > this.peak) this.peak = a;
      if (this.filled === this.frameLength) this.flush();
    }
    return true;
  }

  flush() {
    const pcm = this.frame;
    this.port.postMessage(
      {
        type: "frame",
        rate: this.wireRate,
        pcm: pcm.buffer,
        rms: Math.sqrt(this.sumSquares / this.frameLength),
        peak: this.peak,
      },
      [pcm.buffer],
    );
    this.frame = new Int16Array(this.frameLength);
    this.filled = 0;
    this.sumSquares = 0;
    this.peak = 0;
  }
}

registerProcessor("s2s-capture", CaptureProcessor);
