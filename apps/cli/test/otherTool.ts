/**
 * Another tool's imports into the emulator, with the policy the SDK (4.9.0-4.10.3) leaves off the
 * wire on an import: a per-call pipeline policy writes it (and `preserveCertOrder`) into the
 * request's body, as a tool that sends them would.
 */
import type { PipelinePolicy } from "@azure/core-rest-pipeline"
import { ClientSecretCredential } from "@azure/identity"
import { CertificateClient } from "@azure/keyvault-certificates"
import type { World } from "./harness.js"

export const PEM = "application/x-pem-file"

/** What the other tool's imports state: an EC P-256 key, exportable or not, PEM, the order kept or not. */
export interface OtherToolImport {
  readonly exportable: boolean
  readonly preserveCertOrder: boolean
}

/** A CertificateClient of the emulator's vault whose imports carry `how`'s policy. */
export const otherToolClient = (world: World, how: OtherToolImport): CertificateClient => {
  const policy: PipelinePolicy = {
    name: "otherToolImport",
    sendRequest(request, next) {
      if (request.method === "POST" && /\/import/.test(request.url) && typeof request.body === "string") {
        const body = JSON.parse(request.body)
        body.policy = {
          key_props: { exportable: how.exportable, kty: "EC", crv: "P-256", reuse_key: false },
          secret_props: { contentType: PEM },
        }
        if (how.preserveCertOrder) body.preserveCertOrder = true
        request.body = JSON.stringify(body)
      }
      return next(request)
    },
  }
  const env = world.emulator.env.clientSecret
  return new CertificateClient(
    world.emulator.vault(world.vault).url,
    new ClientSecretCredential(
      env.AZURE_TENANT_ID ?? "",
      env.AZURE_CLIENT_ID ?? "",
      env.AZURE_CLIENT_SECRET ?? "",
      {
        authorityHost: world.emulator.authorityHost,
        disableInstanceDiscovery: true,
      },
    ),
    { disableChallengeResourceVerification: true, additionalPolicies: [{ policy, position: "perCall" }] },
  )
}
