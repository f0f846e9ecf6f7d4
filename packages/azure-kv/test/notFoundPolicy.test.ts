/** The latest read's 404: thrown by the policy as the SDK's RestError, without stack frames; anything else passes. */
import {
  createHttpHeaders,
  createPipelineRequest,
  isRestError,
  type PipelineResponse,
} from "@azure/core-rest-pipeline"
import { describe, expect, it } from "vitest"
import { latestNotFound } from "../src/notFoundPolicy.js"

const vault = "https://v1.vault.kvdeploy.test"
const body = JSON.stringify({
  error: { code: "CertificateNotFound", message: "not here", innererror: { code: "Inner" } },
})
const answer =
  (status: number, text: string, contentType = "application/json; charset=utf-8") =>
  async (request: ReturnType<typeof createPipelineRequest>): Promise<PipelineResponse> => ({
    request,
    status,
    headers: createHttpHeaders({ "content-type": contentType, "x-ms-request-id": "r-1" }),
    bodyAsText: text,
  })
const get = (path: string) =>
  createPipelineRequest({ url: `${vault}${path}?api-version=2025-07-01`, method: "GET" })

describe("latestNotFound", () => {
  it("throws the SDK's RestError for a 404 to the latest read, with the deserialiser's facts and no stack frames", async () => {
    const request = get("/certificates/app/")
    const error = await latestNotFound.sendRequest(request, answer(404, body)).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(isRestError(error)).toBe(true)
    if (!isRestError(error)) return
    expect(error.message).toBe("not here")
    expect(error.statusCode).toBe(404)
    expect(error.code).toBe("CertificateNotFound")
    expect(error.request).toBe(request)
    expect(error.response?.status).toBe(404)
    expect(error.response?.headers.get("x-ms-request-id")).toBe("r-1")
    expect(error.details).toEqual({
      error: {
        code: "CertificateNotFound",
        message: "not here",
        innerError: { code: "Inner", message: undefined, innerError: undefined },
      },
    })
    expect(error.stack).toBe("RestError: not here")
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
