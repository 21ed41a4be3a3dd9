// After the agent chat (pure: no DOM, unit-tested): the satisfaction survey and the transcript by
// email, read from notices marked with `metadata.handoff.event`:
//   survey           quick replies 1–5 (payload `/handoff_rating{"rating": N}`) and Skip -> star rating
//   survey_comment   optional comment (Skip)                  -> a comment box
//   survey_thanks                                              -> a card
//   transcript_offer buttons                                   -> asked like the bot asks
//   transcript_email the address is the next message           -> an email box
//   transcript_sent / transcript_failed                        -> cards
// A server that sends none of these never shows any of it; one that sends them without our
// metadata still works with any widget (they are text and buttons).

export const RATING_LABELS = ["Very poor", "Poor", "Okay", "Good", "Excellent"];

// Notices that ask for typed input: their box stays usable like buttons do (until the next turn).
const INPUT_EVENTS = ["survey_comment", "transcript_email"];

function ratingOf(reply) {
  const payload = String(reply.payload || "");
  const json = /\{.*\}\s*$/.exec(payload);
  if (json) {
    try {
      const value = JSON.parse(json[0]).rating;
      const number = typeof value === "string" ? Number(value) : value;
      if (Number.isInteger(number)) return number;
    } catch (_) {
      // not JSON entities: look at the title
    }
  }
  const title = String(reply.title || "").trim();
  if (/^[1-5]$/.test(title)) return Number(title);
  if (/^★{1,5}$/.test(title)) return title.length;
  return null;
}

/**
 * A survey notice's buttons as a 1–5 scale: `{ratings: [reply for 1..5], others: [Skip...]}`, or
 * null when they are not exactly the ratings 1 to 5 (then they stay plain buttons).
 */
export function ratingScale(quickReplies) {
  const ratings = [];
  const others = [];
  for (const reply of quickReplies || []) {
    const rating = ratingOf(reply);
    if (rating !== null && rating >= 1 && rating <= 5 && !ratings[rating - 1]) ratings[rating - 1] = reply;
    else others.push(reply);
  }
  if (ratings.filter(Boolean).length !== 5) return null;
  return { ratings, others };
}

/** "4 out of 5 stars": what the visitor's answer reads as. */
export function ratingText(rating) {
  return `${rating} out of 5 star${rating === 1 ? "" : "s"}`;
}

/** The label a reply is shown with once chosen: survey ratings read as stars, others keep their title. */
export function replyLabel(message, reply) {
  if (message && message.event === "survey") {
    const scale = ratingScale(message.quickReplies);
    const rating = scale ? scale.ratings.indexOf(reply) + 1 : 0;
    if (rating > 0) return ratingText(rating);
  }
  return reply.title;
}

/** Whether a notice asks the visitor to type something (its box is shown while it is the latest question). */
export function asksForInput(message) {
  return message.sender === "system" && INPUT_EVENTS.includes(message.event);
}
