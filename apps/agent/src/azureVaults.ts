/**
 * Vaults over the Azure SDKs (@kvdeploy/azure-kv): one client pair per vault
 * and identity, one credential per identity, shared by the deployments that
 * name them, and let go once a reload leaves no deployment naming them (their
 * connections closed as their last requests end).
 */
import type { TokenCredential } from "@azure/core-auth"
import * as AzureKv from "@kvdeploy/azure-kv"
import type { Metrics, PfxCodec, TargetConfig, Vault } from "@kvdeploy/core"
import {
  credentialSettingsFromTarget,
  identityRequestMarginMs,
  makeCredential,
  shareTokenRequests,
  tokenRequestTimeLimitFor,
} from "@kvdeploy/credentials"
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
            Effect.map((c) =>
              shareTokenRequests(c.credential, {
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
              }),
            ),
            Effect.mapError(
              (e) =>
                new VaultAccessUnavailable({
                  reason: `no credential for credential_mode ${target.credentialMode}: ${e.reason}`,
                  fix: e.fix,
                }),
            ),
          ),
        )
        return clients(
          keys.client,
          Effect.flatMap(credential, (tokenCredential) =>
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
                // Made for a key the last reload no longer names (a deploy of a configuration it
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
          ),
        ).pipe(Effect.map((handle): Vault["Service"] => handle.vault))
      }
      /** Forget the client of `clientKey` (and its vaults), so that the next request builds one anew. */
      const forget = (clientKey: string) => {
        clients.retain((key) => key !== clientKey)
        for (const key of [...vaultOf.keys()]) if (key.startsWith(`${clientKey} `)) vaultOf.delete(key)
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
          clients.retain((key) => clientKeys.has(key))
          credentials.retain((key) => identities.has(key))
          identityHealth.retain((key) => identities.has(key))
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
