/** Test material and SDK clients wired to a running emulator. */
import { createPrivateKey } from "node:crypto"
import * as https from "node:https"
import type { TokenCredential } from "@azure/identity"
import { ClientSecretCredential } from "@azure/identity"
import { CertificateClient } from "@azure/keyvault-certificates"
import { SecretClient } from "@azure/keyvault-secrets"
import { changeProcessEnv, identityEnvironment } from "@kvdeploy/core/test"
import { generateKey, issue, toPem } from "@kvdeploy/pkcs12/testing"
import * as x509 from "@peculiar/x509"
import type { Emulator } from "../src/index.js"

export interface TestMaterial {
  readonly leafDer: Uint8Array
  readonly chainDer: ReadonlyArray<Uint8Array>
  readonly keyPkcs8: Uint8Array
  readonly leafPem: string
  readonly chainPem: string
  readonly keyPem: string
}

/**
 * A leaf signed by an intermediate signed by a root (all RSA 2048; `keyAlg: "EC"`: a P-256 leaf,
 * `"RSA-1024"`: a key Key Vault refuses; `caKeyAlg: "EC"`: P-256 root and intermediate, so the
 * leaf is signed with ECDSA).
 */
export const makeMaterial = async (
  options: {
    cn?: string
    notAfter?: Date
    notBefore?: Date
    keyAlg?: "RSA" | "EC" | "RSA-1024"
    caKeyAlg?: "RSA" | "EC"
  } = {},
): Promise<TestMaterial> => {
  const caKey = options.caKeyAlg === "EC" ? "P-256" : "RSA-2048"
  const rootKey = await generateKey(caKey)
  const interKey = await generateKey(caKey)
  const leafKey = await generateKey(
    options.keyAlg === "EC" ? "P-256" : options.keyAlg === "RSA-1024" ? "RSA-1024" : "RSA-2048",
  )
  const now = Date.now()
  const root = { name: "CN=Test Root", key: rootKey }
  const inter = { name: "CN=Test Intermediate", key: interKey }
  const rootDer = await issue({
    subject: root.name,
    key: rootKey,
    ca: true,
    pathLength: 1,
    notBefore: new Date(now - 86_400_000),
    notAfter: new Date(now + 3650 * 86_400_000),
  })
  const interDer = await issue({
    subject: inter.name,
    key: interKey,
    issuer: root,
    ca: true,
    pathLength: 0,
    notBefore: new Date(now - 86_400_000),
    notAfter: new Date(now + 1825 * 86_400_000),
  })
  const cn = options.cn ?? "app.example.test"
  const leafDer = await issue({
    subject: `CN=${cn}`,
    key: leafKey,
    issuer: inter,
    sans: [{ type: "dns", value: cn }],
    keyUsage: x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
    extendedKeyUsage: [x509.ExtendedKeyUsage.serverAuth],
    notBefore: options.notBefore ?? new Date(now - 3600_000),
    notAfter: options.notAfter ?? new Date(now + 90 * 86_400_000),
  })
  const keyPkcs8 = leafKey.pkcs8
  const chainDer = [interDer, rootDer]
  return {
    leafDer,
    chainDer,
    keyPkcs8,
    leafPem: toPem("CERTIFICATE", leafDer),
    chainPem: chainDer.map((d) => toPem("CERTIFICATE", d)).join(""),
    keyPem: toPem("PRIVATE KEY", keyPkcs8),
  }
}

/** The PEM bundle Key Vault takes: key (PKCS#8) + leaf + chain. */
export const pemBundle = (m: TestMaterial): string => m.keyPem + m.leafPem + m.chainPem

export const pkcs1Pem = (m: TestMaterial): string =>
  createPrivateKey({ key: Buffer.from(m.keyPkcs8), format: "der", type: "pkcs8" }).export({
    type: "pkcs1",
    format: "pem",
  }) as string

/**
 * Make `env` the only identity variables in process.env (MSAL reads them when a credential first
 * asks for a token); answers the function that puts process.env back as it was.
 */
export const useIdentityEnvironment = (env: Readonly<Record<string, string>>): (() => void) =>
  changeProcessEnv(identityEnvironment(env))

export const clientOptions = (emulator: Emulator) => ({
  tlsOptions: { ca: emulator.caPem },
  disableChallengeResourceVerification: true,
  retryOptions: { maxRetryDelayInMs: 2_000 },
})

export const credentialOptions = (emulator: Emulator) => ({
  authorityHost: emulator.authorityHost,
  disableInstanceDiscovery: true,
  tlsOptions: { ca: emulator.caPem },
})

export const secretCredential = (emulator: Emulator): TokenCredential =>
  new ClientSecretCredential(
    emulator.clientSecret.tenantId,
    emulator.clientSecret.clientId,
    emulator.clientSecret.clientSecret,
    credentialOptions(emulator),
  )

export const clients = (
  emulator: Emulator,
  vault: string,
  credential: TokenCredential = secretCredential(emulator),
) => ({
  certificates: new CertificateClient(emulator.vault(vault).url, credential, clientOptions(emulator)),
  secrets: new SecretClient(emulator.vault(vault).url, credential, clientOptions(emulator)),
})

export interface RawResponse {
  readonly status: number
  readonly headers: Readonly<Record<string, string | string[] | undefined>>
  readonly text: string
  readonly json: unknown
}

/** A plain HTTPS request (no SDK) to check the wire: status, headers, body. */
export const raw = (
  emulator: Emulator,
  vault: string,
  method: string,
  path: string,
  options: { token?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<RawResponse> =>
  new Promise((resolve, reject) => {
    const url = new URL(path, emulator.vault(vault).url)
    const body = options.body === undefined ? undefined : JSON.stringify(options.body)
    const req = https.request(
      url,
      {
        method,
        ca: emulator.caPem,
        headers: {
          ...(options.token !== undefined ? { Authorization: `Bearer ${options.token}` } : {}),
          ...(body !== undefined
            ? { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) }
            : {}),
          ...options.headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on("data", (c: Buffer) => chunks.push(c))
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8")
          let json: unknown
          try {
            json = text.length > 0 ? JSON.parse(text) : undefined
          } catch {
            json = undefined
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json })
        })
      },
    )
    req.on("error", reject)
    if (body !== undefined) req.write(body)
    req.end()
  })

export const errorOf = (
  json: unknown,
): { code?: string; message?: string; innererror?: { code?: string } } => {
  if (typeof json === "object" && json !== null && "error" in json) {
    const e = (json as { error: unknown }).error
    if (typeof e === "object" && e !== null) return e as { code?: string; message?: string }
  }
  return {}
}

/** The SDK's RestError, read structurally (no dependency on @azure/core-rest-pipeline). */
export interface SdkError {
  readonly statusCode: number | undefined
  readonly code: string | undefined
  readonly message: string
}

export const restError = async (p: Promise<unknown>): Promise<SdkError> => {
  try {
    await p
  } catch (e) {
    if (e instanceof Error && "statusCode" in e) {
      const r = e as Error & { statusCode?: number; code?: string }
      return { statusCode: r.statusCode, code: r.code, message: r.message }
    }
    throw e
  }
  throw new Error("expected the call to fail")
}

/** A request to the admin API (`/_emulator/*`, with the admin key): status and JSON answer. */
export const admin = (
  emulator: Emulator,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: unknown }> =>
  new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body)
    const req = https.request(
      `${emulator.adminUrl}${path}`,
      {
        method,
        ca: emulator.caPem,
        headers: {
          "x-kv-emulator-admin-key": emulator.adminKey,
          ...(data !== undefined ? { "content-type": "application/json" } : {}),
        },
      },
      (res) => {
        let text = ""
        res.on("data", (c: Buffer) => {
          text += c.toString()
        })
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, json: text.length > 0 ? JSON.parse(text) : undefined }),
        )
      },
    )
    req.on("error", reject)
    if (data !== undefined) req.write(data)
    req.end()
  })
