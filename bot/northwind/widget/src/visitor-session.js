// What the widget remembers about the visitor across page loads: session id, panel open, init sent.

class MemoryStorage {
  constructor() {
    this.items = new Map();
  }
  getItem(key) {
    return this.items.has(key) ? this.items.get(key) : null;
  }
  setItem(key, value) {
    this.items.set(key, String(value));
  }
  removeItem(key) {
    this.items.delete(key);
  }
}

function usable(storage) {
  try {
    const probe = "__handoff_widget_probe__";
    storage.setItem(probe, "1");
    storage.removeItem(probe);
    return true;
  } catch (_) {
    return false; // private mode, blocked cookies, sandboxed iframe...
  }
}

export function pickStorage(option) {
  if (option && typeof option === "object" && typeof option.getItem === "function") return option;
  try {
    if (option === "session" && usable(window.sessionStorage)) return window.sessionStorage;
    if (option !== "memory" && option !== "session" && usable(window.localStorage)) return window.localStorage;
  } catch (_) {
    // Accessing window.localStorage itself can throw.
  }
  return new MemoryStorage();
}

export class VisitorSession {
  constructor(storage, prefix) {
    this.storage = storage;
    this.prefix = prefix;
  }

  read(name) {
    try {
      return this.storage.getItem(`${this.prefix}:${name}`);
    } catch (_) {
      return null;
    }
  }

  write(name, value) {
    try {
      if (value === null || value === undefined) this.storage.removeItem(`${this.prefix}:${name}`);
      else this.storage.setItem(`${this.prefix}:${name}`, String(value));
    } catch (_) {
      // Storage full or blocked: the widget still works for this page view.
    }
  }

  get id() {
    return this.read("session_id");
  }
  set id(value) {
    this.write("session_id", value);
  }

  get open() {
    const value = this.read("open");
    return value === null ? null : value === "true";
  }
  set open(value) {
    this.write("open", value ? "true" : "false");
  }

  get initSent() {
    return this.read("init_sent") === this.id;
  }
  markInitSent() {
    this.write("init_sent", this.id);
  }
}
