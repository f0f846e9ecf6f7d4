/**
 * The agent's access to vaults: one `Vault` (core's port) per target, built
 * by the composition in main.ts (azure-kv over the SDKs, with the target's
 * credential). The reconciler adds the per-vault budget around it, and
 * closes the clients' idle connections once a pass is over.
 */
import type { TargetConfig, Vault } from "@kvdeploy/core"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Effect from "effect/Effect"
import type { IdentityTokenState } from "./identityHealth.js"

/** No vault client could be made for the target (credential settings missing, ...). */
export class VaultAccessUnavailable extends Data.TaggedError("VaultAccessUnavailable")<{
  readonly reason: string
  readonly fix: string
}> {
  override get message(): string {
    return `${this.reason} (fix: ${this.fix})`
  }
}

export class Vaults extends Context.Service<
  Vaults,
  {
    /** The vault of a target; the same service for targets of the same vault and credential. */
    readonly forTarget: (target: TargetConfig) => Effect.Effect<Vault["Service"], VaultAccessUnavailable>
    /**
     * Close the idle keep-alive connections of every vault client made so far
     * (requests in flight keep theirs; the next request opens a new one) and
     * answer how many were closed. Run after a pass: an idle TLS connection
     * holds tens of KB, and a fleet's clients keep hundreds open otherwise.
     */
    readonly releaseIdleConnections: Effect.Effect<number>
    /**
     * Keep the clients and credentials of `targets` only (a reload's deployments): those of
     * every other vault and identity are let go, their idle connections closed now and the others
     * as their requests end (a deploy still using one finishes). Answers how many clients were let
     * go, and the vault URLs no target names any more among theirs.
     */
    readonly retain: (
      targets: ReadonlyArray<TargetConfig>,
    ) => Effect.Effect<{ readonly clients: number; readonly vaults: ReadonlyArray<string> }>
    /** Each identity's token requests now: failing or not, and the expiry of the token it holds. */
    readonly identities: () => ReadonlyArray<IdentityTokenState>
  }
>()("@kvdeploy/agent/Vaults") {}
