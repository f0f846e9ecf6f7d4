/**
 * The independent PKCS#12 readers and writers the interop tests run:
 * OpenSSL 3, Java keytool, Python `cryptography`, node-forge. Key material
 * goes to them through pipes; keytool, which insists on a path, gets a file
 * in /dev/shm (memory) that is deleted right after.
 *
 * When CI=true a missing tool makes the tests fail (they run and the spawn
 * fails, and a presence test names the tool). Without CI they are skipped
 * with a visible message.
 */
import { spawn, spawnSync } from "node:child_process"
import { randomBytes, X509Certificate } from "node:crypto"
import { readFileSync, rmSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import type * as Forge from "node-forge"
import * as pkijs from "pkijs"

// node-forge is CommonJS without named exports Node can detect.
const forge = createRequire(import.meta.url)("node-forge") as typeof Forge

export const ci = process.env.CI === "true"

const probe = (command: string, args: ReadonlyArray<string>): boolean => {
  const r = spawnSync(command, args, { stdio: "ignore", timeout: 30_000 })
  return r.error === undefined && r.status === 0
}

export const available = {
  openssl: probe("openssl", ["version"]),
  keytool: probe("keytool", ["-help"]),
  python: probe("python3", ["-c", "import cryptography.hazmat.primitives.serialization.pkcs12"]),
} as const

export type Tool = keyof typeof available

export const missingTools = (Object.keys(available) as Array<Tool>).filter((t) => !available[t])

/** Run the tests of `tool` when it is present, or when CI=true (so they fail loudly). */
export const shouldRun = (tool: Tool): boolean => {
  if (available[tool] || ci) return true
  console.warn(
    `\n!!! SKIPPING ${tool} interop tests: ${tool} is not installed (they fail instead when CI=true)\n`,
  )
  return false
}

export interface RunResult {
  readonly code: number | null
  readonly stdout: Buffer
  readonly stderr: string
}

export const run = (
  command: string,
  args: ReadonlyArray<string>,
  options: {
    readonly input?: Uint8Array | string
    /** Written to the child's fd 3 (for a second input, read through bash process substitution). */
    readonly fd3?: Uint8Array | string
    readonly env?: Record<string, string>
    readonly timeoutMs?: number
  } = {},
): Promise<RunResult> =>
  new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      env: { ...process.env, ...options.env },
      stdio: options.fd3 === undefined ? ["pipe", "pipe", "pipe"] : ["pipe", "pipe", "pipe", "pipe"],
      timeout: options.timeoutMs ?? 60_000,
    })
    const out: Array<Buffer> = []
    const err: Array<Buffer> = []
    child.stdout?.on("data", (d: Buffer) => out.push(d))
    child.stderr?.on("data", (d: Buffer) => err.push(d))
    child.on("error", reject)
    child.on("close", (code) =>
      resolve({ code, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString("utf8") }),
    )
    child.stdin?.on("error", () => {})
    child.stdin?.end(options.input ?? "")
    const extra = child.stdio[3]
    if (options.fd3 !== undefined && extra !== null && extra !== undefined && "end" in extra) {
      extra.on("error", () => {})
      extra.end(options.fd3)
    }
  })

export const mustSucceed = (what: string, r: RunResult): RunResult => {
  if (r.code !== 0) throw new Error(`${what} exited ${r.code}: ${r.stderr.slice(0, 2000)}`)
  return r
}

const PEM_BLOCK = /-----BEGIN ([A-Z ]+)-----[\s\S]*?-----END \1-----/g

const derOfPem = (pem: string): Uint8Array =>
  new Uint8Array(Buffer.from(pem.replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, ""), "base64"))

/** `openssl pkcs12` output: the certificate preceded by a localKeyID attribute is the leaf. */
export const parseOpensslOutput = (
  text: string,
): { leaf?: Uint8Array; chain: Array<Uint8Array>; keyPem?: string } => {
  let last = 0
  let leaf: Uint8Array | undefined
  let keyPem: string | undefined
  const chain: Array<Uint8Array> = []
  for (const m of text.matchAll(PEM_BLOCK)) {
    const before = text.slice(last, m.index)
    last = (m.index ?? 0) + m[0].length
    if (m[1] === "CERTIFICATE") {
      if (before.includes("localKeyID") && leaf === undefined) leaf = derOfPem(m[0])
      else chain.push(derOfPem(m[0]))
    } else if (m[1]?.includes("PRIVATE KEY")) keyPem = m[0]
  }
  return { ...(leaf === undefined ? {} : { leaf }), chain, ...(keyPem === undefined ? {} : { keyPem }) }
}

export const opensslRead = async (pfx: Uint8Array, password: string, legacy: boolean) => {
  const r = mustSucceed(
    "openssl pkcs12 (read)",
    await run(
      "openssl",
      ["pkcs12", "-info", "-nodes", "-passin", "env:PFXPW", ...(legacy ? ["-legacy"] : [])],
      {
        input: pfx,
        env: { PFXPW: password },
      },
    ),
  )
  const text = r.stdout.toString("utf8")
  return { ...parseOpensslOutput(text), info: r.stderr, text }
}

/**
 * `openssl pkcs12 -export` reads its input file twice (key, then certificates),
 * so certificates come on stdin and the key on fd 3, each through a bash
 * process substitution (a pipe: nothing is written to disk).
 */
export const opensslExport = async (
  certificatesPem: string,
  keyPem: string,
  password: string,
  legacy: boolean,
  /** `-certpbe` and `-keypbe` algorithm names, e.g. PBE-SHA1-RC2-128 (with `legacy`). */
  pbe?: { readonly cert: string; readonly key: string },
  /** `-macalg` digest name, e.g. sha512 (OpenSSL's default: sha256, sha1 with `legacy`), or `none` for `-nomac`. */
  macalg?: string,
  /** `-iter`: the key's and certificates' PBKDF iterations (OpenSSL's default: 2048). */
  iterations?: number,
): Promise<Uint8Array> => {
  // In this order: OpenSSL 3.0 turns the MAC back on for an `-iter` after `-nomac`, and `-nomac`
  // leaves the certificates unencrypted unless a `-certpbe` after it names a cipher.
  const pbeArgs = [
    ...(iterations === undefined ? [] : [`-iter ${iterations}`]),
    ...(macalg === undefined ? [] : [macalg === "none" ? "-nomac" : `-macalg ${macalg}`]),
    ...(pbe === undefined ? [] : [`-certpbe ${pbe.cert} -keypbe ${pbe.key}`]),
  ].join(" ")
  const r = mustSucceed(
    "openssl pkcs12 -export",
    await run(
      "bash",
      [
        "-c",
        `exec openssl pkcs12 -export -name from-openssl -passout env:PFXPW ${legacy ? "-legacy" : ""} ${pbeArgs} -in <(cat) -inkey <(cat <&3)`,
      ],
      { input: certificatesPem, fd3: keyPem, env: { PFXPW: password } },
    ),
  )
  return new Uint8Array(r.stdout)
}

const PYTHON_READER = `
import sys, json, base64
from cryptography.hazmat.primitives.serialization import pkcs12, Encoding, PrivateFormat, NoEncryption
out = []
for job in json.load(sys.stdin):
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(base64.b64decode(job["pfx"]), job["password"].encode("utf-8"))
        out.append({
            "key": base64.b64encode(key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())).decode(),
            "leaf": base64.b64encode(cert.public_bytes(Encoding.DER)).decode(),
            "chain": [base64.b64encode(c.public_bytes(Encoding.DER)).decode() for c in extra],
        })
    except Exception as e:
        out.append({"error": type(e).__name__ + ": " + str(e)})
json.dump(out, sys.stdout)
`

export type PythonResult =
  | { readonly key: Uint8Array; readonly leaf: Uint8Array; readonly chain: ReadonlyArray<Uint8Array> }
  | { readonly error: string }

/** Read many PFX files in one Python process (its start-up is the slow part). */
export const pythonReadAll = async (
  jobs: ReadonlyArray<{ readonly pfx: Uint8Array; readonly password: string }>,
): Promise<Array<PythonResult>> => {
  const input = JSON.stringify(
    jobs.map((j) => ({ pfx: Buffer.from(j.pfx).toString("base64"), password: j.password })),
  )
  const r = mustSucceed(
    "python3 cryptography",
    await run("python3", ["-c", PYTHON_READER], { input, timeoutMs: 120_000 }),
  )
  const parsed = JSON.parse(r.stdout.toString("utf8")) as Array<
    { key: string; leaf: string; chain: Array<string> } | { error: string }
  >
  return parsed.map((p) =>
    "error" in p
      ? { error: p.error }
      : {
          key: new Uint8Array(Buffer.from(p.key, "base64")),
          leaf: new Uint8Array(Buffer.from(p.leaf, "base64")),
          chain: p.chain.map((c) => new Uint8Array(Buffer.from(c, "base64"))),
        },
  )
}

/** keytool is a JVM start each time; these flags halve it on a small machine. */
const fastJvm = ["-J-XX:TieredStopAtLevel=1", "-J-XX:+UseSerialGC", "-J-Xshare:auto"]

const shmPath = (): string => `/dev/shm/kvdeploy-pkcs12-test-${randomBytes(8).toString("hex")}.p12`

/** Run `f` with the bytes in a tmpfs file, always deleting it. */
const withShmFile = async <A>(bytes: Uint8Array | undefined, f: (path: string) => Promise<A>): Promise<A> => {
  const path = shmPath()
  if (bytes !== undefined) writeFileSync(path, bytes, { mode: 0o600 })
  try {
    return await f(path)
  } finally {
    rmSync(path, { force: true })
  }
}

export interface KeytoolListing {
  readonly entryType: string
  /** SHA-256 fingerprints of the entry's chain, lowercase hex, leaf first. */
  readonly chainSha256: ReadonlyArray<string>
}

export const keytoolList = (pfx: Uint8Array, password: string): Promise<KeytoolListing> =>
  withShmFile(pfx, async (path) => {
    const r = mustSucceed(
      "keytool -list",
      await run(
        "keytool",
        [...fastJvm, "-list", "-v", "-storetype", "PKCS12", "-keystore", path, "-storepass:env", "PFXPW"],
        {
          env: { PFXPW: password },
        },
      ),
    )
    const text = r.stdout.toString("utf8")
    const entries = text.match(/Entry type: (\w+)/g) ?? []
    if (entries.length !== 1) throw new Error(`keytool found ${entries.length} entries:\n${text}`)
    const entryType = /Entry type: (\w+)/.exec(text)?.[1] ?? ""
    const chainSha256 = [...text.matchAll(/SHA256: ([0-9A-F:]+)/g)].map((m) =>
      (m[1] ?? "").replaceAll(":", "").toLowerCase(),
    )
    return { entryType, chainSha256 }
  })

/**
 * `keytool -importcert -alias ALIAS` of `certificatePem` into a copy of the PFX (a trusted-certificate
 * entry beside its key entry, as a Tomcat or Spring keystore keeps an mTLS client CA): the new store.
 */
export const keytoolImportTrusted = (
  pfx: Uint8Array,
  password: string,
  alias: string,
  certificatePem: string,
): Promise<Uint8Array> =>
  withShmFile(pfx, async (path) => {
    mustSucceed(
      "keytool -importcert",
      await run(
        "keytool",
        [
          ...fastJvm,
          "-importcert",
          "-noprompt",
          "-alias",
          alias,
          "-storetype",
          "PKCS12",
          "-keystore",
          path,
          "-storepass:env",
          "PFXPW",
        ],
        { input: certificatePem, env: { PFXPW: password } },
      ),
    )
    return new Uint8Array(readFileSync(path))
  })

/** Let keytool re-write a PFX (read with Java, written with Java's encoder), in its default or legacy profile. */
export const keytoolRewrite = (pfx: Uint8Array, password: string, legacy: boolean): Promise<Uint8Array> =>
  withShmFile(pfx, (src) =>
    withShmFile(undefined, async (dest) => {
      mustSucceed(
        "keytool -importkeystore",
        await run(
          "keytool",
          [
            ...fastJvm,
            ...(legacy ? ["-J-Dkeystore.pkcs12.legacy"] : []),
            "-importkeystore",
            "-noprompt",
            "-srckeystore",
            src,
            "-srcstoretype",
            "PKCS12",
            "-srcstorepass:env",
            "PFXPW",
            "-destkeystore",
            dest,
            "-deststoretype",
            "PKCS12",
            "-deststorepass:env",
            "PFXPW",
          ],
          { env: { PFXPW: password } },
        ),
      )
      return new Uint8Array(readFileSync(dest))
    }),
  )

/** A key pair and self-signed certificate generated by keytool itself. */
export const keytoolGenerate = (
  keyalg: "RSA" | "EC",
  password: string,
  legacy: boolean,
): Promise<Uint8Array> =>
  withShmFile(undefined, async (path) => {
    mustSucceed(
      "keytool -genkeypair",
      await run(
        "keytool",
        [
          ...fastJvm,
          ...(legacy ? ["-J-Dkeystore.pkcs12.legacy"] : []),
          "-genkeypair",
          "-alias",
          "from-keytool",
          "-keyalg",
          keyalg,
          ...(keyalg === "RSA" ? ["-keysize", "2048"] : ["-groupname", "secp384r1"]),
          "-dname",
          "CN=keytool.example.test",
          "-validity",
          "30",
          "-storetype",
          "PKCS12",
          "-keystore",
          path,
          "-storepass:env",
          "PFXPW",
        ],
        { env: { PFXPW: password } },
      ),
    )
    return new Uint8Array(readFileSync(path))
  })

export const sha256Hex = (der: Uint8Array): string =>
  new X509Certificate(Buffer.from(der)).fingerprint256.replaceAll(":", "").toLowerCase()

/** The TBSCertificate bytes of a DER certificate: identifies a certificate across re-encodings of its outer wrapper. */
export const tbsOf = (der: Uint8Array): Uint8Array =>
  Uint8Array.from(pkijs.Certificate.fromBER(Uint8Array.from(der)).tbsView)

/** node-forge's PKCS#12 reader. Certificates are identified by TBS bytes, since forge re-encodes what it parses. */
export const forgeRead = (
  pfx: Uint8Array,
  password: string,
): {
  readonly key: Uint8Array
  readonly leafTbs: Uint8Array
  readonly chainTbs: ReadonlyArray<Uint8Array>
} => {
  const der = forge.util.createBuffer(Buffer.from(pfx).toString("binary"))
  const p12 = forge.pkcs12.pkcs12FromAsn1(forge.asn1.fromDer(der), password)
  const keyBagType = forge.pki.oids.pkcs8ShroudedKeyBag ?? ""
  const certBagType = forge.pki.oids.certBag ?? ""
  const keyBags = p12.getBags({ bagType: keyBagType })[keyBagType] ?? []
  const certBags = p12.getBags({ bagType: certBagType })[certBagType] ?? []
  if (keyBags.length !== 1) throw new Error(`forge found ${keyBags.length} key bags`)
  const keyBag = keyBags[0]
  const bytesOf = (a: Forge.asn1.Asn1): Uint8Array =>
    new Uint8Array(Buffer.from(forge.asn1.toDer(a).getBytes(), "binary"))
  const keyAsn1 =
    keyBag?.key != null
      ? forge.pki.wrapRsaPrivateKey(forge.pki.privateKeyToAsn1(keyBag.key as Forge.pki.rsa.PrivateKey))
      : keyBag?.asn1
  if (keyAsn1 === undefined) throw new Error("forge returned no key")
  const tbsOfBag = (bag: Forge.pkcs12.Bag): Uint8Array => {
    if (bag.cert != null)
      return bytesOf((bag.cert as unknown as { tbsCertificate: Forge.asn1.Asn1 }).tbsCertificate)
    if (bag.asn1 !== undefined) return tbsOf(bytesOf(bag.asn1))
    throw new Error("forge returned an empty certificate bag")
  }
  const leafBags = certBags.filter((b) => (b.attributes as Record<string, unknown>).localKeyId !== undefined)
  if (leafBags.length !== 1 || leafBags[0] === undefined)
    throw new Error(`forge found ${leafBags.length} leaf bags`)
  return {
    key: bytesOf(keyAsn1),
    leafTbs: tbsOfBag(leafBags[0]),
    chainTbs: certBags.filter((b) => !leafBags.includes(b)).map(tbsOfBag),
  }
}
