/**
 * What the environment must hold for a credential mode, checked without making
 * a credential or loading @azure/identity: the variables the mode needs, and
 * the values it reads that cannot work (an AZURE_CLIENT_ID that is no client
 * id, an AZURE_TENANT_ID that is no tenant id, a proxy variable that is no
 * URL, a federated token file that cannot be read or holds no token). One rule for `makeCredential`, the CLI's input check and the agent's
 * `--check`, so a value `--check` passes is one the credential accepts.
 *
 * No problem ever repeats a value: a secret pasted into the wrong variable is
 * shown by its length only.
 */
import { closeSync, openSync, readSync, type Stats, statSync } from "node:fs"
import { fsCodeInWords, looksLikeKeyText, shownPath } from "@kvdeploy/core"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { type CredentialMode, credentialVariables } from "./settings.js"

/** One thing wrong with the environment of a credential mode. Holds no value. */
export interface EnvironmentProblem {
  /** `missing`: needed and not set (or blank); `malformed`: set to a value that cannot work. */
  readonly kind: "missing" | "malformed"
  /** The variables it is about: every missing one, or the one malformed. */
  readonly variables: ReadonlyArray<string>
  readonly reason: string
  readonly fix: string
  /**
   * Set on the expired federated token (`tokenExpiry`): a problem the file's writer may mend while
   * a long-running process waits (the kubelet renews a projected token), unlike the others.
   */
  readonly expiredToken?: true
}

const guid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** Whether `value` is written as a GUID (a tenant, client or object id), in either letter case. */
export const isGuid = (value: string): boolean => guid.test(value)

/**
 * A client id as messages show it: a GUID as it is; anything else (a key or secret pasted into
 * AZURE_CLIENT_ID) by its length only. Entra ID quotes the client id back in its refusals.
 */
export const shownClientId = (value: string): string =>
  guid.test(value) ? value : `(not a client id: ${value.length} characters, not shown)`

/** A tenant id as messages show it: a GUID or domain name as it is; anything else by its length only. */
export const shownTenantId = (value: string): string =>
  /^[A-Za-z0-9.-]{1,253}$/.test(value) && !looksLikeKeyText(value)
    ? value
    : `(not a tenant id: ${value.length} characters, not shown)`

export const tenantFix =
  "Check AZURE_TENANT_ID: the directory (tenant) id, a GUID, or its domain name such as contoso.onmicrosoft.com"

/** The proxy variables the Azure SDKs read, in the order they pick the first one set. */
const proxyVariables = ["HTTPS_PROXY", "ALL_PROXY", "HTTP_PROXY"].flatMap((n) => [n, n.toLowerCase()])

/**
 * The variables each mode's credential reads from the environment and uses as they are (beyond
 * the proxy): the ones it needs, and for `default` those its environment and workload identity
 * sources read.
 */
const readVariables: Readonly<Record<CredentialMode, ReadonlyArray<string>>> = {
  client_secret: ["AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"],
  workload_identity: ["AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_FEDERATED_TOKEN_FILE"],
  default: ["AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE"],
  managed_identity: [],
}

/**
 * What managed identity's token endpoint is, for the proxy check: the variables that name it (as
 * @azure/identity and MSAL read them), the AKS token exchange's file, tenant and client id (it goes
 * to Entra ID over HTTPS instead, and reads that file), and NO_PROXY.
 */
const managedIdentityEndpointVariables = [
  "IDENTITY_ENDPOINT",
  "MSI_ENDPOINT",
  "AZURE_POD_IDENTITY_AUTHORITY_HOST",
  "AZURE_FEDERATED_TOKEN_FILE",
  "AZURE_TENANT_ID",
  "AZURE_CLIENT_ID",
  "NO_PROXY",
  "no_proxy",
]

/** Every variable `credentialEnvironmentProblems` may read for `mode`. */
export const environmentVariablesOf = (mode: CredentialMode): ReadonlyArray<string> => [
  ...new Set([
    ...proxyVariables,
    ...(credentialVariables[mode]?.names ?? []),
    ...readVariables[mode],
    ...(mode === "managed_identity" ? managedIdentityEndpointVariables : []),
  ]),
]

/** How a variable a mode needs is missing: kvdeploy reads a value of spaces or line breaks alone as unset. */
export type MissingVariableState = "not set" | "set but empty" | "set to spaces or line breaks only"

/**
 * How a variable that counts as missing (credentialEnvironmentProblems' `missing`) is missing, in
 * words, from its value as set: not set, set to nothing (`AZURE_CLIENT_SECRET=` in an environment
 * file), or set to spaces or line breaks alone. One rule for the CLI's problems and the agent's
 * `--check`, so neither calls a variable `env` shows as set "not set".
 */
export const missingVariableState = (value: string | undefined): MissingVariableState =>
  value === undefined ? "not set" : value === "" ? "set but empty" : "set to spaces or line breaks only"

/**
 * What doctor notes when AZURE_AUTHORITY_HOST (`value`, as set) names another authority than the
 * target's cloud's (`authorityHost`): kvdeploy gives every credential the target's authority, so
 * the variable (which the AKS workload identity webhook sets, and which @azure/identity reads only
 * when it is given none) is not used. Undefined when it is unset, blank, or the same authority (a
 * trailing slash and letter case aside). A value that is no http(s) URL is not shown.
 */
export const authorityHostVariableNote = (
  authorityHost: string,
  value: string | undefined,
): string | undefined => {
  const given = value?.trim() ?? ""
  if (given === "") return undefined
  const origin = (url: string) => {
    const parsed = URL.parse(url)
    return parsed === null || !["http:", "https:"].includes(parsed.protocol) ? undefined : parsed.origin
  }
  const target = origin(authorityHost) ?? authorityHost.replace(/\/+$/, "").toLowerCase()
  const set = origin(given)
  if (set === target) return undefined
  return `AZURE_AUTHORITY_HOST (${set ?? `not a URL: ${given.length} characters, not shown`}) is not used: kvdeploy gives the credential the target's cloud's authority (${target})`
}

/**
 * Missing variables with how each is missing (missingVariableState), for one line: `A, B, not set`
 * when all are missing alike, else `A (not set), B (set to spaces or line breaks only)`.
 */
export const missingVariablesInWords = (
  variables: ReadonlyArray<string>,
  lookup: (name: string) => string | undefined,
): string => {
  const states = variables.map((name) => [name, missingVariableState(lookup(name))] as const)
  const first = states[0]?.[1]
  return states.every(([, state]) => state === first)
    ? `${variables.join(", ")}, ${first ?? "not set"}`
    : states.map(([name, state]) => `${name} (${state})`).join(", ")
}

/**
 * The variables @azure/identity's EnvironmentCredential reads, by its rule (set when not empty,
 * spaces alone included): those `set`, and those it still needs (`missing`) to build a service
 * principal from them: AZURE_TENANT_ID, AZURE_CLIENT_ID, and AZURE_CLIENT_SECRET or
 * AZURE_CLIENT_CERTIFICATE_PATH (or AZURE_USERNAME with AZURE_PASSWORD). Names only, never values.
 */
export const environmentCredentialVariables = (
  lookup: (name: string) => string | undefined,
): { readonly set: ReadonlyArray<string>; readonly missing: ReadonlyArray<string> } => {
  const isSet = (name: string) => (lookup(name) ?? "") !== ""
  const names = [
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_USERNAME",
    "AZURE_PASSWORD",
  ]
  const set = names.filter(isSet)
  const secret =
    isSet("AZURE_CLIENT_SECRET") ||
    isSet("AZURE_CLIENT_CERTIFICATE_PATH") ||
    (isSet("AZURE_USERNAME") && isSet("AZURE_PASSWORD"))
  const missing = [
    ...["AZURE_TENANT_ID", "AZURE_CLIENT_ID"].filter((name) => !isSet(name)),
    // A user name set: its password is what is missing (a user login, not a service principal's secret).
    ...(secret
      ? []
      : isSet("AZURE_USERNAME")
        ? ["AZURE_PASSWORD"]
        : isSet("AZURE_PASSWORD")
          ? ["AZURE_USERNAME"]
          : ["AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH"]),
  ]
  return { set, missing }
}

/** Whether NO_PROXY exempts `host` from the proxy, as the Azure SDKs match it (`.example.com`: the domain and below; else the host exactly). */
const exemptFromProxy = (host: string, noProxy: string | undefined): boolean =>
  (noProxy ?? "")
    .split(",")
    .map((p) => p.trim())
    .some((p) => (p.startsWith(".") ? host.endsWith(p) || host === p.slice(1) : p !== "" && host === p))

/**
 * Every problem of the environment for `mode`, in the order `makeCredential`
 * meets them: the proxy the SDKs would use, the variables the mode needs, values
 * with spaces or a line break around them, then the client id and the tenant id.
 * `lookup` answers a variable's value as it is set (undefined when not set); a
 * value of blanks counts as not set, except for a proxy (the SDKs take it).
 */
export const credentialEnvironmentProblems = (
  mode: CredentialMode,
  lookup: (name: string) => string | undefined,
  options: EnvironmentCheckOptions = {},
): ReadonlyArray<EnvironmentProblem> => {
  const value = (name: string): string | undefined => {
    const v = lookup(name)?.trim()
    return v === undefined || v === "" ? undefined : v
  }
  /** Set as @azure/identity tests a variable (`Boolean(value)`): not empty, spaces alone included. */
  const sdkSet = (name: string): string | undefined => {
    const v = lookup(name)
    return v === undefined || v === "" ? undefined : v
  }
  /** Set for the SDK, unset for kvdeploy: spaces or line breaks alone. */
  const blank = (name: string): boolean => {
    const v = lookup(name)
    return v !== undefined && v !== "" && v.trim() === ""
  }
  /** Set, not blank, with spaces or a line break around it: the SDKs use a value as it is. */
  const padded = (name: string): boolean => {
    const raw = lookup(name)
    return raw !== undefined && raw.trim() !== "" && raw !== raw.trim()
  }
  const problems: Array<EnvironmentProblem> = []
  // The SDKs take the first proxy variable that is set and not empty (spaces count), read with
  // `new URL` as it is. One that is no URL (an IP address and port without a scheme, a value of
  // spaces) fails inside @azure/identity and the clients with "Invalid URL", which reads as a
  // problem of the tenant id; a host name and port without a scheme reads as a URL whose scheme is
  // the host name, and fails only when a request is sent. Their proxy agents speak http and https.
  // Its value is not shown: a proxy URL may hold a user and password.
  const proxy = proxyVariables.find((name) => (lookup(name) ?? "") !== "")
  const proxyUrl = proxy === undefined ? undefined : URL.parse(lookup(proxy) ?? "")
  if (proxy !== undefined && (proxyUrl === null || !["http:", "https:"].includes(proxyUrl?.protocol ?? "")))
    problems.push({
      kind: "malformed",
      variables: [proxy],
      reason: `${proxy} is not a proxy URL (its value is not shown)`,
      fix: `Set ${proxy} to the proxy's URL with its scheme (http or https), such as http://proxy.example.com:8080, or unset it`,
    })
  // Managed identity's token endpoint speaks plain HTTP on this host (IMDS at 169.254.169.254, App
  // Service and Arc on a loopback port), and the SDKs send its requests to the proxy unless
  // NO_PROXY names it: in the clear, with the endpoint's identity header, to a proxy that cannot
  // reach a link-local or loopback address anyway.
  if (
    mode === "managed_identity" &&
    proxy !== undefined &&
    proxyUrl !== null &&
    tokenExchangeOf(sdkSet, options.managedIdentityClientId) === undefined
  ) {
    const endpoint =
      value("IDENTITY_ENDPOINT") ??
      value("MSI_ENDPOINT") ??
      value("AZURE_POD_IDENTITY_AUTHORITY_HOST") ??
      "http://169.254.169.254"
    const url = URL.parse(endpoint)
    if (
      url !== null &&
      url.protocol === "http:" &&
      !exemptFromProxy(url.hostname, lookup("NO_PROXY") || lookup("no_proxy"))
    )
      problems.push({
        kind: "malformed",
        variables: [proxy, "NO_PROXY"],
        reason: `${proxy} is set and NO_PROXY does not name ${url.hostname}: managed identity's token requests (plain HTTP to ${url.origin}, with the endpoint's identity header) would go to the proxy, which cannot reach that address`,
        fix: `Add ${url.hostname} to NO_PROXY (comma-separated, e.g. NO_PROXY=${url.hostname},.vault.azure.net if the vault is reached directly), or unset ${proxy} for kvdeploy`,
      })
  }
  const needed = credentialVariables[mode]
  const missing = needed?.names.filter((name) => value(name) === undefined) ?? []
  if (needed !== undefined && missing.length > 0)
    problems.push({
      kind: "missing",
      variables: missing,
      reason: `missing environment variable${missing.length > 1 ? "s" : ""} ${missing.join(", ")}`,
      fix:
        missing.length === 1 ? needed.fix.replace("the missing variables", missing[0] ?? "it") : needed.fix,
    })
  // A value pasted with its line break (a CI secret, a file read with its newline): @azure/identity
  // refuses such a tenant id, Entra ID such a client id or secret, and no such token file exists.
  const paddedProblem = (name: string): EnvironmentProblem => ({
    kind: "malformed",
    variables: [name],
    reason: `${name} has spaces or a line break around its value (${lookup(name)?.length ?? 0} characters; the value is not shown), and the Azure SDKs use it as it is`,
    fix: `Set ${name} without the spaces or line break around its value`,
  })
  const reads = readVariables[mode]
  for (const name of reads)
    if (name !== "AZURE_CLIENT_ID" && name !== "AZURE_TENANT_ID" && padded(name))
      problems.push(paddedProblem(name))
  // Every application and managed identity has a client id, a GUID; a tenant id is a GUID or a
  // domain name (@azure/identity's own rule, which would refuse it later, or skip a source). A value
  // that is neither is named so; one that is, with spaces or a line break around it, for those.
  const client = reads.includes("AZURE_CLIENT_ID") ? value("AZURE_CLIENT_ID") : undefined
  if (client !== undefined && !guid.test(client))
    problems.push({
      kind: "malformed",
      variables: ["AZURE_CLIENT_ID"],
      reason: `AZURE_CLIENT_ID is not a client id (a GUID); its value (${client.length} characters) is not shown`,
      fix: "Set AZURE_CLIENT_ID to the application's or managed identity's client id, such as 00000000-0000-0000-0000-000000000000",
    })
  else if (client !== undefined && padded("AZURE_CLIENT_ID")) problems.push(paddedProblem("AZURE_CLIENT_ID"))
  const tenant = reads.includes("AZURE_TENANT_ID") ? value("AZURE_TENANT_ID") : undefined
  if (tenant !== undefined && shownTenantId(tenant) !== tenant)
    problems.push({
      kind: "malformed",
      variables: ["AZURE_TENANT_ID"],
      reason: `AZURE_TENANT_ID is not a tenant id (a GUID or a domain name); its value (${tenant.length} characters) is not shown`,
      fix: tenantFix,
    })
  else if (tenant !== undefined && padded("AZURE_TENANT_ID")) problems.push(paddedProblem("AZURE_TENANT_ID"))
  // The federated token file workload identity reads, and managed identity's AKS token exchange
  // (makeCredential's rule: the file, AZURE_TENANT_ID and a client id, the configured one else
  // AZURE_CLIENT_ID): one that cannot be read, or is a directory, empty or too large to be a token
  // (federatedTokenFileProblem), or whose token has expired (with tokenExpiry), fails every token
  // request, and the variable is the only place that names it. Its path is not a secret.
  const tokenFile = value("AZURE_FEDERATED_TOKEN_FILE")
  const exchange =
    mode === "managed_identity" ? tokenExchangeOf(sdkSet, options.managedIdentityClientId) : undefined
  // The SDK takes a value of spaces as set: with it, managed identity makes the exchange with that
  // value (a tenant of spaces, a client id of spaces, a file named by spaces), which fails at the
  // token request with words that name none of them.
  if (exchange !== undefined)
    for (const name of exchangeVariables)
      if ((name !== "AZURE_CLIENT_ID" || options.managedIdentityClientId === undefined) && blank(name))
        problems.push({
          kind: "malformed",
          variables: [name],
          reason: `${name} is set to spaces or a line break only, which @azure/identity takes as set: with ${exchangeVariables
            .filter((n) => n !== name)
            .map((n) =>
              n === "AZURE_CLIENT_ID" && options.managedIdentityClientId !== undefined
                ? "managed_identity_client_id"
                : n,
            )
            .join(
              " and ",
            )} it makes managed identity exchange AKS workload identity's federated token, with that value`,
          fix: `Unset ${name}, or set it to its value (the AKS workload identity webhook sets it in a pod labelled azure.workload.identity/use: "true")`,
        })
  const readsTokenFile = mode === "workload_identity" || exchange !== undefined
  if (
    options.checkFiles === true &&
    readsTokenFile &&
    tokenFile !== undefined &&
    !padded("AZURE_FEDERATED_TOKEN_FILE")
  ) {
    const read = readFederatedTokenTimes(tokenFile)
    const problem = read.problem
    // A token that expired more than 5 minutes ago by this host's clock (5 minutes left for the
    // clocks of this host and Entra ID to differ): a projection that stopped renewing it, or a copy.
    const exp = read.problem === undefined ? read.times?.expiresAtSeconds : undefined
    const now = Date.now()
    if (options.tokenExpiry === true && exp !== undefined && exp * 1000 + 5 * 60_000 <= now)
      problems.push({
        kind: "malformed",
        variables: ["AZURE_FEDERATED_TOKEN_FILE"],
        ...federatedTokenExpired(tokenFile, exp, now),
        expiredToken: true,
      })
    if (problem !== undefined)
      problems.push({
        kind: "malformed",
        variables: ["AZURE_FEDERATED_TOKEN_FILE"],
        ...federatedTokenFileState(tokenFile, problem),
      })
  }
  // The client certificate file the default chain's EnvironmentCredential reads whole with each token
  // attempt: a device (/dev/zero), a directory or a file far larger than a certificate is named here
  // (clientCertificateFileProblem), not met as "Invalid string length" after ~1 GB was read.
  const certificatePath = mode === "default" ? environmentCertificatePath(lookup) : undefined
  if (options.checkFiles === true && certificatePath !== undefined) {
    const problem = clientCertificateFileProblem(certificatePath)
    if (problem !== undefined)
      problems.push({
        kind: "malformed",
        variables: ["AZURE_CLIENT_CERTIFICATE_PATH"],
        ...clientCertificateFileState(certificatePath, problem),
      })
  }
  return problems
}

export interface EnvironmentCheckOptions {
  /**
   * Also look at the files the variables name (the federated token file): for an input check run
   * before any work (the CLI's, the agent's `--check`). A credential made without it reports such
   * a token file as unavailable, when it is about to read it.
   */
  readonly checkFiles?: boolean
  /**
   * With checkFiles, also refuse a federated token file whose token expired more than 5 minutes ago
   * (the problem carries `expiredToken`): for a check made before work starts (the CLI's commands,
   * the agent's `--check`), which would meet Entra ID's refusal. A running agent leaves it out of its
   * start-up warnings: the kubelet may renew the file, and the identity's own lines name an expired one.
   */
  readonly tokenExpiry?: boolean
  /**
   * For `managed_identity`, the configured user-assigned client id (managed_identity_client_id):
   * with it, AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE, the credential makes the AKS token
   * exchange without AZURE_CLIENT_ID, and checkFiles looks at the token file as for workload_identity.
   */
  readonly managedIdentityClientId?: string | undefined
}

/** The AKS workload identity token exchange that managed identity makes when it can. */
export interface TokenExchange {
  readonly tenantId: string
  readonly clientId: string
  readonly tokenFile: string
}

/**
 * A variable as @azure/identity's exchange test reads it (`Boolean(value)`): undefined when unset
 * or empty, else as it is set, spaces alone included.
 */
const setValue = (name: string) =>
  Config.option(Config.String(name)).pipe(
    Effect.map((value) => (Option.isSome(value) && value.value !== "" ? value.value : undefined)),
    Effect.orElseSucceed(() => undefined),
  )

/**
 * What @azure/identity's ManagedIdentityCredential checks before any MSAL source (its
 * `tokenExchangeMsi`): in an AKS workload identity pod, a client id (the configured one, else
 * AZURE_CLIENT_ID), AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE make it exchange the federated
 * token with Entra ID instead of asking a managed identity endpoint. The exchange
 * `managed_identity`'s credential makes here (makeCredential), or undefined when it asks a managed
 * identity endpoint; read without loading @azure/identity, so the CLI can say which a refusal
 * came from.
 */
export const managedIdentityTokenExchange = Effect.fn("Credentials.managedIdentityTokenExchange")(function* (
  configuredClientId: string | undefined,
) {
  const values = new Map<string, string | undefined>()
  for (const name of exchangeVariables) values.set(name, yield* setValue(name))
  return tokenExchangeOf((name) => values.get(name), configuredClientId)
})

/** The variables managed identity's token exchange reads. */
const exchangeVariables = ["AZURE_FEDERATED_TOKEN_FILE", "AZURE_TENANT_ID", "AZURE_CLIENT_ID"] as const

/**
 * managedIdentityTokenExchange's rule on values `get` reads (undefined: unset or empty, as the SDK
 * tests them): the token file, AZURE_TENANT_ID and a client id (the configured one, else
 * AZURE_CLIENT_ID), all three. One rule for the credential and for the environment's checks (the
 * token file's state, the proxy, a value of spaces the exchange would use).
 */
const tokenExchangeOf = (
  get: (name: (typeof exchangeVariables)[number]) => string | undefined,
  configuredClientId: string | undefined,
): TokenExchange | undefined => {
  const tokenFile = get("AZURE_FEDERATED_TOKEN_FILE")
  const tenantId = get("AZURE_TENANT_ID")
  const clientId = configuredClientId ?? get("AZURE_CLIENT_ID")
  return tokenFile !== undefined && tenantId !== undefined && clientId !== undefined
    ? { tenantId, clientId, tokenFile }
    : undefined
}

/**
 * The most a federated token file may hold. A projected service account token is a JWT of a few
 * KB (about 1 KB on AKS; a long issuer or several audiences add little). 64 KiB leaves room for any
 * real token while a file larger than that is something else (a log, a bundle, a file mounted in
 * its place): it is named as such without being read, and @azure/identity, which reads the whole
 * file and sends it as its client assertion, is never handed one (a 50 MB file failed as a network
 * error).
 */
export const maxFederatedTokenFileBytes = 64 * 1024

/**
 * What is wrong with a federated token file, from one stat and a read of at most
 * maxFederatedTokenFileBytes + 1 bytes. Holds no content of the file (it is a credential).
 */
export type FederatedTokenFileProblem =
  /** It cannot be read by this process: the error's code (ENOENT, EACCES, …). */
  | { readonly kind: "unreadable"; readonly code: string }
  /** It is no regular file: what it is ("a directory", "a FIFO", …). */
  | { readonly kind: "notAFile"; readonly what: string }
  /** It holds nothing, or only spaces and line breaks (`bytes` of them). */
  | { readonly kind: "empty"; readonly bytes: number }
  /** It holds more than maxFederatedTokenFileBytes: `bytes` (at least, when it grew while read). */
  | { readonly kind: "tooLarge"; readonly bytes: number }

const errorCode = (e: unknown): string => (e as NodeJS.ErrnoException).code ?? "unreadable"

const kindOf = (stats: Stats): string =>
  stats.isDirectory()
    ? "a directory"
    : stats.isFIFO()
      ? "a FIFO"
      : stats.isSocket()
        ? "a socket"
        : stats.isCharacterDevice()
          ? "a character device"
          : stats.isBlockDevice()
            ? "a block device"
            : "not a regular file"

/**
 * Reads the federated token file at `path` and hands its bytes to `use`, or says what is wrong
 * with it: a regular file (the projected volume's file is a symbolic link to one, followed), not
 * empty or blank (as @azure/identity trims it), of at most maxFederatedTokenFileBytes. A directory,
 * FIFO or device is never opened (a FIFO would block), a file too large by its size is never read,
 * and the bytes read are zeroed once `use` has returned.
 */
const readFederatedTokenFile = <A>(
  path: string,
  use: (bytes: Buffer) => A,
): { readonly problem: FederatedTokenFileProblem } | { readonly problem: undefined; readonly value: A } => {
  let stats: Stats
  try {
    stats = statSync(path)
  } catch (e) {
    return { problem: { kind: "unreadable", code: errorCode(e) } }
  }
  if (!stats.isFile()) return { problem: { kind: "notAFile", what: kindOf(stats) } }
  if (stats.size > maxFederatedTokenFileBytes) return { problem: { kind: "tooLarge", bytes: stats.size } }
  let fd: number
  try {
    fd = openSync(path, "r")
  } catch (e) {
    return { problem: { kind: "unreadable", code: errorCode(e) } }
  }
  // One more byte than a token may hold: a file that grew since the stat is still told apart.
  const buffer = Buffer.alloc(maxFederatedTokenFileBytes + 1)
  try {
    let length = 0
    while (length < buffer.length) {
      const read = readSync(fd, buffer, length, buffer.length - length, null)
      if (read === 0) break
      length += read
    }
    if (length > maxFederatedTokenFileBytes)
      return { problem: { kind: "tooLarge", bytes: Math.max(length, stats.size) } }
    if (buffer.toString("utf8", 0, length).trim() === "") return { problem: { kind: "empty", bytes: length } }
    return { problem: undefined, value: use(buffer.subarray(0, length)) }
  } catch (e) {
    return { problem: { kind: "unreadable", code: errorCode(e) } }
  } finally {
    buffer.fill(0)
    closeSync(fd)
  }
}

/**
 * What is wrong with the federated token file at `path`, or undefined when it holds something that
 * may be a token (readFederatedTokenFile).
 */
export const federatedTokenFileProblem = (path: string): FederatedTokenFileProblem | undefined =>
  readFederatedTokenFile(path, () => undefined).problem

/**
 * When a federated token is valid, from its JWT claims (epoch seconds). A claim that is absent is
 * undefined; one that is present but no number a date can hold (a string, a value past year
 * 275760) is undefined too, and named in `unreadable`.
 */
export interface FederatedTokenTimes {
  readonly expiresAtSeconds: number | undefined
  readonly notBeforeSeconds: number | undefined
  readonly unreadable: ReadonlyArray<"exp" | "nbf">
}

/**
 * The federated token file at `path`, read for its token's validity: what is wrong with the file
 * (federatedTokenFileProblem's rules), or its token's times (its JWT payload's `exp` and `nbf`, read
 * without checking its signature: Entra ID does that), undefined when it holds no JWT (three
 * dot-separated parts, a JSON object in the second). Only the payload is decoded; nothing of the
 * file is kept or shown.
 */
export const readFederatedTokenTimes = (
  path: string,
):
  | { readonly problem: FederatedTokenFileProblem }
  | { readonly problem: undefined; readonly times: FederatedTokenTimes | undefined } => {
  const read = readFederatedTokenFile(path, (bytes): FederatedTokenTimes | undefined => {
    const first = bytes.indexOf(0x2e)
    const second = first === -1 ? -1 : bytes.indexOf(0x2e, first + 1)
    if (second === -1 || bytes.indexOf(0x2e, second + 1) !== -1) return undefined
    const payload = Buffer.from(bytes.subarray(first + 1, second).toString("latin1"), "base64url")
    try {
      const claims: unknown = JSON.parse(payload.toString("utf8"))
      if (typeof claims !== "object" || claims === null || Array.isArray(claims)) return undefined
      const c = claims as Record<string, unknown>
      const unreadable: Array<"exp" | "nbf"> = []
      const time = (name: "exp" | "nbf") => {
        const v = c[name]
        if (v === undefined) return undefined
        if (typeof v === "number" && Number.isFinite(new Date(v * 1000).getTime())) return v
        unreadable.push(name)
        return undefined
      }
      return { expiresAtSeconds: time("exp"), notBeforeSeconds: time("nbf"), unreadable }
    } catch {
      return undefined
    } finally {
      payload.fill(0)
    }
  })
  return read.problem === undefined ? { problem: undefined, times: read.value } : { problem: read.problem }
}

/**
 * The federated token's times (readFederatedTokenTimes), or undefined when the file cannot be read
 * or holds no JWT.
 */
export const federatedTokenTimes = (path: string): FederatedTokenTimes | undefined => {
  const read = readFederatedTokenTimes(path)
  return read.problem === undefined ? read.times : undefined
}

/** A span of time in words, to the minute (`3 h 20 min`, `under a minute`). */
export const spanInWords = (ms: number): string => {
  const minutes = Math.floor(Math.abs(ms) / 60_000)
  if (minutes === 0) return "under a minute"
  const hours = Math.floor(minutes / 60)
  // Past two days, in days and hours: "26763 h 32 min" reads as nothing.
  if (hours >= 48) {
    const days = Math.floor(hours / 24)
    return `${days} d${hours % 24 === 0 ? "" : ` ${hours % 24} h`}`
  }
  return hours === 0 ? `${minutes} min` : `${hours} h${minutes % 60 === 0 ? "" : ` ${minutes % 60} min`}`
}

/** Why and what to do when the federated token in `tokenFile` expired at `expSeconds`, by this host's clock at `nowMs`. */
export const federatedTokenExpired = (
  tokenFile: string,
  expSeconds: number,
  nowMs: number,
): { readonly reason: string; readonly fix: string } => ({
  reason: `the token in ${shownPath(tokenFile)} expired at ${new Date(expSeconds * 1000).toISOString()} (${spanInWords(nowMs - expSeconds * 1000)} ago, by this host's clock): Entra ID refuses an expired one (AADSTS700024)`,
  fix: `Whatever writes the file must renew the token before it expires: on AKS the kubelet rewrites the projected service account token (about every hour), so check that AZURE_FEDERATED_TOKEN_FILE is that file (${projectedTokenPath}) and not a copy, that the pod still has its projected token volume (labelled azure.workload.identity/use: "true"), and that this host's clock is right; restarting the pod projects a fresh token`,
})

/** A size in bytes as people read it (`50 MiB`, `70 KiB`, `12 bytes`). */
const sizeInWords = (bytes: number): string =>
  bytes >= 1024 * 1024
    ? `${Number((bytes / (1024 * 1024)).toFixed(1))} MiB`
    : bytes >= 1024
      ? `${Number((bytes / 1024).toFixed(1))} KiB`
      : `${bytes} byte${bytes === 1 ? "" : "s"}`

/** Where the AKS workload identity webhook mounts the token, for the fixes. */
export const projectedTokenPath = "/var/run/secrets/azure/tokens/azure-identity-token"

/**
 * The reason and fix for a federated token file that can be read and holds no token (every
 * problem but `unreadable`, whose wording each caller keeps). Names the file, never its content.
 */
export const federatedTokenFileDefect = (
  path: string,
  problem: Exclude<FederatedTokenFileProblem, { readonly kind: "unreadable" }>,
): { readonly reason: string; readonly fix: string } => {
  const file = `the federated token file ${shownPath(path)} (AZURE_FEDERATED_TOKEN_FILE)`
  switch (problem.kind) {
    case "notAFile":
      return {
        reason:
          problem.what === "a directory"
            ? `${file} is a directory, not a file`
            : `${file} is not a regular file (it is ${problem.what})`,
        fix: `Set AZURE_FEDERATED_TOKEN_FILE to the token's file in the projected service account token volume, not ${problem.what === "a directory" ? "the volume's directory" : "another kind of file"} (the AKS workload identity webhook sets ${projectedTokenPath})`,
      }
    case "empty":
      return {
        reason: `${file} is empty${problem.bytes > 0 ? ` (only spaces or line breaks, ${sizeInWords(problem.bytes)})` : ""}`,
        fix: `The kubelet writes the service account token there: check that the projected service account token volume is mounted at that path (on AKS the webhook mounts it at ${projectedTokenPath}) and that the pod's service account is annotated for workload identity (azure.workload.identity/client-id) and the pod labelled azure.workload.identity/use: "true"`,
      }
    case "tooLarge":
      return {
        reason: `${file} is too large to be a service account token (${sizeInWords(problem.bytes)}; a token is a JWT of a few KB, and kvdeploy reads at most ${sizeInWords(maxFederatedTokenFileBytes)})`,
        fix: `Set AZURE_FEDERATED_TOKEN_FILE to the token's file in the projected service account token volume (the AKS workload identity webhook sets ${projectedTokenPath}); this file is something else`,
      }
  }
}

/**
 * The reason and fix for any problem of a federated token file (federatedTokenFileDefect's, and the
 * file that cannot be read, with its error code). Names the file, never its content.
 */
export const federatedTokenFileState = (
  path: string,
  problem: FederatedTokenFileProblem,
): { readonly reason: string; readonly fix: string } =>
  problem.kind === "unreadable"
    ? {
        reason: `the federated token file ${shownPath(path)} (AZURE_FEDERATED_TOKEN_FILE) cannot be read: ${fsCodeInWords(problem.code)}`,
        fix: "Check that the projected service account token is mounted there and readable by this user (on AKS: the pod's label azure.workload.identity/use: \"true\" and a service account annotated with the identity's client id); run the check where the agent runs (kubectl exec into its pod)",
      }
    : federatedTokenFileDefect(path, problem)

/**
 * Every problem of the environment for `mode` (credentialEnvironmentProblems' rule, its variables
 * read through the ConfigProvider), so a caller can list them with the others of its input before
 * doing any work.
 */
// Here, not beside makeCredential: the CLI checks the environment of an invalid target too, without
// loading @azure/identity (its `./environment` export).
export const environmentProblems = Effect.fn("Credentials.environmentProblems")(function* (
  mode: CredentialMode,
  options: EnvironmentCheckOptions = {},
) {
  // As they are set: blanks and padding are the rule's to judge.
  const values = new Map<string, string>()
  for (const name of environmentVariablesOf(mode)) {
    const value = yield* Config.option(Config.String(name)).pipe(
      Effect.orElseSucceed(() => Option.none<string>()),
    )
    if (Option.isSome(value)) values.set(name, value.value)
  }
  return credentialEnvironmentProblems(mode, (name) => values.get(name), options)
})

/**
 * The most a client certificate file (AZURE_CLIENT_CERTIFICATE_PATH) may hold: a PEM certificate,
 * its chain and its key, or a PFX, are a few KB; 1 MiB leaves room for a long chain. @azure/identity
 * reads the whole file with each token attempt: /dev/zero was read to V8's string limit (~1 GB, then
 * "Invalid string length", the file not named).
 */
export const maxClientCertificateFileBytes = 1024 * 1024

/** What is wrong with the client certificate file: from one stat, never a read (@azure/identity reads it). */
export type ClientCertificateFileProblem = Exclude<FederatedTokenFileProblem, { readonly kind: "empty" }>

/**
 * What is wrong with the client certificate file at `path` (followed through links, as the SDK
 * opens it), or undefined when it is a regular file of at most maxClientCertificateFileBytes.
 */
export const clientCertificateFileProblem = (path: string): ClientCertificateFileProblem | undefined => {
  let stats: Stats
  try {
    stats = statSync(path)
  } catch (e) {
    return { kind: "unreadable", code: errorCode(e) }
  }
  if (!stats.isFile()) return { kind: "notAFile", what: kindOf(stats) }
  if (stats.size > maxClientCertificateFileBytes) return { kind: "tooLarge", bytes: stats.size }
  return undefined
}

/** The reason and fix for a client certificate file's problem. Names the file, never its content. */
export const clientCertificateFileState = (
  path: string,
  problem: ClientCertificateFileProblem,
): { readonly reason: string; readonly fix: string } => {
  const file = `the client certificate file ${shownPath(path)} (AZURE_CLIENT_CERTIFICATE_PATH)`
  const fix =
    "Set AZURE_CLIENT_CERTIFICATE_PATH to the PEM or PFX file of the certificate uploaded to AZURE_CLIENT_ID's app registration (its certificate and private key, a few KB), or unset it"
  switch (problem.kind) {
    case "unreadable":
      return {
        reason: `${file} cannot be read: ${fsCodeInWords(problem.code)}`,
        fix: `Check the path and that the file is readable by the user kvdeploy runs as; or ${fix.charAt(0).toLowerCase()}${fix.slice(1)}`,
      }
    case "notAFile":
      return {
        reason:
          problem.what === "a directory"
            ? `${file} is a directory, not a file`
            : `${file} is not a regular file (it is ${problem.what})`,
        fix,
      }
    case "tooLarge":
      return {
        reason: `${file} is too large to be a certificate and its key (${sizeInWords(problem.bytes)}; kvdeploy reads at most ${sizeInWords(maxClientCertificateFileBytes)})`,
        fix,
      }
  }
}

/**
 * The client certificate file @azure/identity's EnvironmentCredential reads (its rule, each variable
 * set when not empty): AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_CERTIFICATE_PATH set, and
 * no AZURE_CLIENT_SECRET (which it takes first), with EnvironmentCredential in the chain
 * AZURE_TOKEN_CREDENTIALS selects (unset, `prod` or its own name: defaultChain.ts's chainSelection,
 * not imported here, which would load the identity library with the environment's check). Undefined
 * when it reads none.
 */
export const environmentCertificatePath = (
  lookup: (name: string) => string | undefined,
): string | undefined => {
  const set = (name: string) => (lookup(name) ?? "") !== ""
  const selection = (lookup("AZURE_TOKEN_CREDENTIALS") ?? "").trim().toLowerCase()
  const environmentSelected =
    selection === "" || selection === "prod" || selection === "environmentcredential"
  return environmentSelected &&
    set("AZURE_TENANT_ID") &&
    set("AZURE_CLIENT_ID") &&
    !set("AZURE_CLIENT_SECRET")
    ? lookup("AZURE_CLIENT_CERTIFICATE_PATH") || undefined
    : undefined
}
