// import.meta.url for the CommonJS bundle of the single executable.
export const __kvdeployImportMetaUrl = require("node:url").pathToFileURL(__filename).href
