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
      <form class="form" onSubmit={submit}>
        <label>
          Image file
          <input
            type="file"
            required
            onChange={(e) => setFile((e.currentTarget as HTMLInputElement).files?.[0] ?? null)}
          />
          <span class="hint">
            {file ? `${file.name}, ${formatBytes(file.size)}` : "The image as devices install it."}
          </span>
        </label>
        <label>
          Signed manifest (optional)
          <input
            type="file"
            accept=".json,application/json"
            onChange={(e) => void chooseManifest((e.currentTarget as HTMLInputElement).files?.[0])}
          />
          <span class="hint">
            For offline signing: the JSON <code>fieldgate-cloud firmware sign-manifest</code> wrote; it fills the fields
            below. Leave empty to have the cloud sign the image with its firmware key.
          </span>
        </label>
        <label>
          Name
          <input
            value={name}
            required
            pattern="[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}"
            onInput={(e) => setName(e.currentTarget.value)}
          />
          <span class="hint">Letters, digits, "_", "." and "-", e.g. gw-os.</span>
        </label>
        <label>
          Version
          <input value={version} required onInput={(e) => setVersion(e.currentTarget.value)} />
          <span class="hint">Semantic version, e.g. 2.1.0; devices install only a newer one.</span>
        </label>
        <label>
          Compatible device types
          <input value={compatible} required onInput={(e) => setCompatible(e.currentTarget.value)} />
          <span class="hint">
            The device types' firmware compat ids, separated by commas, e.g. acme-gw-a,acme-gw-b.
          </span>
        </label>
        <label>
          Minimum agent version (optional)
          <input value={minAgentVersion} onInput={(e) => setMinAgentVersion(e.currentTarget.value)} />
          <span class="hint">Devices whose agent is older refuse the image.</span>
        </label>
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
