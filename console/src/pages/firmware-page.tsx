import { PageHeader } from "../components/page";

export function FirmwarePage() {
  return <PageHeader title="Firmware" />;
}
