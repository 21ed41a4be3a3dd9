// Who the visitor is, as the page or the visitor says (pure apart from storage; unit-tested):
// the page's `customer` ({name, email, customer_id}, sent as `metadata.customer` with every
// message) and, for visitors the page does not know, the optional pre-engagement form's answers
// (self-declared, kept in session storage, sent as `metadata.pre_engagement` {name, email}).

export const DETAIL_FIELDS = ["name", "email"];
const MAX_LENGTH = { name: 100, email: 254 };
const CUSTOMER_KEYS = ["name", "email", "customer_id"];
// Deliberately loose: something@domain.tld. The server trims and caps; this only catches typos.
const EMAIL_PATTERN = /^[^\s@]+@[^\s@.]+(\.[^\s@.]+)+$/;

/** The page's customer as sent: the known keys only, as trimmed strings; null when there is none. */
export function customerOf(value) {
  if (!value || typeof value !== "object" || Array.isArray(value)) return null;
  const customer = {};
  for (const key of CUSTOMER_KEYS) {
    const field = value[key];
    if ((typeof field === "string" && field.trim()) || (typeof field === "number" && isFinite(field))) {
      customer[key] = String(field).trim();
    }
  }
  return Object.keys(customer).length ? customer : null;
}

/** The form's fields from the `preEngagement` option: true -> name and email; a list -> those of them; else none. */
export function preEngagementFields(option) {
  if (option === true || option === "true") return [...DETAIL_FIELDS];
  const list = Array.isArray(option) ? option : typeof option === "string" ? option.split(",") : [];
  const fields = list.map((f) => String(f).trim().toLowerCase()).filter((f) => DETAIL_FIELDS.includes(f));
  return DETAIL_FIELDS.filter((f) => fields.includes(f));
}

export function validEmail(value) {
  const email = String(value || "").trim();
  return email.length <= MAX_LENGTH.email && EMAIL_PATTERN.test(email);
}

/**
 * The form's answers checked: `{details, errors}`. Every field is optional but not all of them
 * empty (else: Skip); an email must look like one. `errors` maps a field to its sentence.
 */
export function checkDetails(values, fields) {
  const details = {};
  const errors = {};
  for (const field of fields) {
    const value = String((values && values[field]) || "").trim().replace(/\s+/g, " ");
    if (!value) continue;
    if (value.length > MAX_LENGTH[field]) errors[field] = `Use at most ${MAX_LENGTH[field]} characters.`;
    else if (field === "email" && !validEmail(value)) errors.email = "Enter an email address like name@example.com.";
    else details[field] = value;
  }
  if (!Object.keys(details).length && !Object.keys(errors).length && fields.length) {
    errors[fields[0]] = fields.length > 1 ? "Enter your name or email, or choose Skip." : "Enter it, or choose Skip.";
  }
  return { details, errors };
}

/** The form's answers for this browser tab: `{name, email}` given, `skipped`, or nothing yet. */
export class PreEngagement {
  constructor(storage, prefix) {
    this.storage = storage;
    this.key = `${prefix}:pre_engagement`;
  }

  read() {
    try {
      const value = JSON.parse(this.storage.getItem(this.key) || "null");
      return value && typeof value === "object" ? value : null;
    } catch (_) {
      return null;
    }
  }

  write(value) {
    try {
      this.storage.setItem(this.key, JSON.stringify(value));
    } catch (_) {
      // Storage blocked: asked again on the next page view.
    }
  }

  /** What `metadata.pre_engagement` carries: the given fields, or null. */
  get details() {
    const value = this.read();
    if (!value || value.skipped) return null;
    const details = {};
    for (const field of DETAIL_FIELDS) if (typeof value[field] === "string" && value[field]) details[field] = value[field];
    return Object.keys(details).length ? details : null;
  }

  /** Whether the visitor has answered the form (filled in or skipped). */
  get answered() {
    return this.read() !== null;
  }

  save(details) {
    this.write({ ...details });
  }

  skip() {
    this.write({ skipped: true });
  }
}
