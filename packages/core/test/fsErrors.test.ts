/** fsErrorReason: a file system error in words, for messages naming a path the operator gave. */
import { describe, expect, it } from "vitest"
import { fsCodeInWords, fsErrorReason } from "../src/index.js"

describe("fsErrorReason", () => {
  it("says what a known code means, without the stack or syscall", () => {
    const error = Object.assign(new Error("ENOENT: no such file or directory, open '/x/y'"), {
      code: "ENOENT",
    })
    expect(fsErrorReason(error)).toBe("no such file or directory")
    expect(fsErrorReason({ code: "EACCES" })).toBe("permission denied")
    expect(fsErrorReason({ code: "EPERM" })).toBe("permission denied")
    expect(fsErrorReason({ code: "ENOTDIR" })).toBe("a part of the path is a file, not a directory")
  })

  it("gives another error's own message, a bare code as it is, and anything else as text", () => {
    expect(fsErrorReason(Object.assign(new Error("EBUSY: resource busy"), { code: "EBUSY" }))).toBe(
      "EBUSY: resource busy",
    )
    expect(fsErrorReason({ code: "EIO" })).toBe("EIO")
    expect(fsErrorReason("gone")).toBe("gone")
    expect(fsErrorReason(null)).toBe("null")
  })
})

describe("fsCodeInWords", () => {
  it("puts the code after its words, and gives a code without words alone", () => {
    expect(fsCodeInWords("ENOENT")).toBe("no such file or directory (ENOENT)")
    expect(fsCodeInWords("EACCES")).toBe("permission denied (EACCES)")
    expect(fsCodeInWords("EIO")).toBe("EIO")
  })
})
