// The survey and transcript questions in the log: a 5-star rating, a comment box, an email box.
// Each answers with what the server's buttons would send (the rating's payload, the text typed),
// so a server that reads plain replies needs nothing else.

import { RATING_LABELS, ratingText } from "./after-chat.js";
import { el } from "./dom.js";
import { enterSubmits, field } from "./fields.js";
import { icon } from "./icons.js";
import { validEmail } from "./visitor-details.js";

function replyButtons(replies, actions, className = "hw-quick-reply") {
  return replies.map((reply) => el("button", { type: "button", className, onclick: () => actions.onQuickReply(reply) }, reply.title));
}

/**
 * Five star buttons (one tab stop: arrow keys, Home and End move between them; Enter, Space or a
 * click sends that rating's payload), a word for the star in focus, and the notice's other
 * buttons (Skip).
 */
export function starRating(scale, actions) {
  const hint = el("span", { className: "hw-rating__hint", "aria-hidden": "true" });
  let focused = -1;
  const stars = scale.ratings.map((reply, index) =>
    el("button", {
      type: "button",
      className: "hw-star",
      "aria-label": `${ratingText(index + 1)}: ${RATING_LABELS[index]}`,
      "data-rating": String(index + 1),
      tabindex: index === 0 ? "0" : "-1",
      onclick: () => actions.onQuickReply({ title: ratingText(index + 1), payload: reply.payload }),
    }, icon("star", "hw-icon hw-star__icon")),
  );
  const light = (count) => {
    stars.forEach((star, index) => star.classList.toggle("hw-star--lit", index < count));
    hint.textContent = count > 0 ? RATING_LABELS[count - 1] : "";
  };
  const moveTo = (index) => {
    stars.forEach((star, i) => { star.tabIndex = i === index ? 0 : -1; });
    stars[index].focus();
  };
  stars.forEach((star, index) => {
    star.addEventListener("mouseenter", () => light(index + 1));
    star.addEventListener("focus", () => {
      focused = index;
      light(index + 1);
    });
    star.addEventListener("blur", () => {
      focused = -1;
      light(0);
    });
    star.addEventListener("keydown", (event) => {
      const next = { ArrowRight: index + 1, ArrowUp: index + 1, ArrowLeft: index - 1, ArrowDown: index - 1, Home: 0, End: stars.length - 1 }[event.key];
      if (next === undefined) return;
      event.preventDefault();
      moveTo(Math.max(0, Math.min(stars.length - 1, next)));
    });
  });
  const row = el("div", { className: "hw-stars", onmouseleave: () => light(focused + 1) }, stars);
  // The word under the stars has its place from the start, so the log does not jump when it appears.
  return el("div", { className: "hw-rating hw-interactive", role: "group", "aria-label": "Rate your chat from 1 to 5 stars" }, [
    row,
    el("div", { className: "hw-rating__foot" }, [hint, ...replyButtons(scale.others, actions)]),
  ]);
}

/**
 * A box for typed input and the notice's buttons beside Send. `check(text)` returns an error
 * sentence or "" (then `actions.onSendText(text)`).
 */
function inlineForm({ label, className, input, submitText, replies, actions, check }) {
  const box = field({ label, ...input });
  const form = el("form", { className: `hw-inline-form hw-interactive ${className}`, novalidate: true, "aria-label": label }, [
    box.element,
    el("div", { className: "hw-inline-form__actions" }, [
      el("button", { type: "submit", className: "hw-button hw-button--primary" }, [icon("send"), submitText]),
      ...replyButtons(replies, actions, "hw-button"),
    ]),
  ]);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = box.input.value.trim();
    const error = check(text);
    box.setError(error);
    if (error) {
      box.input.focus();
      return;
    }
    actions.onSendText(text);
  });
  if (input.multiline) enterSubmits(box.input, form);
  return form;
}

/** `survey_comment`: an optional comment, sent as the visitor's next message; Skip is the notice's button. */
export function commentForm(message, actions) {
  return inlineForm({
    label: "Your comment",
    className: "hw-comment",
    input: { name: "comment", multiline: true, rows: "3", maxlength: "1000", placeholder: "What went well? What could be better?" },
    submitText: "Send",
    replies: message.quickReplies,
    actions,
    check: (text) => (text ? "" : "Write a comment, or choose Skip."),
  });
}

/** `transcript_email`: the address the transcript goes to, sent as the visitor's next message. */
export function emailForm(message, actions, knownEmail = "") {
  return inlineForm({
    label: "Your email address",
    className: "hw-email",
    input: { name: "email", type: "email", value: knownEmail, autocomplete: "email", inputmode: "email", maxlength: "254", placeholder: "name@example.com" },
    submitText: "Send transcript",
    replies: message.quickReplies,
    actions,
    check: (text) => (validEmail(text) ? "" : "Enter an email address like name@example.com."),
  });
}
