// Inline SVG icons, built with DOM calls from constant path data.

const SVG_NS = "http://www.w3.org/2000/svg";

const PATHS = {
  chat: ["M4 5.5A2.5 2.5 0 0 1 6.5 3h11A2.5 2.5 0 0 1 20 5.5v8a2.5 2.5 0 0 1-2.5 2.5H10l-4.2 3.6A.5.5 0 0 1 5 19.2V16h.5A2.5 2.5 0 0 1 4 13.5z"],
  close: ["M6 6l12 12", "M18 6L6 18"],
  minimise: ["M6 9l6 6 6-6"],
  send: ["M4 12l16-8-6 16-2.5-6.5z", "M11.5 13.5L20 4"],
  download: ["M12 4v11", "M7 10l5 5 5-5", "M5 20h14"],
  agent: ["M12 12a4 4 0 1 0 0-8 4 4 0 0 0 0 8z", "M4.5 20a7.5 7.5 0 0 1 15 0"],
  bot: ["M7 8h10a3 3 0 0 1 3 3v5a3 3 0 0 1-3 3H7a3 3 0 0 1-3-3v-5a3 3 0 0 1 3-3z", "M12 4v4", "M9 13h.01", "M15 13h.01"],
  offline: ["M3 3l18 18", "M8.5 16.5a5 5 0 0 1 7 0", "M5 12.5a10 10 0 0 1 4-2.3", "M19 12.5a10 10 0 0 0-3.2-2"],
  online: ["M5 12.5l4.5 4.5L19 7.5"],
  end: ["M5 12h14"],
  clock: ["M12 21a9 9 0 1 0 0-18 9 9 0 0 0 0 18z", "M12 7v5l3 2"],
  check: ["M12 21a9 9 0 1 0 0-18 9 9 0 0 0 0 18z", "M8 12.5l2.8 2.8L16.5 9.5"],
  transfer: ["M4 8h13", "M13 4l4 4-4 4", "M20 16H7", "M11 12l-4 4 4 4"],
  message: ["M4 6h16v12H4z", "M4 7l8 6 8-6"],
  attach: ["M20.5 11.5l-8.3 8.3a5 5 0 0 1-7.1-7.1l8.6-8.6a3.3 3.3 0 0 1 4.7 4.7l-8.6 8.6a1.7 1.7 0 0 1-2.4-2.4l7.9-7.9"],
  file: ["M14 3H7a2 2 0 0 0-2 2v14a2 2 0 0 0 2 2h10a2 2 0 0 0 2-2V8z", "M14 3v5h5"],
  star: ["M12 3.2l2.7 5.5 6 .9-4.35 4.25 1.03 6L12 17l-5.38 2.85 1.03-6L3.3 9.6l6-.9z"],
  retry: ["M20 11a8 8 0 0 0-14.3-4.6L4 8", "M4 3v5h5", "M4 13a8 8 0 0 0 14.3 4.6L20 16", "M20 21v-5h-5"],
  alert: ["M12 21a9 9 0 1 0 0-18 9 9 0 0 0 0 18z", "M12 7.5v5.5", "M12 16.5h.01"],
  details: ["M3.5 5.5h17v13h-17z", "M9 11.2a1.8 1.8 0 1 0 0-3.6 1.8 1.8 0 0 0 0 3.6z", "M6 15.5a3 3 0 0 1 6 0", "M14.5 9.5h3.5", "M14.5 13h3.5"],
};

export function icon(name, className = "hw-icon") {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", className);
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  for (const d of PATHS[name] || []) {
    const path = document.createElementNS(SVG_NS, "path");
    path.setAttribute("d", d);
    svg.appendChild(path);
  }
  return svg;
}
