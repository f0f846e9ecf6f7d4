/**
 * An in-memory Key Vault that behaves like one: versions with ids and
 * creation times, "latest" is the newest version, tags, backing secrets
 * re-protected with the blank password (keys exportable or not), soft delete
 * and recovery, the 15-tag limit, refusal of expired certificates, a
 * permission switch for `secrets/get`, and a count of every call.
 *
 * It reads imported PFX files with the PfxCodec it requires, so x5t and serial
 * come from the bytes actually imported. A PEM import (`ImportRequest.pem`) is read
 * as Key Vault reads one: CERTIFICATE blocks (the first is the leaf) and one
 * unencrypted PKCS#8 PRIVATE KEY block, `\n` line endings, at most 25 KB of text;
 * the version then serves its secret as PEM (`contentType`), as its later reads say.
 *
 * Like Key Vault (and the emulator), creation times are whole seconds (the
 * Clock truncated), version ids are opaque (not in creation order), and
 * `listVersions` answers in version-id order, not creation order: versions
 * created within one second cannot be ordered by anything a client sees. A name
 * that never held a certificate lists no versions (an empty list, not
 * `VaultNotFound`); a soft-deleted certificate's list is `VaultNotFound`.
 *
 * Faults are scripted per operation and consumed one per call:
 * - `Fail`: a definite error before anything happens (NotFound, Forbidden,
 *   Throttled, Unavailable, Rejected) or `Ambiguous` without effect;
 * - `AfterWrite`: the write takes effect, then the caller gets VaultAmbiguous;
 * - `ForeignImport`: another writer imports a version just before this call;
 * - `Alter`: the write is stored altered (disabled, tags dropped, or served with another x5t or
 *   serial than the certificate sent), the "ours but wrong" case;
 * - `StaleRead`: `getLatest` answers as a replica that has applied nothing since the
 *   caller's last read of the latest version (what that read answered, or not found);
 *   `listVersions` and `getDeleted` answer as a replica that has applied every version but not
 *   the certificate's last delete or recovery: after a delete, the versions are listed and no
 *   deleted certificate is found; after a recovery, the list is not found and the deleted
 *   certificate is the one the recovery undid (its delete time, its latest version then); with
 *   neither, they answer as without the fault;
 * - `ForeignDelete`: another writer soft-deletes the certificate, `before` this call (default)
 *   or `after` it succeeded (its answer is still given); nothing happens to a name that holds no
 *   certificate, or one already deleted;
 * - `ForeignRecover`: another writer recovers the soft-deleted certificate just before this call
 *   (nothing happens to a name that is not soft-deleted). A `recoverDeleted` after it finds the
 *   certificate served and sends no recovery, as Key Vault's SDK does. With `unshown`, the call is
 *   then answered `VaultNotFound` without running, as Key Vault answers a recover POST whose SDK
 *   read came before that recovery showed (no deleted certificate left to recover); logged as
 *   `NotFoundAfterForeignRecover`, not `NotFound`: it is no false 404;
 * - `Pass`: no fault for this call (to target the Nth call).
 *
 * `recoverDeleted` behaves as the azure-kv adapter over Key Vault's SDK: the SDK reads the
 * certificate first, so a name the vault serves (not soft-deleted) answers its latest version with
 * `sent: false` (no recovery was sent); a name that is neither served nor soft-deleted is
 * `VaultNotFound`.
 *
 * `listCertificates` answers pages of 25 (the latest version of each
 * certificate that is not soft-deleted, by name, case-insensitively, as Key
 * Vault and the emulator order them) with an opaque continuation that resumes
 * after the last name of the previous page. Its faults are `Fail`, `AfterWrite`
 * (the page is read, then VaultAmbiguous) and `Pass`; a scripted `NotFound` is
 * a `VaultRequestRejected` (code `NotFound`), as the port's list has no
 * not-found; `ForeignImport`, `Alter` and `StaleRead` name no certificate there
 * and do nothing. A list read is not a read of the latest for `StaleRead`.
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import type { CertificateMaterial } from "../material.js"
import { Metrics, vaultRequestStatusOf } from "../ports/Metrics.js"
import { PfxCodec } from "../ports/PfxCodec.js"
import {
  type DeletedCertificate,
  type ImportRequest,
  importContentTypeOfRequest,
  type ListedPage,
  type RecoveredCertificate,
  Vault,
  VaultAmbiguous,
  VaultConflictSoftDeleted,
  VaultForbidden,
  VaultNoPrivateKey,
  VaultNotFound,
  type VaultOperation,
  VaultRequestRejected,
  VaultThrottled,
  VaultUnavailable,
  type VaultVersion,
  type VersionSecret,
} from "../ports/Vault.js"
import { encodeWithoutKey } from "./SyntheticCodec.js"

/**
 * `UnavailableRetried`: unavailable after the adapter's own retries (an SDK's retry policy), so
 * marked `retried` and not retried again by the deploy program.
 */
export type FailKind =
  | "NotFound"
  | "Forbidden"
  | "Throttled"
  | "Unavailable"
  | "UnavailableRetried"
  | "Rejected"
  | "Ambiguous"

/** How an `Alter` fault stores a write: disabled, without its tags, or with another x5t or serial. */
export type AlterChange = "disable" | "drop-tags" | "other-x5t" | "other-serial"

export type Fault =
  | { readonly _tag: "Pass" }
  | { readonly _tag: "Fail"; readonly kind: FailKind }
  | { readonly _tag: "AfterWrite" }
  | {
      readonly _tag: "ForeignImport"
      readonly material: CertificateMaterial
      readonly tags?: ForeignTags
    }
  | { readonly _tag: "Alter"; readonly change: AlterChange }
  | { readonly _tag: "StaleRead" }
  | { readonly _tag: "ForeignDelete"; readonly when: "before" | "after" }
  | { readonly _tag: "ForeignRecover"; readonly unshown?: true }

/**
 * The tags of a foreign import: fixed, or made from the name's versions at the time of the call
 * (oldest first), for a writer that names a version this run wrote (`certctl-rollback-of`, say).
 */
export type ForeignTags =
  | Readonly<Record<string, string>>
  | ((versions: ReadonlyArray<StoredVersion>) => Readonly<Record<string, string>>)

export const Fault = {
  pass: { _tag: "Pass" } as Fault,
  fail: (kind: FailKind): Fault => ({ _tag: "Fail", kind }),
  afterWrite: { _tag: "AfterWrite" } as Fault,
  foreignImport: (material: CertificateMaterial, tags?: ForeignTags): Fault =>
    tags === undefined ? { _tag: "ForeignImport", material } : { _tag: "ForeignImport", material, tags },
  alter: (change: AlterChange): Fault => ({ _tag: "Alter", change }),
  /** The same fault for the next `n` calls (a read that fails N times): `script(op, ...Fault.repeat(3, Fault.fail("Throttled")))`. */
  repeat: (n: number, fault: Fault): ReadonlyArray<Fault> => Array.from({ length: n }, () => fault),
  /** A lagging replica: `getLatest` answers what the caller's previous read of the latest answered. */
  staleRead: { _tag: "StaleRead" } as Fault,
  /** Another writer soft-deletes the certificate, before this call (default) or after it ran. */
  foreignDelete: (when: "before" | "after" = "before"): Fault => ({ _tag: "ForeignDelete", when }),
  /** Another writer recovers the soft-deleted certificate just before this call. */
  foreignRecover: { _tag: "ForeignRecover" } as Fault,
  /**
   * Another writer recovers the soft-deleted certificate just before this call, which is answered
   * `VaultNotFound` without running (a recover POST sent before that recovery showed to the SDK).
   */
  foreignRecoverUnshown: { _tag: "ForeignRecover", unshown: true } as Fault,
}

/** A version as the in-memory vault keeps it. */
export interface StoredVersion extends VaultVersion {
  readonly material: CertificateMaterial
  readonly exportable: boolean
  /** Who wrote it: "deploy" for calls through the Vault port, else the seed/foreign writer's name. */
  readonly writer: string
  readonly sequence: number
}

interface DeleteRecord {
  readonly at: Date
  readonly scheduledPurgeAt: Date
  /** The sequence of the certificate's latest version when it was deleted. */
  readonly latestSequence: number | undefined
}

interface StoredCertificate {
  versions: Array<StoredVersion>
  deleted: DeleteRecord | undefined
  /** The delete the certificate's last recovery undid (what a replica lagging behind it still shows). */
  recoveredFrom?: DeleteRecord | undefined
}

export interface CallRecord {
  readonly operation: VaultOperation
  readonly outcome: string
  /** A `StaleRead` of the latest answered other than what the vault served then (a lagging replica). */
  readonly stale?: true
}

export interface SeedOptions {
  readonly tags?: Readonly<Record<string, string>>
  /** The backing secret's content type the seeded version serves (default PKCS#12). */
  readonly contentType?: "application/x-pkcs12" | "application/x-pem-file"
  readonly exportable?: boolean
  readonly writer?: string
  readonly enabled?: boolean
}

const MAX_TAGS = 15
/** Key Vault's page size (its largest `maxresults`), as the azure-kv adapter asks for. */
const LIST_PAGE_SIZE = 25
const CONTINUATION_PREFIX = "in-memory-list:after:"
const SOFT_DELETE_RETENTION_MS = 90 * 86_400_000

/** Handle to inspect and script the in-memory vault. */
export class InMemoryVaultHandle extends Context.Service<
  InMemoryVaultHandle,
  {
    /** Versions of a certificate, oldest first (soft-deleted ones included). */
    readonly versions: (name: string) => ReadonlyArray<StoredVersion>
    /** The version the vault serves, or undefined (missing or soft-deleted). */
    readonly latest: (name: string) => StoredVersion | undefined
    readonly isSoftDeleted: (name: string) => boolean
    /** Import as another writer (not counted as a call). */
    readonly seed: (
      name: string,
      material: CertificateMaterial,
      options?: SeedOptions,
    ) => Effect.Effect<StoredVersion>
    readonly softDelete: (name: string) => Effect.Effect<void>
    /** Recover a soft-deleted certificate as another writer (not counted as a call); nothing for one not deleted. */
    readonly recover: (name: string) => void
    /** How many scripted `ForeignDelete` faults deleted a certificate (one that found none did nothing). */
    readonly foreignDeletes: () => number
    /**
     * How many recoveries took effect: `byPort`, by `recoverDeleted` calls through the Vault port
     * (one that found the certificate soft-deleted, whatever its caller was then answered);
     * `foreign`, by `ForeignRecover` faults and `recover` (one that found none deleted did nothing).
     */
    readonly recoveries: () => { readonly byPort: number; readonly foreign: number }
    /** Queue faults for the next calls of an operation, one per call. */
    readonly script: (operation: VaultOperation, ...faults: ReadonlyArray<Fault>) => void
    /** Faults still queued. */
    readonly pendingFaults: () => number
    /** Grant or revoke `secrets/get`. */
    readonly setSecretsGet: (granted: boolean) => void
    /** Calls made through the Vault port. */
    readonly calls: () => {
      readonly total: number
      readonly byOperation: Readonly<Partial<Record<VaultOperation, number>>>
    }
    readonly callLog: () => ReadonlyArray<CallRecord>
    readonly resetCalls: () => void
  }
>()("@kvdeploy/core/test/InMemoryVaultHandle") {}

/**
 * Key Vault's version ids are random, and it lists versions by id: a mixed
 * prefix makes the id order differ from the creation order (the sequence
 * number behind it keeps ids unique and runs deterministic).
 */
const versionIdOf = (n: number) => {
  let x = Math.imul(n ^ 0x9e3779b9, 0x85ebca6b) >>> 0
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35) >>> 0
  x = (x ^ (x >>> 16)) >>> 0
  return `${x.toString(16).padStart(8, "0")}${n.toString(16).padStart(24, "0")}`
}

/** Key Vault reports creation times in whole seconds. */
const wholeSecond = (ms: number) => new Date(Math.floor(ms / 1000) * 1000)

const publicView = (v: StoredVersion): VaultVersion => ({
  versionId: v.versionId,
  x5t: v.x5t,
  serialHex: v.serialHex,
  enabled: v.enabled,
  createdAt: v.createdAt,
  tags: { ...v.tags },
  ...(v.cer === undefined ? {} : { cer: v.cer }),
  ...(v.expiresAt === undefined ? {} : { expiresAt: v.expiresAt }),
  ...(v.notBefore === undefined ? {} : { notBefore: v.notBefore }),
  ...(v.contentType === undefined ? {} : { contentType: v.contentType }),
})

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\n([A-Za-z0-9+/=\n]*?)-----END \1-----/g
/** Key Vault's secret value limit (25 KB), which a PEM import's text must fit. */
const MAX_PEM_CHARS = 25 * 1024

/**
 * Material of a PEM import, as Key Vault reads one, or why it refuses it: the certificates (the
 * first is the leaf) and one unencrypted PKCS#8 key, `\n` line endings only (PKCS#1 and encrypted
 * keys are refused).
 */
const pemImportMaterial = (pem: Uint8Array): CertificateMaterial | string => {
  if (pem.byteLength > MAX_PEM_CHARS)
    return `the PEM is ${pem.byteLength} characters; a secret value is at most ${MAX_PEM_CHARS}`
  const text = new TextDecoder().decode(pem)
  if (text.includes("\r")) return "the PEM has CR LF line endings"
  const certs: Array<Uint8Array> = []
  let key: Uint8Array | undefined
  for (const m of text.matchAll(PEM_BLOCK)) {
    const der = new Uint8Array(Buffer.from((m[2] ?? "").replace(/\n/g, ""), "base64"))
    if (m[1] === "CERTIFICATE") certs.push(der)
    else if (m[1] === "PRIVATE KEY" && key === undefined) key = der
    else return `the PEM holds a ${m[1]} block, which Key Vault's PEM import does not take`
  }
  const [leaf, ...chain] = certs
  if (leaf === undefined) return "the PEM holds no certificate"
  if (key === undefined) return "the PEM holds no PKCS#8 private key"
  return { leaf, chain, key: Redacted.make(key) }
}

const make = Effect.gen(function* () {
  const codec = yield* PfxCodec
  const certificates = new Map<string, StoredCertificate>()
  const faults = new Map<VaultOperation, Array<Fault>>()
  /** How many `ForeignDelete` faults deleted a certificate. */
  let foreignDeletes = 0
  /** How many recoveries took effect, by the Vault port's `recoverDeleted` and by another writer. */
  const recoveries = { byPort: 0, foreign: 0 }
  /**
   * Soft-delete a certificate (as another writer's delete): nothing for a name without one, or
   * deleted already. True when it deleted one.
   */
  const softDelete = (name: string): Effect.Effect<boolean> =>
    Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.sync(() => {
        const c = certificates.get(name)
        if (c === undefined || c.deleted !== undefined) return false
        c.deleted = {
          // Key Vault stamps deletes in whole seconds.
          at: wholeSecond(now),
          scheduledPurgeAt: new Date(now + SOFT_DELETE_RETENTION_MS),
          latestSequence: c.versions.at(-1)?.sequence,
        }
        c.recoveredFrom = undefined
        return true
      }),
    )
  /** Recover a soft-deleted certificate (this deploy's recovery, or another writer's). */
  const recover = (c: StoredCertificate) => {
    c.recoveredFrom = c.deleted
    c.deleted = undefined
  }
  /** Another writer's recovery: nothing for a name that is not soft-deleted. */
  const foreignRecover = (name: string) => {
    const c = certificates.get(name)
    if (c?.deleted !== undefined) {
      recover(c)
      recoveries.foreign++
    }
  }
  const foreignDelete = (name: string): Effect.Effect<void> =>
    Effect.map(softDelete(name), (deleted) => {
      if (deleted) foreignDeletes++
    })
  const log: Array<CallRecord> = []
  let sequence = 0
  let secretsGet = true
  /** Per name, what the caller's last read of the latest answered (undefined: not found). */
  const observed = new Map<string, { readonly versionId: string | undefined }>()

  const live = (name: string): StoredCertificate | undefined => {
    const c = certificates.get(name)
    return c === undefined || c.deleted !== undefined || c.versions.length === 0 ? undefined : c
  }
  const latestOf = (name: string): StoredVersion | undefined => {
    const c = live(name)
    return c === undefined ? undefined : c.versions[c.versions.length - 1]
  }

  /**
   * What a replica that has applied nothing since the caller's last read of
   * the latest answers: that read's answer (nothing, when it found nothing),
   * or the plain latest when the caller has not read it yet. It never shows a
   * write the caller has not seen (Key Vault's latest is its most recently
   * created version; a lagging read shows an earlier state the caller saw), and
   * it has not applied a delete since that read either.
   */
  const laggingLatest = (name: string): StoredVersion | undefined => {
    const seen = observed.get(name)
    if (seen === undefined) return latestOf(name)
    return seen.versionId === undefined
      ? undefined
      : certificates.get(name)?.versions.find((v) => v.versionId === seen.versionId)
  }
  const observe = (name: string, v: StoredVersion | undefined): StoredVersion | undefined => {
    observed.set(name, { versionId: v?.versionId })
    return v
  }

  /** Store a version from material already read; `alter` models the vault storing something else. */
  const store = (
    name: string,
    material: CertificateMaterial,
    tags: Readonly<Record<string, string>>,
    writer: string,
    exportable: boolean,
    enabled: boolean,
    alter?: AlterChange,
    contentType: "application/x-pkcs12" | "application/x-pem-file" = "application/x-pkcs12",
  ) =>
    Effect.gen(function* () {
      const inspected = yield* codec.inspect(material).pipe(Effect.orDie)
      const now = yield* Clock.currentTimeMillis
      sequence++
      const version: StoredVersion = {
        versionId: versionIdOf(sequence),
        x5t: alter === "other-x5t" ? `other-${inspected.leaf.x5t}` : inspected.leaf.x5t,
        serialHex: alter === "other-serial" ? `ff${inspected.leaf.serialHex}` : inspected.leaf.serialHex,
        enabled,
        createdAt: wholeSecond(now),
        tags: { ...tags },
        cer: inspected.leaf.der,
        expiresAt: inspected.leaf.notAfter,
        notBefore: inspected.leaf.notBefore,
        material,
        exportable,
        writer,
        sequence,
        contentType,
      }
      const c = certificates.get(name) ?? { versions: [], deleted: undefined }
      c.versions.push(version)
      certificates.set(name, c)
      return version
    })

  const makeError = (operation: VaultOperation, kind: FailKind) => {
    const fields = { operation, detail: `scripted ${kind}` }
    switch (kind) {
      case "NotFound":
        return new VaultNotFound(fields)
      case "Forbidden":
        return new VaultForbidden(fields)
      case "Throttled":
        return new VaultThrottled({ ...fields, retryAfterMs: 1000 })
      case "Unavailable":
        return new VaultUnavailable(fields)
      case "UnavailableRetried":
        return new VaultUnavailable({ ...fields, retried: true })
      case "Rejected":
        return new VaultRequestRejected({ ...fields, code: "BadParameter" })
      case "Ambiguous":
        return new VaultAmbiguous(fields)
    }
  }

  /**
   * Run one call: take its fault, let a foreign writer in first if scripted,
   * fail before the effect, or run it and fail after (ambiguous).
   */
  const callRaw = <A, E>(
    operation: VaultOperation,
    name: string | undefined,
    body: (alter: AlterChange | undefined, stale: boolean, lagged: () => void) => Effect.Effect<A, E>,
  ): Effect.Effect<A, E | ReturnType<typeof makeError>> =>
    Effect.gen(function* () {
      const fault = faults.get(operation)?.shift()
      let lagging = false
      const record = (outcome: string) =>
        log.push({ operation, outcome, ...(lagging ? { stale: true } : {}) })
      // The foreign writer gets the same 409 we would while the name is soft-deleted.
      if (
        fault?._tag === "ForeignImport" &&
        name !== undefined &&
        certificates.get(name)?.deleted === undefined
      ) {
        const tags =
          typeof fault.tags === "function"
            ? fault.tags([...(certificates.get(name)?.versions ?? [])])
            : (fault.tags ?? {})
        yield* store(name, fault.material, tags, "foreign", true, true)
      }
      if (fault?._tag === "ForeignDelete" && fault.when === "before" && name !== undefined)
        yield* foreignDelete(name)
      if (fault?._tag === "ForeignRecover" && name !== undefined) {
        foreignRecover(name)
        if (fault.unshown === true) {
          record("NotFoundAfterForeignRecover")
          return yield* Effect.fail(
            notFound(operation, `Deleted Certificate not found: ${name} (recovered by another writer)`),
          )
        }
      }
      if (fault?._tag === "Fail") {
        record(fault.kind)
        return yield* Effect.fail(makeError(operation, fault.kind))
      }
      const result = yield* body(
        fault?._tag === "Alter" ? fault.change : undefined,
        fault?._tag === "StaleRead",
        () => {
          lagging = true
        },
      ).pipe(
        Effect.tapError((e) => Effect.sync(() => record(String((e as { _tag?: string })._tag ?? "error")))),
      )
      if (fault?._tag === "ForeignDelete" && fault.when === "after" && name !== undefined)
        yield* foreignDelete(name)
      if (fault?._tag === "AfterWrite") {
        record("AmbiguousAfterWrite")
        return yield* Effect.fail(makeError(operation, "Ambiguous"))
      }
      record("ok")
      return result
    })

  /** Like a real Vault adapter, count each request in the Metrics port when one is provided. */
  const call = <A, E extends { readonly _tag: string }>(
    operation: VaultOperation,
    name: string | undefined,
    body: (alter: AlterChange | undefined, stale: boolean, lagged: () => void) => Effect.Effect<A, E>,
  ): Effect.Effect<A, E | ReturnType<typeof makeError>> =>
    Effect.flatMap(Effect.serviceOption(Metrics), (metrics) =>
      metrics._tag === "None"
        ? callRaw(operation, name, body)
        : callRaw(operation, name, body).pipe(
            Effect.tap(() => metrics.value.vaultRequest(operation, "ok")),
            Effect.tapError((e) =>
              Effect.andThen(
                metrics.value.vaultRequest(operation, vaultRequestStatusOf(e)),
                e._tag === "VaultThrottled" ? metrics.value.vaultThrottled() : Effect.void,
              ),
            ),
          ),
    )

  const notFound = (operation: VaultOperation, what: string) => new VaultNotFound({ operation, detail: what })

  /** Key Vault's list order: by name, case-insensitively (names differing only in case: by name). */
  const listOrder = (a: string, b: string): number => {
    const x = a.toLowerCase()
    const y = b.toLowerCase()
    return x < y ? -1 : x > y ? 1 : a < b ? -1 : a > b ? 1 : 0
  }

  /** The name a continuation resumes after: undefined for the first page, null when it is not one of ours. */
  const continuationAfter = (continuation: string | undefined): string | undefined | null => {
    if (continuation === undefined) return undefined
    if (!continuation.startsWith(CONTINUATION_PREFIX)) return null
    try {
      return decodeURIComponent(continuation.slice(CONTINUATION_PREFIX.length))
    } catch {
      return null
    }
  }

  const listPage = (continuation: string | undefined) => {
    const afterName = continuationAfter(continuation)
    if (afterName === null)
      return Effect.fail(
        new VaultRequestRejected({
          operation: "listCertificates",
          code: "InvalidContinuation",
          detail:
            "the continuation is not one this vault answered: pass undefined for the first page, or the continuation the previous page answered",
        }),
      )
    const after = afterName
    const listed = [...certificates.keys()]
      .filter((name) => live(name) !== undefined && (after === undefined || listOrder(name, after) > 0))
      .sort(listOrder)
    const page = listed.slice(0, LIST_PAGE_SIZE)
    const last = page.at(-1)
    return Effect.succeed<ListedPage>({
      certificates: page.map((name) => {
        const v = latestOf(name) as StoredVersion
        return {
          name,
          x5t: v.x5t,
          enabled: v.enabled,
          tags: { ...v.tags },
          ...(v.expiresAt === undefined ? {} : { expiresAt: v.expiresAt }),
        }
      }),
      continuation:
        listed.length > LIST_PAGE_SIZE && last !== undefined
          ? `${CONTINUATION_PREFIX}${encodeURIComponent(last)}`
          : undefined,
    })
  }

  const vault: (typeof Vault)["Service"] = {
    getLatest: (name) =>
      call("getLatest", name, (_alter, stale, lagged) => {
        const v = stale ? laggingLatest(name) : observe(name, latestOf(name))
        if (stale && v?.versionId !== latestOf(name)?.versionId) lagged()
        return v === undefined
          ? Effect.flatMap(Clock.currentTimeMillis, (now) =>
              Effect.fail(
                new VaultNotFound({
                  operation: "getLatest",
                  detail: `A certificate with (name/id) ${name} was not found in this key vault`,
                  // Its Date header: the vault's clock, whole seconds.
                  answeredAtMs: wholeSecond(now).getTime(),
                }),
              ),
            )
          : Effect.map(Clock.currentTimeMillis, (now) => ({
              ...publicView(v),
              // Its Date header: the vault's clock, whole seconds.
              answeredAtMs: wholeSecond(now).getTime(),
            }))
      }),
    getVersion: (name, versionId) =>
      call("getVersion", name, () => {
        const v = live(name)?.versions.find((x) => x.versionId === versionId)
        return v === undefined
          ? Effect.fail(notFound("getVersion", `${name}/${versionId}`))
          : Effect.succeed(publicView(v))
      }),
    listVersions: (name) =>
      call("listVersions", name, (_alter, stale) => {
        const stored = certificates.get(name)
        // A name that holds no certificate, never having held one, lists no versions: 200 with an
        // empty list, as Key Vault answers (the SDK's recorded "list certificate versions,
        // non-existing") and the emulator does; only a soft-deleted certificate's list is not found.
        if (stored === undefined || (stored.deleted === undefined && stored.versions.length === 0))
          return Effect.succeed<ReadonlyArray<VaultVersion>>([])
        // A replica lagging behind the last delete lists the versions; behind the last recovery, none.
        const c =
          stale && stored?.deleted !== undefined && stored.versions.length > 0
            ? stored
            : stale && stored?.recoveredFrom !== undefined
              ? undefined
              : live(name)
        return c === undefined
          ? Effect.fail(notFound("listVersions", name))
          : Effect.succeed(
              [...c.versions].sort((a, b) => (a.versionId < b.versionId ? -1 : 1)).map(publicView),
            )
      }),
    importVersion: (request: ImportRequest) =>
      call("importVersion", request.name, (alter) =>
        Effect.gen(function* () {
          const c = certificates.get(request.name)
          if (c?.deleted !== undefined) {
            return yield* Effect.fail(
              new VaultConflictSoftDeleted({
                operation: "importVersion",
                detail: `Certificate ${request.name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the certificate can only be recovered or purged.`,
              }),
            )
          }
          if (Object.keys(request.tags).length > MAX_TAGS) {
            return yield* Effect.fail(
              new VaultRequestRejected({
                operation: "importVersion",
                code: "BadParameter",
                detail: "too many tags",
              }),
            )
          }
          const material =
            request.pem !== undefined
              ? yield* Effect.suspend(() => {
                  const read = pemImportMaterial(request.pem)
                  return typeof read === "string"
                    ? Effect.fail(
                        new VaultRequestRejected({
                          operation: "importVersion",
                          code: "BadParameter",
                          detail: `the PEM could not be read: ${read}`,
                        }),
                      )
                    : Effect.succeed(read)
                })
              : yield* codec.decode(request.pfx, request.password).pipe(
                  Effect.mapError(
                    (e) =>
                      new VaultRequestRejected({
                        operation: "importVersion",
                        code: "BadParameter",
                        detail: `the PFX could not be read: ${e.reason}`,
                      }),
                  ),
                )
          const inspected = yield* codec.inspect(material).pipe(
            Effect.mapError(
              () =>
                new VaultRequestRejected({
                  operation: "importVersion",
                  code: "BadParameter",
                  detail: "the PFX content is invalid",
                }),
            ),
          )
          if (!inspected.keyMatchesLeaf) {
            return yield* Effect.fail(
              new VaultRequestRejected({
                operation: "importVersion",
                code: "BadParameter",
                detail: "the private key does not match the certificate",
              }),
            )
          }
          const facts = request.keyFacts
          if (
            facts !== undefined &&
            (facts.keyType !== inspected.key.keyType ||
              (facts.keyType === "RSA" && facts.keySize !== inspected.key.keySize) ||
              (facts.keyType === "EC" && facts.curve !== inspected.key.curve))
          ) {
            // Key Vault refuses an import whose policy's key properties contradict the PFX's key.
            return yield* Effect.fail(
              new VaultRequestRejected({
                operation: "importVersion",
                code: "BadParameter",
                detail: "the policy's key properties do not match the certificate's key",
              }),
            )
          }
          const now = yield* Clock.currentTimeMillis
          if (inspected.leaf.notAfter.getTime() <= now) {
            return yield* Effect.fail(
              new VaultRequestRejected({
                operation: "importVersion",
                code: "BadParameter",
                detail: "the certificate has expired",
              }),
            )
          }
          const tags = alter === "drop-tags" ? {} : request.tags
          const stored = yield* store(
            request.name,
            material,
            tags,
            "deploy",
            request.exportable ?? true,
            alter !== "disable",
            alter,
            importContentTypeOfRequest(request),
          )
          return publicView(stored)
        }),
      ).pipe(
        Effect.catchTag("VaultNotFound", (e) =>
          Effect.fail(
            new VaultRequestRejected({ operation: "importVersion", code: "NotFound", detail: e.detail }),
          ),
        ),
      ),
    getVersionSecret: (name, versionId) =>
      call("getVersionSecret", name, () =>
        Effect.gen(function* () {
          if (!secretsGet) {
            return yield* Effect.fail(
              new VaultForbidden({
                operation: "getVersionSecret",
                detail: "The user, group or application does not have secrets get permission",
                permission: "secrets/get",
              }),
            )
          }
          const v = live(name)?.versions.find((x) => x.versionId === versionId)
          if (v === undefined) return yield* Effect.fail(notFound("getVersionSecret", `${name}/${versionId}`))
          if (!v.exportable) {
            return yield* Effect.fail(
              new VaultNoPrivateKey({ operation: "getVersionSecret", detail: "the key is not exportable" }),
            )
          }
          const password = Redacted.make("")
          const pfx = yield* codec
            .encode(v.material, { encoding: "modern", password })
            .pipe(Effect.orElseSucceed(() => encodeWithoutKey(v.material, "")))
          return { pfx, password } satisfies VersionSecret
        }),
      ),
    getDeleted: (name) =>
      call("getDeleted", name, (_alter, stale) => {
        const c = certificates.get(name)
        // A replica lagging behind the last delete finds none; behind the last recovery, the one it undid.
        const deleted = stale ? (c?.deleted === undefined ? c?.recoveredFrom : undefined) : c?.deleted
        const latest =
          deleted?.latestSequence === undefined
            ? undefined
            : c?.versions.find((v) => v.sequence === deleted.latestSequence)
        return deleted === undefined
          ? Effect.fail(notFound("getDeleted", `Deleted Certificate not found: ${name}`))
          : Effect.succeed<DeletedCertificate>({
              name,
              recoveryId: `deletedcertificates/${name}`,
              deletedAt: deleted.at,
              scheduledPurgeAt: deleted.scheduledPurgeAt,
              ...(latest === undefined ? {} : { latest: publicView(latest) }),
            })
      }),
    recoverDeleted: (name) =>
      call("recoverDeleted", name, () => {
        const c = certificates.get(name)
        // Key Vault's SDK reads the certificate first: one the vault serves already (another writer
        // recovered it) is answered as it is, and no recovery is sent.
        const sent = c?.deleted !== undefined
        if (c?.deleted !== undefined) {
          recover(c)
          recoveries.byPort++
        }
        const v = latestOf(name)
        if (v === undefined)
          return Effect.fail(notFound("recoverDeleted", `Deleted Certificate not found: ${name}`))
        observe(name, v)
        return Effect.succeed<RecoveredCertificate>({ version: publicView(v), sent })
      }),
    listCertificates: (continuation) =>
      call("listCertificates", undefined, () => listPage(continuation)).pipe(
        Effect.catchTag("VaultNotFound", (e) =>
          Effect.fail(
            new VaultRequestRejected({ operation: "listCertificates", code: "NotFound", detail: e.detail }),
          ),
        ),
      ),
  }

  const handle: (typeof InMemoryVaultHandle)["Service"] = {
    versions: (name) => [...(certificates.get(name)?.versions ?? [])],
    latest: latestOf,
    isSoftDeleted: (name) => certificates.get(name)?.deleted !== undefined,
    seed: (name, material, options = {}) =>
      store(
        name,
        material,
        options.tags ?? {},
        options.writer ?? "seed",
        options.exportable ?? true,
        options.enabled ?? true,
        undefined,
        options.contentType,
      ),
    softDelete: (name) => Effect.asVoid(softDelete(name)),
    recover: foreignRecover,
    foreignDeletes: () => foreignDeletes,
    recoveries: () => ({ ...recoveries }),
    script: (operation, ...more) => {
      const queue = faults.get(operation) ?? []
      queue.push(...more)
      faults.set(operation, queue)
    },
    pendingFaults: () => [...faults.values()].reduce((n, q) => n + q.length, 0),
    setSecretsGet: (granted) => {
      secretsGet = granted
    },
    calls: () => {
      const byOperation: Partial<Record<VaultOperation, number>> = {}
      for (const r of log) byOperation[r.operation] = (byOperation[r.operation] ?? 0) + 1
      return { total: log.length, byOperation }
    },
    callLog: () => [...log],
    resetCalls: () => {
      log.length = 0
    },
  }
  return { vault, handle }
})

/** The in-memory vault: provides `Vault` and `InMemoryVaultHandle`; requires a `PfxCodec`. */
export const InMemoryVault = {
  layer: Layer.effectContext(
    Effect.map(make, ({ vault, handle }) =>
      Context.make(Vault, vault).pipe(Context.add(InMemoryVaultHandle, handle)),
    ),
  ),
} as const
