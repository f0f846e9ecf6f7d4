/**
 * The services a target names as reading its certificate from Key Vault (`consumers`), and what
 * each would not take. A consumer picks up a new version by itself (hours later), so a version it
 * refuses breaks what it serves with nobody watching: preflight refuses what a consumer's
 * documentation says it rejects, before anything is written, and warns where that documentation is
 * weaker. Sources: docs/keyvault-target.md, Consumers (Microsoft's pages for each service).
 *
 * The AKS Secrets Store CSI driver is no consumer value: it takes PKCS#12 and PEM alike, so nothing
 * would ever be refused or warned of for it.
 */
import * as Schema from "effect/Schema"
import { type CertificateMaterial, type InspectedMaterial, missingChainFix } from "./material.js"
import type { DeployProblem, DeployWarning } from "./outcome.js"

export const Consumer = Schema.Literals(["front_door", "application_gateway", "app_service"])
export type Consumer = typeof Consumer.Type

/** The names a target's `consumers` may list. */
export const consumerNames: ReadonlyArray<Consumer> = Consumer.literals

/** How messages name each consumer. */
export const consumerLabels: Readonly<Record<Consumer, string>> = {
  front_door: "Azure Front Door",
  application_gateway: "Azure Application Gateway v2",
  app_service: "Azure App Service",
}

/** `Azure Front Door (consumers: front_door)`: the service, and where the target names it. */
export const consumerShown = (consumer: Consumer): string =>
  `${consumerLabels[consumer]} (consumers: ${consumer})`

/**
 * The consumers that read the certificate's secret as PKCS#12 only: every one kvdeploy knows
 * (Front Door, Application Gateway and App Service import a PFX). Empty when none is named.
 */
export const pkcs12OnlyConsumers = (
  consumers: ReadonlyArray<Consumer> | undefined,
): ReadonlyArray<Consumer> => consumers ?? []

/** Application Gateway v2's largest SSL certificate (its limits page: 16 KB). */
export const APPLICATION_GATEWAY_MAX_CERTIFICATE_BYTES = 16 * 1024

/**
 * "remove X from consumers", naming both places a consumer is named: the target's `consumers`
 * field (a file, an agent deployment) and the CLI's `--consumer` flag. Core does not know which
 * one gave the list (only the configuration's own check does).
 */
export const removeConsumersAdvice = (consumers: ReadonlyArray<Consumer>): string =>
  `remove ${consumers.join(", ")} from consumers (or leave ${consumers.length === 1 ? "it" : "them"} out of --consumer)`

const removeIt = (consumer: Consumer): string =>
  `or ${removeConsumersAdvice([consumer])} if ${consumerLabels[consumer]} does not read this certificate`

/**
 * What a named consumer would refuse in `inspected` (its documentation says so): Front Door takes
 * no EC key and no self-signed certificate. Empty without consumers.
 */
export const consumerProblems = (
  consumers: ReadonlyArray<Consumer> | undefined,
  inspected: InspectedMaterial,
): Array<DeployProblem> => {
  const problems: Array<DeployProblem> = []
  if (consumers === undefined || !consumers.includes("front_door")) return problems
  const frontDoor = consumerShown("front_door")
  if (inspected.key.keyType === "EC")
    problems.push({
      field: "key",
      message: `is EC${inspected.key.curve === undefined ? "" : ` ${inspected.key.curve}`}: ${frontDoor} does not support certificates with EC keys, and would not serve this version once it picks it up`,
      fix: `issue the certificate with an RSA key (2048 bits or more), ${removeIt("front_door")}`,
      reason: "unsupported_key",
    })
  if (inspected.leaf.selfSigned)
    problems.push({
      field: "leaf",
      message: `is self-signed (${inspected.leaf.subject}): ${frontDoor} rejects self-signed certificates (it takes certificates from a CA on Microsoft's trusted CA list), and would not serve this version once it picks it up`,
      fix: `use a certificate issued by a CA on Microsoft's trusted CA list (kvdeploy can only tell a self-signed one), ${removeIt("front_door")}`,
      reason: "chain_invalid",
    })
  return problems
}

/**
 * What a named consumer's documentation is weaker about, for `inspected` and the PFX kvdeploy
 * builds (`pfxBytes`, when built: Application Gateway's 16 KB is judged on it). Empty without
 * consumers.
 */
export const consumerWarnings = (
  consumers: ReadonlyArray<Consumer> | undefined,
  inspected: InspectedMaterial,
  pfxBytes: number | undefined,
  /** How many chain certificates the material held before the codec dropped copies of the leaf. */
  chainGiven = 0,
  /** Where the material was read from (`CertificateMaterial.from`): a PFX's fix is another export. */
  from?: CertificateMaterial["from"],
): Array<DeployWarning> => {
  const warnings: Array<DeployWarning> = []
  if (consumers === undefined) return warnings
  const leaf = inspected.leaf
  if (
    consumers.includes("front_door") &&
    !leaf.selfSigned &&
    !inspected.chain.some((c) => c.subject === leaf.issuer)
  )
    warnings.push({
      field: "chain",
      // No chain at all: this is the one warning of it (materialWarnings leaves its own out for
      // front_door), so it says what that one says too.
      message:
        inspected.chain.length === 0
          ? `${chainGiven > 0 ? "holds only the leaf itself (each certificate given as the chain is a copy of the leaf)" : "none given"}, and the leaf is issued by ${leaf.issuer}: ${consumerShown("front_door")} expects a complete certificate chain with leaf and intermediate certificates (and a client that does not already hold that certificate cannot build a path to a root)`
          : `holds no certificate that issued the leaf (${leaf.issuer}): ${consumerShown("front_door")} expects a complete certificate chain with leaf and intermediate certificates`,
      fix: missingChainFix(from),
    })
  if (
    consumers.includes("application_gateway") &&
    pfxBytes !== undefined &&
    pfxBytes > APPLICATION_GATEWAY_MAX_CERTIFICATE_BYTES
  )
    warnings.push({
      field: "material",
      message: `makes a PFX of about ${pfxBytes} bytes: ${consumerShown("application_gateway")} takes SSL certificates of at most 16 KB (${APPLICATION_GATEWAY_MAX_CERTIFICATE_BYTES} bytes) and may refuse it (approximate: this is the size of the PFX kvdeploy sends; Key Vault exports its own, which Application Gateway reads)`,
      // No EC key offered: Application Gateway's documentation does not cover EC listener certificates.
      fix: "shorten the chain (leave out the root CA, which clients already hold), or issue the certificate with fewer names",
    })
  if (consumers.includes("app_service")) {
    const appService = consumerShown("app_service")
    if (inspected.key.keyType === "EC")
      warnings.push({
        field: "key",
        message: `is EC${inspected.key.curve === undefined ? "" : ` ${inspected.key.curve}`}: ${appService} works with ECC certificates, but its documentation does not cover them (it asks for RSA keys of 2048 bits or more)`,
        fix: "nothing, if the app serves it; else issue the certificate with an RSA key (2048 bits or more)",
      })
    if (leaf.selfSigned)
      warnings.push({
        field: "leaf",
        message: `is self-signed (${leaf.subject}): ${appService} takes certificates signed by a trusted CA; only an App Service Environment v3 takes private CAs`,
        fix: "use a certificate issued by a trusted CA, unless the app runs in an App Service Environment v3",
      })
  }
  return warnings
}
