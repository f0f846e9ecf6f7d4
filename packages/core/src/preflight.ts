/**
 * Step 1, preflight: everything that can be known without the vault. The
 * material is inspected by the PfxCodec and checked against the clock and Key
 * Vault's limits, the encoded PFX's size (at most 25 KB) included. That size
 * is decided from the codec's size bound (`PfxCodec.maxEncodedBytes`) when it
 * settles the rule; only when it does not (no bound, or a bound over the
 * limit) is the PFX built here to be measured. Otherwise the deploy builds it
 * later, once it knows it will import, while the snapshot read is on its way.
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type * as Result from "effect/Result"
import {
  APPLICATION_GATEWAY_MAX_CERTIFICATE_BYTES,
  type Consumer,
  consumerProblems,
  consumerWarnings,
  pkcs12OnlyConsumers,
} from "./consumers.js"
import { DeployPolicy, type DeployPolicyShape, MAX_PEM_BYTES } from "./DeployPolicy.js"
import {
  type CertificateFacts,
  type CertificateMaterial,
  type InspectedMaterial,
  missingChainFix,
} from "./material.js"
import type { DeployProblem, DeployWarning } from "./outcome.js"
import type { ValidateFailureReason } from "./ports/Metrics.js"
import {
  type MaterialInvalid,
  PfxCodec,
  type PfxEncodeError,
  type PfxEncodeOptions,
  type PfxEncoding,
} from "./ports/PfxCodec.js"
import type { VaultVersion } from "./ports/Vault.js"
import type { DeployRequest } from "./request.js"
import { requestShapeProblems } from "./requestShape.js"
import { spanText } from "./spanText.js"
import { certificateIdProblems, certificateNameProblems, tagProblems } from "./TargetConfig.js"

export interface PreflightPassed {
  readonly _tag: "Passed"
  readonly inspected: InspectedMaterial
  /**
   * The PFX, when preflight had to build it to measure it; `undefined` when the
   * codec's size bound settled the 25 KB rule (build it with `pfxOptionsOf`).
   */
  readonly pfx: Uint8Array | undefined
  /**
   * The PEM text to import, built and measured here: when the target's content_type is `pem`, and
   * with `keep` when the PFX is over the limit (`pfxTooLarge`) and the PEM fits.
   */
  readonly pem?: Uint8Array | undefined
  /**
   * With content_type `keep` (the default), the PFX is over Key Vault's limit: a PKCS#12 import is
   * refused with this problem, while a PEM one (the vault serves PEM, known after the snapshot) is
   * measured on its own. Nothing is written either way.
   */
  readonly pfxTooLarge?: DeployProblem | undefined
  /**
   * What the target's consumers' documentation is weaker about (`consumerWarnings`); absent when
   * the target names no consumer or there is nothing to say. The material's own warnings are
   * `materialWarnings`.
   */
  readonly warnings?: ReadonlyArray<DeployWarning> | undefined
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

/**
 * Iteration count of the PFX files kvdeploy builds for an import. Their password is the
 * blank one above, which anybody can derive keys from, so stretching it protects nothing:
 * the file's only protection is the TLS connection that carries it. One iteration (what
 * `openssl pkcs12 -export -noiter -nomaciter` writes) spares the key derivations that took
 * most of a PFX build (about 6 ms of 7 for an EC P-256 leaf and one CA). The structure and
 * algorithms are unchanged, per `pfx_encoding`.
 */
export const transportIterations = 1

const transportOptions: { readonly [E in PfxEncoding]: PfxEncodeOptions } = {
  modern: Object.freeze({ encoding: "modern", password: pfxPassword, iterations: transportIterations }),
  legacy: Object.freeze({ encoding: "legacy", password: pfxPassword, iterations: transportIterations }),
}

/**
 * The options of every PFX kvdeploy builds to import (forward deploys and rollbacks): one
 * frozen object per encoding, so a deploy builds none.
 */
export const transportPfxOptions = (encoding: PfxEncoding): PfxEncodeOptions =>
  transportOptions[encoding] ?? { encoding, password: pfxPassword, iterations: transportIterations }

const with_ =
  (reason: ValidateFailureReason) =>
  (p: { readonly field: string; readonly message: string; readonly fix: string }): DeployProblem => ({
    field: p.field,
    message: p.message,
    fix: p.fix,
    reason,
  })

/** The options every forward PFX of a request is built with. */
export const pfxOptionsOf = (request: DeployRequest): PfxEncodeOptions =>
  transportPfxOptions(request.target.pfxEncoding)

/** Problems of the request itself (name, tags, certificate id): no codec, no clock. */
export const requestProblems = (request: DeployRequest): Array<DeployProblem> => {
  const problems: Array<DeployProblem> = []
  for (const p of certificateNameProblems(request.target.certificateName))
    problems.push(with_("certificate_name")(p))
  for (const p of tagProblems(request.target.tags)) problems.push(with_("tags")(p))
  for (const p of certificateIdProblems(request.certificateId, "certificateId"))
    problems.push(with_("tags")(p))
  return problems
}

/** Problems of inspected material at time `now` (key match, chain, validity, key type): plain code. */
export const materialProblems = (
  inspected: InspectedMaterial,
  now: number,
  problems: Array<DeployProblem>,
): void => {
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
  // A codec that already refused the key's type (a "key" problem besides the mismatch) said it in
  // its own words, naming the key: the same refusal again would only repeat it.
  const codecKeyProblems = inspected.problems.filter((p) => p.field === "key").length
  if (codecKeyProblems > (inspected.keyMatchesLeaf ? 0 : 1)) return
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
  // Key Vault takes an imported certificate's key type from its signature algorithm, and refuses an
  // RSA key under an ECDSA signature as an EC key of the wrong size: 400 KeySizeNotSupported,
  // "Unsupported key size (2048). Supported sizes are [256, 384, 521]".
  if (leaf.keyType === "RSA" && leaf.signatureKeyType === "EC") {
    problems.push({
      field: "leaf",
      message: `has an RSA key but is signed with ECDSA (its issuer, ${leaf.issuer}, has an EC key): Key Vault refuses such a certificate ("Unsupported key size (${leaf.keySize ?? "?"}). Supported sizes are [256, 384, 521]")`,
      fix: "have the certificate issued for an EC key (P-256 or P-384) by this issuer, or for the RSA key by an issuer with an RSA key",
      reason: "unsupported_key",
    })
  }
}

/**
 * What may break a client without stopping a deploy (Key Vault imports either): a leaf with less
 * than a tenth of its validity left (a stale file, or a renewal that did not run), a certificate of
 * the chain outside its validity window (a client that builds its path from the chain served may
 * refuse the leaf), the leaf's issuer expiring before the leaf, and a CA-issued leaf given without the certificate that issued it (a client
 * that does not hold that intermediate cannot build a path at all; the usual slip is an ACME
 * client's `cert.pem` where `fullchain.pem` belongs). Not problems: an expired cross-signed root
 * is kept in chains on purpose for old clients, and a leaf a trusted root issues directly needs no
 * chain. `consumers`: the target's (with front_door, the missing chain is its consumer warning).
 */
export const materialWarnings = (
  inspected: InspectedMaterial,
  now: number,
  consumers?: ReadonlyArray<Consumer> | undefined,
  /** How many chain certificates the material held before the codec dropped copies of the leaf. */
  chainGiven = 0,
  /** Where the material was read from (`CertificateMaterial.from`): a PFX's fix is another export. */
  from?: CertificateMaterial["from"],
): Array<DeployWarning> => {
  const warnings: Array<DeployWarning> = []
  // The leaf near its end (an expired one is refused): a stale file, or a renewal that has not run.
  const { notBefore, notAfter } = inspected.leaf
  const left = notAfter.getTime() - now
  if (left * 10 < notAfter.getTime() - notBefore.getTime())
    warnings.push({
      field: "leaf",
      message: `expires at ${notAfter.toISOString()}, in ${spanText(left)}: less than a tenth of its validity is left, and clients refuse it once it expires`,
      fix: "deploy a renewed certificate before then (check that the file is the latest your issuer gave, and that its renewal runs: ACME clients renew with a third of the validity left)",
    })
  inspected.chain.forEach((c, i) => {
    const outside =
      now >= c.notAfter.getTime()
        ? `expired at ${c.notAfter.toISOString()}`
        : now < c.notBefore.getTime()
          ? `is not valid before ${c.notBefore.toISOString()}`
          : undefined
    if (outside !== undefined)
      warnings.push({
        field: `chain[${i}]`,
        message: `${c.subject} ${outside}: a client that builds its path from the chain served may refuse the certificate`,
        fix: c.selfSigned
          ? "leave it out if clients do not need it (a root they trust is not served), or give the chain your CA serves now"
          : "give the chain your CA serves now (the issuer's current intermediate)",
      })
  })
  // The leaf's issuer (chain[0]; an expired or not-yet-valid one is said above) expiring before the
  // leaf: from then on a client that builds its path from the chain served refuses the leaf, and an
  // alert on the leaf's expiry comes too late. The usual cause is a chain file kept from before the
  // CA re-issued its intermediate with a later end. Higher certificates are left alone: a
  // cross-signed root that ends before the leaf is kept on purpose for old clients.
  const issuer = inspected.chain[0]
  if (
    issuer !== undefined &&
    !issuer.selfSigned &&
    now >= issuer.notBefore.getTime() &&
    now < issuer.notAfter.getTime() &&
    issuer.notAfter.getTime() < notAfter.getTime()
  )
    warnings.push({
      field: "chain[0]",
      message: `${issuer.subject}, the leaf's issuer, expires at ${issuer.notAfter.toISOString()}, in ${spanText(issuer.notAfter.getTime() - now)}, before the leaf (${notAfter.toISOString()}): from then on a client that builds its path from the chain served refuses the leaf, whose own expiry is later`,
      fix: "give the chain your CA serves now (its current copy of the issuer's certificate), or deploy a certificate renewed before then",
    })
  // A CA's own certificate and key where the server's belong (files mixed up, or a CA exported as
  // a PFX): Key Vault imports it, and a service that issues certificates may keep its CA there on
  // purpose, so it is said, not refused.
  if (inspected.leaf.issuesCertificates === true)
    warnings.push({
      field: "leaf",
      message: `is a CA certificate (${inspected.leaf.subject}: basicConstraints CA:TRUE, key usage keyCertSign), made to issue certificates, not to be served: the key given with it is that CA's private key, which this deploy puts in the vault, and TLS clients may refuse a CA certificate as a server's`,
      fix: "give the server certificate the CA issued and its key (an ACME client's fullchain.pem and privkey.pem), unless a service that issues certificates reads this CA from the vault",
    })
  // With front_door named, consumerWarnings says it (one warning, naming Front Door's need, which
  // preflight's warnings carry to the agent's --check as well).
  if (
    inspected.chain.length === 0 &&
    !inspected.leaf.selfSigned &&
    consumers?.includes("front_door") !== true
  )
    warnings.push({
      field: "chain",
      // A chain file holding the leaf again (`--chain cert.pem`) is dropped as a copy: not "none given".
      message: `${chainGiven > 0 ? "holds only the leaf itself (each certificate given as the chain is a copy of the leaf)" : "none given"}, and the leaf is issued by ${inspected.leaf.issuer}: a client that does not already hold that certificate cannot build a path to a root`,
      fix: `${missingChainFix(from)}, unless a root your clients trust issues the leaf directly`,
    })
  return warnings
}

/**
 * The certificate about to be imported expires before the one the vault serves: an older one in
 * place of a newer one (a stale file, renewals deployed out of order, another writer's newer
 * certificate). Said, not refused: putting an older certificate back on purpose is a deploy too.
 * `undefined` when the served version states no expiry or is this certificate, and when this one
 * was issued after it (a later notBefore): a renewal with a shorter lifetime than the served
 * certificate's (CAs shorten their certificates' lifetimes) is not an older certificate.
 */
/** How `olderThanServed`'s warning ends (`isOlderThanServed` knows it by that). */
const olderThanServedWords = "an older certificate replaces a newer one"

/** Whether `warning` is `olderThanServed`'s (a caller that puts an older certificate back on purpose words its fix). */
export const isOlderThanServed = (warning: DeployWarning): boolean =>
  warning.field === "leaf" && warning.message.endsWith(olderThanServedWords)

export const olderThanServed = (served: VaultVersion, leaf: CertificateFacts): DeployWarning | undefined =>
  served.expiresAt !== undefined &&
  served.x5t !== leaf.x5t &&
  leaf.notAfter.getTime() < served.expiresAt.getTime() &&
  (served.notBefore === undefined || leaf.notBefore.getTime() <= served.notBefore.getTime())
    ? {
        field: "leaf",
        message: `expires at ${leaf.notAfter.toISOString()}, before the certificate the vault serves (${served.versionId}, expiring at ${served.expiresAt.toISOString()}): ${olderThanServedWords}`,
        fix: "check that this is the certificate you meant to deploy (a stale file, or another writer's newer certificate); if it is not, deploy the newer one again",
      }
    : undefined

/**
 * The vault's latest version holds this very certificate but is disabled (so a deploy imports it
 * again, enabled, rather than skipping it): said, since a version is often disabled on purpose.
 */
export const disabledSameServed = (
  served: VaultVersion,
  leaf: CertificateFacts,
): DeployWarning | undefined =>
  !served.enabled && served.x5t === leaf.x5t
    ? {
        field: "leaf",
        message: `is the certificate of the vault's latest version (${served.versionId}), which is disabled: a deploy imports it again as a new, enabled version, which the vault serves`,
        fix: "if that version was disabled on purpose (a compromised key, a withdrawn certificate), disable the new version too, stop deploying this certificate (remove it from the job or the agent's sources) and deploy a new one; if not, nothing to do",
      }
    : undefined

/** What a deploy that imports over `served` says about it (deploy and plan alike), if anything. */
export const servedVersionWarning = (
  served: VaultVersion,
  leaf: CertificateFacts,
): DeployWarning | undefined => olderThanServed(served, leaf) ?? disabledSameServed(served, leaf)

/** The built PFX, or why it cannot be imported (it could not be built, or it is over the size limit). */
export const checkBuiltPfx = (
  encoded: Result.Result<Uint8Array, PfxEncodeError>,
  maxPfxBytes: number,
): Uint8Array | DeployProblem =>
  encoded._tag === "Failure"
    ? {
        field: "material",
        message: `a PFX could not be built: ${encoded.failure.message}`,
        fix: "check the certificate and key",
        reason: "material_invalid",
      }
    : encoded.success.byteLength > maxPfxBytes
      ? tooLarge(`makes a PFX of ${encoded.success.byteLength} bytes`, maxPfxBytes)
      : encoded.success

/**
 * The built PEM of an import, or why it cannot be imported (it could not be built, or its text is
 * over Key Vault's 25 KB secret value limit). `why` says why the import is PEM (the target's
 * content_type, or the served secret it keeps).
 */
export const checkBuiltPem = (
  encoded: Result.Result<Uint8Array, PfxEncodeError>,
  maxPemBytes: number | undefined,
  why: string,
): Uint8Array | DeployProblem => {
  const limit = maxPemBytes ?? MAX_PEM_BYTES
  return encoded._tag === "Failure"
    ? {
        field: "material",
        message: `the PEM to import could not be built: ${encoded.failure.message}`,
        fix: "check the certificate and key",
        reason: "material_invalid",
      }
    : encoded.success.byteLength > limit
      ? {
          field: "content_type",
          message: `is pem (${why}), and the PEM of the leaf, its chain and its key is ${encoded.success.byteLength} bytes; Key Vault keeps it as the secret's value, at most ${limit} characters`,
          fix: "shorten the chain (leave out the root CA, which clients already hold), or issue the certificate with fewer names or an EC key; or set content_type: pkcs12 if the secret's consumers read PKCS#12",
          reason: "pem_too_large",
        }
      : encoded.success
}

const tooLarge = (what: string, maxPfxBytes: number): DeployProblem => ({
  field: "material",
  message: `${what}; Key Vault accepts at most ${maxPfxBytes} (its backing secret holds the PFX as base64, at most 25,600 characters)`,
  fix: "shorten the chain (leave out the root CA, which clients already hold), or issue the certificate with fewer names or an EC key",
  reason: "pfx_too_large",
})

/** Passed, with the consumers' warnings when there are any. */
const passed = (
  inspected: InspectedMaterial,
  pfx: Uint8Array | undefined,
  warnings: ReadonlyArray<DeployWarning>,
): PreflightPassed => ({
  _tag: "Passed",
  inspected,
  pfx,
  ...(warnings.length === 0 ? {} : { warnings }),
  password: pfxPassword,
})

/**
 * Step 1 over material already inspected (the deploy program's entry: plain
 * code, one effect only when the PFX has to be built to be measured).
 * I4: the PFX is built only after inspect proved the key matches the leaf.
 */
export const preflightInspected = (
  codec: (typeof PfxCodec)["Service"],
  policy: DeployPolicyShape,
  request: DeployRequest,
  inspectedResult: Result.Result<InspectedMaterial, MaterialInvalid>,
  now: number,
): PreflightPassed | PreflightRejected | Effect.Effect<PreflightPassed | PreflightRejected> => {
  const problems = requestProblems(request)
  if (inspectedResult._tag === "Failure") {
    for (const p of inspectedResult.failure.problems) problems.push(with_("material_invalid")(p))
    return { _tag: "Rejected", problems, inspected: undefined }
  }
  const inspected = inspectedResult.success
  materialProblems(inspected, now, problems)
  const consumers = request.target.consumers
  if (consumers !== undefined) problems.push(...consumerProblems(consumers, inspected))
  if (problems.length > 0) return { _tag: "Rejected", problems, inspected }
  if (request.target.contentType === "pem") {
    // A PEM import: its text is what Key Vault's 25 KB rule measures (no PFX is built).
    return Effect.map(Effect.result(codec.encodePem(request.material)), (encoded) => {
      const built = checkBuiltPem(encoded, policy.maxPemBytes, "content_type: pem")
      return built instanceof Uint8Array
        ? ({
            _tag: "Passed",
            inspected,
            pfx: undefined,
            pem: built,
            password: pfxPassword,
          } satisfies PreflightPassed)
        : ({ _tag: "Rejected", problems: [built], inspected } satisfies PreflightRejected)
    })
  }
  const options = pfxOptionsOf(request)
  const bound = codec.maxEncodedBytes?.(request.material, options)
  // Application Gateway's 16 KB is judged on the PFX built, unless the bound settles it too.
  const measureForGateway =
    consumers?.includes("application_gateway") === true &&
    (bound === undefined || bound > APPLICATION_GATEWAY_MAX_CERTIFICATE_BYTES)
  if (bound !== undefined && bound <= policy.maxPfxBytes && !measureForGateway) {
    // Settled without building: the PFX can be at most `bound` bytes.
    if (consumers === undefined) return { _tag: "Passed", inspected, pfx: undefined, password: pfxPassword }
    return passed(
      inspected,
      undefined,
      consumerWarnings(consumers, inspected, undefined, request.material.chain.length, request.material.from),
    )
  }
  // No bound, or one over the limit (a bound may be conservative): build it and measure.
  return Effect.flatMap(
    Effect.result(codec.encode(request.material, options)),
    (encoded): Effect.Effect<PreflightPassed | PreflightRejected> => {
      const built = checkBuiltPfx(encoded, policy.maxPfxBytes)
      if (built instanceof Uint8Array)
        return Effect.succeed(
          consumers === undefined
            ? { _tag: "Passed", inspected, pfx: built, password: pfxPassword }
            : passed(
                inspected,
                built,
                consumerWarnings(
                  consumers,
                  inspected,
                  built.byteLength,
                  request.material.chain.length,
                  request.material.from,
                ),
              ),
        )
      const rejected: PreflightRejected = { _tag: "Rejected", problems: [built], inspected }
      const needPkcs12 = pkcs12OnlyConsumers(consumers)
      if (request.target.contentType === "keep" && built.reason === "pfx_too_large" && needPkcs12.length > 0)
        // content_type keep imports PKCS#12 for these consumers whatever the vault serves: the PEM
        // a vault serving PEM would otherwise get would not help.
        return Effect.succeed({
          _tag: "Rejected",
          problems: [
            {
              ...built,
              message: `${built.message}; content_type keep imports PKCS#12 whatever the vault serves, as consumers ${needPkcs12.join(", ")} read PKCS#12 only`,
              // Front Door takes no EC key, and Application Gateway's docs say nothing of EC: the size
              // fix does not offer one then.
              ...(needPkcs12.includes("front_door") || needPkcs12.includes("application_gateway")
                ? {
                    fix: `shorten the chain (leave out the root CA, which clients already hold), or issue the certificate with fewer names (${needPkcs12.includes("front_door") ? "front_door takes no EC key" : "application_gateway's documentation does not cover EC keys"})`,
                  }
                : {}),
            },
          ],
          inspected,
        } satisfies PreflightRejected)
      // content_type keep: whether a PFX is imported at all is known only from the snapshot (a
      // vault serving PEM gets a PEM import, whose own size is what counts). When the PEM would not
      // fit either, no content type can be imported: refused here, before any vault call.
      if (request.target.contentType !== "keep" || built.reason !== "pfx_too_large")
        return Effect.succeed(rejected)
      return Effect.map(
        Effect.result(codec.encodePem(request.material)),
        (encoded): PreflightPassed | PreflightRejected => {
          const pem = checkBuiltPem(encoded, policy.maxPemBytes, "content_type: keep")
          // The PEM is kept for the import, should the snapshot say the vault serves PEM. A PKCS#12
          // import is refused with a fix that names content_type: pem too, after the chain, as the PEM fits.
          return pem instanceof Uint8Array
            ? {
                _tag: "Passed",
                inspected,
                pfx: undefined,
                pem,
                pfxTooLarge: {
                  ...built,
                  // The chain first: a secret served as PKCS#12 has consumers that read PKCS#12.
                  fix: `${built.fix}; or set content_type: pem once the secret's consumers read PEM (its PEM fits Key Vault's limit; the secret is then PEM for this and every later version)`,
                },
                password: pfxPassword,
              }
            : rejected
        },
      )
    },
  )
}

/**
 * Step 1 on its own (what `kvdeploy plan` runs): inspect, check, and decide the
 * size rule, building the PFX only when the codec's bound does not settle it.
 */
export const preflight = (
  request: DeployRequest,
): Effect.Effect<PreflightPassed | PreflightRejected, never, PfxCodec> =>
  Effect.flatMap(Effect.context<PfxCodec>(), (context) => {
    const malformed = requestShapeProblems(request)
    if (malformed !== undefined)
      return Effect.succeed<PreflightRejected>({
        _tag: "Rejected",
        problems: malformed,
        inspected: undefined,
      })
    const codec = Context.get(context, PfxCodec)
    return Effect.flatMap(Effect.result(codec.inspect(request.material)), (inspected) => {
      const checked = preflightInspected(
        codec,
        Context.get(context, DeployPolicy),
        request,
        inspected,
        Context.get(context, Clock.Clock).currentTimeMillisUnsafe(),
      )
      return Effect.isEffect(checked) ? checked : Effect.succeed(checked)
    })
  })
