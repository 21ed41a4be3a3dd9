// Labelled form fields with an error line the input is described by (forms in the log and the pre-engagement form).

import { el } from "./dom.js";

let counter = 0;

/** A unique element id inside the widget's shadow root. */
export function uniqueId(prefix) {
  counter += 1;
  return `${prefix}-${counter}`;
}

/**
 * A labelled input (or textarea with `multiline`): `{element, input, setError(text)}`; an error
 * marks the input invalid and is read with it (aria-describedby).
 */
export function field({ label, name, type = "text", multiline = false, value = "", hint = "", ...attributes }) {
  const id = uniqueId(`hw-${name}`);
  const errorId = `${id}-error`;
  const hintId = hint ? `${id}-hint` : null;
  const input = el(multiline ? "textarea" : "input", {
    id,
    name,
    type: multiline ? null : type,
    className: "hw-field__input",
    ...attributes,
  });
  input.value = value;
  const error = el("p", { className: "hw-field__error", id: errorId, hidden: true });
  const describedBy = () => [hintId, error.hidden ? null : errorId].filter(Boolean).join(" ");
  const setError = (text) => {
    error.textContent = text || "";
    error.hidden = !text;
    if (text) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
    const ids = describedBy();
    if (ids) input.setAttribute("aria-describedby", ids);
    else input.removeAttribute("aria-describedby");
  };
  setError("");
  input.addEventListener("input", () => {
    if (!error.hidden) setError("");
  });
  const element = el("div", { className: "hw-field" }, [
    el("label", { className: "hw-field__label", for: id, text: label }),
    hint ? el("span", { className: "hw-field__hint", id: hintId, text: hint }) : null,
    input,
    error,
  ]);
  return { element, input, setError };
}

/** Submits `form` through its submit handler (requestSubmit is missing before Safari 16). */
export function submitForm(form) {
  if (typeof form.requestSubmit === "function") form.requestSubmit();
  else form.dispatchEvent(new Event("submit", { cancelable: true }));
}

/** Enter submits a textarea's form (Shift+Enter: a new line), like the composer. */
export function enterSubmits(textarea, form) {
  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submitForm(form);
    }
  });
}
