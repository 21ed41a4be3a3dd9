// Files in the log: an image preview (a click opens it), a file card with a download link, and the
// upload state of a file the visitor is sending (uploading, or why it was not sent, with Retry).

import { formatBytes, typeLabel } from "./attachments.js";
import { el } from "./dom.js";
import { icon } from "./icons.js";

function detailsText(attachment) {
  return [typeLabel(attachment.contentType), formatBytes(attachment.size)].filter(Boolean).join(" · ");
}

/** A file as a card: with a link, the whole card downloads it (a new tab for what the browser opens). */
export function fileCard(attachment) {
  const details = detailsText(attachment);
  const children = [
    el("span", { className: "hw-file__icon", "aria-hidden": "true" }, icon("file")),
    el("span", { className: "hw-file__text" }, [
      el("span", { className: "hw-file__name", text: attachment.filename }),
      details ? el("span", { className: "hw-file__details", text: details }) : null,
    ]),
  ];
  if (!attachment.url) return el("div", { className: "hw-file" }, children);
  children.push(el("span", { className: "hw-file__action", "aria-hidden": "true" }, icon("download")));
  return el("a", {
    className: "hw-file hw-file--link",
    href: attachment.url,
    target: "_blank",
    rel: "noopener noreferrer",
    download: attachment.filename,
    "aria-label": `Download ${attachment.filename}${details ? ` (${details.replace(" · ", ", ")})` : ""}`,
  }, children);
}

/** An image: the local file while it is being sent, else the server's link (a click opens it full size). */
function imagePreview(attachment) {
  const src = attachment.localUrl || attachment.url;
  const image = el("img", { className: "hw-attachment__image", src, alt: attachment.filename, loading: "lazy" });
  const figure = el("figure", { className: "hw-attachment" }, [
    attachment.url
      ? el("a", {
        className: "hw-attachment__open",
        href: attachment.url,
        target: "_blank",
        rel: "noopener noreferrer",
        title: "Open the image in a new tab",
      }, image)
      : image,
    el("figcaption", { className: "hw-attachment__name", text: attachment.filename }),
  ]);
  // A link that no longer works (expired, offline): the file's card says what it was.
  image.addEventListener("error", () => figure.replaceWith(fileCard(attachment)), { once: true });
  return figure;
}

export function attachmentElement(attachment) {
  return attachment.kind === "image" && (attachment.localUrl || attachment.url) ? imagePreview(attachment) : fileCard(attachment);
}

/** Whether a file turn's text only repeats the file name ("invoice.pdf", "Alice: invoice.pdf"). */
export function namesOnlyTheFile(text, attachment) {
  const value = String(text || "").trim();
  return !value || value === attachment.filename || value.endsWith(`: ${attachment.filename}`);
}

/** The upload state under a file the visitor sends; refreshed in place as it changes. */
export function renderUpload(container, message, actions) {
  const upload = message.upload;
  const state = upload ? upload.state : "sent";
  const signature = `${state}:${upload ? upload.error : ""}`;
  if (container.dataset.signature === signature) return;
  container.dataset.signature = signature;
  container.className = `hw-upload hw-upload--${state}`;
  container.hidden = state === "sent";
  if (state === "uploading") {
    container.replaceChildren(
      el("span", { className: "hw-progress", "aria-hidden": "true" }, el("span", { className: "hw-progress__bar" })),
      el("span", { className: "hw-upload__text", text: "Uploading…" }),
    );
  } else if (state === "failed") {
    container.replaceChildren(
      el("p", { className: "hw-upload__error", role: "alert" }, [icon("alert"), el("span", { text: `Not sent: ${upload.error}` })]),
      el("div", { className: "hw-upload__actions" }, [
        upload.retryable
          ? el("button", { type: "button", className: "hw-link-button hw-upload__retry", onclick: () => actions.onRetryUpload(message) }, [
            icon("retry"),
            "Retry",
          ])
          : null,
        el("button", { type: "button", className: "hw-link-button hw-upload__remove", onclick: () => actions.onRemoveUpload(message) }, "Remove"),
      ]),
    );
  } else {
    container.replaceChildren();
  }
}
