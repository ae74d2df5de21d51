import { PageHeader } from "../components/page";

export function DevicesPage() {
  return <PageHeader title="Devices" />;
}
