import { useState } from "preact/hooks";
import { api } from "../lib/api";
import { type FirmwareImage, formatBytes } from "../lib/firmware";
import { formatTime } from "../lib/format";
import { ConfirmDialog } from "./dialog";
import { ErrorNotice } from "./page";

/** The image table; with `canWrite`, a delete button per image that asks first. */
export function FirmwareList(props: { images: FirmwareImage[]; canWrite: boolean; onDeleted: () => void }) {
  const [deleting, setDeleting] = useState<FirmwareImage | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);

  const remove = async () => {
    if (!deleting) return;
    setBusy(true);
    setError(null);
    try {
      await api("DELETE", `/firmware/${encodeURIComponent(deleting.name)}/${encodeURIComponent(deleting.version)}`);
      setDeleting(null);
      props.onDeleted();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  if (props.images.length === 0) return <p>No images yet.</p>;
  return (
    <>
      <div class="table-wrap">
        <table aria-label="Firmware images">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Version</th>
              <th scope="col">Size</th>
              <th scope="col">Compatible</th>
              <th scope="col">Signature key</th>
              <th scope="col">Uploaded</th>
              <th scope="col">In use</th>
              {props.canWrite && <th scope="col">Actions</th>}
            </tr>
          </thead>
          <tbody>
            {props.images.map((image) => (
              <tr key={`${image.name}@${image.version}`}>
                <td>{image.name}</td>
                <td>{image.version}</td>
                <td title={`${image.size} bytes, sha256 ${image.sha256}`}>{formatBytes(image.size)}</td>
                <td>{image.compatible.join(", ")}</td>
                <td class="mono">{image.keyId}</td>
                <td>{formatTime(image.created)}</td>
                <td>{image.inUse ? "yes" : "no"}</td>
                {props.canWrite && (
                  <td>
                    <button
                      type="button"
                      aria-label={`Delete ${image.name}@${image.version}`}
                      onClick={() => {
                        setError(null);
                        setDeleting(image);
                      }}
                    >
                      Delete
                    </button>
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {deleting && (
        <ConfirmDialog
          title={`Delete ${deleting.name}@${deleting.version}?`}
          confirmLabel="Delete image"
          danger
          busy={busy}
          onConfirm={() => void remove()}
          onClose={() => setDeleting(null)}
        >
          <p>
            The image file and its signed manifest are removed, and so are the finished rollouts that used it. Devices
            can no longer install it. An image a running or paused rollout, or an unfinished job, uses cannot be
            deleted.
          </p>
          <ErrorNotice error={error} />
        </ConfirmDialog>
      )}
    </>
  );
}
