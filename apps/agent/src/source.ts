/**
 * Certificate sources: the files a deployment reads (PEM cert/chain/key, or a
 * PFX with its password from an environment variable). A source is read whole
 * (unless its stamp shows it unchanged, below) and fingerprinted (SHA-256 of the bytes); it is parsed and
 * checked (certificates parse, a key is there, the key matches a certificate,
 * which becomes the leaf) only when the fingerprint changed. A broken source
 * (half-written, mismatched key, unreadable, or a file another user than root
 * and the agent's could have replaced: pathTrust.ts) is a `SourceBroken` value
 * that names the problem and never the key; it never reaches the vault.
 *
 * Between passes the reconciler keeps a read's `SourceStamp` (fingerprint,
 * inode, size and change times of each file; no bytes): when `unchangedSince`
 * finds every file exactly as stamped, the fingerprint is known without
 * reading the files again.
 */
import { createHash, createPrivateKey, createPublicKey, X509Certificate } from "node:crypto"
import { closeSync, constants, fstatSync, openSync, readSync, type Stats, statSync } from "node:fs"
import {
  type CertificateMaterial,
  environmentVariable,
  type PfxCodec,
  shownPath,
  shownSecretVariable,
} from "@kvdeploy/core"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import type { Source } from "./config.js"
import { explainMissing } from "./missingSource.js"
import {
  keyReadableByOthers,
  readRefusal,
  type UntrustedPath,
  untrustedFile,
  untrustedFix,
  untrustedText,
  walkPath,
} from "./pathTrust.js"

/** What the agent remembers about a source between passes: no key material. */
export interface SourceFacts {
  /** SHA-256 (hex) of the files' bytes. */
  readonly fingerprint: string
  /** base64url SHA-1 of the leaf DER, as Key Vault reports `x5t`. */
  readonly x5t: string
  /** The leaf's notAfter. */
  readonly notAfter: Date
  /** `notAfter` as ISO 8601 text (the state file's form), made once per source. */
  readonly notAfterText: string
  /**
   * When what a deploy of the source serves stops working by expiry: the earliest notAfter of the
   * leaf and of the chain certificates on its issuer path, up to a root (@kvdeploy/pkcs12's
   * `servedExpiry`: a stale intermediate, or a policy CA above the issuing CA, that expires before
   * the leaf breaks the served chain then). The value of
   * `kvdeploy_agent_certificate_expiry_timestamp_seconds`.
   */
  readonly earliestNotAfter: Date
  /** `earliestNotAfter` as ISO 8601 text (the state file's form). */
  readonly earliestNotAfterText: string
}

/**
 * The rule `earliestNotAfter` was taken by, recorded beside it in the state file: a record of another
 * rule (an agent before it counted the leaf's issuer alone, and wrote none) is not reused, and the
 * source is parsed again.
 */
export const EARLIEST_NOT_AFTER_RULE = "issuer-path"

/** The facts of parsed material whose leaf expires at `notAfter`. */
const factsOf = (
  fingerprint: string,
  material: CertificateMaterial,
  notAfter: Date,
  pkcs12: Pick<typeof import("@kvdeploy/pkcs12"), "servedExpiry">,
): SourceFacts => {
  const earliestNotAfter = pkcs12.servedExpiry(material.leaf, material.chain)?.notAfter ?? notAfter
  return {
    fingerprint,
    x5t: x5tOf(material.leaf),
    notAfter,
    notAfterText: notAfter.toISOString(),
    earliestNotAfter,
    earliestNotAfterText: earliestNotAfter.toISOString(),
  }
}

/** The source cannot be used now; `problems` say why (never with key bytes). */
export class SourceBroken extends Data.TaggedError("SourceBroken")<{
  readonly problems: ReadonlyArray<string>
}> {
  override get message(): string {
    return this.problems.join("; ")
  }
}

/**
 * Joins a problem to its fix inside one of `SourceBroken`'s problems (the form `errnoText` and the
 * parser's problems take: "cert PATH: what is wrong; fix: what to do"); `splitFix` parts them again.
 */
export const FIX_MARK = "; fix: "

/** A `SourceBroken` problem's text and its own fix, when it carries one (`FIX_MARK`). */
export const splitFix = (problem: string): { readonly message: string; readonly fix: string | undefined } => {
  const at = problem.indexOf(FIX_MARK)
  return at < 0
    ? { message: problem, fix: undefined }
    : { message: problem.slice(0, at), fix: problem.slice(at + FIX_MARK.length) }
}

/** The start of the parser's fix for a PEM key whose encryption cost it refuses before decrypting. */
const REFUSED_COST_FIX = "re-encrypt the key with a cost"
/** The start of that refusal's message, before what it found. */
const REFUSED_ENCRYPTION = /^the private key's encryption is refused before decrypting it: /

/** An encrypted PEM key's problem (`why`: what else was found, with its leading space, or ""). */
const encryptedPemKey = (why: string): string =>
  `the private key is encrypted${why}, and the agent reads PEM keys without a passphrase${FIX_MARK}decrypt it to a file only the agent can read (openssl pkey -in key.pem -out key-plain.pem; add -provider legacy -provider default to read a legacy cipher), or give the certificate as a PFX with pfx_password_env`

/** The files of a source, read. */
export interface SourceBytes {
  readonly fingerprint: string
  readonly files: ReadonlyArray<{
    readonly role: "cert" | "chain" | "key" | "pfx"
    readonly path: string
    readonly bytes: Uint8Array
  }>
  /** What the files looked like when they were read (for `unchangedSince`). */
  readonly stamp: SourceStamp
}

/** A source known unchanged from its stamp: the fingerprint, no bytes (read them whole when needed). */
export interface SourceUnchanged {
  readonly fingerprint: string
  readonly files: undefined
  readonly stamp: SourceStamp
}

/** A file's identity and change times when it was read (`fstat` of the descriptor read). */
interface FileStamp {
  readonly path: string
  readonly dev: number
  readonly ino: number
  readonly size: number
  readonly mtimeMs: number
  readonly ctimeMs: number
}

/**
 * What a source's files were when they were last read whole: their
 * fingerprint and, per file, device, inode, size and change times. No bytes.
 */
export interface SourceStamp {
  readonly fingerprint: string
  readonly files: ReadonlyArray<FileStamp>
  /** Wall-clock time just before the files were read. */
  readonly readAtMs: number
}

/**
 * A file changed less than this before it was read may be changed again
 * within the same timestamp tick of its file system (coarse clocks, 2 s on
 * FAT): its stamp is not trusted, the next pass reads it whole.
 */
const RACY_MS = 2000
/** A stamp is trusted for this long at most: the files are read whole at least this often. */
const STAMP_MAX_AGE_MS = 10 * 60_000

const stampOf = (path: string, s: Stats): FileStamp => ({
  path,
  dev: s.dev,
  ino: s.ino,
  size: s.size,
  mtimeMs: s.mtimeMs,
  ctimeMs: s.ctimeMs,
})

/**
 * Whether the source's files are certainly the ones read for `stamp`: every
 * path still names a regular file with the same device, inode, size and
 * change times (an atomic rename brings a new inode; a write, a new ctime),
 * none was changed shortly before it was read (see RACY_MS), and the stamp
 * is recent. One `stat` per file instead of open, read, close and a hash;
 * any doubt answers false, and the caller reads the files whole.
 */
export const unchangedSince = (stamp: SourceStamp, nowMs: number): boolean => {
  if (nowMs - stamp.readAtMs > STAMP_MAX_AGE_MS || nowMs < stamp.readAtMs) return false
  for (const f of stamp.files) {
    if (f.ctimeMs > stamp.readAtMs - RACY_MS || f.mtimeMs > stamp.readAtMs - RACY_MS) return false
    let s: Stats | undefined
    try {
      s = statSync(f.path, { throwIfNoEntry: false })
    } catch {
      return false
    }
    if (
      s === undefined ||
      !s.isFile() ||
      s.ino !== f.ino ||
      s.dev !== f.dev ||
      s.size !== f.size ||
      s.mtimeMs !== f.mtimeMs ||
      s.ctimeMs !== f.ctimeMs
    )
      return false
  }
  return true
}

/** Paths a source reads (for the directory watcher). */
/** A source's files with the configuration key each is given under (cert, chain, key, pfx). */
export const sourceRoles = (source: Source): ReadonlyArray<readonly [string, string]> =>
  source._tag === "Pfx"
    ? [["pfx", source.pfx]]
    : [
        ["cert", source.cert],
        ...(source.chain === undefined ? [] : [["chain", source.chain] as const]),
        ...(source.key === undefined ? [] : [["key", source.key] as const]),
      ]

export const sourcePaths = (source: Source): ReadonlyArray<string> =>
  sourceRoles(source).map(([, path]) => path)

const errnoText = (e: unknown, path: string): string => {
  const code = (e as NodeJS.ErrnoException | undefined)?.code
  const refused = code === "EACCES" ? readRefusal(path) : undefined
  const missing = code === "ENOENT" ? explainMissing(path) : undefined
  return missing !== undefined
    ? `${missing.rest}${FIX_MARK}${missing.fix}`
    : code === "EACCES"
      ? refused === undefined
        ? "is not readable (permission denied)"
        : `is not readable: ${refused.why}${FIX_MARK}${refused.fix}`
      : code === "ENOTREG"
        ? "is not a regular file (a directory, FIFO or device): point the source at the certificate file itself"
        : code === "ETOOBIG"
          ? `is larger than ${MAX_SOURCE_BYTES / 1024 / 1024} MiB${(e as TooLarge).size === undefined ? "" : ` (${(e as TooLarge).size} bytes)`}, and certificate, chain, key and PFX files are a few KB: point the source at the certificate file itself`
          : code === "ECHANGED"
            ? "was replaced while it was read (it is read again)"
            : `cannot be read (${code ?? "error"})`
}

/** Key and PFX files warned of as readable by every user, by path: the file and mode warned of. */
const readableWarned = new Map<string, string>()

/** Read every file of the source and fingerprint them together. */
export const readSource = (
  source: Source,
  /** Log a key every user may read (the running agent); --check lists it with its warnings instead. */
  warnReadable = true,
): Effect.Effect<SourceBytes, SourceBroken> =>
  Effect.gen(function* () {
    const roles: Array<{ role: "cert" | "chain" | "key" | "pfx"; path: string }> =
      source._tag === "Pfx"
        ? [{ role: "pfx", path: source.pfx }]
        : [
            { role: "cert", path: source.cert },
            ...(source.chain === undefined ? [] : [{ role: "chain" as const, path: source.chain }]),
            ...(source.key === undefined ? [] : [{ role: "key" as const, path: source.key }]),
          ]
    // Read synchronously: certificate files are a few KB, and the thread-pool round trips of the
    // asynchronous reads (open, stat, read, close: four per file) cost more of the event loop than
    // the reads themselves (profiled: about 0.17 ms of a no-change reconcile's ~1 ms).
    const readAtMs = Date.now()
    const read = roles.map(({ role, path }) =>
      Result.try({
        try: () => {
          const { bytes, stats, real } = readRegularFile(path, source.owner)
          return {
            role,
            path,
            readable: role === "key" || role === "pfx" ? keyReadableByOthers(role, real, stats) : undefined,
            signature: `${stats.dev}:${stats.ino}:${stats.mode}`,
            bytes: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength),
            stamp: stampOf(path, stats),
          }
        },
        catch: (e) =>
          e instanceof Untrusted
            ? `${role} ${shownPath(path)}: ${untrustedText(e.untrusted)}${FIX_MARK}${untrustedFix(e.untrusted)}`
            : `${role} ${shownPath(path)} ${errnoText(e, path)}`,
      }),
    )
    const problems = read.flatMap((r) => (r._tag === "Failure" ? [r.failure] : []))
    if (problems.length > 0) return yield* new SourceBroken({ problems })
    const readOk = read.flatMap((r) => (r._tag === "Success" ? [r.success] : []))
    // A key every user may read is used all the same, with a warning: once per file and mode, not
    // at every read (a file read again is warned of again only once it changed).
    for (const f of readOk) {
      if (!warnReadable) continue
      if (f.readable === undefined) {
        readableWarned.delete(f.path)
        continue
      }
      if (readableWarned.get(f.path) === f.signature) continue
      readableWarned.set(f.path, f.signature)
      yield* Effect.logWarning(f.readable.why).pipe(Effect.annotateLogs({ fix: f.readable.fix }))
    }
    const hash = createHash("sha256")
    for (const f of readOk) {
      hash.update(`${f.role}\0${f.bytes.length}\0`)
      hash.update(f.bytes)
    }
    const fingerprint = hash.digest("hex")
    return {
      fingerprint,
      files: readOk.map(({ role, path, bytes }) => ({ role, path, bytes })),
      stamp: { fingerprint, files: readOk.map((f) => f.stamp), readAtMs },
    }
  })

/**
 * The file's bytes, refusing anything but a regular file: the read is synchronous, and a FIFO
 * (or a device) would block the event loop, and with it every deployment, /healthz and the
 * signal handlers. Opened non-blocking, so a FIFO with no writer does not block the open.
 *
 * Only a file no user but root and the agent's could have changed is read (pathTrust.ts): the path
 * is resolved by hand, each directory and link judged, and the resolved path opened with
 * O_NOFOLLOW; the file opened must be the one judged (device and inode), and is judged again.
 */
const readRegularFile = (
  path: string,
  owner: number | undefined,
): { readonly bytes: Buffer; readonly stats: Stats; readonly real: string } => {
  const walk = walkPath(path, owner)
  if (walk._tag === "Untrusted") throw new Untrusted(walk.untrusted)
  const fd = openSync(walk.real, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW)
  try {
    const stats = fstatSync(fd)
    if (!stats.isFile()) throw new NotARegularFile()
    if (stats.dev !== walk.stats.dev || stats.ino !== walk.stats.ino) throw new ChangedWhileRead()
    const bad = untrustedFile(walk.real, stats, owner, walk.via)
    if (bad !== undefined) throw new Untrusted(bad)
    if (stats.size > MAX_SOURCE_BYTES) throw new TooLarge(stats.size)
    return { bytes: readWhole(fd, stats.size), stats, real: walk.real }
  } finally {
    closeSync(fd)
  }
}

/**
 * The largest source file read, as the CLI's bound (1 MiB): certificate, chain, key and PFX files
 * are a few KB, and a file is read whole into memory (a 2 GB sparse cert.pem took the agent to
 * 11.8 GB and stalled /healthz). Checked on the `fstat` of the file opened, and while reading a
 * file whose size says nothing (0: files of /proc).
 */
export const MAX_SOURCE_BYTES = 1024 * 1024

/**
 * The file's bytes up to `size` (its size when it was stamped, at most MAX_SOURCE_BYTES), as
 * `readFileSync(fd)` reads them, without the second `fstat` that `readFileSync` makes for the size:
 * read until `size` bytes or the end of the file (a file truncated meanwhile gives fewer; one grown
 * meanwhile is read as stamped, and its new size or change time makes the next pass read it
 * again). A file whose size is 0 is read until its end, or refused once it gave more than
 * MAX_SOURCE_BYTES.
 */
const readWhole = (fd: number, size: number): Buffer => {
  if (size === 0) return readToEndAtMost(fd, MAX_SOURCE_BYTES)
  const buffer = Buffer.allocUnsafe(size)
  let pos = 0
  let n: number
  do {
    n = readSync(fd, buffer, pos, size - pos, null)
    pos += n
  } while (n !== 0 && pos < size)
  return pos < size ? buffer.subarray(0, pos) : buffer
}

/** A file that says it is empty read to its end, refused (TooLarge) past `limit` bytes. */
const readToEndAtMost = (fd: number, limit: number): Buffer => {
  const chunks: Array<Buffer> = []
  let total = 0
  for (;;) {
    const chunk = Buffer.allocUnsafe(64 * 1024)
    const n = readSync(fd, chunk, 0, chunk.length, null)
    if (n === 0) break
    total += n
    if (total > limit) throw new TooLarge(undefined)
    chunks.push(n < chunk.length ? chunk.subarray(0, n) : chunk)
  }
  return Buffer.concat(chunks, total)
}

/** Larger than MAX_SOURCE_BYTES (`size`: what fstat said, when it said it). */
class TooLarge extends Error {
  readonly code = "ETOOBIG"
  constructor(readonly size: number | undefined) {
    super("too large")
  }
}

class NotARegularFile extends Error {
  readonly code = "ENOTREG"
}

/** The file at the resolved path is not the one its walk judged (replaced in between). */
class ChangedWhileRead extends Error {
  readonly code = "ECHANGED"
}

/** A user other than root and the agent's could have changed the file (pathTrust.ts). */
class Untrusted extends Error {
  constructor(readonly untrusted: UntrustedPath) {
    super(untrusted.why)
  }
}

const x5tOf = (der: Uint8Array): string => createHash("sha1").update(der).digest("base64url")

const loadPkcs12 = () => import("@kvdeploy/pkcs12")

/**
 * The certificate whose public key is the key's (pkcs12's `keyOwner`, the rule preflight and the
 * CLI use), with its parse (used for its facts); "damaged" when that certificate's public key is the
 * key's own but a signature made with the key does not verify with it (the codec's `checkKeyPair`):
 * a key file whose private half was damaged states an intact public half, which is all the owner's
 * comparison reads.
 */
const leafForKey = (
  certificates: ReadonlyArray<Uint8Array>,
  key: Redacted.Redacted<Uint8Array>,
  {
    keyOwner,
    checkKeyPair,
    rsaInconsistencyWords,
  }: Pick<typeof import("@kvdeploy/pkcs12"), "keyOwner" | "checkKeyPair" | "rsaInconsistencyWords">,
):
  | { readonly der: Uint8Array; readonly x509: X509Certificate }
  | { readonly damaged: string }
  | undefined => {
  const der = keyOwner(certificates, key)
  if (der === undefined) return undefined
  try {
    const privateKey = createPrivateKey({
      key: Buffer.from(Redacted.value(key)),
      format: "der",
      type: "pkcs8",
    })
    const x509 = new X509Certificate(der)
    // An RSA key's wrong number (which OpenSSL still signs with) is named, as the CLI's preflight names it.
    return checkKeyPair(privateKey, createPublicKey(privateKey), x509.publicKey) === "damaged"
      ? { damaged: rsaInconsistencyWords(privateKey) }
      : { der, x509 }
  } catch {
    return undefined
  }
}

/**
 * The usual case, checked by the codec that the deploy will use: the first
 * certificate is the leaf and the key matches it. The codec keeps its
 * analysis (parses, key load, checks) with the material object, and the
 * deploy's inspect and encode of the same object reuse it: the key and the
 * leaf are parsed once per deploy instead of once here and once there
 * (`leafForKey` costs a createPrivateKey and an X509Certificate). Answers
 * undefined in any other case (a crash included); the caller then searches with `leafForKey`.
 */
const materialCheckedBy = (
  codec: PfxCodec["Service"],
  certificates: ReadonlyArray<Uint8Array>,
  key: Redacted.Redacted<Uint8Array>,
  /** Where the material was read from (a PFX's advice is another export). */
  from: CertificateMaterial["from"],
): Effect.Effect<{ readonly material: CertificateMaterial; readonly notAfter: Date } | undefined> => {
  const [leaf, ...chain] = certificates
  if (leaf === undefined) return Effect.succeed(undefined)
  const material: CertificateMaterial = { leaf, chain, key, ...(from === undefined ? {} : { from }) }
  // Any end but a success, a defect included, leaves the answer to `leafForKey`: a crash here
  // must not end the deployment's fiber without a SourceBroken (the old check caught everything).
  return Effect.map(Effect.exit(codec.inspect(material)), (exit) =>
    exit._tag === "Success" && exit.value.keyMatchesLeaf
      ? { material, notAfter: exit.value.leaf.notAfter }
      : undefined,
  )
}

/**
 * Parse and check the bytes of a source: certificates, the key, the key
 * matching one certificate (the leaf). Answers the material (key `Redacted`,
 * kept in memory only for the deploy that needs it) and its facts.
 *
 * `deployWith`: the codec of the deploy this material is read for (a deploy
 * is likely): the check is then the codec's own inspection, which the deploy
 * reuses. Without it (the source is only compared with the vault) the check
 * is the cheaper `leafForKey`: an inspection also reads every name and
 * extension of the certificate, which only a deploy needs.
 */
export const materialOf = (
  source: Source,
  bytes: Pick<SourceBytes, "fingerprint" | "files">,
  env: Readonly<Record<string, string | undefined>>,
  deployWith?: PfxCodec["Service"],
): Effect.Effect<{ readonly material: CertificateMaterial; readonly facts: SourceFacts }, SourceBroken> =>
  Effect.gen(function* () {
    const pkcs12 = yield* Effect.promise(loadPkcs12)
    const { parsePem, decodePfx, OPENSSL_CANNOT_READ_EITHER } = pkcs12
    let certificates: Array<Uint8Array> = []
    let key: Redacted.Redacted<Uint8Array> | undefined
    const problems: Array<string> = []
    const keyHolders: Array<SourceBytes["files"][number]> = []
    if (source._tag === "Pfx") {
      const file = bytes.files[0]
      const password =
        source.passwordEnv === undefined ? "" : (environmentVariable(source.passwordEnv, env) ?? "")
      if (file !== undefined) {
        const decoded = yield* decodePfx(file.bytes, Redacted.make(password)).pipe(Effect.result)
        if (decoded._tag === "Failure") {
          const e = decoded.failure
          problems.push(
            e.reason === "wrong-password"
              ? `pfx ${shownPath(file.path)}: the password${source.passwordEnv === undefined ? " (none given)" : ` in ${shownSecretVariable(source.passwordEnv) ?? "the variable pfx_password_env names"}`} does not open it (or the file is incomplete)${password !== password.trim() ? "; the variable's value has spaces or a line break around it, which are part of the password as given: set it without them if they are not" : ""}`
              : `pfx ${shownPath(file.path)}: ${e.fix === undefined ? e.finding : `${e.finding}${FIX_MARK}${e.fix}`}`,
          )
        } else {
          certificates = [decoded.success.leaf, ...decoded.success.chain]
          key = decoded.success.key
        }
      }
    } else {
      for (const file of bytes.files) {
        const parsed = yield* parsePem(file.bytes).pipe(Effect.result)
        if (parsed._tag === "Failure") {
          for (const p of parsed.failure.problems)
            problems.push(
              `${file.role} ${shownPath(file.path)}: ${
                // The agent takes no passphrase for a PEM key: say what it can read instead. A key
                // whose encryption cost is refused is encrypted too: re-encrypting it, the parser's
                // fix for a caller with a passphrase, would leave a key the agent cannot read.
                /encrypted and no passphrase was given/.test(p.message)
                  ? encryptedPemKey("")
                  : p.fix.startsWith(OPENSSL_CANNOT_READ_EITHER)
                    ? `${p.message.replace(REFUSED_ENCRYPTION, "the private key is encrypted, and refused before decrypting it: ")}, and the agent reads PEM keys without a passphrase${FIX_MARK}${OPENSSL_CANNOT_READ_EITHER} (its scrypt memory limit): decrypt it with the tool that encrypted it to a file only the agent can read, or give the certificate as a PFX with pfx_password_env`
                    : p.fix.startsWith(REFUSED_COST_FIX)
                      ? encryptedPemKey(` (${p.message.replace(REFUSED_ENCRYPTION, "")})`)
                      : // The parser's field names the block ("block 3 (CERTIFICATE)") in a file of several.
                        `${p.field === "input" ? "" : `${p.field} `}${p.message}${FIX_MARK}${p.fix}`
              }`,
            )
          continue
        }
        if (
          file.role === "key" &&
          parsed.success.certificates.length === 0 &&
          parsed.success.key === undefined
        )
          problems.push(`key ${shownPath(file.path)}: holds no private key`)
        if (file.role === "cert" && parsed.success.certificates.length === 0)
          problems.push(`cert ${shownPath(file.path)}: holds no certificate`)
        certificates.push(...parsed.success.certificates)
        if (parsed.success.key !== undefined) {
          keyHolders.push(file)
          // The key file's key is the source's key; one in the certificate or chain file is the extra.
          if (key === undefined || file.role === "key") key = parsed.success.key
        }
      }
      if (keyHolders.length > 1) {
        const keyFile = keyHolders.find((f) => f.role === "key")
        for (const f of keyHolders)
          if (f !== keyFile && (keyFile !== undefined || f !== keyHolders[0]))
            problems.push(
              keyFile === undefined
                ? `${f.role} ${shownPath(f.path)}: holds a second private key, besides the one in ${keyHolders[0]?.role} ${shownPath(keyHolders[0]?.path ?? "")}${FIX_MARK}give exactly one private key, the leaf's`
                : `${f.role} ${shownPath(f.path)}: holds a private key, and so does key ${shownPath(keyFile.path)}${FIX_MARK}give exactly one private key, the leaf's: remove it from the ${f.role} file`,
            )
      }
      if (problems.length === 0 && key === undefined)
        problems.push(
          source.key === undefined
            ? `cert ${shownPath(source.cert)}: holds no private key and no key file is configured`
            : `key ${shownPath(source.key)}: holds no private key`,
        )
    }
    if (problems.length > 0 || key === undefined) return yield* new SourceBroken({ problems })
    const from = source._tag === "Pfx" ? "pfx" : undefined
    if (deployWith !== undefined) {
      const checked = yield* materialCheckedBy(deployWith, certificates, key, from)
      if (checked !== undefined)
        return {
          material: checked.material,
          facts: factsOf(bytes.fingerprint, checked.material, checked.notAfter, pkcs12),
        }
    }
    const found = leafForKey(certificates, key, pkcs12)
    // Where the key and the certificates were read, as every other problem of a source names its file.
    const keyFile =
      source._tag === "Pfx" ? undefined : (keyHolders.find((f) => f.role === "key") ?? keyHolders[0])
    const keyAt =
      source._tag === "Pfx"
        ? `pfx ${shownPath(source.pfx)}: its private key`
        : `${keyFile?.role ?? "key"} ${shownPath(keyFile?.path ?? source.key ?? source.cert)}: the private key`
    const certificatesIn =
      source._tag === "Pfx"
        ? "its certificates"
        : `the certificates of cert ${shownPath(source.cert)}${source.chain === undefined ? "" : ` and chain ${shownPath(source.chain)}`}`
    if (found !== undefined && "damaged" in found)
      return yield* new SourceBroken({
        problems: [
          found.damaged === ""
            ? `${keyAt} is damaged: its public half is the certificate's, but a signature made with its private half does not verify with it, so a TLS handshake with it would fail (\`openssl pkey -check -noout -in KEY\` checks a key file); supply an intact copy of the key`
            : `${keyAt} is damaged: its public half is the certificate's, but ${found.damaged}, so \`openssl pkey -check\` calls it invalid and other readers of the PFX (Python's cryptography) refuse it${FIX_MARK}re-export the key from where it was made, or supply the key the certificate was issued for (\`openssl pkey -check -noout -in KEY\` checks a key file)`,
        ],
      })
    if (found === undefined)
      return yield* new SourceBroken({
        problems: [
          `${keyAt} matches none of ${certificatesIn} (mismatched key, or a renewal half-written: certificate and key from different issues)`,
        ],
      })
    const { der: leaf, x509 } = found
    const material: CertificateMaterial = {
      leaf,
      chain: certificates.filter((c) => c !== leaf),
      key,
      ...(from === undefined ? {} : { from }),
    }
    return { material, facts: factsOf(bytes.fingerprint, material, new Date(x509.validTo), pkcs12) }
  })
