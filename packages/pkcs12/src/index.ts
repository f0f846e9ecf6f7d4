/**
 * @kvdeploy/pkcs12: PEM/DER parsing, key normalisation, key/certificate match,
 * chain ordering and PKCS#12 encode/decode, all in memory.
 */
export { MaterialInvalid, PfxDecodeError, PfxEncodeError } from "@kvdeploy/core"
export { OPENSSL_CANNOT_READ_EITHER } from "./algorithms.js"
export { canonicalSerial, certificateFacts, nodeCertificate, x5tOf } from "./certificateFacts.js"
export { type DecodePfxOptions, decodePfx, decodePfxCertificates } from "./decodePfx.js"
export { encodePem } from "./encodePem.js"
export { defaultIterations, encodePfx, type Pkcs12EncodeOptions } from "./encodePfx.js"
export { inspectMaterial } from "./inspect.js"
export { keyUsageBits } from "./keyUsage.js"
export { layer } from "./layer.js"
export { chooseLeaf, issuedOneOf, keyOwner, type LeafAndChain, materialFromPem } from "./leaf.js"
export { materialText, type ParsedPem, type ParsePemOptions, parsePem } from "./pem.js"
export { checkKeyPair, type KeyPairCheck, rsaInconsistencyWords } from "./privateKey.js"
export { type ServedExpiry, type ServedExpiryOptions, servedExpiry } from "./servedExpiry.js"
export { maxEncodedBytes } from "./sizeBound.js"
