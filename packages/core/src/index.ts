export * from "./audit.js"
export * from "./consumers.js"
export * from "./contentType.js"
export * from "./DeployPolicy.js"
export * from "./deploy.js"
export * from "./environment.js"
export * from "./fsErrors.js"
export * from "./judgeExisting.js"
export * from "./material.js"
export * from "./outcome.js"
export * from "./ports/AuditLog.js"
export * from "./ports/Metrics.js"
export * from "./ports/PfxCodec.js"
export * from "./ports/Vault.js"
export {
  checkBuiltPem,
  isOlderThanServed,
  materialProblems,
  materialWarnings,
  olderThanServed,
  type PreflightPassed,
  type PreflightRejected,
  preflight,
  servedVersionWarning,
  transportIterations,
  transportPfxOptions,
} from "./preflight.js"
export * from "./readAtMost.js"
export * from "./request.js"
export { requestShapeProblems } from "./requestShape.js"
export { type PreviousKeyFit, previousKeyFit } from "./rollback.js"
export * from "./shownValues.js"
export * from "./spanText.js"
export * from "./TargetConfig.js"
export * from "./tags.js"
export * from "./untilWritten.js"
export * from "./ValidateOnly.js"
