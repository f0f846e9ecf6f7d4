/** The emulator's grants: permission and role names as an operator or a test writes them. */
import { describe, expect, it } from "vitest"
import { Directory } from "../src/directory.js"

describe("Directory.setPermissions", () => {
  it("takes a built-in role's permissions, and refuses a name of Object.prototype as an unknown role", () => {
    const directory = new Directory("00000000-0000-0000-0000-000000000001", "https://issuer.example")
    directory.setPermissions("client", ["Key Vault Certificate User"])
    expect(directory.permissionsOf("client")).toContain("certificates/get")
    for (const name of ["constructor", "toString", "__proto__"])
      expect(() => directory.setPermissions("client", [name])).toThrow(`unknown permission or role: ${name}`)
  })
})
