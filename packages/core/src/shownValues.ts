/**
 * What messages may show of input values. A problem names the field and says what is wrong
 * without repeating key material: a value or key pasted where another belongs (a PEM key in a
 * field, a key's text as a path) is described by its length, and PEM text that still reaches a
 * message is replaced before it is printed.
 */

/**
 * A refused value as a message quotes it: short one-line text as it is; anything else (PEM text or
 * a key pasted into the field, long text) by its length only, so no message repeats key material.
 */
export const quotedValue = (value: unknown): string =>
  typeof value !== "string"
    ? typeof value
    : value.length <= 64 && !/[\r\n]|-----/.test(value)
      ? JSON.stringify(value)
      : `a string of ${value.length} characters, not shown`

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
