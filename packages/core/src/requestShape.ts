/**
 * The shape of a `DeployRequest` from a caller the types do not bind (JavaScript, `as any`, JSON):
 * each field of the type the deploy reads, checked once at its entry with a few `typeof` checks
 * (no schema decode: `deploy` is on a measured path). A value of another type is a problem naming
 * the field and the fix, so the deploy ends `Rejected` (audited and counted like any refusal,
 * nothing sent to the vault) instead of throwing a TypeError out of its Effect. What a value holds
 * (a key, perhaps) is never shown, only its type.
 */
import * as Redacted from "effect/Redacted"
import type { DeployProblem } from "./outcome.js"
import type { ValidateFailureReason } from "./ports/Metrics.js"
import type { DeployRequest } from "./request.js"

/** A value's type as a message names it (never the value). */
const typeOf = (value: unknown): string =>
  value === null
    ? "null"
    : Array.isArray(value)
      ? "an array"
      : value instanceof Uint8Array
        ? "bytes"
        : typeof value === "object"
          ? "an object"
          : typeof value === "undefined"
            ? "missing"
            : `a ${typeof value}`

const shape = (
  field: string,
  message: string,
  fix: string,
  reason: ValidateFailureReason,
): DeployProblem => ({
  field,
  message,
  fix,
  reason,
})

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null

const MATERIAL_FIX =
  "pass the material @kvdeploy/pkcs12's materialFromPem(parsePem(text)) answers, or { leaf: DER bytes, chain: [DER bytes, ...], key: Redacted.make(PKCS#8 bytes) }"

/** The problem of a DER certificate field that is not bytes, or undefined when it is. */
const derProblem = (
  field: string,
  value: unknown,
  reason: ValidateFailureReason,
  what: string,
): DeployProblem | undefined =>
  value instanceof Uint8Array
    ? undefined
    : shape(
        field,
        typeof value === "string"
          ? `is a string (PEM text?), not ${what} as DER bytes`
          : `is ${typeOf(value)}, not ${what} as DER bytes`,
        typeof value === "string"
          ? "read PEM text with @kvdeploy/pkcs12's parsePem (materialFromPem picks the leaf) and pass its DER Uint8Arrays"
          : `pass ${what} as a Uint8Array of DER`,
        reason,
      )

/** The problem of a chain field that is not an array of DER certificates, one per element otherwise. */
const chainProblems = (
  field: string,
  chain: unknown,
  reason: ValidateFailureReason,
  problems: Array<DeployProblem>,
): void => {
  if (!Array.isArray(chain)) {
    problems.push(
      shape(
        field,
        `is ${typeOf(chain)}, not an array of DER certificates`,
        "pass [] when there is no chain, else an array of Uint8Array DER certificates",
        reason,
      ),
    )
    return
  }
  for (let i = 0; i < chain.length; i++) {
    const p = derProblem(`${field}[${i}]`, chain[i], reason, "a certificate")
    if (p !== undefined) problems.push(p)
  }
}

/** The problem of a private key field that is not a `Redacted` of PKCS#8 bytes, or undefined when it is. */
const keyProblem = (
  field: string,
  key: unknown,
  reason: ValidateFailureReason,
): DeployProblem | undefined => {
  if (!Redacted.isRedacted(key))
    return shape(
      field,
      key instanceof Uint8Array
        ? "is bare bytes, not a Redacted value (a key given bare shows in any log or error that prints the request)"
        : isObject(key)
          ? `is ${typeOf(key)}, not a Redacted value holding the private key (or a Redacted made by another copy of effect, which this one cannot read)`
          : `is ${typeOf(key)}, not a Redacted value holding the private key`,
      "wrap the key's PKCS#8 bytes with Redacted.make (from the one copy of effect your program and kvdeploy share), or pass the key @kvdeploy/pkcs12's parsePem answers",
      reason,
    )
  const value: unknown = Redacted.value(key)
  return value instanceof Uint8Array
    ? undefined
    : shape(
        field,
        `is a Redacted ${typeOf(value).replace(/^an? /, "")}, not of PKCS#8 bytes`,
        "wrap the key's PKCS#8 DER as a Uint8Array with Redacted.make (@kvdeploy/pkcs12's parsePem reads a PEM key into one)",
        reason,
      )
}

/**
 * The problems of a request's shape (types only, not values: those are preflight's), or
 * `undefined` when every field the deploy reads has its type. Cheap: a few `typeof` checks and one
 * per chain certificate.
 */
export const requestShapeProblems = (request: DeployRequest): Array<DeployProblem> | undefined => {
  const raw: unknown = request
  if (!isObject(raw))
    return [
      shape(
        "request",
        `is ${typeOf(raw)}, not a deploy request`,
        "pass { target, material, certificateId }",
        "material_invalid",
      ),
    ]
  const { target, material, certificateId, options } = raw
  // The usual request: every check passes at the first test of each field.
  if (
    isObject(target) &&
    typeof target.vaultUrl === "string" &&
    typeof target.certificateName === "string" &&
    isObject(material) &&
    material.leaf instanceof Uint8Array &&
    Array.isArray(material.chain) &&
    Redacted.isRedacted(material.key) &&
    Redacted.value(material.key) instanceof Uint8Array &&
    typeof certificateId === "string" &&
    (options === undefined ||
      (isObject(options) && options.previousKey === undefined && options.previousChain === undefined)) &&
    material.chain.every((c) => c instanceof Uint8Array)
  )
    return undefined
  const problems: Array<DeployProblem> = []
  if (!isObject(target) || typeof target.vaultUrl !== "string" || typeof target.certificateName !== "string")
    problems.push(
      shape(
        "target",
        isObject(target)
          ? "is not a TargetConfig: its vaultUrl and certificateName are not both strings (the configuration as written, with vault_url and certificate_name?)"
          : `is ${typeOf(target)}, not a TargetConfig`,
        "pass the TargetConfig that validateTargetConfig answers for the configuration",
        "material_invalid",
      ),
    )
  if (!isObject(material)) {
    problems.push(
      shape("material", `is ${typeOf(material)}, not { leaf, chain, key }`, MATERIAL_FIX, "material_invalid"),
    )
  } else {
    const leaf = derProblem("material.leaf", material.leaf, "material_invalid", "the leaf certificate")
    if (leaf !== undefined) problems.push(leaf)
    chainProblems("material.chain", material.chain, "material_invalid", problems)
    const key = keyProblem("material.key", material.key, "material_invalid")
    if (key !== undefined) problems.push(key)
  }
  if (typeof certificateId !== "string")
    problems.push(
      shape(
        "certificateId",
        `is ${typeOf(certificateId)}, not a string`,
        "pass the certificate's id as a string of 1-256 characters (it becomes the certctl-certificate-id tag value)",
        "tags",
      ),
    )
  if (options !== undefined) {
    if (!isObject(options)) {
      problems.push(
        shape(
          "options",
          `is ${typeOf(options)}, not an object`,
          "leave options out, or pass { adopt?, force?, previousKey?, previousChain? }",
          "material_invalid",
        ),
      )
    } else {
      if (options.previousKey !== undefined) {
        const key = keyProblem("options.previousKey", options.previousKey, "previous_key")
        if (key !== undefined) problems.push(key)
      }
      if (options.previousChain !== undefined)
        chainProblems("options.previousChain", options.previousChain, "previous_key", problems)
    }
  }
  return problems.length === 0 ? undefined : problems
}
