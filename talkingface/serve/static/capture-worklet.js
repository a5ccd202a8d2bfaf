// Copies the microphone's samples (mono, first channel) to the page in blocks of
// processorOptions.blockSeconds: the audio thread hands over 128 samples at a time, and a
// message to the page for each (375 a second at 48 kHz) costs the page more than the copying.
class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.block = new Float32Array(Math.max(128, Math.round(options.processorOptions.blockSeconds * sampleRate)));
    this.filled = 0;
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;
    let at = 0;
    while (at < channel.length) {
      const count = Math.min(channel.length - at, this.block.length - this.filled);
      this.block.set(channel.subarray(at, at + count), this.filled);
      this.filled += count;
      at += count;
      if (this.filled === this.block.length) {
        this.port.postMessage(this.block.slice(0));
        this.filled = 0;
      }
    }
    return true;
  }
}
registerProcessor("capture", CaptureProcessor);
