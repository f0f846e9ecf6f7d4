export * from "./CredentialUnavailable.js"
export * from "./credential.js"
export * from "./probe.js"
export * from "./settings.js"
