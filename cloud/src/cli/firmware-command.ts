import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import {
  FieldgateError,
  FirmwareManifest,
  isSemver,
  SchemaValidator,
  type SignedManifest,
  verifyManifestSignature,
} from "@fieldgate/shared";
import cliProgress from "cli-progress";
import { Command } from "commander";
import {
  firmwareKeyFiles,
  generateFirmwareKey,
  retireFirmwareKey,
  rotateFirmwareKey,
  signManifest,
} from "../firmware/firmware-keys.js";
import { publicKeyOf, readPemFile, readPrivateKeyFile } from "../pki/key-files.js";
import { type CliIo, clientFor, confirm, wantsJson, withConnection, writeFlagFile } from "./cli-support.js";
import { renderFields, renderTable } from "./table.js";

interface ImageView {
  name: string;
  version: string;
  compatible: string[];
  size: number;
  sha256: string;
  minAgentVersion?: string;
  keyId: string;
  created: string;
  inUse: boolean;
}

interface ImageOptions {
  name?: string;
  version?: string;
  compatible?: string;
  minAgentVersion?: string;
}

const SIGNED_MANIFEST_HEADER = "x-fieldgate-signed-manifest";

/** `fieldgate-cloud firmware …`: the signing key, signed images in the store, offline signing. */
export function firmwareCommand(io: CliIo): Command {
  const print = io.out;
  const clientOf = clientFor(io);
  const fw = new Command("firmware").description("firmware images: signing key, upload, list, show, delete");
  const validator = new SchemaValidator();

  const keyFileOf = (opts: { dataDir?: string; keyFile?: string }) =>
    path.resolve(
      opts.keyFile ??
        io.env.FIELDGATE_FIRMWARE_SIGNING_KEY ??
        firmwareKeyFiles(path.resolve(opts.dataDir ?? io.env.FIELDGATE_DATA_DIR ?? "./data")).privateKey,
    );
  const keyFlags = (c: Command) =>
    c
      .option("--data-dir <dir>", "the cloud's data directory (env FIELDGATE_DATA_DIR; default ./data)")
      .option(
        "--key-file <file>",
        "the signing key file, as given to serve (env FIELDGATE_FIRMWARE_SIGNING_KEY; default <data-dir>/firmware-signing.key)",
      )
      .option("--json", "print JSON");
  // A running cloud reads the key files again when they change, and devices fetch the trusted keys
  // before each update: none of these commands needs a restart.
  const trustLine = "Enrolled devices fetch the trusted keys over mTLS before their next update; no restart is needed.";

  keyFlags(
    fw
      .command("keygen")
      .description("create the Ed25519 firmware signing key (0600), separate from the CA; never overwrites"),
  ).action((_o: unknown, cmd: Command) => {
    const opts = cmd.optsWithGlobals<{ dataDir?: string; keyFile?: string; json?: boolean }>();
    const keyFile = keyFileOf(opts);
    const { publicKeyPem, publicKeyFile, keyId } = generateFirmwareKey(keyFile);
    if (opts.json) return print(JSON.stringify({ privateKeyFile: keyFile, publicKeyFile, publicKeyPem, keyId }));
    print(
      [
        `private key (mode 0600): ${keyFile}`,
        `public key:              ${publicKeyFile}`,
        `key id:                  ${keyId}`,
        "",
        publicKeyPem.trimEnd(),
        "",
        trustLine,
        "To sign offline, keep the private key off the cloud host and leave only the .pub file there",
        "(firmware-images/README.md).",
      ].join("\n"),
    );
  });

  keyFlags(
    fw
      .command("rotate")
      .description("replace the signing key; the old one stays trusted for the images it signed until retired")
      .option("--public-key <file>", "offline signing: install this public key (made offline) as the new one"),
  ).action((_o: unknown, cmd: Command) => {
    const opts = cmd.optsWithGlobals<{ dataDir?: string; keyFile?: string; json?: boolean; publicKey?: string }>();
    const keyFile = keyFileOf(opts);
    const offline =
      opts.publicKey === undefined
        ? undefined
        : readPemFile(path.resolve(opts.publicKey), {
            field: "public-key",
            fix: "Pass the public key (.pub) of the key made offline",
          });
    const rotated = rotateFirmwareKey(keyFile, offline);
    if (opts.json) return print(JSON.stringify(rotated));
    print(
      [
        `new signing key ${rotated.keyId} (${rotated.publicKeyFile}); ${rotated.previousKeyId} is rotated out`,
        `and still trusted for the images it signed. Retire it once none is needed: firmware retire ${rotated.previousKeyId}`,
        trustLine,
      ].join("\n"),
    );
  });

  keyFlags(
    fw
      .command("retire <keyId>")
      .description("stop trusting a rotated-out key: devices then refuse the images it signed"),
  ).action((keyId: string, _o: unknown, cmd: Command) => {
    const opts = cmd.optsWithGlobals<{ dataDir?: string; keyFile?: string; json?: boolean }>();
    const trusted = retireFirmwareKey(keyFileOf(opts), keyId);
    if (opts.json) return print(JSON.stringify({ retired: keyId, trusted: trusted.map((k) => k.keyId) }));
    print(
      `retired ${keyId}; trusted keys: ${trusted.map((k) => `${k.keyId}${k.signing ? " (signing)" : ""}`).join(", ")}\n${trustLine}`,
    );
  });

  const imageFlags = (c: Command) =>
    c
      .option("--name <name>", "image name")
      .option("--version <semver>", "image version (semver)")
      .option("--compatible <types>", "device type firmware-compat ids, comma-separated")
      .option("--min-agent-version <semver>", "the oldest agent that may install it");

  imageFlags(
    fw
      .command("manifest <file>")
      .description("for offline signing: write the unsigned manifest of an image (size, sha256, created)"),
  )
    .option("--out <file>", "write here instead of stdout")
    .action(async (file: string, opts: ImageOptions & { out?: string }) => {
      const { size, sha256 } = await hashFile(file, "file");
      const manifest = validator.parse(
        FirmwareManifest,
        {
          v: 1,
          ...required(opts),
          size,
          sha256,
          created: new Date().toISOString(),
          ...(opts.minAgentVersion !== undefined && { minAgentVersion: opts.minAgentVersion }),
        },
        "manifest",
      );
      output(print, opts.out, `${JSON.stringify(manifest, null, 2)}\n`);
    });

  fw.command("sign-manifest")
    .description("on the offline machine: sign a manifest with the firmware signing key")
    .requiredOption("--manifest <file>", "the manifest from `firmware manifest`")
    .requiredOption("--key <file>", "the Ed25519 firmware signing key")
    .option("--out <file>", "write the signed manifest here instead of stdout")
    .action((opts: { manifest: string; key: string; out?: string }) => {
      const manifest = validator.parse(FirmwareManifest, readJsonFile(opts.manifest, "manifest"), "manifest");
      const key = readPrivateKeyFile(path.resolve(opts.key), {
        field: "key",
        fix: "Pass the Ed25519 private key `firmware keygen` wrote (not its .pub)",
      });
      const signed = signManifest(manifest, key.export({ type: "pkcs8", format: "pem" }).toString());
      output(print, opts.out, `${JSON.stringify(signed, null, 2)}\n`);
    });

  withConnection(
    imageFlags(
      fw
        .command("upload <file>")
        .description("stream an image to the cloud, which hashes, stores and signs its manifest"),
    ).option("--signature <file>", "a manifest signed offline (`firmware sign-manifest`); its fields fill the flags"),
  ).action(async (file: string, opts: ImageOptions & { signature?: string }, cmd: Command) => {
    imageSize(file);
    let signed: SignedManifest | undefined;
    let image = opts;
    if (opts.signature) {
      signed = readJsonFile(opts.signature, "signature") as unknown as SignedManifest;
      const m = signed.manifest ?? {};
      image = {
        name: opts.name ?? m.name,
        version: opts.version ?? m.version,
        compatible: opts.compatible ?? m.compatible?.join(","),
        minAgentVersion: opts.minAgentVersion ?? m.minAgentVersion,
      };
    }
    const { name, version, compatible } = required(image);
    const query = new URLSearchParams({ name, version, compatible: compatible.join(",") });
    if (image.minAgentVersion) query.set("minAgentVersion", image.minAgentVersion);
    const json = wantsJson(cmd);
    const bar =
      io.stderr.isTTY && !json
        ? new cliProgress.SingleBar(
            {
              format: "uploading [{bar}] {percentage}% {value}/{total} bytes",
              stream: io.stderr as NodeJS.WriteStream,
            },
            cliProgress.Presets.shades_classic,
          )
        : undefined;
    bar?.start(imageSize(file), 0);
    try {
      const result = await clientOf(cmd).upload<ImageView>(
        file,
        `/api/v1/firmware?${query}`,
        (sent) => bar?.update(sent),
        signed ? { [SIGNED_MANIFEST_HEADER]: Buffer.from(JSON.stringify(signed)).toString("base64") } : {},
      );
      bar?.stop();
      print(
        json
          ? JSON.stringify(result, null, 2)
          : `uploaded ${result.name}@${result.version}: ${result.size} bytes, sha256 ${result.sha256}, key ${result.keyId}`,
      );
    } finally {
      bar?.stop();
    }
  });

  withConnection(fw.command("list").description("list images")).action(async (_o: unknown, cmd: Command) => {
    const { items } = await clientOf(cmd).request<{ items: ImageView[] }>("GET", "/api/v1/firmware");
    if (wantsJson(cmd)) return print(JSON.stringify(items, null, 2));
    print(
      renderTable(
        ["NAME", "VERSION", "COMPATIBLE", "SIZE", "SHA256", "CREATED", "IN USE"],
        items.map((i) => [
          i.name,
          i.version,
          i.compatible.join(","),
          String(i.size),
          i.sha256.slice(0, 12),
          i.created,
          i.inUse ? "yes" : "no",
        ]),
      ),
    );
  });

  withConnection(fw.command("show <name@version>").description("show an image and its signed manifest")).action(
    async (ref: string, _o: unknown, cmd: Command) => {
      const { name, version } = parseRef(ref);
      const shown = await clientOf(cmd).request<{ image: ImageView; signed: SignedManifest }>(
        "GET",
        `/api/v1/firmware/${encodeURIComponent(name)}/${encodeURIComponent(version)}`,
      );
      if (wantsJson(cmd)) return print(JSON.stringify(shown, null, 2));
      const i = shown.image;
      print(
        renderFields([
          ["name", i.name],
          ["version", i.version],
          ["compatible", i.compatible.join(", ")],
          ["size", String(i.size)],
          ["sha256", i.sha256],
          ["min agent", i.minAgentVersion ?? "-"],
          ["created", i.created],
          ["key id", i.keyId],
          ["signature", shown.signed.signature],
          ["in use", i.inUse ? "yes" : "no"],
        ]),
      );
    },
  );

  withConnection(
    fw.command("delete <name@version>").description("delete an image no active rollout uses").option("--yes"),
  ).action(async (ref: string, opts: { yes?: boolean }, cmd: Command) => {
    const { name, version } = parseRef(ref);
    if (!opts.yes) await confirm(io, `Delete ${name}@${version}? Type its name@version to confirm: `, ref);
    await clientOf(cmd).request(
      "DELETE",
      `/api/v1/firmware/${encodeURIComponent(name)}/${encodeURIComponent(version)}`,
    );
    print(`deleted ${name}@${version}`);
  });

  fw.command("verify-manifest")
    .description("check a signed manifest against a public key")
    .requiredOption("--manifest <file>", "a signed manifest")
    .requiredOption("--public-key <file>", "the firmware public key")
    .action((opts: { manifest: string; publicKey: string }) => {
      const signed = readJsonFile(opts.manifest, "manifest") as SignedManifest;
      const publicKey = readPemFile(path.resolve(opts.publicKey), {
        field: "public-key",
        fix: "Pass the firmware public key (the .pub beside the signing key)",
      });
      if (!publicKeyOf(publicKey)) {
        throw new FieldgateError("VALIDATION_FAILED", `${opts.publicKey} holds no public key`, "public-key");
      }
      if (!verifyManifestSignature(signed, publicKey)) {
        throw new FieldgateError("FIRMWARE_SIGNATURE_INVALID", undefined, "manifest");
      }
      print("signature OK");
    });

  return fw;
}

function required(opts: ImageOptions): { name: string; version: string; compatible: string[] } {
  if (!opts.name) throw new FieldgateError("VALIDATION_FAILED", "--name is required", "name");
  if (!opts.version || !isSemver(opts.version))
    throw new FieldgateError("VALIDATION_FAILED", "--version must be a semver like 1.2.3", "version");
  const compatible = (opts.compatible ?? "")
    .split(",")
    .map((c) => c.trim())
    .filter(Boolean);
  if (compatible.length === 0)
    throw new FieldgateError("VALIDATION_FAILED", "--compatible needs at least one device type id", "compatible");
  return { name: opts.name, version: opts.version, compatible };
}

function parseRef(ref: string): { name: string; version: string } {
  const at = ref.lastIndexOf("@");
  if (at <= 0) throw new FieldgateError("VALIDATION_FAILED", "expected name@version", "image");
  return { name: ref.slice(0, at), version: ref.slice(at + 1) };
}

async function hashFile(file: string, field: string): Promise<{ size: number; sha256: string }> {
  imageSize(file, field);
  const hash = createHash("sha256");
  let size = 0;
  for await (const chunk of fs.createReadStream(file)) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { size, sha256: hash.digest("hex") };
}

/** The size of an image file; a missing one, or a directory, is CONFIG_INVALID naming it. */
function imageSize(file: string, field = "file"): number {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new FieldgateError("CONFIG_INVALID", `image ${JSON.stringify(file)}: cannot read it (${why})`, field);
  }
  if (!stat.isFile()) {
    throw new FieldgateError("CONFIG_INVALID", `image ${JSON.stringify(file)}: not a regular file`, field);
  }
  return stat.size;
}

function readJsonFile(file: string, field: string): Record<string, unknown> {
  try {
    const parsed = JSON.parse(fs.readFileSync(file, "utf8")) as unknown;
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("not a JSON object");
    return parsed as Record<string, unknown>;
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new FieldgateError(
      "VALIDATION_FAILED",
      `--${field} ${JSON.stringify(file)}: cannot read it as JSON (${why})`,
      field,
    );
  }
}

function output(print: (text: string) => void, file: string | undefined, text: string): void {
  if (file) writeFlagFile(file, "out", text);
  else print(text.trimEnd());
}
