/**
 * The Key Vault data plane of one vault: routing, the 401 challenge before the
 * body is read, bearer token checks, RBAC, throttling, fault injection, the
 * certificate / secret / key operations, and the request log.
 */
import { createHash, randomUUID } from "node:crypto"
import type { IncomingMessage, ServerResponse } from "node:http"
import { withFields } from "./answerFields.js"
import { loadPfxCodec, type PfxEncoding } from "./codec.js"
import { type Directory, OPERATION_PERMISSION, type Principal } from "./directory.js"
import { KvError } from "./errors.js"
import {
  type FaultAction,
  type FaultController,
  type OperationName,
  policyDeniedMessage,
  statusFaultHeaders,
} from "./faults.js"
import {
  BodyTooLarge,
  isRecord,
  parseJson,
  RawJson,
  RequestAborted,
  readBody,
  sendJson,
  sendRawAnswer,
  sleep,
} from "./http.js"
import type { JwtClaims } from "./jwt.js"
import {
  badPem,
  certificateFactsOf,
  certOf,
  type ImportContentTypeMode,
  isPemValue,
  keyFactsOf,
  type MaterialReader,
  orderChain,
  PEM_CONTENT_TYPE,
  PFX_CONTENT_TYPE,
  pemSecret,
  readImportValue,
  unreadablePfx,
} from "./material.js"
import { createSelfSigned, signedWithEcdsa } from "./pki.js"
import { mergePolicy, type PolicyWire, parsePolicy } from "./policy.js"
import { objectOf } from "./rbacScope.js"
import type { RequestLog, RequestSummary } from "./requestLog.js"
import {
  type CertEntry,
  type CertVersion,
  certAttributes,
  checkName,
  checkTags,
  contentTypeOf,
  firstCreateOf,
  newVersionId,
  nowSeconds,
  recoveryLevelFor,
  renderBundle,
  renderDeletedBundle,
  renderItem,
  renderKey,
  renderPendingBundle,
  renderPendingItem,
  renderPolicy,
  type VaultStore,
} from "./store.js"
import type { VaultThrottle } from "./throttle.js"

export const SUPPORTED_API_VERSIONS =
  /^(7\.[0-6](-preview(\.\d+)?)?|2016-10-01|2025-07-01(-preview)?|2026-04-01)$/
/** The latest api-version served: what the "not recognized" refusal advises. */
export const LATEST_API_VERSION = "2026-04-01"
/** The api-versions that define `outContentType` on a secret read (2025-07-01 and later). */
const OUT_CONTENT_TYPE_VERSIONS = /^(2025-07-01(-preview)?|2026-04-01)$/
export const SECRET_VALUE_LIMIT = 25 * 1024

export interface VaultContext {
  readonly name: string
  readonly store: VaultStore
  readonly directory: Directory
  readonly tenantId: string
  readonly faults: FaultController
  readonly log: RequestLog
  readonly throttle: VaultThrottle | undefined
  /** e.g. https://127.0.0.1:40000 — the challenge's `authorization` is this + "/" + tenant. */
  readonly authorityHost: string
  /** e.g. https://vault.azure.net */
  readonly keyvaultResource: string
  readonly recoverableDays: number
  /** Seconds past `exp` (and before `nbf`) a token is still accepted. */
  readonly tokenClockSkewSeconds: number
  readonly secretEncoding: PfxEncoding
  /** Reuse the decoded material of a PFX import whose exact bytes and password were seen before. */
  readonly pfxDecodeCache: boolean
  /** How an import's format is decided (EmulatorOptions.importContentType). */
  readonly importContentType: ImportContentTypeMode
  /** Reads import values off the event loop (the PFX worker pool); undefined: in this thread. */
  readonly materialReader?: MaterialReader | undefined
  readonly admin: (req: IncomingMessage, res: ServerResponse, vault: string) => Promise<void>
}

interface Route {
  readonly operation: OperationName
  readonly name?: string
  readonly version?: string
}

const seg = (s: string | undefined): string => decodeURIComponent(s ?? "")

/** `/_emulator` and below (a path, or a request URL with its query): the admin API. */
const isAdminPath = (url: string): boolean => {
  const q = url.indexOf("?")
  const path = q < 0 ? url : url.slice(0, q)
  return path === "/_emulator" || path.startsWith("/_emulator/")
}

/** `route`, or "malformed" when a segment of the path does not decode (a bad percent-escape). */
const routeOrMalformed = (method: string, path: string): Route | "method" | "malformed" | undefined => {
  try {
    return route(method, path)
  } catch (e) {
    if (e instanceof URIError) return "malformed"
    throw e
  }
}

/** Maps method + path to an operation; undefined when Key Vault has no such resource. */
export const route = (method: string, path: string): Route | "method" | undefined => {
  const parts = path.split("/").slice(1)
  const [root, a, b, c] = parts
  const n = parts.length
  const lower = root?.toLowerCase()
  if (lower === "certificates") {
    if (n === 1 || (n === 2 && a === "")) return method === "GET" ? { operation: "list" } : "method"
    const name = seg(a)
    if (n === 2) {
      if (method === "GET") return { operation: "getLatest", name, version: "" }
      if (method === "DELETE") return { operation: "delete", name }
      if (method === "PATCH") return { operation: "updateProperties", name, version: "" }
      return "method"
    }
    if (n === 3) {
      const sub = seg(b)
      if (sub === "import") return method === "POST" ? { operation: "import", name } : "method"
      if (sub === "create") return method === "POST" ? { operation: "create", name } : "method"
      if (sub === "versions") return method === "GET" ? { operation: "versions", name } : "method"
      if (sub === "policy") {
        if (method === "GET") return { operation: "getPolicy", name }
        if (method === "PATCH") return { operation: "updatePolicy", name }
        return "method"
      }
      if (sub === "pending") {
        if (method === "GET") return { operation: "getOperation", name }
        if (method === "PATCH") return { operation: "cancelOperation", name }
        if (method === "DELETE") return { operation: "deleteOperation", name }
        return "method"
      }
      if (method === "GET") return { operation: sub === "" ? "getLatest" : "getVersion", name, version: sub }
      if (method === "PATCH") return { operation: "updateProperties", name, version: sub }
      return "method"
    }
    if (n === 4 && c === "" && method === "GET") return { operation: "getVersion", name, version: seg(b) }
    return undefined
  }
  if (lower === "deletedcertificates") {
    if (n === 1 || (n === 2 && a === "")) return method === "GET" ? { operation: "listDeleted" } : "method"
    const name = seg(a)
    if (n === 2) {
      if (method === "GET") return { operation: "getDeleted", name }
      if (method === "DELETE") return { operation: "purge", name }
      return "method"
    }
    if (n === 3 && b === "recover") return method === "POST" ? { operation: "recover", name } : "method"
    return undefined
  }
  if (lower === "secrets" && n >= 2 && n <= 3) {
    const name = seg(a)
    if (method === "PUT" && n === 2) return { operation: "setSecret", name }
    if (method === "GET") return { operation: "getSecret", name, version: seg(b) }
    return "method"
  }
  if (lower === "keys" && n >= 2 && n <= 3) {
    if (method === "GET") return { operation: "getKey", name: seg(a), version: seg(b) }
    return "method"
  }
  return undefined
}

const WRITE_OPERATIONS: ReadonlyArray<OperationName> = ["import", "create", "setSecret"]

const summarize = (body: unknown): RequestSummary | undefined => {
  if (!isRecord(body)) return undefined
  const value = body.value
  return {
    keys: Object.keys(body),
    ...("policy" in body ? { policy: body.policy } : {}),
    ...("attributes" in body ? { attributes: body.attributes } : {}),
    ...("tags" in body ? { tags: body.tags } : {}),
    ...("preserveCertOrder" in body ? { preserveCertOrder: body.preserveCertOrder } : {}),
    ...(typeof value === "string"
      ? {
          valueLength: value.length,
          valueSha256: createHash("sha256").update(value).digest("hex"),
          valueIsPem: value.includes("-----BEGIN"),
        }
      : {}),
    ...("pwd" in body ? { passwordSent: typeof body.pwd === "string" && body.pwd.length > 0 } : {}),
  }
}

/** A summary of a policy-only body (PATCH /policy sends the policy itself). */
const summarizePolicyBody = (body: unknown): RequestSummary | undefined =>
  isRecord(body) ? { keys: Object.keys(body), policy: body } : undefined

interface Outcome {
  readonly status: number
  readonly body?: unknown
  readonly headers?: Readonly<Record<string, string>>
}

const pfxCache = new WeakMap<CertVersion, string>()
const bundleCache = new WeakMap<CertVersion, { readonly key: string; readonly body: RawJson }>()

export class VaultHandler {
  /** What every token check compares with, built once per vault rather than per request. */
  private readonly audienceWithSlash: string
  private readonly expectedIssuer: string
  private readonly challenge: string
  /** How many next links the `endlessList` fault has made up: each one new. */
  private endlessPages = 0

  constructor(private readonly ctx: VaultContext) {
    this.audienceWithSlash = `${ctx.keyvaultResource}/`
    this.expectedIssuer = ctx.directory.issuerFor(ctx.tenantId)
    this.challenge = `Bearer authorization="${ctx.authorityHost}/${ctx.tenantId}", resource="${ctx.keyvaultResource}"`
  }

  challengeHeader(): string {
    return this.challenge
  }

  handle = (req: IncomingMessage, res: ServerResponse): void => {
    // In flight (the log's `idle`) until handled, a fault's delay or hold included. The admin API's
    // requests are no vault request, and are not counted: a test may await `idle` through it.
    const counted = !isAdminPath(req.url ?? "/")
    if (counted) this.ctx.log.begin()
    void this.handleAsync(req, res)
      .catch((e: unknown) => {
        if (!res.headersSent) sendJson(res, 500, KvError.internal(String(e)).body())
      })
      .finally(() => {
        if (counted) this.ctx.log.settle()
      })
  }

  private async handleAsync(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = process.hrtime.bigint()
    const time = Date.now()
    const seq = this.ctx.log.nextSeq()
    const method = req.method ?? "GET"
    const rawUrl = req.url ?? "/"
    const q = rawUrl.indexOf("?")
    const path = q < 0 ? rawUrl : rawUrl.slice(0, q)
    const query = q < 0 ? "" : rawUrl.slice(q + 1)
    if (isAdminPath(path)) {
      await this.ctx.admin(req, res, this.ctx.name)
      return
    }
    // A path whose escapes do not decode (`%ZZ`) is answered 400 below, after the challenge.
    const r = routeOrMalformed(method, path)
    let operation: string = typeof r === "object" ? r.operation : "unknown"
    let principal: string | undefined
    let fault: string | undefined
    let summary: RequestSummary | undefined
    let challenge = false
    let dropped = false
    let garbled = false
    let omitted: ReadonlyArray<string> | undefined
    let replaced: Readonly<Record<string, unknown>> | undefined
    let logged = false
    const finish = (o: Outcome) => {
      const errorCode =
        o.status >= 400 && isRecord(o.body) && isRecord(o.body.error) ? String(o.body.error.code) : undefined
      if ((omitted !== undefined || replaced !== undefined) && !dropped && o.status < 400) {
        const text = o.body instanceof RawJson ? o.body.bytes.toString("utf8") : JSON.stringify(o.body ?? {})
        sendJson(
          res,
          o.status,
          withFields(JSON.parse(text) as unknown, omitted ?? [], replaced ?? {}),
          o.headers,
        )
      } else if (garbled && !dropped) {
        const text = o.body instanceof RawJson ? o.body.bytes.toString("utf8") : JSON.stringify(o.body ?? {})
        sendJson(res, o.status, new RawJson(Buffer.from(`${text} <!-- garbled by a fault -->`)), o.headers)
      } else if (!dropped) sendJson(res, o.status, o.body, o.headers)
      logged = true
      this.ctx.log.add({
        seq,
        time,
        vault: this.ctx.name,
        operation,
        method,
        path,
        query,
        status: dropped ? 0 : o.status,
        latencyMs: Number(process.hrtime.bigint() - started) / 1e6,
        challenge,
        ...(principal !== undefined ? { principal } : {}),
        ...(errorCode !== undefined ? { errorCode } : {}),
        ...(fault !== undefined ? { fault } : {}),
        ...(dropped ? { dropped } : {}),
        ...(summary !== undefined ? { request: summary } : {}),
      })
    }
    const fail = (e: KvError, extra: Readonly<Record<string, string>> = {}) =>
      finish({ status: e.status, body: e.body(), headers: { ...e.headers, ...extra } })
    try {
      // 1. Authentication first: the challenge goes out before the body is read.
      const auth = req.headers.authorization
      if (auth === undefined || auth === "") {
        challenge = true
        req.resume()
        fail(KvError.unauthorized(), { "WWW-Authenticate": this.challengeHeader() })
        return
      }
      const m = /^Bearer\s+(.+)$/i.exec(auth)
      const verified = m
        ? this.checkToken(m[1] ?? "")
        : { ok: false as const, message: "AKV10000: Request is missing a Bearer or PoP token." }
      if (!verified.ok) {
        req.resume()
        fail(KvError.unauthorized(verified.message), { "WWW-Authenticate": this.challengeHeader() })
        return
      }
      const who = verified.principal
      principal = who.clientId

      if (r === "malformed") {
        req.resume()
        return fail(KvError.badParameter(`The request URI is malformed: ${path}`))
      }
      if (r === undefined) {
        req.resume()
        operation = "unknown"
        return fail(new KvError(404, "NotFound", `The requested resource was not found: ${path}`))
      }
      if (r === "method") {
        req.resume()
        return fail(KvError.methodNotAllowed())
      }
      const params = new URLSearchParams(query)
      const apiVersion = params.get("api-version")
      if (apiVersion === null) {
        req.resume()
        return fail(
          KvError.badParameter(
            "The api-version query parameter (?api-version=) is required for all requests.",
          ),
        )
      }
      if (!SUPPORTED_API_VERSIONS.test(apiVersion)) {
        req.resume()
        return fail(
          KvError.badParameter(
            `The specified version (${apiVersion}) is not recognized. Consider using the latest supported version (${LATEST_API_VERSION}).`,
          ),
        )
      }

      // 2. Fault injection (scripted by tests).
      const injected = this.ctx.faults.take(this.ctx.name, r.operation, r.name)
      let after: FaultAction | undefined
      let shortPage: number | undefined
      if (injected) {
        fault = `${injected.id}:${injected.action.kind}`
        const a = injected.action
        if (a.kind === "delay") await sleep(a.ms)
        else if (a.kind === "hold") await this.ctx.faults.hold(injected.id, a.timeoutMs ?? 30_000)
        else if (a.kind === "drop") {
          dropped = true
          req.resume()
          res.socket?.destroy()
          return finish({ status: 0 })
        } else if (a.kind === "status") {
          req.resume()
          if (a.afterMs !== undefined) await sleep(a.afterMs)
          const e = new KvError(
            a.status,
            a.code ?? defaultCode(a.status),
            a.message ?? "Injected fault.",
            a.innerCode,
            statusFaultHeaders(a.status, a.headers),
          )
          return fail(e)
        } else if (a.kind === "policyDenied") {
          // Azure Policy judges the certificate once the caller may write it; the fault answers
          // before RBAC, as every status fault does.
          req.resume()
          return fail(
            new KvError(403, "Forbidden", policyDeniedMessage(r.name ?? "", a), "ForbiddenByPolicy"),
          )
        } else if (a.kind === "rawAnswer") {
          // Something else answering at the vault's URL (a proxy, a gateway, another service): its
          // text as it is, without Key Vault's error body or headers. The operation does not run.
          return finish({ status: sendRawAnswer(req, res, a) })
        } else if (a.kind === "shortPage") {
          shortPage = a.items
        } else if (a.kind === "throttle") {
          req.resume()
          return fail(KvError.throttled(a.retryAfterSeconds ?? 1))
        } else if (a.kind === "foreignImport" && (a.when ?? "before") === "before") {
          if (r.name !== undefined) await this.foreignWrite(r.name, a)
        } else if (a.kind === "foreignDelete" && (a.when ?? "before") === "before") {
          if (r.name !== undefined) this.foreignDelete(r.name)
        } else if (a.kind === "foreignRecover" && (a.when ?? "before") === "before") {
          if (r.name !== undefined) this.foreignRecover(r.name)
        } else after = a
      }

      // 3. Throttling (Key Vault's windows; a throttled request does not count).
      if (this.ctx.throttle) {
        const wait = this.ctx.throttle.take(WRITE_OPERATIONS.includes(r.operation) ? "write" : "other")
        if (wait > 0) {
          req.resume()
          return fail(KvError.throttled(wait))
        }
      }

      // 4. RBAC.
      const [permission, action] = OPERATION_PERMISSION[r.operation]
      // Judged on the object the request is about (a certificate, its backing secret, its key), or
      // on the vault (a list, a deleted certificate): a role scoped to one object grants no other.
      if (!this.ctx.directory.can(who.clientId, permission, objectOf(r.operation, r.name))) {
        req.resume()
        return fail(this.forbidden(who, verified.claims, action, r))
      }

      // 5. Body, then the operation.
      let body: unknown
      if (method === "POST" || method === "PUT" || method === "PATCH") {
        let buf: Buffer
        try {
          buf = await readBody(req)
        } catch (e) {
          if (e instanceof BodyTooLarge) return fail(new KvError(413, "RequestEntityTooLarge", e.message))
          // Nothing to answer, and the operation does not run: logged without an answer.
          if (e instanceof RequestAborted) {
            dropped = true
            return finish({ status: 0 })
          }
          throw e
        }
        const parsed = parseJson(buf)
        if (!parsed.ok) return fail(KvError.badParameter("The request body is not valid JSON."))
        body = parsed.value
        summary = r.operation === "updatePolicy" ? summarizePolicyBody(body) : summarize(body)
      } else req.resume()

      const origin = `https://${req.headers.host ?? "127.0.0.1"}`
      let outcome: Outcome
      try {
        outcome = await this.execute(r, origin, body, params, apiVersion, shortPage)
      } catch (e) {
        if (!(e instanceof KvError)) throw e
        if (after?.kind === "dropAnswer") {
          dropped = true
          res.socket?.destroy()
        }
        return fail(e)
      }
      if (after) {
        if (after.kind === "dropAfterCommit" || after.kind === "dropAnswer") {
          dropped = true
          res.socket?.destroy()
          return finish(outcome)
        }
        if (after.kind === "delayAfterCommit") await sleep(after.ms)
        if (after.kind === "foreignImport" && r.name !== undefined) await this.foreignWrite(r.name, after)
        if (after.kind === "foreignDelete" && r.name !== undefined) this.foreignDelete(r.name)
        if (after.kind === "foreignRecover" && r.name !== undefined) this.foreignRecover(r.name)
        if (after.kind === "disableAfterCommit" && r.name !== undefined) this.disableLatest(r.name)
        if (after.kind === "garbleAnswer") garbled = true
        if (after.kind === "omitFields") omitted = after.fields
        if (after.kind === "setFields") replaced = after.fields
        if (after.kind === "endlessList") {
          // A link no answer gave before, to an empty page past the list's end (its answer, under the
          // same rule, makes up the next).
          this.endlessPages++
          // A marker past every key of the list ("~" sorts after the characters of names and versions).
          const skip = skiptokenOf(listScope(r.operation, r.name), `~endless-${this.endlessPages}`)
          replaced = {
            nextLink: `${origin}${path}?api-version=${encodeURIComponent(apiVersion)}&$skiptoken=${skip}&maxresults=${MAX_RESULTS}`,
          }
        }
      }
      finish(outcome)
    } catch (e) {
      // A defect of the emulator's own: answered 500 as Key Vault answers its own, and logged like
      // any request (a test reading the log sees it), unless the answer had gone out already.
      if (logged || res.headersSent) throw e
      finish({ status: 500, body: KvError.internal(String(e)).body() })
    }
  }

  private checkToken(
    token: string,
  ): { ok: true; principal: Principal; claims: JwtClaims } | { ok: false; message: string } {
    const v = this.ctx.directory.verifyAccessToken(token)
    if (!v.ok) return v
    const c = v.claims
    // Judged by the token clock (the one Entra ID issued it by), as Key Vault judges it by Azure's.
    const now = this.ctx.directory.tokenNowSeconds()
    const resource = this.ctx.keyvaultResource
    if (c.aud !== resource && c.aud !== this.audienceWithSlash)
      return {
        ok: false,
        message: `AKV10022: Invalid audience. Expected ${resource}, found: ${String(c.aud)}.`,
      }
    const expected = this.expectedIssuer
    if (c.iss !== expected || c.tid !== this.ctx.tenantId)
      return {
        ok: false,
        message: `AKV10032: Invalid issuer. Expected one of ${expected}, found ${String(c.iss)}.`,
      }
    const skew = this.ctx.tokenClockSkewSeconds
    if (typeof c.exp !== "number" || c.exp + skew < now)
      return { ok: false, message: "AKV10022: Invalid token lifetime: the token has expired." }
    if (typeof c.nbf === "number" && c.nbf - skew > now)
      return { ok: false, message: "AKV10022: Invalid token lifetime: the token is not yet valid." }
    const p = typeof c.appid === "string" ? this.ctx.directory.principal(c.appid) : undefined
    if (!p) return { ok: false, message: "AKV10010: The caller is not a known principal of this tenant." }
    return { ok: true, principal: p, claims: c }
  }

  private forbidden(who: Principal, claims: JwtClaims, action: string, r: Route): KvError {
    const kind = action.split("/")[2] ?? "certificates"
    const resource = `/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/kv-emulator/providers/microsoft.keyvault/vaults/${this.ctx.name}${r.name !== undefined ? `/${kind.toLowerCase()}/${r.name}` : ""}`
    return new KvError(
      403,
      "Forbidden",
      [
        "Caller is not authorized to perform action on resource.",
        "If role assignments, deny assignments or role definitions were changed recently, please observe propagation time.",
        `Caller: appid=${who.clientId};oid=${who.objectId};iss=${String(claims.iss)}`,
        `Action: '${action}'`,
        `Resource: '${resource}'`,
        "Assignment: (not found)",
        "DenyAssignmentId: null",
        "DecisionReason: null ",
        `Vault: ${this.ctx.name};location=emulator`,
        "",
      ].join("\r\n"),
      "ForbiddenByRbac",
    )
  }

  /** Disable the latest version of `name`, as an update of its properties would (fault injection). */
  private disableLatest(name: string): void {
    const store = this.ctx.store
    const entry = store.active(name)
    if (entry === undefined) return
    const latest = store.latest(entry)
    latest.enabled = false
    latest.updated = nowSeconds()
    store.changed()
  }

  /**
   * A `foreignImport` fault: another writer's import, which Key Vault refuses as it would anyone's
   * while the name is soft-deleted or being deleted (or a plain secret's); then nothing is written,
   * and the request the fault rides on goes on as usual.
   */
  private async foreignWrite(
    name: string,
    a: { tags?: Readonly<Record<string, string>>; subject?: string },
  ): Promise<void> {
    try {
      this.ctx.store.checkWritable(name)
    } catch (e) {
      if (e instanceof KvError) return
      throw e
    }
    await this.foreignImport(name, a)
  }

  /** Another writer deletes `name`, when it holds an active certificate (fault injection). */
  private foreignDelete(name: string): void {
    if (this.ctx.store.active(name) !== undefined) this.ctx.store.delete(name)
  }

  /** Another writer recovers `name`, when it holds a deleted certificate (fault injection). */
  private foreignRecover(name: string): void {
    if (this.ctx.store.deletedEntry(name) !== undefined) this.ctx.store.recover(name)
  }

  /** Another writer imports a fresh self-signed version of `name` (fault injection). */
  async foreignImport(
    name: string,
    a: { tags?: Readonly<Record<string, string>>; subject?: string } = {},
  ): Promise<CertVersion> {
    const store = this.ctx.store
    const existing = store.active(name)
    const kty = existing?.policy.key_props?.kty?.startsWith("EC") === true ? "EC" : "RSA"
    const gen = await createSelfSigned({
      subject: a.subject ?? `CN=${name}-foreign-writer`,
      keyType: kty,
      ...(existing?.policy.key_props?.crv !== undefined ? { curve: existing.policy.key_props.crv } : {}),
      validityMonths: 12,
    })
    return store.importVersion(name, {
      leaf: gen.der,
      certs: [gen.der],
      key: gen.keyPkcs8,
      keyFacts: keyFactsOf(gen.keyPkcs8),
      contentType: existing ? store.latest(existing).contentType : PFX_CONTENT_TYPE,
      policy: undefined,
      enabled: true,
      tags: a.tags ?? { writer: "foreign" },
      preserveCertOrder: false,
      issuerName: "Unknown",
      foreign: true,
    })
  }

  private async execute(
    r: Route,
    origin: string,
    body: unknown,
    params: URLSearchParams,
    apiVersion: string,
    /** A `shortPage` fault's item count: a list's page answers at most this many. */
    shortPage?: number,
  ): Promise<Outcome> {
    const store = this.ctx.store
    const days = this.ctx.recoverableDays
    const name = r.name ?? ""
    if (r.name !== undefined) checkName(name)
    switch (r.operation) {
      case "import":
        return this.importCertificate(origin, name, body)
      case "create":
        return this.createCertificate(origin, name, body)
      case "getOperation": {
        const e = store.mustActiveOrPending(name)
        if (!e.pending) throw KvError.pendingNotFound(name)
        return { status: 200, body: renderOperation(origin, e) }
      }
      case "cancelOperation": {
        const e = store.mustActiveOrPending(name)
        if (!e.pending) throw KvError.pendingNotFound(name)
        // Key Vault only notes the request (the SDK's recorded cancels answer `cancellation_requested:
        // true` with the status still `inProgress`): the issuer ends the operation, or it is deleted.
        if (isRecord(body) && body.cancellation_requested === true) e.pending.cancellationRequested = true
        return { status: 200, body: renderOperation(origin, e) }
      }
      case "deleteOperation": {
        const e = store.mustActiveOrPending(name)
        if (!e.pending) throw KvError.pendingNotFound(name)
        const out = renderOperation(origin, e)
        // A first create's version stays, disabled and without a certificate (Key Vault's recorded
        // "read, cancel and delete a certificate's operation": latest still answers it after the delete).
        if (e.versions.length === 0 && e.pending.status !== "completed") e.shell = e.pending
        e.pending = undefined
        store.dropIfEmpty(name)
        return { status: 200, body: out }
      }
      case "getLatest":
      case "getVersion": {
        const waiting = store.certificates.get(name.toLowerCase())
        const p = waiting === undefined || waiting.deleted ? undefined : firstCreateOf(waiting)
        if (waiting && p) {
          if (r.version !== undefined && r.version !== "" && r.version.toLowerCase() !== p.pendingVersion)
            throw KvError.certificateNotFound(`${name}/${r.version}`)
          return { status: 200, body: renderPendingBundle(origin, waiting, p, days) }
        }
        const e = store.mustActive(name)
        const v = store.version(e, r.version ?? "")
        const byId = r.version !== undefined && r.version !== ""
        // The hot path of a deploy (snapshot, verify) and of the benchmark: serialise once per revision.
        const key = `${origin}#${store.revision}#${byId}`
        const cached = bundleCache.get(v)
        if (cached?.key === key) return { status: 200, body: cached.body }
        const body = new RawJson(Buffer.from(JSON.stringify(renderBundle(origin, e, v, days, !byId))))
        bundleCache.set(v, { key, body })
        return { status: 200, body }
      }
      case "versions": {
        // A certificate whose first create has not completed lists that create's version (the one
        // its latest read names), disabled and without x5t (not seen in a recording).
        const waiting = store.certificates.get(name.toLowerCase())
        const p = waiting === undefined || waiting.deleted ? undefined : firstCreateOf(waiting)
        if (waiting && p)
          return page(
            origin,
            {
              path: `/certificates/${waiting.name}/versions`,
              scope: listScope("versions", name),
              items: [p],
              keyOf: (op) => op.pendingVersion,
              render: (op) => ({
                ...renderPendingItem(origin, waiting, op),
                id: `${origin}/certificates/${waiting.name}/${op.pendingVersion}`,
              }),
            },
            params,
            apiVersion,
            shortPage,
          )
        // A name that never held a certificate lists no versions (200, as Key Vault answers; the
        // SDK's recorded "list certificate versions, non-existing" test); a soft-deleted one 404s.
        if (store.holder(name) === "none")
          return page(
            origin,
            {
              path: `/certificates/${name}/versions`,
              scope: listScope("versions", name),
              items: [],
              keyOf: () => "",
              render: () => ({}),
            },
            params,
            apiVersion,
            shortPage,
          )
        const e = store.mustActive(name)
        const items = [...e.versions].sort((x, y) => (x.version < y.version ? -1 : 1))
        return page(
          origin,
          {
            path: `/certificates/${e.name}/versions`,
            scope: listScope("versions", name),
            items,
            keyOf: (v) => v.version,
            render: (v) => renderItem(origin, e, v, days, true),
          },
          params,
          apiVersion,
          shortPage,
        )
      }
      case "list": {
        // A certificate whose first create has not completed (no certificate yet) is listed only
        // with `includePending=true`: "Specifies whether to include certificates which are not
        // completely provisioned" (REST docs, Get Certificates); disabled, without x5t. The next
        // link keeps the parameter, so every page answers the same list.
        const includePending = includePendingOf(params)
        const entries = listedEntries(store)
        return page(
          origin,
          {
            path: "/certificates",
            scope: listScope("list", undefined),
            items: includePending ? entries : entries.filter((e) => firstCreateOf(e) === undefined),
            keyOf: (e) => e.name.toLowerCase(),
            render: (e) => {
              const p = firstCreateOf(e)
              return p !== undefined
                ? renderPendingItem(origin, e, p)
                : renderItem(origin, e, store.latest(e), days, false)
            },
            ...(includePending ? { keep: "&includePending=true" } : {}),
          },
          params,
          apiVersion,
          shortPage,
        )
      }
      case "updateProperties": {
        const e = store.mustActive(name)
        const v = store.version(e, r.version ?? "")
        if (body !== undefined && !isRecord(body))
          throw KvError.badParameter("Property parameters has invalid value")
        const b = body ?? {}
        if (b.attributes !== undefined) {
          if (!isRecord(b.attributes)) throw KvError.badParameter("Property attributes has invalid value")
          if (b.attributes.enabled !== undefined) {
            if (typeof b.attributes.enabled !== "boolean")
              throw KvError.badParameter("Property attributes.enabled has invalid value")
            v.enabled = b.attributes.enabled
          }
        }
        if (b.tags !== undefined) v.tags = checkTags(b.tags)
        if (b.policy !== undefined && b.policy !== null) {
          e.policy = mergePolicy(e.policy, parsePolicy(b.policy))
          e.policyUpdated = nowSeconds()
        }
        v.updated = nowSeconds()
        store.changed()
        return {
          status: 200,
          body: renderBundle(origin, e, v, days, r.version === undefined || r.version === ""),
        }
      }
      case "getPolicy": {
        const e = store.mustActive(name)
        return { status: 200, body: renderPolicy(origin, e) }
      }
      case "updatePolicy": {
        const e = store.mustActive(name)
        e.policy = mergePolicy(e.policy, parsePolicy(body))
        e.policyUpdated = nowSeconds()
        store.changed()
        return { status: 200, body: renderPolicy(origin, e) }
      }
      case "delete": {
        const e = store.delete(name)
        return { status: 200, body: renderDeletedBundle(origin, e, store.latest(e), days) }
      }
      case "getDeleted": {
        const e = store.deletedEntry(name)
        if (!e) throw KvError.deletedCertificateNotFound(name)
        return { status: 200, body: renderDeletedBundle(origin, e, store.latest(e), days) }
      }
      case "listDeleted": {
        const entries = [...store.certificates.values()]
          .filter((e) => store.deletedEntry(e.name) !== undefined)
          .sort((x, y) => (x.name.toLowerCase() < y.name.toLowerCase() ? -1 : 1))
        return page(
          origin,
          {
            path: "/deletedcertificates",
            scope: listScope("listDeleted", undefined),
            items: entries,
            keyOf: (e) => e.name.toLowerCase(),
            render: (e) => ({
              recoveryId: `${origin}/deletedcertificates/${e.name}`,
              deletedDate: e.deleted?.deletedDate,
              scheduledPurgeDate: e.deleted?.scheduledPurgeDate,
              ...renderItem(origin, e, store.latest(e), days, false),
            }),
          },
          params,
          apiVersion,
          shortPage,
        )
      }
      case "recover": {
        const e = store.recover(name)
        return { status: 200, body: renderBundle(origin, e, store.latest(e), days) }
      }
      case "purge":
        store.purge(name)
        return { status: 204 }
      case "getSecret":
        return this.getSecret(origin, name, r.version ?? "", outContentTypeOf(params, apiVersion))
      case "setSecret":
        return this.setSecret(origin, name, body)
      case "getKey": {
        const e = store.active(name)
        if (!e) throw KvError.keyNotFound(name)
        const v = r.version ? e.versions.find((x) => x.version === r.version?.toLowerCase()) : store.latest(e)
        if (!v) throw KvError.keyNotFound(`${name}/${r.version ?? ""}`)
        return { status: 200, body: renderKey(origin, e, v, days) }
      }
    }
  }

  private async importCertificate(origin: string, name: string, body: unknown): Promise<Outcome> {
    const store = this.ctx.store
    store.checkWritable(name)
    store.checkNoOperationInProgress(name)
    if (!isRecord(body)) throw KvError.badParameter("Property parameters has invalid value")
    const value = body.value
    if (typeof value !== "string" || value.length === 0)
      throw KvError.badParameter("Property value is required")
    if (value.length > SECRET_VALUE_LIMIT)
      throw KvError.badParameter(
        `The secret value size (${value.length}) exceeds the maximum allowed size of ${SECRET_VALUE_LIMIT} characters.`,
      )
    const pwd = body.pwd
    if (pwd !== undefined && pwd !== null && typeof pwd !== "string")
      throw KvError.badParameter("Property pwd has invalid value")
    if (typeof pwd === "string" && pwd.length > 200)
      throw KvError.badParameter("Password length exceeds the maximum of 200 characters.")
    const policy = body.policy === undefined || body.policy === null ? undefined : parsePolicy(body.policy)
    const tags = checkTags(body.tags)
    let enabled: boolean | undefined
    if (body.attributes !== undefined && body.attributes !== null) {
      if (!isRecord(body.attributes)) throw KvError.badParameter("Property attributes has invalid value")
      if (body.attributes.enabled !== undefined) {
        if (typeof body.attributes.enabled !== "boolean")
          throw KvError.badParameter("Property attributes.enabled has invalid value")
        enabled = body.attributes.enabled
      }
    }
    const preserve = body.preserveCertOrder === true
    const stated = policy?.secret_props?.contentType
    if (this.ctx.importContentType === "required") checkStatedFormat(value, policy, stated)
    const material = await readImportValue(value, typeof pwd === "string" ? pwd : undefined, {
      cache: this.ctx.pfxDecodeCache,
      reader: this.ctx.materialReader,
    })
    if (certificateFactsOf(material.leaf).exp * 1000 < Date.now())
      throw KvError.badParameter("X509 Certificate is already expired")
    const keyFacts = keyFactsOf(material.key)
    // An RSA key in a certificate signed with ECDSA (an RSA leaf an EC CA issued): Key Vault takes the
    // signature's key type for the key's and refuses the RSA modulus as an EC key size
    // (MicrosoftDocs/azure-docs#115129, #88477).
    if (keyFacts.kty === "RSA" && signedWithEcdsa(material.leaf, certOf(material.leaf)))
      throw KvError.badParameter(
        `Unsupported key size (${keyFacts.keySize ?? 0}). Supported sizes are [256, 384, 521]`,
        { code: "KeySizeNotSupported" },
      )
    const declaredKty = policy?.key_props?.kty
    if (declaredKty !== undefined && !declaredKty.startsWith(keyFacts.kty))
      throw KvError.badParameter(
        `The key type in the policy (${declaredKty}) does not match the key type of the imported certificate (${keyFacts.kty}).`,
      )
    const contentType = stated !== undefined ? contentTypeOf(stated) : material.detectedContentType
    const certs = preserve
      ? [...material.sentOrder]
      : [material.leaf, ...orderChain(material.leaf, material.chain)]
    const v = store.importVersion(name, {
      leaf: material.leaf,
      certs,
      key: material.key,
      keyFacts,
      contentType,
      policy,
      enabled,
      tags,
      preserveCertOrder: preserve,
      issuerName: "Unknown",
    })
    const e = store.mustActive(name)
    return { status: 200, body: renderBundle(origin, e, v, this.ctx.recoverableDays) }
  }

  private async createCertificate(origin: string, name: string, body: unknown): Promise<Outcome> {
    const store = this.ctx.store
    store.checkWritable(name)
    store.checkNoOperationInProgress(name)
    if (!isRecord(body) || body.policy === undefined || body.policy === null)
      throw KvError.badParameter("Property policy is required")
    const requested = parsePolicy(body.policy)
    const tags = checkTags(body.tags)
    const existing = store.certificates.get(name.toLowerCase())
    const policy = mergePolicy(existing?.policy ?? {}, requested)
    const issuer = policy.issuer?.name ?? "Unknown"
    const subject = policy.x509_props?.subject
    if (subject === undefined || subject === "")
      throw KvError.badParameter("Property x509_props.subject is required")
    const kty = policy.key_props?.kty?.startsWith("EC") === true ? "EC" : "RSA"
    const gen = await createSelfSigned({
      subject,
      keyType: kty,
      ...(policy.key_props?.key_size !== undefined ? { keySize: policy.key_props.key_size } : {}),
      ...(policy.key_props?.crv !== undefined ? { curve: policy.key_props.crv } : {}),
      ...(policy.x509_props?.sans?.dns_names !== undefined
        ? { dnsNames: policy.x509_props.sans.dns_names }
        : {}),
      ...(policy.x509_props?.ekus !== undefined ? { ekus: policy.x509_props.ekus } : {}),
      validityMonths: policy.x509_props?.validity_months ?? 12,
    })
    const pending = {
      requestId: randomUUID().replace(/-/g, ""),
      pendingVersion: newVersionId(),
      created: nowSeconds(),
      csr: gen.csr,
      status: "inProgress" as const,
      cancellationRequested: false,
    }
    const enabled =
      isRecord(body.attributes) && typeof body.attributes.enabled === "boolean"
        ? body.attributes.enabled
        : undefined
    if (issuer.toLowerCase() === "self") {
      const v = store.importVersion(name, {
        leaf: gen.der,
        certs: [gen.der],
        key: gen.keyPkcs8,
        keyFacts: keyFactsOf(gen.keyPkcs8),
        contentType: contentTypeOf(policy.secret_props?.contentType),
        policy: { ...policy, issuer: { ...policy.issuer, name: "Self" } },
        enabled,
        tags,
        preserveCertOrder: body.preserveCertOrder === true,
        issuerName: "Self",
      })
      const e = store.mustActive(name)
      e.pending = { ...pending, status: "completed", version: v.version }
      const answer = renderOperation(origin, e)
      return {
        status: 202,
        body: { ...answer, status: "inProgress", status_details: IN_PROGRESS, target: undefined },
      }
    }
    // Any other issuer: the request waits for a merge, which this emulator does not implement.
    const e = store.pendingOnly(name, policy)
    e.pending = pending
    return { status: 202, body: renderOperation(origin, e) }
  }

  private async getSecret(
    origin: string,
    name: string,
    version: string,
    outContentType: string | undefined,
  ): Promise<Outcome> {
    const store = this.ctx.store
    const days = this.ctx.recoverableDays
    const plain = store.secrets.get(name.toLowerCase())
    if (plain) {
      const v =
        version === ""
          ? plain.versions[plain.versions.length - 1]
          : plain.versions.find((x) => x.version === version.toLowerCase())
      if (!v) throw KvError.secretNotFound(version === "" ? name : `${name}/${version}`)
      if (!v.enabled)
        throw new KvError(
          403,
          "Forbidden",
          "Operation get is not allowed on a disabled secret.",
          "SecretDisabled",
        )
      if (outContentType !== undefined) throw outContentTypeNotServed(outContentType, "a secret set directly")
      return {
        status: 200,
        body: {
          value: v.value,
          id: `${origin}/secrets/${plain.name}/${v.version}`,
          ...(v.contentType !== undefined ? { contentType: v.contentType } : {}),
          attributes: {
            enabled: v.enabled,
            created: v.created,
            updated: v.updated,
            recoveryLevel: recoveryLevelFor(days),
            recoverableDays: days,
          },
          ...(v.tags !== undefined ? { tags: v.tags } : {}),
        },
      }
    }
    const e = store.active(name)
    if (!e) throw KvError.secretNotFound(name)
    const v = version === "" ? store.latest(e) : e.versions.find((x) => x.version === version.toLowerCase())
    if (!v) throw KvError.secretNotFound(`${name}/${version}`)
    if (!v.enabled)
      throw new KvError(
        403,
        "Forbidden",
        "Operation get is not allowed on a disabled secret.",
        "SecretDisabled",
      )
    // The format it is held in is answered as held; PKCS#12 to PEM is the one documented conversion.
    if (
      outContentType !== undefined &&
      outContentType !== v.contentType &&
      v.contentType !== PFX_CONTENT_TYPE
    )
      throw outContentTypeNotServed(outContentType, `a certificate whose secret is ${v.contentType}`)
    const value =
      outContentType === PEM_CONTENT_TYPE && v.contentType === PFX_CONTENT_TYPE
        ? this.pemValue(v)
        : await this.secretValue(v)
    return {
      status: 200,
      body: {
        value: value.value,
        contentType: value.contentType,
        id: `${origin}/secrets/${e.name}/${v.version}`,
        attributes: { ...certAttributes(v, days) },
        ...(v.tags !== undefined ? { tags: v.tags } : {}),
        kid: `${origin}/keys/${e.name}/${v.version}`,
        managed: true,
      },
    }
  }

  /** A PKCS#12 backing secret converted to PEM (`outContentType`): the key (when exportable) as PKCS#8, then the certificates. */
  private pemValue(v: CertVersion): { value: string; contentType: string } {
    return { value: pemSecret(v.certs, v.exportable ? v.key : undefined), contentType: PEM_CONTENT_TYPE }
  }

  /** The backing secret's value: PFX (blank password, re-encoded) or PEM, without the key when it is not exportable. */
  private async secretValue(v: CertVersion): Promise<{ value: string; contentType: string }> {
    const key = v.exportable ? v.key : undefined
    if (v.contentType === PEM_CONTENT_TYPE || !key) {
      // Deviation: a non-exportable key with a PKCS#12 content type is served as PEM certificates (see README).
      return { value: pemSecret(v.certs, key), contentType: PEM_CONTENT_TYPE }
    }
    const cached = pfxCache.get(v)
    if (cached !== undefined) return { value: cached, contentType: PFX_CONTENT_TYPE }
    const codec = await loadPfxCodec()
    if (!codec)
      throw KvError.internal("PKCS#12 support (@kvdeploy/pkcs12) is not available in this emulator build.")
    const pfx = await codec.encode(
      { leaf: v.leaf, chain: v.certs.slice(1), key },
      this.ctx.secretEncoding,
      v.version,
    )
    const value = Buffer.from(pfx).toString("base64")
    pfxCache.set(v, value)
    return { value, contentType: PFX_CONTENT_TYPE }
  }

  private setSecret(origin: string, name: string, body: unknown): Outcome {
    const store = this.ctx.store
    if (store.certificates.has(name.toLowerCase()))
      throw KvError.conflict(`Secret ${name} is managed by a certificate and cannot be set directly.`)
    if (!isRecord(body) || typeof body.value !== "string")
      throw KvError.badParameter("Property value is required")
    if (body.value.length > SECRET_VALUE_LIMIT)
      throw KvError.badParameter(
        `The secret value size (${body.value.length}) exceeds the maximum allowed size of ${SECRET_VALUE_LIMIT} characters.`,
      )
    const tags = checkTags(body.tags)
    const now = nowSeconds()
    const entry = store.secrets.get(name.toLowerCase()) ?? { name, versions: [] }
    const enabled =
      isRecord(body.attributes) && typeof body.attributes.enabled === "boolean"
        ? body.attributes.enabled
        : true
    const v = {
      version: newVersionId(),
      value: body.value,
      contentType: typeof body.contentType === "string" ? body.contentType : undefined,
      created: now,
      updated: now,
      enabled,
      tags,
    }
    entry.versions.push(v)
    store.secrets.set(name.toLowerCase(), entry)
    store.changed()
    return {
      status: 200,
      body: {
        value: v.value,
        id: `${origin}/secrets/${entry.name}/${v.version}`,
        ...(v.contentType !== undefined ? { contentType: v.contentType } : {}),
        attributes: {
          enabled,
          created: now,
          updated: now,
          recoveryLevel: recoveryLevelFor(this.ctx.recoverableDays),
          recoverableDays: this.ctx.recoverableDays,
        },
        ...(tags !== undefined ? { tags } : {}),
      },
    }
  }
}

/**
 * `outContentType` of a secret read, checked before the read: Key Vault documents it from
 * api-version 2025-07-01 ("If a supported format is specified, the certificate content is converted
 * to the requested format. Currently, only PFX to PEM conversion is supported. If an unsupported
 * format is specified, the request is rejected."). The emulator serves that one conversion
 * (`getSecret` above: a certificate-backed PKCS#12 secret as PEM) and refuses, with 400, what the
 * documentation leaves open, rather than ignore the parameter and answer what a test expects.
 */
export const outContentTypeOf = (params: URLSearchParams, apiVersion: string): string | undefined => {
  const raw = params.get("outContentType")
  if (raw === null) return undefined
  if (!OUT_CONTENT_TYPE_VERSIONS.test(apiVersion))
    throw KvError.badParameter(
      `The Key Vault emulator does not serve outContentType with api-version ${apiVersion}: the parameter exists from api-version 2025-07-01 (what Key Vault does with it on older versions is not documented). Send api-version 2025-07-01 or later, or leave outContentType out.`,
    )
  const wanted = raw.toLowerCase()
  // Both are ContentType's known values (the SDK's KnownContentType; .NET's SecretContentType.Pkcs12
  // "content is downloaded in pkcs12 (PFX) format"): PKCS#12 of a secret held as PKCS#12 is the
  // secret as held, no conversion; getSecret refuses it on a secret held as PEM (no PEM-to-PFX).
  if (wanted === PEM_CONTENT_TYPE) return PEM_CONTENT_TYPE
  if (wanted === PFX_CONTENT_TYPE) return PFX_CONTENT_TYPE
  throw KvError.badParameter(
    `The value of outContentType (${raw}) is not supported: Key Vault converts a certificate's PKCS#12 secret to PEM only (outContentType=${PEM_CONTENT_TYPE}). Leave outContentType out to read the secret as it is held.`,
  )
}

/** A PEM `outContentType` on a secret that is not a certificate's PKCS#12 one: undocumented, refused. */
const outContentTypeNotServed = (wanted: string, what: string): KvError =>
  KvError.badParameter(
    `The Key Vault emulator does not serve outContentType=${wanted} on ${what}: Key Vault documents the conversion of a certificate's PKCS#12 secret to PEM only, not what it answers for other secrets. Leave outContentType out to read the secret as it is held.`,
  )

const IN_PROGRESS =
  "Pending certificate created. Certificate request is in progress. This may take some time based on the issuer provider. Please check again later."

const renderOperation = (origin: string, e: CertEntry) => {
  const p = e.pending
  const done = p?.status === "completed"
  return {
    id: `${origin}/certificates/${e.name}/pending`,
    issuer: { name: e.policy.issuer?.name ?? "Unknown" },
    csr: p ? Buffer.from(p.csr).toString("base64") : undefined,
    cancellation_requested: p?.cancellationRequested ?? false,
    status: p?.status ?? "completed",
    // A completed operation has no status_details (Key Vault's recorded operations).
    ...(done ? {} : { status_details: IN_PROGRESS }),
    ...(done ? { target: `${origin}/certificates/${e.name}` } : {}),
    request_id: p?.requestId,
    preserveCertOrder: false,
  }
}

const MAX_RESULTS = 25

/**
 * The certificates the list shows (not deleted, with a version or a first create's), in Key
 * Vault's order (by name, case-insensitively), sorted once per store revision:
 * every change to which certificates exist, are deleted or have a version
 * bumps it. Sorting 10,000 names on every page cost about 6 ms a page (2.4 s
 * of emulator time per pass over 400 pages). The items are rendered per page
 * from the entries, so property changes show at once.
 */
const listCache = new WeakMap<
  VaultStore,
  { readonly revision: number; readonly entries: ReadonlyArray<CertEntry> }
>()
const listedEntries = (store: VaultStore): ReadonlyArray<CertEntry> => {
  // A delete or recovery that has not shown yet changes the list when it does: nothing cached meanwhile.
  const settling = store.anySettling()
  const cached = listCache.get(store)
  if (!settling && cached?.revision === store.revision) return cached.entries
  const entries = [...store.certificates.values()]
    .filter(
      (e) =>
        !e.deleted &&
        !store.settling(e, "recovering") &&
        (e.versions.length > 0 || firstCreateOf(e) !== undefined),
    )
    .sort((x, y) => (x.name.toLowerCase() < y.name.toLowerCase() ? -1 : 1))
  if (!settling) listCache.set(store, { revision: store.revision, entries })
  return entries
}

/**
 * Key Vault's rule for an import's format (`importContentType: "required"`): it infers nothing from
 * the value. A policy without `secret_props.contentType` is refused as Key Vault refuses it, with
 * its message as sent (trailing CRLF included: Azure/azure-sdk-for-go#21780,
 * Azure/azure-sdk-for-net#11669); the value is then read as the stated type says (no policy:
 * base64 PKCS#12), so PEM text not stated as `application/x-pem-file` is unreadable PKCS#12, and a
 * value stated as PEM that is not PEM text is unreadable PEM.
 */
const checkStatedFormat = (
  value: string,
  policy: PolicyWire | undefined,
  stated: string | undefined,
): void => {
  if (policy !== undefined && stated === undefined)
    throw KvError.badParameter("Property policy has invalid value\r\n")
  const pem = isPemValue(value)
  if (stated === PEM_CONTENT_TYPE ? !pem : pem) throw stated === PEM_CONTENT_TYPE ? badPem() : unreadablePfx()
}

/**
 * The marker scope of a list: what every key marker of its `$skiptoken` starts with, so that a
 * token of one list (another certificate's versions, the deleted certificates) is refused by another.
 * Of a list operation (`LIST_OPERATIONS`): any other is taken for `versions`.
 */
const listScope = (operation: OperationName, name: string | undefined): string =>
  operation === "list"
    ? "certificate/"
    : operation === "listDeleted"
      ? "deletedcertificate/"
      : `certificate/${(name ?? "").toLowerCase()}/`

/**
 * A `$skiptoken` as Key Vault's are in the SDK's recordings: base64 of
 * `{"NextMarker":"2!<n>!<base64 marker>","TargetLocation":0}`, the marker naming the last item
 * answered (`000076!certificate/NAME!…`, the name upper-cased). Here the marker is
 * `<6-digit length>!<scope><key>!`, the key the item's sort key in its list; what follows the
 * name in Key Vault's (`!000028!9999-12-31T23:59:59.9999999Z!`) is left out.
 */
const skiptokenOf = (scope: string, key: string): string => {
  // The object type as recorded (`certificate/`), the rest upper-cased.
  const slash = scope.indexOf("/") + 1
  const id = `${scope.slice(0, slash)}${`${scope.slice(slash)}${key}`.toUpperCase()}`
  const marker = Buffer.from(`${String(id.length).padStart(6, "0")}!${id}!`).toString("base64url")
  return Buffer.from(
    JSON.stringify({ NextMarker: `2!${marker.length}!${marker}`, TargetLocation: 0 }),
  ).toString("base64url")
}

/** The sort key a `$skiptoken` names, if it is one of the list of `scope`; else undefined. */
const keyOfSkiptoken = (token: string, scope: string): string | undefined => {
  if (!/^[A-Za-z0-9_-]+={0,2}$/.test(token)) return undefined
  let outer: unknown
  try {
    outer = JSON.parse(Buffer.from(token, "base64url").toString("utf8"))
  } catch {
    return undefined
  }
  if (!isRecord(outer) || typeof outer.NextMarker !== "string") return undefined
  const m = /^2!(\d+)!([A-Za-z0-9_-]+)$/.exec(outer.NextMarker)
  if (m === null || Number(m[1]) !== m[2]?.length) return undefined
  const inner = /^(\d{6})!([^!]+)!$/.exec(Buffer.from(m[2], "base64url").toString("utf8"))
  if (inner === null || Number(inner[1]) !== inner[2]?.length) return undefined
  const id = inner[2].toLowerCase()
  if (!id.startsWith(scope)) return undefined
  const key = id.slice(scope.length)
  return key === "" || key.includes("/") ? undefined : key
}

/** The list's `includePending` query parameter: false when absent; a value other than true or false is 400. */
const includePendingOf = (params: URLSearchParams): boolean => {
  const raw = params.get("includePending")
  if (raw === null || raw === "") return false
  const value = raw.toLowerCase()
  if (value !== "true" && value !== "false")
    throw KvError.badParameter(`The value of includePending (${raw}) is not valid: it must be true or false.`)
  return value === "true"
}

/**
 * A character that sorts before every character of a list's keys (names are `[0-9a-z-]`, versions
 * hex): a marker key with it appended falls where the key without it does. The next link of a page
 * a `shortPage` fault left empty.
 */
const NO_KEY = "*"

/** A list the emulator pages: its items in order of `keyOf`, each key unique. */
interface Paged<T> {
  /** The list's path, for the next link. */
  readonly path: string
  /** Its markers' scope (`listScope`). */
  readonly scope: string
  readonly items: ReadonlyArray<T>
  /** The item's sort key (lower case): the items are in ascending order of it. */
  readonly keyOf: (item: T) => string
  readonly render: (item: T) => unknown
  /** Query parameters the next link keeps (`&name=value`). */
  readonly keep?: string
}

/**
 * One page of a list (only its items are rendered) and the link to the next. The link's
 * `$skiptoken` names the last item answered, and the next page starts after that key in the list
 * as it is then: an item added or removed between two pages neither repeats nor hides another
 * (an offset would: Key Vault pages by marker).
 */
const page = <T>(
  origin: string,
  list: Paged<T>,
  params: URLSearchParams,
  apiVersion: string,
  /** At most this many items on this page (a `shortPage` fault), the next link going on from there. */
  shortPage?: number,
): Outcome => {
  const raw = params.get("maxresults")
  let max = MAX_RESULTS
  if (raw !== null && raw !== "") {
    const n = Number(raw)
    if (!Number.isInteger(n) || n < 1 || n > MAX_RESULTS)
      throw KvError.badParameter(
        `The value of maxresults (${raw}) is out of range: it must be between 1 and ${MAX_RESULTS}.`,
      )
    max = n
  }
  const { items, keyOf } = list
  const token = params.get("$skiptoken")
  let start = 0
  let after: string | undefined
  if (token !== null) {
    after = keyOfSkiptoken(token, list.scope)
    if (after === undefined)
      throw KvError.badParameter(
        "The value of $skiptoken is not a page marker of this list: pass the nextLink of the previous page unchanged, or no $skiptoken for the first page.",
      )
    // The first item after the marker's key (the items are in ascending key order).
    let hi = items.length
    const key = after
    while (start < hi) {
      const mid = (start + hi) >>> 1
      if (keyOf(items[mid] as T) <= key) start = mid + 1
      else hi = mid
    }
  }
  const count = shortPage === undefined ? max : Math.min(max, shortPage)
  const shown = items.slice(start, start + count)
  // The marker names the last item answered. A page a `shortPage` fault emptied names the marker it
  // was asked with, one NO_KEY longer (a key before every key, on the first page): the next page
  // starts where this one did, and each empty page's link is new, as Key Vault's markers move on
  // over what a page did not answer (the same link twice is a loop to a client).
  const last = shown.at(-1)
  const marker = last === undefined ? `${after ?? ""}${NO_KEY}` : keyOf(last)
  const nextLink =
    start + count < items.length
      ? `${origin}${list.path}?api-version=${encodeURIComponent(apiVersion)}&$skiptoken=${skiptokenOf(list.scope, marker)}&maxresults=${max}${list.keep ?? ""}`
      : null
  return { status: 200, body: { value: shown.map(list.render), nextLink } }
}

const defaultCode = (status: number): string =>
  status === 400
    ? "BadParameter"
    : status === 401
      ? "Unauthorized"
      : status === 403
        ? "Forbidden"
        : status === 404
          ? "NotFound"
          : status === 409
            ? "Conflict"
            : status === 429
              ? "Throttled"
              : status === 503
                ? "ServiceUnavailable"
                : "InternalServerError"

export type { PolicyWire }
