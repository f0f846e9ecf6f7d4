/**
 * fast-check generators for property tests of anything built on the Vault
 * port (imported from `@kvdeploy/core/test/arbitraries`; needs fast-check).
 */
import fc from "fast-check"
import type { VaultOperation } from "../ports/Vault.js"
import type { FailKind, Fault } from "./InMemoryVault.js"
import { type IssuedMaterial, issue, makeAuthority, type SyntheticAuthority } from "./SyntheticPki.js"

const defaultAuthority = makeAuthority("arbitraries")

/** Synthetic material: random seed, key type and size (Key Vault's and some it refuses), validity. */
export const arbIssuedMaterial = (
  issuer: SyntheticAuthority = defaultAuthority,
): fc.Arbitrary<IssuedMaterial> =>
  fc
    .record({
      seed: fc.string({ minLength: 1, maxLength: 12 }),
      key: fc.oneof(
        fc.constantFrom(2048, 3072, 4096, 1024).map((keySize) => ({ keyType: "RSA" as const, keySize })),
        fc
          .constantFrom("P-256" as const, "P-384" as const, "P-521" as const, "P-256K" as const)
          .map((curve) => ({
            keyType: "EC" as const,
            curve,
          })),
      ),
      notBeforeDays: fc.integer({ min: -400, max: 5 }),
      lifetimeDays: fc.integer({ min: 1, max: 800 }),
    })
    .map(({ seed, key, notBeforeDays, lifetimeDays }) => {
      const day = 86_400_000
      return issue({
        seed,
        issuer,
        ...key,
        notBefore: new Date(notBeforeDays * day),
        notAfter: new Date((notBeforeDays + lifetimeDays) * day),
      })
    })

export const arbFailKind: fc.Arbitrary<FailKind> = fc.constantFrom(
  "NotFound",
  "Forbidden",
  "Throttled",
  "Unavailable",
  "UnavailableRetried",
  "Rejected",
  "Ambiguous",
)

/** One scripted fault; write operations also get "after write" (ambiguous) and "altered" faults. */
export const arbFault = (
  options: { readonly write: boolean; readonly foreignMaterial?: ReadonlyArray<IssuedMaterial> } = {
    write: false,
  },
): fc.Arbitrary<Fault> => {
  const foreign = options.foreignMaterial ?? []
  return fc.oneof(
    { weight: 4, arbitrary: fc.constant<Fault>({ _tag: "Pass" }) },
    { weight: 3, arbitrary: arbFailKind.map((kind): Fault => ({ _tag: "Fail", kind })) },
    ...(options.write ? [] : [{ weight: 1, arbitrary: fc.constant<Fault>({ _tag: "StaleRead" }) }]),
    ...(foreign.length === 0
      ? []
      : [
          {
            weight: 1,
            arbitrary: fc
              .constantFrom(...foreign)
              .map((m): Fault => ({ _tag: "ForeignImport", material: m.material })),
          },
        ]),
    ...(options.write
      ? [
          { weight: 2, arbitrary: fc.constant<Fault>({ _tag: "AfterWrite" }) },
          {
            weight: 2,
            arbitrary: fc.constantFrom<Fault>(
              { _tag: "Alter", change: "disable" },
              { _tag: "Alter", change: "drop-tags" },
              { _tag: "Alter", change: "other-x5t" },
              { _tag: "Alter", change: "other-serial" },
            ),
          },
        ]
      : []),
  )
}

const writes: ReadonlySet<VaultOperation> = new Set(["importVersion", "recoverDeleted"])

/** A fault schedule: up to `maxPerOperation` faults queued for each operation. */
export const arbFaultSchedule = (
  options: {
    readonly maxPerOperation?: number
    readonly foreignMaterial?: ReadonlyArray<IssuedMaterial>
  } = {},
): fc.Arbitrary<Record<VaultOperation, Array<Fault>>> => {
  const ops: ReadonlyArray<VaultOperation> = [
    "getLatest",
    "getVersion",
    "listVersions",
    "importVersion",
    "getVersionSecret",
    "getDeleted",
    "recoverDeleted",
  ]
  return fc.record(
    Object.fromEntries(
      ops.map((op) => [
        op,
        fc.array(
          arbFault(
            options.foreignMaterial === undefined
              ? { write: writes.has(op) }
              : { write: writes.has(op), foreignMaterial: options.foreignMaterial },
          ),
          { maxLength: options.maxPerOperation ?? 6 },
        ),
      ]),
    ) as Record<VaultOperation, fc.Arbitrary<Array<Fault>>>,
  )
}
