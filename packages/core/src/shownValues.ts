/**
 * What messages may show of input values. A problem names the field and says what is wrong
 * without repeating key material: a value or key pasted where another belongs (a PEM key in a
 * field, a key's text as a path) is described by its length, and PEM text that still reaches a
 * message is replaced before it is printed.
 */

/**
 * The base64 of DER (a key or a certificate, whole or cut short at its end): it starts with the "M"
 * of a SEQUENCE and runs 64 characters or more. Names, ids, paths and URLs do not look like this.
 * It may follow a slash (a key pasted as a path's or a URL's last segment).
 */
const derBase64Run = /(?:^|[^A-Za-z0-9+])(M[A-Za-z0-9+/]{63,}={0,2})/
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

/** Runs of 64 or more base64 characters (a PFX, a DER key or certificate in base64, when they read as encoded bytes). */
const longBase64 = /[A-Za-z0-9+/]{64,}={0,2}/g

/**
 * Whether text holds a run of 64 or more base64 characters that reads as encoded bytes (see
 * `encoded`): a line of a PEM body or more, from anywhere in a key (not only from the "M" of its
 * DER, as looksLikeDerBase64 needs), or a PFX's base64. Names, URLs and hex ids do not; a path of
 * many short segments with digits (`/srv/Certs2024/WebApp1/Prod02/…`) can, so paths are not judged
 * by it. Tag values and keys, field names and command-line values are.
 */
export const holdsEncodedBase64 = (text: string): boolean => {
  for (const run of text.matchAll(longBase64)) if (encoded(run[0])) return true
  return false
}

/**
 * Whether a value holds the base64 of DER: a run of 64 or more base64 characters starting with the
 * "M" of a SEQUENCE whose bytes read as DER elements all the way (a key or certificate without its
 * PEM lines, whole or cut short at its end by a paste). What the CLI and the agent refuse where a
 * path or a value goes: a name or a path, even a long CamelCase one with digits, does not read as
 * DER past its first bytes.
 */
export const looksLikeDerBase64 = (value: string): boolean => {
  const run = derBase64Run.exec(value)?.[1]?.replace(/=+$/, "")
  if (run === undefined) return false
  // Whole groups of four only: the bits of a cut group would be read as a byte that is not there.
  return derHeaders(Buffer.from(run.slice(0, run.length - (run.length % 4)), "base64")) >= 3
}

/**
 * Tags that keys and certificates hold: BOOLEAN, INTEGER, BIT STRING, OCTET STRING, NULL, OBJECT
 * IDENTIFIER, the string and time types, SEQUENCE, SET, and context-specific tags 0-8.
 */
const derTags = new Set([
  0x01,
  0x02,
  0x03,
  0x04,
  0x05,
  0x06,
  0x0c,
  0x13,
  0x14,
  0x16,
  0x17,
  0x18,
  0x1e,
  0x30,
  0x31,
  ...Array.from({ length: 9 }, (_, n) => 0x80 + n),
  ...Array.from({ length: 9 }, (_, n) => 0xa0 + n),
])

/**
 * How many element headers `bytes` hold when read as the start of one DER element (a SEQUENCE),
 * into every SEQUENCE, SET and constructed context-specific element, up to where the bytes end (a
 * paste may cut anywhere); -1 when they stop reading as DER first: a tag keys and certificates do
 * not use, a length that is not minimal or overruns its container, a second element after the
 * first. Not a decoder (the ASN.1 readers are pkijs and asn1js, which refuse a cut element): a test
 * of whether text is key material, which random bytes and encoded names fail within a few headers.
 */
const derHeaders = (bytes: Uint8Array): number => {
  if (bytes[0] !== 0x30) return -1
  // The ends of the elements the walk is inside, outermost first.
  const ends: Array<number> = []
  let count = 0
  let at = 0
  while (at < bytes.length) {
    while (ends.length > 0 && at === ends[ends.length - 1]) ends.pop()
    if (ends.length === 0 && count > 0) return -1
    const tag = bytes[at] ?? 0
    if (!derTags.has(tag)) return -1
    const first = bytes[at + 1]
    if (first === undefined) break
    const size = first < 0x80 ? 0 : first & 0x7f
    if (first === 0x80 || size > 3) return -1
    if (at + 2 + size > bytes.length) break
    let length = first < 0x80 ? first : 0
    for (let i = 0; i < size; i++) length = length * 256 + (bytes[at + 2 + i] ?? 0)
    // DER's lengths are minimal: the long form only for 128 and more, with no leading zero byte.
    if (size > 0 && (length < 0x80 || bytes[at + 2] === 0)) return -1
    if (tag === 0x05 && length !== 0) return -1
    const content = at + 2 + size
    const end = content + length
    if (ends.length > 0 && end > (ends[ends.length - 1] ?? 0)) return -1
    count++
    if (tag === 0x30 || tag === 0x31 || tag >= 0xa0) {
      ends.push(end)
      at = content
    } else at = end
  }
  return count
}

/**
 * Whether a value may be key material rather than a name, a path or a setting: PEM markers or a
 * line break, 64 or more hex digits (a private scalar in hex), or the base64 of DER (see
 * looksLikeDerBase64). Names, paths, URLs, ids and thumbprints do not match. (A key cut short at its
 * start, or a base64url value such as a JWK's "d", is not recognised: base64 from inside a key
 * reads like a long path of short words with digits, so paths are not judged by holdsEncodedBase64.)
 */
export const looksLikeKeyText = (value: string): boolean =>
  /-----BEGIN |PRIVATE KEY-----|[\r\n]/.test(value) || hexRun.test(value) || looksLikeDerBase64(value)

/**
 * Whether a value may be one line of a PEM body (64 base64 characters a line), whole or cut: 40 or
 * more base64 characters in one run with upper- and lower-case letters, spaces around it aside. Names of that length are
 * written with dots, hyphens or underscores; one that is not is described by its length only.
 */
const looksLikePemBodyLine = (value: string): boolean => {
  const run = value.trim()
  return /^[A-Za-z0-9+/]{40,}={0,2}$/.test(run) && /[A-Z]/.test(run) && /[a-z]/.test(run)
}

/**
 * A refused value as a message quotes it: short one-line text as it is; anything else (PEM text or
 * a key pasted into the field, text that looks like a key in base64 or hex, one line of a PEM key's
 * body, long text) by its length only, so no message repeats key material.
 */
export const quotedValue = (value: unknown): string =>
  typeof value !== "string"
    ? nonStringInWords(value)
    : value.length <= 64 &&
        !/[\r\n]|-----/.test(value) &&
        !looksLikeKeyText(value) &&
        !looksLikePemBodyLine(value)
      ? JSON.stringify(value).replace(
          // What JSON leaves as it is but a terminal acts on: C1 controls, and the marks and
          // overrides that reorder the text around them (U+202E shows what follows backwards).
          /[\u0080-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g,
          (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
        )
      : `a string of ${value.length} characters, not shown`

/**
 * A value that is no string, as a message names it: `null`, a number or boolean as written (no
 * secret is a number), a list or an object by its kind. `typeof` said "object" for null.
 */
const nonStringInWords = (value: unknown): string =>
  value === null
    ? "null"
    : typeof value === "number" || typeof value === "boolean"
      ? String(value)
      : Array.isArray(value)
        ? "a list"
        : typeof value === "object"
          ? "an object"
          : typeof value

/**
 * The name of an environment variable that holds a secret (a PFX password, a key's passphrase), as
 * a message shows it: as it is when it reads as a variable's name (upper-case letters, digits and
 * `_`, as such variables are written), else `undefined`: an operator who typed the secret itself
 * where its variable's name belongs would see it printed back (and in logs) otherwise.
 */
export const shownSecretVariable = (name: string): string | undefined =>
  /^[A-Z_][A-Z0-9_]{0,63}$/.test(name) ? name : undefined

/**
 * A path (or another value an operator typed) as a message shows it: as it is, without the `/.`
 * segments that name no directory (`/etc/kvdeploy/./certs` is shown `/etc/kvdeploy/certs`; `..`
 * is kept, as it may step out of a symbolic link), unless it looks like key text (see
 * looksLikeKeyText), which is described by its length. Only what is shown changes: the path used
 * and fingerprinted stays as configured.
 */
export const shownPath = (path: string): string => {
  if (looksLikeKeyText(path)) return `(${path.length} characters that look like key text, not shown)`
  const shown = path.replace(/\/\.(?=\/|$)/g, "")
  // "/." is the root.
  return withoutTerminalControls(shown === "" && path !== "" ? "/" : shown)
}

/**
 * `text` with what a terminal acts on escaped: C0 controls and DEL as `\x1b` (ESC starts the
 * sequences that set a window's title, clear the screen or move the cursor; CR and BEL too), C1
 * controls (a one-character CSI, OSC) and the marks and overrides that reorder the text around them
 * as `\u009b`, `\u202e`. A path (a symbolic link's target another user chose) reaches the operator's
 * terminal in messages: shown so, it is read, never acted on.
 */
export const withoutTerminalControls = (text: string): string =>
  text.replace(
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the controls are what it escapes
    /[\u0000-\u001f\u007f]|[\u0080-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g,
    (c) => {
      const code = c.charCodeAt(0)
      return code < 0x80
        ? `\\x${code.toString(16).padStart(2, "0")}`
        : `\\u${code.toString(16).padStart(4, "0")}`
    },
  )

/**
 * A value as a POSIX shell reads it back, for a command a message tells the operator to paste: bare
 * when it holds only characters no shell acts on, else in single quotes (a `'` in it as `'\''`).
 */
export const shellQuote = (v: string): string =>
  /^[A-Za-z0-9_@%+=:,./-]+$/.test(v) ? v : `'${v.replace(/'/g, `'\\''`)}'`

/**
 * A key of the input as a problem's field names it: as it is when it could be a key (at most 256
 * characters on one line, no PEM markers, not 64 or more base64 characters starting with the "M"
 * of a DER SEQUENCE, no DER in base64 anywhere in it, and no run of 64 or more base64 characters
 * that reads as encoded bytes, such as a line of a PEM body), else by its length.
 */
export const keyInField = (key: string): string =>
  key.length <= 256 &&
  // biome-ignore lint/suspicious/noControlCharactersInRegex: a key with control characters is named by its length
  !/[\u0000-\u001f\u007f]|-----/.test(key) &&
  !/^M[A-Za-z0-9+/]{63,}={0,2}$/.test(key) &&
  !looksLikeDerBase64(key) &&
  !holdsEncodedBase64(key)
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

/** The same DER in base64url (`-` and `_` for `+` and `/`): runs that hold one of the two. */
const base64UrlRun = /[A-Za-z0-9_-]{64,}/g
/**
 * The same DER in base64 inside JSON text whose slashes are escaped (`\/`, `\\\/` in JSON in JSON,
 * up to four levels deep: 15 backslashes). The bound keeps the scan linear: with `\\+` a long run of
 * backslashes and no slash was retried from every position (a 100 KB page took seconds).
 */
const base64EscapedRun = /(?:[A-Za-z0-9+]|\\{1,15}\/){64,}={0,2}/g

/**
 * Whether DER in base64 starts at one of the first "M"s of `run`: the DER may follow a word it was
 * glued to (`PEM_MIIE…`), which may hold an "M" of its own. Each try reads at most 1,024 characters.
 */
const holdsDerBase64 = (run: string): boolean => {
  let tries = 0
  for (
    let at = run.indexOf("M");
    at !== -1 && run.length - at >= 64 && tries < 16;
    at = run.indexOf("M", at + 1)
  ) {
    tries++
    if (looksLikeDerBase64(run.slice(at, at + 1024))) return true
  }
  return false
}

const hiddenRun = (run: string): string => `[base64 text of ${run.length} characters, not shown]`

/**
 * 60 or more hex digits in one run: a private scalar or exponent in hex, P-256's (64) too when
 * written without its leading zeros (one scalar in 16 starts with a zero digit).
 */
const hexRunGlobal = /[0-9A-Fa-f]{60,}/g
/** Between colon-joined hex bytes: a line break (also escaped, in JSON or JSON in JSON) and indentation. */
const hexGap = String.raw`(?:\s|\\{1,8}[rn]){0,16}`
/**
 * 30 or more hex bytes joined by colons, across line breaks and indentation: a private value as
 * `openssl pkey -text` (or `rsa`, `ec`) prints it, 15 bytes a line (P-256's 32, or fewer without
 * its leading zero bytes). Bounded gaps that never compete with the hex digits, so the time is
 * linear in the text.
 */
const colonHexRun = new RegExp(`(?:[0-9A-Fa-f]{2}:${hexGap}){29,}[0-9A-Fa-f]{2}`, "g")

/**
 * A JWT or JWE in its compact form (a bearer token, a federated token, a client assertion): base64url
 * segments joined by dots, the first a JSON object's (`{"` is `eyJ`; `{ "` is `eyA`, `{` and a line
 * break `ew`). Judged by that header (tokenHeader), so host names and dotted ids stay. Its first
 * line only: a page or a log that breaks long lines may wrap a token (tokenLine).
 */
const tokenRun = /(?<![A-Za-z0-9_-])e[wy][A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*){0,4}/g
/**
 * A wrapped token's next line: a line break, indentation, then base64url and dots to the line's end.
 * A line with anything else on it is not joined ("Trace ID: …" after a token stays whole); a
 * token's last line that ends in markup is then shown, a piece of its signature without the rest.
 */
const tokenLine = /\r?\n[ \t]*([A-Za-z0-9_.-]+)[ \t]*(?=\r?\n|$)/y
/**
 * A joined line shorter than this ends a token: a wrapped token's lines but its last are as long as
 * the page's. (Its first piece may be short: the token can start near the end of a line.)
 */
const wrappedLineLength = 16
/** A token with two dots and this much after the last is whole (an HS256 signature is 43 characters). */
const wholeSignatureLength = 43

const tokenIsWhole = (joined: string): boolean => {
  const last = joined.lastIndexOf(".")
  return last > joined.indexOf(".") && joined.length - last - 1 >= wholeSignatureLength
}

/** Whether a base64url segment is a JSON object's start: `{`, maybe spaces, then `"`. */
const tokenHeader = (segment: string): boolean =>
  /^\{\s*"/.test(Buffer.from(segment.slice(0, 16), "base64url").toString("latin1"))

/** What a message shows in place of a token (a JWT, an assertion, a token field's value). */
export const hiddenToken = "[a token, not shown]"

/**
 * `text` without JWT-shaped tokens (see tokenRun): an access token, a federated token or a client
 * assertion an identity endpoint's answer echoes is replaced by "[a token, not shown]", also when
 * the text wraps it across lines (its lines joined: a JSON header, and a dot between segments). The
 * scan never goes back over a run it judged, so the time is linear in the text.
 */
export const withoutTokens = (text: string): string => {
  let shown = ""
  let kept = 0
  tokenRun.lastIndex = 0
  for (let found = tokenRun.exec(text); found !== null; found = tokenRun.exec(text)) {
    const first = found[0]
    const firstDot = first.indexOf(".")
    if (!tokenHeader(firstDot < 0 ? first : first.slice(0, firstDot))) continue
    let joined = first
    let end = found.index + first.length
    // A token whole on its first line is not wrapped (a line of a GUID or a host after it stays
    // shown). Otherwise its next line is always tried, a later one only after a full-width line.
    for (let line = ""; !tokenIsWhole(first) && (line === "" || line.length >= wrappedLineLength); ) {
      tokenLine.lastIndex = end
      const next = tokenLine.exec(text)
      if (next === null) break
      line = next[1] ?? ""
      joined += line
      end = tokenLine.lastIndex
    }
    if (joined.includes(".")) {
      shown += text.slice(kept, found.index) + hiddenToken
      kept = end
    }
    // Past the lines judged: a run without a dot has none in any of its later lines either.
    tokenRun.lastIndex = end
  }
  return shown + text.slice(kept)
}

/**
 * The form and JSON fields of a token request or answer that carry a secret or a token: what a
 * gateway that echoes the request (`client_secret=…&grant_type=…`) or an answer that is not read as
 * a token (`{"access_token":"…"}`) puts in an identity library's message.
 */
const secretFieldNames = "client_secret|client_assertion|access_token|refresh_token|id_token|assertion"
/**
 * `name=value` (a form, a query string), the value up to the next `&`, space, quote or markup; a
 * value already replaced by a placeholder ("[the value of AZURE_CLIENT_SECRET, not shown]") is left
 * as it is.
 */
const secretFormField = new RegExp(
  `(?<![A-Za-z0-9_])(${secretFieldNames})=(?!\\[[^\\]]{1,80}, not shown\\])[^&\\s"'<>]*`,
  "gi",
)
/** `"name": "value"` in JSON, or in JSON in JSON (`\"name\": \"value\"`): quotes escaped alike. */
const secretJsonField = new RegExp(
  String.raw`(\\{0,8}")(${secretFieldNames})\1(\s*:\s*)\1(?:(?!\1)[^\r\n])*\1`,
  "gi",
)

const hiddenFieldValue = (name: string): string =>
  name.toLowerCase() === "client_secret" ? "[a secret, not shown]" : hiddenToken

/**
 * `text` with the values of the token request's and answer's secret fields (client_secret,
 * client_assertion, assertion, access_token, refresh_token, id_token) replaced, as a form's or a
 * query string's `name=value` and as JSON's `"name": "value"`: the field's name stays, so the text
 * still says what was sent or answered.
 */
export const withoutSecretFields = (text: string): string =>
  text
    .replace(secretFormField, (_, name: string) => `${name}=${hiddenFieldValue(name)}`)
    .replace(
      secretJsonField,
      (_, quote: string, name: string, colon: string) =>
        `${quote}${name}${quote}${colon}${quote}${hiddenFieldValue(name)}${quote}`,
    )

/** The shortest secret value withoutSecretValues looks for: a shorter one would match ordinary words. */
const shortestSecretValue = 8

/**
 * `text` without the secret values the process knows (a client secret, an identity header, a
 * federated token), wherever they stand in it: as they are, URL-encoded (a form's body) and
 * JSON-escaped. Each is replaced by its `label` in brackets ("[the value of AZURE_CLIENT_SECRET, not
 * shown]"). Values shorter than 8 characters are not looked for (they would match ordinary words).
 */
export const withoutSecretValues = (
  text: string,
  secrets: ReadonlyArray<{ readonly value: string; readonly label: string }>,
): string => {
  let shown = text
  for (const { value, label } of secrets) {
    const trimmed = value.trim()
    if (trimmed.length < shortestSecretValue) continue
    const placeholder = `[${label}, not shown]`
    if (trimmed.length <= longestPatternedSecret && backslashesIn(trimmed) <= mostPatternedBackslashes) {
      shown = shown.replace(secretValuePattern(trimmed), placeholder)
      continue
    }
    // A long value (a federated token's contents) as the usual encoders write it: a pattern of
    // each of its characters would be too large for a RegExp. So is a value with many backslashes:
    // each is `\` or, JSON-escaped, `\\`, and a run of backslashes in the text can be read either way
    // at each one (2^n ways to try for n of them).
    const forms = new Set([
      trimmed,
      encodeURIComponent(trimmed),
      encodeURIComponent(trimmed).replace(/%20/g, "+"),
      JSON.stringify(trimmed).slice(1, -1),
    ])
    for (const form of [...forms].sort((a, b) => b.length - a.length))
      shown = shown.split(form).join(placeholder)
  }
  return shown
}

/** The longest secret value looked for by a pattern of its characters (secretValuePattern). */
const longestPatternedSecret = 256

/** The most backslashes a secret value looked for by a pattern of its characters may hold. */
const mostPatternedBackslashes = 8

const backslashesIn = (value: string): number => value.split("\\").length - 1

/** Hex digits of a percent-encoding in either case (`%7E`, `%7e`). */
const eitherCaseHex = (byte: number): string =>
  byte
    .toString(16)
    .padStart(2, "0")
    .replace(/[a-f]/g, (h) => `[${h}${h.toUpperCase()}]`)

/** Hex digits of a JSON `\\u` escape of a UTF-16 code unit in either case (`\\u00e9`, `\\u002B`). */
const eitherCaseHex4 = (unit: number): string =>
  unit
    .toString(16)
    .padStart(4, "0")
    .replace(/[a-f]/g, (h) => `[${h}${h.toUpperCase()}]`)

/**
 * A known secret value as a pattern that finds it written as it is, percent-encoded character by
 * character (any of them, in either case: `~` as `%7E`, `+` as `%2b`), form-encoded (a space as `+`,
 * or a `+` decoded to a space) or JSON-escaped (`\"`, `\\`, `\/`, or any character as `\\u` escapes
 * of its UTF-16 code units, as Python's `ensure_ascii` writes a non-ASCII one and .NET's default
 * encoder `+`, `&` and `'`). Each character has a fixed set of alternatives that part within their
 * first two characters, but for a backslash (`\` as it is, `\\` escaped): a value with more than
 * mostPatternedBackslashes of them is looked for in its usual forms instead (withoutSecretValues).
 */
const secretValuePattern = (secret: string): RegExp =>
  new RegExp(
    [...secret]
      .map((c) => {
        const alternatives = [
          c.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&"),
          [...new TextEncoder().encode(c)].map((b) => `%${eitherCaseHex(b)}`).join(""),
          Array.from({ length: c.length }, (_, i) => `\\\\u${eitherCaseHex4(c.charCodeAt(i))}`).join(""),
        ]
        if (c === " ") alternatives.push("\\+")
        if (c === "+") alternatives.push(" ")
        if (c === "/") alternatives.push("\\\\\\/")
        if (c === '"') alternatives.push('\\\\"')
        if (c === "\\") alternatives.push("\\\\\\\\")
        return `(?:${alternatives.join("|")})`
      })
      .join(""),
    "g",
  )

/**
 * `text` without PEM blocks, without long base64 runs (64 or more characters that read as encoded
 * bytes) and without long hex (60 or more digits in one run, or 30 or more colon-joined bytes, as
 * `openssl pkey -text` prints a private value): what a message from elsewhere (an SDK's error, an
 * identity provider's answer, a value quoted back) may carry of a response body or an echoed value
 * is not shown. Ids, SHA-1 thumbprints, version ids and URLs are shorter or read as words and stay
 * (a SHA-256 thumbprint, 64 hex digits or 32 bytes, does not: it is a private scalar's length). DER in base64url or in JSON with escaped slashes is
 * recognised by its structure only (names with hyphens and underscores do not read as DER); other
 * base64url (a JWK's private value) is not, but a JWT or JWE is, by its JSON header (withoutTokens),
 * and so are the values of a token request's or answer's secret fields (withoutSecretFields).
 * Secret values only the process knows (a client secret) are removed by withoutSecretValues, which
 * credentials' shownIdentityText applies with the environment's.
 */
export const withoutKeyText = (text: string): string =>
  withoutPem(withoutTokens(withoutSecretFields(text)))
    .replace(base64EscapedRun, (run) =>
      /\\\//.test(run) && holdsDerBase64(run.replace(/\\+\//g, "/")) ? hiddenRun(run) : run,
    )
    .replace(base64UrlRun, (run) =>
      /[-_]/.test(run) && holdsDerBase64(run.replace(/-/g, "+").replace(/_/g, "/")) ? hiddenRun(run) : run,
    )
    .replace(longBase64, (run) => (encoded(run) || looksLikeDerBase64(run) ? hiddenRun(run) : run))
    .replace(colonHexRun, (run) => `[hex text of ${run.length} characters, not shown]`)
    .replace(hexRunGlobal, (run) => `[hex text of ${run.length} characters, not shown]`)
