/**
 * core's `Vault` port over `@azure/keyvault-certificates` and
 * `@azure/keyvault-secrets`.
 *
 * One Key Vault request per port call (the SDK's pollers aside), so a deploy
 * costs three round trips and an unchanged certificate one. Every call is
 * counted in `kvdeploy_vault_requests_total{operation,status}`, every HTTP
 * request the SDKs send (each retry, the challenge's 401, later pages, poller
 * reads) in `kvdeploy_vault_http_requests_total{operation,status}`, and every
 * 429 the vault sends (including those the SDK retries) in
 * `kvdeploy_vault_throttled_total`; this adapter is the only recorder of
 * those three series (core's deploy program does not record them).
 */
import { hash, X509Certificate } from "node:crypto"
import { Agent } from "node:https"
import { createSecureContext, rootCertificates } from "node:tls"
import type { TokenCredential } from "@azure/core-auth"
import { getDefaultProxySettings, isRestError } from "@azure/core-rest-pipeline"
import {
  CertificateClient,
  type CertificateClientOptions,
  type CertificateProperties,
  type KeyVaultCertificate,
  type KeyVaultCertificateWithPolicy,
  type ListPropertiesOfCertificatesOptions,
} from "@azure/keyvault-certificates"
import { SecretClient, type SecretClientOptions } from "@azure/keyvault-secrets"
import {
  type CertificateMaterial,
  type CertificateOperation,
  type DeletedCertificate,
  type ImportKeyFacts,
  type ImportRequest,
  importContentTypeOfRequest,
  type ListedCertificate,
  type ListedPage,
  type MaterialInvalid,
  Metrics,
  PfxCodec,
  type PfxDecodeError,
  type PfxEncodeError,
  type RecoveredCertificate,
  type TargetConfig,
  type UnusableListEntry,
  Vault,
  VaultAmbiguous,
  type VaultError,
  type VaultHttpOperation,
  type VaultHttpStatus,
  VaultMalformedAnswer,
  VaultNoPrivateKey,
  type VaultOperation,
  VaultRequestRejected,
  type VaultVersion,
  type VersionSecret,
  vaultRequestStatusOf,
} from "@kvdeploy/core"
import { agentOutOfLogs } from "@kvdeploy/credentials/agentOutOfLogs"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import { identity } from "effect/Function"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { certificateListPolicy, isContinuationOf } from "./certificateListPage.js"
import { type SerialHexReader, serialHexReader, withSerialReadOnDemand } from "./certificateSerial.js"
import { httpRequestObserver } from "./httpRequests.js"
import {
  type ImportContentType,
  importPolicyFor,
  importPolicyHeader,
  importPolicyInjection,
  nonIdempotentImport,
  throttleObserver,
} from "./importPolicy.js"
import { latestNotFound } from "./notFoundPolicy.js"
import { defaultMaxRetryAfterMs, retryAfterCap } from "./retryAfterCap.js"
import { connectionsOf, VaultConnections } from "./VaultConnections.js"
import { inVaultCall, type VaultCall, vaultCall, vaultCallPolicy } from "./vaultCall.js"
import {
  answeredAtMsOf,
  type MappedVaultError,
  toVaultError,
  withoutNotFound,
  withoutSoftDeleted,
} from "./vaultFailure.js"

/** Key Vault's largest page (and its default): one list request answers at most 25 certificates. */
export const CERTIFICATE_LIST_PAGE_SIZE = 25

/**
 * The most versions a version list is followed for (2,000 pages of Key Vault's 25): a certificate
 * renewed every day for a century has fewer. A list that goes on past it is not Key Vault's.
 */
export const MAX_LISTED_VERSIONS = 50_000

/**
 * The most pages a version list is followed for: as many as MAX_LISTED_VERSIONS fill. A list whose
 * next links are each new but lead to empty pages (a proxy's, a faulty service's) ends here.
 */
export const MAX_LISTED_VERSION_PAGES = MAX_LISTED_VERSIONS / CERTIFICATE_LIST_PAGE_SIZE

/** A read's failure in a few words, as core's errors say it (the recovery's read, after the vault accepted it). */
const readFailureWords: Readonly<Record<MappedVaultError["_tag"], string>> = {
  VaultNotFound: "not found",
  VaultForbidden: "forbidden",
  VaultThrottled: "throttled",
  VaultConflictSoftDeleted: "the name is held by a soft-deleted certificate",
  VaultAmbiguous: "outcome unknown",
  VaultUnavailable: "unavailable",
  VaultRequestRejected: "refused",
}

export interface AzureKeyVaultOptions {
  /** `https://<name>.vault.azure.net` (or the custom cloud's URL); scheme, host and port only. */
  readonly vaultUrl: string
  readonly credential: TokenCredential
  /**
   * The vault lives in a custom cloud (Azure Stack Hub, a private deployment,
   * the emulator): its host does not end in the Key Vault resource's domain, so
   * the SDK's challenge resource verification is turned off. Never set it for
   * the public, US Government or China clouds.
   */
  readonly customCloud?: boolean | undefined
  /**
   * Extra CA certificates (PEM) to trust for this vault, on top of Node's
   * default roots (a private cloud's CA, the emulator's CA).
   */
  readonly trustedCaPem?: string | ReadonlyArray<string> | undefined
  /**
   * At most this many connections to the vault at once (a whole number of at
   * least 1; default: no limit); a request beyond it waits for a connection to
   * come free, and that wait counts towards `requestTimeoutMs`. A long-running
   * caller that bounds its own requests per vault (the agent) sets its bound
   * here: an idle keep-alive TLS connection holds about 100 KB of native
   * buffers, and without a limit a burst opened more connections than requests
   * in flight (the next request starts before the last one's socket is back in
   * the pool). Behind a proxy from the environment the SDK's proxy agent owns
   * the connections and this has no effect.
   */
  readonly maxConnections?: number | undefined
  /** Per-request timeout (default 30 s). A timed-out import is ambiguous. */
  readonly requestTimeoutMs?: number | undefined
  /** The SDK's retry policy (429/503 with Retry-After, 5xx and transport errors; imports excepted, see importPolicy.ts). */
  readonly retry?:
    | {
        readonly maxRetries?: number | undefined
        readonly retryDelayInMs?: number | undefined
        readonly maxRetryDelayInMs?: number | undefined
        /**
         * The longest Retry-After the SDK waits on before a retry (default 60 s; see
         * retryAfterCap.ts): a 429 asking for longer fails at once, saying the wait it asked for.
         */
        readonly maxRetryAfterInMs?: number | undefined
      }
    | undefined
  /** How often the recover poller checks that a recovered certificate is readable (default 2 s). */
  readonly recoverPollIntervalMs?: number | undefined
  /**
   * How long a recovery may take to become readable (default 5 minutes). The SDK's poller reads
   * the certificate until it is served, with no end of its own; past this, `recoverDeleted` fails
   * `VaultAmbiguous` (the recovery was sent and may still finish) and the deploy program reads
   * whether it did.
   */
  readonly recoverTimeoutMs?: number | undefined
  /**
   * Record `kvdeploy_vault_requests_total` per call, `kvdeploy_vault_http_requests_total` per
   * HTTP request and `kvdeploy_vault_throttled_total` per 429 through the Metrics port (default
   * true). This adapter is the only recorder of those three series (core's deploy program records the deploy
   * series and counts calls only for its outcome), so `false` leaves them
   * empty: only for a composition that counts requests some other way.
   */
  readonly recordMetrics?: boolean | undefined
}

const keyVaultBytesToBase64url = (bytes: Uint8Array | undefined): string =>
  bytes === undefined
    ? ""
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64url")

/**
 * A version's x5t: as the answer states it, or, when it states none but carries the certificate
 * (`cer`), that certificate's SHA-1, which is what Key Vault's x5t is.
 */
const x5tOf = (properties: CertificateProperties, cer: Uint8Array | undefined): string => {
  const stated = keyVaultBytesToBase64url(properties.x509Thumbprint)
  return stated !== "" || cer === undefined || cer.byteLength === 0 ? stated : hash("sha1", cer, "base64url")
}

/** An answer the port cannot report: what it lacks or contradicts, in a few words. */
class Unusable {
  constructor(readonly detail: string) {}
}

/**
 * What an answer about one version lacks of the facts the port reports (none: an empty list). Key
 * Vault sends every one of them, so each would otherwise be made up: an id without a version, a
 * creation time of 1970, an `enabled` flag of true, a blank x5t or serial that verify would read as
 * another certificate. `shape` says whether the answer carries the certificate (`bundle`: a read, an
 * import's answer) or not (`item`: a version list's entry). A version without a certificate and
 * without an x5t is one whose create is still pending, which Key Vault shows disabled.
 */
const lackingFacts = (
  properties: CertificateProperties,
  x5t: string,
  cer: Uint8Array | undefined,
  shape: "bundle" | "item",
  name: string | undefined,
): Array<string> => {
  const lacking: Array<string> = []
  if (properties.version === undefined || properties.version === "") lacking.push("a version in its `id`")
  else if (name !== undefined && properties.name?.toLowerCase() !== name.toLowerCase())
    lacking.push(`its own name (its \`id\` names the certificate "${properties.name ?? ""}", not "${name}")`)
  if (properties.enabled === undefined) lacking.push("`attributes.enabled`")
  if (properties.createdOn === undefined) lacking.push("`attributes.created`")
  const hasCer = cer !== undefined && cer.byteLength > 0
  if (shape === "bundle" && !hasCer && x5t !== "") lacking.push("`cer` (it states an `x5t`)")
  else if (x5t === "" && !hasCer && properties.enabled !== false)
    lacking.push("`x5t` (only a disabled version, whose create is pending, has no certificate)")
  return lacking
}

const versionFromProperties = (
  properties: CertificateProperties,
  cer: Uint8Array | undefined,
  serialHexOf: SerialHexReader,
  shape: "bundle" | "item",
  name: string | undefined,
  contentType?: string,
): VaultVersion | Unusable => {
  const x5t = x5tOf(properties, cer)
  const lacking = lackingFacts(properties, x5t, cer, shape, name)
  if (lacking.length > 0) return new Unusable(`it lacks ${lacking.join(", ")}`)
  // A certificate whose serial is in the reader's memory (the one a deploy imports, whose serial it
  // stated, or one read before) gets it as a plain field.
  const withCer = cer !== undefined && cer.byteLength > 0 ? cer : undefined
  const known = withCer === undefined ? undefined : serialHexOf.known(withCer)
  const version = {
    versionId: properties.version ?? "",
    x5t,
    // The versions listing carries no certificate: its serial is unknown there ("").
    serialHex: known ?? "",
    enabled: properties.enabled ?? false,
    createdAt: properties.createdOn ?? new Date(Number.NaN),
    // Key Vault leaves `tags` out of an answer about an object that has none.
    tags: { ...(properties.tags ?? {}) },
    ...(withCer === undefined ? {} : { cer: withCer }),
    ...(properties.expiresOn === undefined ? {} : { expiresAt: properties.expiresOn }),
    ...(properties.notBefore === undefined ? {} : { notBefore: properties.notBefore }),
    ...(contentType === undefined ? {} : { contentType }),
  }
  // The serial is read from the certificate when first asked for: a caller that compares only
  // x5t, tags and enabled (the agent's no-change check) parses nothing.
  return withCer === undefined || known !== undefined
    ? version
    : withSerialReadOnDemand(version, withCer, serialHexOf)
}

/** A deleted certificate's `latest`, when its bundle says what a version is reported with. */
const latestOf = (version: VaultVersion | Unusable): { readonly latest?: VaultVersion } =>
  version instanceof Unusable ? {} : { latest: version }

/** A list item: its latest version's x5t, enabled and tags, read as getLatest reads them. */
const listedFromProperties = (properties: CertificateProperties): ListedCertificate | Unusable => {
  const x5t = x5tOf(properties, undefined)
  if (properties.enabled === undefined) return new Unusable("it lacks `attributes.enabled`")
  if (x5t === "" && properties.enabled)
    return new Unusable("it lacks `x5t` (only a disabled certificate, whose create is pending, has none)")
  return {
    // The SDK reads the name from the item's id (it throws on an id without one).
    name: properties.name ?? "",
    x5t,
    enabled: properties.enabled,
    tags: { ...(properties.tags ?? {}) },
    ...(properties.expiresOn === undefined ? {} : { expiresAt: properties.expiresOn }),
    ...(properties.updatedOn === undefined ? {} : { updatedAt: properties.updatedOn }),
  }
}

const pemBlocks = (pem: string, label: string): Uint8Array[] => {
  const re = new RegExp(`-----BEGIN ${label}-----([A-Za-z0-9+/=\\s]+?)-----END ${label}-----`, "g")
  const out: Uint8Array[] = []
  for (const m of pem.matchAll(re))
    out.push(new Uint8Array(Buffer.from((m[1] ?? "").replace(/\s+/g, ""), "base64")))
  return out
}

/** The material of a PEM import's text (certificates, the first the leaf; the PKCS#8 key), to read its key facts. */
const materialOfPem = (pem: Uint8Array): Effect.Effect<CertificateMaterial, "unreadable"> => {
  const text = Buffer.from(pem).toString("ascii")
  const [leaf, ...chain] = pemBlocks(text, "CERTIFICATE")
  const key = pemBlocks(text, "PRIVATE KEY")[0]
  return leaf === undefined || key === undefined
    ? Effect.fail("unreadable")
    : Effect.succeed({ leaf, chain, key: Redacted.make(key) })
}

/**
 * What the codec found in material it could not read, without its fixes (they are for a file of
 * one's own, not for a secret the vault holds): each problem's field and finding.
 */
const foundIn = (problems: MaterialInvalid["problems"]): string =>
  problems.map((p) => `${p.field}: ${p.message}`).join("; ")

/** The problems of a codec failure caused by material it could not read (MaterialInvalid), if it was. */
const problemsOf = (cause: unknown): MaterialInvalid["problems"] | undefined =>
  typeof cause === "object" && cause !== null && (cause as { _tag?: unknown })._tag === "MaterialInvalid"
    ? (cause as MaterialInvalid).problems
    : undefined

/**
 * Why `trustedCaPem` cannot be trusted as given, or undefined: each entry must be PEM text holding
 * at least one certificate, and every certificate block must read as one (Node's TLS context
 * silently skips text that is none, so a wrong value surfaced only as a refused connection later).
 * The value is not repeated: a key pasted by mistake must not reach an error.
 */
const trustedCaProblem = (extra: string | ReadonlyArray<string>): string | undefined => {
  const entries: ReadonlyArray<unknown> = typeof extra === "string" ? [extra] : extra
  for (const [i, entry] of entries.entries()) {
    const which = typeof extra === "string" ? "" : `[${i}]`
    if (typeof entry !== "string") return `${which} is not a string of PEM text`
    const blocks = entry.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []
    if (blocks.length === 0) return `${which} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`
    for (const [j, block] of blocks.entries()) {
      try {
        new X509Certificate(block)
      } catch {
        return `${which} holds a certificate block (number ${j + 1}) that does not read as a certificate`
      }
    }
  }
  return undefined
}

/** The CA list for the SDK's https agent: Node's roots plus the extra ones. */
const caList = (extra: string | ReadonlyArray<string>): string[] => [
  ...rootCertificates,
  ...(typeof extra === "string" ? [extra] : extra),
]

/** A vault adapter: the port, and the keep-alive connections its clients share. */
export interface AzureKeyVaultHandle {
  readonly vault: Vault["Service"]
  readonly connections: VaultConnections["Service"]
}

/**
 * Build the Vault service for one vault with its connections handle (for a
 * long-running caller that closes idle sockets between passes:
 * `handle.connections.releaseIdle`). Needs Metrics (per-request counts) and
 * PfxCodec (key facts, backing secrets).
 */
export const makeWithConnections = Effect.fn("AzureKeyVault.makeWithConnections")(function* (
  options: AzureKeyVaultOptions,
) {
  const metrics = yield* Metrics
  const codec = yield* PfxCodec
  const timeout = options.requestTimeoutMs ?? 30_000
  // A refused TLS certificate's advice names trustedCaPem instead of NODE_EXTRA_CA_CERTS when given.
  const trusted = options.trustedCaPem !== undefined
  const caProblem = options.trustedCaPem === undefined ? undefined : trustedCaProblem(options.trustedCaPem)
  if (caProblem !== undefined)
    return yield* Effect.die(
      new TypeError(
        `AzureKeyVaultOptions.trustedCaPem${caProblem}; give the CA certificates to trust as PEM text (the emulator's caPem, a private cloud's CA file read as text), or leave it out for Node's default roots`,
      ),
    )
  const maxConnections = options.maxConnections
  if (maxConnections !== undefined && !(Number.isSafeInteger(maxConnections) && maxConnections > 0))
    return yield* Effect.die(
      new RangeError(
        `AzureKeyVaultOptions.maxConnections must be a whole number of at least 1 (got ${String(maxConnections)}); leave it out for no limit`,
      ),
    )
  // Remembers the certificates of as many deploys as may be in flight at once: each deploy's verify
  // read answers the leaf its import stated, and with 16 deploys of a vault in progress (the agent) a
  // memory of 8 had forgotten it by then, so the read parsed it again. At most 256 entries (a map keyed by
  // each certificate's SHA-1, see certificateSerial.ts).
  const serialHexOf = serialHexReader(Math.min(256, Math.max(8, 2 * (maxConnections ?? 32))))
  /** A certificate bundle (a read's, an import's or a recovery's answer) as the port's version, for `name`. */
  const versionFromCertificate =
    (name: string) =>
    (certificate: KeyVaultCertificate): VaultVersion | Unusable =>
      versionFromProperties(
        certificate.properties,
        certificate.cer,
        serialHexOf,
        "bundle",
        name,
        // A read of the latest version (and an import's answer) carries the certificate's policy.
        (certificate as Partial<KeyVaultCertificateWithPolicy>).policy?.contentType,
      )
  const recording = options.recordMetrics !== false
  const onThrottled = () => {
    if (recording) Effect.runFork(metrics.vaultThrottled())
  }
  const onHttpRequest = (operation: VaultHttpOperation, status: VaultHttpStatus) => {
    if (recording) Effect.runFork(metrics.vaultHttpRequest(operation, status))
  }
  // Behind a proxy from the environment (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY) the SDK's proxy
  // policy must choose the agent: it leaves a request alone when an agent is already set, so an
  // agent of ours would send every request around the proxy. The SDK's proxy agent then owns the
  // connections, and `releaseIdle` has none to close. With extra CAs (a custom cloud or the
  // emulator) the adapter keeps its own agent, as it always has.
  const agent =
    options.trustedCaPem === undefined && getDefaultProxySettings() !== undefined
      ? undefined
      : new Agent({
          keepAlive: true,
          ...(maxConnections === undefined ? {} : { maxSockets: maxConnections }),
          // One TLS context for every connection: without one, each new connection builds its own
          // from Node's whole root list (about 0.3 ms, and memory per idle connection). Without
          // `trustedCaPem` it holds Node's default roots (NODE_EXTRA_CA_CERTS included), as a
          // connection's own would.
          secureContext: createSecureContext(
            options.trustedCaPem === undefined ? {} : { ca: caList(options.trustedCaPem) },
          ),
        })
  const common = {
    ...(options.customCloud === true ? { disableChallengeResourceVerification: true } : {}),
    // One keep-alive agent per adapter, shared by both clients, so that `VaultConnections` can
    // release its idle sockets. With extra CAs it has one prebuilt TLS context: passing
    // `tlsOptions.ca` (Node's ~140 roots plus the extra CA) costs several milliseconds per
    // request, as the agent keys its sockets by it.
    ...(agent === undefined ? {} : { agent }),
    ...(options.retry === undefined
      ? {}
      : {
          retryOptions: {
            ...(options.retry.maxRetries === undefined ? {} : { maxRetries: options.retry.maxRetries }),
            ...(options.retry.retryDelayInMs === undefined
              ? {}
              : { retryDelayInMs: options.retry.retryDelayInMs }),
            ...(options.retry.maxRetryDelayInMs === undefined
              ? {}
              : { maxRetryDelayInMs: options.retry.maxRetryDelayInMs }),
          },
        }),
    userAgentOptions: { userAgentPrefix: "kvdeploy" },
  }
  // Outermost of the per-retry policies: the retry policy reads the wait it leaves on an answer.
  const capRetryAfter = retryAfterCap(options.retry?.maxRetryAfterInMs ?? defaultMaxRetryAfterMs)
  const certificates = new CertificateClient(options.vaultUrl, options.credential, {
    ...common,
    additionalPolicies: [
      { policy: agentOutOfLogs, position: "perCall" },
      { policy: importPolicyInjection, position: "perCall" },
      { policy: vaultCallPolicy, position: "perCall" },
      { policy: certificateListPolicy, position: "perCall" },
      { policy: latestNotFound, position: "perCall" },
      { policy: capRetryAfter, position: "perRetry" },
      { policy: nonIdempotentImport, position: "perRetry" },
      { policy: throttleObserver(onThrottled), position: "perRetry" },
      // Last: the innermost per-retry policy, it sees each attempt's answer as the vault sent it.
      { policy: httpRequestObserver(onHttpRequest), position: "perRetry" },
    ],
  } satisfies CertificateClientOptions)
  const secrets = new SecretClient(options.vaultUrl, options.credential, {
    ...common,
    additionalPolicies: [
      { policy: agentOutOfLogs, position: "perCall" },
      { policy: capRetryAfter, position: "perRetry" },
      { policy: throttleObserver(onThrottled), position: "perRetry" },
      { policy: httpRequestObserver(onHttpRequest), position: "perRetry" },
    ],
  } satisfies SecretClientOptions)

  const requestOptions = { requestOptions: { timeout } }
  /** Whether the SDK retries (its default, 3 retries): failures it retried are marked so core does not retry them again. */
  const sdkRetries = options.retry?.maxRetries !== 0

  /**
   * A read's failure that is the SDK failing on an answer it was given: a TypeError its conversion
   * of the answer throws (an `id` it cannot split). Transport failures and the vault's refusals come
   * as RestErrors; Node's own TypeErrors before a request is sent (an invalid header or URL) carry a
   * `code` (ERR_INVALID_CHAR, ERR_INVALID_URL) and keep their mapping.
   */
  const answerFailure = (operation: VaultOperation, error: unknown): VaultMalformedAnswer | undefined =>
    error instanceof TypeError && !isRestError(error) && (error as { code?: unknown }).code === undefined
      ? new VaultMalformedAnswer({
          operation,
          detail: `the SDK failed on it (${error.message}), which Key Vault's answers do not make it do: a proxy or service between this machine and the vault may have changed the answer`,
        })
      : undefined

  /** Run one SDK call, map its failure. */
  const call = <A>(
    operation: VaultOperation,
    kind: "read" | "write",
    run: (signal: AbortSignal) => Promise<A>,
  ) =>
    Effect.tryPromise({
      try: run,
      catch: (error) =>
        (kind === "read" ? answerFailure(operation, error) : undefined) ??
        withoutSoftDeleted(toVaultError(operation, kind, error, sdkRetries, timeout, trusted)),
    })

  /**
   * The failure for an answer the port cannot report. After a write (an import, a recovery) the
   * request took effect, and what it created is not known from the answer: ambiguous, so the
   * deploy program reads what the vault holds. After a read nothing changed.
   */
  const unusable = (
    operation: VaultOperation,
    { detail }: Unusable,
  ): VaultMalformedAnswer | VaultAmbiguous =>
    operation === "importVersion" || operation === "recoverDeleted"
      ? new VaultAmbiguous({
          operation,
          detail: `the vault answered that it was done, but its answer cannot be used (${detail}), so what it holds now is read instead`,
        })
      : new VaultMalformedAnswer({
          operation,
          detail: `${detail}. Key Vault sends this; a proxy or service between this machine and the vault may have changed the answer`,
        })

  /**
   * Count the call's outcome (one match, not a tap and a tapError) and map its answer; an answer
   * the port cannot report fails the call (see `unusable`) and is counted as such.
   */
  const countedAs = <A, B, E extends { readonly _tag: string }, R>(
    operation: VaultOperation,
    effect: Effect.Effect<A, E, R>,
    answer: (a: A) => B | Unusable,
  ): Effect.Effect<B, E | VaultMalformedAnswer | VaultAmbiguous, R> =>
    recording
      ? Effect.matchEffect(effect, {
          onFailure: (error) =>
            Effect.andThen(metrics.vaultRequest(operation, vaultRequestStatusOf(error)), Effect.fail(error)),
          onSuccess: (a) => {
            const b = answer(a)
            if (!(b instanceof Unusable)) return Effect.as(metrics.vaultRequest(operation, "ok"), b)
            const error = unusable(operation, b)
            return Effect.andThen(
              metrics.vaultRequest(operation, vaultRequestStatusOf(error)),
              Effect.fail(error),
            )
          },
        })
      : Effect.flatMap(effect, (a) => {
          const b = answer(a)
          return b instanceof Unusable ? Effect.fail(unusable(operation, b)) : Effect.succeed(b)
        })

  const counted = <A, E extends { readonly _tag: string }, R>(
    operation: VaultOperation,
    effect: Effect.Effect<A, E, R>,
  ): Effect.Effect<A, E | VaultMalformedAnswer | VaultAmbiguous, R> => countedAs(operation, effect, identity)

  /** The key facts for the policy: as the caller states them (core's deploy program does), else read from the PFX. */
  const keyFactsOf = (request: ImportRequest) =>
    request.keyFacts !== undefined
      ? Effect.succeed<ImportKeyFacts | undefined>(request.keyFacts)
      : (request.pem !== undefined
          ? materialOfPem(request.pem)
          : (codec.decode(request.pfx, request.password) as Effect.Effect<CertificateMaterial, unknown>)
        ).pipe(
          Effect.flatMap((material) => codec.inspect(material)),
          Effect.map((inspected): ImportKeyFacts | undefined => inspected.key),
          // Without key facts the policy leaves kty/size/curve for Key Vault to read from the PFX.
          Effect.orElseSucceed(() => undefined),
        )

  /**
   * Newest first by creation time, for readers of the list. Key Vault keeps
   * creation times in whole seconds and lists versions by version id, so
   * within one second this is the vault's order, which says nothing about
   * which was created first; core's deploy program does not use the order.
   */
  const newestFirst = (a: VaultVersion, b: VaultVersion): number =>
    b.createdAt.getTime() - a.createdAt.getTime()

  // The port's calls are plain effects: no span and no stack capture per call (what
  // Effect.fn adds), as core's deploy program does on its common path. Wrap a deploy in
  // Effect.withSpan to trace it.
  const getLatest = (name: string) => {
    // When the vault answered (its Date header): core compares a delete's stamp with it, by the
    // vault's own clock.
    let answeredAtMs: number | undefined
    return countedAs(
      "getLatest",
      call("getLatest", "read", (abortSignal) =>
        certificates.getCertificate(name, {
          ...requestOptions,
          abortSignal,
          onResponse: (response) => {
            answeredAtMs = answeredAtMsOf(response.headers)
          },
        }),
      ),
      (certificate) => {
        const version = versionFromCertificate(name)(certificate)
        return version instanceof Unusable || answeredAtMs === undefined
          ? version
          : { ...version, answeredAtMs }
      },
    )
  }

  const getVersion = (name: string, versionId: string) =>
    countedAs(
      "getVersion",
      call("getVersion", "read", (abortSignal) =>
        certificates.getCertificateVersion(name, versionId, { ...requestOptions, abortSignal }),
      ),
      (certificate) => {
        const version = versionFromCertificate(name)(certificate)
        return version instanceof Unusable || version.versionId.toLowerCase() === versionId.toLowerCase()
          ? version
          : new Unusable(`it is about version ${version.versionId}, not the ${versionId} asked for`)
      },
    )

  const listVersions = (name: string) =>
    countedAs(
      "listVersions",
      // In a port call's context: the SDK sends the pages after the first with no options, and the
      // context gives them the call's abort signal and timeout (vaultCall.ts).
      call("listVersions", "read", (abortSignal) =>
        inVaultCall(vaultCall(abortSignal, timeout), async () => {
          const out: CertificateProperties[] = []
          const seen = new Set<string>()
          let pages = 0
          for await (const page of certificates
            .listPropertiesOfCertificateVersions(name, { ...requestOptions, abortSignal })
            .byPage()) {
            // Key Vault lists each version once, on pages its nextLinks chain to an end. A next page
            // that leads back, or on and on to empty pages (a proxy's or a faulty service's), would be
            // followed for good.
            if (++pages > MAX_LISTED_VERSION_PAGES)
              return new Unusable(
                `it did not end after ${MAX_LISTED_VERSION_PAGES} pages (${out.length} versions listed)`,
              )
            for (const properties of page) {
              const id = properties.version ?? ""
              if (id !== "" && seen.has(id))
                return new Unusable(
                  `it lists version ${id} twice (a next-page link leads back to an earlier page)`,
                )
              if (out.length >= MAX_LISTED_VERSIONS)
                return new Unusable(`it did not end after ${MAX_LISTED_VERSIONS} versions`)
              seen.add(id)
              out.push(properties)
            }
          }
          return out
        }),
      ),
      (all) => {
        if (all instanceof Unusable) return all
        const versions: Array<VaultVersion> = []
        for (const properties of all) {
          const version = versionFromProperties(properties, undefined, serialHexOf, "item", name)
          if (version instanceof Unusable)
            return new Unusable(
              `its entry ${properties.version === undefined ? "without a version" : `for version ${properties.version}`}: ${version.detail}`,
            )
          versions.push(version)
        }
        return versions.sort(newestFirst)
      },
    )

  /** The encoded policy header per key facts and exportability (a handful of distinct values). */
  const policyHeaders = new Map<string, string>()
  const policyHeaderFor = (
    keyFacts: ImportKeyFacts | undefined,
    exportable: boolean,
    contentType: ImportContentType,
  ): string => {
    const key = `${keyFacts?.keyType}/${keyFacts?.keySize}/${keyFacts?.curve}/${exportable}/${contentType}`
    let header = policyHeaders.get(key)
    if (header === undefined) {
      const policy = importPolicyFor(keyFacts ?? { keyType: "RSA" }, exportable, contentType)
      const wirePolicy =
        keyFacts === undefined
          ? { ...policy, key_props: { exportable: policy.key_props.exportable, reuse_key: false } }
          : policy
      header = Buffer.from(JSON.stringify(wirePolicy)).toString("base64url")
      policyHeaders.set(key, header)
    }
    return header
  }

  const importWith = (request: ImportRequest, keyFacts: ImportKeyFacts | undefined) => {
    // The leaf's serial as the caller read it: the import's answer and the verify read carry the
    // same bytes, so neither parses them again (an OpenSSL parse on the deploy's path otherwise).
    if (request.leaf !== undefined) serialHexOf.remember(request.leaf.der, request.leaf.serialHex)
    const contentType = importContentTypeOfRequest(request)
    const headers = {
      [importPolicyHeader]: policyHeaderFor(keyFacts, request.exportable ?? true, contentType),
    }
    return countedAs(
      "importVersion",
      Effect.tryPromise({
        catch: (error) =>
          withoutNotFound(toVaultError("importVersion", "write", error, sdkRetries, timeout, trusted)),
        try: (abortSignal) =>
          request.pem !== undefined
            ? // PEM: the SDK sends the text as is when the options' policy says PEM (it puts that policy
              // on no wire: the pipeline policy writes the whole policy, its content type PEM).
              certificates.importCertificate(request.name, request.pem, {
                policy: { contentType },
                tags: { ...request.tags },
                abortSignal,
                requestOptions: { timeout, headers },
              })
            : certificates.importCertificate(request.name, request.pfx, {
                password: Redacted.value(request.password),
                tags: { ...request.tags },
                abortSignal,
                requestOptions: { timeout, headers },
              }),
      }),
      versionFromCertificate(request.name),
    )
  }

  const importVersion = (request: ImportRequest) =>
    request.keyFacts !== undefined
      ? importWith(request, request.keyFacts)
      : Effect.flatMap(keyFactsOf(request), (keyFacts) => importWith(request, keyFacts))

  const noPrivateKey = (detail: string) => new VaultNoPrivateKey({ operation: "getVersionSecret", detail })
  /** What to do about a backing secret that was read but cannot be restored from. */
  const restoreOrKeep =
    "restore the version from a copy of its certificate and key, or keep its key (key history: kvdeploy deploy --previous-key)"
  /** Said of a backing secret Key Vault does not serve (it re-protects and checks every one it holds). */
  const notServed = `Key Vault serves no such backing secret, so a proxy or service between this machine and the vault may have changed the answer: ${restoreOrKeep}`
  /**
   * A backing secret that holds a private key but no certificate the key belongs to. Key Vault
   * imports no such pair (it checks the key against the certificates), so it is an answer Key Vault
   * does not send: malformed, and never "no private key" (the key is there, so it was exportable),
   * which the rollback and doctor would repeat as "not exportable". PFX and PEM alike.
   */
  const keyOfNoCertificate = (form: "PEM" | "PFX", name: string, versionId: string, held = "") =>
    new VaultMalformedAnswer({
      operation: "getVersionSecret",
      detail: `the ${form} backing secret of ${name}/${versionId} holds a private key but no certificate it belongs to${held}, so the version cannot be restored from it (the key is there: it is not a key that cannot be exported). Key Vault imports no such pair, so a proxy or service between this machine and the vault may have changed the answer: ${restoreOrKeep}`,
      unrestorable: true,
    })
  /**
   * A backing secret that holds a key but cannot be restored from, for another reason than a key
   * of no certificate: never "no private key" either (the rollback and doctor would say "not
   * exportable", and an exportable key is what kvdeploy imports). Key Vault re-protects every
   * backing secret with a blank password, so a PFX that does not open with it, or that is no PFX,
   * is not an answer Key Vault sends; one that uses what the codec does not read is kvdeploy's
   * limit, said as such.
   */
  const unrestorable = (
    form: "PEM" | "PFX",
    name: string,
    versionId: string,
    failure: PfxDecodeError | PfxEncodeError,
  ) => {
    // The codec's finding, without its fix: the fix is for a file of one's own (re-export it, check
    // it with openssl), not for a secret the vault holds. Unreadable material comes with its
    // problems, whose fields and findings are said without their fixes.
    const invalid = failure._tag === "PfxEncodeError" ? problemsOf(failure.cause) : undefined
    const found = invalid !== undefined ? `unreadable material: ${foundIn(invalid)}` : failure.finding
    const what =
      failure._tag === "PfxEncodeError"
        ? // An encode fails on a pair Key Vault refuses at import: not an answer it sends either.
          `cannot be made into a PFX (${found}), so the version cannot be restored from it. ${notServed}`
        : failure.reason === "wrong-password"
          ? `does not open with the blank password Key Vault re-protects backing secrets with (${found}), so the version cannot be restored from it. ${notServed}`
          : failure.reason === "unsupported"
            ? `uses what kvdeploy's PFX reader does not support (${found}), so the version cannot be restored from it: ${restoreOrKeep}`
            : `cannot be read as a PFX (${found}), so the version cannot be restored from it. ${notServed}`
    return new VaultMalformedAnswer({
      operation: "getVersionSecret",
      detail: `the ${form} backing secret of ${name}/${versionId} ${what}`,
      unrestorable: true,
      ...(failure.cause === undefined ? {} : { cause: failure.cause }),
    })
  }
  /**
   * The material of a PEM backing secret: the leaf is the certificate the key belongs to, as the
   * codec's PFX decode takes it (Key Vault serves the order an import with preserveCertOrder sent,
   * so a CA can come first); the others are the chain, which the codec orders when it builds. The
   * codec's inspection judges each pairing (its key/certificate check, the one its decode and
   * encode make), the first certificate first: the usual leaf, whose analysis the build then
   * reuses. `undefined`: the key belongs to none of them.
   */
  const pemMaterialByKey = Effect.fnUntraced(function* (
    certificates: ReadonlyArray<Uint8Array>,
    key: Redacted.Redacted<Uint8Array>,
  ) {
    for (const [i, leaf] of certificates.entries()) {
      const material: CertificateMaterial = {
        leaf,
        chain: certificates.filter((_, j) => j !== i),
        key,
      }
      if ((yield* codec.inspect(material)).keyMatchesLeaf) return material
    }
    return undefined
  })

  const getVersionSecret = Effect.fnUntraced(function* (name: string, versionId: string) {
    return yield* Effect.gen(function* () {
      const secret = yield* call("getVersionSecret", "read", (abortSignal) =>
        secrets.getSecret(name, { version: versionId, ...requestOptions, abortSignal }),
      )
      // The SDK passes the answer's `value` through as it came: a proxy's answer may hold a number.
      const raw: unknown = secret.value
      const value = typeof raw === "string" ? raw : ""
      // A backing secret always has a text value; one without is not "no private key", it is no answer.
      if (value === "")
        return yield* Effect.fail(
          unusable(
            "getVersionSecret",
            new Unusable(
              `the backing secret of ${name}/${versionId} has no ${raw === undefined || raw === null || raw === "" ? "value" : `text value (its value is a ${typeof raw})`}`,
            ),
          ),
        )
      const pem = value.includes("-----BEGIN")
      // Its value was read, and holds nothing to restore from: unrestorable, not unread.
      if (secret.properties.contentType === "application/x-pem-file" && !pem)
        return yield* Effect.fail(
          new VaultMalformedAnswer({
            operation: "getVersionSecret",
            detail: `the backing secret of ${name}/${versionId} says it is PEM (application/x-pem-file), but its value holds no PEM block, so the version cannot be restored from it. ${notServed}`,
            unrestorable: true,
          }),
        )
      const blank = Redacted.make("")
      let pfx: Uint8Array
      if (pem) {
        const certs = pemBlocks(value, "CERTIFICATE")
        const key = pemBlocks(value, "PRIVATE KEY")[0]
        if (key === undefined)
          return yield* noPrivateKey(
            `the PEM backing secret of ${name}/${versionId} has no PKCS#8 private key (the key is not exportable)`,
          )
        const material = yield* pemMaterialByKey(certs, Redacted.make(key)).pipe(
          Effect.mapError(
            (e) =>
              // The codec's fixes are for a file of one's own (supply the key as PKCS#8 …): left out.
              new VaultMalformedAnswer({
                operation: "getVersionSecret",
                detail: `the PEM backing secret of ${name}/${versionId} cannot be read (${foundIn(e.problems)}), so the version cannot be restored from it. ${notServed}`,
                unrestorable: true,
              }),
          ),
        )
        if (material === undefined)
          return yield* keyOfNoCertificate(
            "PEM",
            name,
            versionId,
            certs.length === 0
              ? " (it holds no certificate)"
              : ` (${certs.length === 1 ? "1 certificate" : `${certs.length} certificates`}, none of them the key's)`,
          )
        pfx = yield* codec
          .encode(material, { encoding: "modern", password: blank })
          .pipe(Effect.mapError((e) => unrestorable("PEM", name, versionId, e)))
      } else {
        pfx = new Uint8Array(Buffer.from(value, "base64"))
        yield* codec
          .decode(pfx, blank)
          .pipe(
            Effect.mapError((e) =>
              e.reason === "no-certificate"
                ? keyOfNoCertificate("PFX", name, versionId)
                : e.reason === "no-key"
                  ? noPrivateKey(
                      `the backing secret of ${name}/${versionId} holds no private key (the key is not exportable)`,
                    )
                  : unrestorable("PFX", name, versionId, e),
            ),
          )
      }
      return { pfx, password: blank } satisfies VersionSecret
    }).pipe((e) => counted("getVersionSecret", e))
  })

  const getDeleted = Effect.fnUntraced(function* (name: string) {
    const deleted = yield* call("getDeleted", "read", (abortSignal) =>
      certificates.getDeletedCertificate(name, { ...requestOptions, abortSignal }),
    ).pipe((e) => counted("getDeleted", e))
    return {
      name: deleted.name,
      recoveryId: deleted.recoveryId ?? "",
      // Never a made-up time when the vault gives none: core draws conclusions from it.
      ...(deleted.deletedOn === undefined ? {} : { deletedAt: deleted.deletedOn }),
      ...(deleted.scheduledPurgeDate === undefined ? {} : { scheduledPurgeAt: deleted.scheduledPurgeDate }),
      // The deleted bundle is the certificate's latest as it was (x5t, tags, cer); one that lacks
      // what a version is reported with says nothing of it (core then judges after a recovery).
      ...latestOf(versionFromCertificate(name)(deleted)),
    } satisfies DeletedCertificate
  })

  const recoverTimeoutMs = options.recoverTimeoutMs ?? 300_000
  /**
   * A recovery's failure after the vault accepted its POST. The SDK's recover poller then reads the
   * certificate until it is served, and throws whatever that read fails with (but a 404): a 429, a
   * refused connection or a refusal of the read says nothing of the recovery, which has taken effect
   * or is under way. Mapped as the write's failure it read "did not take effect" (a throttled
   * recovery), and the deploy reported the certificate not recovered while the vault served it. So
   * it is ambiguous, with the read's failure as the read's (named), and the deploy program reads
   * what the vault serves.
   */
  const afterAcceptedRecovery = (status: number, error: unknown): VaultAmbiguous => {
    const read = toVaultError("recoverDeleted", "read", error, sdkRetries, timeout, trusted)
    return new VaultAmbiguous({
      operation: "recoverDeleted",
      accepted: true,
      detail: `the vault accepted the recovery (it answered ${status}), so it has taken effect or is under way, but reading the recovered certificate then failed (${readFailureWords[read._tag]}: ${read.detail})`,
      ...(read.cause === undefined ? {} : { cause: read.cause }),
      ...(read.timedOutAfterMs === undefined ? {} : { timedOutAfterMs: read.timedOutAfterMs }),
    })
  }
  /**
   * The recovered certificate as the port reports it, with whether this call sent the recovery. The
   * SDK's recover poller reads the certificate first and, when the vault serves it already (another
   * writer recovered it since getDeleted read it, or a certificate made since holds the name),
   * completes with that read and sends no recover
   * POST; otherwise it completes only after the vault accepted the POST. So a success with no
   * recover POST answered is one with none sent.
   */
  const recoveredFrom =
    (name: string) =>
    (answer: {
      readonly certificate: KeyVaultCertificate
      readonly accepted: number | undefined
    }): RecoveredCertificate | Unusable => {
      const version = versionFromCertificate(name)(answer.certificate)
      return version instanceof Unusable ? version : { version, sent: answer.accepted !== undefined }
    }
  const recoverDeleted = (name: string) =>
    countedAs(
      "recoverDeleted",
      Effect.suspend(() => {
        // The call's context notes whether the vault accepted the recover POST (vaultCall.ts).
        let context: VaultCall | undefined
        return Effect.tryPromise({
          try: (abortSignal) => {
            const call = vaultCall(abortSignal, timeout)
            context = call
            return inVaultCall(call, async () => {
              const poller = await certificates.beginRecoverDeletedCertificate(name, {
                ...requestOptions,
                abortSignal,
                intervalInMs: options.recoverPollIntervalMs ?? 2000,
              })
              const certificate = await poller.pollUntilDone({ abortSignal })
              return { certificate, accepted: call.recoveryAccepted }
            })
          },
          catch: (error) => {
            const mapped = withoutSoftDeleted(
              toVaultError("recoverDeleted", "write", error, sdkRetries, timeout, trusted),
            )
            // Ambiguous already (the recovery's own answer lost, a read that timed out): as is, but
            // for saying so when the vault did answer the recovery 2xx (the reads after it failed).
            const accepted = context?.recoveryAccepted
            if (accepted === undefined) return mapped
            if (mapped._tag !== "VaultAmbiguous") return afterAcceptedRecovery(accepted, error)
            return new VaultAmbiguous({
              operation: mapped.operation,
              detail: mapped.detail,
              ...(mapped.cause === undefined ? {} : { cause: mapped.cause }),
              ...(mapped.retried === undefined ? {} : { retried: mapped.retried }),
              ...(mapped.timedOutAfterMs === undefined ? {} : { timedOutAfterMs: mapped.timedOutAfterMs }),
              accepted: true,
            })
          },
        }).pipe(
          // The poller reads until the certificate is served, with no end of its own: a recovery that
          // never becomes readable would hold the deploy (and an agent's pass) for good.
          Effect.timeoutOrElse({
            duration: recoverTimeoutMs,
            orElse: () =>
              Effect.fail(
                new VaultAmbiguous({
                  operation: "recoverDeleted",
                  ...(context?.recoveryAccepted === undefined ? {} : { accepted: true }),
                  detail: `${context?.recoveryAccepted === undefined ? "the recovery may have been sent" : `the vault accepted the recovery (it answered ${context.recoveryAccepted})`}, but the certificate was not served within ${recoverTimeoutMs / 1000} s`,
                }),
              ),
          }),
        )
      }),
      recoveredFrom(name),
    )

  const vaultOrigin = new URL(options.vaultUrl).origin
  const badContinuation = (continuation: string) => {
    let where = "not an absolute URL"
    try {
      const url = new URL(continuation)
      where = `${url.origin}${url.pathname}`
    } catch {}
    return new VaultRequestRejected({
      operation: "listCertificates",
      code: "InvalidContinuation",
      detail: `continuation (${where}) is not a page link of ${vaultOrigin}/certificates: pass undefined for the first page, or the continuation the previous page of this vault answered`,
    })
  }
  /** The list options: the page size reaches the wire as `maxresults` (the SDK passes it through; `byPage`'s `maxPageSize` it ignores). */
  const listOptions = (
    abortSignal: AbortSignal,
  ): ListPropertiesOfCertificatesOptions & { maxresults: number } => ({
    ...requestOptions,
    abortSignal,
    maxresults: CERTIFICATE_LIST_PAGE_SIZE,
  })

  /**
   * One page: one request (the SDK's page iterator fetches a page per `next()`;
   * it is closed after the first). The page's nextLink comes back through the
   * list call's context (see certificateListPage.ts).
   */
  const listCertificates = (continuation: string | undefined): Effect.Effect<ListedPage, VaultError> =>
    continuation !== undefined && !isContinuationOf(vaultOrigin, continuation)
      ? // Refused before any request: not a vault request, so not counted as one.
        Effect.fail(badContinuation(continuation))
      : countedAs(
          "listCertificates",
          Effect.tryPromise({
            try: (abortSignal) => {
              const context = vaultCall(abortSignal, timeout)
              return inVaultCall(context, async () => {
                const pages = certificates.listPropertiesOfCertificates(listOptions(abortSignal)).byPage({
                  ...(continuation === undefined ? {} : { continuationToken: continuation }),
                  maxPageSize: CERTIFICATE_LIST_PAGE_SIZE,
                })
                try {
                  const first = await pages.next()
                  if (context.page === undefined)
                    throw new Error(
                      "the certificate list page's nextLink was not seen by the adapter's policy",
                    )
                  // An entry that lacks facts is named apart, not made up and not the page's failure:
                  // the other entries are usable, and a reader reads that certificate on its own.
                  const certificates: Array<ListedCertificate> = []
                  const unusable: Array<UnusableListEntry> = []
                  for (const properties of first.done === true ? [] : first.value) {
                    const listed = listedFromProperties(properties)
                    if (listed instanceof Unusable)
                      unusable.push({ name: properties.name ?? "", detail: listed.detail })
                    else certificates.push(listed)
                  }
                  return {
                    certificates,
                    continuation: context.page.nextLink,
                    ...(unusable.length === 0 ? {} : { unusable }),
                  } satisfies ListedPage
                } finally {
                  await pages.return?.(undefined)
                }
              })
            },
            catch: (error) =>
              answerFailure("listCertificates", error) ??
              withoutNotFound(
                withoutSoftDeleted(
                  toVaultError("listCertificates", "read", error, sdkRetries, timeout, trusted),
                ),
              ),
          }),
          identity,
        )

  /**
   * The pending operation (the SDK's poller, polled once and dropped); none: a 404. The poller reads
   * the latest certificate before the pending operation (and again when the operation is over), so
   * this is 2 or 3 requests (`kvdeploy_vault_http_requests_total` shows them), and a failed read of
   * the certificate fails it: `@azure/keyvault-certificates` 4.10.3 has no public call that reads
   * only `GET /certificates/{n}/pending` (its `resumeFrom` takes the poller's serialized state, an
   * undocumented shape, and still reads the certificate once the operation is over).
   */
  const getOperation = (name: string): Effect.Effect<CertificateOperation | undefined, VaultError> =>
    countedAs(
      "getOperation",
      call("getOperation", "read", async (abortSignal) => {
        const poller = await certificates.getCertificateOperation(name, { abortSignal, ...requestOptions })
        return poller.getOperationState().certificateOperation
      }),
      (operation): CertificateOperation | undefined | Unusable =>
        operation === undefined
          ? undefined
          : operation.status === undefined
            ? // Whether Key Vault takes an import depends on it: "unknown" read as not in progress.
              new Unusable("its pending operation lacks `status`")
            : { status: operation.status, issuerName: operation.issuerName },
    ).pipe(Effect.catchTag("VaultNotFound", () => Effect.succeed(undefined)))

  return {
    vault: Vault.of({
      getLatest,
      getVersion,
      listVersions,
      importVersion,
      getVersionSecret,
      getDeleted,
      recoverDeleted,
      listCertificates,
      getOperation,
    }),
    connections: connectionsOf(agent),
  } satisfies AzureKeyVaultHandle
})

/** Build the Vault service for one vault. Needs Metrics (per-request counts) and PfxCodec (key facts, backing secrets). */
export const make = (
  options: AzureKeyVaultOptions,
): Effect.Effect<Vault["Service"], never, Metrics | PfxCodec> =>
  Effect.map(makeWithConnections(options), (handle) => handle.vault)

/**
 * The Vault port for one vault over the Azure SDKs, and its VaultConnections. When the layer's scope
 * closes (an `Effect.provide` of it ends), its connections are retired: the idle keep-alive sockets
 * are closed, and one still carrying a request is closed when the request is over. A program that
 * deploys again and again builds the layer once (`Layer.build` in a long-lived scope, or a
 * `ManagedRuntime`) and keeps its connections.
 */
export const layer = (
  options: AzureKeyVaultOptions,
): Layer.Layer<Vault | VaultConnections, never, Metrics | PfxCodec> =>
  Layer.effectContext(
    Effect.gen(function* () {
      const handle = yield* makeWithConnections(options)
      yield* Effect.addFinalizer(() => handle.connections.retire)
      return Context.make(Vault, handle.vault).pipe(Context.add(VaultConnections, handle.connections))
    }),
  )

/** Options of `layerConfig`: everything but what the target configuration decides. */
export type TargetVaultOptions = Omit<AzureKeyVaultOptions, "vaultUrl" | "credential" | "customCloud">

/**
 * The Vault port for a validated target: its vault URL, and challenge
 * resource verification off only when the target declares a custom cloud.
 * The credential comes from `@kvdeploy/credentials` (`makeCredential(credentialSettingsFromTarget(target))`).
 */
export const layerConfig = (
  target: Pick<TargetConfig, "vaultUrl" | "cloud">,
  credential: TokenCredential,
  options: TargetVaultOptions = {},
): Layer.Layer<Vault | VaultConnections, never, Metrics | PfxCodec> =>
  layer({ ...options, vaultUrl: target.vaultUrl, credential, customCloud: target.cloud.name === "Custom" })
