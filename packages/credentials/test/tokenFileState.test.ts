/**
 * The federated token file's state that noteTokenFileState puts after a failed token request's
 * message, read by another copy of the module than the one that wrote it: an install with two
 * versions of @kvdeploy/credentials (azure-kv resolving another one), or a bundle's copy beside
 * dist's. Each copy here is the module loaded on its own (its own module instance).
 */
import { inspect } from "node:util"
import { describe, expect, it } from "vitest"

type TokenErrors = typeof import("../src/tokenErrors.js")

// Two separately loaded instances of the same module file (a query string makes a module of its own).
const moduleFile = "../src/tokenErrors.ts"
const copies = async (): Promise<readonly [TokenErrors, TokenErrors]> => {
  const writer = (await import(`${moduleFile}?copy=writer`)) as TokenErrors
  const reader = (await import(`${moduleFile}?copy=reader`)) as TokenErrors
  return [writer, reader]
}

const state =
  "the token in /var/run/secrets/azure/tokens/azure-identity-token expired at 2026-12-03T21:13:29.000Z (1 h ago, by this host's clock): check the pod's projected service account token volume"
const sdkText = "invalid_client: AADSTS700024: Client assertion is not within its valid time range."

describe("the token file's state noted on an error, across copies of the module", () => {
  it("the two copies are separate module instances", async () => {
    const [writer, reader] = await copies()
    expect(writer).not.toBe(reader)
    expect(writer.noteTokenFileState).not.toBe(reader.noteTokenFileState)
  })

  it("another copy reads the state, and the message without it, that one copy noted", async () => {
    const [writer, reader] = await copies()
    const error = new Error(sdkText)
    writer.noteTokenFileState(error, state)
    expect(error.message).toBe(`${sdkText} [${state}]`)
    expect(reader.tokenFileStateOf(error)).toBe(state)
    expect(reader.messageWithoutTokenFileState(error)).toBe(sdkText)
    // Judged by the library's words alone in any copy: the state's words are not read as the SDK's.
    expect(reader.identityProviderOutage(error)).toBe(false)
  })

  it("noted again by another copy, the state replaces the last one and is said once", async () => {
    const [writer, reader] = await copies()
    const error = new Error(sdkText)
    writer.noteTokenFileState(error, "first state")
    reader.noteTokenFileState(error, state)
    expect(error.message).toBe(`${sdkText} [${state}]`)
    expect(writer.tokenFileStateOf(error)).toBe(state)
    expect(writer.messageWithoutTokenFileState(error)).toBe(sdkText)
  })

  it("is not among the error's own keys: not in its JSON, nor in util.inspect beyond the message", async () => {
    const [writer] = await copies()
    const error = Object.assign(new Error(sdkText), { code: "invalid_client" })
    writer.noteTokenFileState(error, state)
    expect(Object.keys(error)).toEqual(["code"])
    expect(JSON.stringify(error)).toBe('{"code":"invalid_client"}')
    expect(inspect(error)).not.toContain("@kvdeploy/credentials")
    expect(inspect(error)).not.toContain("sdkMessage")
  })

  it("an error noted by no copy has no state, and its message as it is", async () => {
    const [, reader] = await copies()
    const error = new Error(sdkText)
    expect(reader.tokenFileStateOf(error)).toBeUndefined()
    expect(reader.messageWithoutTokenFileState(error)).toBe(sdkText)
    expect(reader.tokenFileStateOf("text")).toBeUndefined()
    expect(reader.messageWithoutTokenFileState("text")).toBe("text")
  })
})
