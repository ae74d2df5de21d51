import { PageHeader } from "../components/page";

export function BulkPage() {
  return <PageHeader title="Bulk operations" />;
}
