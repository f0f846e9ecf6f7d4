/**
 * The serial azure-kv reads from a version's certificate must be the one
 * @kvdeploy/pkcs12 states for the new certificate, byte for byte: verify
 * compares them, and a difference would roll back a good deploy.
 */
import { describe, expect, it } from "@effect/vitest"
import { certificateFacts } from "@kvdeploy/pkcs12"
import { generateKey, issue } from "@kvdeploy/pkcs12/testing"
import * as Effect from "effect/Effect"
import fc from "fast-check"
import {
  serialHexOf,
  serialHexReader,
  twosComplementHex,
  withSerialReadOnDemand,
} from "../src/certificateSerial.js"

describe("serialHexOf", () => {
  it("agrees with pkcs12's certificate facts for any serial (leading zeros, high bit set, 1 to 20 bytes)", async () => {
    const key = await generateKey("P-256")
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 20 }), async (bytes) => {
        const serialNumber = Buffer.from(bytes).toString("hex")
        const der = await issue({ subject: "CN=serial.example.test", key, serialNumber })
        const facts = await Effect.runPromise(certificateFacts(der))
        expect(serialHexOf(der)).toBe(facts.serialHex)
      }),
      { numRuns: 60 },
    )
  })

  it("gives a negative serial its DER content bytes (minimal two's complement)", () => {
    expect(twosComplementHex("1")).toBe("ff")
    expect(twosComplementHex("80")).toBe("80")
    expect(twosComplementHex("81")).toBe("ff7f")
    expect(twosComplementHex("ff")).toBe("ff01")
    expect(twosComplementHex("100")).toBe("ff00")
  })

  it("answers undefined for bytes that are not a certificate", () => {
    expect(serialHexOf(new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x05]))).toBeUndefined()
    expect(serialHexOf(new Uint8Array())).toBeUndefined()
  })
})

describe("serialHexReader", () => {
  it("answers what serialHexOf answers, for certificates read again and for new ones, past its size", async () => {
    const key = await generateKey("P-256")
    const ders = await Promise.all(
      ["01", "00ff", "7f", "80", "1234567890", "0a"].map((serialNumber) =>
        issue({ subject: "CN=serial.example.test", key, serialNumber }),
      ),
    )
    const read = serialHexReader(3)
    // Each read twice in a row, then all again in another order (the first ones have left its memory).
    for (const der of ders) {
      expect(read(der)).toBe(serialHexOf(der))
      expect(read(der)).toBe(serialHexOf(der))
    }
    for (const der of [...ders].reverse()) expect(read(der)).toBe(serialHexOf(der))
    expect(read(new Uint8Array([0x30, 0x00]))).toBeUndefined()
  })

  it("keeps its own copy: a certificate changed in place after a read is read anew", async () => {
    const key = await generateKey("P-256")
    const der = await issue({ subject: "CN=serial.example.test", key, serialNumber: "4242" })
    const read = serialHexReader()
    expect(read(der)).toBe("4242")
    // The serial's content bytes rewritten in the same buffer (OpenSSL's parse does not check the signature).
    const at = Buffer.from(der.buffer, der.byteOffset, der.byteLength).indexOf(
      Buffer.from([0x02, 0x02, 0x42, 0x42]),
    )
    expect(at).toBeGreaterThan(0)
    der.set([0x43, 0x43], at + 2)
    expect(read(der)).toBe("4343")
  })

  it("answers a remembered serial for the same bytes only, and forgets it like a read one", async () => {
    const key = await generateKey("P-256")
    const [imported, other, third] = await Promise.all(
      ["0badc0de", "0c0ffee0", "7e57"].map((serialNumber) =>
        issue({ subject: "CN=remember.example.test", key, serialNumber }),
      ),
    )
    const read = serialHexReader(2)
    // A stated value that no parse would give shows that the answer came from the memory.
    read.remember(imported!, "5747ed")
    expect(read(new Uint8Array(imported!))).toBe("5747ed")
    expect(read.known(imported!)).toBe("5747ed")
    // Other bytes are parsed, never answered from another certificate's entry; `known` never parses.
    expect(read.known(other!)).toBeUndefined()
    expect(read(other!)).toBe("0c0ffee0")
    expect(read.known(other!)).toBe("0c0ffee0")
    expect(read(imported!)).toBe("5747ed")
    // Remembering again replaces the entry; a copy is kept, so the caller's buffer may change.
    const mine = new Uint8Array(imported!)
    read.remember(mine, "0badc0de")
    mine.fill(0)
    expect(read(imported!)).toBe("0badc0de")
    // Past its size the remembered entry is gone: the bytes are parsed again.
    read.remember(imported!, "5747ed")
    expect(read(other!)).toBe("0c0ffee0")
    expect(read(third!)).toBe("7e57")
    expect(read.known(imported!)).toBeUndefined()
    expect(read(imported!)).toBe("0badc0de")
    // Bytes that are not a certificate are remembered as having no serial: their entry takes a
    // place in the memory, so with the junk and one more certificate read the imported one's is gone.
    const junk = new Uint8Array([0x30, 0x00])
    read.remember(imported!, "5747ed")
    expect(read(junk)).toBeUndefined()
    expect(read(other!)).toBe("0c0ffee0")
    expect(read.known(imported!)).toBeUndefined()
    expect(read.known(junk)).toBeUndefined()
  })
})

describe("withSerialReadOnDemand", () => {
  it("reads the serial only when asked, once, as a plain enumerable field", async () => {
    const key = await generateKey("P-256")
    const der = await issue({ subject: "CN=lazy.example.test", key, serialNumber: "0abc12" })
    const reads: Array<Uint8Array> = []
    const read = (d: Uint8Array) => {
      reads.push(d)
      return serialHexOf(d)
    }
    const version = withSerialReadOnDemand({ versionId: "v1", serialHex: "" }, der, read)
    expect(reads).toHaveLength(0)
    expect(Object.keys(version)).toEqual(["versionId", "serialHex"])
    expect(reads).toHaveLength(0)
    expect(version.serialHex).toBe("0abc12")
    expect(version.serialHex).toBe("0abc12")
    expect({ ...version }).toEqual({ versionId: "v1", serialHex: "0abc12" })
    expect(reads).toEqual([der])
  })

  it('gives a spread copy the serial without an earlier read, and "" for bytes that are not a certificate', () => {
    const copy = { ...withSerialReadOnDemand({ serialHex: "" }, new Uint8Array([1, 2, 3]), serialHexOf) }
    expect(copy).toEqual({ serialHex: "" })
  })
})
