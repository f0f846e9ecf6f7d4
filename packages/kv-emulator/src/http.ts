import { randomUUID } from "node:crypto"
/** Small HTTP helpers shared by the vault, Entra, managed identity and admin handlers. */
import type { IncomingMessage, ServerResponse } from "node:http"

export const MAX_BODY_BYTES = 4 * 1024 * 1024

export class BodyTooLarge extends Error {}

/** The client closed the connection before its body was read (a timeout during a fault's delay). */
export class RequestAborted extends Error {}

/**
 * The body, or `RequestAborted` when the connection closed first: a request destroyed before this
 * is called (its client gave up while a fault delayed it) emits no `end` or `error` any more, and
 * would never settle.
 */
export const readBody = (req: IncomingMessage, limit = MAX_BODY_BYTES): Promise<Buffer> =>
  new Promise((resolve, reject) => {
    const aborted = () =>
      reject(new RequestAborted("the client closed the connection before its body was read"))
    if (req.destroyed) return aborted()
    req.on("close", () => {
      // After `end` (resolved already) this does nothing.
      if (!req.readableEnded) aborted()
    })
    const chunks: Buffer[] = []
    let size = 0
    req.on("data", (c: Buffer) => {
      size += c.length
      if (size > limit) {
        reject(new BodyTooLarge(`request body larger than ${limit} bytes`))
        req.destroy()
        return
      }
      chunks.push(c)
    })
    req.on("end", () => resolve(Buffer.concat(chunks)))
    req.on("error", reject)
  })

/** A body already serialised (kept by a cache); sent as-is. */
export class RawJson {
  constructor(readonly bytes: Buffer) {}
}

export const sendJson = (
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Readonly<Record<string, string>> = {},
): void => {
  if (res.headersSent || res.destroyed) return
  const text =
    body instanceof RawJson ? body.bytes : Buffer.from(body === undefined ? "" : JSON.stringify(body))
  res.writeHead(status, {
    ...(text.length > 0 ? { "Content-Type": "application/json; charset=utf-8" } : {}),
    "Content-Length": text.length,
    "Cache-Control": "no-cache",
    "x-ms-keyvault-service-version": "1.9.0.0",
    "x-ms-request-id": randomUUID(),
    ...headers,
  })
  res.end(text)
}

/**
 * A `rawAnswer` fault's answer: its text as it is (status default 200, its content type when it
 * names one), with none of the endpoint's own body shape or headers. The request's body is drained.
 */
export const sendRawAnswer = (
  req: IncomingMessage,
  res: ServerResponse,
  answer: { readonly body: string; readonly status?: number; readonly contentType?: string },
): number => {
  req.resume()
  const status = answer.status ?? 200
  const text = Buffer.from(answer.body, "utf8")
  res.writeHead(status, {
    ...(answer.contentType === undefined ? {} : { "Content-Type": answer.contentType }),
    "Content-Length": String(text.length),
  })
  res.end(text)
  return status
}

export const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v)

export const parseJson = (buf: Buffer): { ok: true; value: unknown } | { ok: false } => {
  if (buf.length === 0) return { ok: true, value: undefined }
  try {
    return { ok: true, value: JSON.parse(buf.toString("utf8")) }
  } catch {
    return { ok: false }
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
