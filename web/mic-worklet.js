// The microphone feed, on the audio rendering thread: the microphone (mixed to mono by the
// node's explicit single input channel) as s16 chunks of `chunkFrames`, each posted to the
// page with its peak for the level meter. The page sends them to the server as they are.

class MicrophoneProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.chunkFrames = options.processorOptions.chunkFrames;
    this.chunk = new Int16Array(this.chunkFrames);
    this.filled = 0;
    this.peak = 0;
  }

  process(inputs) {
    // No channel while the source is not connected yet: there is nothing to send.
    const samples = inputs[0][0];
    if (!samples) return true;
    for (const sample of samples) {
      this.chunk[this.filled] = Math.max(-32768, Math.min(32767, Math.round(sample * 32768)));
      this.peak = Math.max(this.peak, Math.abs(sample));
      this.filled += 1;
      if (this.filled === this.chunkFrames) {
        // The chunk is transferred to the page, so the next one needs a buffer of its own.
        this.port.postMessage({ samples: this.chunk.buffer, peak: this.peak }, [this.chunk.buffer]);
        this.chunk = new Int16Array(this.chunkFrames);
        this.filled = 0;
        this.peak = 0;
      }
    }
    return true;
  }
}

registerProcessor('paravox-microphone', MicrophoneProcessor);
