/** A token past its refresh time with msal-node, through IMDS (dueRefreshScenario.ts). */
import { describe, it } from "vitest"
import { dueRefreshScenario } from "./dueRefreshScenario.js"

describe("a token past its refresh time, with msal-node, through IMDS", () => {
  it(
    "the request whose refresh succeeded is answered the new token; a refresh that gets an HTTP error leaves the old one, due",
    () => dueRefreshScenario("managedIdentityImds"),
    60_000,
  )
})
