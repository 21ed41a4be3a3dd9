// The pre-engagement form: who the visitor is, asked once before they first talk to a person
// (or when they open it from the header). Optional: Skip goes on without it.

import { el } from "./dom.js";
import { field, uniqueId } from "./fields.js";
import { icon } from "./icons.js";
import { checkDetails } from "./visitor-details.js";

const FIELD_INPUTS = {
  name: { label: "Your name", type: "text", autocomplete: "name", maxlength: "100" },
  email: { label: "Your email", type: "email", autocomplete: "email", inputmode: "email", maxlength: "254", placeholder: "name@example.com" },
};

const MODES = {
  // Asked when the visitor asks for a person: the request goes out after Start chat or Skip.
  request: {
    title: "Before we connect you",
    intro: "Tell our team who you are, so they don't have to ask. This is optional.",
    submit: "Start chat",
    other: "Skip",
  },
  // Opened from the header.
  edit: {
    title: "Your details",
    intro: "If you talk to our team, they will see these. This is optional.",
    submit: "Save",
    other: "Cancel",
  },
};

/**
 * The form: `onSubmit(details)` with the checked answers, `onOther()` for Skip / Cancel.
 * `values` prefills it (answers given before).
 */
export function preEngagementForm({ mode, fields, values = {}, onSubmit, onOther }) {
  const text = MODES[mode] || MODES.request;
  const titleId = uniqueId("hw-pre-title");
  const inputs = {};
  const parts = fields.map((name) => {
    const { label, ...attributes } = FIELD_INPUTS[name];
    inputs[name] = field({ label, name, value: values[name] || "", ...attributes });
    return inputs[name].element;
  });
  const form = el("form", { className: `hw-sheet hw-sheet--${mode}`, novalidate: true, "aria-labelledby": titleId, "data-form": "pre-engagement" }, [
    el("div", { className: "hw-sheet__head" }, [
      el("span", { className: "hw-sheet__icon", "aria-hidden": "true" }, icon("details")),
      el("h3", { className: "hw-sheet__title", id: titleId, text: text.title }),
    ]),
    el("p", { className: "hw-sheet__intro", text: text.intro }),
    ...parts,
    el("div", { className: "hw-sheet__actions" }, [
      el("button", { type: "submit", className: "hw-button hw-button--primary" }, text.submit),
      el("button", { type: "button", className: "hw-button", onclick: () => onOther() }, text.other),
    ]),
  ]);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const answers = Object.fromEntries(fields.map((name) => [name, inputs[name].input.value]));
    const { details, errors } = checkDetails(answers, fields);
    let first = null;
    for (const name of fields) {
      inputs[name].setError(errors[name] || "");
      if (errors[name] && !first) first = inputs[name].input;
    }
    if (first) first.focus();
    else onSubmit(details);
  });
  form.focusFirst = () => {
    const first = fields.length ? inputs[fields[0]].input : null;
    if (first) first.focus();
  };
  return form;
}
