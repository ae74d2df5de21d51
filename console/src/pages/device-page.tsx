import { PageHeader } from "../components/page";

export function DevicePage() {
  return <PageHeader title="Device" />;
}
