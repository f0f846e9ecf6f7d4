// The version `changeset version` writes into package.json; the bundle inlines it.
import packageJson from "../package.json" with { type: "json" }

export const version: string = packageJson.version
