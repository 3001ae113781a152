// The listen panel's player, on the audio rendering thread: a jitter buffer of a monitor's
// audio, resampled to the context's rate and mapped to stereo.
//
// The page posts chunks `{rate, channels, samples}` (interleaved f32, transferred). Playing
// starts once `start` seconds are buffered (START_SECONDS at first); running dry after that
// outputs silence, counts a dropout, waits a little longer before starting again (up to
// START_MAX_SECONDS: a connection that stutters gets more slack) and buffers again. More
// than MAX_SECONDS buffered (a burst after the page stalled) skips ahead to `start`, and a
// second in which the buffer never fell near `start` drops the excess, so the delay behind
// the server stays small.

const START_SECONDS = 0.06;
const START_STEP_SECONDS = 0.02;
const START_MAX_SECONDS = 0.15;
const MAX_SECONDS = 0.25;
/** Buffered audio above `start` by more than this for a whole second is trimmed. */
const SLACK_SECONDS = 0.04;
const REPORTS_PER_SECOND = 8;

class ListenProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    /** Chunks not yet played; `offset` frames of the first are already taken. */
    this.chunks = [];
    this.offset = 0;
    this.start = START_SECONDS;
    this.playing = false;
    this.started = false;
    this.dropouts = 0;
    this.skippedFrames = 0;
    this.playedFrames = 0;
    // Linear interpolation between two source frames, `phase` of the way from one to the next.
    this.previous = [0, 0];
    this.next = [0, 0];
    this.phase = 0;
    this.step = 1;
    this.untilReport = 0;
    /** The least buffered in the current second, and the frames left in that second. */
    this.lowest = Infinity;
    this.untilTrim = sampleRate;
    this.port.onmessage = (event) => this.receive(event.data);
  }

  receive(chunk) {
    const frames = Math.floor(chunk.samples.length / chunk.channels);
    if (frames === 0) return;
    this.chunks.push({ ...chunk, frames });
    if (this.bufferedSeconds() > MAX_SECONDS) this.skipTo(this.start);
  }

  /** Seconds of source audio queued. */
  bufferedSeconds() {
    let seconds = 0;
    for (const [index, chunk] of this.chunks.entries()) {
      seconds += (chunk.frames - (index === 0 ? this.offset : 0)) / chunk.rate;
    }
    return seconds;
  }

  /** Drops the oldest queued audio until `seconds` are left. */
  skipTo(seconds) {
    let excess = this.bufferedSeconds() - seconds;
    while (excess > 0 && this.chunks.length > 0) {
      const chunk = this.chunks[0];
      const left = chunk.frames - this.offset;
      const frames = Math.min(left, Math.ceil(excess * chunk.rate));
      this.offset += frames;
      this.skippedFrames += frames;
      excess -= frames / chunk.rate;
      if (this.offset === chunk.frames) {
        this.chunks.shift();
        this.offset = 0;
      }
    }
  }

  /** Moves the next source frame into `this.next`; false when none is queued. */
  take() {
    const chunk = this.chunks[0];
    if (!chunk) return false;
    const base = this.offset * chunk.channels;
    this.next[0] = chunk.samples[base];
    // Mono plays on both sides; past two channels only the first two are heard.
    this.next[1] = chunk.channels === 1 ? chunk.samples[base] : chunk.samples[base + 1];
    this.step = chunk.rate / sampleRate;
    this.offset += 1;
    if (this.offset === chunk.frames) {
      this.chunks.shift();
      this.offset = 0;
    }
    return true;
  }

  /** Loads the first two frames of a new run of audio. */
  prime() {
    this.take();
    this.previous[0] = this.next[0];
    this.previous[1] = this.next[1];
    this.take();
    this.phase = 0;
  }

  /** Once a second: drops what stayed buffered beyond `start` and its slack all along. */
  trim(frames) {
    this.lowest = this.playing ? Math.min(this.lowest, this.bufferedSeconds()) : Infinity;
    this.untilTrim -= frames;
    if (this.untilTrim > 0) return;
    this.untilTrim = sampleRate;
    if (this.playing && this.lowest > this.start + SLACK_SECONDS) {
      this.skipTo(this.bufferedSeconds() - (this.lowest - this.start));
    }
    this.lowest = Infinity;
  }

  process(_inputs, outputs) {
    const [left, right] = outputs[0];
    if (!this.playing && this.bufferedSeconds() >= this.start) {
      this.prime();
      this.playing = true;
      this.started = true;
    }
    let written = 0;
    while (this.playing && written < left.length) {
      left[written] = this.previous[0] + (this.next[0] - this.previous[0]) * this.phase;
      right[written] = this.previous[1] + (this.next[1] - this.previous[1]) * this.phase;
      written += 1;
      this.phase += this.step;
      while (this.phase >= 1) {
        this.phase -= 1;
        this.previous[0] = this.next[0];
        this.previous[1] = this.next[1];
        if (!this.take()) {
          this.playing = false;
          this.dropouts += 1;
          this.start = Math.min(START_MAX_SECONDS, this.start + START_STEP_SECONDS);
          break;
        }
      }
    }
    this.playedFrames += written;
    left.fill(0, written);
    right.fill(0, written);
    this.trim(left.length);
    this.untilReport -= left.length;
    if (this.untilReport <= 0) {
      this.untilReport = sampleRate / REPORTS_PER_SECOND;
      this.port.postMessage({
        bufferedSeconds: this.bufferedSeconds(),
        startSeconds: this.start,
        playing: this.playing,
        started: this.started,
        dropouts: this.dropouts,
        skippedFrames: this.skippedFrames,
        playedFrames: this.playedFrames,
      });
    }
    return true;
  }
}

registerProcessor('paravox-listen', ListenProcessor);
