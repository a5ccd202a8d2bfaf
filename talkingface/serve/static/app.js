// The live page: microphone or clip audio to the server, frames back onto the canvas, with
// the figures a script can read in window.talkingface.stats.
"use strict";
(() => {
  const params = new URLSearchParams(location.search);
  const token = params.get("token") || "";
  const CHUNK_S = 0.02; // audio goes out every 20 ms
  const PLAY_MARGIN_S = 0.05; // a clip starts playing this long after its first frame arrives
  const LEVELS_KEPT = 1500; // frames of audio level kept for scripts (a minute at 25 fps)
  const $ = (id) => document.getElementById(id);
  const canvas = $("face");
  const draw2d = canvas.getContext("2d");

  const stats = { startLatencyMs: null, framesShown: 0, fps: 0, droppedFrames: 0, avOffsetMs: null };
  const state = { portrait: "demo", info: null, run: null };
  const api = {
    stats, state, start, stop,
    audioLevels: new Map(), // frame index -> RMS level (dBFS) of the audio sent for it
    lastFrameIndex: -1,
    ended: 0, // streams that ended (scripts wait on it)
  };
  window.talkingface = api;

  function say(text) { $("message").textContent = text || ""; }
  // Writing a text node, even with the same text, makes the browser lay out and paint again:
  // the figures are refreshed every display frame, so write only what changed.
  function setText(id, text) {
    const element = $(id);
    if (element.textContent !== text) element.textContent = text;
  }
  function notice(text) { setText("notice", text || ""); }
  function withToken(path) {
    return token ? path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : path;
  }
  async function request(path, options = {}) {
    const response = await fetch(withToken(path), options);
    if (!response.ok) {
      let reason = response.statusText;
      try { reason = (await response.json()).error || reason; } catch (e) { /* not JSON */ }
      throw new Error(reason);
    }
    return response;
  }

  // -- controls ------------------------------------------------------------------------------
  function currentControls() {
    return {
      emotion: $("emotion").value || "neutral",
      emotionStrength: Number($("emotion-strength").value),
      headMotion: Number($("head-motion").value),
      gaze: $("gaze-natural").checked ? null : [Number($("gaze-x").value), Number($("gaze-y").value)],
    };
  }
  function sendControls() {
    const run = state.run;
    if (run && run.ws && run.ws.readyState === WebSocket.OPEN && run.started) {
      run.ws.send(JSON.stringify({ type: "controls", ...currentControls() }));
    }
  }

  // -- stats ---------------------------------------------------------------------------------
  function median(values) {
    if (!values.length) return null;
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)];
  }
  function showStats() {
    const ms = (v) => (v === null ? "–" : `${Math.round(v)} ms`);
    setText("stat-latency", ms(stats.startLatencyMs));
    setText("stat-fps", stats.fps ? stats.fps.toFixed(1) : "–");
    setText("stat-shown", String(stats.framesShown));
    setText("stat-dropped", String(stats.droppedFrames));
    setText("stat-av", ms(stats.avOffsetMs));
  }
  function resetStats() {
    Object.assign(stats, { startLatencyMs: null, framesShown: 0, fps: 0, droppedFrames: 0, avOffsetMs: null });
    api.audioLevels.clear();
    api.lastFrameIndex = -1;
    showStats();
  }

  // -- one run: audio out, frames in ---------------------------------------------------------
  class Run {
    constructor(source) {
      this.source = source; // "mic", "demo" or "file"
      this.fps = state.info.fps;
      this.pending = []; // decoded frames waiting to be shown: {index, bitmap}
      this.buffered = []; // captured samples not sent yet (mic)
      this.bufferedCount = 0;
      this.sent = 0; // samples sent
      this.firstSentAt = null;
      this.firstShownAt = null;
      this.minDelay = Infinity;
      this.shownAt = [];
      this.offsets = [];
      this.serverDropped = 0;
      this.pageDropped = 0;
      this.lastDropAt = -Infinity;
      this.levelSum = 0;
      this.levelCount = 0;
      this.levelPosition = 0;
      this.levelFrame = 0;
      this.playStart = null;
      this.started = false;
      this.closed = false;
    }

    send(samples) {
      if (!samples.length || this.closed || this.ws.readyState !== WebSocket.OPEN) return;
      const pcm = new Int16Array(samples.length);
      for (let i = 0; i < samples.length; i++) {
        const s = Math.max(-1, Math.min(1, samples[i]));
        pcm[i] = Math.round(s * 32767);
        this.level(s);
      }
      this.ws.send(pcm.buffer);
      if (this.firstSentAt === null) this.firstSentAt = performance.now();
      this.sent += samples.length;
    }

    level(sample) { // RMS level per video frame of the audio sent, for scripts and tests
      this.levelSum += sample * sample;
      this.levelCount += 1;
      this.levelPosition += 1; // samples measured so far
      const frame = Math.floor((this.levelPosition * this.fps) / this.rate);
      if (frame > this.levelFrame) {
        api.audioLevels.set(this.levelFrame, 10 * Math.log10(this.levelSum / this.levelCount + 1e-10));
        api.audioLevels.delete(this.levelFrame - LEVELS_KEPT);
        this.levelFrame = frame;
        this.levelSum = 0;
        this.levelCount = 0;
      }
    }

    capture(block) { // mic: CHUNK_S blocks from the worklet, sent as they come
      if (!this.started) return;
      this.buffered.push(block);
      this.bufferedCount += block.length;
      if (this.bufferedCount < CHUNK_S * this.rate) return;
      const chunk = new Float32Array(this.bufferedCount);
      let at = 0;
      for (const part of this.buffered) { chunk.set(part, at); at += part.length; }
      this.buffered = [];
      this.bufferedCount = 0;
      this.send(chunk);
    }

    pace() { // clip: send what real time has reached, never ahead
      const due = Math.min(this.clip.length, Math.floor(((performance.now() - this.t0) / 1000) * this.rate));
      if (due > this.sent) this.send(this.clip.subarray(this.sent, due));
      if (due >= this.clip.length && !this.stopSent) {
        this.stopSent = true;
        this.ws.send(JSON.stringify({ type: "stop" }));
      }
    }

    startPlayback() { // the clip plays in step with the frames: frame t at t / fps
      const buffer = this.audio.createBuffer(1, this.clip.length, this.rate);
      buffer.copyToChannel(this.clip, 0);
      this.player = this.audio.createBufferSource();
      this.player.buffer = buffer;
      this.player.connect(this.audio.destination);
      this.playStart = this.audio.currentTime + PLAY_MARGIN_S;
      this.player.start(this.playStart);
    }

    onFrame(data) {
      const view = new DataView(data);
      const index = view.getUint32(0, true);
      this.serverDropped = view.getUint32(4, true);
      createImageBitmap(new Blob([new Uint8Array(data, 8)], { type: "image/jpeg" })).then((bitmap) => {
        if (this.closed) { bitmap.close(); return; }
        this.pending.push({ index, bitmap });
        if (this.clip && this.playStart === null) this.startPlayback();
      }, () => { this.pageDropped += 1; });
    }

    tick(now) { // each display refresh: show the frame that belongs to this moment
      if (this.closed) return;
      const pending = this.pending.sort((a, b) => a.index - b.index);
      let due = pending.length; // mic: the newest frame, as soon as it is there
      let position = null;
      if (this.clip) {
        if (this.playStart === null) { due = 0; } else {
          position = this.audio.currentTime - (this.audio.outputLatency || 0) - this.playStart;
          due = pending.findIndex((f) => f.index / this.fps > position + 1e-6);
          if (due < 0) due = pending.length;
        }
      }
      if (due > 0) {
        const frame = pending[due - 1];
        for (let i = 0; i < due - 1; i++) pending[i].bitmap.close();
        this.pageDropped += due - 1;
        pending.splice(0, due);
        draw2d.drawImage(frame.bitmap, 0, 0, canvas.width, canvas.height);
        frame.bitmap.close();
        this.shown(frame.index, now, position);
      }
      this.shownAt = this.shownAt.filter((t) => now - t <= 1000);
      stats.fps = this.firstShownAt !== null && now - this.firstShownAt >= 1000 ? this.shownAt.length : stats.fps;
      const dropped = this.serverDropped + this.pageDropped;
      if (dropped > stats.droppedFrames) this.lastDropAt = now;
      stats.droppedFrames = dropped;
      notice(now - this.lastDropAt < 2000
        ? "Dropping frames: the server or the connection cannot keep up (too many sessions, or a busy CPU)." : "");
      showStats();
      requestAnimationFrame((t) => this.tick(t));
    }

    shown(index, now, position) {
      if (this.firstShownAt === null) {
        this.firstShownAt = now;
        if (this.firstSentAt !== null) stats.startLatencyMs = now - this.firstSentAt;
      }
      stats.framesShown += 1;
      api.lastFrameIndex = index;
      this.shownAt.push(now);
      // A clip: how far the frame is from the sound heard now. The microphone: the speaker
      // hears their own voice directly, so how much later than its smallest delay in this
      // stream the frame comes (jitter and drift of the delay).
      const delay = now - (index * 1000) / this.fps;
      this.minDelay = Math.min(this.minDelay, delay);
      const offset = position !== null ? (position - index / this.fps) * 1000 : delay - this.minDelay;
      if (now - this.firstShownAt >= 1000) {
        this.offsets.push(offset);
        if (this.offsets.length > 50) this.offsets.shift();
        stats.avOffsetMs = median(this.offsets);
      }
    }

    close() {
      if (this.closed) return;
      this.closed = true;
      clearInterval(this.timer);
      for (const f of this.pending) f.bitmap.close();
      this.pending = [];
      if (this.player) { try { this.player.stop(); } catch (e) { /* not started */ } }
      if (this.micStream) this.micStream.getTracks().forEach((t) => t.stop());
      if (this.audio) this.audio.close();
      if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close();
    }
  }

  async function pcmFrom(response) {
    const rate = Number(response.headers.get("X-Sample-Rate"));
    const pcm = new Int16Array(await response.arrayBuffer());
    const clip = new Float32Array(pcm.length);
    for (let i = 0; i < pcm.length; i++) clip[i] = pcm[i] / 32768;
    return { rate, clip };
  }

  async function start(source, file) {
    if (state.run) stop();
    say("");
    resetStats();
    const run = new Run(source);
    state.run = run;
    setRunning(true);
    try {
      if (source === "mic") {
        run.micStream = await navigator.mediaDevices.getUserMedia({
          audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false, channelCount: 1 },
        });
        run.audio = new AudioContext();
        await run.audio.audioWorklet.addModule("/static/capture-worklet.js");
        const node = new AudioWorkletNode(run.audio, "capture", { processorOptions: { blockSeconds: CHUNK_S } });
        run.audio.createMediaStreamSource(run.micStream).connect(node);
        const mute = run.audio.createGain(); // a worklet runs only while something pulls it
        mute.gain.value = 0;
        node.connect(mute).connect(run.audio.destination);
        node.port.onmessage = (e) => run.capture(e.data);
        run.rate = run.audio.sampleRate;
      } else {
        const response = source === "demo"
          ? await request("/api/demo-audio")
          : await request("/api/audio", { method: "POST", body: file });
        Object.assign(run, await pcmFrom(response));
        run.audio = new AudioContext();
      }
      await Promise.race([run.audio.resume(), new Promise((r) => setTimeout(r, 300))]);
      if (run.audio.state !== "running") { // opened without a click (autostart): ask for one
        say("Click the page to start: the browser allows sound only after a click.");
        await new Promise((r) => document.addEventListener("click", r, { once: true }));
        await run.audio.resume();
        say("");
      }
    } catch (error) {
      finish(run, source === "mic" ? `The microphone cannot be used: ${error.message}` : error.message);
      return;
    }
    if (run.closed) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    run.ws = new WebSocket(withToken(`${scheme}//${location.host}/ws`));
    run.ws.binaryType = "arraybuffer";
    run.ws.onmessage = (event) => {
      if (typeof event.data !== "string") { run.onFrame(event.data); return; }
      const message = JSON.parse(event.data);
      if (message.type === "hello") {
        run.ws.send(JSON.stringify({ type: "start", sampleRate: run.rate, portrait: state.portrait, controls: currentControls() }));
      } else if (message.type === "started") {
        run.started = true;
        if (run.clip) { run.t0 = performance.now(); run.timer = setInterval(() => run.pace(), 10); }
      } else if (message.type === "ended") {
        run.ending = true;
        // A clip plays on to its end; the frames still waiting are shown with it.
        const left = run.clip && run.playStart !== null
          ? Math.max(0, (run.clip.length / run.rate - (run.audio.currentTime - run.playStart)) * 1000) : 0;
        setTimeout(() => finish(run, message.error || ""), left + 100);
      } else if (message.type === "error") {
        say(message.reason);
        if (message.fatal) finish(run, message.reason);
      }
    };
    run.ws.onclose = (event) => {
      if (run.closed || run.ending) return;
      if (event.reason) finish(run, `The server closed the session: ${event.reason}`);
      else if (!run.started) {
        finish(run, `The server refused the session: it may be busy (it takes ${state.info.maxSessions} at once), `
          + "or this address opened too many sessions in the last minute. Try again shortly.");
      } else finish(run, "The connection to the server closed.");
    };
    requestAnimationFrame((t) => run.tick(t));
  }

  function finish(run, message) {
    if (run.finished) return;
    run.finished = true;
    run.ending = true;
    if (message) say(message);
    run.close();
    if (state.run === run) { state.run = null; setRunning(false); }
    api.ended += 1;
  }

  function stop() {
    const run = state.run;
    if (!run) return;
    if (run.ws && run.ws.readyState === WebSocket.OPEN && run.started) {
      run.ws.send(JSON.stringify({ type: "stop" }));
    }
    finish(run, "");
  }

  function setRunning(running) {
    $("stop").disabled = !running;
    for (const id of ["talk", "demo", "use-demo"]) $(id).disabled = running;
    $("audio-file").disabled = running;
    $("portrait-file").disabled = running;
  }

  // -- portrait ------------------------------------------------------------------------------
  function preview(url) {
    const img = new Image();
    img.onload = () => {
      const side = Math.min(img.width, img.height); // the middle square, as a preview
      draw2d.drawImage(img, (img.width - side) / 2, (img.height - side) / 2, side, side, 0, 0, canvas.width, canvas.height);
    };
    img.src = url;
  }
  async function uploadPortrait(file) {
    say("Analysing the portrait…");
    try {
      const response = await request("/api/portrait", { method: "POST", body: file });
      state.portrait = (await response.json()).portrait;
      preview(URL.createObjectURL(file));
      say("");
    } catch (error) {
      say(`That portrait cannot be used: ${error.message}`);
    }
  }

  async function init() {
    try {
      state.info = await (await request("/api/info")).json();
    } catch (error) {
      say(`The server cannot be reached: ${error.message}`);
      return;
    }
    $("pipeline").textContent = state.info.pipeline;
    for (const emotion of state.info.emotions) $("emotion").add(new Option(emotion, emotion));
    if (!state.info.liveControls) notice("This motion generator takes controls only when a stream starts.");
    preview(withToken("/api/demo-portrait"));
    $("talk").onclick = () => start("mic");
    $("demo").onclick = () => start("demo");
    $("stop").onclick = () => stop();
    $("audio-file").onchange = (e) => { if (e.target.files[0]) start("file", e.target.files[0]); e.target.value = ""; };
    $("portrait-file").onchange = (e) => { if (e.target.files[0]) uploadPortrait(e.target.files[0]); e.target.value = ""; };
    $("use-demo").onclick = () => { state.portrait = "demo"; preview(withToken("/api/demo-portrait")); };
    for (const id of ["emotion", "emotion-strength", "head-motion", "gaze-x", "gaze-y"]) $(id).oninput = sendControls;
    $("gaze-natural").onchange = () => {
      $("gaze-x").disabled = $("gaze-y").disabled = $("gaze-natural").checked;
      sendControls();
    };
    $("show-label").onchange = () => $("ai-label").classList.toggle("hidden", !$("show-label").checked);
    api.ready = true;
    const autostart = params.get("autostart");
    if (autostart === "mic" || autostart === "demo") start(autostart);
  }

  init();
})();
