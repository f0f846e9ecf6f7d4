/** A token past its refresh time with msal-node, through App Service's endpoint (dueRefreshScenario.ts). */
import { describe, it } from "vitest"
import { dueRefreshScenario } from "./dueRefreshScenario.js"

describe("a token past its refresh time, with msal-node, through App Service's endpoint", () => {
  it(
    "the request whose refresh succeeded is answered the new token; a refresh that gets an HTTP error leaves the old one, due",
    () => dueRefreshScenario("managedIdentityAppService"),
    60_000,
  )
})
