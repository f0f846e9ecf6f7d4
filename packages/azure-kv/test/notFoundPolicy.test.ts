/** The latest read's 404: thrown by the policy as a LatestNotFound without stack frames; anything else passes. */
import { createHttpHeaders, createPipelineRequest, type PipelineResponse } from "@azure/core-rest-pipeline"
import { describe, expect, it } from "vitest"
import { LatestNotFound, latestNotFound } from "../src/notFoundPolicy.js"
import { describeFailure, toVaultError } from "../src/vaultFailure.js"

const vault = "https://v1.vault.kvdeploy.test"
const body = JSON.stringify({
  error: { code: "CertificateNotFound", message: "not here", innererror: { code: "Inner" } },
})
const answer =
  (status: number, text: string, contentType = "application/json; charset=utf-8") =>
  async (request: ReturnType<typeof createPipelineRequest>): Promise<PipelineResponse> => ({
    request,
    status,
    headers: createHttpHeaders({
      "content-type": contentType,
      "x-ms-request-id": "r-1",
      "retry-after": "3",
      date: "Wed, 02 Dec 2026 10:00:05 GMT",
    }),
    bodyAsText: text,
  })
const get = (path: string) =>
  createPipelineRequest({ url: `${vault}${path}?api-version=2025-07-01`, method: "GET" })

describe("latestNotFound", () => {
  it("throws a LatestNotFound for a 404 to the latest read, with the Key Vault error's facts and no stack frames", async () => {
    const error = await latestNotFound.sendRequest(get("/certificates/app/"), answer(404, body)).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(error).toBeInstanceOf(LatestNotFound)
    if (!(error instanceof LatestNotFound)) return
    expect(error.stack).toBe("LatestNotFound: not here")
    // Read as the SDK's RestError for the same answer would be.
    const cause = describeFailure(error)
    expect({ ...cause, name: cause.name, message: cause.message }).toEqual({
      name: "RestError",
      message: "not here",
      statusCode: 404,
      code: "CertificateNotFound",
      innerCode: "Inner",
      requestId: "r-1",
      retryAfterMs: 3000,
      answeredAtMs: Date.UTC(2026, 11, 2, 10, 0, 5),
    })
    const mapped = toVaultError("getLatest", "read", error)
    expect(mapped._tag).toBe("VaultNotFound")
    expect(mapped.detail).toBe("not here")
    // When the vault answered, by its clock: a first deploy compares a delete's time with it.
    expect(mapped._tag === "VaultNotFound" ? mapped.answeredAtMs : undefined).toBe(
      Date.UTC(2026, 11, 2, 10, 0, 5),
    )
  })

  it("leaves every other answer to the SDK", async () => {
    const passes = async (path: string, status: number, text: string, contentType?: string) => {
      const response = await latestNotFound.sendRequest(get(path), answer(status, text, contentType))
      expect(response.status).toBe(status)
    }
    await passes("/certificates/app/0123abcd", 404, body)
    await passes("/deletedcertificates/app", 404, body)
    await passes("/certificates/app/", 200, "{}")
    await passes("/certificates/app/", 404, "no such thing", "text/plain")
    await passes("/certificates/app/", 404, "{}")
    await passes("/certificates/app/", 404, "")
    const post = createPipelineRequest({ url: `${vault}/certificates/app/?api-version=1`, method: "POST" })
    expect((await latestNotFound.sendRequest(post, answer(404, body))).status).toBe(404)
  })
})
