/**
 * An upper bound of the length `encodePfx` answers, from sizes alone: the core's
 * preflight uses it (the PfxCodec port's `maxEncodedBytes`) to decide Key Vault's
 * 25 KB rule without building the PFX, so the deploy can build it later, while the
 * snapshot read is on its way, or not at all when the certificate is unchanged.
 *
 * Every term below over-counts what `build()` in encodePfx.ts writes:
 * - each certificate: its DER plus its bag (SafeBag, certBag OID, CertBag, x509
 *   OID, two explicit tags, the OCTET STRING): at most 7 headers of 5 bytes and
 *   25 bytes of OIDs, counted as 64;
 * - the key: its PKCS#8 DER, plus 256 for the canonical re-encoding the analysis
 *   may hand to the builder (an EC key gains its public point, 133 bytes for
 *   P-521), plus one cipher block of padding;
 * - the attributes (written on the leaf and on the key bag): friendlyName as a
 *   BMPString (2 bytes per UTF-16 unit) and the 20-byte localKeyID, twice;
 * - everything else (the PBES2 or PBES1 algorithm identifiers with salts and
 *   IVs, the encrypted and plain ContentInfos, the AuthenticatedSafe, the
 *   MacData with its digest, salt and iteration count, the PFX header): well
 *   under 1,024 bytes.
 * The property test in test/sizeBound.test.ts checks bound >= actual for every
 * key type, chain length, profile and friendly name it draws.
 */
import type { CertificateMaterial, PfxEncodeOptions } from "@kvdeploy/core"
import * as Redacted from "effect/Redacted"

const perCertificate = 64
const keySlack = 256 + 16
const perAttributeSet = 96
const fixedOverhead = 1024

export const maxEncodedBytes = (material: CertificateMaterial, options: PfxEncodeOptions): number => {
  let certificates = material.leaf.byteLength + perCertificate
  for (const der of material.chain) certificates += der.byteLength + perCertificate
  const friendlyName = options.friendlyName === undefined ? 0 : 2 * options.friendlyName.length + 16
  const attributes = 2 * (perAttributeSet + friendlyName)
  return certificates + Redacted.value(material.key).byteLength + keySlack + attributes + fixedOverhead
}
