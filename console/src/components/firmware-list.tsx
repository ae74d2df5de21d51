import { api } from "../lib/api";
import { type FirmwareImage, formatBytes } from "../lib/firmware";
import { formatTime } from "../lib/format";
import { useConfirm } from "../lib/use-confirm";
import { ConfirmDialog } from "./dialog";
import { TableHead } from "./list-table";
import { ErrorNotice } from "./page";
import { RowActions } from "./row-actions";

/** The image table; with `canWrite`, a delete button per image that asks first. */
export function FirmwareList(props: { images: FirmwareImage[]; canWrite: boolean; onDeleted: () => void }) {
  const deleting = useConfirm<FirmwareImage>();
  const remove = async (image: FirmwareImage) => {
    await api("DELETE", `/firmware/${encodeURIComponent(image.name)}/${encodeURIComponent(image.version)}`);
    props.onDeleted();
  };

  if (props.images.length === 0) return <p>No images yet.</p>;
  return (
    <>
      <div class="table-wrap">
        <table aria-label="Firmware images">
          <TableHead
            columns={[
              "Name",
              "Version",
              "Size",
              "Compatible",
              "Signature key",
              "Uploaded",
              "In use",
              ...(props.canWrite ? ["Actions"] : []),
            ]}
          />
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
                    <RowActions
                      name={`${image.name}@${image.version}`}
                      actions={[{ label: "Delete", onClick: () => deleting.ask(image) }]}
                    />
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {deleting.target && (
        <ConfirmDialog
          title={`Delete ${deleting.target.name}@${deleting.target.version}?`}
          confirmLabel="Delete image"
          danger
          busy={deleting.busy}
          onConfirm={() => void deleting.confirm(remove)}
          onClose={deleting.cancel}
        >
          <p>
            The image file and its signed manifest are removed, and so are the finished rollouts that used it. Devices
            can no longer install it. An image a running or paused rollout, or an unfinished job, uses cannot be
            deleted.
          </p>
          <ErrorNotice error={deleting.error} />
        </ConfirmDialog>
      )}
    </>
  );
}
