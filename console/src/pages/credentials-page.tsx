import { PageHeader } from "../components/page";

export function CredentialsPage() {
  return <PageHeader title="API credentials" />;
}
