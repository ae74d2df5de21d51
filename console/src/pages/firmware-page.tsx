import { FirmwareList } from "../components/firmware-list";
import { FirmwareUpload } from "../components/firmware-upload";
import { ErrorNotice, Loading, PageHeader } from "../components/page";
import type { FirmwareImage } from "../lib/firmware";
import { useSession } from "../lib/session";
import { useItems } from "../lib/use-resource";

/** /firmware: the organization's images; upload and delete for `firmware:write`. */
export function FirmwarePage() {
  const session = useSession();
  const canWrite = session.can("firmware:write");
  const { data: images, error, reload } = useItems<FirmwareImage>("/firmware");

  return (
    <section>
      <PageHeader title="Firmware" />
      {canWrite && <FirmwareUpload onUploaded={() => void reload()} />}
      <section aria-labelledby="images-title">
        <h2 id="images-title">Images</h2>
        <ErrorNotice error={error} />
        {images === undefined ? (
          !error && <Loading />
        ) : (
          <FirmwareList images={images} canWrite={canWrite} onDeleted={() => void reload()} />
        )}
      </section>
    </section>
  );
}
