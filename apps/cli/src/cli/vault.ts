/**
 * Access to the vault of a validated target: the credential for its mode and
 * cloud, the azure-kv adapter of core's Vault port, the pkcs12 codec. All of
 * them are imported when a command first needs the vault, so `--help`, usage
 * errors and `validate` never load the Azure SDKs or pkijs.
 */

import type { TokenCredential } from "@azure/core-auth"
import {
  AuditLog,
  hostNotFoundFix,
  Metrics,
  PfxCodec,
  type TargetConfig,
  Vault,
  type VaultOperation,
  vaultOperationWords,
} from "@kvdeploy/core"
import type { MissingVariableState } from "@kvdeploy/credentials/environment"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { type CliProblem, failure, type Problem, usage } from "./problems.js"

/**
 * The pkcs12 codec, loaded on its first use: reading commands (show, versions,
 * verify) never build or read a PFX, so they never load pkijs.
 */
const lazyPfxCodec: Layer.Layer<PfxCodec> = Layer.sync(PfxCodec, () => {
  let loaded: Promise<PfxCodec["Service"]> | undefined
  const codec = Effect.promise(() => {
    loaded ??= import("@kvdeploy/pkcs12").then((m) =>
      Effect.runPromise(
        Effect.gen(function* () {
          return yield* PfxCodec
        }).pipe(Effect.provide(m.layer)),
      ),
    )
    return loaded
  })
  return PfxCodec.of({
    inspect: (material) => Effect.flatMap(codec, (c) => c.inspect(material)),
    encode: (material, options) => Effect.flatMap(codec, (c) => c.encode(material, options)),
    encodePem: (material) => Effect.flatMap(codec, (c) => c.encodePem(material)),
    decode: (bytes, password) => Effect.flatMap(codec, (c) => c.decode(bytes, password)),
  })
})

export interface VaultAccessOptions {
  /** Metrics to record into (default: none; the CLI prints outcomes instead). */
  readonly metrics?: Layer.Layer<Metrics> | undefined
  /** A credential already made (doctor makes one to probe it). */
  readonly credential?: TokenCredential | undefined
  /** Extra CA certificates (PEM) to trust for the vault and the authority (the demo's in-process emulator). */
  readonly trustedCaPem?: string | undefined
}

/**
 * What the environment lacks or holds wrongly for the target's credential mode, one problem per
 * missing variable and one per malformed value (named, never quoted).
 */
const variableProblems = (
  target: Pick<TargetConfig, "credentialMode">,
  problem: { readonly variables: ReadonlyArray<string>; readonly fix: string } & (
    | { readonly kind: "missing" }
    | { readonly kind: "malformed"; readonly reason: string }
  ),
  stateOf: (variable: string) => MissingVariableState,
): Array<Problem> =>
  problem.kind === "missing"
    ? problem.variables.map((variable) => {
        // Set to nothing (`AZURE_CLIENT_SECRET=` in an environment file), or to spaces alone, reads
        // as not set to the credential; "is not set" sent the operator to a variable `env` shows as set.
        const state = stateOf(variable)
        return {
          field: variable,
          message: `is ${state} (credential_mode ${target.credentialMode} needs ${state === "not set" ? "it" : "its value"})`,
          fix: problem.fix,
        }
      })
    : problem.variables.map((variable) => ({
        field: variable,
        message: `cannot work with credential_mode ${target.credentialMode}: ${problem.reason}`,
        fix: problem.fix,
      }))

/**
 * The environment variables the target's credential mode needs that are not set, and those it
 * reads that are malformed, as problems: checked without making a credential, so a command can
 * list them with its other input problems.
 */
export const credentialVariableProblems = (
  target: Pick<TargetConfig, "credentialMode"> & Partial<Pick<TargetConfig, "managedIdentityClientId">>,
): Effect.Effect<{ readonly problems: ReadonlyArray<Problem>; readonly summary: string | undefined }> =>
  Effect.gen(function* () {
    // The environment checks alone: an invalid target's are listed too, without @azure/identity.
    const environment = yield* Effect.promise(() => import("@kvdeploy/credentials/environment"))
    // The configured client id: with it, managed identity's AKS token exchange reads the token file
    // without AZURE_CLIENT_ID, and the file is judged as workload_identity's is.
    const found = yield* environment.environmentProblems(target.credentialMode, {
      checkFiles: true,
      tokenExpiry: true,
      managedIdentityClientId: target.managedIdentityClientId,
    })
    const missing = found.filter((p) => p.kind === "missing").flatMap((p) => p.variables)
    // Set to nothing, or to spaces alone, is named so (variableProblems), here as there.
    const stateOf = (v: string) => environment.missingVariableState(process.env[v])
    const empty = missing.filter((v) => stateOf(v) === "set but empty")
    const blank = missing.filter((v) => stateOf(v) === "set to spaces or line breaks only")
    const unset = missing.filter((v) => stateOf(v) === "not set")
    // One variable's value is malformed; several together cannot work (HTTPS_PROXY without NO_PROXY
    // for the managed identity endpoint: NO_PROXY unset was called malformed).
    // A federated token that expired is no malformed variable: the file it names holds an old token.
    const expired = found
      .filter((p) => p.kind === "malformed" && p.expiredToken === true)
      .flatMap((p) => p.variables)
    const malformed = found
      .filter((p) => p.kind === "malformed" && p.variables.length === 1 && p.expiredToken !== true)
      .flatMap((p) => p.variables)
    const together = found.filter((p) => p.kind === "malformed" && p.variables.length > 1)
    const parts = [
      ...(unset.length > 0 ? [`${unset.join(", ")} not set`] : []),
      ...(empty.length > 0 ? [`${empty.join(", ")} empty`] : []),
      ...(blank.length > 0 ? [`${blank.join(", ")} blank (spaces or line breaks only)`] : []),
      ...(malformed.length > 0 ? [`${malformed.join(", ")} malformed`] : []),
      ...expired.map((v) => `the federated token in ${v} expired`),
      ...together.map((p) => `${p.variables.join(" and ")} cannot work together`),
    ]
    return {
      problems: found.flatMap((p) => variableProblems(target, p, stateOf)),
      summary: parts.length > 0 ? `credential_mode ${target.credentialMode}: ${parts.join(", ")}` : undefined,
    }
  })

/**
 * A credential for the target, or a problem that says which variable or setting is missing. Every
 * variable the mode needs and lacks or holds malformed is listed (as deploy and plan list them),
 * not the first alone: `show` with two malformed variables named one per run.
 */
export const credentialFor = (target: TargetConfig, trustedCaPem?: string) =>
  Effect.gen(function* () {
    const environment = yield* credentialVariableProblems(target)
    if (environment.problems.length > 0)
      return yield* usage(
        `no credential for ${environment.summary ?? `credential_mode ${target.credentialMode}`}`,
        environment.problems,
      )
    const credentials = yield* Effect.promise(() => import("@kvdeploy/credentials"))
    const settings = credentials.credentialSettingsFromTarget(
      target,
      trustedCaPem === undefined ? {} : { trustedCaPem },
    )
    return yield* credentials.makeCredential(settings).pipe(
      Effect.mapError((e) => {
        const title = `no credential for credential_mode ${target.credentialMode}: ${e.reason}`
        // A variable the mode needs is not set, or set to a value that cannot work: the
        // process is misconfigured, nothing was sent anywhere; a usage problem (exit 2) like
        // any other bad input. Anything else (an unreadable token file, a setting
        // @azure/identity refuses) stays a failure (exit 1).
        switch (e._tag) {
          case "CredentialVariableMissing":
            return usage(
              title,
              variableProblems(target, { kind: "missing", ...e }, (v) =>
                credentials.missingVariableState(process.env[v]),
              ),
            )
          case "CredentialVariableMalformed":
            return usage(
              title,
              variableProblems(
                target,
                {
                  kind: "malformed",
                  variables: [e.variable],
                  reason: e.reason,
                  fix: e.fix,
                },
                credentials.missingVariableState,
              ),
            )
          default:
            return failure(title, [{ field: "credential_mode", message: e.reason, fix: e.fix }])
        }
      }),
      Effect.map(credentials.withTokenTimeLimit),
    )
  })

/**
 * The services core's deploy program needs, for this target: Vault (azure-kv
 * over the SDKs), PfxCodec (pkcs12), Metrics (given, or none) and AuditLog (none:
 * the CLI prints the outcome record instead).
 */
export const deployServices = (
  target: TargetConfig,
  options: VaultAccessOptions = {},
): Effect.Effect<Layer.Layer<Vault | PfxCodec | Metrics | AuditLog>, CliProblem> =>
  Effect.gen(function* () {
    const azureKv = yield* Effect.promise(() => import("@kvdeploy/azure-kv"))
    const credential = options.credential ?? (yield* credentialFor(target, options.trustedCaPem)).credential
    const base = Layer.mergeAll(lazyPfxCodec, options.metrics ?? Metrics.layerNoop, AuditLog.layerNoop)
    const vault = azureKv.layer({
      vaultUrl: target.vaultUrl,
      credential,
      customCloud: target.cloud.name === "Custom",
      ...(options.trustedCaPem === undefined ? {} : { trustedCaPem: options.trustedCaPem }),
    })
    return Layer.provideMerge(vault, base)
  })

/** Run `effect` with the deploy services of `target`. */
export const withDeployServices = <A, E>(
  target: TargetConfig,
  effect: Effect.Effect<A, E, Vault | PfxCodec | Metrics | AuditLog>,
  options?: VaultAccessOptions,
): Effect.Effect<A, E | CliProblem> =>
  Effect.flatMap(deployServices(target, options), (layer) => Effect.provide(effect, layer))

/** Run `f` with the target's Vault service. */
export const useVault = <A, E>(
  target: TargetConfig,
  f: (vault: Vault["Service"]) => Effect.Effect<A, E>,
): Effect.Effect<A, E | CliProblem> =>
  withDeployServices(
    target,
    Effect.gen(function* () {
      const vault = yield* Vault
      return yield* f(vault)
    }),
  )

interface TaggedVaultError {
  readonly _tag: string
  readonly message: string
  /** The port operation that failed (core's vault errors start their message with it in words). */
  readonly operation?: string | undefined
  readonly permission?: string | undefined
  /** True when the request never reached the vault (no token could be had for it). */
  readonly unsent?: boolean | undefined
  /** A VaultUnavailable's: this client did not accept the vault's TLS certificate. */
  readonly tlsRefused?: boolean | undefined
  /** A VaultUnavailable's: the vault's host name did not resolve (ENOTFOUND). */
  readonly hostNotFound?: boolean | undefined
  readonly refusal?:
    | "permission"
    | "token"
    | "network"
    | "credential"
    | "disabled"
    | "resource"
    | "tenant"
    | undefined
}

/**
 * The credential a command's vault requests use, as far as what to do about its refusal depends on
 * it: the target's credential_mode, whether managed_identity gets its token by AKS workload
 * identity's token exchange here, and whether AZURE_IDENTITY_DISABLE_MULTITENANTAUTH is set.
 */
export interface CredentialInUse {
  readonly mode: TargetConfig["credentialMode"]
  /**
   * managed_identity's token comes from AKS workload identity's token exchange (the federated token
   * file, AZURE_TENANT_ID and a client id are set), not from a managed identity endpoint.
   */
  readonly tokenExchange: boolean
  /** AZURE_IDENTITY_DISABLE_MULTITENANTAUTH is set: the credential asks its own tenant, whatever the vault names. */
  readonly multiTenantAuthDisabled: boolean
}

/**
 * The credential the target's vault requests use, by the rules the credential is made by
 * (makeCredential's exchange, @azure/identity's reading of the variable), read without loading
 * @azure/identity.
 */
export const credentialInUse = (
  target: Pick<TargetConfig, "credentialMode"> & Partial<Pick<TargetConfig, "managedIdentityClientId">>,
): Effect.Effect<CredentialInUse> =>
  Effect.gen(function* () {
    const environment = yield* Effect.promise(() => import("@kvdeploy/credentials/environment"))
    const tokenErrors = yield* Effect.promise(() => import("@kvdeploy/credentials/tokenErrors"))
    const exchange =
      target.credentialMode === "managed_identity"
        ? yield* environment.managedIdentityTokenExchange(target.managedIdentityClientId)
        : undefined
    return {
      mode: target.credentialMode,
      tokenExchange: exchange !== undefined,
      multiTenantAuthDisabled: tokenErrors.multiTenantAuthDisabled(),
    }
  })

const noTokenWords = "no token could be had, so nothing reached the vault"
const doctorChecks = "`kvdeploy doctor` checks the credential"
/** Where a federated token comes from and is trusted, for the two modes that exchange one. */
const federatedToken = (identity: string, trust: string) =>
  `the federated token file (AZURE_FEDERATED_TOKEN_FILE: current, not a copy) and the federated identity credential on ${identity} (${trust})`

/** What to do about a credential that gave no token, for the mode in use. */
const credentialFix = (credential: CredentialInUse): string => {
  switch (credential.mode) {
    case "client_secret":
      return `${noTokenWords}: check that AZURE_CLIENT_SECRET is current (not expired or replaced) and is a secret of AZURE_CLIENT_ID in AZURE_TENANT_ID; ${doctorChecks}`
    case "workload_identity":
      return `${noTokenWords}: check ${federatedToken("the application or user-assigned identity AZURE_CLIENT_ID names", "its issuer and subject must be the token's")}; ${doctorChecks}`
    case "managed_identity":
      return credential.tokenExchange
        ? `${noTokenWords}: the managed identity's token comes from AKS workload identity's token exchange here, not from a managed identity endpoint: check ${federatedToken("the user-assigned identity", "its issuer: this cluster's OIDC issuer; its subject: this pod's service account")}; ${doctorChecks}`
        : `${noTokenWords}: run on an Azure host that has a managed identity (for a user-assigned one, managed_identity_client_id names one assigned to the host); ${doctorChecks}`
    case "default":
      return `${noTokenWords}: check the default chain's source that should answer (AZURE_CLIENT_SECRET for AZURE_CLIENT_ID in AZURE_TENANT_ID; the federated token file and its federated identity credential; this host's managed identity; a developer tool's sign-in); \`kvdeploy doctor\` names each source and why it failed`
  }
}

/** What to do about a vault in another tenant than the credential's, for the mode in use. */
const tenantFix = (credential: CredentialInUse): string =>
  credential.mode === "managed_identity"
    ? "the vault is in another tenant than the credential's (the reason names both), and a managed identity gets tokens of its own tenant only: use an identity of the vault's tenant; no grant and no other secret helps"
    : `the vault is in another tenant than the credential's (the reason names both): use an identity of the vault's tenant, or, for a multi-tenant application, give it a service principal there (an admin of that tenant consents to it) and allow that tenant (AZURE_ADDITIONALLY_ALLOWED_TENANTS${
        credential.multiTenantAuthDisabled
          ? ", and unset AZURE_IDENTITY_DISABLE_MULTITENANTAUTH, which is set here and keeps every token to the credential's own tenant"
          : ""
      }); when the reason says Entra ID found no application of the client id in the vault's tenant, AZURE_CLIENT_ID may be wrong instead: check it; no grant and no other secret helps`

/**
 * What to do about a token the vault refused itself (another tenant's, another cloud's), for the
 * mode in use: a managed identity asking its endpoint gets a token of the tenant its identity is
 * in, which no variable changes.
 */
const tokenFix = (credential: CredentialInUse): string =>
  credential.mode === "managed_identity" && !credential.tokenExchange
    ? "the vault refused the token itself (no permission would help): a managed identity's token is of the tenant the identity is in, which no setting here changes: check that the identity (managed_identity_client_id, or the host's system-assigned one) is in the vault's tenant, that the vault is in the target's cloud, and that this host's clock is right; `kvdeploy doctor` shows the token's tenant and checks its times against this host's clock"
    : "the vault refused the token itself (no permission would help): check the credential's tenant (AZURE_TENANT_ID), that the vault is in the target's cloud, and that this host's clock is right; `kvdeploy doctor` shows the token's tenant and checks its times against this host's clock"

/** What to do about a VaultForbidden, by what was refused and the credential in use. */
export const forbiddenFix = (refusal: TaggedVaultError["refusal"], credential: CredentialInUse): string =>
  refusal === "token"
    ? tokenFix(credential)
    : refusal === "network"
      ? "the vault refused this network (the reason says which): its firewall refused the address, so add it to the vault's networking rules; or public access is disabled, so reach the vault through its private endpoint"
      : refusal === "disabled"
        ? "the version is disabled, and Key Vault reads no disabled version (no grant helps): enable it (`az keyvault certificate set-attributes --enabled true --version …`), or leave it disabled"
        : refusal === "resource"
          ? "the vault asked for a token for another resource than the target cloud's keyvault_resource (the reason names both), so none was asked for and nothing reached the vault; the credential is not in question: check that the vault URL is the vault you mean, and if it is, set cloud.keyvault_resource to the resource its challenge names (a custom cloud's, or the emulator's)"
          : refusal === "tenant"
            ? tenantFix(credential)
            : refusal === "credential"
              ? credentialFix(credential)
              : "grant the identity the permission (run `kvdeploy doctor` to see which data actions work); check the vault firewall allows this network"

/** A vault TLS certificate this machine did not accept (a VaultUnavailable's `tlsRefused`), in words. */
export const tlsRefusedWords = "this machine did not accept the vault's TLS certificate"

/**
 * What to do about a vault TLS certificate this machine did not accept, for every command (deploy's
 * next step, the read commands' problem): the vault answered, so its DNS and network are not in
 * question; the CA trust or the vault URL is to fix, and a retry fails the same way.
 */
export const tlsRefusedFix = `${tlsRefusedWords} (the error above names why: an unknown CA, an expired certificate, a name that does not match): behind a proxy or firewall that inspects TLS, trust its CA (NODE_EXTRA_CA_CERTS=/path/to/proxy-ca.pem, or NODE_OPTIONS=--use-system-ca for the system store); a name that does not match means the vault URL is not the vault's; retrying as is fails the same way`

/** What happened, in a few words, before the error's tag (which scripts may match). */
const errorWords: Readonly<Record<string, string>> = {
  VaultForbidden: "refused",
  VaultThrottled: "throttled",
  VaultUnavailable: "no answer from the vault",
  VaultAmbiguous: "the answer was lost",
  VaultNotFound: "not found",
  VaultRequestRejected: "request refused",
  VaultMalformedAnswer: "an answer kvdeploy cannot use",
  VaultConflictSoftDeleted: "the name is held by a soft-deleted certificate",
}

/** A vault error as an operator problem: what failed, and what to do. Exit 1. */
export const vaultProblem = (
  operation: VaultOperation,
  error: TaggedVaultError,
  credential: CredentialInUse,
): CliProblem => {
  const fixes: Record<string, string> = {
    VaultForbidden: forbiddenFix(error.refusal, credential),
    VaultThrottled: "Key Vault is throttling this vault; wait and retry",
    VaultUnavailable:
      "check the vault URL, DNS and network access (proxy, firewall, private endpoint); `kvdeploy doctor` checks reachability",
    VaultAmbiguous: "the request may have taken effect; check with `kvdeploy versions` before retrying",
    VaultNotFound: "check the certificate name with `kvdeploy list`",
    VaultRequestRejected: "Key Vault refused the request; the message says why",
    VaultMalformedAnswer:
      "the answer lacked what Key Vault always sends (the message names it): check what stands between this machine and the vault (a proxy, an API gateway, an emulator) and retry once it passes Key Vault's answers unchanged",
    VaultConflictSoftDeleted:
      "recover or purge the soft-deleted certificate, or deploy with --on-soft-deleted recover",
  }
  // No token because the identity provider (or the host's managed identity endpoint) did not answer:
  // nothing reached the vault, so the vault's URL and DNS are not what to check.
  const noToken = error._tag === "VaultUnavailable" && error.unsent === true
  // The vault answered with a TLS certificate this machine refused: its trust, not its network.
  const tlsRefused = error._tag === "VaultUnavailable" && error.tlsRefused === true
  // The vault's host name did not resolve: the vault URL is the field to look at.
  const hostNotFound = error._tag === "VaultUnavailable" && error.hostNotFound === true
  // The error's message starts with the operation in words, which the title says once.
  // Named for the operation that failed, which may be another than the command's main one.
  const failed =
    error.operation !== undefined && Object.hasOwn(vaultOperationWords, error.operation)
      ? (error.operation as VaultOperation)
      : operation
  const named = `${vaultOperationWords[failed]}: `
  const detail = error.message.startsWith(named) ? error.message.slice(named.length) : error.message
  // No token (the credential refused or unavailable, the identity provider failing): what to
  // look at is the credential, not the vault, which nothing reached.
  const credentialRefused =
    error._tag === "VaultForbidden" &&
    (error.refusal === "credential" || (error.unsent === true && error.refusal !== "resource"))
  // What happened, in words that do not blame the vault when nothing reached it.
  const words = tlsRefused
    ? tlsRefusedWords
    : hostNotFound
      ? "the vault's host name was not found, so nothing was sent"
      : noToken
        ? "no token: the identity provider did not answer, so nothing reached the vault"
        : credentialRefused && error.refusal === "credential"
          ? noTokenWords
          : (errorWords[error._tag] ?? "failed")
  return failure(`${vaultOperationWords[failed]} failed: ${detail}`, [
    {
      field: noToken || credentialRefused ? "credential" : hostNotFound ? "vault_url" : "vault",
      message: `${words} (${error._tag}${error.permission === undefined ? "" : `; needs ${error.permission}`})`,
      fix: noToken
        ? "the identity provider could not be reached or is failing, so nothing was sent to the vault: check network access to it (its authority host; for managed_identity, the host's identity endpoint, which only Azure hosts with a managed identity have) and retry; `kvdeploy doctor` checks the credential"
        : tlsRefused
          ? tlsRefusedFix
          : hostNotFound
            ? hostNotFoundFix
            : (fixes[error._tag] ?? "run `kvdeploy doctor` for this vault"),
    },
  ])
}

/**
 * The problem for a name held by a soft-deleted certificate: its dates and the way back (a deploy
 * would fail on it, not create it). Fails as reading the deleted certificate fails (404: none).
 * `nameField` names where the name came from (resolveTarget's: `--name`, or the target file's field).
 */
export const softDeletedCertificate = (
  vault: Vault["Service"],
  target: TargetConfig,
  nameField: string,
  /** What to do about it, for a command that is not a deploy (restore's: recover it first). */
  fix = "deploy with --on-soft-deleted recover (on_soft_deleted: recover in the target file) to recover it and deploy, or recover it (`az keyvault certificate recover`); a deploy without it fails on this name",
) =>
  vault.getDeleted(target.certificateName).pipe(
    Effect.map((deleted) =>
      failure(`${target.certificateName} is soft-deleted in ${target.vaultUrl}`, [
        {
          field: nameField,
          message: `${target.certificateName} was deleted ${deleted.deletedAt?.toISOString() ?? "(the vault does not say when)"}${deleted.scheduledPurgeAt === undefined ? "" : ` and is purged after ${deleted.scheduledPurgeAt.toISOString()}`}; the vault serves nothing under this name until it is recovered`,
          fix,
        },
      ]),
    ),
  )

/**
 * The problem for a certificate name that holds no certificate (a 404, or an empty version list):
 * "does not exist", unless the name is held by a soft-deleted certificate, which is then named
 * with its dates and the way back (a deploy would fail on it, not create it). Reading deleted
 * certificates may be forbidden: then it is "does not exist" as before.
 */
export const absentCertificate = (
  vault: Vault["Service"],
  target: TargetConfig,
  fix: string,
  /** Where the name came from (resolveTarget's `nameField`). */
  nameField: string,
  /** The fix when a soft-deleted certificate holds the name (softDeletedCertificate's by default). */
  softDeletedFix?: string,
): Effect.Effect<CliProblem> =>
  softDeletedCertificate(vault, target, nameField, softDeletedFix).pipe(
    Effect.catch((e) =>
      Effect.succeed(
        failure(`${target.certificateName} does not exist in ${target.vaultUrl}`, [
          {
            field: nameField,
            // Not found, or not allowed to look: nothing more to say. Anything else is said.
            message:
              e._tag === "VaultNotFound" || e._tag === "VaultForbidden"
                ? `no certificate named ${target.certificateName}`
                : `no certificate named ${target.certificateName} (whether a soft-deleted one holds the name could not be read: ${e.message})`,
            fix,
          },
        ]),
      ),
    ),
  )
