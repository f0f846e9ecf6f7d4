import * as Effect from "effect/Effect"

/**
 * Changes to process.env for a test: a name given a string is set to it, a name given `undefined`
 * is unset.
 */
export type ProcessEnvChanges = Readonly<Record<string, string | undefined>>

/**
 * Make `changes` in process.env now; the function returned puts every name they touch back as it
 * was: its old value, or unset again if it was unset (never the text "undefined"). For hooks
 * (`beforeAll` / `afterAll`) and `try` / `finally`; in an effect, use `withProcessEnv`.
 */
export const changeProcessEnv = (changes: ProcessEnvChanges): (() => void) => {
  const saved = new Map(Object.keys(changes).map((k) => [k, process.env[k]] as const))
  for (const [k, v] of Object.entries(changes)) {
    if (v === undefined) delete process.env[k]
    else process.env[k] = v
  }
  return () => {
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
  }
}

/**
 * Run `effect` with `changes` made in process.env, then put back what they touched, however it
 * ends (success, failure, interruption). `changes` is read when the effect starts, so a function
 * of process.env sees it as it is then. Tests in one file run one after another and vitest gives
 * each file a worker of its own, so no other test sees the change.
 */
export const withProcessEnv = <A, E, R>(
  changes: ProcessEnvChanges | (() => ProcessEnvChanges),
  effect: Effect.Effect<A, E, R>,
): Effect.Effect<A, E, R> =>
  Effect.acquireUseRelease(
    Effect.sync(() => changeProcessEnv(typeof changes === "function" ? changes() : changes)),
    () => effect,
    (restore) => Effect.sync(restore),
  )

/** The names @azure/identity and MSAL read an identity from: AZURE_*, IDENTITY_*, MSI_*, IMDS_*. */
const identityName = /^(AZURE_|IDENTITY_|MSI_|IMDS_)/

/**
 * The changes that make `variables` the whole Azure identity environment of process.env: every
 * identity variable set now (AZURE_*, IDENTITY_*, MSI_*, IMDS_*) unset, then `variables` set.
 * NODE_EXTRA_CA_CERTS (in the emulator's environments for child processes) is left out: Node.js
 * reads it only when a process starts.
 */
export const identityEnvironment = (variables: Readonly<Record<string, string>>): ProcessEnvChanges => {
  const changes: Record<string, string | undefined> = {}
  for (const k of Object.keys(process.env)) if (identityName.test(k)) changes[k] = undefined
  for (const [k, v] of Object.entries(variables)) if (k !== "NODE_EXTRA_CA_CERTS") changes[k] = v
  return changes
}

/**
 * Run `effect` with exactly `variables` as the Azure identity environment of process.env (where
 * DefaultAzureCredential's and ManagedIdentityCredential's sources read it), then restore it.
 */
export const withIdentityEnvironment = <A, E, R>(
  variables: Readonly<Record<string, string>>,
  effect: Effect.Effect<A, E, R>,
): Effect.Effect<A, E, R> => withProcessEnv(() => identityEnvironment(variables), effect)
