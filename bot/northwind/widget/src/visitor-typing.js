// Debounced "visitor is typing" signal: true on the first keystroke (repeated every few seconds
// while typing goes on, so the agent's indicator does not time out), false after a pause or a send.

const REPEAT_MS = 2500;

export class VisitorTyping {
  constructor(emit, idleMs) {
    this.emit = emit;
    this.idleMs = idleMs;
    this.typing = false;
    this.lastSent = 0;
    this.timer = null;
  }

  keystroke(hasText) {
    if (!hasText) return this.stop();
    const now = Date.now();
    if (!this.typing || now - this.lastSent >= REPEAT_MS) {
      this.typing = true;
      this.lastSent = now;
      this.emit(true);
    }
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.stop(), this.idleMs);
  }

  stop() {
    clearTimeout(this.timer);
    this.timer = null;
    if (this.typing) {
      this.typing = false;
      this.emit(false);
    }
  }
}
