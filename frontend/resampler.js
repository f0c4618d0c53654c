// Streaming sample-rate converter for mono float audio, shared by the capture worklet (context rate ->
// wire rate) and the page (wire rate -> context rate for playback).
//
// Band-limited interpolation with a Blackman-windowed sinc (J. O. Smith, "Digital Audio Resampling",
// https://ccrma.stanford.edu/~jos/resample/): every output sample at input time t is
//   y(t) = sum_k x[k] * h(t - k),   h(u) = 2fc * sinc(2fc * u) * blackman(u / halfWidth)
// with the cutoff fc below both Nyquist rates, so 48 kHz -> 16 kHz does not alias and 24 kHz -> 48 kHz
// does not image. The kernel is tabulated once and linearly interpolated, so the cost is about
// 2 * halfWidth multiply-adds per output sample (well under 1 % of one core at these rates).
// It keeps halfWidth input samples of history between calls, so blocks of any size join without clicks;
// the price is a fixed delay of halfWidth input samples (under 0.5 ms).

const ZERO_CROSSINGS = 8; // sinc lobes kept on each side: more is sharper and slower
const TABLE_STEPS = 512; // kernel table entries per input sample
const ROLLOFF = 0.92; // cutoff as a fraction of the lower Nyquist rate: the transition band

export class Resampler {
  /**
   * @param {number} fromHz input sample rate
   * @param {number} toHz output sample rate
   */
  constructor(fromHz, toHz) {
    if (!(fromHz > 0 && toHz > 0)) throw new RangeError(`bad rates ${fromHz} -> ${toHz}`);
    this.fromHz = fromHz;
    this.toHz = toHz;
    this.passthrough = fromHz === toHz;
    this.step = fromHz / toHz; // input samples per output sample
    const fc = 0.5 * Math.min(1, toHz / fromHz) * ROLLOFF; // cycles per input sample
    this.halfWidth = Math.ceil(ZERO_CROSSINGS / (2 * fc));
    const n = this.halfWidth * TABLE_STEPS + 2;
    this.table = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const u = i / TABLE_STEPS;
      if (u >= this.halfWidth) break;
      const x = 2 * fc * u;
      const sinc = x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x);
      const w = 0.42 + 0.5 * Math.cos((Math.PI * u) / this.halfWidth) + 0.08 * Math.cos((2 * Math.PI * u) / this.halfWidth);
      this.table[i] = 2 * fc * sinc * w;
    }
    // history: halfWidth zeros first, so the first output sample sits at input time 0 with silence before it
    this.buf = new Float32Array(4096 + 2 * this.halfWidth);
    this.len = this.halfWidth;
    this.pos = this.halfWidth; // input time of the next output sample, in buf coordinates
  }

  /** Output samples that `inputLength` more input samples can produce at most (for sizing buffers). */
  maxOutput(inputLength) {
    return Math.ceil((inputLength + 2) / this.step) + 2;
  }

  /**
   * Feed input samples; write output samples into `out` (or a new array) and return them.
   * @param {Float32Array} input
   * @param {Float32Array} [out] preallocated scratch, at least maxOutput(input.length) long
   * @returns {Float32Array} a view of `out` holding the samples produced
   */
  process(input, out) {
    if (this.passthrough) {
      if (!out) return Float32Array.from(input);
      out.set(input);
      return out.subarray(0, input.length);
    }
    this.append(input);
    if (!out) out = new Float32Array(this.maxOutput(input.length));
    const { buf, table, halfWidth, step } = this;
    let n = 0;
    let pos = this.pos;
    const end = this.len - halfWidth; // need halfWidth samples of look-ahead
    while (pos < end && n < out.length) {
      const base = Math.floor(pos);
      const frac = pos - base;
      let acc = 0;
      // taps left of pos: distances frac, frac+1, ...; right of pos: 1-frac, 2-frac, ...
      for (let k = 0; k < halfWidth; k++) {
        acc += buf[base - k] * this.kernel(frac + k, table);
        acc += buf[base + 1 + k] * this.kernel(k + 1 - frac, table);
      }
      out[n++] = acc;
      pos += step;
    }
    this.pos = pos;
    this.compact();
    return out.subarray(0, n);
  }

  kernel(u, table) {
    const x = u * TABLE_STEPS;
    const i = x | 0;
    const f = x - i;
    return table[i] + f * (table[i + 1] - table[i]);
  }

  append(input) {
    if (this.len + input.length > this.buf.length) {
      const bigger = new Float32Array(Math.max(this.buf.length * 2, this.len + input.length));
      bigger.set(this.buf.subarray(0, this.len));
      this.buf = bigger;
    }
    this.buf.set(input, this.len);
    this.len += input.length;
  }

  /** Drop input that no future output sample can reach (keep halfWidth samples behind pos). */
  compact() {
    const drop = Math.floor(this.pos) - this.halfWidth;
    if (drop <= 0) return;
    this.buf.copyWithin(0, drop, this.len);
    this.len -= drop;
    this.pos -= drop;
  }

  reset() {
    this.buf.fill(0);
    this.len = this.halfWidth;
    this.pos = this.halfWidth;
  }
}

/** Float samples in [-1, 1] to little-endian PCM16 (clipped). */
export function floatToPcm16(samples) {
  const pcm = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i++) {
    const s = samples[i] < -1 ? -1 : samples[i] > 1 ? 1 : samples[i];
    pcm[i] = s < 0 ? Math.round(s * 32768) : Math.round(s * 32767);
  }
  return pcm;
}

/** Little-endian PCM16 to float samples in [-1, 1). */
export function pcm16ToFloat(pcm) {
  const out = new Float32Array(pcm.length);
  for (let i = 0; i < pcm.length; i++) out[i] = pcm[i] / 32768;
  return out;
}
