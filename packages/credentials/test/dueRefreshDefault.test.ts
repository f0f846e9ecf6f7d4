/** A token past its refresh time with msal-node, through credential_mode default answered by IMDS (dueRefreshScenario.ts). */
import { describe, it } from "vitest"
import { dueRefreshScenario } from "./dueRefreshScenario.js"

// The emulator's IMDS is named by AZURE_POD_IDENTITY_AUTHORITY_HOST, with which @azure/identity sends
// no availability probe before each request (it does on a host's own IMDS, 169.254.169.254).
describe("a token past its refresh time, with msal-node, through the default chain answered by IMDS", () => {
  it(
    "the request whose refresh succeeded is answered the new token; a refresh that gets an HTTP error leaves the old one, due",
    () => dueRefreshScenario("managedIdentityImds", { defaultChain: true }),
    60_000,
  )
})
