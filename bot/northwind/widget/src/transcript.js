// A plain-text transcript of the conversation, downloaded as a file.

function stamp(timestamp) {
  const date = new Date(timestamp);
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

function author(message, botName) {
  if (message.sender === "visitor") return "You";
  if (message.sender === "agent") return `${message.agentName || "Agent"} (agent)`;
  return botName;
}

export function transcriptText(messages, { title, botName }) {
  const lines = [`${title} — chat transcript`, `Downloaded ${stamp(Date.now())}`, ""];
  for (const message of messages) {
    const text = message.attachment
      ? `[file] ${message.attachment.filename}`
      : message.text || (message.image ? `[image] ${message.image.src}` : "");
    const who = message.sender === "system" ? "*" : `${author(message, botName)}:`;
    lines.push(`[${stamp(message.timestamp)}] ${who} ${text}`);
  }
  return lines.join("\n") + "\n";
}

export function transcriptFilename(now = Date.now()) {
  return `chat-transcript-${stamp(now).replace(/[ :]/g, "-")}.txt`;
}

export function downloadText(text, filename, documentRef = document) {
  const blob = new Blob([text], { type: "text/plain;charset=utf-8" });
  const url = URL.createObjectURL(blob);
  const link = documentRef.createElement("a");
  link.href = url;
  link.download = filename;
  link.style.display = "none";
  documentRef.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
