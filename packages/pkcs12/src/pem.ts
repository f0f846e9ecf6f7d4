/**
 * PEM and DER input: certificate bundles in any order, CRLF or LF, blank
 * lines, OpenSSL "Bag Attributes" text between blocks, and private keys in
 * every form OpenSSL writes, all normalised to DER certificates and a PKCS#8 key.
 */

import { X509Certificate } from "node:crypto"
// @peculiar/x509 needs the Reflect metadata API before its module runs (its decorators).
import "reflect-metadata"
import type { MaterialProblem } from "@kvdeploy/core"
import { MaterialInvalid } from "@kvdeploy/core"
import * as x509 from "@peculiar/x509"
import * as asn1js from "asn1js"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as pkijs from "pkijs"
import { recentlyParsed, rememberParse } from "./certificateFacts.js"
import { readPfx } from "./decodeStructure.js"
import { pemBlocks } from "./pemBlocks.js"
import { derKeyToPkcs8, pemKeyToPkcs8 } from "./privateKey.js"
import { capProblems } from "./problemList.js"
import { parseBer } from "./safeBags.js"

export interface ParsedPem {
  /** DER certificates, in file order. */
  readonly certificates: Array<Uint8Array>
  /** The private key as unencrypted PKCS#8 DER, when the input holds one. */
  readonly key?: Redacted.Redacted<Uint8Array>
}

export interface ParsePemOptions {
  /** Passphrase of an encrypted private key (PKCS#8 `ENCRYPTED PRIVATE KEY` or legacy `Proc-Type: 4,ENCRYPTED`). */
  readonly passphrase?: Redacted.Redacted<string>
}

export { type FoundBlock, pemBlocks } from "./pemBlocks.js"

/**
 * Where a block begun at or after `from` starts, or -1: the first "-----BEGIN" whose line is a whole
 * BEGIN line PEM reads (`-----BEGIN CERTIFICATE-----`, its END line missing), or whose line is the
 * text's last (the file cut inside its BEGIN line). Any other line is a stray marker's problem: a
 * label PEM does not know (`-----BEGIN Certificate-----`), or a damaged line with the block's body
 * and END line after it (`-----BEGIN CERTIFICATE----`), which is no file still being written.
 */
const cutBeginAfter = (text: string, from: number): number => {
  for (let i = text.indexOf("-----BEGIN", from); i >= 0; i = text.indexOf("-----BEGIN", i + 1)) {
    // A line's first 200 characters (a label is short): no search to the end of a long line per BEGIN.
    const line = (text.slice(i, i + 200).split("\n")[0] ?? "").trimEnd()
    if (/^-----BEGIN [A-Z0-9 ]+-----/.test(line)) return i
    // Cut inside the BEGIN line: the text's last line, the start of one (`-----BEGIN CERTIFICATE---`).
    const lineEnd = text.indexOf("\n", i)
    const last = lineEnd < 0 || text.slice(lineEnd).trim() === ""
    if (last && /^-----BEGIN(?: [A-Z0-9 ]*-{0,4})?$/.test(line)) return i
  }
  return -1
}

/**
 * A line that may read as a PEM BEGIN or END line to a person: at the start of a line (after
 * spaces), dashes or dash-like characters, the word, the rest of the line. Only exactly five ASCII
 * hyphens, a run holding a dash-like character, or a PEM line short of hyphens (`----BEGIN
 * CERTIFICATE-----`) count (isMarker): `xn--end-…` in a name, or a `---- BEGIN of bundle ----`
 * comment OpenSSL skips, is no marker. The counts are bounded, so a line of a million dashes costs a
 * scan, not a search from each of them.
 */
const MARKER = /^[ \t]*([-\u2010-\u2015\u2212]{2,8})[ \t]{0,4}(BEGIN|END)\b[^\r\n]*/gim

/**
 * A BEGIN or END line short of a hyphen or two before a label PEM files carry, with its closing
 * dashes (a hyphen lost: no five-hyphen run is in it for PEM to find). Only those labels: a bundle's
 * own banner lines (`--END OF CHAIN--`, `----BEGIN CHAIN----`) are comments OpenSSL skips.
 */
const SHORT_MARKER =
  /^-{3,4}(?:BEGIN|END) (?:(?:TRUSTED |X509 |NEW )?CERTIFICATE(?: REQUEST)?|(?:RSA |EC |DSA |ENCRYPTED )?PRIVATE KEY|(?:RSA )?PUBLIC KEY|PKCS7|CMS|X509 CRL|EC PARAMETERS|DH PARAMETERS)[-\u2010-\u2015\u2212]{3,6}$/

/**
 * Whether a MARKER match (`dashes` its leading run, `line` the whole line) is a marker line: five
 * hyphens, dash-like characters, or a known label's line short of hyphens (SHORT_MARKER).
 */
const isMarker = (dashes: string, line: string): boolean =>
  dashes === "-----" || /[\u2010-\u2015\u2212]/.test(dashes) || SHORT_MARKER.test(line)

/**
 * A marker line as a message shows it: its dashes, word and label up to its closing dashes, or no
 * text at all when it has none (a one-line PEM with its body after a damaged BEGIN: key text).
 */
const shownMarker = (line: string): string => {
  const marker =
    /^[-\u2010-\u2015\u2212]{2,8}[ \t]{0,4}(?:BEGIN|END)(?:[ \t]+[A-Za-z0-9 ]{1,40}?)?[ \t]*[-\u2010-\u2015\u2212]{2,8}/i.exec(
      line,
    )?.[0]
  return marker === undefined ? "the line (its text not shown)" : JSON.stringify(marker)
}

/**
 * The problems of BEGIN and END lines outside the blocks found (`spans`): a well-formed line whose
 * label is not upper case, a damaged line, an END line without its BEGIN. A well-formed BEGIN line
 * (left unended) is the cut-short problem's, as is all from `cut` on. Listed in text order, by line.
 */
const strayMarkers = (
  text: string,
  spans: ReadonlyArray<readonly [number, number]>,
  cut: number,
): { readonly problems: Array<MaterialProblem>; readonly damagedEndAfterCut: boolean } => {
  const found: Array<MaterialProblem> = []
  let damagedEndAfterCut = false
  let span = 0
  let skipEnd: string | undefined
  // Lines counted on from the last marker's (one pass over the text, however many markers).
  let counted = 0
  let lines = 1
  const lineOf = (at: number): number => {
    for (let i = text.indexOf("\n", counted); i >= 0 && i < at; i = text.indexOf("\n", i + 1)) {
      lines++
      counted = i + 1
    }
    return lines
  }
  MARKER.lastIndex = 0
  for (let m = MARKER.exec(text); m !== null; m = MARKER.exec(text)) {
    const at = m.index
    while (span < spans.length && (spans[span]?.[1] ?? 0) <= at) span++
    const inside = span < spans.length && (spans[span]?.[0] ?? Number.POSITIVE_INFINITY) <= at
    const line = m[0].trim()
    if (inside || !isMarker(m[1] ?? "", line)) continue
    const begin = (m[2] ?? "").toUpperCase() === "BEGIN"
    // From a cut-short BEGIN line on, the text is that block's (its partial END line too), unless the
    // block has a damaged END line (`----END CERTIFICATE-----`): the first such line is named, and the
    // block is not taken for a file still being written.
    if (cut >= 0 && at >= cut) {
      const lineEnd = text.indexOf("\n", at)
      const last = lineEnd < 0 || text.slice(lineEnd).trim() === ""
      if (begin || damagedEndAfterCut || /^-----END [A-Z0-9 ]+-----$/.test(line)) continue
      // The file's last line, the start of an END line: the file cut inside it.
      if (last && /^-{1,5}(?:END(?: [A-Z0-9 ]*-{0,4})?)?$/.test(line)) continue
      damagedEndAfterCut = true
      found.push(
        problem(
          `line ${lineOf(at)}`,
          `${shownMarker(line)} is a damaged END line (a PEM line is five ASCII hyphens, END, a space, an upper-case label and five hyphens: -----END LABEL-----), so its block is not read`,
          "repair the line, or take the file again from its source (an editor or a copy from a web page may have changed its hyphens)",
        ),
      )
      continue
    }
    if (begin && /^-----BEGIN [A-Z0-9 ]+-----$/.test(line)) continue
    const field = `line ${lineOf(at)}`
    const shown = shownMarker(line)
    const wellFormed = /^-----(BEGIN|END) ([^-\r\n]+)-----$/.exec(line)
    if (!begin && skipEnd !== undefined && (skipEnd === "" || wellFormed?.[2] === skipEnd)) {
      skipEnd = undefined
      continue
    }
    if (wellFormed !== null && wellFormed[1] === "BEGIN") {
      skipEnd = wellFormed[2]
      found.push(
        problem(
          field,
          `${shown} names a label PEM does not know (labels are upper case: CERTIFICATE, PRIVATE KEY), so its block is not read`,
          `write the line as -----BEGIN ${(wellFormed[2] ?? "").toUpperCase()}----- (and its END line to match)`,
        ),
      )
    } else if (begin) {
      // Its END line is this problem's too ("": whatever label it has).
      skipEnd = ""
      found.push(
        problem(
          field,
          // The marker last in the parenthesis: words after it read as a PEM block's body to the
          // front ends' withoutPem, which hid the rest of the message.
          `${shown} is a damaged BEGIN line (a PEM line is five ASCII hyphens, BEGIN, a space, an upper-case label and five hyphens: -----BEGIN LABEL-----), so its block is not read`,
          "repair the line, or take the file again from its source (an editor or a copy from a web page may have changed its hyphens)",
        ),
      )
    } else {
      found.push(
        problem(
          field,
          `${shown} is an END line without its BEGIN line (the BEGIN line is missing or damaged), so its block is not read`,
          "repair the block's -----BEGIN LABEL----- line, or remove the leftover END line",
        ),
      )
    }
  }
  return { problems: found, damagedEndAfterCut }
}

const CERTIFICATE_LABELS = new Set(["CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE"])
const KEY_LABELS = new Set(["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY"])
const IGNORED_LABELS = new Set(["EC PARAMETERS"])
/** A certificate bundle as PKCS#7 SignedData (a .p7b, as issuers and Windows hand a chain over). */
const PKCS7_LABELS = new Set(["PKCS7", "CMS"])

const unreadablePkcs7 = (field: string): MaterialProblem =>
  problem(
    field,
    "is a PKCS#7 bundle (.p7b) without a readable certificate",
    "check the bundle, or convert it to PEM certificates: openssl pkcs7 -print_certs -in chain.p7b -out chain.pem (add -inform DER for a binary file)",
  )

const decodeBase64Body = (body: string): Uint8Array | undefined => {
  // Drop RFC 1421 headers (Proc-Type, DEK-Info) and keep the base64 lines.
  const lines = body.split(/\r?\n|\r/).filter((line) => line.trim() !== "" && !line.includes(":"))
  const b64 = lines.join("").replace(/\s+/g, "")
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length === 0) return undefined
  return new Uint8Array(Buffer.from(b64, "base64"))
}

/** A certificate found at the start of some bytes: its DER (a view of them) and node:crypto's parse, when OpenSSL made one. */
interface LeadingCertificate {
  readonly der: Uint8Array
  readonly node: X509Certificate | undefined
}

const openSslCertificate = (bytes: Uint8Array): LeadingCertificate | undefined => {
  try {
    const node = new X509Certificate(bytes)
    const raw = node.raw
    if (raw.length > bytes.length) return undefined
    const head = bytes.subarray(0, raw.length)
    return Buffer.compare(raw, head) === 0 ? { der: head, node } : undefined
  } catch {
    return undefined
  }
}

/**
 * The certificate at the start of `bytes`, exactly as encoded (a TRUSTED
 * CERTIFICATE block carries OpenSSL's trust settings after it).
 */
const leadingCertificate = (bytes: Uint8Array): LeadingCertificate | undefined => {
  // A certificate parsed moments ago whose DER is all of `bytes` (the CA every source of a fleet
  // carries): the same answer OpenSSL's parser would give, without parsing it again.
  const recent = recentlyParsed(bytes)
  if (recent !== undefined) return { der: bytes, node: recent.node }
  // OpenSSL's parser first (about 20 us): when it reads a certificate whose DER is exactly the
  // start of the input, that is the answer. asn1js + pkijs (two JavaScript parses of the whole
  // certificate, ~0.5 ms) remain for what it does not take that way.
  const native = openSslCertificate(bytes)
  if (native !== undefined) return native
  try {
    const copy = Uint8Array.from(bytes)
    const parsed = asn1js.fromBER(copy)
    if (parsed.offset === -1) return undefined
    const der = copy.subarray(0, parsed.offset)
    pkijs.Certificate.fromBER(der)
    return { der, node: undefined }
  } catch {
    return undefined
  }
}

/**
 * The certificates of a PKCS#7 SignedData (pkijs's ContentInfo says it is one; @peculiar/x509's
 * X509Certificates reads its certificates), each read again as `leadingCertificate` reads a
 * certificate block; `undefined` when the bytes are not such a bundle or a certificate in it is not
 * readable. An empty bundle is an empty array.
 */
const pkcs7Certificates = (bytes: Uint8Array): Array<LeadingCertificate> | undefined => {
  try {
    if (pkijs.ContentInfo.fromBER(Uint8Array.from(bytes)).contentType !== pkijs.ContentInfo.SIGNED_DATA)
      return undefined
    const found: Array<LeadingCertificate> = []
    for (const c of new x509.X509Certificates(Uint8Array.from(bytes))) {
      const der = new Uint8Array(c.rawData)
      const cert = leadingCertificate(der)
      if (cert === undefined || cert.der.length !== der.length) return undefined
      found.push(cert)
    }
    return found
  } catch {
    return undefined
  }
}

/** A private copy of the certificate for the caller, with node:crypto's parse remembered for its inspect. */
const handedOut = (found: LeadingCertificate): Uint8Array => {
  const der = Uint8Array.from(found.der)
  if (found.node !== undefined) rememberParse(der, found.node)
  return der
}

const problem = (field: string, message: string, fix: string): MaterialProblem => ({ field, message, fix })

/**
 * Whether a file's bytes are PEM text: a BEGIN line, or a marker line a person would take for one
 * (`–––––BEGIN CERTIFICATE–––––` in en dashes, `----BEGIN CERTIFICATE-----`), which parsePem names
 * by its line; read as DER, such a file was only "neither PEM text nor a DER certificate".
 */
const looksLikePem = (bytes: Uint8Array): boolean => {
  const head = Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.byteLength, 64 * 1024))
  if (head.toString("latin1").includes("-----BEGIN ")) return true
  // DER starts with a SEQUENCE (0x30): no text. Otherwise UTF-8, the dash-like characters' encoding.
  if (head[0] === 0x30) return false
  for (const m of head.toString("utf8").matchAll(MARKER)) if (isMarker(m[1] ?? "", m[0].trim())) return true
  return false
}

/**
 * Text that starts with a UTF-16 byte order mark (what Windows PowerShell 5.1's `Out-File` and `>`
 * write), decoded; `undefined` for other bytes (DER starts with 0x30, UTF-8 text is read as it is).
 */
const utf16Text = (bytes: Uint8Array): string | undefined => {
  const encoding =
    bytes[0] === 0xff && bytes[1] === 0xfe
      ? "utf-16le"
      : bytes[0] === 0xfe && bytes[1] === 0xff
        ? "utf-16be"
        : undefined
  return encoding === undefined ? undefined : new TextDecoder(encoding).decode(bytes)
}

/**
 * A material file's bytes as the text `parsePem` reads in them: UTF-16 with a byte order mark
 * decoded, anything else as UTF-8. For a caller's own look at the text (is a key block encrypted,
 * is it PEM at all) before it parses.
 */
export const materialText = (bytes: Uint8Array): string =>
  utf16Text(bytes) ?? Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8")

/** Whether DER bytes read as a PFX's outer structure (pkijs's PFX schema): a PFX given where PEM goes. */
const isPfx = (bytes: Uint8Array): boolean => {
  try {
    readPfx(parseBer(bytes))
    return true
  } catch {
    return false
  }
}

const parseDer = (bytes: Uint8Array): Effect.Effect<ParsedPem, MaterialInvalid> =>
  Effect.gen(function* () {
    const cert = leadingCertificate(bytes)
    if (cert !== undefined && cert.der.length === bytes.length) return { certificates: [handedOut(cert)] }
    const key = yield* Effect.result(derKeyToPkcs8(bytes))
    if (key._tag === "Success") return { certificates: [], key: Redacted.make(key.success) }
    const bundle = pkcs7Certificates(bytes)
    if (bundle !== undefined)
      return bundle.length > 0
        ? { certificates: bundle.map(handedOut) }
        : yield* Effect.fail(new MaterialInvalid({ problems: [unreadablePkcs7("input")] }))
    if (isPfx(bytes))
      return yield* Effect.fail(
        new MaterialInvalid({
          problems: [
            problem(
              "input",
              "is a PKCS#12/PFX file, not PEM or a DER certificate or key",
              "give it as a PFX: kvdeploy's --pfx (with --pfx-password-env), or an agent source's pfx (with pfx_password_env)",
            ),
          ],
        }),
      )
    return yield* Effect.fail(
      new MaterialInvalid({
        problems: [
          problem(
            "input",
            "is neither PEM text nor a DER certificate or PKCS#8 key",
            "supply PEM (CERTIFICATE blocks and one PRIVATE KEY block) or a single DER certificate",
          ),
        ],
      }),
    )
  })

/**
 * Parse PEM text (or DER bytes) into DER certificates, in file order, and at
 * most one private key normalised to unencrypted PKCS#8.
 */
export const parsePem = (
  input: string | Uint8Array,
  options: ParsePemOptions = {},
): Effect.Effect<ParsedPem, MaterialInvalid> =>
  // useSpan, as inspectMaterial and encodePfx: the same span, without withSpan's two context changes
  // (the effects inside open no span and log nothing).
  Effect.useSpan("pkcs12.parsePem", () =>
    Effect.gen(function* () {
      // A JavaScript caller's value of another type (undefined, a number, an object): a typed
      // refusal naming the input, not a TypeError from the first byte read.
      if (typeof input !== "string" && !(input instanceof Uint8Array))
        return yield* Effect.fail(
          new MaterialInvalid({
            problems: [
              problem(
                "input",
                `is ${input === null ? "null" : typeof input}, not PEM text or DER bytes`,
                "pass the PEM text as a string, or the file's bytes as a Uint8Array (a Buffer is one)",
              ),
            ],
          }),
        )
      const utf16 = typeof input === "string" ? undefined : utf16Text(input)
      if (typeof input !== "string" && utf16 === undefined && !looksLikePem(input))
        return yield* parseDer(input)
      const text = typeof input === "string" ? input : (utf16 ?? Buffer.from(input).toString("utf8"))
      const certificates: Array<Uint8Array> = []
      const problems: Array<MaterialProblem> = []
      let key: Uint8Array | undefined
      let keyBlocks = 0
      let blocks = 0
      let afterLast = 0
      const spans: Array<readonly [number, number]> = []
      for (const match of pemBlocks(text)) {
        blocks++
        afterLast = match.endIndex
        spans.push([match.index, match.endIndex])
        const label = match.label
        const end = match.endLabel
        const body = match.body
        const field = `block ${blocks} (${label})`
        if (label !== end) {
          problems.push(
            problem(
              field,
              `ends with "-----END ${end}-----"`,
              "repair the PEM block: BEGIN and END labels must match",
            ),
          )
          continue
        }
        if (IGNORED_LABELS.has(label)) continue
        // A base64 body holds no backslash: `\n` in it is a line break JSON-quoted (`jq .cert`
        // without -r), which no reader of the block would name as such.
        if (body.includes("\\n")) {
          problems.push(
            problem(
              field,
              "holds literal \\n sequences (a backslash and an n) instead of line breaks: the PEM text was JSON-quoted",
              "write it with jq -r (raw output), or decode the JSON string, so that the file holds real line breaks",
            ),
          )
          continue
        }
        if (CERTIFICATE_LABELS.has(label)) {
          const bytes = decodeBase64Body(body)
          const found = bytes === undefined ? undefined : leadingCertificate(bytes)
          if (found === undefined) {
            problems.push(
              problem(
                field,
                "is not a readable certificate",
                "check the PEM block is complete (openssl x509 -noout -text)",
              ),
            )
          } else {
            certificates.push(handedOut(found))
          }
          continue
        }
        if (PKCS7_LABELS.has(label)) {
          const bytes = decodeBase64Body(body)
          const bundle = bytes === undefined ? undefined : pkcs7Certificates(bytes)
          if (bundle === undefined || bundle.length === 0) problems.push(unreadablePkcs7(field))
          else for (const found of bundle) certificates.push(handedOut(found))
          continue
        }
        if (KEY_LABELS.has(label)) {
          keyBlocks++
          if (keyBlocks > 1) {
            problems.push(
              problem(field, "is a second private key", "supply exactly one private key, the leaf's"),
            )
            continue
          }
          const pem = `-----BEGIN ${label}-----\n${body.replace(/\r\n?/g, "\n").trim()}\n-----END ${label}-----\n`
          const passphrase = options.passphrase === undefined ? undefined : Redacted.value(options.passphrase)
          const loaded = yield* Effect.result(pemKeyToPkcs8(pem, passphrase))
          if (loaded._tag === "Success") key = loaded.success.pkcs8
          else problems.push(problem(field, loaded.failure.message, loaded.failure.fix))
          continue
        }
        problems.push(
          problem(
            field,
            `is a "${label}" block, which is neither a certificate nor a private key`,
            "remove it; supply certificates and one private key only",
          ),
        )
      }
      // A block begun after the last complete one and never ended: a file read while it was being
      // written (a full chain cut inside its intermediate), not a file that ends early on purpose.
      // Also a file cut inside that marker: its last line a beginning of "-----BEGIN".
      const tail = text.slice(afterLast).trimEnd()
      const lastLine = tail.slice(tail.lastIndexOf("\n") + 1).trim()
      const cut =
        cutBeginAfter(text, afterLast) >= 0
          ? cutBeginAfter(text, afterLast)
          : lastLine !== "" && "-----BEGIN".startsWith(lastLine)
            ? afterLast + tail.lastIndexOf(lastLine)
            : -1
      // BEGIN and END lines outside every block found: a label PEM does not know (`Certificate`), a
      // damaged line (an em dash for a hyphen), an END whose BEGIN is gone. Each drops its block
      // silently otherwise, or is taken for a file still being written.
      const stray = strayMarkers(text, spans, cut)
      problems.push(...stray.problems)
      if (cut >= 0 && !stray.damagedEndAfterCut) {
        blocks++
        const label = /^-----BEGIN ([A-Z0-9 ]+)-----/.exec(text.slice(cut, cut + 80))?.[1]
        problems.push(
          problem(
            `block ${blocks}${label === undefined ? "" : ` (${label})`}`,
            "is cut short: it has no -----END line (the file may still be being written)",
            "supply the complete file (write it to a temporary name and rename it into place)",
          ),
        )
      }
      if (blocks === 0 && problems.length === 0)
        problems.push(
          problem(
            "input",
            "contains no PEM block",
            "supply PEM text with -----BEGIN CERTIFICATE----- blocks (or DER bytes)",
          ),
        )
      // Text made of thousands of stray blocks gave a problem each: megabytes in one log line.
      capProblems(problems, () => "input")
      if (problems.length > 0) return yield* Effect.fail(new MaterialInvalid({ problems }))
      return key === undefined ? { certificates } : { certificates, key: Redacted.make(key) }
    }),
  )
