/**
 * Fault injection per vault operation: scripted in process (`emulator.faults`)
 * or over the admin endpoint (`POST /_emulator/faults`). A rule matches an
 * operation (optionally one vault and one certificate name), may skip the first
 * N matches, and fires `times` times (then the operation succeeds again).
 */
export const OPERATIONS = [
  "import",
  "create",
  "getOperation",
  "cancelOperation",
  "deleteOperation",
  "getLatest",
  "getVersion",
  "versions",
  "list",
  "updateProperties",
  "getPolicy",
  "updatePolicy",
  "delete",
  "getDeleted",
  "listDeleted",
  "recover",
  "purge",
  "getSecret",
  "setSecret",
  "getKey",
] as const

export type OperationName = (typeof OPERATIONS)[number]

/** The operations that answer a page of a list, with a `nextLink` to the next. */
export const LIST_OPERATIONS: ReadonlyArray<OperationName> = ["list", "versions", "listDeleted"]

/**
 * The identity endpoints' operations: Entra ID's token endpoint, and the
 * managed identity endpoints (IMDS, App Service). A rule names one of them
 * explicitly ("*" matches vault operations only) and takes no vault or name.
 */
export const IDENTITY_OPERATIONS = ["token", "imdsToken", "appServiceToken"] as const

export type IdentityOperationName = (typeof IDENTITY_OPERATIONS)[number]

/**
 * The actions an identity endpoint's fault can take (nothing there is written, so nothing "after
 * commit"); `omitFields` and `setFields` change its token answer, `rawAnswer` replaces it.
 */
export const IDENTITY_FAULT_KINDS = [
  "status",
  "throttle",
  "delay",
  "hold",
  "drop",
  "omitFields",
  "setFields",
  "rawAnswer",
] as const

export type FaultAction =
  /**
   * Answer this status and Key Vault error body without performing the operation. A vault
   * operation's 429 carries `Retry-After: 1`, as Key Vault's always carry one, unless `headers`
   * gives `Retry-After` (or `retry-after-ms`, `x-ms-retry-after-ms`) itself; a 429 without one
   * (a proxy's) is a `rawAnswer`.
   */
  | {
      readonly kind: "status"
      readonly status: number
      readonly code?: string
      readonly message?: string
      readonly innerCode?: string
      readonly headers?: Readonly<Record<string, string>>
      /** Wait this long first (a slow refusal: the client waits, then fails). */
      readonly afterMs?: number
    }
  /**
   * Answer 429 Throttled with Retry-After (whole seconds from 0 to 3600, default 1) without
   * performing the operation. The Azure SDKs' throttling retry waits that long and tries again
   * (0: at once).
   */
  | { readonly kind: "throttle"; readonly retryAfterSeconds?: number }
  /** Wait, then perform the operation normally. */
  | { readonly kind: "delay"; readonly ms: number }
  /**
   * Wait until the test releases the fault (`faults.release(id)`, or `POST
   * /_emulator/faults/{id}/release`), then perform the operation normally; a
   * hold not released within `timeoutMs` (default 30,000) goes on by itself.
   * Removing the fault, clearing the faults or stopping the emulator releases it too.
   */
  | { readonly kind: "hold"; readonly timeoutMs?: number }
  /** Close the connection without an answer and without performing the operation. */
  | { readonly kind: "drop" }
  /** Perform the operation (the write commits), then close the connection without an answer: an ambiguous outcome. */
  | { readonly kind: "dropAfterCommit" }
  /**
   * Perform the operation, whatever it answers (a refusal by the operation itself too, not one by
   * RBAC, throttling or the request's checks: the request log keeps its error code), then close the
   * connection without an answer: the client cannot tell a write from a refusal.
   */
  | { readonly kind: "dropAnswer" }
  /** Perform the operation, then wait `ms` before answering (a client timeout shorter than this sees an ambiguous outcome). */
  | { readonly kind: "delayAfterCommit"; readonly ms: number }
  /**
   * Perform the operation and answer it as performed, then disable the
   * certificate's latest version (for an import, the version it created), as
   * a policy or an operator might right after a write: the vault serves that
   * version, but disabled. A deploy's verify sees its own version, wrong.
   */
  | { readonly kind: "disableAfterCommit" }
  /**
   * Perform the operation, then send its answer with text appended after the
   * JSON (as a faulty proxy might): the client cannot parse the answer, which
   * still holds everything the operation answers (a backing secret's value too).
   */
  | { readonly kind: "garbleAnswer" }
  /**
   * Perform the operation, then answer without these fields of its JSON body (dotted paths into
   * objects, such as `deletedDate` or `attributes.created`; an array's item by its index, as in
   * `value.0.x5t`, or `*` for every item, as in `value.*.x5t`): a vault answer with facts missing,
   * to test what a client makes of it.
   */
  | { readonly kind: "omitFields"; readonly fields: ReadonlyArray<string> }
  /**
   * Perform the operation, then answer with these fields of its JSON body set to these JSON values
   * (paths as omitFields'; the last field is added where it is missing): an answer a proxy or a faulty
   * service changed, such as a list's `nextLink` leading back to its own page.
   */
  | { readonly kind: "setFields"; readonly fields: Readonly<Record<string, unknown>> }
  /**
   * A list operation's only (`list`, `versions`, `listDeleted`): perform it, then answer with a
   * `nextLink` that no answer gave before, to an empty page past the list's end (in place of the
   * answer's own): a faulty service or proxy whose list never ends. With `times: "always"` every
   * page leads to another.
   */
  | { readonly kind: "endlessList" }
  /**
   * A list operation's only (`list`, `versions`, `listDeleted`): answer at most `items` entries
   * (0 to 24; 0: an empty page) of the page the list would answer, with a `nextLink` to the rest,
   * as Key Vault may (Azure/azure-sdk-for-go#10711: `{"value":[],"nextLink":"…"}` on a first
   * page). Nothing is lost or repeated: the next page starts after the last entry answered. A list
   * still ends; with `items: 0` and `times: "always"` it never does.
   */
  | { readonly kind: "shortPage"; readonly items: number }
  /**
   * Another writer imports a new self-signed version of the same certificate
   * (`before` this request runs, default, or `after` it committed but before the answer).
   * Nothing is written when Key Vault would refuse that import (the name soft-deleted or
   * being deleted); the request goes on as usual.
   */
  | {
      readonly kind: "foreignImport"
      readonly when?: "before" | "after"
      readonly tags?: Readonly<Record<string, string>>
      readonly subject?: string
    }
  /**
   * Another writer deletes the certificate (a soft delete, as `DELETE /certificates/{name}` does;
   * it shows after the emulator's `propagationMs`), `before` this request runs (default) or
   * `after` it committed but before the answer. Nothing happens when the name holds no active
   * certificate then.
   */
  | { readonly kind: "foreignDelete"; readonly when?: "before" | "after" }
  /**
   * Another writer recovers the soft-deleted certificate (as `POST /deletedcertificates/{name}/recover`
   * does; it shows after the emulator's `propagationMs`), `before` this request runs (default) or
   * `after` it committed but before the answer. Nothing happens when the name holds no deleted
   * certificate then (one still being deleted included).
   */
  | { readonly kind: "foreignRecover"; readonly when?: "before" | "after" }
  /**
   * Answer this text instead (`status` default 200, with `contentType` when given), as a proxy, a
   * captive portal, a broken endpoint or another service at the vault's URL might: an HTML page,
   * an empty body, JSON of another shape, without Key Vault's error body or headers. The
   * operation does not run. An identity endpoint's operation, or a vault's.
   */
  | {
      readonly kind: "rawAnswer"
      readonly body: string
      readonly status?: number
      readonly contentType?: string
    }
  /**
   * An import's or create's only: the vault's Azure Policy refuses the certificate (a built-in
   * certificate policy assigned with effect Deny: maximum validity, allowed key types or curves,
   * minimum RSA key size, lifetime action triggers), as Key Vault answers it: 403, code
   * `Forbidden`, inner code `ForbiddenByPolicy` (the one an access policy's refusal carries too),
   * and a message that is itself JSON: `objectName`, "Certificate 'NAME' was disallowed by policy."
   * and the `policyIdentifiers` of the assignment and definition that refused it. The operation
   * does not run. Without `assignment` or `definition`, the emulator's own names (the definition:
   * the built-in maximum validity period).
   */
  | {
      readonly kind: "policyDenied"
      readonly assignment?: PolicyIdentifier
      readonly definition?: PolicyIdentifier
    }

/** An Azure Policy assignment's or definition's name and resource id, as a policy refusal names them. */
export interface PolicyIdentifier {
  readonly name?: string
  readonly id?: string
}

/** The operations Azure Policy's certificate policies judge (a `policyDenied` fault's). */
export const POLICY_OPERATIONS: ReadonlyArray<OperationName> = ["import", "create"]

/** The built-in "Certificates should have the specified maximum validity period" definition. */
const MAXIMUM_VALIDITY_DEFINITION = "0a075868-4c26-42ef-914c-5bc007359560"

/**
 * Key Vault's answer when Azure Policy refuses a certificate: its error's message, which is JSON
 * (`objectName`, `message`, `policyIdentifiers`), as an azure-cli maintainer quoted one
 * (Azure/azure-cli#21626).
 */
export const policyDeniedMessage = (
  name: string,
  action: { readonly assignment?: PolicyIdentifier; readonly definition?: PolicyIdentifier },
): string => {
  const assignmentName = action.assignment?.name ?? "kv-emulator-certificate-policy"
  const definitionName = action.definition?.name ?? MAXIMUM_VALIDITY_DEFINITION
  return JSON.stringify({
    objectName: name,
    message: `Certificate '${name}' was disallowed by policy.`,
    policyIdentifiers: {
      policyAssignment: {
        name: assignmentName,
        id:
          action.assignment?.id ??
          `/subscriptions/00000000-0000-0000-0000-000000000000/providers/Microsoft.Authorization/policyAssignments/${assignmentName}`,
      },
      policyDefinition: {
        name: definitionName,
        id: action.definition?.id ?? `/providers/Microsoft.Authorization/policyDefinitions/${definitionName}`,
      },
    },
  })
}

export interface FaultRule {
  /** Operation name, or "*" for every vault operation (not the identity endpoints'). */
  readonly operation: OperationName | IdentityOperationName | "*"
  /** Only this vault (name); every vault when omitted. */
  readonly vault?: string
  /** Only requests for this certificate / secret name (case-insensitive). */
  readonly name?: string
  /** Let the first N matching requests through untouched. */
  readonly skip?: number
  /** How many matching requests the fault hits (default 1); "always" never runs out. */
  readonly times?: number | "always"
  readonly action: FaultAction
}

export interface ActiveFault extends FaultRule {
  readonly id: string
  /** How many requests it has hit so far. */
  readonly hits: number
}

interface Slot {
  readonly id: string
  readonly rule: FaultRule
  skipped: number
  hits: number
}

export class FaultController {
  private slots: Slot[] = []
  private counter = 0
  /** Requests a `hold` fault is holding, by fault id; and the faults released already. */
  private waiting = new Map<string, Array<() => void>>()
  private released = new Set<string>()

  /** Adds a rule; returns its id (for `remove`). */
  add(rule: FaultRule): string {
    validateRule(rule)
    const id = `fault-${++this.counter}`
    this.slots.push({ id, rule, skipped: 0, hits: 0 })
    return id
  }

  /** Fails the operation `times` times with `status` (and a Key Vault error body), then lets it succeed. */
  failTimes(
    operation: OperationName,
    times: number,
    status: number,
    options: { vault?: string; code?: string; message?: string } = {},
  ): string {
    return this.add({
      operation,
      ...(options.vault !== undefined ? { vault: options.vault } : {}),
      times,
      action: {
        kind: "status",
        status,
        ...(options.code !== undefined ? { code: options.code } : {}),
        ...(options.message !== undefined ? { message: options.message } : {}),
      },
    })
  }

  remove(id: string): boolean {
    const before = this.slots.length
    this.slots = this.slots.filter((s) => s.id !== id)
    this.release(id)
    return this.slots.length !== before
  }

  clear(): void {
    this.slots = []
    for (const id of [...this.waiting.keys()]) this.release(id)
  }

  /**
   * Lets the requests a `hold` fault holds go on, and every later one it hits
   * pass at once. False when the fault is unknown (never added, or removed).
   */
  release(id: string): boolean {
    const known = this.slots.some((s) => s.id === id) || this.waiting.has(id)
    if (!known) return false
    this.released.add(id)
    const held = this.waiting.get(id) ?? []
    this.waiting.delete(id)
    for (const go of held) go()
    return true
  }

  /** Resolves when the `hold` fault `id` is released, or after `timeoutMs`. */
  hold(id: string, timeoutMs: number): Promise<void> {
    if (this.released.has(id)) return Promise.resolve()
    return new Promise<void>((resolve) => {
      const timer = setTimeout(go, timeoutMs)
      function go() {
        clearTimeout(timer)
        resolve()
      }
      const held = this.waiting.get(id) ?? []
      held.push(go)
      this.waiting.set(id, held)
    })
  }

  list(): ReadonlyArray<ActiveFault> {
    return this.slots.map((s) => ({ ...s.rule, id: s.id, hits: s.hits }))
  }

  /** The action to apply to this request, if a rule matches (consumes one use). */
  take(
    vault: string,
    operation: OperationName | IdentityOperationName,
    name: string | undefined,
  ): { id: string; action: FaultAction } | undefined {
    const identity = (IDENTITY_OPERATIONS as ReadonlyArray<string>).includes(operation)
    for (const slot of this.slots) {
      const r = slot.rule
      if (r.operation === "*" ? identity : r.operation !== operation) continue
      if (r.vault !== undefined && r.vault.toLowerCase() !== vault.toLowerCase()) continue
      if (r.name !== undefined && (name === undefined || r.name.toLowerCase() !== name.toLowerCase()))
        continue
      if (slot.skipped < (r.skip ?? 0)) {
        slot.skipped++
        continue
      }
      const times = r.times ?? 1
      if (times !== "always" && slot.hits >= times) continue
      slot.hits++
      return { id: slot.id, action: r.action }
    }
    return undefined
  }
}

const isRec = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v)

/** Key Vault's largest list page (`maxresults` 25). */
const MAX_PAGE_ITEMS = 25

/** The longest Retry-After a `throttle` fault sends (an hour; Key Vault's windows are 10 s). */
export const MAX_RETRY_AFTER_SECONDS = 3600

/** The headers a throttling answer's wait is read from by the Azure SDKs (core-rest-pipeline's throttling retry). */
const RETRY_AFTER_HEADERS = ["retry-after", "retry-after-ms", "x-ms-retry-after-ms"]

/**
 * The headers of a `status` fault's answer: a 429 gets `Retry-After: 1` unless the rule gives a
 * wait itself, as Key Vault never answers 429 without one.
 */
export const statusFaultHeaders = (
  status: number,
  headers: Readonly<Record<string, string>> | undefined,
): Readonly<Record<string, string>> =>
  status === 429 && !Object.keys(headers ?? {}).some((h) => RETRY_AFTER_HEADERS.includes(h.toLowerCase()))
    ? { "Retry-After": "1", ...headers }
    : (headers ?? {})

export const validateRule = (rule: unknown): FaultRule => {
  if (!isRec(rule)) throw new Error("fault rule must be an object")
  const op = rule.operation
  const identity = IDENTITY_OPERATIONS.includes(op as IdentityOperationName)
  if (op !== "*" && !identity && !OPERATIONS.includes(op as OperationName))
    throw new Error(
      `unknown operation ${String(op)}; one of ${OPERATIONS.join(", ")}, *, or an identity endpoint's ${IDENTITY_OPERATIONS.join(", ")}`,
    )
  const action = rule.action
  if (!isRec(action)) throw new Error("fault rule needs an action")
  if (identity) {
    if (rule.vault !== undefined || rule.name !== undefined)
      throw new Error(`${String(op)} is an identity endpoint's operation: it takes no vault or name`)
    if (!(IDENTITY_FAULT_KINDS as ReadonlyArray<unknown>).includes(action.kind))
      throw new Error(
        `an identity endpoint's fault is one of ${IDENTITY_FAULT_KINDS.join(", ")}, not ${String(action.kind)}`,
      )
  }
  if (
    (action.kind === "endlessList" || action.kind === "shortPage") &&
    !LIST_OPERATIONS.includes(op as OperationName)
  )
    throw new Error(
      `${action.kind} is a list operation's fault (${LIST_OPERATIONS.join(", ")}), not ${String(op)}'s`,
    )
  if (action.kind === "policyDenied") {
    if (!POLICY_OPERATIONS.includes(op as OperationName))
      throw new Error(
        `policyDenied is a certificate write's fault (${POLICY_OPERATIONS.join(", ")}), not ${String(op)}'s`,
      )
    for (const field of ["assignment", "definition"] as const) {
      const given = action[field]
      if (
        given !== undefined &&
        (!isRec(given) ||
          Object.entries(given).some(([k, v]) => (k !== "name" && k !== "id") || typeof v !== "string"))
      )
        throw new Error(
          `policyDenied action's ${field} must be an object of name and id (text), such as {"name": "cert-max-validity", "id": "/subscriptions/…/providers/Microsoft.Authorization/policyAssignments/cert-max-validity"}`,
        )
    }
  }
  if (
    action.kind === "shortPage" &&
    (typeof action.items !== "number" ||
      !Number.isInteger(action.items) ||
      action.items < 0 ||
      action.items >= MAX_PAGE_ITEMS)
  )
    throw new Error(
      `shortPage action needs items: a whole number from 0 (an empty page) to ${MAX_PAGE_ITEMS - 1}, the entries the page answers, not ${JSON.stringify(action.items)}`,
    )
  const kinds = [
    "status",
    "throttle",
    "delay",
    "hold",
    "drop",
    "dropAfterCommit",
    "dropAnswer",
    "delayAfterCommit",
    "disableAfterCommit",
    "garbleAnswer",
    "omitFields",
    "setFields",
    "endlessList",
    "shortPage",
    "foreignImport",
    "foreignDelete",
    "foreignRecover",
    "rawAnswer",
    "policyDenied",
  ]
  if (!kinds.includes(String(action.kind))) throw new Error(`unknown action kind ${String(action.kind)}`)
  if (
    action.kind === "status" &&
    (typeof action.status !== "number" || action.status < 100 || action.status > 599)
  )
    throw new Error("status action needs a numeric status")
  if (
    action.kind === "status" &&
    action.afterMs !== undefined &&
    (typeof action.afterMs !== "number" || !(action.afterMs >= 0) || action.afterMs > 2_147_483_647)
  )
    throw new Error("status action's afterMs must be a number of milliseconds from 0 to 2147483647")
  if (
    action.kind === "throttle" &&
    action.retryAfterSeconds !== undefined &&
    (typeof action.retryAfterSeconds !== "number" ||
      !Number.isInteger(action.retryAfterSeconds) ||
      action.retryAfterSeconds < 0 ||
      action.retryAfterSeconds > MAX_RETRY_AFTER_SECONDS)
  )
    throw new Error(
      `throttle action's retryAfterSeconds must be a whole number of seconds from 0 to ${MAX_RETRY_AFTER_SECONDS} (what Retry-After says; leave it out for 1), not ${JSON.stringify(action.retryAfterSeconds)}`,
    )
  if (
    action.kind === "status" &&
    action.headers !== undefined &&
    (!isRec(action.headers) || !Object.values(action.headers).every((v) => typeof v === "string"))
  )
    throw new Error(
      'status action\'s headers must be an object of header names and text values, such as {"Retry-After": "5"}',
    )
  if (
    action.kind === "omitFields" &&
    (!Array.isArray(action.fields) ||
      action.fields.length === 0 ||
      !action.fields.every((f: unknown) => typeof f === "string" && f !== ""))
  )
    throw new Error("omitFields action needs fields: a non-empty list of field paths such as deletedDate")
  if (
    action.kind === "setFields" &&
    (typeof action.fields !== "object" ||
      action.fields === null ||
      Array.isArray(action.fields) ||
      Object.keys(action.fields).length === 0 ||
      !Object.keys(action.fields).every((f) => f !== "") ||
      Object.values(action.fields).some((v) => v === undefined))
  )
    throw new Error(
      'setFields action needs fields: an object of field paths and JSON values such as {"nextLink": "https://…"}',
    )
  if ((action.kind === "delay" || action.kind === "delayAfterCommit") && typeof action.ms !== "number")
    throw new Error(`${String(action.kind)} action needs ms`)
  if (
    action.kind === "hold" &&
    action.timeoutMs !== undefined &&
    (typeof action.timeoutMs !== "number" ||
      !Number.isFinite(action.timeoutMs) ||
      action.timeoutMs < 0 ||
      action.timeoutMs > 2_147_483_647)
  )
    throw new Error("hold action's timeoutMs must be a number of milliseconds from 0 to 2147483647")
  if (
    (action.kind === "foreignImport" ||
      action.kind === "foreignDelete" ||
      action.kind === "foreignRecover") &&
    action.when !== undefined &&
    action.when !== "before" &&
    action.when !== "after"
  )
    throw new Error(
      `${String(action.kind)} action's when must be "before" or "after", not ${String(action.when)}`,
    )
  if (action.kind === "rawAnswer") {
    if (typeof action.body !== "string") throw new Error("rawAnswer action needs body: the text to answer")
    if (
      action.status !== undefined &&
      (typeof action.status !== "number" ||
        !Number.isInteger(action.status) ||
        action.status < 200 ||
        action.status > 599)
    )
      throw new Error("rawAnswer action's status must be a whole number from 200 to 599")
    if (action.contentType !== undefined && typeof action.contentType !== "string")
      throw new Error("rawAnswer action's contentType must be a string such as text/html")
  }
  const times = rule.times
  if (times !== undefined && times !== "always" && (typeof times !== "number" || times < 0))
    throw new Error('times must be a non-negative number or "always"')
  return rule as unknown as FaultRule
}
