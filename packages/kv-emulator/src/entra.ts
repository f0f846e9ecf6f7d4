/**
 * Entra ID (HTTPS) and managed identity (plain HTTP) endpoints:
 * OpenID configuration, JWKS, instance discovery, the v2.0 token endpoint for
 * client secrets and client assertions (workload identity), and the App
 * Service (2019-08-01) and IMDS (2018-02-01) managed identity token endpoints.
 */
import { randomUUID } from "node:crypto"
import type { IncomingMessage, ServerResponse } from "node:http"
import { withFields } from "./answerFields.js"
import type { Directory, Principal } from "./directory.js"
import type { FaultController, IdentityOperationName } from "./faults.js"
import { readBody, sendJson, sendRawAnswer, sleep } from "./http.js"
import type { RequestLog } from "./requestLog.js"

export interface EntraContext {
  readonly directory: Directory
  readonly log: RequestLog
  /** Faults tests script for the token endpoint (operation "token"). */
  readonly faults: FaultController
  /** https://host:port */
  readonly authorityHost: string
  /** Tenants the token endpoint serves (the emulator's and any vault-specific ones). */
  readonly tenants: () => ReadonlySet<string>
  /**
   * Domain names of tenants (lower case, to the tenant's id): Entra ID takes a tenant's domain name
   * (contoso.onmicrosoft.com) wherever the path names a tenant, and answers with its id.
   */
  readonly tenantDomains: () => ReadonlyMap<string, string>
  readonly admin: (req: IncomingMessage, res: ServerResponse) => Promise<void>
}

const aadError = (
  res: ServerResponse,
  status: number,
  error: string,
  description: string,
  codes: number[] = [],
  headers: Readonly<Record<string, string>> = {},
) =>
  sendJson(
    res,
    status,
    {
      error,
      error_description: description,
      error_codes: codes,
      timestamp: new Date().toISOString().replace("T", " ").replace("Z", "Z"),
      trace_id: randomUUID(),
      correlation_id: randomUUID(),
    },
    headers,
  )

/** How an identity endpoint answers an error: its status, OAuth error code, description and headers. */
type IdentityAnswer = (
  status: number,
  error: string,
  description: string,
  headers: Readonly<Record<string, string>>,
) => void

/** How the request goes on after an identity fault: its token answer as it is, or changed. */
type Reshape = (body: Record<string, unknown>) => unknown

/**
 * Apply the fault a test scripted for an identity endpoint's operation (an
 * outage or throttling of Entra ID or a managed identity endpoint, or an answer
 * changed on the way). True when the fault answered the request (or dropped its
 * connection); otherwise the request goes on (no fault, or a delay or hold that
 * has passed), and its successful token answer goes through the function
 * returned (omitFields, setFields).
 */
const identityFault = async (
  faults: FaultController,
  operation: IdentityOperationName,
  req: IncomingMessage,
  res: ServerResponse,
  answer: IdentityAnswer,
): Promise<true | Reshape> => {
  const asIs: Reshape = (body) => body
  const injected = faults.take("", operation, undefined)
  if (injected === undefined) return asIs
  const a = injected.action
  if (a.kind === "omitFields") return (body) => withFields(body, a.fields, {})
  if (a.kind === "setFields") return (body) => withFields(body, [], a.fields)
  if (a.kind === "rawAnswer") {
    sendRawAnswer(req, res, a)
    return true
  }
  if (a.kind === "delay") await sleep(a.ms)
  else if (a.kind === "hold") await faults.hold(injected.id, a.timeoutMs ?? 30_000)
  else if (a.kind === "drop") {
    req.resume()
    res.socket?.destroy()
    return true
  } else if (a.kind === "throttle") {
    req.resume()
    answer(429, "temporarily_unavailable", "Injected throttling: too many requests.", {
      "Retry-After": String(a.retryAfterSeconds ?? 1),
    })
    return true
  } else if (a.kind === "status") {
    req.resume()
    const error =
      a.code ??
      (a.status >= 500 ? "server_error" : a.status === 429 ? "temporarily_unavailable" : "invalid_request")
    answer(a.status, error, a.message ?? "Injected fault.", a.headers ?? {})
    return true
  }
  return asIs
}

const resourceFromScope = (scope: string | null): string | undefined => {
  if (!scope) return undefined
  const s = scope.split(" ").find((x) => x.endsWith("/.default"))
  return s ? s.slice(0, -"/.default".length) : undefined
}

const logged = (
  log: RequestLog,
  vault: string,
  req: IncomingMessage,
  res: ServerResponse,
  operation: () => string,
  principal: () => string | undefined,
) => {
  const started = process.hrtime.bigint()
  const time = Date.now()
  const seq = log.nextSeq()
  const raw = req.url ?? "/"
  const q = raw.indexOf("?")
  res.on("finish", () => {
    const p = principal()
    log.add({
      seq,
      time,
      vault,
      operation: operation(),
      method: req.method ?? "GET",
      path: q < 0 ? raw : raw.slice(0, q),
      query: q < 0 ? "" : raw.slice(q + 1),
      status: res.statusCode,
      latencyMs: Number(process.hrtime.bigint() - started) / 1e6,
      challenge: false,
      ...(p !== undefined ? { principal: p } : {}),
    })
  })
}

export const entraHandler =
  (ctx: EntraContext) =>
  (req: IncomingMessage, res: ServerResponse): void => {
    void handleEntra(ctx, req, res).catch((e: unknown) => {
      if (!res.headersSent) aadError(res, 500, "server_error", String(e))
    })
  }

const handleEntra = async (ctx: EntraContext, req: IncomingMessage, res: ServerResponse): Promise<void> => {
  const url = new URL(req.url ?? "/", ctx.authorityHost)
  const path = url.pathname
  if (path.startsWith("/_emulator/")) return ctx.admin(req, res)
  let operation = "unknown"
  let principal: string | undefined
  logged(
    ctx.log,
    "entra",
    req,
    res,
    () => operation,
    () => principal,
  )
  const parts = path.split("/").filter((p) => p.length > 0)
  const host = ctx.authorityHost
  const d = ctx.directory

  // Federation issuer (the workload identity token's issuer, like a Kubernetes OIDC issuer).
  if (parts[0] === "federation") {
    if (parts.slice(1).join("/") === ".well-known/openid-configuration") {
      operation = "federationConfiguration"
      return sendJson(res, 200, {
        issuer: d.federationIssuer,
        jwks_uri: `${d.federationIssuer}/openid/v1/jwks`,
        response_types_supported: ["id_token"],
        subject_types_supported: ["public"],
        id_token_signing_alg_values_supported: ["RS256"],
      })
    }
    if (parts.slice(1).join("/") === "openid/v1/jwks") {
      operation = "federationKeys"
      return sendJson(res, 200, { keys: [d.federationKey.jwk] })
    }
  }
  // The tenant in the path: an id in any letter case, or a domain name, both as Entra ID takes them;
  // endpoints, issuers and tokens name the tenant by its id (lower case) as Entra ID's do.
  const pathTenant = parts[0] ?? ""
  const tenant = /^[0-9a-f-]{36}$/i.test(pathTenant)
    ? pathTenant.toLowerCase()
    : (ctx.tenantDomains().get(pathTenant.toLowerCase()) ?? pathTenant)
  const rest = parts.slice(1).join("/")
  if (req.method === "GET" && rest === "discovery/instance") {
    operation = "instanceDiscovery"
    const authz = url.searchParams.get("authorization_endpoint") ?? ""
    const authHost = (() => {
      try {
        return new URL(authz).host
      } catch {
        return new URL(host).host
      }
    })()
    return sendJson(res, 200, {
      tenant_discovery_endpoint: `${host}/${tenant}/v2.0/.well-known/openid-configuration`,
      "api-version": "1.1",
      metadata: [{ preferred_network: authHost, preferred_cache: authHost, aliases: [authHost] }],
    })
  }
  const known = ctx.tenants()
  const isTenant = known.has(tenant) || tenant === "common" || tenant === "organizations"
  if (
    req.method === "GET" &&
    (rest === "v2.0/.well-known/openid-configuration" || rest === ".well-known/openid-configuration")
  ) {
    operation = "openidConfiguration"
    if (!isTenant)
      return aadError(
        res,
        400,
        "invalid_tenant",
        `AADSTS90002: Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.`,
        [90002],
      )
    const v2 = rest.startsWith("v2.0")
    return sendJson(res, 200, {
      token_endpoint: `${host}/${tenant}/oauth2/${v2 ? "v2.0/" : ""}token`,
      token_endpoint_auth_methods_supported: ["client_secret_post", "private_key_jwt", "client_secret_basic"],
      jwks_uri: `${host}/${tenant}/discovery/${v2 ? "v2.0/" : ""}keys`,
      response_modes_supported: ["query", "fragment", "form_post"],
      subject_types_supported: ["pairwise"],
      id_token_signing_alg_values_supported: ["RS256"],
      response_types_supported: ["code", "id_token", "code id_token", "id_token token"],
      scopes_supported: ["openid", "profile", "email", "offline_access"],
      issuer: v2 ? `${host}/${tenant}/v2.0` : `${host}/${tenant}/`,
      request_uri_parameter_supported: false,
      userinfo_endpoint: `${host}/oidc/userinfo`,
      authorization_endpoint: `${host}/${tenant}/oauth2/${v2 ? "v2.0/" : ""}authorize`,
      device_authorization_endpoint: `${host}/${tenant}/oauth2/v2.0/devicecode`,
      http_logout_supported: true,
      frontchannel_logout_supported: true,
      end_session_endpoint: `${host}/${tenant}/oauth2/${v2 ? "v2.0/" : ""}logout`,
      claims_supported: ["sub", "iss", "aud", "exp", "iat", "tid", "oid"],
      kerberos_endpoint: `${host}/${tenant}/kerberos`,
      tenant_region_scope: "EU",
      cloud_instance_name: new URL(host).host,
      cloud_graph_host_name: "graph.windows.net",
      msgraph_host: "graph.microsoft.com",
      rbac_url: "https://pas.windows.net",
    })
  }
  if (req.method === "GET" && (rest === "discovery/v2.0/keys" || rest === "discovery/keys")) {
    operation = "keys"
    return sendJson(res, 200, { keys: [d.tokenKey.jwk] })
  }
  if (req.method === "POST" && (rest === "oauth2/v2.0/token" || rest === "oauth2/token")) {
    operation = "token"
    const fault = await identityFault(ctx.faults, "token", req, res, (status, error, description, headers) =>
      aadError(res, status, error, description, [], headers),
    )
    if (fault === true) return
    if (!known.has(tenant))
      return aadError(
        res,
        400,
        "invalid_request",
        `AADSTS90002: Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.`,
        [90002],
      )
    const form = new URLSearchParams((await readBody(req, 256 * 1024)).toString("utf8"))
    const grant = form.get("grant_type")
    if (grant !== "client_credentials")
      return aadError(
        res,
        400,
        "unsupported_grant_type",
        `AADSTS70003: The app requested an unsupported grant type '${grant ?? ""}'.`,
        [70003],
      )
    const clientId = form.get("client_id") ?? ""
    const p = d.principal(clientId)
    // Entra ID knows an application in a tenant only where it has a service principal: its home
    // tenant, or one a multi-tenant application is provisioned in. Anywhere else its answer is the
    // one for a client id it has never seen.
    if (!p || (p.kind !== "application" && p.kind !== "workload") || !d.isProvisionedIn(p, tenant))
      return aadError(
        res,
        400,
        "unauthorized_client",
        `AADSTS700016: Application with identifier '${clientId}' was not found in the directory '${tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.`,
        [700016],
      )
    const resource =
      rest === "oauth2/token" ? (form.get("resource") ?? undefined) : resourceFromScope(form.get("scope"))
    if (!resource)
      return aadError(
        res,
        400,
        "invalid_scope",
        "AADSTS1002012: The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).",
        [1002012],
      )
    const secret = form.get("client_secret")
    const assertion = form.get("client_assertion")
    if (secret !== null) {
      if (p.clientSecret === undefined || secret !== p.clientSecret)
        return aadError(
          res,
          401,
          "invalid_client",
          `AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${clientId}'.`,
          [7000215],
        )
    } else if (assertion !== null) {
      if (form.get("client_assertion_type") !== "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        return aadError(
          res,
          400,
          "invalid_request",
          "AADSTS50027: client_assertion_type is missing or invalid.",
          [50027],
        )
      const ok = d.verifyAssertion(assertion, p)
      if (!ok.ok)
        return aadError(res, 401, ok.code, ok.description, [
          Number(/AADSTS(\d+)/.exec(ok.description)?.[1] ?? 0),
        ])
    } else {
      return aadError(
        res,
        401,
        "invalid_client",
        "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        [7000218],
      )
    }
    principal = p.clientId
    const { token, expiresOn } = d.issueAccessToken(p, { resource, tenantId: tenant })
    const lifetime = expiresOn - d.tokenNowSeconds()
    return sendJson(
      res,
      200,
      fault({
        token_type: "Bearer",
        expires_in: lifetime,
        ext_expires_in: lifetime,
        ...refreshIn(lifetime),
        access_token: token,
      }),
    )
  }
  operation = "unknown"
  return aadError(res, 404, "not_found", `No such Entra endpoint: ${req.method ?? ""} ${path}`)
}

/**
 * Entra ID's proactive refresh hint: a long-lived token's answer carries `refresh_in`, the seconds
 * after which MSAL asks for a new token while it still answers the cached one. The emulator sends
 * half the lifetime for a token of more than 2 hours (the rule msal-node itself applies to managed
 * identity answers, which carry no hint), and nothing for the default 3599 s.
 */
const refreshIn = (lifetimeSeconds: number): { readonly refresh_in?: number } =>
  lifetimeSeconds > 2 * 3600 ? { refresh_in: Math.floor(lifetimeSeconds / 2) } : {}

export interface ManagedIdentityContext {
  readonly directory: Directory
  readonly log: RequestLog
  /** Faults tests script for the managed identity endpoints ("imdsToken", "appServiceToken"). */
  readonly faults: FaultController
  /** The value App Service puts in IDENTITY_HEADER. */
  readonly identityHeader: string
  readonly tenantId: string
  readonly admin: (req: IncomingMessage, res: ServerResponse) => Promise<void>
}

export const managedIdentityHandler =
  (ctx: ManagedIdentityContext) =>
  (req: IncomingMessage, res: ServerResponse): void => {
    void handleManagedIdentity(ctx, req, res).catch((e: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { error: "server_error", error_description: String(e) })
    })
  }

const handleManagedIdentity = async (
  ctx: ManagedIdentityContext,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> => {
  const url = new URL(req.url ?? "/", "http://127.0.0.1")
  if (url.pathname.startsWith("/_emulator/")) return ctx.admin(req, res)
  let operation = "unknown"
  let principal: string | undefined
  logged(
    ctx.log,
    "managed-identity",
    req,
    res,
    () => operation,
    () => principal,
  )
  req.resume()
  const d = ctx.directory
  const q = url.searchParams
  // MSAL asks for the IMDS path with a trailing slash; the real endpoint takes both.
  const path = url.pathname.length > 1 ? url.pathname.replace(/\/+$/, "") : url.pathname
  const pick = (): Principal | undefined => {
    // An identity named by its resource id (MSAL's msi_res_id for IMDS, mi_res_id elsewhere): the
    // emulator's identities have none, so none is found (never the system-assigned one instead).
    if (q.get("msi_res_id") || q.get("mi_res_id")) return undefined
    const clientId = q.get("client_id") ?? q.get("clientid")
    if (clientId) {
      const p = d.principal(clientId)
      return p?.kind === "userAssigned" ? p : undefined
    }
    const objectId = q.get("object_id") ?? q.get("principal_id")
    if (objectId) {
      for (const p of d.principals.values())
        if (p.kind === "userAssigned" && p.objectId === objectId) return p
      return undefined
    }
    return d.systemAssigned()
  }
  if (req.method === "GET" && path === "/metadata/identity/oauth2/token") {
    operation = "imdsToken"
    const fault = await identityFault(
      ctx.faults,
      "imdsToken",
      req,
      res,
      (status, error, description, headers) =>
        sendJson(res, status, { error, error_description: description }, headers),
    )
    if (fault === true) return
    if (req.headers.metadata !== "true")
      return sendJson(res, 400, {
        error: "invalid_request",
        error_description: "Required metadata header not specified",
      })
    const resource = q.get("resource")
    if (!resource)
      return sendJson(res, 400, {
        error: "invalid_request",
        error_description: "Required query variable 'resource' is missing",
      })
    const p = pick()
    if (!p) return sendJson(res, 400, { error: "invalid_request", error_description: "Identity not found" })
    principal = p.clientId
    const { token, expiresOn } = d.issueAccessToken(p, { resource, tenantId: ctx.tenantId })
    const now = d.tokenNowSeconds()
    return sendJson(
      res,
      200,
      fault({
        access_token: token,
        client_id: p.clientId,
        expires_in: String(expiresOn - now),
        expires_on: String(expiresOn),
        ext_expires_in: String(expiresOn - now),
        not_before: String(now),
        resource,
        token_type: "Bearer",
      }),
    )
  }
  if (req.method === "GET" && path === "/msi/token") {
    operation = "appServiceToken"
    const fault = await identityFault(
      ctx.faults,
      "appServiceToken",
      req,
      res,
      (status, error, description, headers) =>
        sendJson(res, status, { statusCode: status, message: `${error}: ${description}` }, headers),
    )
    if (fault === true) return
    if (req.headers["x-identity-header"] !== ctx.identityHeader)
      return sendJson(res, 401, {
        statusCode: 401,
        message: "Unauthorized request: X-IDENTITY-HEADER is missing or wrong.",
      })
    if (q.get("api-version") !== "2019-08-01")
      return sendJson(res, 400, { statusCode: 400, message: "Unsupported api-version; use 2019-08-01." })
    const resource = q.get("resource")
    if (!resource) return sendJson(res, 400, { statusCode: 400, message: "resource is required" })
    const p = pick()
    if (!p) return sendJson(res, 400, { statusCode: 400, message: "Identity not found" })
    principal = p.clientId
    const { token, expiresOn } = d.issueAccessToken(p, { resource, tenantId: ctx.tenantId })
    return sendJson(
      res,
      200,
      fault({
        access_token: token,
        expires_on: String(expiresOn),
        resource,
        token_type: "Bearer",
        client_id: p.clientId,
      }),
    )
  }
  return sendJson(res, 404, { error: "not_found", error_description: `No such endpoint: ${url.pathname}` })
}
