/**
 * The adapter's keep-alive agent, safe to put in a log line.
 *
 * The SDKs' log policy (`AZURE_LOG_LEVEL` info or verbose, or `DEBUG=azure*`) writes every
 * request it sends through its sanitizer, which is `JSON.stringify` with a few fields (headers,
 * url, query, body) redacted. A request carries the agent it is sent through, and an agent holds
 * its sockets and the requests waiting for one: their raw HTTP text (the `Authorization: Bearer`
 * header, and an import's body, the PFX whose password is blank), and TLS session data. So the
 * log line of any request sent while another was on its way or queued printed that request's
 * token and PFX. This agent stands for itself in JSON and in `util.inspect` by a description: the
 * log line keeps its shape and loses nothing it should show.
 */
import { Agent, type AgentOptions } from "node:https"
import { inspect } from "node:util"

const description = "[https.Agent: kvdeploy's keep-alive connections (not shown)]"

export class LogSafeAgent extends Agent {
  constructor(options: AgentOptions) {
    super(options)
  }
  toJSON(): string {
    return description
  }
  [inspect.custom](): string {
    return description
  }
}
