/**
 * What messages may show of input values. A problem names the field and says what is wrong
 * without repeating key material: a value or key pasted where another belongs (a PEM key in a
 * field, a key's text as a path) is described by its length, and PEM text that still reaches a
 * message is replaced before it is printed.
 */

/**
 * The base64 of DER (a key or a certificate, whole or cut short at its end): it starts with the "M"
 * of a SEQUENCE and runs 64 characters or more. Names, ids, paths and URLs do not look like this.
 */
const derBase64Run = /(?:^|[^A-Za-z0-9+/])(M[A-Za-z0-9+/]{63,}={0,2})/
/** 64 or more hex digits: a private scalar (P-256 and larger) in hex. SHA-1 thumbprints and git ids (40) stay. */
const hexRun = /[0-9A-Fa-f]{64,}/

const count = (run: string, chars: RegExp): number => run.match(chars)?.length ?? 0

const classOf = (c: string): number =>
  c >= "A" && c <= "Z" ? 0 : c >= "a" && c <= "z" ? 1 : c >= "0" && c <= "9" ? 2 : 3

/** The share of neighbouring characters of different classes (upper case, lower case, digit, other). */
const changes = (run: string): number => {
  let n = 0
  for (let i = 1; i < run.length; i++) if (classOf(run[i - 1] ?? "") !== classOf(run[i] ?? "")) n++
  return n / Math.max(1, run.length - 1)
}

/**
 * Whether a run of base64 characters reads as encoded bytes rather than words: an eighth or more
 * upper case, an eighth or more lower case, two digits or more, and the class changing at 45 % or
 * more of its characters. Random base64 has about 40 % of each case, 16 % digits and changes class
 * at about 65 % of its characters; paths and URLs are mostly lower case, and CamelCase names change
 * class once or twice a word (about 30 %).
 */
const encoded = (run: string): boolean =>
  count(run, /[A-Z]/g) >= run.length / 8 &&
  count(run, /[a-z]/g) >= run.length / 8 &&
  count(run, /[0-9]/g) >= 2 &&
  changes(run) >= 0.45

/**
 * Whether a value holds the base64 of DER: a run of 64 or more base64 characters starting with the
 * "M" of a SEQUENCE that reads as encoded bytes and begins as DER does (a key or certificate without
 * its PEM lines, whole or cut short at its end by a paste). What the CLI and the agent refuse where a path or a value
 * goes: a name or a path, even a long CamelCase one with digits, does not match.
 */
export const looksLikeDerBase64 = (value: string): boolean => {
  const run = derBase64Run.exec(value)?.[1]
  return run !== undefined && encoded(run) && startsLikeDer(Buffer.from(run, "base64"))
}

/**
 * Whether bytes begin as DER does: a SEQUENCE (0x30) whose length, in the short or the long form
 * (one to three bytes), covers at least the bytes there are (a whole key or certificate, or one cut
 * short at its end). A digest or id in base64 that happens to start with "M" (a 0x30-0x33 byte)
 * rarely passes: its next byte must also be a length that fits.
 */
const startsLikeDer = (bytes: Uint8Array): boolean => {
  if (bytes[0] !== 0x30 || bytes.length < 2) return false
  const first = bytes[1] ?? 0
  const header = first < 0x80 ? 2 : 2 + (first & 0x7f)
  if (first === 0x80 || first > 0x83 || bytes.length < header) return false
  let length = first < 0x80 ? first : 0
  for (let i = 2; i < header; i++) length = length * 256 + (bytes[i] ?? 0)
  // Long forms are minimal in DER: 0x81 only for 128 and more.
  if (first === 0x81 && length < 0x80) return false
  // What every key and certificate holds first: an INTEGER (a key's version) or a SEQUENCE.
  const content = bytes[header]
  if (content !== undefined && content !== 0x02 && content !== 0x30) return false
  return header + length >= bytes.length - 2
}

/**
 * Whether a value may be key material rather than a name, a path or a setting: PEM markers or a
 * line break, 64 or more hex digits (a private scalar in hex), or the base64 of DER (see
 * looksLikeDerBase64). Names, paths, URLs, ids and thumbprints do not match. (A key cut short at its
 * start, or a base64url value such as a JWK's "d", is not recognised.)
 */
export const looksLikeKeyText = (value: string): boolean =>
  /-----BEGIN |PRIVATE KEY-----|[\r\n]/.test(value) || hexRun.test(value) || looksLikeDerBase64(value)

/**
 * A refused value as a message quotes it: short one-line text as it is; anything else (PEM text or
 * a key pasted into the field, text that looks like a key in base64 or hex, long text) by its length
 * only, so no message repeats key material.
 */
export const quotedValue = (value: unknown): string =>
  typeof value !== "string"
    ? typeof value
    : value.length <= 64 && !/[\r\n]|-----/.test(value) && !looksLikeKeyText(value)
      ? JSON.stringify(value)
      : `a string of ${value.length} characters, not shown`

/**
 * A path (or another value an operator typed) as a message shows it: as it is, unless it looks like
 * key text (see looksLikeKeyText), which is described by its length.
 */
export const shownPath = (path: string): string =>
  looksLikeKeyText(path) ? `(${path.length} characters that look like key text, not shown)` : path

/**
 * A key of the input as a problem's field names it: as it is when it could be a key (at most 256
 * characters on one line, no PEM markers, not 64 or more base64 characters starting with the "M"
 * of a DER SEQUENCE), else by its length.
 */
export const keyInField = (key: string): string =>
  // biome-ignore lint/suspicious/noControlCharactersInRegex: a key with control characters is named by its length
  key.length <= 256 && !/[\u0000-\u001f\u007f]|-----/.test(key) && !/^M[A-Za-z0-9+/]{63,}={0,2}$/.test(key)
    ? key
    : `(a key of ${key.length} characters, not shown)`

/** Between the lines of PEM text: a line break (also an escaped one, as in JSON) and indentation, at most 16 characters. */
const lineGap = String.raw`(?:\s|\\[rn]){0,16}`

/**
 * PEM text: a block, or the start of one cut short, with at least 16 base64 characters after its
 * header (line breaks, also escaped ones, and up to 8 RFC 1421 headers such as Proc-Type may come
 * between): a message that only names the markers is left alone. Every repetition is bounded and
 * whitespace and base64 never compete for a character, so the time is linear in the text (an
 * unbounded gap made a long run of escaped line breaks quadratic).
 */
const pemText = new RegExp(
  String.raw`-----BEGIN [^\r\n]{0,64}?-----${lineGap}(?:[A-Za-z0-9-]{1,40}:[^\r\n\\]{0,200}(?:\r?\n|\\r?\\n)${lineGap}){0,8}(?:${lineGap}[A-Za-z0-9+/=]){16}[\s\S]*?(?:-----END [^\r\n]{0,64}?-----|$)`,
  "g",
)

/**
 * `text` with every PEM block (or the start of one) replaced by a placeholder: what kvdeploy prints
 * about an error passes through this, so a certificate or key that reached a message (a value quoted
 * back from a file or the command line) is never shown.
 */
export const withoutPem = (text: string): string => text.replace(pemText, "[PEM text, not shown]")

/** Runs of 64 or more base64 characters (a PFX, a DER key or certificate in base64, when they read as encoded bytes). */
const longBase64 = /[A-Za-z0-9+/]{64,}={0,2}/g

/**
 * `text` without PEM blocks and without long base64 runs (64 or more characters that read as encoded
 * bytes): what a message from elsewhere (an SDK's error, an identity provider's
 * answer) may carry of a response body or an echoed value is not shown. Ids, thumbprints and URLs
 * are shorter or read as words and stay.
 */
export const withoutKeyText = (text: string): string =>
  withoutPem(text).replace(longBase64, (run) =>
    encoded(run) ? `[base64 text of ${run.length} characters, not shown]` : run,
  )
