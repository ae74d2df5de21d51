import { PageHeader } from "../components/page";

export function UsersPage() {
  return <PageHeader title="Users" />;
}
