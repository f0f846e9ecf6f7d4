/**
 * Vaults over the Azure SDKs (@kvdeploy/azure-kv): one client pair per vault
 * and identity, one credential per identity, shared by the deployments that
 * name them, and let go once a reload leaves no deployment naming them (their
 * connections closed as their last requests end).
 *
 * A token the vault refuses (the token itself: VaultForbidden `token`) is let go of: the identity's
 * credential and clients are made anew, so the next request asks for a new token. The identity
 * libraries and the SDK's challenge policy judge a held token's expiry by this host's clock, the
 * vault by Azure's: after the host's clock is set back, a token expired for the vault is still
 * valid for them, and without this the agent sent it, refused, until the host's clock caught up.
 * Not for a managed identity: MSAL keeps its token in one cache for the whole process, which
 * @azure/identity gives no way past, so the agent says to restart instead.
 */
import type { TokenCredential } from "@azure/core-auth"
import * as AzureKv from "@kvdeploy/azure-kv"
import {
  type Metrics,
  type PfxCodec,
  type TargetConfig,
  type Vault,
  VaultForbidden,
  type VaultOperation,
} from "@kvdeploy/core"
import {
  credentialSettingsFromTarget,
  identityRequestMarginMs,
  makeCredential,
  shareTokenRequests,
  tokenRequestTimeLimitFor,
} from "@kvdeploy/credentials"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { AgentConfig } from "./config.js"
import { makeIdentityHealth } from "./identityHealth.js"
import { memoByKey } from "./memoByKey.js"
import { VaultAccessUnavailable, Vaults } from "./vaults.js"

/** The keys of a target: its credential's identity, its vault client's, and its vault's. */
const keysOf = (target: TargetConfig) => {
  const settings = credentialSettingsFromTarget(target)
  // The credential gives tokens for its cloud's Key Vault resource only (forKeyVaultScope):
  // targets of two clouds with one authority (Azure Stack Hub on Entra ID) each have their own.
  const identity = JSON.stringify([
    settings.mode,
    settings.managedIdentityClientId ?? "",
    settings.authorityHost,
    settings.keyVaultResource ?? "",
  ])
  const client = `${target.vaultUrl} ${identity}`
  return { settings, identity, client, vault: `${client} ${target.cloud.name}` }
}

/**
 * At most one renewal of an identity's tokens in this time: a refusal a new token does not cure (a
 * token for another audience, say) makes one token request and one new connection per vault a
 * minute, not one per failed request.
 */
export const tokenRenewalIntervalNanos = 60_000_000_000n

/** The vault refused the token itself (no grant helps): a VaultForbidden whose refusal is `token`. */
const tokenRefused = (e: unknown): boolean =>
  typeof e === "object" &&
  e !== null &&
  (e as { readonly _tag?: unknown })._tag === "VaultForbidden" &&
  (e as { readonly refusal?: unknown }).refusal === "token"

/** Vaults over the Azure SDKs: one client per vault and identity, one credential per identity. */
export const azureVaults = (config: AgentConfig): Layer.Layer<Vaults, never, Metrics | PfxCodec> =>
  Layer.effect(Vaults)(
    Effect.gen(function* () {
      const context = yield* Effect.context<Metrics | PfxCodec>()
      const clients = memoByKey<AzureKv.AzureKeyVaultHandle, VaultAccessUnavailable>()
      // Every client made and still named (for releaseIdleConnections), with its key.
      const handles = new Map<AzureKv.AzureKeyVaultHandle, string>()
      // The client keys the last reload named (none before the first reload: every key is named).
      let namedClients: ReadonlySet<string> | undefined
      const credentials = memoByKey<TokenCredential, VaultAccessUnavailable>()
      // Each identity's renewals of its tokens (see tokenRefused): how many, and the last one's time.
      const renewals = new Map<string, { count: number; atNanos: bigint }>()
      const renewalsOf = (identity: string) => renewals.get(identity)?.count ?? 0
      // The vault each vault key answers (one per vault, URL, identity and cloud), made once.
      const facades = new Map<string, Vault["Service"]>()
      // The identities whose token MSAL keeps for the whole process (a managed identity that asks
      // the host's endpoint, not AKS's token exchange), set as their credential is made.
      const processWideTokens = new Set<string>()
      const identityHealth = makeIdentityHealth((line) =>
        Effect.runForkWith(context)(
          (line.level === "info" ? Effect.logInfo(line.msg) : Effect.logWarning(line.msg)).pipe(
            Effect.annotateLogs(line.fields),
          ),
        ),
      )
      // The vault of each vault URL and identity, as an effect made once: deployments of a vault
      // share it (10,000 deployments made 10,000 copies of the same effect at start-up, ~0.1 s).
      const vaultOf = new Map<string, Effect.Effect<Vault["Service"], VaultAccessUnavailable>>()
      /**
       * Let go of `identity`'s tokens: its credential and its clients are forgotten (the clients'
       * connections closed as their requests end), so the next request of each of its vaults makes
       * them anew and asks for a new token. At most once per tokenRenewalIntervalNanos.
       */
      const renewTokens = (identity: string, settings: ReturnType<typeof keysOf>["settings"]) =>
        Effect.flatMap(Clock.monotonicTimeNanos, (now) => {
          const last = renewals.get(identity)
          if (last !== undefined && now - last.atNanos < tokenRenewalIntervalNanos) return Effect.void
          const fields = {
            credential_mode: settings.mode,
            managed_identity_client_id: settings.managedIdentityClientId ?? "",
            authority_host: settings.authorityHost,
          }
          // @azure/identity asks MSAL for a managed identity's token from the host's endpoint with no
          // way to pass its cache by, and MSAL keeps it in one cache for the whole process: new
          // clients get the same token. (AKS's token exchange is a credential of its own, renewed.)
          if (processWideTokens.has(identity)) {
            renewals.set(identity, { count: last?.count ?? 0, atNanos: now })
            return Effect.logWarning(
              "the vault refused the managed identity's token, which this host still holds as valid (a clock set back after the token was had is one cause); the identity library keeps a managed identity's token for the whole process, so no new token is asked for",
            ).pipe(
              Effect.annotateLogs({
                ...fields,
                fix: "check this host's clock (`kvdeploy doctor` checks the token's times against it) and restart the agent once it is right; if the clock is right, check that the identity is in the vault's tenant",
              }),
            )
          }
          renewals.set(identity, { count: (last?.count ?? 0) + 1, atNanos: now })
          credentials.retain((key) => key !== identity)
          const gone: Array<AzureKv.AzureKeyVaultHandle> = []
          for (const [handle, key] of handles)
            if (key.endsWith(` ${identity}`)) {
              handles.delete(handle)
              gone.push(handle)
            }
          clients.retain((key) => !key.endsWith(` ${identity}`))
          return Effect.andThen(
            Effect.logWarning(
              "the vault refused a token this host still holds as valid (a clock set back after the token was had is one cause): the agent lets go of the identity's tokens and asks for a new token",
            ).pipe(
              Effect.annotateLogs({
                ...fields,
                fix: `nothing, if the next requests succeed; if refusals go on with new tokens, check that the identity is in the vault's tenant and this host's clock (\`kvdeploy doctor\` checks the token's times against it)${
                  settings.mode === "default"
                    ? "; where the chain answers with the host's managed identity, its token is kept for the whole process: restart the agent once the clock is right"
                    : ""
                }`,
              }),
            ),
            Effect.forEach(gone, (h) => h.connections.retire, { discard: true }),
          )
        })
      /**
       * The vault of `keys` whose every call goes to the client its identity has now: the one made
       * first, until a refused token has the identity's clients made anew (then `rebuild`, once).
       */
      const renewing = (
        keys: ReturnType<typeof keysOf>,
        first: Vault["Service"],
        /** The identity's renewals when `first` began to be made (one since: made with old tokens). */
        firstRenewals: number,
        rebuild: Effect.Effect<Vault["Service"], VaultAccessUnavailable>,
      ): Vault["Service"] => {
        let held = first
        let heldRenewals = firstRenewals
        const current = (operation: VaultOperation) =>
          Effect.suspend(() => {
            const renewed = renewalsOf(keys.identity)
            if (renewed === heldRenewals) return Effect.succeed(held)
            return rebuild.pipe(
              Effect.map((vault) => {
                held = vault
                heldRenewals = renewed
                return vault
              }),
              // A client that cannot be made now (its credential cannot be made: a token file gone)
              // fails the call with why, as a first one does; the next call tries again.
              Effect.mapError(
                (e) =>
                  new VaultForbidden({
                    operation,
                    refusal: "credential",
                    unsent: true,
                    detail: `no token for the vault (nothing was sent to the vault): ${e.reason} (fix: ${e.fix})`,
                  }),
              ),
            )
          })
        const via = <A, E>(
          operation: VaultOperation,
          use: (vault: Vault["Service"]) => Effect.Effect<A, E>,
        ): Effect.Effect<A, E | VaultForbidden> =>
          current(operation).pipe(
            Effect.flatMap(use),
            Effect.tapError((e) =>
              tokenRefused(e) ? renewTokens(keys.identity, keys.settings) : Effect.void,
            ),
          )
        const { listCertificates, getOperation } = first
        return {
          getLatest: (name) => via("getLatest", (v) => v.getLatest(name)),
          getVersion: (name, versionId) => via("getVersion", (v) => v.getVersion(name, versionId)),
          listVersions: (...args) => via("listVersions", (v) => v.listVersions(...args)),
          importVersion: (...args) => via("importVersion", (v) => v.importVersion(...args)),
          getVersionSecret: (...args) => via("getVersionSecret", (v) => v.getVersionSecret(...args)),
          getDeleted: (name) => via("getDeleted", (v) => v.getDeleted(name)),
          recoverDeleted: (name) => via("recoverDeleted", (v) => v.recoverDeleted(name)),
          // A client made anew is the same adapter's, with the same optional calls as the first.
          ...(listCertificates === undefined
            ? {}
            : {
                listCertificates: (continuation) =>
                  via("listCertificates", (v) =>
                    (v.listCertificates as typeof listCertificates)(continuation),
                  ),
              }),
          ...(getOperation === undefined
            ? {}
            : {
                getOperation: (name) =>
                  via("getOperation", (v) => (v.getOperation as typeof getOperation)(name)),
              }),
        }
      }
      const forTarget = (target: TargetConfig) => {
        const keys = keysOf(target)
        const known = vaultOf.get(keys.vault)
        if (known !== undefined) return known
        const made = vaultFor(target, keys)
        vaultOf.set(keys.vault, made)
        return made
      }
      const vaultFor = (target: TargetConfig, keys: ReturnType<typeof keysOf>) => {
        // The agent's request timeout, and at least 90 s where a managed identity endpoint may
        // answer (@azure/identity retries IMDS's 410 for about 70 s while an identity is set up).
        const tokenLimitMs = Math.max(
          config.settings.requestTimeoutMs,
          tokenRequestTimeLimitFor(keys.settings.mode),
        )
        const credential = credentials(
          keys.identity,
          makeCredential({
            ...keys.settings,
            identityRequestTimeoutMs: tokenLimitMs + identityRequestMarginMs,
          }).pipe(
            // A fleet's first requests all ask for a token at once: one token request for them,
            // with that limit.
            Effect.map((c) => {
              if (keys.settings.mode === "managed_identity" && c.identity.tokenFile === undefined)
                processWideTokens.add(keys.identity)
              else processWideTokens.delete(keys.identity)
              return shareTokenRequests(c.credential, {
                timeoutMs: tokenLimitMs,
                setting: "agent.request_timeout_seconds",
                // A failure answers every deployment of the identity for 5 s: with no token held, at
                // most 12 requests a minute to a failing identity endpoint, whatever the fleet's size
                // (a held token is answered instead, asked for again 30 s later).
                reuseFailureMs: 5_000,
                // The identity's log lines and token series (identityHealth.ts).
                onRequestEnded: identityHealth.track(
                  keys.identity,
                  {
                    credential_mode: keys.settings.mode,
                    managed_identity_client_id: keys.settings.managedIdentityClientId ?? "",
                    authority_host: keys.settings.authorityHost,
                    key_vault_resource: keys.settings.keyVaultResource ?? "",
                  },
                  { tokenFile: c.identity.tokenFile, endpoint: c.identity.endpoint },
                ),
              })
            }),
            Effect.mapError(
              (e) =>
                new VaultAccessUnavailable({
                  reason: `no credential for credential_mode ${target.credentialMode}: ${e.reason}`,
                  fix: e.fix,
                }),
            ),
          ),
        )
        const vault = clients(
          keys.client,
          Effect.suspend(() => {
            // A renewal of the identity's tokens while this client is made leaves it with the old
            // credential: it serves the request it is made for, but is not kept (nor is its socket).
            const renewalsBefore = renewalsOf(keys.identity)
            return Effect.flatMap(credential, (tokenCredential) =>
              AzureKv.makeWithConnections({
                vaultUrl: target.vaultUrl,
                credential: tokenCredential,
                customCloud: target.cloud.name === "Custom",
                requestTimeoutMs: config.settings.requestTimeoutMs,
                recoverTimeoutMs: config.settings.recoverTimeoutMs,
                // As many connections as this vault's deployments in progress (each makes one request
                // at a time), and one for a pass's list pages (read outside the lane's slots); without
                // a bound, bursts opened twice as many, ~100 KB of TLS buffers each.
                maxConnections: config.settings.vaultConcurrency + 1,
                retry: { maxRetries: 0 },
              }).pipe(
                Effect.tap((handle) =>
                  renewalsOf(keys.identity) !== renewalsBefore
                    ? Effect.asVoid(handle.connections.retire)
                    : // Made for a key the last reload no longer names (a deploy of a configuration it
                      // replaced, still running): retired at once, and not remembered for later requests.
                      namedClients === undefined || namedClients.has(keys.client)
                      ? Effect.sync(() => void handles.set(handle, keys.client))
                      : Effect.andThen(
                          Effect.sync(() => forget(keys.client)),
                          Effect.asVoid(handle.connections.retire),
                        ),
                ),
                Effect.provideContext(context),
              ),
            )
          }),
        ).pipe(Effect.map((handle): Vault["Service"] => handle.vault))
        return Effect.suspend(() => {
          const known = facades.get(keys.vault)
          if (known !== undefined) return Effect.succeed(known)
          const renewalsBefore = renewalsOf(keys.identity)
          return Effect.map(vault, (first) => {
            const made = facades.get(keys.vault) ?? renewing(keys, first, renewalsBefore, vault)
            facades.set(keys.vault, made)
            return made
          })
        })
      }
      /** Forget the client of `clientKey` (and its vaults), so that the next request builds one anew. */
      const forget = (clientKey: string) => {
        clients.retain((key) => key !== clientKey)
        for (const key of [...vaultOf.keys()]) if (key.startsWith(`${clientKey} `)) vaultOf.delete(key)
        for (const key of [...facades.keys()]) if (key.startsWith(`${clientKey} `)) facades.delete(key)
      }
      const releaseIdleConnections = Effect.suspend(() =>
        Effect.forEach(handles.keys(), (h) => h.connections.releaseIdle, { concurrency: "unbounded" }),
      ).pipe(Effect.map((closed) => closed.reduce((a, n) => a + n, 0)))
      const retain = (targets: ReadonlyArray<TargetConfig>) =>
        Effect.suspend(() => {
          const named = targets.map(keysOf)
          const vaultKeys = new Set(named.map((k) => k.vault))
          const clientKeys = new Set(named.map((k) => k.client))
          const identities = new Set(named.map((k) => k.identity))
          namedClients = clientKeys
          for (const key of [...vaultOf.keys()]) if (!vaultKeys.has(key)) vaultOf.delete(key)
          for (const key of [...facades.keys()]) if (!vaultKeys.has(key)) facades.delete(key)
          clients.retain((key) => clientKeys.has(key))
          credentials.retain((key) => identities.has(key))
          identityHealth.retain((key) => identities.has(key))
          for (const key of [...renewals.keys()]) if (!identities.has(key)) renewals.delete(key)
          for (const key of [...processWideTokens]) if (!identities.has(key)) processWideTokens.delete(key)
          // Let go: a deploy of a configuration the reload replaced may still be using one, so its
          // connections are closed as their requests end (retire), not only the idle ones now.
          const gone: Array<AzureKv.AzureKeyVaultHandle> = []
          const goneUrls = new Set<string>()
          for (const [handle, key] of handles)
            if (!clientKeys.has(key)) {
              handles.delete(handle)
              gone.push(handle)
              // A vault URL has no space; the identity follows one.
              goneUrls.add(key.slice(0, key.indexOf(" ")))
            }
          // The vault URLs no deployment names any more (a vault still named under another
          // credential setting lets its old client go, but is not one of them).
          const namedUrls = new Set(targets.map((t) => t.vaultUrl))
          return Effect.as(
            Effect.forEach(gone, (h) => h.connections.retire, { discard: true }),
            {
              clients: gone.length,
              vaults: [...goneUrls].filter((url) => !namedUrls.has(url)).sort(),
            },
          )
        })
      return Vaults.of({ forTarget, releaseIdleConnections, retain, identities: identityHealth.states })
    }),
  )
