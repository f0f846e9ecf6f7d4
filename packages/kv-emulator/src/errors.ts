/**
 * Key Vault's error shape: `{"error":{"code","message","innererror"?}}` with the
 * status codes and messages Key Vault uses (see KEYVAULT.md "Errors").
 */
export interface KvErrorBody {
  readonly error: {
    readonly code: string
    readonly message: string
    readonly innererror?: { readonly code: string }
  }
}

const HELP = "For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"

/**
 * An answer the emulator sends (status, code, message), thrown inside a request's
 * handling and turned into the response. It carries no stack trace: it is never
 * logged or shown as a failure of the emulator, and capturing one cost about
 * 10 us of CPU per error answer (every 401 challenge, every 404 of a cold
 * deploy's first get-latest), an eighth of a whole get-latest.
 */
export class KvError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly innerCode?: string,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    const limit = Error.stackTraceLimit
    Error.stackTraceLimit = 0
    super(message)
    Error.stackTraceLimit = limit
  }

  body(): KvErrorBody {
    return {
      error: {
        code: this.code,
        message: this.message,
        ...(this.innerCode !== undefined ? { innererror: { code: this.innerCode } } : {}),
      },
    }
  }

  static badParameter(message: string, options: { code?: string } = {}): KvError {
    return new KvError(400, "BadParameter", message, options.code)
  }
  static internal(message: string): KvError {
    return new KvError(500, "InternalServerError", message)
  }
  static unauthorized(message = "AKV10000: Request is missing a Bearer or PoP token."): KvError {
    return new KvError(401, "Unauthorized", message)
  }
  static certificateNotFound(nameOrId: string): KvError {
    return new KvError(
      404,
      "CertificateNotFound",
      `A certificate with (name/id) ${nameOrId} was not found in this key vault. If you recently deleted this certificate you may be able to recover it using the correct recovery command. ${HELP}`,
    )
  }
  static deletedCertificateNotFound(name: string): KvError {
    return new KvError(404, "CertificateNotFound", `Deleted Certificate not found: ${name}`)
  }
  static secretNotFound(nameOrId: string): KvError {
    return new KvError(
      404,
      "SecretNotFound",
      `A secret with (name/id) ${nameOrId} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. ${HELP}`,
    )
  }
  static keyNotFound(nameOrId: string): KvError {
    return new KvError(
      404,
      "KeyNotFound",
      `A key with (name/id) ${nameOrId} was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command. ${HELP}`,
    )
  }
  static pendingNotFound(name: string): KvError {
    return new KvError(404, "PendingCertificateNotFound", `Pending certificate not found: ${name}`)
  }
  /**
   * An import or create while the certificate's pending operation is `inProgress`: 409 with code
   * `Forbidden` and this message, as Key Vault's "Monitor and manage certificate creation" shows it.
   */
  static operationInProgress(): KvError {
    return new KvError(
      409,
      "Forbidden",
      "A new key vault certificate can not be created or imported while a pending key vault certificate's status is inProgress.",
    )
  }
  static deletedButRecoverable(name: string): KvError {
    return new KvError(
      409,
      "Conflict",
      `Certificate ${name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the certificate can only be recovered or purged.`,
      "ObjectIsDeletedButRecoverable",
    )
  }
  /**
   * An import or create while the name's delete has not shown yet. Key Vault's answer is recorded
   * for keys ("Key is currently being deleted.", innererror ObjectIsBeingDeleted); the certificate
   * wording here follows it and is not confirmed.
   */
  static beingDeleted(): KvError {
    return new KvError(409, "Conflict", "Certificate is currently being deleted.", "ObjectIsBeingDeleted")
  }
  static conflict(message: string, innerCode?: string): KvError {
    return new KvError(409, "Conflict", message, innerCode)
  }
  static throttled(retryAfterSeconds: number, message?: string): KvError {
    return new KvError(
      429,
      "Throttled",
      message ??
        "Request was not processed because too many requests were received. Reason: A generic throttling limit was exceeded for this vault.",
      undefined,
      { "Retry-After": String(retryAfterSeconds) },
    )
  }
  static methodNotAllowed(): KvError {
    return new KvError(405, "BadParameter", "The requested resource does not support http method.")
  }
}
