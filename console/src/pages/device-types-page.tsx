import { PageHeader } from "../components/page";

export function DeviceTypesPage() {
  return <PageHeader title="Device types" />;
}
