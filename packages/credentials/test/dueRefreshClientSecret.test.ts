/** A token past its refresh time with msal-node, a client secret, through Entra ID's token endpoint (dueRefreshScenario.ts). */
import { describe, it } from "vitest"
import { dueRefreshScenario } from "./dueRefreshScenario.js"

describe("a token past its refresh time, with msal-node, a client secret, through Entra ID's token endpoint", () => {
  it(
    "the request whose refresh succeeded is answered the new token; a refresh that gets an HTTP error leaves the old one, due",
    () => dueRefreshScenario("clientSecret"),
    60_000,
  )
})
