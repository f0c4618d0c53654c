// AudioWorklet: gapless playback of the bot's voice, with an exact count of what reached the speaker.
//
// The page resamples each `response.output_audio.delta` to the context rate and posts it here as
//   {type: "chunk", itemId, responseId, samples: Float32Array}
// Chunks queue back to back (a FIFO of arrays: no fixed capacity, no copying into a ring), so playback is
// gapless as long as audio arrives faster than real time, which the server guarantees.
//   {type: "stop", reason}  stops within one render quantum (128 frames, 2.7 ms at 48 kHz): the next
//                           quantum fades the audio out to zero, then the queue is dropped, and the page
//                           gets {type: "stopped", reason, items: [{itemId, responseId, playedFrames}],
//                           playedFrames, droppedFrames} naming every item that had audio still queued and how many of
//                           its frames were played (the basis of
//                           `conversation.item.truncate`). Stops that arrive before that quantum merge.
// About every 20 ms while audio plays, and once when the queue runs dry, it posts
//   {type: "progress", playedFrames, itemId, itemPlayedFrames, queuedFrames, level}
// `playedFrames` counts every frame of bot audio rendered since the node was made (context rate).

const PROGRESS_EVERY = 8; // render quanta between progress messages (8 x 128 / 48 kHz = 21 ms)
const ITEMS_REMEMBERED = 64; // played-frame counts kept for this many recent items

class PlaybackProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.queue = []; // [{samples, offset, itemId, responseId}]
    this.queuedFrames = 0;
    this.playedFrames = 0;
    this.itemPlayed = new Map(); // itemId -> frames played
    this.currentItem = null;
    this.currentResponse = null;
    this.stopping = null; // {reason, queue, frames} between a stop message and the quantum that fades it
    this.quanta = 0;
    this.wasActive = false;
    this.level = 0;
    this.port.onmessage = (e) => this.onMessage(e.data);
  }

  onMessage(m) {
    if (m.type === "chunk") {
      if (m.samples.length === 0) return;
      this.queue.push({ samples: m.samples, offset: 0, itemId: m.itemId, responseId: m.responseId });
      this.queuedFrames += m.samples.length;
    } else if (m.type === "stop") {
      // what is queued now fades out in the next quantum; chunks posted after the stop start a new queue
      if (this.stopping === null) this.stopping = { reason: m.reason || "stop", queue: [], frames: 0 };
      this.stopping.queue.push(...this.queue);
      this.stopping.frames += this.queuedFrames;
      this.queue = [];
      this.queuedFrames = 0;
    }
  }

  countPlayed(itemId, frames) {
    this.playedFrames += frames;
    if (itemId == null) return;
    if (!this.itemPlayed.has(itemId) && this.itemPlayed.size >= ITEMS_REMEMBERED) {
      this.itemPlayed.delete(this.itemPlayed.keys().next().value);
    }
    this.itemPlayed.set(itemId, (this.itemPlayed.get(itemId) || 0) + frames);
  }

  /** Copy queued audio into out[0..frames), optionally fading to zero; returns frames written. */
  render(queue, out, fade) {
    const frames = out.length;
    let written = 0;
    while (written < frames && queue.length > 0) {
      const head = queue[0];
      const n = Math.min(frames - written, head.samples.length - head.offset);
      for (let i = 0; i < n; i++) {
        let s = head.samples[head.offset + i];
        if (fade) s *= 1 - (written + i) / frames; // linear fade to silence over this quantum
        out[written + i] = s;
      }
      this.currentItem = head.itemId;
      this.currentResponse = head.responseId;
      this.countPlayed(head.itemId, n);
      head.offset += n;
      written += n;
      if (head.offset === head.samples.length) queue.shift();
    }
    for (let i = written; i < frames; i++) out[i] = 0;
    return written;
  }

  process(_inputs, outputs) {
    const out = outputs[0];
    const left = out[0];
    let written;
    if (this.stopping !== null) {
      const stop = this.stopping;
      this.stopping = null;
      const playedBefore = this.playedFrames;
      written = this.render(stop.queue, left, true);
      const items = [];
      const seen = new Set();
      // the item that just faded out counts even when its last frame went out in this very quantum
      if (written > 0 && this.currentItem != null) {
        seen.add(this.currentItem);
        items.push({ itemId: this.currentItem, responseId: this.currentResponse, playedFrames: this.itemPlayed.get(this.currentItem) || 0 });
      }
      for (const c of stop.queue) {
        if (c.itemId == null || seen.has(c.itemId)) continue;
        seen.add(c.itemId);
        items.push({ itemId: c.itemId, responseId: c.responseId, playedFrames: this.itemPlayed.get(c.itemId) || 0 });
      }
      const droppedFrames = stop.frames - (this.playedFrames - playedBefore);
      this.port.postMessage({ type: "stopped", reason: stop.reason, items, playedFrames: this.playedFrames, droppedFrames });
    } else {
      written = this.render(this.queue, left, false);
      this.queuedFrames -= written;
    }
    for (let c = 1; c < out.length; c++) out[c].set(left);
    let sumSquares = 0;
    for (let i = 0; i < written; i++) sumSquares += left[i] * left[i];
    this.level = 0.7 * this.level + 0.3 * Math.sqrt(sumSquares / left.length);

    const active = written > 0;
    this.quanta++;
    if ((active && this.quanta % PROGRESS_EVERY === 0) || (this.wasActive && !active)) {
      this.port.postMessage({
        type: "progress",
        playedFrames: this.playedFrames,
        itemId: this.currentItem,
        itemPlayedFrames: this.itemPlayed.get(this.currentItem) || 0,
        queuedFrames: this.queuedFrames,
        level: active ? this.level : 0,
      });
    }
    this.wasActive = active;
    return true;
  }
}

registerProcessor("s2s-playback", PlaybackProcessor);
