import { existsSync } from "node:fs"
import { access, constants } from "node:fs/promises"
import { rootCertificates } from "node:tls"
import type { TokenCredential } from "@azure/core-auth"
import {
  ClientSecretCredential,
  DefaultAzureCredential,
  ManagedIdentityCredential,
  WorkloadIdentityCredential,
} from "@azure/identity"
import { looksLikeKeyText, shownPath } from "@kvdeploy/core"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { CredentialUnavailable, CredentialVariableMissing } from "./CredentialUnavailable.js"
import { type CredentialMode, type CredentialSettings, credentialVariables } from "./settings.js"

/** Which credential was built and for which identity. Printable: holds no secret. */
export interface CredentialIdentity {
  readonly mode: CredentialMode
  /** The @azure/identity class in use. */
  readonly source: string
  readonly tenantId?: string
  readonly clientId?: string
  /** Where the token comes from: authority host, managed identity endpoint or token file. */
  readonly endpoint?: string
  readonly tokenFile?: string
}

export interface ResolvedCredential {
  readonly credential: TokenCredential
  readonly identity: CredentialIdentity
}

const optionalEnv = (name: string) =>
  Config.option(Config.String(name)).pipe(
    Effect.map(Option.filter((v) => v.trim() !== "")),
    Effect.orElseSucceed(() => Option.none<string>()),
  )

/**
 * The variables `mode` needs that are not set (or blank), as the error `makeCredential` would
 * fail with, or `undefined` when none is missing. Makes no credential and reads nothing else, so
 * a caller can list this problem together with the others of its input before doing any work.
 */
export const missingCredentialVariables = Effect.fn("Credentials.missingCredentialVariables")(function* (
  mode: CredentialMode,
) {
  const needed = credentialVariables[mode]
  if (needed === undefined) return undefined
  const missing: Array<string> = []
  for (const name of needed.names) if (Option.isNone(yield* optionalEnv(name))) missing.push(name)
  return missing.length > 0
    ? new CredentialVariableMissing({ mode, variables: missing, fix: needed.fix })
    : undefined
})

/** The values of every variable `mode` needs, or the error naming each missing one. */
const requireVariables = Effect.fn("Credentials.requireVariables")(function* (mode: CredentialMode) {
  const missing = yield* missingCredentialVariables(mode)
  if (missing !== undefined) return yield* missing
  const values: Record<string, string> = {}
  for (const name of credentialVariables[mode]?.names ?? []) {
    const value = yield* optionalEnv(name)
    if (Option.isSome(value)) values[name] = value.value
  }
  return values
})

/** Where the Azure Arc agent lives on Windows (MSAL's check); on Linux /opt/azcmagent/bin/himds. */
const arcWindowsAgent = `${process.env.ProgramFiles ?? "C:\\Program Files"}\\AzureConnectedMachineAgent\\himds.exe`

/**
 * The managed identity source @azure/identity will use: the workload identity token exchange when
 * its three variables are set, else MSAL's, in its order, each needing all of its variables:
 * Service Fabric, App Service, Machine Learning, Cloud Shell, Azure Arc (or its agent's file), else IMDS.
 */
const managedIdentityEndpoint = Effect.gen(function* () {
  const set = (o: Option.Option<string>) => Option.isSome(o)
  const identityEndpoint = yield* optionalEnv("IDENTITY_ENDPOINT")
  const identityHeader = yield* optionalEnv("IDENTITY_HEADER")
  const thumbprint = yield* optionalEnv("IDENTITY_SERVER_THUMBPRINT")
  const msiEndpoint = yield* optionalEnv("MSI_ENDPOINT")
  const msiSecret = yield* optionalEnv("MSI_SECRET")
  const imdsEndpoint = yield* optionalEnv("IMDS_ENDPOINT")
  const endpoint = Option.getOrElse(identityEndpoint, () => "")
  // In an AKS workload identity pod @azure/identity exchanges the federated token itself (not MSAL).
  const federated = yield* optionalEnv("AZURE_FEDERATED_TOKEN_FILE")
  const tenant = yield* optionalEnv("AZURE_TENANT_ID")
  const client = yield* optionalEnv("AZURE_CLIENT_ID")
  if (set(federated) && set(tenant) && set(client))
    return `Entra ID token exchange with the federated token ${Option.getOrElse(federated, () => "")} (workload identity)`
  if (set(identityEndpoint) && set(identityHeader) && set(thumbprint))
    return `Service Fabric endpoint ${endpoint}`
  if (set(identityEndpoint) && set(identityHeader)) return `App Service endpoint ${endpoint}`
  if (Option.isSome(msiEndpoint))
    return `${set(msiSecret) ? "Azure Machine Learning" : "Cloud Shell"} endpoint ${msiEndpoint.value}`
  if (set(identityEndpoint) && set(imdsEndpoint)) return `Azure Arc endpoint ${endpoint}`
  // MSAL also takes an Azure Arc machine by its agent's file, without the variables.
  if (existsSync(process.platform === "win32" ? arcWindowsAgent : "/opt/azcmagent/bin/himds"))
    return "Azure Arc endpoint (the machine's Arc agent)"
  const imds = yield* optionalEnv("AZURE_POD_IDENTITY_AUTHORITY_HOST")
  return `IMDS ${Option.getOrElse(imds, () => "http://169.254.169.254")}`
})

/**
 * Construct an @azure/identity credential. Its constructors check their arguments and throw (a
 * tenant id that is no GUID or domain name, an unknown AZURE_TOKEN_CREDENTIALS value): such a
 * throw is the environment's problem, named with its fix, never a crash. The SDK's messages name
 * the value it refused (a tenant id, a credential name), never a secret.
 */
const construct = <T>(mode: CredentialMode, fix: string, build: () => T) =>
  Effect.try({
    try: build,
    catch: (error) =>
      new CredentialUnavailable({
        mode,
        reason: `@azure/identity refused the settings: ${error instanceof Error ? error.message.split("\n")[0] : String(error)}`,
        fix,
        missing: [],
      }),
  })

const tenantFix =
  "Check AZURE_TENANT_ID: the directory (tenant) id, a GUID, or its domain name such as contoso.onmicrosoft.com"

const guid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

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

/**
 * AZURE_CLIENT_ID, when set, must be a client id (a GUID): every application and managed identity
 * has one; AZURE_TENANT_ID a GUID or domain name. Anything else is refused before a credential is
 * built, without repeating the value: Entra ID would quote it back in its refusal, and kvdeploy
 * would print that.
 */
/**
 * The proxy the Azure SDKs take from the environment, as they pick it: the first set of HTTPS_PROXY,
 * ALL_PROXY and HTTP_PROXY (each in upper case, else lower case), read with `new URL` as it is.
 * One that is no URL (also `host:port` without its scheme) fails inside @azure/identity and the
 * clients with "Invalid URL", which read as a problem of the tenant id: named here, its value not
 * shown (a proxy URL may hold a user and password).
 */
const checkProxyVariables = Effect.fn("Credentials.checkProxyVariables")(function* (mode: CredentialMode) {
  for (const name of ["HTTPS_PROXY", "ALL_PROXY", "HTTP_PROXY"]) {
    for (const variable of [name, name.toLowerCase()]) {
      const value = yield* optionalEnv(variable)
      if (Option.isNone(value)) continue
      try {
        new URL(value.value)
        return
      } catch {
        return yield* new CredentialUnavailable({
          mode,
          reason: `${variable} is not a proxy URL (its value is not shown)`,
          fix: `Set ${variable} to the proxy's URL with its scheme, such as http://proxy.example.com:8080, or unset it`,
          missing: [],
        })
      }
    }
  }
})

const checkIdentityVariables = Effect.fn("Credentials.checkIdentityVariables")(function* (
  mode: CredentialMode,
) {
  const client = yield* optionalEnv("AZURE_CLIENT_ID")
  if (Option.isSome(client) && !guid.test(client.value.trim()))
    return yield* new CredentialUnavailable({
      mode,
      reason: `AZURE_CLIENT_ID is not a client id (a GUID); its value (${client.value.length} characters) is not shown`,
      fix: "Set AZURE_CLIENT_ID to the application's or managed identity's client id, such as 00000000-0000-0000-0000-000000000000",
      missing: [],
    })
  // @azure/identity's own rule for a tenant id; it would refuse the value (or skip a source) later,
  // and the identity doctor reports would keep it.
  const tenant = yield* optionalEnv("AZURE_TENANT_ID")
  if (Option.isSome(tenant) && shownTenantId(tenant.value.trim()) !== tenant.value.trim())
    return yield* new CredentialUnavailable({
      mode,
      reason: `AZURE_TENANT_ID is not a tenant id (a GUID or a domain name); its value (${tenant.value.length} characters) is not shown`,
      fix: tenantFix,
      missing: [],
    })
})

/**
 * Build the TokenCredential for a credential mode. Environment variables are
 * read through Effect's ConfigProvider (the process environment by default),
 * so callers and tests choose where they come from.
 */
export const makeCredential = Effect.fn("Credentials.makeCredential")(function* (
  settings: CredentialSettings,
) {
  const tls =
    settings.trustedCaPem === undefined
      ? {}
      : {
          tlsOptions: {
            ca: [
              ...rootCertificates,
              ...(typeof settings.trustedCaPem === "string"
                ? [settings.trustedCaPem]
                : settings.trustedCaPem),
            ],
          },
        }
  const authority = {
    authorityHost: settings.authorityHost,
    ...(settings.disableInstanceDiscovery === true ? { disableInstanceDiscovery: true } : {}),
    ...tls,
  }
  yield* checkProxyVariables(settings.mode)
  switch (settings.mode) {
    case "client_secret": {
      const env = yield* requireVariables("client_secret")
      yield* checkIdentityVariables("client_secret")
      const secret = yield* Config.Redacted("AZURE_CLIENT_SECRET").pipe(
        Effect.mapError(
          () =>
            new CredentialVariableMissing({
              mode: "client_secret",
              variables: ["AZURE_CLIENT_SECRET"],
              fix: "Set AZURE_CLIENT_SECRET in the environment",
            }),
        ),
      )
      const tenantId = env.AZURE_TENANT_ID as string
      const clientId = env.AZURE_CLIENT_ID as string
      const credential = yield* construct(
        "client_secret",
        tenantFix,
        () => new ClientSecretCredential(tenantId, clientId, Redacted.value(secret), authority),
      )
      return {
        credential,
        identity: {
          mode: "client_secret",
          source: "ClientSecretCredential",
          tenantId,
          clientId,
          endpoint: settings.authorityHost,
        },
      } satisfies ResolvedCredential
    }
    case "workload_identity": {
      const env = yield* requireVariables("workload_identity")
      yield* checkIdentityVariables("workload_identity")
      const tokenFile = env.AZURE_FEDERATED_TOKEN_FILE as string
      yield* Effect.tryPromise({
        try: () => access(tokenFile, constants.R_OK),
        catch: () =>
          new CredentialUnavailable({
            mode: "workload_identity",
            reason: `the federated token file ${shownPath(tokenFile)} (AZURE_FEDERATED_TOKEN_FILE) cannot be read`,
            fix: "Check the projected service account token volume is mounted and readable by this user",
            missing: [],
          }),
      })
      const tenantId = env.AZURE_TENANT_ID as string
      const clientId = env.AZURE_CLIENT_ID as string
      const credential = yield* construct(
        "workload_identity",
        tenantFix,
        () => new WorkloadIdentityCredential({ tenantId, clientId, tokenFilePath: tokenFile, ...authority }),
      )
      return {
        credential,
        identity: {
          mode: "workload_identity",
          source: "WorkloadIdentityCredential",
          tenantId,
          clientId,
          tokenFile,
          endpoint: settings.authorityHost,
        },
      } satisfies ResolvedCredential
    }
    case "managed_identity": {
      const clientId = settings.managedIdentityClientId
      const endpoint = yield* managedIdentityEndpoint
      const credential = yield* construct(
        "managed_identity",
        "Check managed_identity_client_id (the user-assigned identity's client id, a GUID)",
        () =>
          clientId === undefined
            ? new ManagedIdentityCredential({ ...tls })
            : new ManagedIdentityCredential({ clientId, ...tls }),
      )
      return {
        credential,
        identity: {
          mode: "managed_identity",
          source:
            clientId === undefined
              ? "ManagedIdentityCredential (system-assigned)"
              : "ManagedIdentityCredential (user-assigned)",
          ...(clientId === undefined ? {} : { clientId }),
          endpoint,
        },
      } satisfies ResolvedCredential
    }
    case "default": {
      yield* checkIdentityVariables("default")
      const tenantId = yield* optionalEnv("AZURE_TENANT_ID")
      const clientId = settings.managedIdentityClientId
      const credential = yield* construct(
        "default",
        `${tenantFix}; and AZURE_TOKEN_CREDENTIALS, when set: "prod", "dev" or one credential's name (EnvironmentCredential, WorkloadIdentityCredential, ManagedIdentityCredential, AzureCliCredential, ...)`,
        () =>
          new DefaultAzureCredential({
            ...authority,
            ...(clientId === undefined ? {} : { managedIdentityClientId: clientId }),
            ...(Option.isSome(tenantId) ? { tenantId: tenantId.value } : {}),
          }),
      )
      return {
        credential,
        identity: {
          mode: "default",
          source:
            "DefaultAzureCredential (environment, workload identity, managed identity, developer tools)",
          ...(Option.isSome(tenantId) ? { tenantId: tenantId.value } : {}),
          ...(clientId === undefined ? {} : { clientId }),
          endpoint: settings.authorityHost,
        },
      } satisfies ResolvedCredential
    }
  }
})
