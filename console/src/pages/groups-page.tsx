import { PageHeader } from "../components/page";

export function GroupsPage() {
  return <PageHeader title="Groups" />;
}
