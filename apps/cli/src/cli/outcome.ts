/** Rendering a deploy outcome: one screen for a person, the outcome record for `--json`. */
import { X509Certificate } from "node:crypto"
import { azurePolicyRefusalCode, type DeployOutcome, exitCodeOf } from "@kvdeploy/core"
import type { ServedExpiry } from "@kvdeploy/pkcs12"
import * as Effect from "effect/Effect"
import type { Style } from "./terminal.js"
import { type CredentialInUse, forbiddenFix, tlsRefusedFix } from "./vault.js"
import { expiryRow, expiryText, utcDateText } from "./versions.js"

/** Facts of the certificate being deployed, read with node:crypto (no key involved). */
export interface LeafSummary {
  readonly subject: string
  /** The leaf's notAfter. */
  readonly notAfter: string
  readonly sha256: string
  /**
   * The earliest notAfter of the leaf and the certificates on its issuer path in the chain deployed
   * with it (roots not counted): what is served breaks then (the agent's
   * `kvdeploy_agent_certificate_expiry_timestamp_seconds` says the same).
   */
  readonly earliestNotAfter: string
  /** The subject of the certificate of that path that expires first, when it expires before the leaf. */
  readonly expiresFirst?: string
}

/** How far up the leaf's path `expiresFirst` is (1: the leaf's issuer), for the words alone (not in `--json`). */
const expiresFirstDepths = new WeakMap<LeafSummary, number>()

/**
 * The leaf's facts, with `served` (@kvdeploy/pkcs12's `servedExpiry` of the leaf and the chain
 * deployed with it) for when what is served stops working; without it, the leaf's notAfter.
 */
export const leafSummary = (der: Uint8Array, served?: ServedExpiry): LeafSummary | undefined => {
  try {
    const cert = new X509Certificate(der)
    const notAfter = new Date(cert.validTo).toISOString()
    const summary: LeafSummary = {
      subject: cert.subject.replace(/\n/g, ", "),
      notAfter,
      sha256: cert.fingerprint256.replace(/:/g, "").toLowerCase(),
      earliestNotAfter: served?.notAfter.toISOString() ?? notAfter,
      ...(served?.issuerFirst === undefined ? {} : { expiresFirst: served.issuerFirst.subject }),
    }
    if (served?.issuerFirst !== undefined) expiresFirstDepths.set(summary, served.issuerFirst.depth)
    return summary
  } catch {
    return undefined
  }
}

/** `leafSummary` of material about to be deployed, with when what it serves stops working. */
export const deployedSummary = (material: {
  readonly leaf: Uint8Array
  readonly chain: ReadonlyArray<Uint8Array>
}): Effect.Effect<LeafSummary | undefined> =>
  Effect.map(
    Effect.promise(() => import("@kvdeploy/pkcs12")),
    ({ servedExpiry }) => leafSummary(material.leaf, servedExpiry(material.leaf, material.chain)),
  )

/** When a certificate on the leaf's path in the chain expires before the leaf: which, and the leaf's own date; else "". */
const expiresFirstWords = (leaf: LeafSummary): string =>
  leaf.expiresFirst === undefined
    ? ""
    : `: ${(expiresFirstDepths.get(leaf) ?? 1) > 1 ? `${leaf.expiresFirst}, above the leaf's issuer in the chain,` : `the leaf's issuer in the chain, ${leaf.expiresFirst},`} expires first (the leaf ${utcDateText(leaf.notAfter)}), and what is served breaks then`

/**
 * The expiry words of a certificate deployed: the earliest of leaf and chain ("expires 2027-01-05
 * UTC (in 30 d)"), and when a chain certificate is that one, which, and the leaf's own date.
 */
export const deployedExpiryText = (leaf: LeafSummary, now: number): string =>
  `${expiryText(leaf.earliestNotAfter, now)}${expiresFirstWords(leaf)}`

const headline = (o: DeployOutcome, s: Style): string => {
  switch (o._tag) {
    case "Succeeded":
      return s.green(s.bold("Succeeded"))
    case "Skipped":
      return s.green(s.bold("Skipped"))
    case "Rejected":
      return s.red(s.bold("Rejected"))
    case "Failed":
      return s.red(s.bold("Failed"))
    case "RolledBack":
      return s.yellow(s.bold("RolledBack"))
    case "Superseded":
      return s.yellow(s.bold("Superseded"))
    case "Unverified":
    case "RollbackFailed":
      return s.red(s.bold(o._tag))
  }
}

const meaning: { readonly [K in DeployOutcome["_tag"]]: string } = {
  Succeeded: "the vault now serves the new version (verified)",
  // The chain is not compared (it is in the backing secret, which the skip does not read): said here,
  // in the outcome's meaning, not as a `next` step, which every daily Skipped of a cron job would carry.
  Skipped:
    "the vault already serves this leaf with kvdeploy's tags; nothing was written (the chain is not compared: a leaf served without the chain given is skipped too, and `kvdeploy plan` says what repairs it)",
  // Not "before anything was sent": a refusal may follow the vault's answers (ownership, a soft-deleted name).
  Rejected: "refused; nothing was written",
  Failed: "the vault is unchanged by this deploy",
  RolledBack: "the new version was wrong; the previous certificate is served again (verified)",
  RollbackFailed: "the new version was wrong and the previous one could not be restored: needs a person",
  Unverified: "imported, but the vault could not be read back: needs a person to check",
  Superseded: "another writer's newer version is served; kvdeploy did not overwrite it",
}

/** Preflight's warnings (what may break a client without stopping the deploy), as deploy and plan print them. */
export const warningLines = (
  warnings:
    | ReadonlyArray<{ readonly field: string; readonly message: string; readonly fix: string }>
    | undefined,
  s: Style,
): Array<string> =>
  (warnings ?? []).flatMap((w) => [
    `  ${s.yellow("warning")}     ${s.bold(w.field)}: ${w.message}`,
    `      fix: ${w.fix}`,
  ])

/**
 * Why kvdeploy recovered nothing: the vault served the certificate again without its recovery (Key
 * Vault's SDK reads the certificate first and sends none for one served; or the recovery it sent
 * found no deleted certificate, another writer's recovery not shown yet). Who brought it there is
 * not known: another writer's recovery, or a certificate made since under the name.
 */
const alreadyServedWords =
  "the vault served the certificate again without kvdeploy's recovery (another writer recovered it, or the name holds a certificate made since), so kvdeploy recovered nothing"

/**
 * The outcome's meaning. A deploy that recovered the soft-deleted certificate of its name
 * changed the vault even when it wrote no version: "nothing was written" would not be true. One
 * that found the certificate served already changed nothing, and does not claim a recovery.
 */
const meaningOf = (o: DeployOutcome): string => {
  // An import whose answer was lost and that the version list did not show: it may still land.
  if (o._tag === "Failed" && o.error === "VaultAmbiguous" && o.step === "reconcile")
    return "the import's answer was lost and the vault's versions did not show it: no version is known to be written, but it may still appear"
  // An import whose answer was lost, and no version proven to be this deploy's.
  if (o._tag === "Unverified" && o.versionId === undefined)
    return "the import may have been written, and the vault did not show whether: needs a person to check"
  if (o.recovered === undefined || (o._tag !== "Skipped" && o._tag !== "Rejected" && o._tag !== "Failed"))
    return meaning[o._tag]
  // Recovered, then refused as deleted (or being deleted) again: someone deleted it after the recovery.
  const deletedAgain =
    o._tag === "Failed" && (o.error === "VaultConflictSoftDeleted" || o.code === "ObjectIsBeingDeleted")
  switch (o.recovered) {
    case "recovered":
      return deletedAgain
        ? "no version was written; the soft-deleted certificate was recovered, then deleted again before the import"
        : "no version was written, but the soft-deleted certificate was recovered: the vault serves it again"
    case "already-served":
      return deletedAgain
        ? `no version was written; ${alreadyServedWords}; it was then deleted before the import`
        : `no version was written; ${alreadyServedWords}: the vault serves it`
    case "unknown":
      // Not served yet (the deploy stopped there), or served again by this recovery or another writer's.
      return o._tag === "Failed" && o.step === "soft-deleted"
        ? "no version was written; the soft-deleted certificate's recovery was sent and may still complete"
        : deletedAgain
          ? "no version was written; the soft-deleted certificate's recovery was sent and its answer lost; a read after it showed the certificate served (brought back by that recovery or another writer's, or a lagging replica's answer), and the import found the name deleted"
          : "no version was written; the soft-deleted certificate's recovery was sent and its answer lost, and the vault serves the certificate again (this recovery or another writer's brought it back)"
  }
}

/** The `recovered` line: what became of the soft-deleted certificate (on_soft_deleted: recover). */
const recoveredText: { readonly [K in NonNullable<DeployOutcome["recovered"]>]: string } = {
  recovered: "the soft-deleted certificate was recovered (on_soft_deleted: recover)",
  "already-served":
    "none by kvdeploy: the vault served the certificate again without its recovery (another writer recovered it, or the name holds a certificate made since; on_soft_deleted: recover)",
  unknown:
    "the recovery was sent and its answer lost: whether it recovered the certificate is not known (on_soft_deleted: recover)",
}

/** What to do next, for outcomes that need someone. */
const next: { readonly [K in DeployOutcome["_tag"]]: string | undefined } = {
  Succeeded: undefined,
  Skipped: undefined,
  Rejected: "fix the problems listed",
  Failed: undefined,
  RolledBack:
    "the new certificate was not served as imported; `kvdeploy versions` shows the failed version and the rollback",
  RollbackFailed:
    "a person must look: `kvdeploy show` and `kvdeploy versions` show what the vault serves now; `kvdeploy restore --from-version VERSION` puts a version's certificate back",
  Unverified: "a person must look: `kvdeploy verify --cert …` once the vault can be read again",
  Superseded:
    "another writer imported a newer version: `kvdeploy versions` shows who; decide before deploying again",
}

/**
 * What a Skipped restore leaves to do, when the served certificate is not served as wanted: the
 * skip compares the leaf (x5t) and kvdeploy's tags only, so the served version may hold this leaf
 * with another chain or content type. For restore's `next` line and JSON `next` only: on an
 * ordinary deploy (a cron job's daily Skipped) it would invite --force into every run.
 */
export const skippedNext = (o: DeployOutcome): string | undefined =>
  o._tag === "Skipped"
    ? `the served version ${o.versionId} holds this leaf (x5t ${o.previous?.x5t ?? o.newX5t ?? "unknown"}) with kvdeploy's tags; its chain and its secret's content type are not compared: if its chain or content type differ from this version's, --force imports it anyway, as a new version`
    : undefined

/**
 * What to do when Key Vault refused a request itself (a VaultRequestRejected), by its code: for an
 * import (`isImport`), the 409s that refuse every import of the name have their own remedies. Also
 * doctor's, for its import probe's 409.
 */
export const rejectedFix = (code: string | undefined, isImport: boolean): string => {
  // The vault's Azure Policy refused the certificate (a 403 the adapter told apart from a missing
  // permission by its answer): no grant helps, and the same certificate is refused again.
  if (code === azurePolicyRefusalCode)
    return "the vault's Azure Policy refused the certificate (the reason names the assignment): nothing was written; deploy a certificate the assignment allows, or have the assignment changed or a policy exemption made for the vault; no grant helps, and retrying as is fails the same way"
  if (code === "ObjectIsBeingDeleted")
    return "the certificate was being deleted in the vault when the import came (a delete takes seconds): nothing was written; once deleted it is soft-deleted, so deploy again with --on-soft-deleted recover (on_soft_deleted: recover in the target file) to recover and deploy over it, or purge it first"
  // A certificate operation in progress (a create waiting for its CA, or for a merge) refuses
  // imports with 409 and code Forbidden (a 403 Forbidden is a VaultForbidden, never this).
  if (code === "Forbidden" && isImport)
    return "a certificate operation is in progress on this certificate (the reason says so): let it complete, or delete it if nobody will (`az keyvault certificate pending show`, then `az keyvault certificate pending delete`; a cancel only asks its issuer to stop, and the operation stays in progress until it does), then deploy again; nothing was written"
  // Key Vault keeps one name for a certificate, its key and its secret: a plain key or secret of
  // the name refuses the import (409), and no certificate of it exists to show. A 409 also comes
  // while another operation on the certificate is pending: the reason tells which.
  return code === "Conflict" && isImport
    ? "Key Vault refused the import as a conflict (the reason says why): when a key or secret of this name exists, a certificate cannot share its name, so choose another certificate name or remove that key or secret (`az keyvault secret show` and `az keyvault key show` with the name show it); when an operation on the certificate is pending, let it finish (`az keyvault certificate pending show`) and deploy again"
    : "Key Vault refused the request itself (the reason says why): fix what it names, then deploy again; retrying as is gets the same answer"
}

/**
 * What to do after a Failed deploy, by what failed: retrying as is helps only when the vault or the
 * network was at fault, not when the name is soft-deleted, a permission is missing or Key Vault
 * refused the request itself.
 */
const nextAfterFailure = (
  o: Extract<DeployOutcome, { _tag: "Failed" }>,
  credential: CredentialInUse,
): string => {
  // The outcome of a recovery is not known (core's words are for every caller): what to check here.
  if (o.recovered === "unknown" && o.step === "soft-deleted")
    return "check whether Key Vault serves the certificate again (`kvdeploy show`), then deploy again; the recovery is not sent twice"
  // The answer to the import was lost and the version list did not show it: it may still appear.
  if (o.error === "VaultAmbiguous" && o.step === "reconcile")
    return "deploy again: it is skipped if the import did land, or imports once; `kvdeploy versions` shows what the vault holds"
  // The deleted certificate was gone when the deploy read or recovered it: someone else recovered
  // or purged it meanwhile, not a wrong vault URL or name (the name was found soft-deleted).
  if (o.error === "VaultNotFound" && o.step === "soft-deleted")
    return "the soft-deleted certificate was recovered or purged by someone else while this deploy ran (a recovery may take a few seconds to show): deploy again; `kvdeploy show` shows whether the vault serves it"
  // The import's answer was lost, and the certificate was deleted meanwhile (core concluded nothing
  // was written): a deploy that already recovers deleted certificates recovers it next time.
  if (o.error === "VaultConflictSoftDeleted" && o.step === "reconcile")
    return "kvdeploy concluded that nothing was written: deploy again; with --on-soft-deleted recover (on_soft_deleted: recover in the target file) the deploy recovers the certificate and deploys (without it, it fails the same way); or purge the certificate first"
  if (o.error === "VaultConflictSoftDeleted" && o.recovered === undefined)
    return "deploy again with --on-soft-deleted recover (on_soft_deleted: recover in the target file) to recover the certificate and deploy, or purge it first; retrying as is fails the same way"
  // What a VaultForbidden refused has its own remedy; only a missing permission is granted.
  if (o.error === "VaultForbidden" && o.refusal !== undefined && o.refusal !== "permission")
    return `${forbiddenFix(o.refusal, credential)}; then deploy again`
  // The client refused the vault's TLS certificate: trust or the URL is to fix, not a retry.
  if (o.error === "VaultUnavailable" && o.tlsRefused === true) return tlsRefusedFix
  // No token because the identity provider did not answer (a VaultUnavailable that was never sent).
  if (o.error === "VaultUnavailable" && o.unsent === true)
    return "the identity provider did not give a token (unavailable, throttling or unreachable), so nothing reached the vault: deploy again later; `kvdeploy doctor` checks the credential and its endpoint"
  switch (o.error) {
    case "VaultForbidden":
      return "grant what the reason names (`kvdeploy doctor` shows which data actions work and what to grant), then deploy again; retrying as is fails the same way"
    case "VaultRequestRejected":
      return rejectedFix(o.code, o.step === "import")
    case "VaultNotFound":
      return "check the vault URL and certificate name (`kvdeploy list`), then deploy again"
    case "VaultMalformedAnswer":
      return "the vault's answer lacked what Key Vault always sends (the reason names it), so kvdeploy concluded nothing from it: check what stands between this machine and the vault (a proxy, an API gateway) and deploy again once it passes Key Vault's answers unchanged; `kvdeploy versions` shows what the vault holds"
    default:
      return "the vault or the network failed: the deploy can be retried as is; `kvdeploy doctor` checks the credential, reachability and permissions"
  }
}

/**
 * Why an outcome has no previous version, in words: "first deploy, or unknown" was said of a
 * certificate the vault serves when the material was refused before it was read, and of a name a
 * soft-deleted certificate holds.
 */
const noPreviousText = (o: DeployOutcome): string =>
  o._tag === "Failed" && o.step === "snapshot"
    ? "(unknown: the served version could not be read)"
    : o._tag === "Rejected" && o.vaultCalls === 0
      ? "(not read: the material was refused before the deploy's first vault call)"
      : (o._tag === "Failed" && (o.step === "soft-deleted" || o.error === "VaultConflictSoftDeleted")) ||
          // Refused after reading the vault with nothing served, for what a recovery would bring back
          // (not kvdeploy's, or a previous key that does not match): a soft-deleted name.
          (o._tag === "Rejected" &&
            o.recovered === undefined &&
            o.problems.some((p) => p.reason === "not_managed" || p.reason === "previous_key"))
        ? "(none served: a soft-deleted certificate holds the name)"
        : o.recovered !== undefined
          ? "(none served before the recovery)"
          : "(none: first deploy)"

/** The new version this outcome reports, when any. */
export const newVersionOf = (o: DeployOutcome): string | undefined => {
  switch (o._tag) {
    case "Succeeded":
    case "Skipped":
    case "Superseded":
      return o.versionId
    case "Unverified":
      return o.versionId
    case "RolledBack":
    case "RollbackFailed":
      return o.failedVersionId
    default:
      return undefined
  }
}

/** What to do next after `o` (the text's `next` line, the JSON's `next`); undefined when nothing. */
export const nextStep = (o: DeployOutcome, credential: CredentialInUse): string | undefined => {
  if (o._tag === "Failed") return nextAfterFailure(o, credential)
  if (o._tag === "Unverified" && o.versionId === undefined)
    // No version is known to be this deploy's: the vault may have been read (a list answering 404).
    return "a person must look: `kvdeploy versions` shows what the vault holds; deploy again: it is skipped if the import did land, or imports once, and says so if the certificate is soft-deleted"
  if (o._tag === "RolledBack" && o.overwritten !== undefined) {
    const [first] = o.overwritten
    return `a person must decide which certificate the vault should serve: another writer's version is now under the rollback; \`kvdeploy versions\` shows them, and \`kvdeploy restore --from-version ${first?.versionId ?? "VERSION"}\` puts that version's certificate back`
  }
  if (o._tag === "RollbackFailed" && o.previousUnavailable !== undefined) {
    const after = nextAfterNoPreviousMaterial[o.previousUnavailable]
    if (after !== undefined) return after(o.previous?.versionId ?? "VERSION", o.target.certificateName)
  }
  return next[o._tag]
}

/**
 * A RollbackFailed's next step when the previous version's backing secret gave no material: `kvdeploy
 * restore --from-version` reads that same secret, so recommending it alone sent a person into the
 * same refusal ("forbidden (needs secrets/get)"). What makes a restore possible first, or the way
 * around it: deploying the previous certificate's own files again (a new version of them).
 */
const nextAfterNoPreviousMaterial: Partial<
  Record<
    NonNullable<Extract<DeployOutcome, { _tag: "RollbackFailed" }>["previousUnavailable"]>,
    (previous: string, name: string) => string
  >
> = {
  permission: (previous) =>
    `a person must act: the vault serves the failed version. The identity lacks secrets/get on the backing secret, which \`kvdeploy restore\` reads too: grant secrets/get (scoped to …/vaults/VAULT/secrets/NAME or to the vault; \`kvdeploy doctor\` shows it), then \`kvdeploy restore --from-version ${previous}\`; or deploy the previous certificate's files again (\`kvdeploy deploy --cert … --key …\`)`,
  disabled: (previous, name) =>
    `a person must act: the vault serves the failed version. The previous version ${previous} is disabled, and Key Vault reads no disabled secret, so \`kvdeploy restore\` cannot read it either: enable it (\`az keyvault certificate set-attributes --vault-name VAULT --name ${name} --version ${previous} --enabled true\`), then \`kvdeploy restore --from-version ${previous}\`; or deploy the previous certificate's files again (\`kvdeploy deploy --cert … --key …\`)`,
  "not-exportable": () =>
    "a person must act: the vault serves the failed version. The previous key is not exportable, so no restore from the vault can bring it back: deploy the previous certificate's files again (`kvdeploy deploy --cert … --key …`), or a new certificate",
}

export const outcomeLines = (
  o: DeployOutcome,
  leaf: LeafSummary | undefined,
  s: Style,
  now: number,
  /** The credential the deploy used: a refusal's next step depends on it. */
  credential: CredentialInUse,
): Array<string> => {
  const lines: Array<string> = []
  const secs = (o.timings.durationMs / 1000).toFixed(2)
  lines.push(
    `${headline(o, s)}  ${o.target.certificateName} in ${o.target.vaultUrl}  ${s.dim(`(exit ${exitCodeOf(o)}, ${secs} s, ${o.vaultCalls} vault call${o.vaultCalls === 1 ? "" : "s"})`)}`,
  )
  lines.push(`  ${meaningOf(o)}`)
  lines.push(`  reason      ${o.reason}`)
  lines.push(
    `  old         ${o.previous === undefined ? noPreviousText(o) : `${o.previous.versionId}  x5t ${o.previous.x5t === "" ? "(none: no certificate yet)" : o.previous.x5t}`}`,
  )
  const newVersion = newVersionOf(o)
  lines.push(
    `  new         ${newVersion ?? (o._tag === "Unverified" ? "(unknown: the import may have taken effect)" : "(no version written)")}${o.newX5t === undefined ? "" : `  x5t ${o.newX5t}`}`,
  )
  if (o.recovered !== undefined) lines.push(`  recovered   ${recoveredText[o.recovered]}`)
  if (o._tag === "RolledBack")
    lines.push(
      `  rollback    ${o.rollbackVersionId} (from ${o.rollbackSource}), tagged certctl-rollback-of=${o.failedVersionId}`,
    )
  if (o._tag === "RolledBack" && o.overwritten !== undefined)
    lines.push(
      `  ${s.yellow("overwritten")} ${o.overwritten.map((v) => `${v.versionId}  x5t ${v.x5t}`).join("; ")}: another writer's, imported after the snapshot, under the rollback now`,
    )
  if (o._tag === "RolledBack" && o.possiblyOverwritten !== undefined)
    lines.push(
      `  ${s.yellow("possibly overwritten")} ${o.possiblyOverwritten.map((v) => `${v.versionId}  x5t ${v.x5t}`).join("; ")}: a copy of the new certificate from the snapshot's second (an earlier deploy's, or another deployer's since the snapshot: Key Vault cannot order versions within a second)`,
    )
  if (o._tag === "RolledBack" && o.overwrittenUnchecked === true)
    lines.push(
      `  ${s.yellow("overwritten")} not checked: the versions could not be listed after the rollback's import (\`kvdeploy versions\` lists them)`,
    )
  if (o._tag === "RollbackFailed") lines.push(`  rollback    ${o.rollbackVersionId ?? "(not written)"}`)
  if (o._tag === "Superseded" && o.rollbackVersionId !== undefined)
    lines.push(`  rollback    ${o.rollbackVersionId}, tagged certctl-rollback-of=${o.versionId}`)
  if (o._tag === "Superseded")
    lines.push(`  served now  ${o.supersededBy.versionId}  x5t ${o.supersededBy.x5t}`)
  if (leaf !== undefined) {
    // The certificate this deploy was given, whatever the vault serves now (after a rollback, the previous one).
    lines.push(`  given       the certificate this deploy was given:`)
    lines.push(`  subject     ${leaf.subject}`)
    lines.push(`  sha256      ${leaf.sha256}`)
    lines.push(`  ${expiryRow(leaf.earliestNotAfter, now, 12)}${expiresFirstWords(leaf)}`)
  }
  if (o.contentType !== undefined) {
    const c = o.contentType
    const wordsOf = (t: string) => (t === "application/x-pem-file" ? "PEM" : "PKCS#12")
    const words = wordsOf(c.imported)
    lines.push(
      c.restored !== undefined
        ? // The rollback wrote the content type served before.
          `  content     ${words} (${c.imported}) imported; the rollback wrote ${wordsOf(c.restored)} (${c.restored}) again, as the vault served it before`
        : o._tag === "RollbackFailed"
          ? // No rollback version is known: whether one landed (an answer lost) is for a person to check.
            `  content     ${words} (${c.imported}) imported${c.change === "changed" ? `, changed from ${c.served}` : ""}; the rollback failed: check which content type the vault serves now`
          : c.change === "changed"
            ? `  ${s.yellow("content")}     ${words} (${c.imported}), changed from ${c.served}: consumers of the secret read ${words} from now on`
            : `  content     ${words} (${c.imported})${c.change === "kept" ? ", kept as the vault served it" : ""}`,
    )
  }
  if (o.adopted) lines.push(`  ${s.yellow("adopted a certificate kvdeploy did not manage before")}`)
  lines.push(...warningLines(o.warnings, s))
  if (o._tag === "Rejected") {
    lines.push("  problems")
    for (const p of o.problems) {
      // Core names its request's fields; the one a flag gives is shown as the flag.
      lines.push(`    ${s.bold(p.field === "previousKey" ? "--previous-key" : p.field)}: ${p.message}`)
      lines.push(`      fix: ${p.fix}`)
    }
  }
  // The step whose call failed: a Failed deploy's, and an Unverified or RollbackFailed one's when a
  // call's error ended it (none when no call failed: reads that disagreed, a rollback also wrong).
  if (
    o._tag === "Failed" ||
    ((o._tag === "Unverified" || o._tag === "RollbackFailed") && o.step !== undefined)
  )
    lines.push(`  failed at   ${o.step}${o.error === undefined ? "" : ` (${o.error})`}`)
  const todo = nextStep(o, credential)
  if (todo !== undefined) lines.push(`  next        ${todo}`)
  lines.push(`  ${s.dim(`steps: ${o.decisions.join(" → ")}`)}`)
  return lines
}
