/**
 * Step 1, preflight: everything that can be known without the vault. The
 * material is inspected by the PfxCodec, checked against the clock and Key
 * Vault's limits, and the PFX is built in memory (its size is a limit too).
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { DeployPolicy } from "./DeployPolicy.js"
import type { InspectedMaterial } from "./material.js"
import type { DeployProblem } from "./outcome.js"
import type { ValidateFailureReason } from "./ports/Metrics.js"
import { PfxCodec } from "./ports/PfxCodec.js"
import type { DeployRequest } from "./request.js"
import { certificateNameProblems, tagProblems } from "./TargetConfig.js"

export interface PreflightPassed {
  readonly _tag: "Passed"
  readonly inspected: InspectedMaterial
  readonly pfx: Uint8Array
  readonly password: Redacted.Redacted<string>
}
export interface PreflightRejected {
  readonly _tag: "Rejected"
  readonly problems: ReadonlyArray<DeployProblem>
  readonly inspected: InspectedMaterial | undefined
}

const rsaSizes = new Set([2048, 3072, 4096])
const ecCurves = new Set(["P-256", "P-384", "P-521", "P-256K"])

/** The password of PFX files kvdeploy builds: Key Vault re-protects them anyway; the bytes never leave memory. */
export const pfxPassword: Redacted.Redacted<string> = Redacted.make("")

const with_ =
  (reason: ValidateFailureReason) =>
  (p: { readonly field: string; readonly message: string; readonly fix: string }): DeployProblem => ({
    field: p.field,
    message: p.message,
    fix: p.fix,
    reason,
  })

/** Step 1 (untraced: it runs inside the `deploy` span on every deploy; a span of its own costs more than its logic). */
export const preflight = Effect.fnUntraced(function* (request: DeployRequest) {
  const codec = yield* PfxCodec
  const policy = yield* DeployPolicy
  const problems: Array<DeployProblem> = []
  problems.push(...certificateNameProblems(request.target.certificateName).map(with_("certificate_name")))
  problems.push(...tagProblems(request.target.tags).map(with_("tags")))
  if (request.certificateId.length === 0 || request.certificateId.length > 256) {
    problems.push({
      field: "certificateId",
      message: `is ${request.certificateId.length} characters long; it becomes the certctl-certificate-id tag value`,
      fix: "use an id of 1-256 characters",
      reason: "tags",
    })
  }

  const inspected = yield* codec.inspect(request.material).pipe(
    Effect.catchTag("MaterialInvalid", (e) => {
      problems.push(...e.problems.map(with_("material_invalid")))
      return Effect.succeed(undefined)
    }),
  )
  if (inspected === undefined) {
    return { _tag: "Rejected", problems, inspected } satisfies PreflightRejected
  }

  let mismatchListed = false
  for (const p of inspected.problems) {
    const reason: ValidateFailureReason = p.field.startsWith("chain")
      ? "chain_invalid"
      : p.field === "key" && !inspected.keyMatchesLeaf
        ? "key_mismatch"
        : p.field === "key"
          ? "unsupported_key"
          : "material_invalid"
    if (reason === "key_mismatch") mismatchListed = true
    problems.push(with_(reason)(p))
  }
  if (!inspected.keyMatchesLeaf && !mismatchListed) {
    problems.push({
      field: "key",
      message: "the private key does not match the leaf certificate's public key",
      fix: "supply the key the certificate was issued for",
      reason: "key_mismatch",
    })
  }

  const now = yield* Clock.currentTimeMillis
  const leaf = inspected.leaf
  if (now < leaf.notBefore.getTime()) {
    problems.push({
      field: "leaf",
      message: `is not valid before ${leaf.notBefore.toISOString()}`,
      fix: "deploy it once its validity starts, or check the host clock",
      reason: "not_yet_valid",
    })
  }
  if (now >= leaf.notAfter.getTime()) {
    problems.push({
      field: "leaf",
      message: `expired at ${leaf.notAfter.toISOString()}; Key Vault refuses expired certificates`,
      fix: "renew the certificate",
      reason: "expired",
    })
  }
  const key = inspected.key
  if (key.keyType === "RSA" && (key.keySize === undefined || !rsaSizes.has(key.keySize))) {
    problems.push({
      field: "key",
      message: `RSA ${key.keySize ?? "of unknown size"} is not accepted by Key Vault`,
      fix: "use RSA 2048, 3072 or 4096",
      reason: "unsupported_key",
    })
  }
  if (key.keyType === "EC" && (key.curve === undefined || !ecCurves.has(key.curve))) {
    problems.push({
      field: "key",
      message: `EC curve ${key.curve ?? "unknown"} is not accepted by Key Vault`,
      fix: "use P-256, P-384, P-521 or P-256K",
      reason: "unsupported_key",
    })
  }
  if (problems.length > 0) {
    return { _tag: "Rejected", problems, inspected } satisfies PreflightRejected
  }

  const encoded = yield* codec
    .encode(request.material, { encoding: request.target.pfxEncoding, password: pfxPassword })
    .pipe(Effect.result)
  if (encoded._tag === "Failure") {
    return {
      _tag: "Rejected",
      problems: [
        {
          field: "material",
          message: `a PFX could not be built: ${encoded.failure.reason}`,
          fix: "check the certificate and key",
          reason: "material_invalid",
        },
      ],
      inspected,
    } satisfies PreflightRejected
  }
  const pfx = encoded.success
  if (pfx.byteLength > policy.maxPfxBytes) {
    return {
      _tag: "Rejected",
      problems: [
        {
          field: "material",
          message: `the PFX is ${pfx.byteLength} bytes; Key Vault accepts at most ${policy.maxPfxBytes}`,
          fix: "drop unrelated certificates from the chain",
          reason: "pfx_too_large",
        },
      ],
      inspected,
    } satisfies PreflightRejected
  }
  return { _tag: "Passed", inspected, pfx, password: pfxPassword } satisfies PreflightPassed
})
