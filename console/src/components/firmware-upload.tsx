import { useState } from "preact/hooks";
import { type FirmwareImage, formatBytes, manifestFields } from "../lib/firmware";
import { base64Utf8, uploadFile } from "../lib/upload";
import { ErrorNotice } from "./page";

/** The header carrying an offline-signed manifest (base64 of its JSON), as `firmware upload --signature` sends it. */
const SIGNED_MANIFEST_HEADER = "x-fieldgate-signed-manifest";

/**
 * Uploads an image: the cloud hashes it and signs its manifest with its firmware key, or checks a
 * manifest signed offline (`firmware manifest` + `firmware sign-manifest`) against the bytes.
 */
export function FirmwareUpload(props: { onUploaded: (image: FirmwareImage) => void }) {
  const [file, setFile] = useState<File | null>(null);
  const [signed, setSigned] = useState<{ fileName: string; text: string } | null>(null);
  const [name, setName] = useState("");
  const [version, setVersion] = useState("");
  const [compatible, setCompatible] = useState("");
  const [minAgentVersion, setMinAgentVersion] = useState("");
  const [progress, setProgress] = useState<{ sent: number; total: number } | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [done, setDone] = useState<FirmwareImage | null>(null);

  const chooseManifest = async (chosen: File | undefined) => {
    setError(null);
    if (!chosen) {
      setSigned(null);
      return;
    }
    const text = await chosen.text();
    const fields = manifestFields(text);
    if ("error" in fields) {
      setSigned(null);
      setError(new Error(fields.error));
      return;
    }
    setSigned({ fileName: chosen.name, text });
    setName(fields.name);
    setVersion(fields.version);
    setCompatible(fields.compatible);
    setMinAgentVersion(fields.minAgentVersion);
  };

  const submit = async (event: Event) => {
    event.preventDefault();
    if (!file) {
      setError(new Error("Choose the image file to upload."));
      return;
    }
    setBusy(true);
    setError(null);
    setDone(null);
    setProgress({ sent: 0, total: file.size });
    try {
      const image = await uploadFile<FirmwareImage>("/firmware", file, {
        query: {
          name: name.trim(),
          version: version.trim(),
          compatible: compatible
            .split(/[\s,]+/)
            .filter(Boolean)
            .join(","),
          minAgentVersion: minAgentVersion.trim() || undefined,
        },
        headers: signed ? { [SIGNED_MANIFEST_HEADER]: base64Utf8(JSON.stringify(JSON.parse(signed.text))) } : {},
        onProgress: (sent, total) => setProgress({ sent, total }),
      });
      setProgress({ sent: file.size, total: file.size });
      setDone(image);
      props.onUploaded(image);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const percent = progress && progress.total > 0 ? Math.floor((progress.sent / progress.total) * 100) : 0;
  return (
    <section class="panel firmware-upload" aria-labelledby="upload-title">
      <h2 id="upload-title">Upload an image</h2>
      <form class="form upload-form" onSubmit={submit}>
        <div class="field">
          <label>
            Image file
            <input
              aria-describedby="hint-image-file"
              type="file"
              required
              onChange={(e) => setFile((e.currentTarget as HTMLInputElement).files?.[0] ?? null)}
            />
          </label>
          <span class="hint" id="hint-image-file">
            {file ? `${file.name}, ${formatBytes(file.size)}` : "The image as devices install it."}
          </span>
        </div>
        <div class="field">
          <label>
            Signed manifest (optional)
            <input
              aria-describedby="hint-signed-manifest-optional"
              type="file"
              accept=".json,application/json"
              onChange={(e) => void chooseManifest((e.currentTarget as HTMLInputElement).files?.[0])}
            />
          </label>
          <span class="hint" id="hint-signed-manifest-optional">
            For offline signing: the JSON <code>fieldgate-cloud firmware sign-manifest</code> wrote; it fills the fields
            below. Leave empty to have the cloud sign the image with its firmware key.
          </span>
        </div>
        <div class="field">
          <label>
            Name
            <input
              aria-describedby="hint-name"
              value={name}
              required
              pattern="[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}"
              onInput={(e) => setName(e.currentTarget.value)}
            />
          </label>
          <span class="hint" id="hint-name">
            Letters, digits, "_", "." and "-", e.g. gw-os.
          </span>
        </div>
        <div class="field">
          <label>
            Version
            <input
              aria-describedby="hint-version"
              value={version}
              required
              onInput={(e) => setVersion(e.currentTarget.value)}
            />
          </label>
          <span class="hint" id="hint-version">
            Semantic version, e.g. 2.1.0; devices install only a newer one.
          </span>
        </div>
        <div class="field">
          <label>
            Compatible device types
            <input
              aria-describedby="hint-compatible-device-types"
              value={compatible}
              required
              onInput={(e) => setCompatible(e.currentTarget.value)}
            />
          </label>
          <span class="hint" id="hint-compatible-device-types">
            The device types' firmware compat ids, separated by commas, e.g. acme-gw-a,acme-gw-b.
          </span>
        </div>
        <div class="field">
          <label>
            Minimum agent version (optional)
            <input
              aria-describedby="hint-minimum-agent-version-optional"
              value={minAgentVersion}
              onInput={(e) => setMinAgentVersion(e.currentTarget.value)}
            />
          </label>
          <span class="hint" id="hint-minimum-agent-version-optional">
            Devices whose agent is older refuse the image.
          </span>
        </div>
        {progress && (
          <div class="upload-progress">
            <label>
              Upload progress
              <progress max={progress.total || 1} value={progress.sent} />
            </label>
            <span class="upload-percent" aria-live="polite">
              {percent}% ({formatBytes(progress.sent)} of {formatBytes(progress.total)})
            </span>
          </div>
        )}
        <ErrorNotice error={error} />
        {done && (
          <p class="fw-notice" role="status">
            Uploaded {done.name}@{done.version}, signed by key {done.keyId}.
          </p>
        )}
        <div class="actions">
          <button type="submit" class="primary" disabled={busy}>
            {busy ? "Uploading…" : "Upload"}
          </button>
        </div>
      </form>
    </section>
  );
}
