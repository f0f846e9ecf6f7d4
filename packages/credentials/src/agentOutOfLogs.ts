/**
 * The HTTP agent of a request, kept out of the SDKs' request log.
 *
 * The SDKs' log policy (`AZURE_LOG_LEVEL` info or verbose, or `DEBUG=azure*`) writes every
 * request it sends through its sanitizer, which is `JSON.stringify` with a few fields (headers,
 * url, query, body) redacted. A request carries the agent it is sent through (the vault adapter's
 * keep-alive agent, or the SDK's proxy agent for a proxy from the environment, also for
 * @azure/identity's token requests), and an agent holds
 * its sockets and the requests waiting for one: their raw HTTP text (the `Authorization: Bearer`
 * header, an import's body, the PFX whose password is blank, a token request's client secret or
 * federated token), and TLS session data. So the log line of any request sent while another was on
 * its way or queued printed those.
 *
 * This per-call policy (on the Key Vault clients, azure-kv, and on every credential makeCredential
 * builds) makes the request's `agent` property non-enumerable, which `JSON.stringify`
 * (the sanitizer, and a RestError's inspection through it) skips. It runs after the SDK's proxy
 * policy has chosen its agent and before the log policy (which comes after the Sign phase); the
 * HTTP client still reads the property.
 */
import type { PipelinePolicy } from "@azure/core-rest-pipeline"

export const agentOutOfLogs: PipelinePolicy = {
  name: "kvdeployAgentOutOfLogs",
  sendRequest: (request, next) => {
    const agent = request.agent
    if (agent !== undefined)
      Object.defineProperty(request, "agent", {
        value: agent,
        enumerable: false,
        writable: true,
        configurable: true,
      })
    return next(request)
  },
}
