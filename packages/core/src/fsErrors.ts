/**
 * A file system error in words ("no such file or directory", "permission denied"), without the
 * stack or syscall: for messages that name a path the operator gave. An error of another code
 * gives its own message; a bare `{ code }` (a code kept without its error) gives the code.
 */
export const fsErrorReason = (error: unknown): string => {
  const code = (error as { code?: unknown } | null)?.code
  switch (code) {
    case "ENOENT":
      return "no such file or directory"
    case "ENOTDIR":
      return "a part of the path is a file, not a directory"
    case "EEXIST":
      return "a file is in the way"
    case "EACCES":
    case "EPERM":
      return "permission denied"
    case "EROFS":
      return "read-only file system"
    case "ENOSPC":
      return "no space left on device"
    case "EDQUOT":
      return "disk quota exceeded"
    case "EISDIR":
      return "is a directory"
    case "ELOOP":
      return "too many levels of symbolic links"
    default:
      return error instanceof Error ? error.message : typeof code === "string" ? code : String(error)
  }
}

/**
 * A file system error's code in words with the code after it (`no such file or directory
 * (ENOENT)`), for a reason that keeps the code for searching; the code alone when it has no words
 * here.
 */
export const fsCodeInWords = (code: string): string => {
  const words = fsErrorReason({ code })
  return words === code ? code : `${words} (${code})`
}
