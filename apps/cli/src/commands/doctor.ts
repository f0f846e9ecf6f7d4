/**
 * `kvdeploy doctor`: for a vault, check each thing a deploy needs, in order:
 * the target, a credential, the identity, a token (never printed), that the
 * vault answers, and which data actions work: certificates read, import, and
 * secrets/get (rollback from the backing secret).
 *
 * The import probe writes nothing: it imports content that is not a
 * certificate under the target's certificate name (`kvdeploy-doctor-probe`
 * without one), so that a role assigned at that certificate's scope is judged
 * as a deploy meets it. Key Vault checks the caller's permission first: a
 * permitted caller gets 400 (bad parameter), an unpermitted one 403. No
 * version is created either way.
 */
import {
  azurePolicyRefusalCode,
  isManagedByKvdeploy,
  MANAGED_BY_TAG,
  MANAGED_BY_VALUE,
  notManagedFix,
  shownCloud,
  shownPath,
  type TargetConfig,
  Vault,
  type VaultForbidden,
  type VaultOperation,
} from "@kvdeploy/core"
import * as Command from "effect/cli/Command"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as flags from "../cli/flags.js"
import { rejectedFix } from "../cli/outcome.js"
import { ExitCode, ExitWith } from "../cli/problems.js"
import { resolveTarget } from "../cli/target.js"
import { printJson, printLines, progress, styleOut } from "../cli/terminal.js"
import {
  type CredentialInUse,
  credentialInUse,
  credentialVariableProblems,
  deployServices,
  forbiddenFix,
} from "../cli/vault.js"

export const probeCertificateName = "kvdeploy-doctor-probe"

/**
 * Key Vault's error code of a refusal, or undefined when the answer carried none: the adapter
 * gives the status's digits as the code then (`VaultRequestRejected.code`), as for a body that is
 * not Key Vault's `{"error":{"code":…}}`.
 */
const keyVaultCode = (code: string, status: number): string | undefined =>
  code === String(status) ? undefined : code

export interface DoctorCheck {
  readonly check: string
  readonly status: "pass" | "fail" | "warn" | "skip"
  readonly detail: string
  readonly fix: string | undefined
  /**
   * On a `chain source` check: the default chain's credential it is about, as @azure/identity named
   * it (EnvironmentCredential, ManagedIdentityCredential, AzureCliCredential, …), or null when it
   * named none (the detail then opens with `unnamed`).
   */
  readonly credential?: string | null
  /**
   * On the `allowed tenants` check of a mode that reads AZURE_ADDITIONALLY_ALLOWED_TENANTS: the
   * tenant ids besides its own the credential may get tokens for (`*`: any; an empty list: none). An
   * entry that is no tenant id (a domain name) allows nothing and is not listed: the check is then
   * a warning that names it.
   */
  readonly tenants?: ReadonlyArray<string> | "*"
}

const grant = async (operation: VaultOperation): Promise<string> =>
  (await import("@kvdeploy/azure-kv")).grantAdvice(operation)

/** The fix for a refusal: a grant when a permission is missing; else what a token or network refusal needs. */
const fixFor = (
  operation: VaultOperation,
  refusal: VaultForbidden["refusal"],
  credential: CredentialInUse,
): Promise<string> =>
  refusal === undefined || refusal === "permission"
    ? grant(operation)
    : Promise.resolve(forbiddenFix(refusal, credential))

/** The vault's checks, in their order: what a failed credential or token step leaves unchecked. */
const vaultChecks = [
  "reachable",
  "certificates/get",
  "certificates/import",
  "certificates/list",
  "secrets/get",
] as const

/** `cloudBlock`: the target file's `cloud` as given (how the target check words the cloud). */
const runChecks = (target: TargetConfig, name: string | undefined, cloudBlock: unknown) =>
  Effect.gen(function* () {
    const checks: Array<DoctorCheck> = []
    const add = (c: DoctorCheck) => {
      // A refusal's detail opens with the grant its fix says: said once, as the fix.
      const repeated = c.fix === undefined ? undefined : `${c.fix}: `
      checks.push(
        repeated !== undefined && c.detail.startsWith(repeated)
          ? { ...c, detail: `refused: ${c.detail.slice(repeated.length)}` }
          : c,
      )
      return Effect.void
    }
    /** The vault's checks (from index `from` on), skipped: listed, so that a failed step does not read as the whole story. */
    const skipVault = (why: string, from = 0) =>
      Effect.forEach(vaultChecks.slice(from), (check) =>
        add({ check, status: "skip", detail: `not checked: ${why}`, fix: undefined }),
      )
    yield* add({
      check: "target",
      status: "pass",
      detail: `${target.vaultUrl} (${shownCloud(target.cloud, cloudBlock)}), credential_mode ${target.credentialMode}`,
      fix: undefined,
    })
    const credentials = yield* Effect.promise(() => import("@kvdeploy/credentials"))
    yield* progress("credential…")
    // Every variable the mode needs and lacks or holds malformed, each a failed check with its fix
    // (the credential is made only without them, and would name the first alone).
    const environment = yield* credentialVariableProblems(target)
    if (environment.problems.length > 0) {
      for (const p of environment.problems)
        yield* add({ check: "credential", status: "fail", detail: `${p.field}: ${p.message}`, fix: p.fix })
      yield* skipVault("no credential")
      return checks
    }
    const settings = credentials.credentialSettingsFromTarget(target)
    const resolved = yield* credentials
      .makeCredential(settings)
      .pipe(Effect.map(credentials.withTokenTimeLimit), Effect.result)
    if (resolved._tag === "Failure") {
      yield* add({
        check: "credential",
        status: "fail",
        detail: resolved.failure.reason,
        fix: resolved.failure.fix,
      })
      yield* skipVault("no credential")
      return checks
    }
    const identity = resolved.success.identity
    // What a refusal's fix depends on: the mode, and for managed_identity the AKS token exchange.
    const credential = yield* credentialInUse(target)
    yield* add({ check: "credential", status: "pass", detail: identity.source, fix: undefined })
    const authorityNote = credentials.authorityHostVariableNote(
      settings.authorityHost,
      process.env.AZURE_AUTHORITY_HOST,
    )
    yield* add({
      check: "identity",
      status: "pass",
      detail:
        ([
          identity.tenantId === undefined
            ? undefined
            : `tenant ${credentials.shownTenantId(identity.tenantId)}`,
          identity.clientId === undefined
            ? undefined
            : `client ${credentials.shownClientId(identity.clientId)}`,
          identity.endpoint === undefined
            ? undefined
            : identity.mode === "default"
              ? // The chain has not chosen a source yet: the authority is its Entra ID sources' (the
                // token check names the one that answered, which may be a managed identity endpoint).
                `authority ${identity.endpoint} for the chain's Entra ID sources`
              : `via ${identity.endpoint}`,
          identity.tokenFile === undefined ? undefined : `token file ${shownPath(identity.tokenFile)}`,
        ]
          .filter((x) => x !== undefined)
          .join(", ") || "(from the environment)") +
        // Another cloud's authority in AZURE_AUTHORITY_HOST: the target's wins, said so.
        (authorityNote === undefined ? "" : `; ${authorityNote}`),
      fix: undefined,
    })
    // The tenants besides its own the credential may get tokens for (a vault in another tenant), in
    // the modes that read AZURE_ADDITIONALLY_ALLOWED_TENANTS; for managed_identity, only when it is set.
    const allowed = yield* credentials.allowedTenantsFromEnvironment
    if (credentials.readsAllowedTenants(identity.mode)) {
      // One verdict: a value that allows less than it seems to is a warning that says what it
      // allows, not a pass beside it (a domain name was shown as allowed, then warned of).
      const inWords = credentials.allowedTenantsInWords(allowed, identity.tenantId)
      const warned = allowed.warnings
      yield* add({
        check: "allowed tenants",
        status: warned.length === 0 ? "pass" : "warn",
        detail:
          warned.length === 0 ? inWords : `${warned.map((w) => w.reason).join("; ")}. Allowed: ${inWords}`,
        fix: warned.length === 0 ? undefined : warned.map((w) => w.fix).join("; "),
        tenants: credentials.shownAllowedTenants(allowed),
      })
    } else if (allowed.set)
      yield* add({
        check: "allowed tenants",
        status: "skip",
        detail: `not read: AZURE_ADDITIONALLY_ALLOWED_TENANTS is set, but credential_mode ${identity.mode} does not read it (a managed identity gets tokens of its own tenant only)`,
        fix: undefined,
      })
    /**
     * The federated token, judged by its own times (expired: Entra ID's AADSTS700024) wherever
     * @azure/identity reads the file: workload identity, managed identity's AKS token exchange, the
     * default chain's sources that read it; skipped with why where the file is set and not read.
     */
    const tokenFileUse = yield* credentials.federatedTokenUse(settings, identity)
    const federatedToken = (tokenObtained: boolean) => {
      if (tokenFileUse === undefined) return Effect.void
      const c = credentials.federatedTokenUseCheck(tokenFileUse, tokenObtained, Date.now())
      const status = {
        ok: "pass",
        warning: "warn",
        skipped: "skip",
        failed: "fail",
        missing: "fail",
      } as const
      return add({ check: c.name, status: status[c.status], detail: c.detail, fix: c.fix })
    }
    yield* progress("token…")
    const scope = credentials.keyVaultScope(target.cloud.keyVaultResource)
    const token = yield* credentials.probeToken(resolved.success, scope).pipe(Effect.result)
    if (token._tag === "Failure") {
      yield* add({
        check: "token",
        status: "fail",
        detail: `${scope}: ${token.failure.reason}`,
        fix: token.failure.fix,
      })
      // The default chain: why each of its sources gave no token (failed), and each source it could
      // not build, so never tried (a workload identity without its variables: skipped), in the
      // chain's order, so a missing variable shows where an operator looks for that source. Each is
      // named as the SDK named it; not numbered, since an unnamed source's place is not known.
      const chainLines = credentials
        .inChainOrder(token.failure.chainSources ?? [], token.failure.chainNotBuilt ?? [])
        .map(({ source, tried }) => ({
          source,
          status: tried ? ("fail" as const) : ("skip" as const),
          detail: tried ? credentials.chainSourceDetail(source) : credentials.chainNotBuiltDetail(source),
          // A managed identity AZURE_CLIENT_ID made user-assigned, refused as unknown: what to do.
          // The environment source's missing variables; a developer tool asking its own cloud.
          fix: tried
            ? credentials.chainSourceFix(source, identity, { authorityHost: settings.authorityHost })
            : undefined,
        }))
      for (const { source, status, detail, fix } of chainLines)
        yield* add({
          check: "chain source",
          status,
          detail,
          fix,
          credential: source.credential ?? null,
        })
      yield* federatedToken(false)
      yield* skipVault("no token")
      return checks
    }
    const t = token.success
    yield* add({
      check: "token",
      status: "pass",
      detail: `for ${scope}${t.answeredBy === undefined ? "" : `, from ${t.answeredBy} (the default chain's source that answered)`}, ${credentials.expiryInWords(t)}${t.tenantId === undefined ? "" : `, tenant ${t.tenantId}`}${t.objectId === undefined ? "" : `, object id ${t.objectId}`}${t.appId === undefined ? "" : `, app id ${t.appId}`} (the token itself is not shown)`,
      fix: undefined,
    })
    // A token Key Vault would refuse (another audience or tenant, expired, not a JWT): said here, by
    // its claims, and not only as the vault read's 401 below.
    for (const problem of credentials.tokenProblems(t, {
      resource: target.cloud.keyVaultResource,
      tenantId: credentials.expectedTenant(identity, t),
    }))
      yield* add(problem)
    yield* federatedToken(true)

    const layer = yield* deployServices(target, { credential: resolved.success.credential })
    return yield* Effect.gen(function* () {
      const vault = yield* Vault
      // Reachability and certificates read: the target's certificate, or a name that does not exist (404 is a pass).
      const readName = name ?? probeCertificateName
      yield* progress(`reading ${readName}…`)
      const latest = yield* vault.getLatest(readName).pipe(Effect.result)
      let latestVersion: string | undefined
      if (latest._tag === "Success") {
        latestVersion = latest.success.versionId
        yield* add({
          check: "reachable",
          status: "pass",
          detail: `${target.vaultUrl} answered`,
          fix: undefined,
        })
        yield* add({
          check: "certificates/get",
          status: "pass",
          detail: `read ${readName} (latest ${latestVersion})`,
          fix: undefined,
        })
        // A certificate kvdeploy did not write: a deploy refuses to take it over without adopt.
        // Said, so "ready to deploy" is not read alone.
        if (name !== undefined && !isManagedByKvdeploy(latest.success.tags))
          yield* add({
            check: "managed",
            status: "warn",
            detail: `${name}'s latest version ${latestVersion} was not written by kvdeploy (no ${MANAGED_BY_TAG}=${MANAGED_BY_VALUE} tag): a deploy refuses to replace it (Rejected, exit 2; nothing written) unless it adopts it`,
            fix: notManagedFix,
          })
      } else {
        const e = latest.failure
        if (e._tag === "VaultNotFound") {
          yield* add({
            check: "reachable",
            status: "pass",
            detail: `${target.vaultUrl} answered`,
            fix: undefined,
          })
          yield* add({
            check: "certificates/get",
            status: "pass",
            detail: `permitted (${readName} does not exist: 404)`,
            fix: undefined,
          })
        } else if (e._tag === "VaultForbidden") {
          // No token could be had (nothing was sent but the challenge): the credential, the resource
          // or the tenant the challenge asked for was refused before any request.
          const noToken =
            e.refusal === "credential" ||
            e.refusal === "resource" ||
            (e.refusal === "tenant" && e.unsent === true)
          yield* add(
            noToken
              ? {
                  check: "reachable",
                  status: "skip",
                  detail:
                    "not judged: no token could be had, so only the SDK's unauthenticated challenge was sent",
                  fix: undefined,
                }
              : {
                  check: "reachable",
                  status: "pass",
                  detail: `${target.vaultUrl} answered (${e.refusal === "token" || e.refusal === "tenant" ? 401 : 403})`,
                  fix: undefined,
                },
          )
          yield* add({
            check: "certificates/get",
            status: "fail",
            detail: e.detail,
            fix: yield* Effect.promise(() => fixFor("getLatest", e.refusal, credential)),
          })
          // No token for the vault: every later check would meet the same refusal (said once here),
          // and a "forbidden" for data actions nothing was asked of.
          if (noToken) {
            yield* skipVault("no token for the vault (certificates/get above says why)", 2)
            return checks
          }
        } else {
          yield* add({
            check: "reachable",
            status: "fail",
            detail: e.message,
            fix: "check the vault URL, DNS, proxy and firewall (private endpoint or selected networks); retry when throttling ends",
          })
          yield* skipVault("the first vault read failed", 1)
          return checks
        }
      }
      // Import, without writing: invalid content is refused with 400 when permitted, 403 when not.
      yield* progress("import permission (probe writes nothing)…")
      const probeName = name ?? probeCertificateName
      const probe = yield* vault
        .importVersion({
          name: probeName,
          pfx: new TextEncoder().encode("kvdeploy doctor: this is not a certificate"),
          password: Redacted.make(""),
          tags: {},
        })
        .pipe(Effect.result)
      if (
        probe._tag === "Failure" &&
        probe.failure._tag === "VaultRequestRejected" &&
        probe.failure.status === 409
      ) {
        // Permitted (Key Vault checks the caller first), but the name takes no import: a key or secret
        // holds it, an operation on the certificate is pending, or a delete is under way. A deploy
        // fails the same way, so "ready to deploy" must not be said.
        const rejected = probe.failure
        yield* add({
          check: "certificates/import",
          status: "pass",
          detail: `permitted (${probeName} refused the probe with 409 ${rejected.code}; nothing was written)`,
          fix: undefined,
        })
        yield* add({
          check: "certificate name",
          status: name === undefined ? "warn" : "fail",
          detail: `${probeName} takes no import now, so a deploy to it fails (409 ${rejected.code}): ${rejected.detail}`,
          fix: rejectedFix(rejected.code, true),
        })
      } else if (
        probe._tag === "Failure" &&
        probe.failure._tag === "VaultRequestRejected" &&
        probe.failure.status === 400 &&
        keyVaultCode(probe.failure.code, 400) !== undefined
      ) {
        yield* add({
          check: "certificates/import",
          status: "pass",
          detail: `permitted (the probe's invalid content was refused with 400 ${probe.failure.code}; nothing was written)`,
          fix: undefined,
        })
      } else if (
        probe._tag === "Failure" &&
        probe.failure._tag === "VaultRequestRejected" &&
        probe.failure.status === 400
      ) {
        // A 400 without Key Vault's error body (`{"error":{"code":…}}`): a proxy, a gateway or another
        // service refused the request, not Key Vault, so the identity's import permission is unknown.
        yield* add({
          check: "certificates/import",
          status: "fail",
          detail: `the probe's import was refused with 400 but without Key Vault's error body (no error code), so it was not Key Vault that answered and the import permission is unknown: ${probe.failure.detail}`,
          fix: "check that vault_url is the vault's URL and that what answers there is Key Vault (not a proxy, gateway or another service on that host and port)",
        })
      } else if (
        probe._tag === "Failure" &&
        probe.failure._tag === "VaultRequestRejected" &&
        probe.failure.code === azurePolicyRefusalCode
      ) {
        // The vault's Azure Policy refused the probe (it carries kvdeploy's import policy, whose
        // lifetime action a Deny assignment may refuse whatever the content): Key Vault answered,
        // so vault_url is not in question, and a deploy's import may be refused the same way.
        yield* add({
          check: "certificates/import",
          status: "fail",
          detail: `the vault's Azure Policy refused the probe's import (403 ${azurePolicyRefusalCode}), so whether the identity may import is not known, and a deploy's import may be refused the same way: ${probe.failure.detail}`,
          fix: rejectedFix(probe.failure.code, true),
        })
      } else if (probe._tag === "Failure" && probe.failure._tag === "VaultRequestRejected") {
        // Key Vault refuses the probe's invalid content with 400 once the caller is permitted: any
        // other refusal (a 404 for the import path, a 405) is not Key Vault's answer to an import,
        // so a deploy's import would fail the same way.
        yield* add({
          check: "certificates/import",
          status: "fail",
          detail: `the probe's import was refused${probe.failure.status === undefined ? "" : ` with ${probe.failure.status}`}, where Key Vault refuses invalid content with 400, so a deploy's import would fail too: ${probe.failure.detail}`,
          fix: "check that vault_url is the vault's URL and that what answers there is Key Vault (not a proxy, gateway or another service on that host and port)",
        })
      } else if (probe._tag === "Failure" && probe.failure._tag === "VaultConflictSoftDeleted") {
        yield* add({
          check: "certificates/import",
          status: "pass",
          detail: `permitted (${probeName} is soft-deleted: 409)`,
          fix: undefined,
        })
        // The target's own certificate is soft-deleted: a deploy as configured fails, or recovers it
        // first. Said, so "ready to deploy" is not read alone.
        if (name !== undefined)
          yield* add({
            check: "soft-deleted",
            status: "warn",
            detail:
              target.onSoftDeleted === "recover"
                ? `${name} is soft-deleted: a deploy recovers it first (on_soft_deleted: recover; it needs certificates/recover, which doctor does not probe), then deploys`
                : `${name} is soft-deleted: a deploy fails (exit 1) and writes nothing`,
            fix:
              target.onSoftDeleted === "recover"
                ? "nothing, if recovering it is intended; `kvdeploy plan` shows what a deploy would do"
                : "deploy with --on-soft-deleted recover (on_soft_deleted: recover in the target file) to recover it, or purge it first; `kvdeploy plan` shows what a deploy would do",
          })
      } else if (probe._tag === "Failure" && probe.failure._tag === "VaultForbidden") {
        const refusal = probe.failure.refusal
        yield* add({
          check: "certificates/import",
          status: "fail",
          detail: probe.failure.detail,
          fix: yield* Effect.promise(() => fixFor("importVersion", refusal, credential)),
        })
      } else if (probe._tag === "Failure") {
        yield* add({
          check: "certificates/import",
          status: "warn",
          detail: `the probe could not tell: ${probe.failure.message}`,
          fix: "retry `kvdeploy doctor`",
        })
      } else {
        yield* add({
          check: "certificates/import",
          status: "warn",
          detail: `the vault accepted invalid content as ${probeName}/${probe.success.versionId}; this is not Key Vault's behaviour`,
          fix: `delete version ${probe.success.versionId} of ${probeName}`,
        })
      }
      // certificates/list: the version list (a deploy reconciles an ambiguous import from it; `versions`
      // and `list` read it). Read-only: Key Vault lists an unknown name as empty (200), and a 404 (a soft-deleted name) still says the read is permitted.
      yield* progress("certificates/list…")
      const listed = yield* vault.listVersions(name ?? probeCertificateName).pipe(Effect.result)
      if (listed._tag === "Success" || listed.failure._tag === "VaultNotFound") {
        yield* add({
          check: "certificates/list",
          status: "pass",
          detail: "the version list is readable (a deploy can reconcile an import whose answer was lost)",
          fix: undefined,
        })
      } else if (listed.failure._tag === "VaultForbidden") {
        const refusal = listed.failure.refusal
        yield* add({
          check: "certificates/list",
          status: "warn",
          detail:
            "forbidden: an import whose answer is lost ends Unverified instead of being reconciled; `versions` and `list` fail",
          fix: yield* Effect.promise(() => fixFor("listVersions", refusal, credential)),
        })
      } else {
        yield* add({
          check: "certificates/list",
          status: "warn",
          detail: listed.failure.message,
          fix: "retry `kvdeploy doctor`",
        })
      }
      // secrets/get: the backing secret of the latest version (rollback restores the previous PFX
      // from it; `kvdeploy restore` reads a version's from it).
      yield* progress("secrets/get…")
      const secret = yield* vault
        .getVersionSecret(name ?? probeCertificateName, latestVersion ?? "0")
        .pipe(Effect.result)
      if (secret._tag === "Success") {
        yield* add({
          check: "secrets/get",
          status: "pass",
          detail: "the backing secret is readable (rollback can restore the previous PFX)",
          fix: undefined,
        })
      } else if (secret.failure._tag === "VaultNotFound") {
        yield* add({
          check: "secrets/get",
          status: "pass",
          detail: "permitted (404 for a secret that does not exist)",
          fix: undefined,
        })
      } else if (secret.failure._tag === "VaultNoPrivateKey") {
        yield* add({
          check: "secrets/get",
          status: "warn",
          detail:
            "permitted, but the backing secret holds no private key (not exportable): rollback needs key history",
          fix: "import with an exportable key (kvdeploy does), or keep the previous key",
        })
      } else if (secret.failure._tag === "VaultMalformedAnswer") {
        // Read, but not material a rollback can restore (`unrestorable`: a key that belongs to none
        // of the secret's certificates, a PFX that does not open with the blank password or is none,
        // one the codec does not read), or nothing read (an answer the SDK failed on, one without a
        // value): the message says which. The fix holds for both: a rollback cannot use the secret
        // as answered, and only what the PFX reader does not support is an answer Key Vault sends.
        yield* add({
          check: "secrets/get",
          status: "warn",
          detail: secret.failure.message,
          fix: "a rollback to this version cannot use its backing secret as the vault answered it: keep its key (kvdeploy deploy --previous-key). Unless the detail names what kvdeploy's PFX reader does not support, Key Vault sends no such answer: if `kvdeploy doctor` gets it again, find what between this machine and the vault changes Key Vault's answers (a proxy, or a service at vault_url that is not Key Vault)",
        })
      } else if (secret.failure._tag === "VaultForbidden") {
        const refusal = secret.failure.refusal
        yield* add({
          check: "secrets/get",
          status: "warn",
          detail:
            refusal === "disabled"
              ? "the latest version is disabled, so its backing secret cannot be read (whether secrets/get is granted is not known): a rollback to it cannot read its PFX"
              : "forbidden: a rollback cannot read the previous PFX from the backing secret, and `kvdeploy restore` cannot read any version's (it needs secrets/get too)",
          fix: yield* Effect.promise(() => fixFor("getVersionSecret", refusal, credential)),
        })
      } else {
        yield* add({
          check: "secrets/get",
          status: "warn",
          detail: secret.failure.message,
          fix: "retry `kvdeploy doctor`",
        })
      }
      return checks
    }).pipe(Effect.provide(layer))
  })

export const doctor = Command.make(
  "doctor",
  { ...flags.target, name: flags.certificateName, json: flags.json },
  (input) =>
    Effect.gen(function* () {
      const { config, raw } = yield* resolveTarget(input, { name: input.name }, { requireName: false })
      const name = typeof raw.certificate_name === "string" ? config.certificateName : undefined
      const checks = yield* runChecks(config, name, raw.cloud)
      const ok = checks.every((c) => c.status !== "fail")
      // A warning does not fail the check (a deploy works), but says what will not: a rollback
      // without secrets/get, a list. The last line counts them, so "ready" is never read alone.
      const warnings = checks.filter((c) => c.status === "warn").length
      if (input.json) yield* printJson({ vaultUrl: config.vaultUrl, ok, warnings, checks })
      else {
        const s = styleOut()
        const mark = {
          pass: s.green("pass"),
          fail: s.red("FAIL"),
          warn: s.yellow("warn"),
          skip: s.dim("skip"),
        }
        yield* printLines([
          `${s.bold("doctor")}  ${config.vaultUrl}`,
          ...checks.flatMap((c) => [
            `  ${mark[c.status]}  ${c.check.padEnd(20)} ${c.detail}`,
            ...(c.fix === undefined || c.status === "pass"
              ? []
              : [`        ${" ".repeat(20)} fix: ${c.fix}`]),
          ]),
          !ok
            ? s.red("not ready: fix the failed checks above")
            : warnings === 0
              ? s.green("ready to deploy")
              : s.yellow(
                  `ready to deploy, with ${warnings === 1 ? "1 warning" : `${warnings} warnings`} above: read ${warnings === 1 ? "it" : "them"} before deploying to a certificate in use`,
                ),
        ])
      }
      if (!ok) return yield* new ExitWith({ exitCode: ExitCode.failed })
    }),
).pipe(
  Command.withDescription(
    `Check everything a deploy needs from a vault, each pass, warn, fail or skip, with the fix: the target configuration, a credential for its mode, the identity, a token for Key Vault (never printed), reachability, and which data actions work: certificates/get, certificates/import, certificates/list and secrets/get.

The import probe writes nothing: it imports content that is not a certificate under the target's certificate name (${probeCertificateName} when the target names none); Key Vault answers a permitted caller 400 and an unpermitted one 403, and creates no version either way. Exit 0 when no check failed (warnings allowed; the last line counts them), 1 when one failed, 2 for a usage error.`,
  ),
  Command.withShortDescription("Check credential, token, reachability and permissions"),
  Command.withExamples([
    {
      command: "kvdeploy doctor --config target.json",
      description: "Check the target's vault and certificate",
    },
    {
      command:
        "kvdeploy doctor --vault-url https://my-vault.vault.azure.net --credential-mode managed_identity --json",
      description: "As JSON",
    },
  ]),
)
