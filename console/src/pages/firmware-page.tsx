import { useEffect, useState } from "preact/hooks";
import { FirmwareList } from "../components/firmware-list";
import { FirmwareUpload } from "../components/firmware-upload";
import { ErrorNotice, Loading, PageHeader } from "../components/page";
import { api } from "../lib/api";
import type { FirmwareImage } from "../lib/firmware";
import { useSession } from "../lib/session";

/** /firmware: the organization's images; upload and delete for `firmware:write`. */
export function FirmwarePage() {
  const session = useSession();
  const canWrite = session.can("firmware:write");
  const [images, setImages] = useState<FirmwareImage[] | null>(null);
  const [error, setError] = useState<unknown>(null);

  const load = async () => {
    try {
      setImages((await api<{ items: FirmwareImage[] }>("GET", "/firmware")).items);
      setError(null);
    } catch (err) {
      setError(err);
    }
  };
  useEffect(() => {
    void load();
  }, []);

  return (
    <section>
      <PageHeader title="Firmware" />
      {canWrite && <FirmwareUpload onUploaded={() => void load()} />}
      <section aria-labelledby="images-title">
        <h2 id="images-title">Images</h2>
        <ErrorNotice error={error} />
        {images === null ? (
          !error && <Loading />
        ) : (
          <FirmwareList images={images} canWrite={canWrite} onDeleted={() => void load()} />
        )}
      </section>
    </section>
  );
}
