/**
 * Each identity's token requests, as the operator sees them: one log line
 * when its token requests start failing (or the token held runs out), a
 * reminder every 10 minutes while they fail, one when a token comes again;
 * and, for the metrics, whether they fail and when the token it holds
 * expires. The deployments' own lines say "no token for the vault" once
 * each, not at every attempt (reconciler.ts): this is where an outage of an
 * identity endpoint is followed.
 */

import { shownPath } from "@kvdeploy/core"
import {
  federatedTokenTimes,
  shownIdentityMessage,
  type TokenRequestEnded,
  tokenFileStateOf,
} from "@kvdeploy/credentials"

/** What names an identity in its log lines and series. */
export interface IdentityLabels {
  readonly credential_mode: string
  /** The user-assigned managed identity's client id, or "". */
  readonly managed_identity_client_id: string
  readonly authority_host: string
  /** The Key Vault resource its tokens are for, or "" (the cloud's). */
  readonly key_vault_resource: string
}

/** An identity's token requests at one moment. */
export interface IdentityTokenState {
  readonly labels: IdentityLabels
  /** Its last token request failed (a held token may still be answered). */
  readonly failing: boolean
  /** When the newest token it obtained expires (epoch ms), if it obtained one. */
  readonly expiresOnMs: number | undefined
}

/** A line to log: its level, message and fields. */
export interface IdentityLine {
  readonly level: "info" | "warn"
  readonly msg: string
  readonly fields: Record<string, unknown>
}

/** How often a line repeats that an identity's token requests still fail. */
export const stillFailingEveryMs = 10 * 60_000

export const heldTokenMessage =
  "token refresh failed: the token held is used until it expires or a refresh succeeds"
export const noTokenMessage =
  "no token for the identity: its deployments cannot reach the vault until a token request succeeds"
export const recoveredMessage = "token obtained again: the identity's deployments reach the vault"

/**
 * What to check when an identity's token requests fail, for its credential mode: the endpoint its
 * tokens come from (Entra ID at its authority host, or this host's managed identity endpoint) and
 * what that endpoint judges (the secret, the federated token and its federated identity
 * credential, the identity assigned to the host). `tokenFile`: the federated token file its
 * credential reads (workload identity, or managed identity's AKS token exchange); `endpoint`: where
 * a managed identity's tokens come from, as the credential found it (`App Service endpoint http://…`,
 * `IMDS http://169.254.169.254`, Service Fabric's, Arc's, Cloud Shell's).
 */
export const identityFix = (
  labels: IdentityLabels,
  tokenFile: string | undefined,
  endpoint: string | undefined = undefined,
): string => {
  const entra = `check that Entra ID (${labels.authority_host}) answers from this host`
  const federated = (identity: string) =>
    `the federated token file (AZURE_FEDERATED_TOKEN_FILE${tokenFile === undefined ? "" : ` ${shownPath(tokenFile)}`}: current, not a copy) and the federated identity credential on ${identity}`
  switch (labels.credential_mode) {
    case "client_secret":
      return `${entra}, and that AZURE_CLIENT_SECRET is current and a secret of AZURE_CLIENT_ID in AZURE_TENANT_ID`
    case "workload_identity":
      return `${entra}, and ${federated("the identity AZURE_CLIENT_ID names")}`
    case "managed_identity":
      return tokenFile !== undefined
        ? `${entra} (the managed identity's token comes from AKS workload identity's token exchange here), and ${federated("the user-assigned identity")}`
        : `check that this host's managed identity endpoint (${endpoint ?? "IMDS http://169.254.169.254, or the platform's IDENTITY_ENDPOINT"}) answers, and that ${
            labels.managed_identity_client_id === ""
              ? "the host has a system-assigned identity"
              : `the identity ${labels.managed_identity_client_id} is assigned to this host`
          }`
    default:
      return "check the default chain's source that should answer from this host (the reason gives each source's): a service principal's AZURE_* variables, the federated token file and its federated identity credential, this host's managed identity, or a developer tool's sign-in"
  }
}

/**
 * What a workload identity's federated token file says when its token requests fail: the token's
 * expiry (its JWT `exp`, read without its signature; nothing else of it), and, once it has expired,
 * that this is the cause: Entra ID refuses an expired one (AADSTS700024), which msal-node does not
 * pass on while it holds a token (its refreshes fail quietly). Read only when a line is said.
 */
const federatedTokenFields = (
  tokenFile: string,
  atMs: number,
): { readonly fields: Record<string, string>; readonly fix: string | undefined } => {
  let exp: number | undefined
  try {
    exp = federatedTokenTimes(tokenFile)?.expiresAtSeconds
  } catch {
    // The line is said without it.
  }
  if (exp === undefined) return { fields: {}, fix: undefined }
  const expiresAt = new Date(exp * 1000).toISOString()
  return {
    fields: { federated_token_expires_at: expiresAt },
    fix:
      exp * 1000 <= atMs
        ? `the federated token in ${shownPath(tokenFile)} expired at ${expiresAt}, and Entra ID refuses an expired one: whatever writes the file must renew it (on AKS the kubelet rewrites the projected service account token), so check that AZURE_FEDERATED_TOKEN_FILE is that file and not a copy, and this host's clock`
        : undefined,
  }
}

interface Tracked {
  labels: IdentityLabels
  failing: boolean
  /** Whether the last failure was answered with a held token. */
  held: boolean
  since: number
  failures: number
  lastLineMs: number
  /** A line said this failing run (none while the key was not named). */
  announced: boolean
  expiresOnMs: number | undefined
}

export const makeIdentityHealth = (logLine: (line: IdentityLine) => void, now: () => number = Date.now) => {
  const identities = new Map<string, Tracked>()
  /** The identities the last reload named (before the first: all). */
  let named: (key: string) => boolean = () => true
  const describe = (t: Tracked) => ({
    credential_mode: t.labels.credential_mode,
    ...(t.labels.managed_identity_client_id === ""
      ? {}
      : { managed_identity_client_id: t.labels.managed_identity_client_id }),
    authority_host: t.labels.authority_host,
    ...(t.labels.key_vault_resource === "" ? {} : { key_vault_resource: t.labels.key_vault_resource }),
  })
  // An identity library's message may echo a request's body (a client secret, a certificate, a client
  // assertion) or a token: shown without them (shownIdentityMessage), before the cut.
  // The federated token file's state the credential put after the library's text is kept whole,
  // after the cut, unless the line names the file's expiry itself (`withFileState` false).
  const reason = (error: unknown, withFileState: boolean) => {
    const own = shownIdentityMessage(error).slice(0, 1_000)
    const state = withFileState ? tokenFileStateOf(error) : undefined
    return state === undefined ? own : `${own} [${state}]`
  }
  /**
   * The hook of the credential of identity `key` (a new credential for the key starts afresh). A
   * key the last reload does not name (its credential made again by a deploy of the replaced
   * configuration, still running; or by one of a reload not yet applied here) is tracked without
   * lines or series until a reload names it: the credential is kept, and its hook with it.
   */
  const track = (
    key: string,
    labels: IdentityLabels,
    facts: { readonly tokenFile?: string | undefined; readonly endpoint?: string | undefined } = {},
  ) => {
    const t: Tracked = {
      labels,
      failing: false,
      held: false,
      since: 0,
      failures: 0,
      lastLineMs: 0,
      announced: false,
      expiresOnMs: undefined,
    }
    identities.set(key, t)
    return (ended: TokenRequestEnded): void => {
      // A reload let this identity go, or a newer credential of it took over.
      if (identities.get(key) !== t) return
      const at = now()
      // A token due for refresh, asked for once more and due still (its refresh got an HTTP error),
      // or already seen due: no news but its expiry.
      if (ended._tag === "Due") {
        t.expiresOnMs = ended.expiresOnMs
        return
      }
      if (ended._tag === "Obtained") {
        t.expiresOnMs = ended.expiresOnMs
        // Said when the run was (a run while the key was not named was not).
        if (t.failing && t.announced)
          logLine({
            level: "info",
            msg: recoveredMessage,
            fields: {
              ...describe(t),
              since: new Date(t.since).toISOString(),
              outage_seconds: Math.round((at - t.since) / 1000),
              failed_requests: t.failures,
            },
          })
        t.failing = false
        t.failures = 0
        t.announced = false
        return
      }
      const held = ended.heldUntilMs !== undefined
      const started = !t.failing
      const changed = started || held !== t.held
      if (started) {
        t.failing = true
        t.since = at
        t.failures = 0
      }
      t.failures++
      t.held = held
      if (ended.heldUntilMs !== undefined) t.expiresOnMs = ended.heldUntilMs
      if (!named(key)) return
      if (!changed && t.announced && at - t.lastLineMs < stillFailingEveryMs) return
      const federated =
        facts.tokenFile === undefined
          ? { fields: {}, fix: undefined }
          : federatedTokenFields(facts.tokenFile, at)
      t.lastLineMs = at
      t.announced = true
      const cause = federated.fix ?? identityFix(t.labels, facts.tokenFile, facts.endpoint)
      logLine({
        level: "warn",
        msg: held ? heldTokenMessage : noTokenMessage,
        fields: {
          ...describe(t),
          ...(ended.heldUntilMs === undefined
            ? {}
            : { held_until: new Date(ended.heldUntilMs).toISOString() }),
          ...(started ? {} : { since: new Date(t.since).toISOString(), failed_requests: t.failures }),
          ...federated.fields,
          // The file's expiry named in its own field and fix: the reason is the library's own text,
          // without the same words the credential put after it.
          reason: reason(ended.error, federated.fix === undefined),
          fix: held ? `${cause}; deploys fail once the held token expires` : cause,
        },
      })
    }
  }
  /** Forget the identities `keep` refuses (a reload no longer names them). */
  const retain = (keep: (key: string) => boolean) => {
    named = keep
    for (const key of [...identities.keys()]) if (!keep(key)) identities.delete(key)
  }
  const states = (): ReadonlyArray<IdentityTokenState> =>
    [...identities].flatMap(([key, t]) =>
      named(key) ? [{ labels: t.labels, failing: t.failing, expiresOnMs: t.expiresOnMs }] : [],
    )
  return { track, retain, states }
}

export type IdentityHealth = ReturnType<typeof makeIdentityHealth>
