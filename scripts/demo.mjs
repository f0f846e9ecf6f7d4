// Placeholder until the CLI exists: replaced by `kvdeploy demo`.
console.log("kvdeploy demo: not built yet")
